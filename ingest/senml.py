"""SenML packs (RFC 8428, JSON) decoded into catalogue readings: pure functions, no I/O.

A pack is a JSON array of records. Base fields (``bn``, ``bt``, ``bu``, ``bv``, ``bs``,
``bver``) apply to their record and every later one until changed. A record's name is
``bn + n``; it resolves to a device and a metric:

- ``"co2"``, ``"ENV-101/co2"``, ``"urn:dev:ow:10e2073a01080063:temperature"``: the last
  ``/`` or ``:`` segment is a catalogue metric name, the rest names the device;
- otherwise the whole name is the device and the unit picks the metric
  (``{"n": "urn:dev:ow:10e2073a01080063", "u": "Cel", "v": 23.1}`` is a temperature).

An empty device part means the device of the topic. Units are converted to the
catalogue's (``kW`` -> W, ``K`` -> °C, ``Bspl`` -> dB). Times are seconds: values below
2**28 are relative to the receive time (RFC 8428 §4.5.3), larger ones are epoch seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.text import check_text
from twin.metrics import BY_NAME, Metric

#: Times below this are relative to "now" (RFC 8428, section 4.5.3).
RELATIVE_LIMIT_S = 2**28
#: SenML version understood (RFC 8428 is version 10).
SENML_VERSION = 10
#: Longest record name (``bn + n``) and unit accepted, in characters.
NAME_MAX = 256
UNIT_MAX = 32


@dataclass(frozen=True, slots=True)
class UnitRule:
    metric: str  # the catalogue metric this unit means when the name does not say
    scale: float = 1.0
    offset: float = 0.0  # catalogue value = value * scale + offset


#: SenML units (RFC 8428 §12.1 and RFC 8798) and a few common extensions -> catalogue.
UNITS: dict[str, UnitRule] = {
    "Cel": UnitRule("temperature"),
    "K": UnitRule("temperature", 1.0, -273.15),
    "%RH": UnitRule("humidity"),
    "ppm": UnitRule("co2"),
    "ug/m3": UnitRule("pm25"),
    "mg/m3": UnitRule("tvoc"),  # not registered in SenML; accepted as sent by common sensors
    "dB": UnitRule("noise"),
    "dBA": UnitRule("noise"),
    "Bspl": UnitRule("noise", 10.0),
    "count": UnitRule("occupancy"),
    "lx": UnitRule("illuminance"),
    "W": UnitRule("power"),
    "kW": UnitRule("power", 1000.0),
    "Wh": UnitRule("energy"),
    "kWh": UnitRule("energy", 1000.0),
    "J": UnitRule("energy", 1 / 3600),
    "%": UnitRule("dimming"),
    "/": UnitRule("on"),
}
#: Metrics that share a unit with the default one (the name tells them apart).
SAME_QUANTITY: dict[str, str] = {
    "blackboard_illuminance": "illuminance",
    "panel_temperature": "temperature",
    "panel_state": "on",
}


@dataclass(frozen=True, slots=True)
class SenmlReading:
    device: str  # "" = the device of the topic
    ts: datetime
    metric: Metric
    value: float
    ts_from_receive: bool


def _num(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def resolve_name(name: str, unit: str | None) -> tuple[str, Metric] | str:
    """``(device, metric)`` for a resolved SenML name, or an error string."""
    metric = BY_NAME.get(name)
    if metric is not None:
        return "", metric
    cut = max(name.rfind("/"), name.rfind(":"))
    if cut >= 0 and name[cut + 1:] in BY_NAME:
        device, metric = name[:cut], BY_NAME[name[cut + 1:]]
    elif unit is not None and unit in UNITS:
        device, metric = name.rstrip("/:"), BY_NAME[UNITS[unit].metric]
    else:
        return f"SenML name {name[:60]!r} names no catalogue metric" + (f" (unit {unit!r})" if unit else "")
    # "campus/v1/hq/ENV-101" or "hq/ENV-101" name the device by its last topic level
    return device.rsplit("/", 1)[-1], metric


def convert(metric: Metric, unit: str | None, value: float) -> float | str:
    """``value`` in ``unit`` -> the catalogue unit of ``metric``, or an error string."""
    if unit is None or unit == "":
        return value
    rule = UNITS.get(unit)
    if rule is None:
        return f"{metric.name}: unknown SenML unit {unit[:20]!r}"
    if rule.metric != metric.name and SAME_QUANTITY.get(metric.name) != rule.metric:
        return f"{metric.name}: unit {unit!r} does not fit ({metric.unit or 'no unit'} expected)"
    return value * rule.scale + rule.offset


def decode_pack(doc: list, received_at: datetime) -> tuple[list[SenmlReading], list[str]]:
    """Readings and errors of a parsed SenML pack; values are not range-checked here."""
    readings: list[SenmlReading] = []
    errors: list[str] = []
    if not doc:
        return readings, ["SenML pack is empty"]
    bn, bt, bu, bv, bs = "", 0.0, None, 0.0, 0.0
    for i, rec in enumerate(doc):
        if not isinstance(rec, dict):
            errors.append(f"SenML record {i} is not an object")
            continue
        must = [k for k in rec if isinstance(k, str) and k.endswith("_")]
        if must:
            return [], [f"SenML record {i} has must-understand field {must[0][:20]!r}: pack refused"]
        bver = rec.get("bver", SENML_VERSION)
        if isinstance(bver, bool) or not isinstance(bver, int) or bver > SENML_VERSION:
            return [], [f"SenML version {bver!r} not supported: pack refused"]
        try:
            if "bn" in rec:
                if not isinstance(rec["bn"], str):
                    raise ValueError("bn must be a string")
                if rec["bn"] and (error := check_text(rec["bn"], "bn", NAME_MAX)):
                    raise ValueError(error)
                bn = rec["bn"]
            for key in ("bt", "bv", "bs"):
                if key in rec:
                    num = _num(rec[key])
                    if num is None or not math.isfinite(num):
                        raise ValueError(f"{key} must be a finite number")
                    if key == "bt":
                        bt = num
                    elif key == "bv":
                        bv = num
                    else:
                        bs = num
            if "bu" in rec:
                if not isinstance(rec["bu"], str):
                    raise ValueError("bu must be a string")
                if rec["bu"] and (error := check_text(rec["bu"], "bu", UNIT_MAX)):
                    raise ValueError(error)
                bu = rec["bu"]
        except ValueError as exc:
            errors.append(f"SenML record {i}: {exc}")
            continue
        reading = _record(rec, i, bn, bt, bu, bv, bs, received_at)
        if isinstance(reading, str):
            errors.append(reading)
        elif reading is not None:
            readings.append(reading)
    return readings, errors


def _record(rec: dict, i: int, bn: str, bt: float, bu: str | None, bv: float, bs: float,
            received_at: datetime) -> SenmlReading | str | None:
    has_value = any(k in rec for k in ("v", "vb", "vs", "vd", "s"))
    if not has_value:
        # a record that only sets base fields carries no reading
        return None if any(k in rec for k in ("bn", "bt", "bu", "bv", "bs", "bver")) else (
            f"SenML record {i} has no value")
    n = rec.get("n", "")
    if not isinstance(n, str):
        return f"SenML record {i}: n must be a string"
    name = bn + n
    if not name:
        return f"SenML record {i} has no name"
    if error := check_text(name, "name", NAME_MAX):
        return f"SenML record {i}: {error}"
    unit = rec.get("u", bu)
    if unit is not None and not isinstance(unit, str):
        return f"SenML record {i}: u must be a string"
    if unit and (error := check_text(unit, "u", UNIT_MAX)):
        return f"SenML record {i}: {error}"
    resolved = resolve_name(name, unit)
    if isinstance(resolved, str):
        return resolved
    device, metric = resolved
    if "v" in rec:
        raw = _num(rec["v"])
        if raw is None:
            return f"{metric.name}: SenML v must be a number"
        value = bv + raw
    elif "vb" in rec:
        if not isinstance(rec["vb"], bool):
            return f"{metric.name}: SenML vb must be true or false"
        value = 1.0 if rec["vb"] else 0.0
    elif "s" in rec:
        raw = _num(rec["s"])
        if raw is None:
            return f"{metric.name}: SenML s must be a number"
        value = bs + raw
    else:
        kind = "vs (string)" if "vs" in rec else "vd (data)"
        return f"{metric.name}: SenML {kind} values are not accepted for catalogue metrics"
    if not math.isfinite(value):
        return f"{metric.name}: value is not finite"
    converted = convert(metric, unit, value)
    if isinstance(converted, str):
        return converted
    t = rec.get("t", 0)
    t_num = _num(t)
    if t_num is None or not math.isfinite(t_num):
        return f"SenML record {i}: t must be a finite number"
    when = bt + t_num
    try:
        if when < RELATIVE_LIMIT_S:
            ts = received_at + timedelta(seconds=when)
        else:
            ts = datetime.fromtimestamp(when, tz=received_at.tzinfo)
    except (OverflowError, OSError, ValueError):
        return f"SenML record {i}: time out of range"
    return SenmlReading(device, ts, metric, converted, when == 0)
