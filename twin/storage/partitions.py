"""Monthly range partitions of ``readings`` on plain PostgreSQL (TimescaleDB makes chunks itself)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql


def month_start(ts: datetime) -> datetime:
    """First instant of the UTC month containing ``ts``."""
    ts = ts.astimezone(UTC)
    return datetime(ts.year, ts.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"readings_y{start.year:04d}m{start.month:02d}"


def months_between(first: datetime, last: datetime) -> list[datetime]:
    """Month starts covering ``first``..``last`` inclusive."""
    months, cur = [], month_start(first)
    end = month_start(last)
    while cur <= end:
        months.append(cur)
        cur = next_month(cur)
    return months


def ensure_partitions(conn: psycopg.Connection, first: datetime, last: datetime) -> list[str]:
    """Create the monthly partitions covering ``first``..``last``; return the names created."""
    created = []
    for start in months_between(first, last):
        name = partition_name(start)
        exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        if exists and exists[0]:
            continue
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF readings FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(name), sql.Literal(start), sql.Literal(next_month(start))
            )
        )
        created.append(name)
    return created


def list_partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname"""
    ).fetchall()
    return [r[0] for r in rows]
