"""A Chinese school day: lessons, breaks, lunch, after school, weekends, holidays.

    >>> Timetable().phase(datetime(2026, 11, 23, 8, 10))  # a Monday
    'lesson'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

#: Default lessons (start, end) in local time: 4 in the morning, 3 in the afternoon.
LESSONS: tuple[tuple[time, time], ...] = (
    (time(8, 0), time(8, 45)), (time(8, 55), time(9, 40)), (time(10, 10), time(10, 55)),
    (time(11, 5), time(11, 50)), (time(14, 0), time(14, 45)), (time(14, 55), time(15, 40)),
    (time(15, 50), time(16, 35)),
)
SCHOOL_START, LUNCH, SCHOOL_END = time(7, 40), (time(11, 50), time(14, 0)), time(17, 30)


@dataclass(frozen=True, slots=True)
class Timetable:
    lessons: tuple[tuple[time, time], ...] = LESSONS
    holidays: frozenset[date] = field(default_factory=frozenset)

    def school_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def phase(self, local: datetime) -> str:
        """One of ``lesson``, ``break``, ``lunch``, ``after_school``, ``night``, ``off_day``."""
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
        if not self.school_day(local.date()):
            return None
        t = local.time()
        for i, (start, end) in enumerate(self.lessons):
            if start <= t < end:
                return i
        return None
