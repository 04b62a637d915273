"""Retention of raw readings: what the policy drops, and dropping it.

Whole pieces of ``readings`` that end before the cutoff (now minus
:data:`twin.storage.schema.RETENTION`) are dropped: monthly partitions on plain PostgreSQL,
1-day chunks on TimescaleDB. There the retention policy of migration 3 drops chunks in the
background; applying makes sure the policy exists and drops what is already due
(``drop_chunks``). Rollups and latest values are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from twin.storage.partitions import list_partitions, next_month
from twin.storage.schema import RETENTION, backend

_NAME = re.compile(r"^readings_y(\d{4})m(\d{2})$")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime
    end: datetime
    rows: int  # estimate (planner statistics), -1 when unknown


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    backend: str
    retention_days: int
    cutoff: datetime
    drop: tuple[Partition, ...] = ()
    keep: tuple[Partition, ...] = ()
    policies: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def partition_bounds(name: str) -> tuple[datetime, datetime] | None:
    """``readings_y2025m03`` -> (2025-03-01, 2025-04-01) in UTC; None for other names."""
    m = _NAME.match(name)
    if not m:
        return None
    start = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)
    return start, next_month(start)


def plan(conn: psycopg.Connection, now: datetime | None = None, retention: timedelta = RETENTION) -> RetentionPlan:
    """What the retention policy would drop now (nothing is changed).

    The same for both backends: the whole partitions or chunks of ``readings`` that end at or before the
    cutoff are due, the others kept. On TimescaleDB the policy jobs on ``readings`` are listed too, with
    how their last background run went.
    """
    now = now or datetime.now(UTC)
    cutoff = now - retention
    kind = backend(conn)
    if kind == "timescaledb":
        parts = [Partition(f"{schema}.{name}", start, end, int(rows)) for schema, name, start, end, rows in conn.execute(
            """SELECT c.chunk_schema, c.chunk_name, c.range_start, c.range_end, coalesce(k.reltuples, -1)::bigint
               FROM timescaledb_information.chunks c
               LEFT JOIN pg_namespace n ON n.nspname = c.chunk_schema
               LEFT JOIN pg_class k ON k.relnamespace = n.oid AND k.relname = c.chunk_name
               WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = 'readings'
               ORDER BY c.range_start""").fetchall()]
        jobs = conn.execute(
            """SELECT j.job_id, j.proc_name, j.schedule_interval::text, j.config::text, j.scheduled,
                      s.last_run_status, s.total_failures, s.next_start
               FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.job_stats s USING (job_id)
               WHERE j.hypertable_name = 'readings' ORDER BY j.job_id""").fetchall()
        policies = tuple({"job_id": r[0], "proc": r[1], "schedule": r[2], "config": r[3], "scheduled": r[4],
                          "last_run_status": r[5], "total_failures": r[6], "next_start": r[7]} for r in jobs)
    else:
        estimates = dict(conn.execute(
            """SELECT c.relname, c.reltuples::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'readings'::regclass""").fetchall())
        parts, policies = [], ()
        for name in list_partitions(conn):
            bounds = partition_bounds(name)
            if bounds is not None:
                parts.append(Partition(name, bounds[0], bounds[1], int(estimates.get(name, -1))))
    drop = tuple(p for p in parts if p.end <= cutoff)
    keep = tuple(p for p in parts if p.end > cutoff)
    return RetentionPlan(kind, retention.days, cutoff, drop, keep, policies)


def apply(conn: psycopg.Connection, p: RetentionPlan) -> list[str]:
    """Carry out ``p``: drop its due partitions (plain) or chunks (TimescaleDB); return what was dropped.

    On TimescaleDB the retention policy is made sure of too (it is what drops chunks from then on), and
    ``drop_chunks`` is given the plan's cutoff, so exactly the chunks the plan showed are dropped.
    """
    if p.backend == "timescaledb":
        interval = timedelta(days=p.retention_days)
        conn.execute("SELECT add_retention_policy('readings', %s::interval, if_not_exists => TRUE)", (interval,))
        if not p.drop:
            return []
        rows = conn.execute("SELECT drop_chunks('readings', older_than => %s::timestamptz)", (p.cutoff,)).fetchall()
        return [str(r[0]) for r in rows]
    dropped = []
    for part in p.drop:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(part.name)))
        dropped.append(part.name)
    return dropped
