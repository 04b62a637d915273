"""What the monitor reads: rooms, 1-minute rollups per room and device, status, dead letters, overrides."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from twin.metrics import BY_ID, BY_NAME
from twin.monitoring.device_health import MetricMinute
from twin.monitoring.rule_engine import DeviceMinute, RoomContext

#: How far before a range the monitor looks for a device's last report.
LOOKBACK = timedelta(days=1)

RoomMinutes = dict[int, dict[str, dict[datetime, list[DeviceMinute]]]]


#: The advisory lock only one monitor at a time holds (two would raise and notify everything twice).
MONITOR_LOCK = 0x7C7A1A52


def try_lock_monitor(conn: psycopg.Connection) -> bool:
    """Take the monitor's advisory lock for this session (released when the connection closes)."""
    return bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (MONITOR_LOCK,)).fetchone()[0])


def sites(conn: psycopg.Connection) -> list[tuple[str, str | None]]:
    """``(site_id, climate_zone)`` of every site."""
    return [(s, z) for s, z in conn.execute("SELECT site_id, climate_zone FROM sites ORDER BY site_id").fetchall()]


def climate_zone(conn: psycopg.Connection, site_id: str) -> str | None:
    """The stored climate zone of ``site_id`` (None: not set, or no such site)."""
    row = conn.execute("SELECT climate_zone FROM sites WHERE site_id = %s", (site_id,)).fetchone()
    return row[0] if row else None


def set_climate_zone(conn: psycopg.Connection, site_id: str, zone: str | None) -> bool:
    return conn.execute("UPDATE sites SET climate_zone = %s WHERE site_id = %s", (zone, site_id)).rowcount == 1


def rooms(conn: psycopg.Connection, site_id: str) -> list[RoomContext]:
    return [RoomContext(i, use, area, name) for i, use, area, name in conn.execute(
        "SELECT id, use, area_m2, name FROM rooms WHERE site_id = %s AND removed_at IS NULL ORDER BY id",
        (site_id,)).fetchall()]


def room_minutes(conn: psycopg.Connection, site_id: str, metrics: Sequence[str], start: datetime,
                 end: datetime) -> RoomMinutes:
    """room -> metric -> minute -> the samples of the room's devices, from ``rollup_1m``."""
    ids = [BY_NAME[m].metric_id for m in metrics if m in BY_NAME]
    rows = conn.execute(
        """SELECT d.room_id, r.metric_id, r.bucket, d.id, d.kind, r.sum / r.n, r.min, r.max, r.n
           FROM rollup_1m r JOIN devices d ON d.id = r.device_id
           WHERE d.site_id = %s AND d.room_id IS NOT NULL AND d.removed_at IS NULL
             AND r.metric_id = ANY(%s) AND r.bucket >= %s AND r.bucket < %s""",
        (site_id, ids, start, end)).fetchall()
    out: RoomMinutes = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for room, metric_id, bucket, dev, kind, mean, lo, hi, n in rows:
        out[room][BY_ID[metric_id].name][bucket].append(DeviceMinute(bucket, dev, kind, mean, lo, hi, n))
    return out


@dataclass(frozen=True, slots=True)
class DeviceActivity:
    """A device's minutes with data in a range, its last minute before and first after, and the exact
    time of its newest report (``last``: receive time when judged on what was heard, else device time)."""

    device: int
    device_id: str
    kind: str
    buckets: list[datetime]
    before: datetime | None
    after: datetime | None
    last: datetime | None = None
    #: minute -> the first and last report in it (where known: minutes stored before schema 12 have none)
    spans: dict[datetime, tuple[datetime, datetime]] = field(default_factory=dict)


_ACTIVITY = {
    # device time, from the rollups: history stored before schema 12 (no device_minutes)
    "rollups": ("""SELECT d.id, d.device_id, d.kind,
                  (SELECT max(r.bucket) FROM rollup_1m r WHERE r.device_id = d.id
                     AND r.bucket >= %(lb)s AND r.bucket < %(start)s),
                  (SELECT max(l.ts) FROM latest l WHERE l.device_id = d.id),
                  (SELECT min(r.bucket) FROM rollup_1m r WHERE r.device_id = d.id
                     AND r.bucket >= %(end)s AND r.bucket < %(la)s)
               FROM devices d WHERE d.site_id = %(site)s AND d.removed_at IS NULL ORDER BY d.id""",
                """SELECT r.device_id, r.bucket, m.first_ts, m.last_ts
               FROM (SELECT DISTINCT r.device_id, r.bucket FROM rollup_1m r JOIN devices d ON d.id = r.device_id
                     WHERE d.site_id = %(site)s AND r.bucket >= %(start)s AND r.bucket < %(end)s) r
               LEFT JOIN device_minutes m ON m.device_id = r.device_id AND m.minute = r.bucket
               ORDER BY 1, 2"""),
    # device time: the minutes of the readings themselves (replays, backfills, an explicit clock)
    "minutes": ("""SELECT d.id, d.device_id, d.kind,
                  (SELECT max(m.minute) FROM device_minutes m WHERE m.device_id = d.id
                     AND m.minute >= %(lb)s AND m.minute < %(start)s),
                  (SELECT max(l.ts) FROM latest l WHERE l.device_id = d.id),
                  (SELECT min(m.minute) FROM device_minutes m WHERE m.device_id = d.id
                     AND m.minute >= %(end)s AND m.minute < %(la)s)
               FROM devices d WHERE d.site_id = %(site)s AND d.removed_at IS NULL ORDER BY d.id""",
                """SELECT m.device_id, m.minute, m.first_ts, m.last_ts FROM device_minutes m
               JOIN devices d ON d.id = m.device_id
               WHERE d.site_id = %(site)s AND m.minute >= %(start)s AND m.minute < %(end)s ORDER BY 1, 2"""),
    # receive time: the minutes in which the twin heard the device (the live monitor)
    "heard": ("""SELECT d.id, d.device_id, d.kind,
                  (SELECT max(h.minute) FROM device_heard h WHERE h.device_id = d.id
                     AND h.minute >= %(lb)s AND h.minute < %(start)s),
                  -- its last telemetry heard (a status is not data), else, before any minute was
                  -- recorded as heard (a database from before schema 12), its newest reading
                  coalesce(greatest((SELECT max(h.last_at) FROM device_heard h WHERE h.device_id = d.id
                                       AND h.minute >= %(lb)s),
                                    (SELECT max(l.received_at) FROM dead_letters l
                                     WHERE l.topic = 'campus/v1/' || d.site_id || '/' || d.device_id || '/telemetry'
                                       AND (l.reason LIKE '%%is in the future%%' OR l.reason LIKE '%%is older than%%')
                                       AND l.received_at >= %(lb)s)),
                           (SELECT max(l.ts) FROM latest l WHERE l.device_id = d.id)),
                  (SELECT min(h.minute) FROM device_heard h WHERE h.device_id = d.id
                     AND h.minute >= %(end)s AND h.minute < %(la)s)
               FROM devices d WHERE d.site_id = %(site)s AND d.removed_at IS NULL ORDER BY d.id""",
           # telemetry refused only for its time is heard too: a clock far off is a live device
           """SELECT h.device_id, h.minute, h.first_at, h.last_at FROM device_heard h JOIN devices d ON d.id = h.device_id
              WHERE d.site_id = %(site)s AND h.minute >= %(start)s AND h.minute < %(end)s
              UNION ALL
              SELECT d.id, date_trunc('minute', l.received_at, 'UTC'), l.received_at, l.received_at FROM dead_letters l
              JOIN devices d ON d.site_id = %(site)s AND d.removed_at IS NULL
                AND l.topic = 'campus/v1/' || d.site_id || '/' || d.device_id || '/telemetry'
              WHERE l.received_at >= %(start)s AND l.received_at < %(end)s
                AND (l.reason LIKE '%%is in the future%%' OR l.reason LIKE '%%is older than%%')
              ORDER BY 1, 2"""),
}


def device_activity(conn: psycopg.Connection, site_id: str, start: datetime, end: datetime, *,
                    heard: bool = False) -> list[DeviceActivity]:
    """Per device of the site: the minutes with data in ``[start, end)``, the last before, the first after.

    ``heard``: the minutes in which ingest stored its readings (receive time, ``device_heard``),
    else the minutes of the readings' own times (``device_minutes``; for a range reaching back to
    readings stored before schema 12 made that table, the rollups). The last report before the range is looked for
    in the day before it, else taken from its newest report when it has sent nothing since.
    """
    if heard:
        source = "heard"
    else:
        newer = conn.execute("SELECT %s >= coalesce(min(since), 'infinity') FROM device_minutes_since",
                             (start - LOOKBACK,)).fetchone()
        source = "minutes" if newer is not None and newer[0] else "rollups"
    per_device, minutes = _ACTIVITY[source]
    args = {"site": site_id, "start": start, "end": end, "lb": start - LOOKBACK, "la": end + LOOKBACK}
    devices = conn.execute(per_device, args).fetchall()
    spans: dict[int, dict[datetime, tuple[datetime, datetime]]] = defaultdict(dict)
    buckets: dict[int, list[datetime]] = defaultdict(list)
    for dev, bucket, first, last_in in conn.execute(minutes, args).fetchall():
        if bucket not in spans[dev]:
            buckets[dev].append(bucket)
        if first is not None:
            known = spans[dev].get(bucket)
            spans[dev][bucket] = (first, last_in) if known is None else (min(known[0], first), max(known[1], last_in))
        else:
            spans[dev].setdefault(bucket, (bucket, bucket + timedelta(minutes=1)))  # its edges: no second known
    out = []
    for dev, device_id, kind, before, last, after in devices:
        if last is not None and last >= end:
            last = None  # reported after the range: its newest report says nothing of the range's end
        if before is None and last is not None and last < start:
            before = last.replace(second=0, microsecond=0)
        out.append(DeviceActivity(dev, device_id, kind, sorted(buckets.get(dev, [])), before, after, last,
                                  spans.get(dev, {})))
    return out


def data_time(conn: psycopg.Connection) -> datetime | None:
    """The time the stored data has reached: the 90th percentile of the devices' newest readings
    (a few devices with clocks far ahead, or long dead, do not move it); None without readings."""
    row = conn.execute(
        """SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY newest)
           FROM (SELECT max(l.ts) AS newest FROM latest l JOIN devices d ON d.id = l.device_id
                 WHERE d.removed_at IS NULL GROUP BY l.device_id) n""").fetchone()
    return row[0] if row else None


#: Minutes heard are kept this long (the monitor looks back hours; a day before its window at most).
HEARD_KEPT = timedelta(days=8)


def prune_heard(conn: psycopg.Connection, now: datetime) -> int:
    """Forget the minutes heard before ``now - HEARD_KEPT``; return how many rows went."""
    return conn.execute("DELETE FROM device_heard WHERE minute < %s", (now - HEARD_KEPT,)).rowcount


def metric_minutes(conn: psycopg.Connection, site_id: str, metrics: Sequence[str], start: datetime,
                   end: datetime) -> dict[tuple[int, str, str], list[MetricMinute]]:
    """``(device, kind, metric) -> minutes`` (count, min, max) for the stuck-value check."""
    ids = [BY_NAME[m].metric_id for m in metrics]
    out: dict[tuple[int, str, str], list[MetricMinute]] = defaultdict(list)
    for dev, kind, metric_id, bucket, n, lo, hi in conn.execute(
            """SELECT r.device_id, d.kind, r.metric_id, r.bucket, r.n, r.min, r.max
               FROM rollup_1m r JOIN devices d ON d.id = r.device_id
               WHERE d.site_id = %s AND d.removed_at IS NULL AND r.metric_id = ANY(%s)
                 AND r.bucket >= %s AND r.bucket < %s ORDER BY 1, 3, 4""",
            (site_id, ids, start, end)).fetchall():
        out[(dev, kind, BY_ID[metric_id].name)].append(MetricMinute(bucket, n, lo, hi))
    return out


def out_of_range_letters(conn: psycopg.Connection, site_id: str, start: datetime, end: datetime, *,
                         device_time: bool = False) -> dict[int, list[datetime]]:
    """Device -> times of its telemetry refused for a value outside the physical range, in ``[start, end)``:
    receive times, or with ``device_time`` the payloads' own ``ts`` (replays and simulated time, whose
    receive times say nothing of the data's clock; a letter without a readable ``ts`` counts at its receive time)."""
    prefix = f"campus/v1/{site_id}/"
    rows = conn.execute(
        """SELECT d.id, l.received_at, CASE WHEN %(dt)s THEN l.payload END FROM dead_letters l
           JOIN devices d ON d.site_id = %(site)s AND l.topic = %(prefix)s || d.device_id || '/telemetry'
           WHERE l.reason LIKE '%%outside physical range%%' AND starts_with(l.topic, %(prefix)s)
             -- a reading dated from start on was received from 5 min before it on (ingest refuses the future)
             AND l.received_at >= %(start)s - interval '5 minutes' AND (%(dt)s OR l.received_at < %(end)s)""",
        {"site": site_id, "prefix": prefix, "start": start, "end": end, "dt": device_time}).fetchall()
    out: dict[int, list[datetime]] = defaultdict(list)
    for dev, at, payload in rows:
        when = (payload_time(payload) or at) if device_time else at  # a SenML pack: its receive time
        if when is not None and start <= when < end:
            out[dev].append(when)
    return out


def payload_time(payload: bytes | None) -> datetime | None:
    """The ``ts`` of a native JSON telemetry payload (epoch milliseconds or RFC 3339), else None."""
    try:
        raw = orjson.loads(payload) if payload else None
        ts = raw.get("ts") if isinstance(raw, dict) else None
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            return datetime.fromtimestamp(ts / 1000.0, tz=UTC)
        if isinstance(ts, str):
            parsed = datetime.fromisoformat(ts)
            return parsed if parsed.tzinfo else None
    except (orjson.JSONDecodeError, ValueError, OverflowError, OSError):
        return None
    return None


def device_vitals(conn: psycopg.Connection, site_id: str) -> list[dict[str, Any]]:
    """Battery and sequence gaps of each device, with what the monitor saw last time."""
    rows = conn.execute(
        """SELECT d.id, d.device_id, s.battery_pct, coalesce(s.seq_gaps, 0), m.seq_gaps_seen, m.last_gap_at,
                  s.clock_offset_s, s.last_seen, t.received_at, t.payload
           FROM devices d LEFT JOIN device_status s ON s.device_id = d.id
           LEFT JOIN monitor_devices m ON m.device_id = d.id
           LEFT JOIN LATERAL (
             SELECT l.received_at, l.payload FROM dead_letters l
             WHERE l.topic = 'campus/v1/' || d.site_id || '/' || d.device_id || '/telemetry'
               AND (l.reason LIKE '%%is in the future%%' OR l.reason LIKE '%%is older than%%')
               AND l.received_at > coalesce(s.last_seen, '-infinity')
             ORDER BY l.received_at DESC LIMIT 1) t ON true
           WHERE d.site_id = %s AND d.removed_at IS NULL ORDER BY d.id""", (site_id,)).fetchall()
    keys = ("device", "device_id", "battery_pct", "seq_gaps", "seq_gaps_seen", "last_gap_at", "clock_offset_s",
            "last_seen")
    out = []
    for row in rows:
        vitals = dict(zip(keys, row[:8], strict=True))
        refused_at, payload = row[8], row[9]
        sent = payload_time(payload) if refused_at is not None else None
        if sent is not None:  # its newest telemetry was refused for its time: that is its clock now
            vitals["clock_offset_s"] = (sent - refused_at).total_seconds()
        out.append(vitals)
    return out


def remember_seq_gaps(conn: psycopg.Connection, device: int, seen: int, last_gap_at: datetime | None) -> None:
    conn.execute(
        """INSERT INTO monitor_devices (device_id, seq_gaps_seen, last_gap_at) VALUES (%s, %s, %s)
           ON CONFLICT (device_id) DO UPDATE SET seq_gaps_seen = excluded.seq_gaps_seen,
             last_gap_at = excluded.last_gap_at""", (device, seen, last_gap_at))


def rule_overrides(conn: psycopg.Connection, site_id: str) -> dict[str, dict[str, Any]]:
    """Per-site rule overrides stored in the database: rule id -> fields."""
    return {r: dict(p) for r, p in conn.execute(
        "SELECT rule_id, params FROM rule_overrides WHERE site_id = %s ORDER BY rule_id", (site_id,)).fetchall()}


@dataclass(frozen=True, slots=True)
class SiteRules:
    """What a site stores of its standards: its climate zone (None: not set) and its rule overrides."""

    climate_zone: str | None
    overrides: dict[str, dict[str, Any]]


def site_rules(conn: psycopg.Connection, site_id: str) -> SiteRules:
    """:func:`climate_zone` and :func:`rule_overrides` of ``site_id`` in one statement (a chart or a floor
    plan reads them on every refresh)."""
    row = conn.execute(
        """SELECT (SELECT climate_zone FROM sites WHERE site_id = %(site)s),
                  (SELECT coalesce(jsonb_object_agg(rule_id, params), '{}') FROM rule_overrides
                    WHERE site_id = %(site)s)""",
        {"site": site_id}).fetchone()
    zone, overrides = row if row else (None, {})
    return SiteRules(zone, {r: dict(p) for r, p in sorted(overrides.items())})


def set_rule_override(conn: psycopg.Connection, site_id: str, rule_id: str, params: dict[str, Any] | None) -> None:
    """Store (or with ``None`` remove) a site's override of one rule."""
    if params is None:
        conn.execute("DELETE FROM rule_overrides WHERE site_id = %s AND rule_id = %s", (site_id, rule_id))
        return
    conn.execute(
        """INSERT INTO rule_overrides (site_id, rule_id, params) VALUES (%s, %s, %s)
           ON CONFLICT (site_id, rule_id) DO UPDATE SET params = excluded.params, updated_at = now()""",
        (site_id, rule_id, Jsonb(params)))


def earliest_open_rule_alarm(conn: psycopg.Connection, site_id: str) -> datetime | None:
    """When the oldest open room alarm was raised (its day is evaluated again until it clears)."""
    row = conn.execute("SELECT min(raised_at) FROM alarms WHERE site_id = %s AND state <> 'closed' "
                       "AND room_id IS NOT NULL AND device_id IS NULL", (site_id,)).fetchone()
    return row[0] if row else None
