"""Alarms: raise, list with filters, acknowledge with a note, clear.

States go ``open`` -> ``acknowledged`` (a person has seen it, with a note) -> ``closed``
(the condition cleared); an alarm may also clear while still open. Nothing is deleted:
closed alarms are the history.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

SEVERITIES = ("info", "warning", "critical")
STATES = ("open", "acknowledged", "closed")


def raise_alarm(conn: psycopg.Connection, site_id: str, rule: str, severity: str, message: str = "", *,
                room_id: int | None = None, device_key: int | None = None) -> int:
    """Open an alarm; return its id (``device_key`` is ``devices.id``)."""
    row = conn.execute(
        """INSERT INTO alarms (site_id, room_id, device_id, rule, severity, message)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
        (site_id, room_id, device_key, rule, severity, message),
    ).fetchone()
    return int(row[0])  # type: ignore[index]


def list_alarms(conn: psycopg.Connection, *, site_id: str | None = None, severity: str | None = None,
                state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Alarms newest first, filtered by site, severity and state (None: any), with site, room and device names."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT a.id, a.site_id, s.name AS site_name, a.room_id, r.name AS room, d.device_id, a.rule,
                      a.severity, a.state, a.message, a.raised_at, a.cleared_at, a.acked_at, a.acked_by, a.note
               FROM alarms a JOIN sites s ON s.site_id = a.site_id
               LEFT JOIN rooms r ON r.id = a.room_id LEFT JOIN devices d ON d.id = a.device_id
               WHERE (%(site)s::text IS NULL OR a.site_id = %(site)s)
                 AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
                 AND (%(state)s::text IS NULL OR a.state = %(state)s)
               ORDER BY a.raised_at DESC, a.id DESC LIMIT %(limit)s""",
            {"site": site_id, "severity": severity, "state": state, "limit": limit},
        ).fetchall()


def acknowledge(conn: psycopg.Connection, alarm_id: int, *, by: str, note: str = "") -> bool:
    """Acknowledge an open alarm with a note; False when it is unknown or not open."""
    cur = conn.execute(
        """UPDATE alarms SET state = 'acknowledged', acked_at = now(), acked_by = %s, note = %s
           WHERE id = %s AND state = 'open'""",
        (by, note, alarm_id),
    )
    return cur.rowcount == 1


def clear(conn: psycopg.Connection, alarm_id: int) -> bool:
    """Close an alarm whose condition has cleared; False when it is unknown or already closed."""
    cur = conn.execute(
        "UPDATE alarms SET state = 'closed', cleared_at = now() WHERE id = %s AND state <> 'closed'", (alarm_id,))
    return cur.rowcount == 1


def open_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Alarms not closed, per site."""
    rows = conn.execute("SELECT site_id, count(*) FROM alarms WHERE state <> 'closed' GROUP BY 1").fetchall()
    return {s: int(n) for s, n in rows}
