"""Row counts and server facts for ``campus-twin db status``."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from twin.storage.schema import LATEST_VERSION, inspect_backend, schema_version

TABLES = (
    "sites", "buildings", "storeys", "rooms", "devices", "metrics", "readings", "latest",
    "rollup_1m", "rollup_1h", "device_status", "alarms", "dead_letters", "bim_imports",
    "alarm_events", "kpi_daily",
)


def status(conn: psycopg.Connection) -> dict[str, Any]:
    """Backend (and what keeps its TimescaleDB from working), server version, schema version and exact
    row counts per table."""
    found = inspect_backend(conn)
    version = schema_version(conn)
    counts: dict[str, int | None] = {}
    for table in TABLES:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:  # type: ignore[index]
            counts[table] = None
            continue
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        counts[table] = int(row[0]) if row else 0
    return {
        "backend": found.name,
        "timescaledb": found.timescaledb,
        "problem": found.problem,
        "server_version": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
        "schema_version": version,
        "schema_latest": LATEST_VERSION,
        "tables": counts,
    }
