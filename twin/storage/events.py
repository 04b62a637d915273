"""Dead letters and device status updates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from twin.messaging.contract import MAX_PAYLOAD_BYTES
from twin.sequence import SeqState, first_from_bytes, merge, window_bytes, window_from_bytes

#: Dead-letter payloads are stored whole up to the contract's largest payload, so they can be replayed;
#: a larger one keeps its first this many bytes, and its reason says so.
DEAD_LETTER_MAX_BYTES = MAX_PAYLOAD_BYTES
#: How the reason of a message the database refused begins: ``database refused the message (SQLSTATE): ...``.
DB_REFUSED = "database refused the message"
#: Dead-letter topics and reasons are stored up to this many characters.
DEAD_LETTER_MAX_TOPIC = 1000
DEAD_LETTER_MAX_REASON = 500


def storable_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, NUL and lone surrogates escaped: what PostgreSQL's
    ``text`` can hold, whatever a device sent (a dead letter itself must never be refused)."""
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
    return text


def add_dead_letters(conn: psycopg.Connection, letters: Sequence[tuple[datetime, str, str, bytes]]) -> None:
    """Store ``(received_at, topic, reason, payload)`` rows; a payload over ``DEAD_LETTER_MAX_BYTES``
    keeps its first bytes, and its reason says so."""
    if not letters:
        return
    with conn.cursor() as cur:
        with cur.copy("COPY dead_letters (received_at, topic, reason, payload, payload_size) FROM STDIN") as copy:
            for received_at, topic, reason, payload in letters:
                size = len(payload)
                if size > DEAD_LETTER_MAX_BYTES:
                    cut = f" (payload cut: first {DEAD_LETTER_MAX_BYTES} of {size} bytes kept)"
                    reason = storable_text(reason, DEAD_LETTER_MAX_REASON - len(cut)) + cut
                    payload = payload[:DEAD_LETTER_MAX_BYTES]
                copy.write_row((received_at, storable_text(topic, DEAD_LETTER_MAX_TOPIC),
                                storable_text(reason, DEAD_LETTER_MAX_REASON), payload, size))


def update_status(
    conn: psycopg.Connection,
    device_key: int,
    state: str,
    *,
    firmware: str | None = None,
    battery_pct: float | None = None,
    rssi_dbm: float | None = None,
    retained: bool = False,
) -> None:
    """Record a status message (online/offline and optional vitals) for one device. An ``online``
    status marks the device seen now, unless it is ``retained`` (the broker's copy of an old message,
    not a sign of life)."""
    conn.execute(
        """INSERT INTO device_status AS t (device_id, state, last_seen, firmware, battery_pct, rssi_dbm, updated_at)
           VALUES (%s, %s, CASE WHEN %s = 'online' AND NOT %s THEN now() END, %s, %s, %s, now())
           ON CONFLICT (device_id) DO UPDATE SET state = excluded.state,
             last_seen = coalesce(excluded.last_seen, t.last_seen),
             firmware = coalesce(excluded.firmware, t.firmware),
             battery_pct = coalesce(excluded.battery_pct, t.battery_pct),
             rssi_dbm = coalesce(excluded.rssi_dbm, t.rssi_dbm), updated_at = now()""",
        (device_key, state, state, retained, firmware, battery_pct, rssi_dbm),
    )


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A device's statuses of one batch merged (:func:`merge_statuses`): the last state, whether any was a live
    ``online`` (not a retained copy: the device seen now), and each vital's last reported value."""

    device_key: int
    state: str
    seen: bool
    firmware: str | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None


def merge_statuses(statuses: Sequence[tuple[int, str, str | None, float | None, float | None, bool]]
                   ) -> list[StatusUpdate]:
    """``(device key, state, firmware, battery, rssi, retained)`` in the order received -> one update per device,
    the same end result as applying them one by one with :func:`update_status` (in key order)."""
    merged: dict[int, StatusUpdate] = {}
    for key, state, firmware, battery, rssi, retained in statuses:
        last = merged.get(key)
        seen = state == "online" and not retained
        if last is None:
            merged[key] = StatusUpdate(key, state, seen, firmware, battery, rssi)
        else:
            merged[key] = StatusUpdate(key, state, last.seen or seen, firmware if firmware is not None else last.firmware,
                                       battery if battery is not None else last.battery_pct,
                                       rssi if rssi is not None else last.rssi_dbm)
    return [merged[k] for k in sorted(merged)]


def update_statuses(conn: psycopg.Connection, updates: Sequence[StatusUpdate]) -> None:
    """Record merged statuses (:func:`merge_statuses`) in one statement: state, last seen now for a live
    ``online``, vitals kept where a status did not report them."""
    if not updates:
        return
    conn.execute(
        """INSERT INTO device_status AS t (device_id, state, last_seen, firmware, battery_pct, rssi_dbm, updated_at)
           SELECT u.key, u.state, CASE WHEN u.seen THEN now() END, u.firmware, u.battery, u.rssi, now()
           FROM unnest(%s::int[], %s::text[], %s::bool[], %s::text[], %s::float8[], %s::float8[])
                AS u(key, state, seen, firmware, battery, rssi)
           ON CONFLICT (device_id) DO UPDATE SET state = excluded.state,
             last_seen = coalesce(excluded.last_seen, t.last_seen),
             firmware = coalesce(excluded.firmware, t.firmware),
             battery_pct = coalesce(excluded.battery_pct, t.battery_pct),
             rssi_dbm = coalesce(excluded.rssi_dbm, t.rssi_dbm), updated_at = now()""",
        ([u.device_key for u in updates], [u.state for u in updates], [u.seen for u in updates],
         [u.firmware for u in updates], [u.battery_pct for u in updates], [u.rssi_dbm for u in updates]))


def record_seq(conn: psycopg.Connection, seqs: dict[int, list[tuple[int, datetime | None]]]) -> None:
    """Merge the ``(seq, device time)`` pairs of a batch (per device key; the time ``None`` when the
    message had none) into the devices' sequence windows and update ``seq_gaps``, the suspected
    loss (:mod:`twin.sequence`: a count restart, a reboot, is told from reordering by device time).

    The devices' rows are locked in key order, so workers storing batches of the same devices at
    once take turns instead of overwriting each other's windows (and cannot deadlock here).
    Devices without a status row are skipped (the batch's readings create it first).
    """
    if not seqs:
        return
    rows = conn.execute(
        """SELECT device_id, last_seq, seq_window, seq_lost, seq_high_at, seq_count_from FROM device_status
           WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE""", (sorted(seqs),)).fetchall()
    if not rows:
        return
    keys, highs, windows, lost, gaps, high_ats, count_froms = [], [], [], [], [], [], []
    for key, high, window, seq_lost, high_at, count_from in rows:
        pairs = seqs[key]
        state = merge(SeqState(high, window_from_bytes(window), seq_lost, high_at, count_from, first_from_bytes(window)),
                      [n for n, _ in pairs], [t for _, t in pairs])
        keys.append(key)
        highs.append(state.high)
        windows.append(window_bytes(state.window, state.first))
        lost.append(state.lost)
        gaps.append(state.gaps)
        high_ats.append(state.high_at)
        count_froms.append(state.count_from)
    conn.execute(
        """UPDATE device_status AS d SET last_seq = v.high, seq_window = v.win, seq_lost = v.lost, seq_gaps = v.gaps,
                  seq_high_at = v.high_at, seq_count_from = v.count_from
           FROM unnest(%s::int[], %s::bigint[], %s::bytea[], %s::bigint[], %s::bigint[], %s::timestamptz[],
                       %s::timestamptz[]) AS v(device_id, high, win, lost, gaps, high_at, count_from)
           WHERE d.device_id = v.device_id""",
        (keys, highs, windows, lost, gaps, high_ats, count_froms),
    )
