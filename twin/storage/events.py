"""Dead letters and device status updates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg

#: Dead-letter payloads are stored up to this many bytes.
DEAD_LETTER_MAX_BYTES = 4096


def add_dead_letters(conn: psycopg.Connection, letters: Sequence[tuple[datetime, str, str, bytes]]) -> None:
    """Store ``(received_at, topic, reason, payload)`` rows, payloads cut to a bounded size."""
    if not letters:
        return
    with conn.cursor() as cur:
        with cur.copy("COPY dead_letters (received_at, topic, reason, payload, payload_size) FROM STDIN") as copy:
            for received_at, topic, reason, payload in letters:
                copy.write_row((received_at, topic, reason[:500], payload[:DEAD_LETTER_MAX_BYTES], len(payload)))


def update_status(
    conn: psycopg.Connection,
    device_key: int,
    state: str,
    *,
    firmware: str | None = None,
    battery_pct: float | None = None,
    rssi_dbm: float | None = None,
) -> None:
    """Record a status message (online/offline and optional vitals) for one device."""
    conn.execute(
        """INSERT INTO device_status AS t (device_id, state, last_seen, firmware, battery_pct, rssi_dbm, updated_at)
           VALUES (%s, %s, CASE WHEN %s = 'online' THEN now() END, %s, %s, %s, now())
           ON CONFLICT (device_id) DO UPDATE SET state = excluded.state,
             last_seen = coalesce(excluded.last_seen, t.last_seen),
             firmware = coalesce(excluded.firmware, t.firmware),
             battery_pct = coalesce(excluded.battery_pct, t.battery_pct),
             rssi_dbm = coalesce(excluded.rssi_dbm, t.rssi_dbm), updated_at = now()""",
        (device_key, state, state, firmware, battery_pct, rssi_dbm),
    )


def record_seq(conn: psycopg.Connection, seqs: dict[int, tuple[int, int, int]]) -> None:
    """Per device ``(first_seq, last_seq, gaps_inside_batch)``: count gaps against the stored last seq.

    One statement for the whole batch (the devices' arrays side by side), not one per device.
    """
    if not seqs:
        return
    keys = list(seqs)
    conn.execute(
        """UPDATE device_status AS d SET
             seq_gaps = d.seq_gaps + v.gaps + CASE WHEN d.last_seq IS NOT NULL AND v.first > d.last_seq + 1
                                                   THEN v.first - d.last_seq - 1 ELSE 0 END,
             last_seq = v.last
           FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::bigint[]) AS v(device_id, gaps, first, last)
           WHERE d.device_id = v.device_id""",
        (keys, [seqs[k][2] for k in keys], [seqs[k][0] for k in keys], [seqs[k][1] for k in keys]),
    )