"""Cloud classes of the 1+N network: a headquarters classroom streams, member classrooms join.

In Shenzhen's "cloud school" model a main classroom (主讲课堂) at the headquarters
teaches live while one auxiliary classroom (辅助课堂) in every member school follows on
its interactive panel. Here two lessons a day are cloud lessons (the second of the
morning and the first of the afternoon); which headquarters classroom hosts rotates by
day and lesson, and each member school joins with the classroom of the same number
(modulo its size). Every panel works this out alone from its :class:`CloudSeat`, so no
device needs to talk to another:

    >>> from datetime import datetime
    >>> hq = CloudSeat("headquarters", index=22, site_panels=24, hq_panels=24)
    >>> member = CloudSeat("member", index=10, site_panels=12, hq_panels=24)
    >>> when = datetime(2026, 11, 23, 9, 0)  # Monday, second lesson
    >>> cloud_session(hq, Timetable(), when), cloud_session(member, Timetable(), when)
    ((2026112301, 1), (2026112301, 2))

Telemetry of the panels carries ``cloud_session`` (the session number ``YYYYMMDDLL``,
equal at the main and every auxiliary classroom, 0 when none), ``cloud_role`` (1 main,
2 auxiliary) and ``input_source`` 3 (the cloud-class stream); see docs/simulators.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from simulators.timetable import Timetable

#: Lesson indices (0-based) that are cloud lessons on every school day.
CLOUD_LESSONS = (1, 4)
MAIN, AUXILIARY = 1, 2


@dataclass(frozen=True, slots=True)
class CloudSeat:
    """A classroom panel's place in the network: its site's role, its number, the sizes."""

    role: Literal["headquarters", "member"]
    index: int
    site_panels: int
    hq_panels: int


def host_index(when: datetime, lesson: int, hq_panels: int) -> int:
    """Which headquarters classroom (by number) hosts the cloud lesson."""
    return (when.toordinal() * 3 + lesson) % hq_panels


def cloud_session(seat: CloudSeat, tt: Timetable, local: datetime) -> tuple[int, int] | None:
    """``(session number, role)`` when this classroom takes part in a cloud lesson now, else None."""
    lesson = tt.lesson_index(local)
    if lesson is None or lesson not in CLOUD_LESSONS or seat.hq_panels <= 0 or seat.site_panels <= 0:
        return None
    day = tt.school_date(local)
    host = host_index(day, lesson, seat.hq_panels)
    number = int(f"{day:%Y%m%d}{lesson:02d}")
    if seat.role == "headquarters":
        return (number, MAIN) if seat.index == host else None
    return (number, AUXILIARY) if seat.index == host % seat.site_panels else None
