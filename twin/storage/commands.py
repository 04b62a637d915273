"""Commands sent to devices over MQTT and the acknowledgements they answered with.

The sender stores a command before publishing it (``record_command``); the ack listener
matches the acknowledgement by the payload's ``id`` (``record_ack``). A command without an
ack is still pending (or lost); one ack per command counts, later duplicates change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


def record_command(conn: psycopg.Connection, command_id: str, site_id: str, device_key: int, action: str,
                   level: float | None = None, *, sent_by: str | None = None) -> None:
    """Store a command about to be published (``device_key`` is ``devices.id``)."""
    conn.execute(
        """INSERT INTO commands (id, site_id, device_id, action, level, sent_by) VALUES (%s, %s, %s, %s, %s, %s)""",
        (command_id, site_id, device_key, action, level, sent_by),
    )


def record_ack(conn: psycopg.Connection, command_id: str, ok: bool, ack: dict[str, Any]) -> bool:
    """Attach an acknowledgement to its command; False for an unknown id or an already acknowledged one."""
    cur = conn.execute(
        "UPDATE commands SET acked_at = now(), ok = %s, ack = %s WHERE id = %s AND acked_at IS NULL",
        (ok, Jsonb(ack), command_id),
    )
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True)
class CommandRow:
    """A command with its device's id and kind and its acknowledgement (``ack``: the ack's JSON, or None)."""

    id: str
    site_id: str
    device_id: str
    kind: str
    action: str
    level: float | None
    sent_at: datetime
    sent_by: str | None
    acked_at: datetime | None
    ok: bool | None
    ack: dict[str, Any] | None


def command(conn: psycopg.Connection, command_id: str) -> CommandRow | None:
    """One command with its device id and ack, or None."""
    with conn.cursor(row_factory=class_row(CommandRow)) as cur:
        return cur.execute(
            """SELECT c.id, c.site_id, d.device_id, d.kind, c.action, c.level, c.sent_at, c.sent_by, c.acked_at, c.ok,
                      c.ack
               FROM commands c JOIN devices d ON d.id = c.device_id WHERE c.id = %s""",
            (command_id,),
        ).fetchone()


def room_commands(conn: psycopg.Connection, room_id: int, limit: int = 10) -> list[CommandRow]:
    """The latest commands to a room's devices, newest first, with their acks."""
    with conn.cursor(row_factory=class_row(CommandRow)) as cur:
        return cur.execute(
            """SELECT c.id, c.site_id, d.device_id, d.kind, c.action, c.level, c.sent_at, c.sent_by, c.acked_at,
                      c.ok, c.ack
               FROM commands c JOIN devices d ON d.id = c.device_id
               WHERE d.room_id = %s ORDER BY c.sent_at DESC, c.id LIMIT %s""",
            (room_id, limit),
        ).fetchall()
