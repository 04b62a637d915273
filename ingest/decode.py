"""Decoding and validation of telemetry payloads: pure functions, no I/O.

Two payload forms share one topic: the native JSON object
``{"ts": ..., "seq": ..., "metrics": {...}}`` and a SenML pack (RFC 8428, a JSON array;
see :mod:`ingest.senml`). A payload yields the valid readings it holds plus one error
per invalid part, so a mixed payload keeps its valid part. Errors are short reason
strings that end up in the dead-letter table.

Text a device sends is checked here, never left for the database to refuse: valid UTF-8
(orjson refuses anything else), no NUL or other control characters, bounded lengths, known
values where there is a list of them (a status's ``state``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from ingest.senml import decode_pack
from ingest.text import check_text
from twin.messaging.contract import MAX_PAYLOAD_BYTES
from twin.metrics import BY_NAME, Metric

#: Timestamps further ahead of the receive time than this are refused.
MAX_FUTURE = timedelta(minutes=5)
#: Timestamps older than this are refused (they would fall outside retention).
MAX_AGE = timedelta(days=400)
#: A device's message counter is an unsigned 32-bit number (larger ones could not be stored).
SEQ_MAX = 2**32 - 1
#: Longest firmware version a status may carry (characters).
FIRMWARE_MAX = 64
#: Longest device id a gateway status may name (characters).
DEVICE_ID_MAX = 128
#: States a status may report.
STATES = ("online", "offline")
#: Physical ranges of a status's vitals: battery charge (%) and received signal strength (dBm).
BATTERY_RANGE = (0.0, 100.0)
RSSI_RANGE = (-200.0, 50.0)


@dataclass(slots=True)
class Decoded:
    """What one telemetry payload holds: ``(ts, metric, value)`` readings of the topic's
    device, readings a SenML pack names for other devices (a gateway), and errors."""

    readings: list[tuple[datetime, Metric, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seq: int | None = None
    ts_from_receive: bool = False
    #: ``(device_id, ts, metric, value)`` for records naming another device than the topic's.
    foreign: list[tuple[str, datetime, Metric, float]] = field(default_factory=list)


def check_time(ts: datetime, received_at: datetime) -> datetime | str:
    """``ts`` unless it is too far in the future or too old; else an error string."""
    if ts - received_at > MAX_FUTURE:
        return f"ts {ts.isoformat()} is in the future"
    if received_at - ts > MAX_AGE:
        return f"ts {ts.isoformat()} is older than {MAX_AGE.days} days"
    return ts


def parse_ts(raw: object, received_at: datetime) -> datetime | str:
    """An RFC 3339 string or epoch milliseconds -> aware UTC datetime, or an error string."""
    if isinstance(raw, bool):
        return "ts must be RFC 3339 text or epoch milliseconds"
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            return "ts is not finite"
        try:
            ts = datetime.fromtimestamp(raw / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return "ts out of range"
    elif isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return f"ts is not RFC 3339: {raw[:40]!r}"
        if ts.tzinfo is None:
            return "ts has no time zone"
        ts = ts.astimezone(UTC)
    else:
        return "ts must be RFC 3339 text or epoch milliseconds"
    return check_time(ts, received_at)


def check_value(metric: Metric, raw: object) -> float | str:
    """A finite number inside the metric's physical range, or an error string."""
    if type(raw) is float and metric.min_value <= raw <= metric.max_value:  # the usual case, and not NaN
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return f"{metric.name}: value must be a number, got {type(raw).__name__}"
    value = float(raw)
    if not math.isfinite(value):
        return f"{metric.name}: value is not finite"
    if not metric.min_value <= value <= metric.max_value:
        return f"{metric.name}: {value:g} outside physical range [{metric.min_value:g}, {metric.max_value:g}] {metric.unit}"
    return value


def decode_telemetry(payload: bytes, received_at: datetime, device_id: str = "") -> Decoded:
    """Decode a telemetry payload: the native JSON object or a SenML pack.

    ``device_id`` is the topic's device; SenML records naming it (or no device) count as
    its readings, records naming another device go to ``foreign``.
    """
    out = Decoded()
    if len(payload) > MAX_PAYLOAD_BYTES:
        out.errors.append(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        return out
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        out.errors.append(f"bad JSON: {str(exc).splitlines()[0][:120]}")
        return out
    if isinstance(doc, list) and any(isinstance(r, dict) for r in doc):
        return _senml(doc, received_at, device_id, out)
    if not isinstance(doc, dict):
        out.errors.append("payload must be a JSON object with 'metrics' or a SenML pack (array of records)")
        return out
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        out.errors.append("'metrics' must be a non-empty object")
        return out
    if "ts" in doc and doc["ts"] is not None:
        ts = parse_ts(doc["ts"], received_at)
        if isinstance(ts, str):
            out.errors.append(ts)
            return out
    else:
        ts, out.ts_from_receive = received_at, True
    seq = doc.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= SEQ_MAX:
        out.seq = seq
    elif seq is not None:
        out.errors.append(f"seq must be an integer from 0 to {SEQ_MAX}")
    for name, raw in metrics.items():
        metric = BY_NAME.get(name)
        if metric is None:
            out.errors.append(f"unknown metric {name[:40]!r}")
            continue
        value = check_value(metric, raw)
        if isinstance(value, str):
            out.errors.append(value)
        else:
            out.readings.append((ts, metric, value))
    return out


def _senml(doc: list, received_at: datetime, device_id: str, out: Decoded) -> Decoded:
    readings, out.errors = decode_pack(doc, received_at)
    for r in readings:
        value = check_value(r.metric, r.value)
        ts = check_time(r.ts, received_at)
        if isinstance(value, str) or isinstance(ts, str):
            out.errors.append(value if isinstance(value, str) else f"{r.metric.name}: {ts}")
        elif r.device in ("", device_id):
            out.readings.append((ts, r.metric, value))
            out.ts_from_receive = out.ts_from_receive or r.ts_from_receive
        else:
            out.foreign.append((r.device, ts, r.metric, value))
    return out


@dataclass(frozen=True, slots=True)
class Status:
    """A status's state and its valid vitals; ``errors`` names each field that was refused (ignored)."""

    state: str
    firmware: str | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """A gateway status: its state, the valid device ids it names, one error per refused device id."""

    state: str
    devices: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


#: Devices a gateway status may name (a school's gateway carries hundreds).
GATEWAY_DEVICES_MAX = 10_000


def decode_gateway_status(payload: bytes) -> GatewayStatus | str:
    """A gateway status ``{"state": ..., "devices": ["ENV-1F-01", ...]}``, or an error string when its
    state (or its device list as a whole) is invalid. A bad device id is refused alone: the others
    stay, so they still go offline with their gateway."""
    doc = _status_doc(payload)
    if isinstance(doc, str):
        return doc
    devices = doc.get("devices", [])
    if not isinstance(devices, list) or len(devices) > GATEWAY_DEVICES_MAX:
        return f"gateway status: 'devices' must be a list of at most {GATEWAY_DEVICES_MAX} device ids"
    valid: list[str] = []
    errors: list[str] = []
    for i, device in enumerate(devices):
        if error := check_text(device, f"device id {i}", DEVICE_ID_MAX):
            errors.append(f"gateway status: {error}")
        else:
            valid.append(device)
    return GatewayStatus(doc["state"], tuple(valid), tuple(errors))


def _status_doc(payload: bytes) -> dict | str:
    """A status payload's JSON object with a valid ``state``, or an error string."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"status: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return f"status: bad JSON: {str(exc).splitlines()[0][:120]}"
    if not isinstance(doc, dict) or doc.get("state") not in STATES:
        return "status: 'state' must be 'online' or 'offline'"
    return doc


def _vital(doc: dict, key: str, bounds: tuple[float, float]) -> float | str | None:
    """A status's optional number ``key`` inside ``bounds``: ``None`` when absent, else the value or an error."""
    v = doc.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"status: {key} must be a number, got {type(v).__name__}"
    value = float(v)
    if not bounds[0] <= value <= bounds[1]:  # also refuses NaN
        return f"status: {key} {value:g} outside [{bounds[0]:g}, {bounds[1]:g}]"
    return value


def decode_status(payload: bytes) -> Status | str:
    """The retained status payload ``{"state": "online"|"offline", "firmware": ..., "battery": ...,
    "rssi": ...}``, or an error string when the state is invalid. An invalid field is left out (never
    stored) and named in ``errors``: the state and the valid fields are kept."""
    doc = _status_doc(payload)
    if isinstance(doc, str):
        return doc
    errors: list[str] = []
    fw = doc.get("firmware")
    if fw is not None and (error := check_text(fw, "firmware", FIRMWARE_MAX)):
        errors.append(f"status: {error}")
        fw = None
    battery = _vital(doc, "battery", BATTERY_RANGE)
    if isinstance(battery, str):
        errors.append(battery)
        battery = None
    rssi = _vital(doc, "rssi", RSSI_RANGE)
    if isinstance(rssi, str):
        errors.append(rssi)
        rssi = None
    return Status(doc["state"], fw, battery, rssi, tuple(errors))
