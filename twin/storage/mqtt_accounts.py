"""MQTT accounts: one per device (username = device id), one per site gateway, the services (``ingest``,
``dashboard``, ``monitor``), and ``integration`` accounts of the sites' adapters: one per enabled adapter
subscription (``adapter`` and ``prefix`` name its ``site_adapters`` row) and one per bound Tasmota topic
(``adapter`` ``tasmota``, no prefix, the device's key).

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


#: An account still in use: not of a removed device; an adapter subscription's while the site has it
#: enabled; a Tasmota topic's while it is bound to its device and the site has a Tasmota adapter.
_LIVE = """(a.device_id IS NULL OR d.removed_at IS NULL)
           AND (a.role <> 'integration'
                OR (a.prefix IS NOT NULL AND EXISTS (
                      SELECT 1 FROM site_adapters s
                      WHERE s.site_id = a.site_id AND s.adapter = a.adapter AND s.prefix = a.prefix))
                OR (a.adapter = 'tasmota' AND EXISTS (
                      SELECT 1 FROM device_identities i
                      WHERE i.kind = 'tasmota' AND i.hardware_id = a.username AND i.device_id = a.device_id)
                    AND EXISTS (SELECT 1 FROM site_adapters s WHERE s.site_id = a.site_id AND s.adapter = 'tasmota')))"""


_ACCOUNTS = ("""SELECT a.username, a.role, a.site_id, a.password_hash, a.issued_at, a.adapter, a.prefix
                FROM mqtt_accounts a LEFT JOIN devices d ON d.id = a.device_id WHERE """ + _LIVE
             + " ORDER BY a.site_id NULLS FIRST, a.role, a.username")
_DROP_UNUSED = ("""DELETE FROM mqtt_accounts x WHERE x.role = 'integration' AND NOT EXISTS (
                     SELECT 1 FROM mqtt_accounts a LEFT JOIN devices d ON d.id = a.device_id
                     WHERE a.username = x.username AND """ + _LIVE + ")")


def accounts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every account in use (username, role, site_id, password_hash, adapter, prefix), services first, then by
    site and name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_ACCOUNTS).fetchall()


def drop_unused_integrations(conn: psycopg.Connection) -> int:
    """Delete the integration accounts no longer in use (adapter disabled, Tasmota topic unbound), so their
    names and prefixes are free again; how many."""
    return conn.execute(_DROP_UNUSED).rowcount


def integration_username(conn: psycopg.Connection, site_id: str, adapter: str, prefix: str) -> str | None:
    """The username of the account of a site's adapter subscription, if it has one."""
    row = conn.execute("SELECT username FROM mqtt_accounts WHERE site_id = %s AND adapter = %s AND prefix = %s",
                       (site_id, adapter, prefix)).fetchone()
    return row[0] if row else None


def owner(conn: psycopg.Connection, username: str) -> tuple[str, str | None, int | None] | None:
    """``(role, site_id, device key)`` of an existing account, or None."""
    row = conn.execute("SELECT role, site_id, device_id FROM mqtt_accounts WHERE username = %s",
                       (username,)).fetchone()
    return (row[0], row[1], row[2]) if row else None


def save_account(conn: psycopg.Connection, username: str, role: str, password_hash: str, *,
                 site_id: str | None = None, device_key: int | None = None, adapter: str | None = None,
                 prefix: str | None = None) -> None:
    """Insert or replace an account's hash (a re-issue rotates the password)."""
    conn.execute(
        """INSERT INTO mqtt_accounts (username, role, site_id, device_id, password_hash, adapter, prefix)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (username) DO UPDATE SET role = excluded.role, site_id = excluded.site_id,
             device_id = excluded.device_id, password_hash = excluded.password_hash, adapter = excluded.adapter,
             prefix = excluded.prefix, issued_at = now()""",
        (username, role, site_id, device_key, password_hash, adapter, prefix),
    )
