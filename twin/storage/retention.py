"""Retention of raw readings: what the policy drops, and dropping it.

Plain PostgreSQL: whole monthly partitions of ``readings`` that end before the cutoff
(now minus :data:`twin.storage.schema.RETENTION`) are dropped. TimescaleDB: the
retention policy of migration 3 drops chunks in the background; applying makes sure
the policy exists and drops what is already due (``drop_chunks``). Rollups and latest
values are kept.
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
    """What the retention policy would drop now (nothing is changed)."""
    now = now or datetime.now(UTC)
    cutoff = now - retention
    kind = backend(conn)
    if kind == "timescaledb":  # pragma: no cover - TimescaleDB cannot be installed here
        rows = conn.execute(
            """SELECT job_id, proc_name, schedule_interval::text, config::text FROM timescaledb_information.jobs
               WHERE hypertable_name = 'readings' ORDER BY job_id""").fetchall()
        policies = tuple({"job_id": r[0], "proc": r[1], "schedule": r[2], "config": r[3]} for r in rows)
        return RetentionPlan(kind, retention.days, cutoff, policies=policies)
    estimates = dict(conn.execute(
        """SELECT c.relname, c.reltuples::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'readings'::regclass""").fetchall())
    drop, keep = [], []
    for name in list_partitions(conn):
        bounds = partition_bounds(name)
        if bounds is None:
            continue
        part = Partition(name, bounds[0], bounds[1], int(estimates.get(name, -1)))
        (drop if part.end <= cutoff else keep).append(part)
    return RetentionPlan(kind, retention.days, cutoff, tuple(drop), tuple(keep))


def apply(conn: psycopg.Connection, p: RetentionPlan) -> list[str]:
    """Carry out ``p``: drop the partitions (plain) or the due chunks (TimescaleDB); return what was dropped."""
    if p.backend == "timescaledb":  # pragma: no cover - TimescaleDB cannot be installed here
        interval = timedelta(days=p.retention_days)
        conn.execute("SELECT add_retention_policy('readings', %s::interval, if_not_exists => TRUE)", (interval,))
        rows = conn.execute("SELECT drop_chunks('readings', older_than => %s::interval)", (interval,)).fetchall()
        return [str(r[0]) for r in rows]
    dropped = []
    for part in p.drop:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(part.name)))
        dropped.append(part.name)
    return dropped
