"""The audit log: who logged in (or failed to), acknowledged, commanded, uploaded, changed users.

Every entry has an outcome: ``ok``, ``denied`` (the role may not) or ``failed``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

OUTCOMES = ("ok", "denied", "failed")


def record(conn: psycopg.Connection, action: str, outcome: str, *, username: str | None = None,
           target: str | None = None, detail: dict[str, Any] | None = None, remote_addr: str | None = None) -> None:
    """Append one entry (committed with the caller's transaction)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} not one of {OUTCOMES}")
    conn.execute(
        """INSERT INTO audit_log (username, action, outcome, target, detail, remote_addr)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (username, action, outcome, target, Jsonb(detail) if detail is not None else None, remote_addr),
    )


def recent(conn: psycopg.Connection, limit: int = 100, *, action: str | None = None,
           username: str | None = None) -> list[dict[str, Any]]:
    """The latest entries, newest first (only ``action`` / ``username`` when given)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT id, ts, username, action, outcome, target, detail, remote_addr FROM audit_log
               WHERE (%(action)s::text IS NULL OR action = %(action)s)
                 AND (%(username)s::text IS NULL OR username = %(username)s)
               ORDER BY id DESC LIMIT %(limit)s""",
            {"action": action, "username": username, "limit": limit},
        ).fetchall()
