"""Fault injection: what goes wrong with real devices and networks, declared by a profile.

A profile gives, per fault kind, the probability that a fault starts at one telemetry
message of one device (``disconnect``: of one connection). Profiles are named
(:data:`PROFILES`) or written out, ``"dropout=0.01,spike=0.002"``. Every injected fault
is logged with kind, site, device and simulated time as a structured log line
(``fault injected kind=... site=... device=... ts=...``) and, when a path is given, as
one JSON object per line, so that tests can check the twin notices each one:

| kind | what the device does | logged with |
|---|---|---|
| dropout | publishes nothing for 3-10 intervals (``seq`` keeps counting: a gap) | until |
| stuck | one metric repeats its value for 30-120 simulated minutes | metric, value, until |
| drift | one metric drifts away linearly (a calibration fault) until the run ends | metric, start, per_hour |
| spike | one message carries an absurd value of one metric, inside its physical range | metric, value |
| out_of_range | one message carries a value outside the metric's physical range (a dead letter) | metric, value |
| low_battery | a battery-powered device's battery falls below 20 % and stays there | battery |
| duplicate | one message is published twice (same ``seq`` and ``ts``) | seq |
| out_of_order | one message is held back and published after the next one | seq |
| clock_skew | timestamps are off by 2-60 minutes for 10-40 intervals | offset_s, until |
| malformed | one payload is broken (truncated JSON, text, NaN, no metrics) | seq, variant |
| reboot | ``seq`` restarts at 1 and the status is republished | seq |
| disconnect | the connection's socket is dropped: the broker sends its last will, the client reconnects | |
"""

from __future__ import annotations

import logging
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from twin.messaging import contract

log = logging.getLogger(__name__)

FAULT_KINDS = ("dropout", "stuck", "drift", "spike", "out_of_range", "low_battery", "duplicate", "out_of_order",
               "clock_skew", "malformed", "reboot", "disconnect")

#: Named profiles: probability per message (per connection message for ``disconnect``). ``low_battery``
#: is asked only of devices with a battery (environment sensors) and happens once per device.
PROFILES: dict[str, dict[str, float]] = {
    "none": {},
    "light": {"dropout": 2e-4, "stuck": 1e-4, "drift": 2e-5, "spike": 2e-4, "out_of_range": 1e-4,
              "low_battery": 1e-5, "duplicate": 5e-4, "out_of_order": 2e-4, "clock_skew": 5e-5, "malformed": 2e-4,
              "reboot": 5e-5, "disconnect": 1e-5},
    "chaos": {"dropout": 5e-3, "stuck": 2e-3, "drift": 5e-4, "spike": 5e-3, "out_of_range": 2e-3,
              "low_battery": 2e-4, "duplicate": 1e-2, "out_of_order": 5e-3, "clock_skew": 1e-3, "malformed": 5e-3,
              "reboot": 1e-3, "disconnect": 2e-4},
    # Every kind often: for tests and for watching the twin's alarms light up in a demo.
    "all": {k: 0.05 for k in FAULT_KINDS} | {"disconnect": 0.002},
}

#: Metrics that a stuck, drifting or spiking sensor may affect, with the drift per hour and a spike value
#: (absurd, but inside the physical range of twin/metrics.py: an outlier, not a dead letter).
AFFECTED = {
    "co2": (150.0, 9500.0), "temperature": (0.8, 84.0), "humidity": (3.0, 100.0), "pm25": (5.0, 900.0),
    "noise": (2.0, 135.0), "illuminance": (40.0, 150000.0), "blackboard_illuminance": (40.0, 150000.0),
    "power": (3.0, 5000.0), "panel_temperature": (1.0, 110.0),
}
#: Values outside the physical range of twin/metrics.py (ingest dead-letters them): a broken sensor or ADC.
OUT_OF_RANGE = {
    "co2": (70000.0, -1.0), "temperature": (120.0, -55.0), "humidity": (140.0, -5.0), "pm25": (1500.0, -2.0),
    "noise": (160.0, -3.0), "illuminance": (250000.0, -10.0), "blackboard_illuminance": (250000.0, -10.0),
    "power": (150000.0, -5.0), "panel_temperature": (150.0, -30.0),
}
#: A stuck fault freezes a value only while it is live (a lit luminaire's power and illuminance, not standby or
#: darkness, which look the same when healthy): below these the metric is not chosen.
STUCK_LIVE_MIN = {"illuminance": 50.0, "blackboard_illuminance": 50.0, "power": 1.0}
#: How long a stuck fault lasts, simulated minutes (the twin's stuck rules need 20-60 minutes).
STUCK_MINUTES = (30.0, 120.0)
#: A low battery fault leaves this much charge, %.
LOW_BATTERY_PCT = (3.0, 18.0)
MALFORMED = ("truncated", "not_json", "nan", "no_metrics", "string_value")


class FaultProfileError(ValueError):
    """A fault profile that is neither a known name nor ``kind=rate,...``."""


@dataclass(frozen=True, slots=True)
class FaultProfile:
    name: str
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return any(r > 0 for r in self.rates.values())


def parse_profile(spec: str | None) -> FaultProfile:
    """``"chaos"`` or ``"dropout=0.01,spike=0.002"`` (a name and overrides may be mixed: ``light,spike=0.1``)."""
    if not spec:
        return FaultProfile("none")
    rates: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if "=" not in part:
            if part not in PROFILES:
                raise FaultProfileError(f"unknown fault profile {part!r} (known: {', '.join(PROFILES)})")
            rates.update(PROFILES[part])
            continue
        kind, _, value = part.partition("=")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise FaultProfileError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        try:
            rate = float(value)
        except ValueError:
            raise FaultProfileError(f"fault rate of {kind} must be a number, got {value!r}") from None
        if not 0 <= rate <= 1:
            raise FaultProfileError(f"fault rate of {kind} must be within 0..1, got {rate}")
        rates[kind] = rate
    return FaultProfile(spec, rates)


class FaultLog:
    """Where injected faults go: a structured log line each, and a JSON-lines file when given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file = open(path, "ab") if path is not None else None  # noqa: SIM115 - closed in close()

    def record(self, kind: str, site_id: str, device_id: str, ts: datetime, **detail: Any) -> None:
        event = {"kind": kind, "site": site_id, "device": device_id, "ts": ts.isoformat(), **detail}
        log.info("fault injected kind=%s site=%s device=%s ts=%s %s", kind, site_id, device_id, ts.isoformat(),
                    " ".join(f"{k}={v}" for k, v in detail.items()))
        with self._lock:
            self.events.append(event)
            if self._file is not None:
                self._file.write(orjson.dumps(event) + b"\n")
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(slots=True)
class _DeviceFaults:
    rng: random.Random
    dropout_until: datetime | None = None
    stuck: tuple[str, float, datetime] | None = None  # metric, value, until
    drift: tuple[str, float, datetime] | None = None  # metric, per hour, since
    skew: tuple[timedelta, datetime] | None = None  # offset, until
    held: bytes | None = None
    battery: float | None = None  # the charge a low battery fault left


@dataclass(frozen=True, slots=True)
class Outcome:
    payloads: list[bytes]
    seq: int
    rebooted: bool = False
    #: The battery charge to report (after a low battery fault), None for a device without a battery.
    battery: float | None = None
    #: A low battery fault started at this message (report the battery at once).
    battery_fault: bool = False


class FaultInjector:
    """Applies a profile to each device's telemetry; reproducible per device for a seed."""

    def __init__(self, profile: FaultProfile, seed: int, sink: FaultLog) -> None:
        self.profile, self.seed, self.sink = profile, seed, sink
        self.rates = {k: profile.rates.get(k, 0.0) for k in FAULT_KINDS}
        self._devices: dict[tuple[str, str], _DeviceFaults] = {}
        self._conn_rng: dict[str, random.Random] = {}

    def _state(self, site_id: str, device_id: str) -> _DeviceFaults:
        key = (site_id, device_id)
        st = self._devices.get(key)
        if st is None:
            st = self._devices[key] = _DeviceFaults(random.Random(f"faults/{self.seed}/{site_id}/{device_id}"))
        return st

    def telemetry(self, site_id: str, device_id: str, ts: datetime, seq: int, metrics: dict[str, float],
                  interval_s: float, *, battery: float | None = None) -> Outcome:
        """The payloads to publish for one telemetry message (none, one, or several), the ``seq`` used, and
        the battery to report (``battery`` is the device's true charge; None when it has no battery)."""
        st = self._state(site_id, device_id)
        r, rates, rec = st.rng, self.rates, self.sink.record
        step = timedelta(seconds=interval_s)

        def hit(kind: str) -> bool:
            return rates[kind] > 0 and r.random() < rates[kind]

        battery_fault = False
        if battery is not None and st.battery is None and hit("low_battery"):
            st.battery = round(min(battery, r.uniform(*LOW_BATTERY_PCT)), 1)
            battery_fault = True
            rec("low_battery", site_id, device_id, ts, battery=st.battery)
        if battery is not None and st.battery is not None:
            battery = min(battery, st.battery)
        if st.dropout_until is not None and ts < st.dropout_until:
            return Outcome([], seq, battery=battery, battery_fault=battery_fault)
        st.dropout_until = None
        if hit("dropout"):
            st.dropout_until = ts + step * r.uniform(3, 10)
            rec("dropout", site_id, device_id, ts, until=st.dropout_until.isoformat())
            return Outcome([], seq, battery=battery, battery_fault=battery_fault)
        rebooted = False
        if hit("reboot"):
            seq, rebooted = 1, True
            rec("reboot", site_id, device_id, ts, seq=1)
        candidates = [m for m in metrics if m in AFFECTED]
        metrics = dict(metrics)
        if st.stuck is not None:
            metric, value, until = st.stuck
            if ts < until and metric in metrics:
                metrics[metric] = value
            else:
                st.stuck = None
        elif candidates and hit("stuck"):
            live = [m for m in candidates if metrics[m] >= STUCK_LIVE_MIN.get(m, -math.inf)]
            if live:
                metric = r.choice(live)
                st.stuck = (metric, metrics[metric], ts + timedelta(minutes=r.uniform(*STUCK_MINUTES)))
                rec("stuck", site_id, device_id, ts, metric=metric, value=metrics[metric],
                    until=st.stuck[2].isoformat())
        if st.drift is None and candidates and hit("drift"):
            metric = r.choice(candidates)
            st.drift = (metric, AFFECTED[metric][0] * r.choice((-1, 1)), ts)
            rec("drift", site_id, device_id, ts, metric=metric, start=metrics[metric], per_hour=st.drift[1])
        if st.drift is not None and st.drift[0] in metrics:
            metric, per_hour, since = st.drift
            metrics[metric] = round(max(0.0, metrics[metric] + per_hour * (ts - since).total_seconds() / 3600), 2)
        if candidates and hit("spike"):
            metric = r.choice(candidates)
            metrics[metric] = AFFECTED[metric][1]
            rec("spike", site_id, device_id, ts, metric=metric, value=metrics[metric])
        if candidates and hit("out_of_range"):
            metric = r.choice(candidates)
            metrics[metric] = r.choice(OUT_OF_RANGE[metric])
            rec("out_of_range", site_id, device_id, ts, metric=metric, value=metrics[metric])
        sent_ts = ts
        if st.skew is not None and ts >= st.skew[1]:
            st.skew = None
        if st.skew is None and hit("clock_skew"):
            offset = timedelta(minutes=r.uniform(2, 60) * r.choice((-1, 1)))
            st.skew = (offset, ts + step * r.uniform(10, 40))
            rec("clock_skew", site_id, device_id, ts, offset_s=round(offset.total_seconds()),
                until=st.skew[1].isoformat())
        if st.skew is not None:
            sent_ts = ts + st.skew[0]
        payload = contract.telemetry_payload(sent_ts, seq, metrics)
        if hit("malformed"):
            variant = r.choice(MALFORMED)
            payload = malform(payload, variant)
            rec("malformed", site_id, device_id, ts, seq=seq, variant=variant)
        out = [payload]
        if hit("duplicate"):
            out.append(payload)
            rec("duplicate", site_id, device_id, ts, seq=seq)
        if st.held is not None:
            out.append(st.held)  # the held message goes out after this newer one
            st.held = None
        elif hit("out_of_order"):
            st.held = payload
            out.remove(payload)
            rec("out_of_order", site_id, device_id, ts, seq=seq)
        return Outcome(out, seq, rebooted, battery, battery_fault)

    def disconnect(self, connection: str, ts: datetime) -> bool:
        """Whether to drop this connection now (asked once per message the connection sends)."""
        rate = self.rates["disconnect"]
        if rate <= 0:
            return False
        r = self._conn_rng.get(connection)
        if r is None:
            r = self._conn_rng[connection] = random.Random(f"faults/{self.seed}/conn/{connection}")
        if r.random() < rate:
            self.sink.record("disconnect", connection.split("/")[0], connection, ts)
            return True
        return False


def malform(payload: bytes, variant: str) -> bytes:
    """A broken version of a telemetry payload."""
    if variant == "truncated":
        return payload[: max(1, len(payload) // 2)]
    if variant == "not_json":
        return b"co2=" + payload[:20]
    doc = orjson.loads(payload)
    if variant == "nan":
        key = next(iter(doc["metrics"]))
        return payload.replace(f'"{key}":'.encode(), f'"{key}":NaN,"_":'.encode(), 1)
    if variant == "no_metrics":
        doc.pop("metrics")
    elif variant == "string_value":
        key = next(iter(doc["metrics"]))
        doc["metrics"][key] = "high"
    return orjson.dumps(doc)
