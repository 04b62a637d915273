"""Tasmota: a pure decoder of a device's ``tele/`` and ``stat/`` topics (FullTopic ``%prefix%/%topic%/``,
under the site's prefix, none by default), as Tasmota's documentation shows them.

- ``tele/<topic>/SENSOR``: ``{"Time": ..., "<sensor>": {<field>: value, ...}, "TempUnit": "C"}``, one object
  per sensor (``AM2301``, ``SHT3X``, ``BH1750``, ``SCD40``, ``ENERGY``, ...), each mapped through
  ``fields/tasmota.toml``. Temperatures are converted from Fahrenheit when ``TempUnit`` is ``"F"``
  (SetOption8). A device has one value per metric and time: when two sensors give the same metric, the
  first in the message is kept. ``ESP32`` (the chip's own temperature) is no room sensor and is skipped.
- ``tele/<topic>/STATE``: ``POWER`` (or ``POWER1``), ``Dimmer``, and ``Wifi.Signal`` (dBm; ``Wifi.RSSI`` is a
  0-100 quality, not kept) as the device's RSSI.
- ``tele/<topic>/LWT``: plain ``Online``/``Offline`` (retained; the broker sends ``Offline`` as the will).
- ``stat/<topic>/RESULT`` (``{"POWER": "OFF"}``, ``{"Dimmer": 40, "POWER": "ON"}``) and ``stat/<topic>/POWER``
  (plain ``ON``/``OFF``): the device's state after a command, which is how a command is acknowledged. A
  RESULT with no state (the answer to another command) is ignored.

Tasmota's ``Time`` is the device's local time without a zone (its ``Timezone`` setting is not in the
message), so it cannot be placed on the time line: readings take the receive time (``ts_from_receive``).
The device is named by its topic: ``Hardware("tasmota", <topic>)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingest.adapters.base import Decoded, Hardware, Report, apply_fields, field_table, load_json, number
from ingest.decode import RSSI_RANGE
from twin.identities import TASMOTA, TASMOTA_TOPICS, IdentityError, adapter_filters, normalize

NAME = "tasmota"
#: ``(prefix level, command)`` of the topics decoded; each is subscribed as ``<prefix>/<level>/+/<command>``.
TOPICS = TASMOTA_TOPICS
#: Sensor objects that are not the room's: the ESP32's internal temperature.
SKIP_SENSORS = frozenset({"ESP32"})
#: Metrics whose per-channel arrays (multi-channel energy meters) add up to the device's value.
_ADDITIVE = ("power", "energy")
_LWT = {"online": "online", "offline": "offline"}


def filters(prefix: str) -> tuple[str, ...]:
    """The five topic families of every device under ``prefix`` (``""``: at the root)."""
    return adapter_filters(NAME, prefix)


def decode(topic: str, prefix: str, payload: bytes, received_at: datetime) -> Decoded:
    """Decode one message (``topic`` is the full topic, ``prefix`` the site's)."""
    levels = topic.split("/")[len(prefix.split("/")) if prefix else 0:]
    if len(levels) != 3 or (levels[0], levels[2]) not in TOPICS:
        head = f"{prefix}/" if prefix else ""
        return Decoded(errors=[f"{NAME}: topic {topic[:120]!r} is none of {head}tele|stat/<topic>/<command>"])
    try:
        hardware = Hardware(TASMOTA, normalize(TASMOTA, levels[1]), address=levels[1])
    except IdentityError as exc:
        return Decoded(errors=[f"{NAME}: {exc}"])
    report = Report(hardware, address=levels[1], ts_from_receive=True)
    kind = levels[2]
    if kind == "LWT":
        text = payload.decode("utf-8", "replace").strip()
        state = _LWT.get(text.lower())
        if state is None:
            return Decoded(errors=[f"{NAME} LWT of {levels[1]!r}: expected Online or Offline, got {text[:40]!r}"])
        report.state = state
        return Decoded(reports=[report])
    errors: list[str] = []
    if kind == "POWER":
        apply_fields(NAME, {"POWER": payload.decode("utf-8", "replace").strip()[:40]}, received_at, report, errors)
        return Decoded(reports=[report] if report.readings else [], errors=errors)
    doc = _object(payload, f"{NAME} {kind} of {levels[1]!r}")
    if isinstance(doc, str):
        return Decoded(errors=[doc])
    if kind == "SENSOR":
        _sensor(doc, received_at, report, errors)
    else:
        apply_fields(NAME, doc, received_at, report, errors)
        if kind == "STATE":
            _signal(doc.get("Wifi"), report, errors)
        elif not report.readings and not errors:
            return Decoded(ignored=True)  # a RESULT answering another command than POWER or Dimmer
    return Decoded(reports=[report], errors=errors)


def _object(payload: bytes, what: str) -> dict[str, Any] | str:
    """The JSON object of ``payload``, or a dead-letter reason. (:func:`load_json` returns a JSON string
    document as a ``str``, like its reasons: a payload that is a JSON string is told apart here.)"""
    doc = load_json(payload, what)
    if isinstance(doc, dict):
        return doc
    if isinstance(doc, str) and not payload.lstrip().startswith(b'"'):
        return doc
    return f"{what}: expected a JSON object"


def _sensor(doc: dict[str, Any], received_at: datetime, report: Report, errors: list[str]) -> None:
    """Each sensor's fields through the table (top-level fields too: older firmware put a single sensor's
    there); a metric a previous sensor gave is not taken again."""
    fahrenheit = doc.get("TempUnit") == "F"
    groups: list[tuple[str, dict[str, Any]]] = [("", {k: v for k, v in doc.items() if not isinstance(v, dict)})]
    groups += [(k, v) for k, v in doc.items() if isinstance(v, dict) and k not in SKIP_SENSORS]
    table = field_table(NAME)
    for sensor, fields in groups:
        fields = dict(fields)
        for name, raw in fields.items():
            rule = table.get(name)
            if rule is None or rule.metric is None:
                continue
            if isinstance(raw, list) and rule.metric in _ADDITIVE:
                values = [number(v) for v in raw]
                if raw and all(v is not None for v in values):
                    fields[name] = sum(values)  # type: ignore[arg-type]
            elif fahrenheit and rule.metric == "temperature" and (value := number(raw)) is not None:
                fields[name] = (value - 32.0) * 5.0 / 9.0
        part = Report(report.hardware)
        found: list[str] = []
        apply_fields(NAME, fields, received_at, part, found)
        errors.extend(f"{NAME} {sensor}: {e.removeprefix(f'{NAME}: ')}" if sensor else e for e in found)
        have = {m.name for _, m, _ in report.readings}
        report.readings.extend(r for r in part.readings if r[1].name not in have)


def _signal(wifi: object, report: Report, errors: list[str]) -> None:
    """``Wifi.Signal`` (dBm) as the device's RSSI."""
    if not isinstance(wifi, dict) or wifi.get("Signal") is None:
        return
    value = number(wifi["Signal"])
    lo, hi = RSSI_RANGE
    if value is None or not lo <= value <= hi:
        errors.append(f"{NAME}: Wifi.Signal must be a number of dBm in [{lo:g}, {hi:g}], got {str(wifi['Signal'])[:20]!r}")
    else:
        report.rssi_dbm = value
