"""The channels' outbox (``alarm_deliveries``): one row per alarm lifecycle event and channel.

Queued when the notifier has taken an event out of ``alarm_events`` (one row per configured channel
that wants it, never two: the primary key), sent oldest first per channel, retried at ``next_at``
with the failure's reason kept (secrets already redacted by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event waiting for one channel, with what its message needs."""

    event_id: int
    channel: str
    attempts: int
    next_at: datetime
    event: str
    at: datetime
    by: str | None
    note: str | None
    alarm_id: int
    site_id: str
    school: str
    time_zone: str
    rule: str
    severity: str
    message: str
    standard: str | None
    value: float | None
    raised_at: datetime
    room: str | None
    room_id: int | None
    storey: str | None
    building: str | None
    device_id: str | None


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A delivery that has failed at least once and is not sent yet (what the alarms page shows)."""

    event_id: int
    channel: str
    alarm_id: int
    event: str
    attempts: int
    next_at: datetime
    last_error: str


def queue(conn: psycopg.Connection, event_id: int, site_id: str, channels: Sequence[str]) -> None:
    """Queue ``event_id`` for each of ``channels`` (a second call queues nothing twice)."""
    if channels:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO alarm_deliveries (event_id, channel, site_id) VALUES (%s, %s, %s) "
                            "ON CONFLICT DO NOTHING", [(event_id, c, site_id) for c in channels])


def pending(conn: psycopg.Connection, channel: str, limit: int = 100) -> list[Delivery]:
    """The unsent deliveries of ``channel``, oldest event first."""
    with conn.cursor(row_factory=class_row(Delivery)) as cur:
        return cur.execute(
            """SELECT q.event_id, q.channel, q.attempts, q.next_at, e.event, e.at, e.by, e.note,
                      a.id AS alarm_id, a.site_id, s.name AS school, s.time_zone, a.rule, a.severity,
                      a.message, a.standard, a.value, a.raised_at, r.name AS room, r.id AS room_id,
                      st.name AS storey, b.name AS building, d.device_id
               FROM alarm_deliveries q JOIN alarm_events e ON e.id = q.event_id
               JOIN alarms a ON a.id = e.alarm_id JOIN sites s ON s.site_id = a.site_id
               LEFT JOIN devices d ON d.id = a.device_id
               LEFT JOIN rooms r ON r.id = coalesce(a.room_id, d.room_id)
               LEFT JOIN storeys st ON st.id = r.storey_id LEFT JOIN buildings b ON b.id = st.building_id
               WHERE q.channel = %s AND q.sent_at IS NULL AND q.given_up_at IS NULL ORDER BY q.event_id LIMIT %s""",
            (channel, limit)).fetchall()


def mark_sent(conn: psycopg.Connection, event_id: int, channel: str) -> None:
    conn.execute("UPDATE alarm_deliveries SET sent_at = now(), attempts = attempts + 1 "
                 "WHERE event_id = %s AND channel = %s", (event_id, channel))


def mark_failed(conn: psycopg.Connection, event_id: int, channel: str, reason: str, retry_in: timedelta) -> None:
    """Record a failed attempt and when to try again."""
    conn.execute("UPDATE alarm_deliveries SET attempts = attempts + 1, last_error = %s, next_at = now() + %s "
                 "WHERE event_id = %s AND channel = %s", (reason, retry_in, event_id, channel))


def give_up(conn: psycopg.Connection, event_id: int, channel: str, reason: str) -> None:
    """Record the last refusal of a delivery tried too often: no longer tried (its channel goes on), still a failure."""
    conn.execute("UPDATE alarm_deliveries SET attempts = attempts + 1, last_error = %s, given_up_at = now() "
                 "WHERE event_id = %s AND channel = %s", (reason, event_id, channel))


def failures(conn: psycopg.Connection, site_id: str | None = None) -> list[DeliveryFailure]:
    """Unsent deliveries that have failed, newest first."""
    with conn.cursor(row_factory=class_row(DeliveryFailure)) as cur:
        return cur.execute(
            """SELECT q.event_id, q.channel, e.alarm_id, e.event, q.attempts, q.next_at, q.last_error
               FROM alarm_deliveries q JOIN alarm_events e ON e.id = q.event_id
               WHERE q.sent_at IS NULL AND q.last_error IS NOT NULL AND (%(s)s::text IS NULL OR q.site_id = %(s)s)
               ORDER BY q.event_id DESC""", {"s": site_id}).fetchall()


def counts(conn: psycopg.Connection) -> dict[str, Any]:
    """Sent and pending deliveries per channel."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT channel, count(sent_at) AS sent, count(given_up_at) AS given_up, "
                           "count(*) - count(sent_at) - count(given_up_at) AS pending "
                           "FROM alarm_deliveries GROUP BY channel ORDER BY channel").fetchall()
    return {r["channel"]: {"sent": r["sent"], "pending": r["pending"], "given_up": r["given_up"]} for r in rows}
