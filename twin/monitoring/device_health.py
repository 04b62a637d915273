"""Device health, pure: offline, stuck value, out of physical range, sequence gaps, low battery.

History-based checks (offline, stuck, out of range) turn timestamps into
:class:`~twin.monitoring.rule_engine.Episode` values keyed by their start, so re-evaluating the same
data gives the same alarms. Sequence gaps and battery come from the device's status,
which has no history: they are checked against the present (docs/monitoring.md).

Offline is judged only while the twin was listening: given the spells in which ingest
heard the broker (twin/storage/listening.py), a device's silence counts from
``OFFLINE_INTERVALS`` reporting intervals after each spell began, so the twin's own
downtime (ingest, broker or database down), and the time before it ever listened, raise
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from twin.monitoring.rule_engine import MINUTE, Episode

#: Nominal reporting interval per device kind (what the simulators and typical devices use).
REPORTING_INTERVAL: dict[str, timedelta] = {
    "env_sensor": timedelta(seconds=30), "luminaire": timedelta(seconds=60),
    "blackboard_luminaire": timedelta(seconds=60), "panel": timedelta(seconds=60),
}
DEFAULT_INTERVAL = timedelta(seconds=60)
#: Offline after this many reporting intervals without data.
OFFLINE_INTERVALS = 3
#: A metric repeating exactly the same value for this long (and at least ``STUCK_MIN_SAMPLES`` samples) is
#: stuck: every metric for which a constant reading is implausible, with a duration suited to it (a
#: sensor's noise and the room's own changes move these within minutes; pm25, temperature and humidity
#: can rest on one value in a quiet room for a while).
STUCK_AFTER: dict[str, timedelta] = {
    "co2": timedelta(minutes=20), "noise": timedelta(minutes=20), "pm25": timedelta(minutes=60),
    "temperature": timedelta(minutes=60), "humidity": timedelta(minutes=60),
    "illuminance": timedelta(minutes=30), "blackboard_illuminance": timedelta(minutes=30),
    "power": timedelta(minutes=30), "panel_temperature": timedelta(minutes=60),
}
#: Metrics that may rest on one value below a level: a lux sensor in the dark, the meter of a light
#: that is off. They are stuck only while the repeated value is above it.
STUCK_ONLY_ABOVE: dict[str, float] = {"illuminance": 50.0, "blackboard_illuminance": 50.0, "power": 1.0}
#: A device clock this far from the time its reading was stored is off (info alarm); it is right again
#: under ``CLOCK_OK_S`` (hysteresis).
CLOCK_SKEW_S, CLOCK_OK_S = 120.0, 60.0
STUCK_MIN_SAMPLES = 5
#: Out-of-range dead letters closer than this belong to one alarm; it clears this long after the last.
OUT_OF_RANGE_QUIET = timedelta(minutes=15)
LOW_BATTERY_PCT, BATTERY_CLEAR_PCT = 20.0, 25.0
#: A sequence-gap alarm clears when no new gap was seen for this long.
SEQ_GAP_QUIET = timedelta(hours=1)

SEVERITY = {"device_offline": "warning", "device_stuck": "warning", "device_out_of_range": "warning",
            "device_drift": "warning", "device_seq_gaps": "info", "device_low_battery": "info",
            "device_clock_skew": "info"}


def interval_of(kind: str) -> timedelta:
    return REPORTING_INTERVAL.get(kind, DEFAULT_INTERVAL)


def received_and_expected(kind: str, messages: int, start: datetime, until: datetime,
                          first_heard: datetime | None) -> tuple[float, float] | None:
    """``(received, expected)`` messages of one device over ``[start, until)``; None for kinds that do not report.

    Expected from ``start``, or from ``first_heard`` when that is later (a device installed
    meanwhile); received is capped at expected, so one device's surplus hides no loss.
    """
    interval = REPORTING_INTERVAL.get(kind)
    if interval is None:
        return None
    since = max(start, first_heard) if first_heard is not None else start
    expected = max(0.0, (until - since).total_seconds()) / interval.total_seconds()
    return min(messages, expected), expected


def last_seen_before(offline_from: datetime, kind: str) -> datetime:
    """The minute a device was last seen, from the start of its offline episode (the inverse of
    :func:`offline_episodes`: offline from ``last + 1 min + 3 intervals``)."""
    return offline_from - MINUTE - OFFLINE_INTERVALS * interval_of(kind)


Spell = tuple[datetime, datetime]


def merge_spells(spells: Iterable[Spell]) -> list[Spell]:
    """The union of listening spells (of any number of workers, in any order), sorted and disjoint."""
    out: list[Spell] = []
    for a, b in sorted(spells):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def watched(spells: Iterable[Spell], grace: timedelta) -> list[Spell]:
    """When a device's silence counts: each merged spell of listening from ``grace`` after it began."""
    return [(a + grace, b) for a, b in merge_spells(spells) if b > a + grace]


def first_watched(times: Sequence[Spell], lo: datetime, hi: datetime) -> datetime | None:
    """The first instant of ``[lo, hi)`` inside ``times`` (sorted, disjoint); None when there is none."""
    for a, b in times:
        if a >= hi or lo >= hi:
            break
        if b > lo:
            return max(a, lo)
    return None


def offline_episodes(device: int, kind: str, buckets: Sequence[datetime], *, before: datetime | None,
                     after: datetime | None, now: datetime, listening: Iterable[Spell] | None = None,
                     open_since: datetime | None = None, last: datetime | None = None,
                     spans: Mapping[datetime, tuple[datetime, datetime]] | None = None) -> list[Episode]:
    """Offline periods from the minutes in which a device reported (sorted).

    ``before``: its last minute before the range (``None``: never); ``after``: its first
    minute after the range (``None``: none yet). A device last seen in minute ``b`` (so at
    most ``b + 1 min``) is offline from ``b + 1 min + 3 intervals`` until its next minute.

    ``listening``: the twin's spells of listening (``None``: always listening). Silence is
    judged only from 3 intervals after a spell began until it ended: an episode starts at
    the first such instant of the silence (none when the twin's downtime explains all of
    it) and runs to the device's next minute, across any later downtime. ``open_since``: when
    the device's open offline alarm began; a silence containing it is that alarm still (judged
    then, whatever spells are known now: e.g. raised before the twin recorded spells). ``last``:
    the exact time of its newest report; a silence after it counts from there (offline 3 intervals
    after it, not up to a minute later). ``spans``: minute -> the first and last report in it, so
    that a silence between two minutes is known to the second (a minute without one is taken at its
    edges: last report at its end, first at its start).
    """
    spans = spans or {}
    limit = OFFLINE_INTERVALS * interval_of(kind)
    times = None if listening is None else watched(listening, limit)

    def last_in(seen: datetime) -> datetime:
        """The last report of minute ``seen``: to the second where known, else the minute's end."""
        if last is not None and seen <= last < seen + MINUTE:
            return last
        return spans[seen][1] if seen in spans else seen + MINUTE

    def first(seen: datetime, hi: datetime) -> datetime | None:
        """When the silence after minute ``seen`` until ``hi`` counts as offline (None: never)."""
        if open_since is not None and seen + MINUTE <= open_since < hi:
            return open_since
        lo = last_in(seen) + limit
        if times is None:
            return lo if hi > lo else None
        return first_watched(times, lo, hi)

    points = ([before] if before else []) + list(buckets) + ([after] if after else [])
    out = []
    for p, q in zip(points, points[1:], strict=False):
        back = spans[q][0] if q in spans else q  # the next report, to the second where known
        start = first(p, back)
        if start is not None:
            out.append(_device(device, "device_offline", start, back, f"no data for {_span(back - last_in(p))}"))
    if points and after is None:
        start = first(points[-1], now)
        if start is not None:
            out.append(_device(device, "device_offline", start, None,
                               f"no data since {last_in(points[-1]):%Y-%m-%d %H:%M:%S} UTC"))
    return out


@dataclass(frozen=True, slots=True)
class MetricMinute:
    bucket: datetime
    n: int
    min: float
    max: float


def stuck_episodes(device: int, metric: str, minutes: Sequence[MetricMinute], *, kind: str) -> list[Episode]:
    """Runs of exactly one value (``min == max`` in every minute) lasting :data:`STUCK_AFTER`.

    The episode starts at the run's first minute and ends at the first minute with another
    value; a run still going at the end of the data stays open. A gap longer than the
    offline limit breaks a run.
    """
    after = STUCK_AFTER.get(metric)
    if after is None:
        return []
    floor = STUCK_ONLY_ABOVE.get(metric)
    gap = OFFLINE_INTERVALS * interval_of(kind) + MINUTE
    out: list[Episode] = []
    run: list[MetricMinute] = []

    def flush(end: datetime | None) -> None:
        if floor is not None and run and run[0].min <= floor:
            return
        if run and run[-1].bucket + MINUTE - run[0].bucket >= after and sum(m.n for m in run) >= STUCK_MIN_SAMPLES:
            out.append(_device(device, "device_stuck", run[0].bucket, end,
                               f"{metric} stuck at {run[0].min:g} since {run[0].bucket:%H:%M} UTC"))

    for m in minutes:
        same = m.min == m.max and run and m.min == run[0].min and m.bucket - run[-1].bucket <= gap
        if same:
            run.append(m)
            continue
        flush(m.bucket)
        run = [m] if m.min == m.max else []
    flush(None)
    return out


def per_device(episodes: Iterable[Episode]) -> list[Episode]:
    """One episode per device and rule at a time: overlapping episodes of several metrics (a device whose
    illuminance and power are both stuck) become one, from the first start to the last end, their
    messages joined (an alarm is per device and rule)."""
    out: list[Episode] = []
    for ep in sorted(episodes, key=lambda e: (e.rule, e.device or -1, e.start)):
        prev = out[-1] if out else None
        if (prev is not None and (prev.rule, prev.device) == (ep.rule, ep.device)
                and (prev.end is None or ep.start < prev.end)):
            end = None if prev.end is None or ep.end is None else max(prev.end, ep.end)
            out[-1] = Episode(prev.rule, prev.room_id, prev.device, prev.start, end, prev.severity,
                              max(prev.value, ep.value), f"{prev.message}; {ep.message}")
        else:
            out.append(ep)
    return out


def out_of_range_episodes(device: int, received: Iterable[datetime], *, now: datetime) -> list[Episode]:
    """Groups of out-of-range dead letters (receive times): raised at the first, cleared after a quiet spell."""
    times = sorted(received)
    out: list[Episode] = []
    i = 0
    while i < len(times):
        j = i
        while j + 1 < len(times) and times[j + 1] - times[j] < OUT_OF_RANGE_QUIET:
            j += 1
        end = times[j] + OUT_OF_RANGE_QUIET
        out.append(_device(device, "device_out_of_range", times[i], end if end <= now else None,
                           f"{j - i + 1} value(s) outside the physical range (see dead letters)"))
        i = j + 1
    return out


def battery_low(battery_pct: float | None, *, alarm_open: bool) -> bool | None:
    """True: raise (or keep); False: clear; None: nothing to say (no battery reported)."""
    if battery_pct is None:
        return None
    return battery_pct < (BATTERY_CLEAR_PCT if alarm_open else LOW_BATTERY_PCT)


def clock_off(offset_s: float | None, *, alarm_open: bool) -> bool | None:
    """True: the device's clock is off (raise or keep); False: right again (clear); None: not known."""
    if offset_s is None:
        return None
    return abs(offset_s) >= (CLOCK_OK_S if alarm_open else CLOCK_SKEW_S)


def clock_message(offset_s: float) -> str:
    """``"clock off by 21 min (behind)"``: what a person reads of a device's clock offset."""
    rounded = timedelta(minutes=round(abs(offset_s) / 60))  # a clock 9 min ahead, read a few seconds later
    return f"clock off by {_span(rounded)} ({'ahead' if offset_s > 0 else 'behind'})"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes >= 48 * 60:
        return f"{minutes / 1440:.1f} days"
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _device(device: int, rule: str, start: datetime, end: datetime | None, message: str) -> Episode:
    return Episode(rule, None, device, start, end, SEVERITY[rule], 0.0, message)
