"""Sensor drift against neighbours, pure: 10-minute means of a window in, drift episodes out.

A drifting sensor (a calibration fault) moves away from the truth linearly, e.g. a
temperature sensor gaining 0.8 °C an hour. Its neighbours are the other devices
reporting the same metric in its room, or (fewer than two there) on its storey. Per
10 minutes, the residual is the device's mean minus the median of its neighbours'
means (at least two of them with data then). Rooms differ by roughly constant
offsets (sun, occupancy, windows), and a change of the whole storey (windows opened,
air conditioning) moves the median with the device: neither changes the residual's
*trend*. Drift does. Only quiet steps count (``quiet_hours``: outside school hours and
``SETTLE`` after them), when healthy rooms are in the same state; in school hours
occupancy, windows and air conditioning part them by more than a drift does in 3 h.

A device drifts when, over the window (``WINDOW``, with data in its first and last
thirds and in at least half its 10-minute steps):

1. the residual's Theil–Sen slope times the window exceeds the metric's bound (``BOUNDS``);
2. the medians of the window's last and first thirds differ in the same direction by at
   least half the bound (the trend is in the data, not in a few pairs);
3. the line explains the residual (``MIN_R2``) and better than a single step does (a step
   is one room's windows opening or its air conditioning starting, not a calibration fault).

The episode starts where the fitted residual left the bound, measured from the window's
start (or where an open drift alarm of the device started: ``open_since``), and stays
open (``end`` None): the monitor re-evaluates the window and clears what is no longer
explained. docs/monitoring.md, "Device health".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from twin.metrics import BY_NAME
from twin.monitoring.rule_engine import Episode
from twin.timetable import SCHOOL_TZ, Timetable

RULE = "device_drift"
SEVERITY = "warning"
WINDOW = timedelta(hours=3)
STEP = timedelta(minutes=10)
#: Rooms are compared only when they are in the same state: outside school hours, from
#: ``SETTLE`` after them (CO2 and heat of the day decay, windows and air conditioning are
#: shut) until they begin. In school hours occupancy, PE lessons, labs, windows and air
#: conditioning make healthy rooms part by more than a drift does in 3 h.
SETTLE = timedelta(hours=3)
#: Residual change over the window, per metric: above what a healthy simulated fleet reached
#: in quiet hours, below what the simulator's drift fault gives in 3 h (simulators/faults.py
#: AFFECTED x 3 h). Healthy maxima: 24 classrooms in storeys of 6, ten days over a year, 3 h
#: windows every 30 min, quiet steps only (seeds 0 and 1); in school hours they were
#: 3.9 °C, 44 %RH, 2,600 ppm, 31 µg/m³, 39 dB, 34 °C (panels), 280 W.
BOUNDS: dict[str, float] = {
    "temperature": 1.5,              # healthy 0.2, drift 2.4 °C
    "humidity": 4.5,                 # healthy 1.7, drift 9 %RH
    "co2": 300.0,                    # healthy 201 (rooms still airing out at 23:00), drift 450 ppm
    "pm25": 11.0,                    # healthy 7.6 (outdoor traffic, penetration per room), drift 15 µg/m³
    "noise": 4.5,                    # healthy 2.6, drift 6 dB(A)
    "panel_temperature": 1.5,        # healthy 0.3, drift 3 °C
    "illuminance": 60.0,             # healthy 7.6 (dawn), drift 120 lx
    "blackboard_illuminance": 60.0,  # healthy 5.6, drift 120 lx
    "power": 4.5,                    # healthy 0 (lights off), drift +9 W (a negative drift stays at 0 W)
}
#: Neighbours with data needed in a 10-minute step for a residual.
MIN_NEIGHBOURS = 2
#: Share of the line in the residual's variance needed to call it a trend.
MIN_R2 = 0.6
#: Points at least on each side of a step when comparing the line with the best step.
STEP_SIDE = 3
#: Decimals of the change in messages.
DECIMALS = {"co2": 0}


@dataclass(frozen=True, slots=True)
class DeviceMean:
    """A device's mean of one metric over one step (``bucket`` its start), where the device is."""

    device: int
    room_id: int | None
    storey_id: int | None
    metric: str
    bucket: datetime
    mean: float
    n: int


@dataclass(frozen=True, slots=True)
class Trend:
    """The residual's trend over a window: change (slope x window), thirds, fit."""

    change: float
    thirds: float
    r2: float
    beats_step: bool
    intercept: float
    slope: float  # per hour


def quiet_hours(timetable: Timetable | None = None) -> Callable[[datetime], bool]:
    """Whether a step (by its start) is quiet: no school hours in it nor in the ``SETTLE`` before it."""
    tt = timetable or Timetable()

    def quiet(bucket: datetime) -> bool:
        local = bucket.astimezone(SCHOOL_TZ)
        return not any(tt.school_hours(local + d) for d in (STEP - timedelta(microseconds=1), -SETTLE))

    return quiet


QUIET = quiet_hours()


def drift_episodes(means: Iterable[DeviceMean], *, start: datetime, end: datetime,
                   open_since: Mapping[int, datetime] | None = None,
                   bounds: Mapping[str, float] = BOUNDS, quiet: Callable[[datetime], bool] = QUIET) -> list[Episode]:
    """One open ``device_drift`` episode per device and metric drifting over ``[start, end)``.

    ``means``: per device, metric and step, as :func:`twin.storage.drift.neighbour_means`
    reads them; metrics without a bound are ignored, and steps that are not ``quiet``.
    ``open_since``: device -> start of its open drift alarm, kept as the episode's start while
    it persists, and carried on unchanged while none of the device's metrics can be judged
    (school hours): only a judged window without drift ends it.
    """
    series: dict[str, dict[int, dict[datetime, float]]] = defaultdict(lambda: defaultdict(dict))
    where: dict[int, tuple[int | None, int | None]] = {}
    for m in means:
        if m.metric in bounds and start <= m.bucket < end and quiet(m.bucket):
            series[m.metric][m.device][m.bucket] = m.mean
            where[m.device] = (m.room_id, m.storey_id)
    hours = (end - start) / timedelta(hours=1)
    out = []
    judged: set[int] = set()
    for metric in sorted(series):
        devices, bound = series[metric], bounds[metric]
        # The worst drifter first, then the others again without it: with two neighbours the median
        # is their mean, so a drifting neighbour would make its peers seem to drift by half as much.
        flagged: dict[int, tuple[Trend, int]] = {}
        while True:
            found = []
            healthy = [d for d in devices if d not in flagged]
            for dev in healthy:
                peers = neighbours(dev, healthy, where)
                trend = residual_trend(residuals(devices[dev], [devices[p] for p in peers], start), hours)
                if trend is not None:
                    judged.add(dev)
                if trend is not None and drifts(trend, bound):
                    found.append((abs(trend.change), -dev, trend, len(peers)))
            if not found:
                break
            _, dev, trend, peers = max(found)
            flagged[-dev] = (trend, peers)
        for dev, (trend, peers) in sorted(flagged.items()):
            crossed = start + timedelta(hours=hours * bound / abs(trend.change))
            first = start + (crossed - start) // STEP * STEP
            since = (open_since or {}).get(dev)
            out.append(Episode(RULE, None, dev, since if since is not None else first, None, SEVERITY,
                               round(trend.change, 3), message(metric, trend.change, peers, hours)))
    for dev, since in sorted((open_since or {}).items()):
        if dev not in judged:
            out.append(Episode(RULE, None, dev, since, None, SEVERITY, 0.0,
                               "drift not judged now (rooms in use or too few neighbours reporting)"))
    return out


def neighbours(dev: int, devices: Sequence[int], where: Mapping[int, tuple[int | None, int | None]]) -> list[int]:
    """The other devices in ``dev``'s room when at least two, else on its storey (room or not)."""
    room, storey = where[dev]
    same_room = [d for d in devices if d != dev and room is not None and where[d][0] == room]
    if len(same_room) >= MIN_NEIGHBOURS:
        return same_room
    return [d for d in devices if d != dev and storey is not None and where[d][1] == storey]


def residuals(own: Mapping[datetime, float], peers: Sequence[Mapping[datetime, float]],
              start: datetime) -> list[tuple[float, float]]:
    """``(hours since start, own mean - median of the peers)`` for the steps with enough peers."""
    out = []
    for bucket in sorted(own):
        values = [p[bucket] for p in peers if bucket in p]
        if len(values) >= MIN_NEIGHBOURS:
            out.append(((bucket - start) / timedelta(hours=1), own[bucket] - median(values)))
    return out


def residual_trend(points: Sequence[tuple[float, float]], hours: float) -> Trend | None:
    """The trend of ``points`` over a window of ``hours``; ``None`` when too few or too unevenly spread."""
    steps = hours / (STEP / timedelta(hours=1))
    early = [r for x, r in points if x < hours / 3]
    late = [r for x, r in points if x >= 2 * hours / 3]
    if len(points) < max(2 * STEP_SIDE, steps / 2) or not early or not late:
        return None
    xs = [x for x, _ in points]
    rs = [r for _, r in points]
    slope = median((rs[j] - rs[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)))
    intercept = median(r - slope * x for x, r in points)
    mean_r = sum(rs) / len(rs)
    total = sum((r - mean_r) ** 2 for r in rs)
    line = sum((r - intercept - slope * x) ** 2 for x, r in points)
    return Trend(slope * hours, median(late) - median(early), 1 - line / total if total > 0 else 0.0,
                 line < best_step(rs), intercept, slope)


def best_step(values: Sequence[float]) -> float:
    """The least squared error of a single step (two means) through ``values`` in time order."""
    n = len(values)
    best = float("inf")
    for k in range(STEP_SIDE, n - STEP_SIDE + 1):
        a, b = values[:k], values[k:]
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        best = min(best, sum((v - ma) ** 2 for v in a) + sum((v - mb) ** 2 for v in b))
    return best


def drifts(trend: Trend, bound: float) -> bool:
    """Whether a residual trend is drift beyond ``bound`` (module notes, 1-3)."""
    return (abs(trend.change) >= bound and trend.thirds * trend.change > 0 and abs(trend.thirds) >= bound / 2
            and trend.r2 >= MIN_R2 and trend.beats_step)


def message(metric: str, change: float, peers: int, hours: float) -> str:
    unit = BY_NAME[metric].unit
    span = f"{hours:g} h" if hours >= 1 else f"{hours * 60:g} min"
    return f"{metric} drifts {change:+.{DECIMALS.get(metric, 1)}f} {unit} from {peers} neighbours over {span}"
