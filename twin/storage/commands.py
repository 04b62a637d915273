"""Commands sent to devices over MQTT and the acknowledgements they answered with.

The sender stores a command before publishing it (``record_command``); the ack listener
matches the acknowledgement by the payload's ``id`` (``record_ack``). A command without an
ack is still pending (or lost); one ack per command counts, later duplicates change nothing.
A device reached through an adapter answers with its next state instead (``ack_from_state``).
"""

from __future__ import annotations

from collections.abc import Sequence
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


#: How long a command waits for a state that acknowledges it (minutes).
STATE_ACK_WINDOW_MIN = 10
#: A dim command is done when the reported dimming is this close to its level (%): zigbee2mqtt's
#: brightness has 254 steps, a LoRaWAN codec whole percents.
DIM_TOLERANCE_PCT = 1.0
#: How far a device's clock may lag the server's (seconds): a state timestamped earlier than this before
#: the command was sent is older than the command and does not acknowledge it.
STATE_ACK_CLOCK_SKEW_S = 5


def ack_from_state(conn: psycopg.Connection,
                   states: Sequence[tuple[int, datetime, float | None, float | None]]) -> int:
    """Acknowledge the open commands that devices' reported states satisfy; return how many.

    ``states`` are ``(device key, state time, on 0/1 or None, dimming % or None)`` as a device reached
    through an adapter reports them. A command is acknowledged (``ok``, ack ``{"from": "state", "on",
    "dimming", "ts"}``) when it is not yet, was sent within :data:`STATE_ACK_WINDOW_MIN` minutes and not
    after this transaction began, the state is not older than the command (its time at most
    :data:`STATE_ACK_CLOCK_SKEW_S` seconds before ``sent_at``), and it satisfies the command: ``on`` by
    on = 1, ``off`` by on = 0, ``dim`` by dimming within :data:`DIM_TOLERANCE_PCT` of its level, the
    device not reported off. The earliest satisfying state of the batch is the one kept."""
    if not states:
        return 0
    cur = conn.execute(
        """WITH s AS (SELECT * FROM unnest(%(keys)s::integer[], %(ts)s::text[], %(on)s::float8[], %(dim)s::float8[])
                      AS s(device_id, ts, on_, dimming)),
                hit AS (SELECT DISTINCT ON (c.id) c.id, s.ts, s.on_, s.dimming
                        FROM commands c JOIN s ON s.device_id = c.device_id
                        WHERE c.acked_at IS NULL AND c.sent_at <= now()
                          AND c.sent_at >= now() - make_interval(mins => %(window)s)
                          AND s.ts::timestamptz >= c.sent_at - make_interval(secs => %(skew)s)
                          AND CASE c.action WHEN 'on' THEN s.on_ = 1
                                            WHEN 'off' THEN s.on_ = 0
                                            WHEN 'dim' THEN abs(s.dimming - c.level) <= %(tolerance)s
                                                            AND s.on_ IS DISTINCT FROM 0
                                            ELSE false END
                        ORDER BY c.id, s.ts::timestamptz)
           UPDATE commands c SET acked_at = now(), ok = true,
                  ack = jsonb_build_object('from', 'state', 'on', hit.on_, 'dimming', hit.dimming, 'ts', hit.ts)
           FROM hit WHERE c.id = hit.id AND c.acked_at IS NULL""",
        {"keys": [s[0] for s in states], "ts": [s[1].isoformat() for s in states],
         "on": [s[2] for s in states], "dim": [s[3] for s in states],
         "window": STATE_ACK_WINDOW_MIN, "skew": STATE_ACK_CLOCK_SKEW_S, "tolerance": DIM_TOLERANCE_PCT},
    )
    return cur.rowcount


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
