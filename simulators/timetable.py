"""The school timetable lives in ``twin.timetable`` (the rule engine needs it too); re-exported here."""

from twin.timetable import LESSONS, LUNCH, SCHOOL_END, SCHOOL_HOLIDAYS, SCHOOL_START, SCHOOL_TZ, Timetable

__all__ = ["LESSONS", "LUNCH", "SCHOOL_END", "SCHOOL_HOLIDAYS", "SCHOOL_START", "SCHOOL_TZ", "Timetable"]
