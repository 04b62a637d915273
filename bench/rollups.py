"""Benchmark (TimescaleDB): rollups kept on write against hierarchical continuous aggregates.

Two databases on the same TimescaleDB server get the same readings (``--rooms`` environment
sensors with four metrics, one message a ``--step`` seconds over ``--days`` days up to now,
written oldest first in batches of ``--batch`` rows through the ingest writer, the two
databases taking turns batch by batch so both see the same machine):

- ``on_write``: the twin as it is: each batch's statement also upserts ``rollup_1m`` and
  ``rollup_1h`` (count, sum, min, max) for the rows it really inserted.
- ``caggs``: the same statement without the rollups; continuous aggregates do that work:
  ``rollup_1m_cagg`` (1 minute, from ``readings``) and ``rollup_1h_cagg`` (1 hour, from
  ``rollup_1m_cagg``: hierarchical), both real-time (``materialized_only = false``), with
  refresh policies (1 minute and 1 hour), and an index on the chart's key ``(device_id,
  metric_id, bucket)`` as the rollup tables have (their primary key). Background jobs are not relied on: the bench
  refreshes both aggregates itself every ``--refresh-every`` batches (the simulated time of a
  refreshes ``rollup_1m_cagg`` every ``--refresh-rows`` rows written (the default is about a
  minute of the 1+13-school network: a few hundred messages a second, a few metrics each) and
  ``rollup_1h_cagg`` when an hour of readings is complete, and counts that time as ingest work.

Then the dashboard's chart query (a room, a metric, mean/min/max per bucket) is timed on both:
the last day in 1-minute buckets and the whole span in 1-hour buckets, median of ``--repeat``,
with the newest hour not yet materialised (as a policy's end offset leaves it), and the answers
are compared (they must be equal).

The chart is timed once more with the aggregates set to ``materialized_only`` (the newest minute or
hour missing from the chart, which the twin does not accept), to show where their time goes.

Prints one JSON object (progress on stderr). Ratios are caggs / on_write: above 1 means the
continuous aggregates are faster for ingest (rows/s), below 1 faster for charts (seconds)::

    CAMPUS_TWIN_DATABASE_URL=postgresql://postgres@host/postgres python bench/rollups.py
    python bench/rollups.py --tiny --database-url postgresql://...   # smoke size
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers: the small twin the tests use

from tests.helpers import small_twin
from twin.metrics import BY_NAME
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter, merge_sql
from twin.storage.schema import inspect_backend, migrate

METRICS = [BY_NAME[m].metric_id for m in ("co2", "temperature", "humidity", "illuminance")]

CAGGS = (
    """CREATE MATERIALIZED VIEW rollup_1m_cagg
       WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
       SELECT device_id, metric_id, time_bucket(INTERVAL '1 minute', ts) AS bucket,
              count(*) AS n, sum(value) AS sum, min(value) AS min, max(value) AS max
       FROM readings GROUP BY 1, 2, 3 WITH NO DATA""",
    """CREATE MATERIALIZED VIEW rollup_1h_cagg
       WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
       SELECT device_id, metric_id, time_bucket(INTERVAL '1 hour', bucket) AS bucket,
              sum(n)::bigint AS n, sum(sum) AS sum, min(min) AS min, max(max) AS max
       FROM rollup_1m_cagg GROUP BY 1, 2, 3 WITH NO DATA""",
    # the chart's key, as the rollup tables' primary key (the aggregates' own indexes are one column + bucket)
    "CREATE INDEX rollup_1m_cagg_key ON rollup_1m_cagg (device_id, metric_id, bucket)",
    "CREATE INDEX rollup_1h_cagg_key ON rollup_1h_cagg (device_id, metric_id, bucket)",
    """SELECT add_continuous_aggregate_policy('rollup_1m_cagg', start_offset => INTERVAL '1 day',
         end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute')""",
    """SELECT add_continuous_aggregate_policy('rollup_1h_cagg', start_offset => INTERVAL '3 days',
         end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour')""",
)

CHART = """SELECT r.bucket, sum(r.sum) / sum(r.n), min(r.min), max(r.max)
    FROM {} r JOIN devices d ON d.id = r.device_id
    WHERE d.room_id = %s AND r.metric_id = %s AND r.bucket >= %s AND r.bucket < %s
    GROUP BY r.bucket ORDER BY r.bucket"""


class CaggWriter(ReadingWriter):
    """The ingest writer without the rollup upserts: continuous aggregates keep the rollups."""

    merge = merge_sql(rollups=False)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def scratch_database(admin_url: str, label: str) -> Iterator[str]:
    name = f"campus_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def prepare(url: str, rooms: int, *, caggs: bool) -> None:
    with psycopg.connect(url) as conn:
        found = inspect_backend(conn)
        if found.name != "timescaledb" or found.problem:
            raise SystemExit(f"bench/rollups.py needs a TimescaleDB server: {found.problem or 'this one has none'}")
        migrate(conn)
        conn.commit()
        save_model(conn, small_twin("bench", rooms=rooms))
        conn.commit()
    if caggs:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in CAGGS:
                conn.execute(statement)
            # the bench refreshes itself (background jobs may not run on every build: see docs/storage.md)
            for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                       "WHERE proc_name IN ('policy_refresh_continuous_aggregate', "
                                       "'policy_compression', 'policy_retention')").fetchall():
                conn.execute("SELECT alter_job(%s, scheduled => false)", (job,))
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                       "WHERE proc_name IN ('policy_compression', 'policy_retention')").fetchall():
                conn.execute("SELECT alter_job(%s, scheduled => false)", (job,))


def batches(devices: list[int], start: datetime, end: datetime, step: timedelta, size: int) -> Iterator[list[Any]]:
    """Readings oldest first, ``size`` rows a batch (whole messages: all metrics of a device at once)."""
    batch: list[Any] = []
    ts, k = start, 0
    while ts < end:
        for dev in devices:
            batch.extend((ts, dev, metric, 400.0 + (k * 7 + dev * 13 + metric) % 600) for metric in METRICS)
        if len(batch) >= size:
            yield batch
            batch = []
        ts += step
        k += 1
    if batch:
        yield batch


def refresh(conn: psycopg.Connection, until: datetime, *, hourly: bool) -> float:
    """Refresh the 1-minute aggregate (and with ``hourly`` the 1-hour one) up to its policy's end offset
    before ``until``, as the policies would; seconds taken."""
    t0 = time.perf_counter()
    conn.execute("CALL refresh_continuous_aggregate('rollup_1m_cagg', NULL, %s)", (until - timedelta(minutes=1),))
    if hourly:
        conn.execute("CALL refresh_continuous_aggregate('rollup_1h_cagg', NULL, %s)",
                     (until.replace(minute=0, second=0, microsecond=0),))
    return time.perf_counter() - t0


def median_s(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=50, help="environment sensors (and rooms)")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--step", type=float, default=60.0, help="seconds between a sensor's messages")
    parser.add_argument("--batch", type=int, default=2000, help="rows per ingest batch")
    parser.add_argument("--refresh-rows", type=int, default=60_000,
                        help="rows written between refreshes of the 1-minute aggregate")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--tiny", action="store_true", help="3 rooms, 1 day, 3 repeats (smoke test)")
    parser.add_argument("--database-url", default=os.environ.get("CAMPUS_TWIN_DATABASE_URL"),
                        help="a TimescaleDB server (any database on it; scratch databases are made and dropped)")
    args = parser.parse_args()
    if args.tiny:
        args.rooms, args.days, args.repeat = 3, 1.0, 3
    if not args.database_url:
        raise SystemExit("bench/rollups.py needs a TimescaleDB server: --database-url or CAMPUS_TWIN_DATABASE_URL")
    step = timedelta(seconds=args.step)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=args.days)

    with scratch_database(args.database_url, "w") as on_write_url, scratch_database(args.database_url, "c") as caggs_url:
        prepare(on_write_url, args.rooms, caggs=False)
        prepare(caggs_url, args.rooms, caggs=True)
        with psycopg.connect(on_write_url) as conn:
            keys = device_keys(conn)
            server = conn.execute("SELECT current_setting('server_version'), extversion FROM pg_extension "
                                  "WHERE extname = 'timescaledb'").fetchone()
        devices = [keys["bench", f"ENV-{i}"] for i in range(args.rooms)]
        say(f"bench: {args.rooms} sensors x {len(METRICS)} metrics every {args.step:.0f} s for {args.days:g} days; "
            f"refresh every {args.refresh_rows} rows")
        spent = {"on_write": 0.0, "caggs": 0.0, "refresh": 0.0}
        rows = unrefreshed = refreshes = 0
        hour_done = start.replace(minute=0, second=0, microsecond=0)
        with psycopg.connect(on_write_url, autocommit=True) as a, psycopg.connect(caggs_url, autocommit=True) as b:
            writers = {"on_write": ReadingWriter(a), "caggs": CaggWriter(b)}
            for n, batch in enumerate(batches(devices, start, end, step, args.batch), start=1):
                for name, writer in writers.items():
                    t0 = time.perf_counter()
                    with writer.conn.transaction():
                        assert writer.write(batch) == len(batch)
                    spent[name] += time.perf_counter() - t0
                rows += len(batch)
                unrefreshed += len(batch)
                if unrefreshed >= args.refresh_rows:
                    newest = batch[-1][0]
                    hour = newest.replace(minute=0, second=0, microsecond=0)
                    spent["refresh"] += refresh(b, newest, hourly=hour > hour_done)
                    hour_done, unrefreshed, refreshes = max(hour, hour_done), 0, refreshes + 1
                if n % 200 == 0:
                    say(f"  {rows} rows")
            # what a policy with an end offset leaves: the newest minute / hour comes from raw readings
            spent["refresh"] += refresh(b, end, hourly=True)
            refreshes += 1
            for conn in (a, b):
                conn.execute("ANALYZE")

            room = a.execute("SELECT room_id FROM devices WHERE id = %s", (devices[0],)).fetchone()[0]
            room_b = b.execute("SELECT room_id FROM devices WHERE id = %s", (devices[0],)).fetchone()[0]
            charts = {"day_1m": ("rollup_1m", "rollup_1m_cagg", end - timedelta(days=1)),
                      "span_1h": ("rollup_1h", "rollup_1h_cagg", start)}
            result: dict[str, Any] = {
                "server": f"PostgreSQL {server[0]}, TimescaleDB {server[1]}",
                "rows": rows, "sensors": args.rooms, "days": args.days, "batch_rows": args.batch,
                "refresh_rows": args.refresh_rows, "refreshes": refreshes,
                "ingest_rows_per_s_on_write": rows / spent["on_write"],
                "ingest_rows_per_s_caggs": rows / spent["caggs"],
                "ingest_rows_per_s_caggs_with_refresh": rows / (spent["caggs"] + spent["refresh"]),
                "refresh_s": spent["refresh"],
            }
            result["ingest_ratio"] = result["ingest_rows_per_s_caggs"] / result["ingest_rows_per_s_on_write"]
            result["ingest_ratio_with_refresh"] = (result["ingest_rows_per_s_caggs_with_refresh"]
                                                   / result["ingest_rows_per_s_on_write"])
            same = True
            for label, (table, view, since) in charts.items():
                params = (METRICS[0], since, end + timedelta(minutes=1))
                qa = sql.SQL(CHART).format(sql.Identifier(table))
                qb = sql.SQL(CHART).format(sql.Identifier(view))
                answer_a = a.execute(qa, (room, *params)).fetchall()
                answer_b = b.execute(qb, (room_b, *params)).fetchall()
                same = same and len(answer_a) == len(answer_b) > 0 and all(
                    x[0] == y[0] and abs(x[1] - y[1]) < 1e-9 and x[2:] == y[2:] for x, y in zip(answer_a, answer_b))
                ta = median_s(lambda q=qa, p=(room, *params): a.execute(q, p).fetchall(), args.repeat)
                tb = median_s(lambda q=qb, p=(room_b, *params): b.execute(q, p).fetchall(), args.repeat)
                result[f"chart_{label}_points"] = len(answer_a)
                result[f"chart_{label}_s_on_write"] = ta
                result[f"chart_{label}_s_caggs"] = tb
                result[f"chart_{label}_ratio"] = tb / ta
            result["same_answers"] = same
            # the same aggregates without their real-time part: the newest minute / hour is missing from the
            # chart, which is what the twin does not accept (shown only to say where the time goes)
            for view in ("rollup_1m_cagg", "rollup_1h_cagg"):
                b.execute(sql.SQL("ALTER MATERIALIZED VIEW {} SET (timescaledb.materialized_only = true)").format(
                    sql.Identifier(view)))
            for label, (_, view, since) in charts.items():
                params = (room_b, METRICS[0], since, end + timedelta(minutes=1))
                qb = sql.SQL(CHART).format(sql.Identifier(view))
                result[f"chart_{label}_s_caggs_materialized_only"] = median_s(
                    lambda q=qb, p=params: b.execute(q, p).fetchall(), args.repeat)
                result[f"chart_{label}_ratio_materialized_only"] = (
                    result[f"chart_{label}_s_caggs_materialized_only"] / result[f"chart_{label}_s_on_write"])
            result["rollup_bytes_on_write"] = int(a.execute(
                "SELECT pg_total_relation_size('rollup_1m') + pg_total_relation_size('rollup_1h')").fetchone()[0])
            result["rollup_bytes_caggs"] = int(b.execute(
                """SELECT sum(hypertable_size(format('%I.%I', materialization_hypertable_schema,
                                                     materialization_hypertable_name)::regclass))
                   FROM timescaledb_information.continuous_aggregates""").fetchone()[0] or 0)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
