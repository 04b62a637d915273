"""MQTT accounts: one per device (username = device id), one per site gateway, ``ingest`` and ``dashboard``.

Only Mosquitto's ``$7$`` hash of each password is stored, so the broker's password file can be
rewritten from here at any time; the passwords themselves are shown once, when issued.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def site_devices(conn: psycopg.Connection, site_id: str) -> list[dict[str, Any]]:
    """The site's devices (not removed): ``id``, ``device_id``, ``kind``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, device_id, kind FROM devices WHERE site_id = %s AND removed_at IS NULL ORDER BY device_id",
            (site_id,)).fetchall()


def accounts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every account (username, role, site_id, password_hash), services first, then by site and name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT a.username, a.role, a.site_id, a.password_hash, a.issued_at FROM mqtt_accounts a
               LEFT JOIN devices d ON d.id = a.device_id
               WHERE a.device_id IS NULL OR d.removed_at IS NULL
               ORDER BY a.site_id NULLS FIRST, a.role, a.username""").fetchall()


def owner(conn: psycopg.Connection, username: str) -> tuple[str, str | None] | None:
    """``(role, site_id)`` of an existing account, or None."""
    row = conn.execute("SELECT role, site_id FROM mqtt_accounts WHERE username = %s", (username,)).fetchone()
    return (row[0], row[1]) if row else None


def save_account(conn: psycopg.Connection, username: str, role: str, password_hash: str, *,
                 site_id: str | None = None, device_key: int | None = None) -> None:
    """Insert or replace an account's hash (a re-issue rotates the password)."""
    conn.execute(
        """INSERT INTO mqtt_accounts (username, role, site_id, device_id, password_hash) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (username) DO UPDATE SET role = excluded.role, site_id = excluded.site_id,
             device_id = excluded.device_id, password_hash = excluded.password_hash, issued_at = now()""",
        (username, role, site_id, device_key, password_hash),
    )
