"""Rule evaluation, pure: per-minute series of a room in, alarm episodes out.

The input is what the 1-minute rollups hold (one :class:`DeviceMinute` per device, metric
and minute); the output is one :class:`Episode` per violation: rule, room, start, end
(``None`` while open), severity. Evaluating the same data twice gives the same episodes,
so a runner can re-evaluate a day and reconcile with what it stored before.

How a rule is evaluated (``docs/monitoring.md``):

1. Per minute, the room's value: the rule's aggregate over the room's devices (of the rule's kinds).
2. Only minutes in the rule's hours count (lessons; or school hours with the room empty).
3. The rule's window: the minute itself, a trailing mean, or the mean since the day began.
4. A violation observed for ``min_duration`` worth of counted minutes, not interrupted by a
   compliant minute, raises an episode starting at its first violating minute; minutes
   without data neither extend nor interrupt it. A single spike raises nothing.
5. The episode ends at the first minute back inside the bounds by the hysteresis, or at the
   end of the day's hours (when ``now`` is past them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from twin.metrics import BY_NAME
from twin.monitoring.standards import Rule, outside
from twin.timetable import SCHOOL_TZ, Timetable

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class DeviceMinute:
    """One device's rollup of one metric in one minute."""

    bucket: datetime
    device: int
    kind: str
    mean: float
    min: float
    max: float
    n: int = 1


@dataclass(frozen=True, slots=True)
class RoomContext:
    room_id: int
    use: str
    area_m2: float | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Episode:
    """A violation that lasted long enough: one alarm."""

    rule: str
    room_id: int | None
    device: int | None
    start: datetime
    end: datetime | None
    severity: str
    value: float
    message: str


def room_value(rule: Rule, samples: Sequence[DeviceMinute], area_m2: float | None) -> float | None:
    """The rule's aggregate over the devices of one minute; ``None`` when it cannot be computed."""
    if rule.kinds:
        samples = [s for s in samples if s.kind in rule.kinds]
    if not samples:
        return None
    means = [s.mean for s in samples]
    if rule.aggregate == "mean":
        return sum(means) / len(means)
    if rule.aggregate == "min":
        return min(s.min for s in samples)
    if rule.aggregate == "uniformity":
        avg = sum(means) / len(means)
        return min(means) / avg if len(means) >= 2 and avg > 0 else None
    if rule.aggregate == "density":
        return sum(means) / area_m2 if area_m2 else None
    raise ValueError(f"unknown aggregate {rule.aggregate!r}")


def hours_end(rule: Rule, timetable: Timetable, day: date, tz: ZoneInfo = SCHOOL_TZ) -> datetime:
    """When the rule's hours of ``day`` end: the last lesson's end, or the end of the school day."""
    return timetable.lessons_end(day, tz) if rule.hours == "occupied" else timetable.day_hours(day, tz)[1]


def _counts(rule: Rule, timetable: Timetable, local: datetime, occupancy: float | None) -> bool:
    if rule.hours == "occupied":
        return timetable.occupied(local)
    return timetable.school_hours(local) and occupancy is not None and occupancy == 0


def evaluate_rule(rule: Rule, room: RoomContext, minutes: Mapping[datetime, Sequence[DeviceMinute]], *,
                  season_of: Callable[[date], str], now: datetime, timetable: Timetable = Timetable(),
                  occupancy: Mapping[datetime, float] | None = None, tz: ZoneInfo = SCHOOL_TZ) -> list[Episode]:
    """Episodes of one rule in one room from its minutes (bucket -> device samples)."""
    if not rule.enabled or room.use not in rule.uses:
        return []
    occupancy = occupancy or {}
    by_day: dict[date, list[tuple[datetime, float]]] = defaultdict(list)
    for bucket in sorted(minutes):
        local = bucket.astimezone(tz)
        if not _counts(rule, timetable, local, occupancy.get(bucket)):
            continue
        value = room_value(rule, minutes[bucket], room.area_m2)
        if value is not None:
            by_day[timetable.school_date(local)].append((bucket, value))
    episodes: list[Episode] = []
    for day in sorted(by_day):
        episodes += _day_episodes(rule, room, by_day[day], season_of(day), hours_end(rule, timetable, day, tz), now)
    return episodes


def _windowed(rule: Rule, series: list[tuple[datetime, float]]) -> Iterable[tuple[datetime, float]]:
    if rule.window is None:
        yield from series
        return
    total, count, first = 0.0, 0, 0
    for i, (bucket, value) in enumerate(series):
        total, count = total + value, count + 1
        if isinstance(rule.window, timedelta):
            while series[first][0] <= bucket - rule.window:
                total, count, first = total - series[first][1], count - 1, first + 1
        yield bucket, total / count


def _day_episodes(rule: Rule, room: RoomContext, series: list[tuple[datetime, float]], season_name: str,
                  day_end: datetime, now: datetime) -> list[Episode]:
    low, high = rule.bounds(season_name)
    out: list[Episode] = []
    pending: list[tuple[datetime, float]] = []
    active: tuple[datetime, float] | None = None  # (start, worst value)

    def worse(a: float, b: float) -> float:
        return min(a, b) if low is not None and a < low else max(a, b)

    def close(end: datetime | None) -> None:
        assert active is not None
        out.append(_episode(rule, room, active[0], end, active[1], low, high))

    for bucket, value in _windowed(rule, series):
        if active is not None:
            if not outside(value, low, high, rule.hysteresis):
                close(bucket)
                active = None
            else:
                active = (active[0], worse(active[1], value))
            continue
        if not outside(value, low, high):
            pending = []
            continue
        pending.append((bucket, value))
        if len(pending) * MINUTE >= rule.min_duration:
            worst = pending[0][1]
            for _, v in pending:
                worst = worse(worst, v)
            active = (pending[0][0], worst)
            pending = []
    if active is not None:
        close(day_end if now >= day_end else None)
    return out


def _episode(rule: Rule, room: RoomContext, start: datetime, end: datetime | None, worst: float,
             low: float | None, high: float | None) -> Episode:
    unit = BY_NAME[rule.metric].unit if rule.aggregate not in ("uniformity", "density") else (
        "" if rule.aggregate == "uniformity" else "W/m²")
    what = {"mean": rule.metric, "min": f"{rule.metric} (background)", "uniformity": f"{rule.metric} uniformity",
            "density": "lighting power density"}[rule.aggregate]
    if rule.window == "day":
        what = f"daily mean {what}"
    elif rule.window is not None:
        what = f"{what} ({int(rule.window.total_seconds() // 60)} min mean)"  # type: ignore[union-attr]
    bound = f"below {low:g}" if low is not None and worst < low else f"above {high:g}"
    text = (f"{worst:.2f}" if rule.aggregate in ("uniformity", "density")
            else f"{worst:.1f}" if abs(worst) < 100 else f"{worst:.0f}")
    message = f"{what} {text}{(' ' + unit) if unit else ''} {bound} ({rule.standard})"
    return Episode(rule.id, room.room_id, None, start, end, rule.severity, worst, message)


def evaluate_room(rules: Iterable[Rule], room: RoomContext,
                  metrics: Mapping[str, Mapping[datetime, Sequence[DeviceMinute]]], *,
                  season_of: Callable[[date], str], now: datetime, timetable: Timetable = Timetable(),
                  tz: ZoneInfo = SCHOOL_TZ) -> list[Episode]:
    """Every rule over one room; ``metrics`` maps a metric name to its minutes."""
    occupancy = {b: sum(s.mean for s in ss) for b, ss in metrics.get("occupancy", {}).items()}
    out: list[Episode] = []
    for rule in rules:
        out += evaluate_rule(rule, room, metrics.get(rule.metric, {}), season_of=season_of, now=now,
                             timetable=timetable, occupancy=occupancy, tz=tz)
    return sorted(out, key=lambda e: (e.start, e.rule))
