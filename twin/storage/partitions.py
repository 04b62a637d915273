"""Monthly range partitions of ``readings`` on plain PostgreSQL (TimescaleDB makes chunks itself).

Migration makes the months two months back and ahead; the running ingest makes the current and
the next month ahead, and any month a reading needs, as it writes (:class:`twin.storage.readings.ReadingWriter`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import psycopg
from psycopg import errors, sql

log = logging.getLogger(__name__)

#: Transaction-level advisory lock around a month's check-and-create (``pg_advisory_xact_lock``):
#: ingest workers on several hosts may meet the same new month at once.
PARTITION_LOCK = 0x52454144  # "READ"


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
    """Create the monthly partitions covering ``first``..``last`` that are missing; return the names created.

    Safe from any number of sessions and hosts at once: each missing month is checked again and
    made under a transaction-level advisory lock (:data:`PARTITION_LOCK`), and a creator that took
    no lock (an older release) losing the race is tolerated. The month is made as a table, then
    attached to ``readings``: attaching locks ``readings`` in SHARE UPDATE EXCLUSIVE mode, which
    lets inserts and reads go on (``PARTITION OF`` would lock it ACCESS EXCLUSIVE). Inside a
    caller's transaction the lock, and the new partition's visibility, last until it commits.
    """
    created = []
    for start in months_between(first, last):
        if not _exists(conn, partition_name(start)) and _create(conn, start):
            created.append(partition_name(start))
    return created


def _exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _create(conn: psycopg.Connection, start: datetime) -> bool:
    """Make ``start``'s partition unless another session made it first; whether this one made it."""
    name = sql.Identifier(partition_name(start))
    try:
        with conn.transaction():  # a savepoint inside the caller's transaction: a lost race leaves it usable
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            if _exists(conn, partition_name(start)):
                return False
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE readings INCLUDING ALL EXCLUDING INDEXES)").format(name))
            conn.execute(sql.SQL("ALTER TABLE readings ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                name, sql.Literal(start), sql.Literal(next_month(start))))
    except (errors.DuplicateTable, errors.UniqueViolation):  # made meanwhile by a session without the lock
        log.info("readings partition made by another session name=%s", partition_name(start))
        return False
    log.info("readings partition created name=%s", partition_name(start))
    return True


def list_partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname"""
    ).fetchall()
    return [r[0] for r in rows]
