"""What an adapter decodes a message into, and the field tables that map other formats to the catalogue.

An adapter is a module with ``NAME``, ``filters(prefix)`` (what to subscribe to under a site's prefix) and
``decode(topic, prefix, payload, received_at)``: the full topic and the site's prefix (which may hold ``+``
levels); the adapter reads the levels after the prefix's. Commands go back through
:mod:`twin.messaging.device_commands` (the dashboard imports only ``twin``). Everything here is pure: no I/O.

Field tables (``fields/<adapter>.toml``, one per adapter) map a field of the device's payload to a catalogue
metric with ``scale``/``offset`` (catalogue value = value * scale + offset), a ``map`` of words to
numbers (``state = "ON"`` -> ``on = 1``; a key ``"2"`` also maps the number 2, numbers it does not name pass
as they are), ``unless`` (skip when another field is present: ``illuminance`` when ``illuminance_lux`` is
there), or to a status vital (``status = "battery"``, ``"rssi"``). Fields not in the table are ignored:
devices expose much the twin does not keep.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import orjson

from ingest.decode import check_value
from twin.messaging.contract import MAX_PAYLOAD_BYTES
from twin.metrics import BY_NAME, Metric

#: Status vitals a field table may fill (``ingest.decode.Status`` fields).
VITALS = ("battery", "rssi")


@dataclass(frozen=True, slots=True)
class Hardware:
    """A device as its adapter names it: ``(kind, hardware_id)`` (normal form, :mod:`twin.identities`);
    ``address`` is how the adapter reaches it again (zigbee2mqtt friendly name, LoRaWAN application,
    Tasmota topic), ``model`` what it says it is."""

    kind: str
    hardware_id: str
    address: str = ""
    model: str | None = None


@dataclass(slots=True)
class Report:
    """What one message says about one device.

    ``hardware`` is ``None`` when the message names the device only by ``address`` (a zigbee2mqtt friendly
    name): the worker resolves it through the names the adapter announced (:attr:`Decoded.names`)."""

    hardware: Hardware | None
    address: str = ""
    readings: list[tuple[datetime, Metric, float]] = field(default_factory=list)
    seq: int | None = None
    ts_from_receive: bool = False
    #: ``"online"``/``"offline"`` when the message says so (availability, LWT, join), else ``None``.
    state: str | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    firmware: str | None = None


@dataclass(slots=True)
class Decoded:
    """A decoded message: device reports, devices announced (a bridge's device list: complete, names it does not
    have name nothing any more), errors (dead-letter reasons), and ``ignored`` for a message of the family that
    carries nothing for the twin (a command echo, a bridge log line)."""

    reports: list[Report] = field(default_factory=list)
    names: list[Hardware] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ignored: bool = False
    #: Names that are groups, not devices (zigbee2mqtt's ``bridge/groups``): their messages are ignored. ``None``
    #: when the message says nothing about groups.
    groups: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """A command as an adapter sends it: topic, payload, QoS."""

    topic: str
    payload: bytes
    qos: int = 1


def load_json(payload: bytes, what: str) -> Any | str:
    """The JSON document of ``payload``, or a dead-letter reason (size, syntax)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"{what}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return f"{what}: bad JSON: {str(exc).splitlines()[0][:120]}"


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One row of a field table."""

    metric: str | None = None
    status: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    map: dict[str, float] = field(default_factory=dict)
    unless: str | None = None
    #: The catalogue metric of a plain numeric rule (no map, not a vital): numbers take a short path.
    numeric: Metric | None = None


@cache
def field_table(adapter: str) -> dict[str, FieldRule]:
    """The field table of ``adapter`` from ``fields/<adapter>.toml`` (checked: every metric is in the catalogue)."""
    data = tomllib.loads(resources.files("ingest.adapters.fields").joinpath(f"{adapter}.toml").read_text("utf-8"))
    table: dict[str, FieldRule] = {}
    for name, row in data.items():
        rule = FieldRule(metric=row.get("metric"), status=row.get("status"), scale=float(row.get("scale", 1.0)),
                         offset=float(row.get("offset", 0.0)),
                         map={str(k): float(v) for k, v in row.get("map", {}).items()}, unless=row.get("unless"))
        if (rule.metric is None) == (rule.status is None) or (rule.metric and rule.metric not in BY_NAME) \
                or (rule.status and rule.status not in VITALS):
            raise ValueError(f"fields/{adapter}.toml [{name}]: one catalogue metric or one status vital {VITALS}")
        if rule.metric is not None and not rule.map:
            rule = replace(rule, numeric=BY_NAME[rule.metric])
        table[name] = rule
    return table


def number(raw: object) -> float | None:
    """A finite number from a JSON number or a numeric string (several codecs send ``"23.5"``); ``None``
    for anything else (booleans included)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and len(raw) <= 40:
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def apply_fields(adapter: str, doc: dict[str, Any], ts: datetime, report: Report, errors: list[str]) -> None:
    """Map the fields of ``doc`` through ``adapter``'s table into ``report`` (readings, vitals); each field
    that is in the table but invalid (not a number, outside the metric's physical range) adds an error.
    ``null`` values are skipped (zigbee2mqtt sends them for what a device has not reported yet)."""
    table = field_table(adapter)
    readings = report.readings
    for name, raw in doc.items():
        rule = table.get(name)
        if rule is None or raw is None or (rule.unless is not None and doc.get(rule.unless) is not None):
            continue
        metric = rule.numeric
        if metric is not None and type(raw) in (float, int):  # the usual case: a JSON number (not a bool)
            value = raw * rule.scale + rule.offset
            if rule.scale != 1.0 or rule.offset:
                value = round(value, 9)
            if metric.min_value <= value <= metric.max_value:  # NaN fails too
                readings.append((ts, metric, float(value)))
                continue
        if rule.map and isinstance(raw, str | bool):
            key = str(raw).lower() if isinstance(raw, bool) else raw
            value = rule.map.get(key, rule.map.get(key.upper()) if isinstance(key, str) else None)
            if value is None:
                errors.append(f"{adapter}: {name}: unknown value {str(raw)[:40]!r}")
                continue
        elif rule.map and (value := _mapped_number(rule.map, raw)) is not None:
            pass  # an integral number the map names ("2" = 1): mapped, not scaled
        else:
            value = number(raw)
            if value is None:
                errors.append(f"{adapter}: {name}: value must be a number, got {type(raw).__name__}")
                continue
            if rule.scale != 1.0 or rule.offset:  # 127 * 100 / 254 is 50, not 49.99999999999999
                value = round(value * rule.scale + rule.offset, 9)
        if rule.status is not None:
            _vital(report, rule.status, value, f"{adapter}: {name}", errors)
            continue
        metric = BY_NAME[rule.metric]  # type: ignore[index]
        checked = check_value(metric, value)
        if isinstance(checked, str):
            errors.append(f"{adapter}: {name}: {checked}")
        else:
            report.readings.append((ts, metric, checked))


def _mapped_number(table: dict[str, float], raw: object) -> float | None:
    """The ``map`` entry of an integral JSON number by its text (``2`` and ``2.0`` -> ``"2"``), or None: a
    number the map does not name is taken as the number itself."""
    if type(raw) is int:
        return table.get(str(raw))
    if type(raw) is float and raw.is_integer():
        return table.get(str(int(raw)))
    return None


#: Physical ranges of the vitals (as ``ingest.decode`` checks a native status).
_VITAL_RANGES = {"battery": (0.0, 100.0), "rssi": (-200.0, 50.0)}


def _vital(report: Report, vital: str, value: float, what: str, errors: list[str]) -> None:
    lo, hi = _VITAL_RANGES[vital]
    if not lo <= value <= hi:
        errors.append(f"{what}: {value:g} outside [{lo:g}, {hi:g}]")
    elif vital == "battery":
        report.battery_pct = value
    else:
        report.rssi_dbm = value
