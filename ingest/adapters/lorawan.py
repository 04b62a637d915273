"""What the LoRaWAN adapters share (ChirpStack v4, The Things Stack v3): pure functions, no I/O.

Not an adapter itself: :mod:`ingest.adapters.chirpstack` and :mod:`ingest.adapters.tts` read their network
server's messages with these. Both network servers write JSON from Protocol Buffers and leave out fields at
their zero value (ChirpStack's event examples have no ``fCnt`` on the first uplink after a join; The Things
Stack: "if a certain field has a value of "", 0 or false it will not be present"), so an absent frame
counter is 0. The decoded object goes through one field table, ``fields/lorawan.toml``: the devices' codecs
are the same whichever network server runs them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingest.adapters.base import Report, apply_fields, number
from ingest.decode import RSSI_RANGE, SEQ_MAX, parse_ts
from ingest.text import check_text
from twin.identities import DEVEUI, IdentityError, normalize

#: The field table both LoRaWAN adapters read decoded objects through (``fields/lorawan.toml``).
TABLE = "lorawan"
#: Longest application id, device id or model name kept from a message (characters).
TEXT_MAX = 128


def split_topic(topic: str, prefix: str) -> tuple[str, list[str]] | None:
    """``(last level of the prefix, levels after the prefix)`` of ``topic`` (the application the prefix's
    ``+`` stands for), or ``None`` when the topic is not longer than the prefix."""
    depth = len(prefix.split("/")) if prefix else 0
    levels = topic.split("/")
    if len(levels) <= depth:
        return None
    return (levels[depth - 1] if depth else ""), levels[depth:]


def dev_eui(raw: object, what: str) -> str:
    """The DevEUI ``raw`` in normal form (16 lowercase hex digits); :class:`IdentityError` otherwise."""
    if not isinstance(raw, str):
        raise IdentityError(f"{what} must be text, got {type(raw).__name__}")
    return normalize(DEVEUI, raw)


def text(raw: object) -> str | None:
    """``raw`` when it is text that may be stored (an application id, a model), else ``None``."""
    return raw if isinstance(raw, str) and check_text(raw, "", TEXT_MAX) is None else None


def timestamp(raw: object, received_at: datetime) -> tuple[datetime, bool] | str:
    """``(ts, from receive)``: the message's RFC 3339 time, or the receive time when it has none; an error
    string when the time is invalid (too far ahead, too old, not RFC 3339)."""
    if raw is None:
        return received_at, True
    ts = parse_ts(raw, received_at)
    return ts if isinstance(ts, str) else (ts, False)


def frame_counter(raw: object, what: str) -> int | str:
    """The uplink frame counter as a sequence number (absent: 0, see the module docstring); integral JSON
    numbers and digit strings accepted; an error string for anything else or outside 0..2**32-1."""
    if raw is None:
        return 0
    value: object = raw
    if (isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw) <= 20) or (
            isinstance(raw, float) and raw.is_integer()):
        value = int(raw)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEQ_MAX:
        return value
    return f"{what} must be an integer from 0 to {SEQ_MAX}, got {str(raw)[:40]!r}"


def best_rssi(entries: object, keys: tuple[str, ...], what: str, errors: list[str]) -> float | None:
    """The strongest RSSI (dBm) over the gateways that heard the uplink (``keys`` of each entry of the list
    ``entries``); an invalid value adds an error and is passed over; ``None`` when there is none."""
    if entries is None:
        return None
    if not isinstance(entries, list):
        errors.append(f"{what} must be a list, got {type(entries).__name__}")
        return None
    best: float | None = None
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append(f"{what}[{i}] must be an object")
            continue
        for key in keys:
            raw = entry.get(key)
            if raw is None:
                continue
            value = number(raw)
            if value is None or not RSSI_RANGE[0] <= value <= RSSI_RANGE[1]:
                errors.append(f"{what}[{i}].{key}: {str(raw)[:40]!r} is not an RSSI in "
                              f"[{RSSI_RANGE[0]:g}, {RSSI_RANGE[1]:g}] dBm")
            elif best is None or value > best:
                best = value
    return best


def battery(raw: object, what: str, errors: list[str]) -> float | None:
    """A battery charge in % (0-100) or ``None``; an invalid one adds an error."""
    if raw is None:
        return None
    value = number(raw)
    if value is None or not 0.0 <= value <= 100.0:
        errors.append(f"{what}: {str(raw)[:40]!r} is not a battery charge in [0, 100] %")
        return None
    return value


def map_object(adapter: str, doc: object, where: str, ts: datetime, report: Report, errors: list[str]) -> None:
    """The fields of the decoded object ``doc`` (at ``where`` in the message) through ``fields/lorawan.toml``
    into ``report``; errors name the adapter and the field (``chirpstack: object.co2: ...``)."""
    if not isinstance(doc, dict):
        errors.append(f"{adapter}: {where} must be an object, got {type(doc).__name__}")
        return
    found: list[str] = []
    apply_fields(TABLE, doc, ts, report, found)
    errors.extend(f"{adapter}: {where}.{e.removeprefix(TABLE + ': ')}" for e in found)


def has_payload(raw: Any) -> bool:
    """Whether an uplink carries application data (base64 ``data``/``frm_payload``, left out when empty)."""
    return isinstance(raw, str) and raw != ""
