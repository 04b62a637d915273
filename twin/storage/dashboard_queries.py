"""Small reads the dashboard needs that the other storage modules do not offer."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def site(conn: psycopg.Connection, site_id: str) -> dict[str, Any] | None:
    """One site's ``site_id``, ``name`` and ``role``, or ``None`` when unknown."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT site_id, name, role FROM sites WHERE site_id = %s", (site_id,)).fetchone()
