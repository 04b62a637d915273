"""A Chinese school day: lessons, breaks, lunch, after school, weekends, holidays.

Pure logic shared by the simulators (who is in the room) and the rule engine (rules of
the standards apply in occupied hours, i.e. during lessons; docs/monitoring.md). Times
are school-local (:data:`SCHOOL_TZ`).

    >>> Timetable().phase(datetime(2026, 11, 23, 8, 10))  # a Monday
    'lesson'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: The schools' local time zone (China Standard Time, no daylight saving).
SCHOOL_TZ = ZoneInfo("Asia/Shanghai")

#: Default lessons (start, end) in local time: 4 in the morning, 3 in the afternoon.
LESSONS: tuple[tuple[time, time], ...] = (
    (time(8, 0), time(8, 45)), (time(8, 55), time(9, 40)), (time(10, 10), time(10, 55)),
    (time(11, 5), time(11, 50)), (time(14, 0), time(14, 45)), (time(14, 55), time(15, 40)),
    (time(15, 50), time(16, 35)),
)
SCHOOL_START, LUNCH, SCHOOL_END = time(7, 40), (time(11, 50), time(14, 0)), time(17, 30)

#: Days without school besides weekends: public holidays and the winter and summer vacations
#: of a Shenzhen school year (approximate; make-up school days on weekends are ignored).
_CLOSED: tuple[tuple[str, str], ...] = (
    ("2025-01-01", "2025-01-01"), ("2025-01-18", "2025-02-16"), ("2025-04-04", "2025-04-06"),
    ("2025-05-01", "2025-05-05"), ("2025-05-31", "2025-06-02"), ("2025-07-05", "2025-08-31"),
    ("2025-10-01", "2025-10-08"),
    ("2026-01-01", "2026-01-03"), ("2026-01-31", "2026-03-01"), ("2026-04-04", "2026-04-06"),
    ("2026-05-01", "2026-05-05"), ("2026-06-19", "2026-06-21"), ("2026-07-11", "2026-08-31"),
    ("2026-09-25", "2026-09-27"), ("2026-10-01", "2026-10-07"),
    ("2027-01-01", "2027-01-03"), ("2027-01-23", "2027-02-21"), ("2027-04-03", "2027-04-05"),
    ("2027-05-01", "2027-05-05"), ("2027-06-09", "2027-06-11"), ("2027-07-10", "2027-08-31"),
    ("2027-09-15", "2027-09-17"), ("2027-10-01", "2027-10-07"),
)


def _days(ranges: tuple[tuple[str, str], ...]) -> frozenset[date]:
    out: set[date] = set()
    for first, last in ranges:
        d, end = date.fromisoformat(first), date.fromisoformat(last)
        while d <= end:
            out.add(d)
            d += timedelta(days=1)
    return frozenset(out)


#: The default holidays (2025-2027).
SCHOOL_HOLIDAYS: frozenset[date] = _days(_CLOSED)


@dataclass(frozen=True, slots=True)
class Timetable:
    """The school day; ``shift`` and ``every_day`` are for the demo only (:func:`demo_timetable`).

    ``shift``: the timetable is read at ``local + shift`` (the school's clock), so that a demo
    started at night finds a lesson in progress; weather and daylight stay on the real clock.
    ``every_day``: every day is a school day (no weekends, no holidays). Both default to the
    real timetable.
    """

    lessons: tuple[tuple[time, time], ...] = LESSONS
    holidays: frozenset[date] = SCHOOL_HOLIDAYS
    shift: timedelta = timedelta(0)
    every_day: bool = False

    def school_clock(self, local: datetime) -> datetime:
        """The time the timetable is read at: ``local`` plus the demo's shift."""
        return local + self.shift if self.shift else local

    def school_date(self, local: datetime) -> date:
        """The school day (by the timetable's clock) that ``local`` belongs to."""
        return self.school_clock(local).date()

    def day_hours(self, day: date, tz: ZoneInfo = SCHOOL_TZ) -> tuple[datetime, datetime]:
        """When school day ``day`` starts and ends (:data:`SCHOOL_START`, :data:`SCHOOL_END`), on the real clock."""
        return (datetime.combine(day, SCHOOL_START, tz) - self.shift, datetime.combine(day, SCHOOL_END, tz) - self.shift)

    def lessons_end(self, day: date, tz: ZoneInfo = SCHOOL_TZ) -> datetime:
        """When the last lesson of school day ``day`` ends, on the real clock."""
        return datetime.combine(day, self.lessons[-1][1], tz) - self.shift

    def school_day(self, day: date) -> bool:
        return self.every_day or (day.weekday() < 5 and day not in self.holidays)

    def phase(self, local: datetime) -> str:
        """One of ``lesson``, ``break``, ``lunch``, ``after_school``, ``night``, ``off_day``.

        Weekends and :data:`SCHOOL_HOLIDAYS` (or the ``holidays`` given) are ``off_day``.
        """
        local = self.school_clock(local)
        if not self.school_day(local.date()):
            return "off_day"
        t = local.time()
        if any(start <= t < end for start, end in self.lessons):
            return "lesson"
        if LUNCH[0] <= t < LUNCH[1]:
            return "lunch"
        if SCHOOL_START <= t < self.lessons[-1][1]:
            return "break"
        if self.lessons[-1][1] <= t < SCHOOL_END:
            return "after_school"
        return "night"

    def lesson_index(self, local: datetime) -> int | None:
        """0-based index of the lesson in progress, or None."""
        local = self.school_clock(local)
        if not self.school_day(local.date()):
            return None
        t = local.time()
        for i, (start, end) in enumerate(self.lessons):
            if start <= t < end:
                return i
        return None

    def last_school_day(self, before: date) -> date:
        """The latest school day on or before ``before``."""
        d = before
        while not self.school_day(d):
            d -= timedelta(days=1)
        return d

    def occupied(self, local: datetime) -> bool:
        """True during a lesson on a school day: the occupied hours in which rules apply."""
        return self.phase(local) == "lesson"

    def school_hours(self, local: datetime) -> bool:
        """True between the start and the end of a school day (lessons, breaks, lunch, after school)."""
        local = self.school_clock(local)
        return self.school_day(local.date()) and SCHOOL_START <= local.time() < SCHOOL_END


#: Where a demo's clock is put in the school day: 5 minutes into a cloud lesson (the 2nd of the morning or the
#: 1st of the afternoon; :mod:`simulators.cloud_class`), so a cloud class runs for 40 minutes after the start.
DEMO_AT = (time(9, 0), time(14, 5))


def demo_timetable(now: datetime) -> Timetable:
    """The demo's timetable: every day a school day, shifted (whole minutes, at most 12 h either way) so that
    ``now`` is 5 minutes into a cloud lesson (the nearer of the two).

    A demo-only setting (stored by the demo, read by its simulators, monitor and dashboard): a newcomer
    who starts the demo at night sees a school in session, and the dashboard says the timetable is shifted.

        >>> demo_timetable(datetime(2026, 12, 5, 0, 50, tzinfo=SCHOOL_TZ)).shift
        datetime.timedelta(seconds=29400)
    """
    local = now.astimezone(SCHOOL_TZ).replace(second=0, microsecond=0)
    day = timedelta(days=1)
    shifts = []
    for at in DEMO_AT:
        s = (datetime.combine(local.date(), at, SCHOOL_TZ) - local) % day
        shifts.append(s - day if s > day / 2 else s)
    return Timetable(shift=min(shifts, key=abs), every_day=True)
