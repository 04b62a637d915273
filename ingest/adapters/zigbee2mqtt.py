"""zigbee2mqtt: a pure decoder of the topics under a bridge's base topic (``zigbee2mqtt`` by default).

As zigbee2mqtt documents them (zigbee2mqtt.io, "MQTT Topics and Messages", "Device-Availability"):

- ``<base>/bridge/devices`` (retained JSON list): each device's ``ieee_address``, ``friendly_name``,
  ``definition`` (``null`` for an unsupported one) and ``model_id``; announced as :attr:`Decoded.names`
  so a state message naming a device by its friendly name reaches its hardware id. The coordinator is
  left out. Other ``bridge/...`` topics (state, info, logging, event, request, response) are ignored.
- ``<base>/<friendly_name>`` (JSON object): the device's state, mapped through ``fields/zigbee2mqtt.toml``.
  zigbee2mqtt puts no time on it, so readings take the receive time, unless the bridge adds
  ``last_seen`` (its ``advanced.last_seen`` option: ISO 8601 text or epoch milliseconds), which is used
  when it passes :func:`ingest.decode.check_time` (else the receive time: a bridge clock off is no fault
  of the device's readings). Friendly names may hold ``/``.
- ``<base>/<friendly_name>/availability``: ``{"state": "online"}`` (``legacy_availability_payload: false``,
  the only form since zigbee2mqtt 2.0) or the legacy plain ``online``/``offline``.
- ``.../set``, ``.../get`` (with ``/<attribute>`` or an endpoint level) are commands, the twin's own among
  them; ``<friendly_name>/action`` is the plain-text copy of an ``action`` zigbee2mqtt publishes for Home
  Assistant's device triggers: all ignored, as are empty payloads (a retained message cleared when a
  device is renamed or removed).

A device whose friendly name is its IEEE address (zigbee2mqtt's default, ``0x00158d0001a2b3c4``) is named
by it directly; any other is reported by ``address`` for the worker to resolve through the device list.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from ingest.adapters.base import Decoded, Hardware, Report, apply_fields, load_json
from ingest.decode import STATES, parse_ts
from ingest.text import check_text
from twin.identities import IEEE, IdentityError, adapter_filters, normalize
from twin.messaging.broker import MAX_PACKET_BYTES
from twin.messaging.contract import MAX_PAYLOAD_BYTES

NAME = "zigbee2mqtt"
#: A friendly name that is an IEEE address, as zigbee2mqtt names a device until it is renamed.
_IEEE_NAME = re.compile(r"0x[0-9a-fA-F]{16}")
#: Longest friendly name and model accepted (characters).
NAME_MAX = 255
MODEL_MAX = 128
#: ``bridge/devices`` carries every device's definition and exposes (several kB each): it may be far larger
#: than a telemetry message, up to what the broker accepts (``twin.messaging.broker.MAX_PACKET_BYTES``).
DEVICES_MAX_BYTES = MAX_PACKET_BYTES
_COMMANDS = ("set", "get")


def filters(prefix: str) -> tuple[str, ...]:
    """Everything under the bridge's base topic (:func:`twin.identities.adapter_filters`)."""
    return adapter_filters(NAME, prefix)


def decode(topic: str, prefix: str, payload: bytes, received_at: datetime) -> Decoded:
    """Decode one message under ``prefix`` (the base topic; ``topic`` is the full topic)."""
    kind, name = _topic(topic, prefix)
    if kind == "error":
        return Decoded(errors=[name])
    if kind == "devices":
        return _devices(payload)
    if kind == "groups":
        return _groups(payload)
    if kind == "ignored" or not payload:
        return Decoded(ignored=True)
    if kind == "availability":
        return _availability(name, payload)
    return _state(name, payload, received_at)


@lru_cache(maxsize=65536)
def _topic(topic: str, prefix: str) -> tuple[str, str]:
    """What a topic under ``prefix`` is (``state``, ``availability``, ``devices``, ``ignored`` or ``error``) and
    the friendly name it names (or the error): the same topics come again and again, so this is cached."""
    levels = topic.split("/")[len(prefix.split("/")) if prefix else 0:]
    if not levels or levels == [""]:
        return "error", f"{NAME}: topic {topic[:120]!r} names no device under {prefix!r}"
    if levels[0] == "bridge":
        return {"devices": "devices", "groups": "groups"}.get("/".join(levels[1:]), "ignored"), ""
    if levels[-1] in _COMMANDS or (len(levels) > 1 and levels[-2] in _COMMANDS) \
            or (len(levels) > 1 and levels[-1] == "action"):
        return "ignored", ""
    if len(levels) > 1 and levels[-1] == "availability":
        return "availability", "/".join(levels[:-1])
    return "state", "/".join(levels)


@lru_cache(maxsize=65536)
def _named(name: str) -> Hardware | None | str:
    """The hardware a friendly name is (when it is an IEEE address), ``None`` (resolved by the worker), or an
    error for a name that is not valid text (cached: names repeat)."""
    if error := check_text(name, "friendly name", NAME_MAX):
        return f"{NAME}: {error}"
    return Hardware(IEEE, normalize(IEEE, name), address=name) if _IEEE_NAME.fullmatch(name) else None


def _device(name: str) -> Report | str:
    """A report for the device a topic names (by IEEE address when the name is one), or an error."""
    hardware = _named(name)
    return hardware if isinstance(hardware, str) else Report(hardware, address=name)


def _availability(name: str, payload: bytes) -> Decoded:
    report = _device(name)
    if isinstance(report, str):
        return Decoded(errors=[report])
    text = payload.decode("utf-8", "replace").strip()
    state: object = text
    if text.startswith("{"):
        doc = load_json(payload, f"{NAME} availability")
        if isinstance(doc, str):
            return Decoded(errors=[doc])
        state = doc.get("state") if isinstance(doc, dict) else None
    if state not in STATES:
        expected = '{"state": "online"|"offline"} or online/offline'
        return Decoded(errors=[f"{NAME} availability of {name[:80]!r}: expected {expected}, got {text[:40]!r}"])
    report.state = state  # type: ignore[assignment]
    return Decoded(reports=[report])


def _state(name: str, payload: bytes, received_at: datetime) -> Decoded:
    report = _device(name)
    if isinstance(report, str):
        return Decoded(errors=[report])
    try:
        doc: Any = orjson.loads(payload) if len(payload) <= MAX_PAYLOAD_BYTES else None
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is not dict or not doc:  # the usual case is a non-empty object: reasons only when it is not
        doc = _object(payload, f"{NAME} state of {name[:80]!r}")
        if isinstance(doc, str):
            return Decoded(errors=[doc])
    ts = parse_ts(doc["last_seen"], received_at) if doc.get("last_seen") is not None else None
    if not isinstance(ts, datetime):
        ts, report.ts_from_receive = received_at, True
    errors: list[str] = []
    apply_fields(NAME, doc, ts, report, errors)
    return Decoded(reports=[report], errors=errors)


def _object(payload: bytes, what: str) -> dict[str, Any] | str:
    """The JSON object of ``payload``, or a dead-letter reason. (:func:`load_json` returns a JSON string
    document as a ``str``, like its reasons: a payload that is a JSON string is told apart here.)"""
    doc = load_json(payload, what)
    if isinstance(doc, dict):
        return doc if doc else f"{what}: expected a non-empty JSON object"
    if isinstance(doc, str) and not payload.lstrip().startswith(b'"'):
        return doc
    return f"{what}: expected a non-empty JSON object"


def _bridge_list(payload: bytes, what: str) -> list[Any] | Decoded:
    """The JSON list of a bridge message (``bridge/devices``, ``bridge/groups``), or a Decoded with the reason."""
    if len(payload) > DEVICES_MAX_BYTES:
        return Decoded(errors=[f"{NAME} bridge/{what}: payload of {len(payload)} bytes exceeds {DEVICES_MAX_BYTES}"])
    try:
        doc: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Decoded(errors=[f"{NAME} bridge/{what}: bad JSON: {str(exc).splitlines()[0][:120]}"])
    if not isinstance(doc, list):
        return Decoded(errors=[f"{NAME} bridge/{what}: expected a JSON list of {what}"])
    return doc


def _groups(payload: bytes) -> Decoded:
    """The bridge's group list (retained): the friendly names of groups, whose state messages are not a device's."""
    doc = _bridge_list(payload, "groups")
    if isinstance(doc, Decoded):
        return doc
    names = [g["friendly_name"] for g in doc if isinstance(g, dict) and isinstance(g.get("friendly_name"), str)]
    return Decoded(groups=names)


def _devices(payload: bytes) -> Decoded:
    """The bridge's device list: each device but the coordinator, by IEEE address, friendly name and model."""
    doc = _bridge_list(payload, "devices")
    if isinstance(doc, Decoded):
        return doc
    out = Decoded()
    for i, entry in enumerate(doc):
        what = f"{NAME} bridge/devices[{i}]"
        if not isinstance(entry, dict):
            out.errors.append(f"{what}: not an object")
            continue
        if entry.get("type") == "Coordinator":
            continue
        name = entry.get("friendly_name")
        if error := check_text(name, "friendly_name", NAME_MAX):
            out.errors.append(f"{what}: {error}")
            continue
        try:
            ieee = normalize(IEEE, entry.get("ieee_address"))  # type: ignore[arg-type]
        except IdentityError as exc:
            out.errors.append(f"{what} ({name[:80]!r}): ieee_address: {exc}")
            continue
        definition = entry.get("definition")
        model = definition.get("model") if isinstance(definition, dict) else None
        model = model if model is not None else entry.get("model_id")
        if model is not None and (error := check_text(model, "model", MODEL_MAX)):
            out.errors.append(f"{what} ({name[:80]!r}): {error}")
            model = None
        out.names.append(Hardware(IEEE, ieee, address=name, model=model))  # type: ignore[arg-type]
    return out
