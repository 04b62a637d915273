"""Readings: batched writes with COPY, latest values, rollups and time-series reads.

One call of :func:`write_batch` is one transaction's worth of work: COPY the rows into
a session staging table, insert them into ``readings`` skipping duplicates of the
unique key ``(device_id, metric_id, ts)``, and feed only the rows really inserted into
``latest``, ``rollup_1m``, ``rollup_1h`` and ``device_status.last_seen``. Redelivered
messages therefore change nothing. The same statement records the minute each device was
heard (``device_heard``, receive time: offline is judged on it), the first and last reading time of
each device in each minute (``device_minutes``: a silence known to the second), and how far the device's
newest reading is from the time it was stored (``device_status.clock_offset_s``: clock skew).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from twin.metrics import BY_ID, BY_NAME
from twin.storage import partitions
from twin.storage.schema import require_usable

Row = tuple[datetime, int, int, float]  # ts, devices.id, metric_id, value

_STAGING = """CREATE TEMP TABLE IF NOT EXISTS staging_readings
    (ts timestamptz NOT NULL, device_id integer NOT NULL, metric_id smallint NOT NULL,
     value double precision NOT NULL) ON COMMIT DELETE ROWS"""

_ROLLUP = """
  {name} AS (
    INSERT INTO {table} AS t (device_id, metric_id, bucket, n, sum, min, max)
    SELECT device_id, metric_id, date_trunc('{unit}', ts, 'UTC'), count(*), sum(value), min(value), max(value)
    FROM ins GROUP BY 1, 2, 3
    ON CONFLICT (device_id, metric_id, bucket) DO UPDATE SET n = t.n + excluded.n, sum = t.sum + excluded.sum,
      min = least(t.min, excluded.min), max = greatest(t.max, excluded.max)
  )"""

_INSERT = """WITH ins AS (
    INSERT INTO readings (ts, device_id, metric_id, value)
    SELECT DISTINCT ON (device_id, metric_id, ts) ts, device_id, metric_id, value
    FROM staging_readings ORDER BY device_id, metric_id, ts
    ON CONFLICT (device_id, metric_id, ts) DO NOTHING
    RETURNING ts, device_id, metric_id, value
  ),"""

_LATEST_AND_STATUS = """
  l AS (
    INSERT INTO latest AS t (device_id, metric_id, ts, value)
    SELECT DISTINCT ON (device_id, metric_id) device_id, metric_id, ts, value
    FROM ins ORDER BY device_id, metric_id, ts DESC
    ON CONFLICT (device_id, metric_id) DO UPDATE SET ts = excluded.ts, value = excluded.value
    WHERE excluded.ts >= t.ts
  ),
  dm AS (
    INSERT INTO device_minutes AS t (device_id, minute, first_ts, last_ts)
    SELECT device_id, date_trunc('minute', ts, 'UTC'), min(ts), max(ts) FROM ins GROUP BY 1, 2
    ON CONFLICT (device_id, minute) DO UPDATE SET first_ts = least(t.first_ts, excluded.first_ts),
      last_ts = greatest(t.last_ts, excluded.last_ts)
  ),
  s AS (
    -- updated_at proposes the device's newest reading time: an offline device (its own or its
    -- gateway's last will) is online again once a reading newer than that status arrives
    INSERT INTO device_status AS t (device_id, state, last_seen, updated_at, clock_offset_s)
    SELECT b.device_id, 'online', now(), b.newest, o.offset_s
    FROM (SELECT device_id, max(ts) AS newest FROM staging_readings GROUP BY device_id) b
    LEFT JOIN ({offsets}) o ON o.device_id = b.device_id
    ON CONFLICT (device_id) DO UPDATE SET last_seen = now(), updated_at = now(),
      clock_offset_s = coalesce(excluded.clock_offset_s, t.clock_offset_s),
      state = CASE WHEN t.state = 'unknown' OR (t.state = 'offline' AND excluded.updated_at > t.updated_at)
                   THEN 'online' ELSE t.state END
  )
SELECT count(*) FROM ins"""

#: Live telemetry (ingest): the minute each device was heard, and how far its newest new reading is from now.
_HEARD = """
  heard AS (
    INSERT INTO device_heard AS t (device_id, minute, first_at, last_at)
    SELECT DISTINCT device_id, date_trunc('minute', now(), 'UTC'), now(), now() FROM ins
    ON CONFLICT (device_id, minute) DO UPDATE SET last_at = excluded.last_at
  ),"""
_OFFSETS = {True: "SELECT device_id, extract(epoch FROM max(ts) - now()) AS offset_s FROM ins GROUP BY device_id",
            False: "SELECT NULL::integer AS device_id, NULL::double precision AS offset_s WHERE false"}


def merge_sql(*, rollups: bool = True, live: bool = True) -> str:
    """The statement that moves a staged batch into ``readings`` and ``latest`` and ``device_status``, and
    with ``rollups`` into ``rollup_1m`` and ``rollup_1h`` (``bench/rollups.py`` measures without them,
    continuous aggregates doing that work). ``live``: telemetry as it arrives (ingest): it also records the
    minute each device was heard and its clock offset; a backfill of history says neither."""
    steps = [_ROLLUP.format(name="m", table="rollup_1m", unit="minute") + ",",
             _ROLLUP.format(name="h", table="rollup_1h", unit="hour") + ","] if rollups else []
    return (_INSERT + "".join(steps) + (_HEARD if live else "")
            + _LATEST_AND_STATUS.replace("{offsets}", _OFFSETS[live]))


_MERGE = merge_sql()
_HISTORY = merge_sql(live=False)


#: How often a writer on plain PostgreSQL makes sure the current and the next month have a partition.
AHEAD_EVERY_S = 3600.0


class ReadingWriter:
    """Writes batches of readings on one connection; finds out once how ``readings`` is laid out.

    ``live=False`` for history written at once (a backfill): no minute heard, no clock offset.

    Use an autocommit connection and wrap each batch in ``conn.transaction()``, so that
    the batch is one real transaction (not a savepoint inside an implicit one).

    The backend is read from the database when the writer is made (:func:`twin.storage.schema.inspect_backend`),
    so make one writer per connection. A database whose TimescaleDB cannot be used (not preloaded,
    its files missing) raises :class:`twin.database.BackendUnusable` here, before a row could go
    where TimescaleDB would never show it.

    On plain PostgreSQL (``partitioned``; TimescaleDB makes its own chunks) a batch's months get
    their partitions, and at most every ``ahead_every_s`` the current and the next month too, so
    a month boundary never finds the partition missing (:func:`partitions.ensure_partitions`,
    safe with any number of writers). A month is remembered once seen committed: a partition
    made in a batch that is rolled back is made again by the next.
    """

    merge = _MERGE

    def __init__(self, conn: psycopg.Connection, *, ahead_every_s: float = AHEAD_EVERY_S, live: bool = True) -> None:
        self.conn = conn
        if not live:  # history written at once (a backfill): heard by nobody, no clock to judge
            self.merge = _HISTORY
        found = require_usable(conn)
        self.backend = found.name
        self.partitioned = found.partitioned
        self.ahead_every_s = ahead_every_s
        self._months: set[datetime] = set()  # partitions seen committed
        self._made: dict[datetime, str] = {}  # partitions this writer made: in which transaction (its id)
        self._ahead_due = 0.0  # time.monotonic() of the next check of the current and next month
        conn.execute(_STAGING)
        conn.commit()

    def write(self, rows: Sequence[Row]) -> int:
        """Stage and merge ``rows`` inside the caller's transaction; return rows newly stored."""
        if not rows:
            return 0
        if self.partitioned:
            self._ensure_partitions(rows)
        # One text buffer for the whole batch: several times cheaper than write_row per row.
        # str(datetime) is ISO 8601 with its offset; repr(float) round-trips exactly.
        text: dict[datetime, str] = {}  # the rows of one message share a timestamp: format it once
        data = "".join([f"{text.get(ts) or text.setdefault(ts, str(ts))}\t{dev}\t{met}\t{float(val)!r}\n"
                        for ts, dev, met, val in rows]).encode()
        with self.conn.cursor() as cur:
            with cur.copy("COPY staging_readings (ts, device_id, metric_id, value) FROM STDIN") as copy:
                copy.write(data)
            cur.execute(self.merge)
            inserted = cur.fetchone()
        return int(inserted[0]) if inserted else 0

    def _ensure_partitions(self, rows: Sequence[Row]) -> None:
        first = min(r[0] for r in rows)
        last = max(r[0] for r in rows)
        start = partitions.month_start(first)
        if start == partitions.month_start(last):  # the usual batch: one month
            months = {start}
        else:
            months = {partitions.month_start(ts) for ts in {r[0] for r in rows}}
        now = time.monotonic()
        if now >= self._ahead_due:
            this = partitions.month_start(datetime.now(UTC))
            ahead = {this, partitions.next_month(this)}
            months |= ahead
            if ahead <= self._months:
                self._ahead_due = now + self.ahead_every_s
        for month in sorted(months - self._months):
            if partitions.ensure_partitions(self.conn, month, month):
                self._made[month] = self._transaction()
            elif month not in self._made or self._made[month] != self._transaction():
                self._made.pop(month, None)
                self._months.add(month)  # it exists, and not only in this (uncommitted) transaction

    def _transaction(self) -> str:
        row = self.conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        return str(row[0]) if row else ""


def room_latest(conn: psycopg.Connection, room_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """Latest value per room and metric (mean over the room's devices reporting it).

    Metric names come from the catalogue in memory, so the query does not join ``metrics``.
    """
    return means_by_room(conn.execute(
        """SELECT d.room_id, l.metric_id, avg(l.value) FROM latest l JOIN devices d ON d.id = l.device_id
           WHERE d.room_id = ANY(%s) AND d.removed_at IS NULL GROUP BY 1, 2""",
        (list(room_ids),),
    ).fetchall())


def means_by_room(rows: Sequence[Sequence[Any]]) -> dict[int, dict[str, float]]:
    """``(room_id, metric_id, mean)`` rows as ``{room_id: {metric name: mean}}`` (unknown metrics left out)."""
    out: dict[int, dict[str, float]] = {}
    for room_id, metric_id, value in rows:
        metric = BY_ID.get(metric_id)
        if metric is not None:
            out.setdefault(room_id, {})[metric.name] = float(value)
    return out


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The latest value of one metric of one device (``ts`` UTC)."""

    device_id: str
    kind: str
    metric: str
    unit: str
    ts: datetime
    value: float


def room_latest_detail(conn: psycopg.Connection, room_id: int) -> list[LatestValue]:
    """Every latest value in a room: device, metric, unit, time, value."""
    with conn.cursor(row_factory=class_row(LatestValue)) as cur:
        return cur.execute(
            """SELECT d.device_id, d.kind, m.name AS metric, m.unit, l.ts, l.value
               FROM latest l JOIN devices d ON d.id = l.device_id JOIN metrics m ON m.metric_id = l.metric_id
               WHERE d.room_id = %s AND d.removed_at IS NULL ORDER BY d.device_id, m.metric_id""",
            (room_id,),
        ).fetchall()


def room_series(
    conn: psycopg.Connection, room_id: int, metric: str, start: datetime, end: datetime, *, hourly: bool = False
) -> list[tuple[datetime, float, float, float]]:
    """``(bucket, mean, min, max)`` of a metric in a room from the rollups, oldest first (none for an unknown metric)."""
    table = sql.Identifier("rollup_1h" if hourly else "rollup_1m")
    known = BY_NAME.get(metric)
    if known is None:
        return []
    rows = conn.execute(
        sql.SQL("""SELECT r.bucket, sum(r.sum) / sum(r.n), min(r.min), max(r.max)
            FROM {} r JOIN devices d ON d.id = r.device_id
            WHERE d.room_id = %s AND r.metric_id = %s AND r.bucket >= %s AND r.bucket < %s
            GROUP BY r.bucket ORDER BY r.bucket""").format(table),
        (room_id, known.metric_id, start, end),
    ).fetchall()
    return [(b, float(mean), float(lo), float(hi)) for b, mean, lo, hi in rows]
