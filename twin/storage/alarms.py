"""Alarms: raise, list with filters, acknowledge with a note, clear; the lifecycle log.

States go ``open`` -> ``acknowledged`` (a person has seen it, with a note) -> ``closed``
(the condition cleared, ``cleared_at`` says when); an alarm may also clear while still
open. There is at most one alarm not closed per site, rule and room (or device). Nothing
is deleted: closed alarms are the history. Every transition is also written to
``alarm_events`` (raised, acknowledged, cleared), which is the outbox of notifications.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

from twin.monitoring.rule_engine import Episode

SEVERITIES = ("info", "warning", "critical")
STATES = ("open", "acknowledged", "closed")

_EVENT = "INSERT INTO alarm_events (alarm_id, event, at, by, note) VALUES (%s, %s, %s, %s, %s)"


def raise_alarm(conn: psycopg.Connection, site_id: str, rule: str, severity: str, message: str = "", *,
                room_id: int | None = None, device_key: int | None = None, at: datetime | None = None,
                standard: str | None = None, value: float | None = None, known_at: datetime | None = None,
                until: datetime | None = None) -> int:
    """Open an alarm; return its id (``device_key`` is ``devices.id``).

    ``at``: when the condition began (``raised_at``, default now); ``known_at``: when the twin
    knew (the monitor's clock, default now; never before ``at``). The ``raised`` event is dated
    ``known_at``: it is when the twin could tell anyone. ``until``: the condition has already
    ended then (found in history): the alarm is stored closed, with both events."""
    row = conn.execute(
        """INSERT INTO alarms (site_id, room_id, device_id, rule, severity, message, raised_at, known_at,
                               standard, value, state, cleared_at)
           VALUES (%(site)s, %(room)s, %(dev)s, %(rule)s, %(sev)s, %(msg)s, coalesce(%(at)s, now()),
                   greatest(coalesce(%(known)s, now()), coalesce(%(at)s, now())), %(std)s, %(value)s,
                   CASE WHEN %(until)s::timestamptz IS NULL THEN 'open' ELSE 'closed' END,
                   CASE WHEN %(until)s::timestamptz IS NOT NULL THEN greatest(%(until)s, coalesce(%(at)s, now())) END)
           RETURNING id, known_at, cleared_at""",
        {"site": site_id, "room": room_id, "dev": device_key, "rule": rule, "sev": severity, "msg": message,
         "at": at, "known": known_at, "std": standard, "value": value, "until": until},
    ).fetchone()
    assert row is not None
    conn.execute(_EVENT, (row[0], "raised", row[1], None, None))
    if row[2] is not None:  # found in history, already over: closed from the start (never a second open one)
        conn.execute(_EVENT, (row[0], "cleared", max(row[1], row[2]), None, None))
    return int(row[0])


@dataclass(frozen=True, slots=True)
class AlarmRow:
    """An alarm with its site's name, its room's and building's names and its device's id (``device_id``, as in
    topics). ``room_id`` is the alarm's room, else its device's room (a device alarm is in a room too)."""

    id: int
    site_id: str
    site_name: str
    room_id: int | None
    room: str | None
    device_id: str | None
    rule: str
    severity: str
    state: str
    message: str
    raised_at: datetime
    cleared_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    note: str | None
    standard: str | None
    value: float | None
    known_at: datetime
    building_id: int | None = None
    building: str | None = None


def list_alarms(conn: psycopg.Connection, *, site_id: str | None = None, severity: str | None = None,
                state: str | None = None, limit: int = 200) -> list[AlarmRow]:
    """Alarms newest first, filtered by site, severity and state (None: any), with site, room, building and
    device names (the room of a device alarm is its device's)."""
    with conn.cursor(row_factory=class_row(AlarmRow)) as cur:
        return cur.execute(
            """SELECT a.id, a.site_id, s.name AS site_name, r.id AS room_id, r.name AS room, d.device_id, a.rule,
                      a.severity, a.state, a.message, a.raised_at, a.cleared_at, a.acked_at, a.acked_by, a.note,
                      a.standard, a.value, a.known_at, b.id AS building_id, b.name AS building
               FROM alarms a JOIN sites s ON s.site_id = a.site_id
               LEFT JOIN devices d ON d.id = a.device_id
               LEFT JOIN rooms r ON r.id = coalesce(a.room_id, d.room_id)
               LEFT JOIN storeys st ON st.id = r.storey_id LEFT JOIN buildings b ON b.id = st.building_id
               WHERE (%(site)s::text IS NULL OR a.site_id = %(site)s)
                 AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
                 AND (%(state)s::text IS NULL OR a.state = %(state)s)
               ORDER BY a.raised_at DESC, a.id DESC LIMIT %(limit)s""",
            {"site": site_id, "severity": severity, "state": state, "limit": limit},
        ).fetchall()


def acknowledge(conn: psycopg.Connection, alarm_id: int, *, by: str, note: str = "") -> bool:
    """Acknowledge an open alarm with a note; False when it is unknown or not open."""
    row = conn.execute(
        """UPDATE alarms SET state = 'acknowledged', acked_at = now(), acked_by = %s, note = %s
           WHERE id = %s AND state = 'open' RETURNING acked_at,
             (SELECT max(e.at) FROM alarm_events e WHERE e.alarm_id = alarms.id)""",
        (by, note, alarm_id),
    ).fetchone()
    if row is None:
        return False
    # a monitor on a replay's clock may have dated the raise after the wall clock: events stay in order
    conn.execute(_EVENT, (alarm_id, "acknowledged", max(row[0], row[1]) if row[1] else row[0], by, note))
    return True


def clear(conn: psycopg.Connection, alarm_id: int, at: datetime | None = None) -> bool:
    """Close an alarm whose condition has cleared (at ``at``, default now; never before it was raised);
    False when unknown or already closed. The ``cleared`` event is never dated before the alarm's
    other events (``at`` may lie in the past: the data says when the condition ended)."""
    row = conn.execute(
        """UPDATE alarms SET state = 'closed', cleared_at = greatest(coalesce(%s, now()), raised_at)
           WHERE id = %s AND state <> 'closed' RETURNING cleared_at,
             (SELECT max(e.at) FROM alarm_events e WHERE e.alarm_id = alarms.id)""", (at, alarm_id)).fetchone()
    if row is None:
        return False
    conn.execute(_EVENT, (alarm_id, "cleared", max(row[0], row[1]) if row[1] else row[0], None, None))
    return True


def open_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Alarms not closed, per site."""
    rows = conn.execute("SELECT site_id, count(*) FROM alarms WHERE state <> 'closed' GROUP BY 1").fetchall()
    return {s: int(n) for s, n in rows}


def reconcile(conn: psycopg.Connection, site_id: str, episodes: Iterable[Episode], *, rules: Sequence[str],
              start: datetime, end: datetime, standards: dict[str, str] | None = None,
              continuing_from: datetime | None = None, now: datetime | None = None) -> dict[str, int]:
    """Make the stored alarms of ``rules`` agree with ``episodes`` evaluated over ``[start, end)``.

    First every episode is matched to the stored alarm it is (:func:`_match`): the same site, rule,
    room, device and start; or the open alarm whose start it covers (the data now says the fault
    began earlier: the alarm's ``raised_at`` moves back, it is not raised twice); or, with
    ``continuing_from`` (where the data of a sliding window began), the alarm, open or closed, that
    was already going when an episode starting in the window's first minute began. Then matched
    open alarms are updated (message, worst value) and cleared at their episode's end; unmatched
    episodes are raised (``known_at`` = ``now``, the monitor's clock; an episode that has ended
    is stored closed at once), after clearing an open alarm of the same room (or device) and
    rule that no episode explains; open alarms raised in the range that no episode explains any
    more (late data changed the picture) are cleared at ``end``. Returns counts of ``raised``,
    ``cleared``, ``updated`` (rows, each counted once).

    Invariants kept (and checked by the database): at most one alarm not closed per site,
    rule and room (or device); ``cleared_at >= raised_at``; events in order.
    """
    standards = standards or {}
    episodes = sorted(episodes, key=lambda e: e.start)
    lo = min([start, *(e.start for e in episodes)])
    counts = {"raised": 0, "cleared": 0, "updated": 0}
    stored = {(r, room, dev, at): _Stored(aid, state, cleared) for aid, r, room, dev, at, state, cleared in conn.execute(
        """SELECT id, rule, coalesce(room_id, -1), coalesce(device_id, -1), raised_at, state, cleared_at
           FROM alarms WHERE site_id = %s AND rule = ANY(%s)
             AND (state <> 'closed' OR (raised_at >= %s AND raised_at < %s) OR cleared_at >= %s)""",
        (site_id, list(rules), lo, end, lo)).fetchall()}
    matched: dict[int, Key] = {}  # episode index -> the stored alarm it is
    taken: set[int] = set()
    for i, ep in enumerate(episodes):
        key = _match(stored, taken, ep, continuing_from)
        if key is not None:
            matched[i] = key
            taken.add(stored[key].id)
    for i, ep in enumerate(episodes):
        if i in matched:
            alarm = stored[matched[i]]
            if alarm.state == "closed":
                continue
            conn.execute("UPDATE alarms SET message = %s, value = %s, raised_at = least(raised_at, %s) WHERE id = %s",
                         (ep.message, ep.value, ep.start, alarm.id))
            counts["updated"] += 1
            if ep.end is not None and clear(conn, alarm.id, ep.end):
                alarm.state = "closed"
                counts["cleared"] += 1
            continue
        if ep.end is None or ep.end > ep.start:  # an open alarm of its room/device and rule that no episode explains
            for k, alarm in stored.items():
                if k[:3] == _key(ep)[:3] and alarm.state != "closed" and alarm.id not in taken and k[3] <= ep.start:
                    clear(conn, alarm.id, ep.start)
                    alarm.state = "closed"
                    counts["cleared"] += 1
        aid = raise_alarm(conn, site_id, ep.rule, ep.severity, ep.message, room_id=ep.room_id,
                          device_key=ep.device, at=ep.start, standard=standards.get(ep.rule),
                          value=ep.value, known_at=now, until=ep.end)
        stored[_key(ep)] = _Stored(aid, "closed" if ep.end is not None else "open", ep.end)
        taken.add(aid)
        counts["raised"] += 1
        counts["cleared"] += ep.end is not None
    for k, alarm in stored.items():
        if alarm.id not in taken and alarm.state != "closed" and start <= k[3] < end:
            clear(conn, alarm.id, end)
            alarm.state = "closed"
            counts["cleared"] += 1
    return counts


Key = tuple[str, int, int, datetime]


@dataclass(slots=True)
class _Stored:
    id: int
    state: str
    cleared_at: datetime | None


def _key(ep: Episode) -> Key:
    return (ep.rule, ep.room_id if ep.room_id is not None else -1, ep.device if ep.device is not None else -1,
            ep.start)


def _match(stored: dict[Key, _Stored], taken: set[int], ep: Episode, continuing_from: datetime | None) -> Key | None:
    """The stored alarm ``ep`` is (same rule, room and device), not already another episode's: the same start;
    an open one whose start ``ep`` covers; or, for an episode starting in the first minute of a sliding
    window, the one (open, or closed after that minute) that began before it."""
    key = _key(ep)
    if key in stored and stored[key].id not in taken:
        return key
    window_start = continuing_from is not None and ep.start < continuing_from + timedelta(minutes=1)
    for k, alarm in stored.items():
        if k[:3] != key[:3] or alarm.id in taken:
            continue
        if alarm.state != "closed" and ep.start < k[3] and (ep.end is None or ep.end > k[3]):
            return k
        if window_start and k[3] < ep.start and (alarm.state != "closed" or
                                                 (alarm.cleared_at is not None and alarm.cleared_at >= ep.start)):
            return k
    return None


def open_alarm(conn: psycopg.Connection, site_id: str, rule: str, device_key: int) -> tuple[int, datetime] | None:
    """The open (not closed) alarm of a device and rule: ``(id, raised_at)``, or None."""
    row = conn.execute(
        "SELECT id, raised_at FROM alarms WHERE site_id = %s AND rule = %s AND device_id = %s AND state <> 'closed'",
        (site_id, rule, device_key)).fetchone()
    return (int(row[0]), row[1]) if row else None


def open_alarm_starts(conn: psycopg.Connection, site_id: str, rule: str) -> dict[int, datetime]:
    """Device key -> when its open alarm of ``rule`` began (device alarms only)."""
    return dict(conn.execute(
        """SELECT device_id, raised_at FROM alarms
           WHERE site_id = %s AND rule = %s AND state <> 'closed' AND device_id IS NOT NULL""",
        (site_id, rule)).fetchall())


def pending_events(conn: psycopg.Connection, limit: int = 500) -> list[dict[str, Any]]:
    """Lifecycle events not yet notified, oldest first, with what a receiver needs to know."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT e.id AS event_id, e.event, e.at, e.by, e.note, a.id AS alarm_id, a.site_id, a.rule,
                      a.severity, a.state, a.message, a.standard, a.value, a.raised_at, a.known_at,
                      a.cleared_at, r.name AS room, a.room_id, d.device_id
               FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id
               LEFT JOIN rooms r ON r.id = a.room_id LEFT JOIN devices d ON d.id = a.device_id
               WHERE e.notified_at IS NULL ORDER BY e.id LIMIT %s""", (limit,)).fetchall()


def mark_notified(conn: psycopg.Connection, event_ids: Sequence[int]) -> None:
    conn.execute("UPDATE alarm_events SET notified_at = now() WHERE id = ANY(%s)", (list(event_ids),))


def alarm_events(conn: psycopg.Connection, alarm_id: int) -> list[tuple[str, datetime, str | None, str | None]]:
    """``(event, at, by, note)`` of one alarm, in order."""
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT event, at, by, note FROM alarm_events WHERE alarm_id = %s ORDER BY id", (alarm_id,)).fetchall()]


def month_alarms(conn: psycopg.Connection, site_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Alarms of a site raised in ``[start, end)``, oldest first (for the monthly report)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT a.id, a.rule, a.severity, a.state, a.raised_at, a.cleared_at, a.acked_at, a.acked_by,
                      a.standard, r.name AS room, d.device_id, d.kind
               FROM alarms a LEFT JOIN rooms r ON r.id = a.room_id LEFT JOIN devices d ON d.id = a.device_id
               WHERE a.site_id = %s AND a.raised_at >= %s AND a.raised_at < %s ORDER BY a.raised_at, a.id""",
            (site_id, start, end)).fetchall()


#: The advisory lock a notifier holds while it delivers the outbox: with two monitors on one database
#: (one of them skipping its cycles) only one notifier posts, and no event goes out twice.
OUTBOX_LOCK = 0x7C7A1A53


def lock_outbox(conn: psycopg.Connection) -> bool:
    """Take :data:`OUTBOX_LOCK` for this session if no other notifier holds it; committed at once, held
    until :func:`unlock_outbox` or the connection closes."""
    held = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (OUTBOX_LOCK,)).fetchone()[0])  # type: ignore[index]
    conn.commit()
    return held


def unlock_outbox(conn: psycopg.Connection) -> None:
    """Release :data:`OUTBOX_LOCK` taken by :func:`lock_outbox` on this session."""
    conn.execute("SELECT pg_advisory_unlock(%s)", (OUTBOX_LOCK,))
    conn.commit()


def integrity_violations(conn: psycopg.Connection, site_id: str | None = None) -> list[str]:
    """What breaks the alarm invariants (empty when they hold): more than one alarm not closed per site,
    rule and room (or device); cleared before raised; known before raised; events out of order (a
    ``raised`` event not first, a ``cleared`` one dated before another event of its alarm)."""
    rows = conn.execute(
        """SELECT 'two open alarms: ' || rule || ' room ' || coalesce(room_id, -1) || ' device '
                  || coalesce(device_id, -1)
           FROM alarms WHERE state <> 'closed' AND (%(site)s::text IS NULL OR site_id = %(site)s)
           GROUP BY site_id, rule, coalesce(room_id, -1), coalesce(device_id, -1) HAVING count(*) > 1
           UNION ALL
           SELECT 'cleared before raised: alarm ' || id FROM alarms
           WHERE cleared_at < raised_at AND (%(site)s::text IS NULL OR site_id = %(site)s)
           UNION ALL
           SELECT 'known before raised: alarm ' || id FROM alarms
           WHERE known_at < raised_at AND (%(site)s::text IS NULL OR site_id = %(site)s)
           UNION ALL
           SELECT 'events out of order: alarm ' || a.id FROM alarms a
           WHERE (%(site)s::text IS NULL OR a.site_id = %(site)s) AND EXISTS (
             SELECT 1 FROM alarm_events e JOIN alarm_events f ON f.alarm_id = e.alarm_id AND f.id > e.id
             WHERE e.alarm_id = a.id AND (f.at < e.at OR f.event = 'raised'))""",
        {"site": site_id}).fetchall()
    return [r[0] for r in rows]
