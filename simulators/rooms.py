"""What a room is and who is in it: the facts the device physics needs, and occupancy.

A :class:`RoomContext` is built once per room by the fleet (from the BIM in the twin)
and shared by the room's devices, so the sensor sees people exactly when the lights
switch on for them. Occupancy follows the timetable and a per-room, per-day plan drawn
from the room's key (absences, the lesson the class spends at PE, which lessons use the
panel), so it is reproducible for a seed:

    >>> from datetime import datetime
    >>> room = RoomContext(key="demo/R1", class_size=45)
    >>> occupancy(Timetable(), datetime(2026, 11, 23, 23, 0), room)  # Monday night
    0
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache

from simulators.climate import DEFAULT_LATITUDE, DEFAULT_LONGITUDE, DEFAULT_WINDOW_AZIMUTH
from simulators.timetable import LUNCH, SCHOOL_END, SCHOOL_START, Timetable

#: Chinese primary and middle school classes are large.
CLASS_SIZE = 45
#: GB 50099 asks for at least 1.36 m² per pupil and 3.0 m clear height in a classroom: about 4 m³ of air each.
MIN_VOLUME_PER_PERSON_M3 = 4.0
LUNCH_NAP = (time(12, 20), time(13, 50))  # 午休: pupils nap at their desks


@dataclass(frozen=True, slots=True)
class RoomContext:
    """A room as the simulators see it (lengths in metres, angles in degrees)."""

    key: str = "room"
    use: str = "classroom"
    class_size: int = CLASS_SIZE
    area_m2: float = 63.0
    height_m: float = 3.2
    window_azimuth: float = DEFAULT_WINDOW_AZIMUTH
    latitude: float = DEFAULT_LATITUDE
    longitude: float = DEFAULT_LONGITUDE
    weather_seed: int = 0
    #: Mechanical fresh air (air changes per hour) in school hours; 0 when the room has none.
    fresh_air_ach: float = 0.0
    #: Whether the teachers open the windows in mild weather (some rooms stay shut all day).
    opens_windows: bool = True
    #: CO2 (ppm) at which the air of the occupied room is stuffy enough for a window or the door to be
    #: opened whatever the weather (and the AC), until it is about 1,000 ppm lower.
    airs_at_ppm: float = 2500.0

    @property
    def volume_m3(self) -> float:
        """Air volume; at least :data:`MIN_VOLUME_PER_PERSON_M3` per pupil (a BIM room too small for its class)."""
        return max(20.0, self.area_m2 * self.height_m, MIN_VOLUME_PER_PERSON_M3 * self.class_size)


@dataclass(frozen=True, slots=True)
class DayPlan:
    absent: int
    pe_lesson: int | None  # the lesson the class spends on the sports ground
    lab_lessons: frozenset[int]  # lessons a lab is used
    panel_used: tuple[bool, ...]  # per lesson: the teacher uses the interactive panel
    hdmi: tuple[bool, ...]  # per lesson: a laptop on HDMI instead of the built-in PC


@lru_cache(maxsize=65536)
def day_plan(key: str, day: date, lessons: int) -> DayPlan:
    """The room's plan for a day, the same for every run with the same key."""
    r = random.Random(f"plan/{key}/{day.isoformat()}")
    return DayPlan(
        absent=min(4, int(r.expovariate(1.2))),
        pe_lesson=r.randrange(lessons) if r.random() < 0.7 else None,
        lab_lessons=frozenset(i for i in range(lessons) if r.random() < 0.45),
        panel_used=tuple(r.random() < 0.85 for _ in range(lessons)),
        hdmi=tuple(r.random() < 0.2 for _ in range(lessons)),
    )


def school_hours(local: datetime) -> bool:
    t = local.time()
    return SCHOOL_START <= t < SCHOOL_END


def occupancy(tt: Timetable, local: datetime, room: RoomContext) -> int:
    """People in the room: the class in its lessons (not at PE), fewer in breaks, nappers at lunch."""
    phase = tt.phase(local)
    if phase in ("night", "off_day"):
        return 0
    local = tt.school_clock(local)  # the day plan and the nap follow the timetable (shifted in the demo)
    t = local.time()
    if room.use == "office":
        return 2 if phase == "lunch" else 4
    if room.use in ("corridor", "stair", "toilet", "other"):
        return 25 if phase == "break" else 2
    plan = day_plan(room.key, local.date(), len(tt.lessons))
    lesson = tt.lesson_index(local - tt.shift)
    present = max(0, room.class_size - plan.absent)
    if room.use == "lab":
        return present if lesson is not None and lesson in plan.lab_lessons else 0
    if phase == "lesson":
        return 0 if lesson == plan.pe_lesson else present
    if phase == "break":
        return int(present * 0.4)
    if phase == "lunch":
        if LUNCH_NAP[0] <= t < LUNCH_NAP[1]:
            return int(present * 0.8)
        return present if t >= LUNCH_NAP[1] else int(present * 0.2)
    if phase == "after_school":
        return 5 if t < time(17, 0) else 1
    return 0


__all__ = ["CLASS_SIZE", "LUNCH", "MIN_VOLUME_PER_PERSON_M3", "DayPlan", "RoomContext", "day_plan", "occupancy", "school_hours"]
