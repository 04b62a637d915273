"""The demo's timetable (schema 15, a demo-only setting): one shift for every school of the database.

``campus-twin demo`` stores it (:func:`twin.timetable.demo_timetable`); the simulators, the monitor
and the dashboard read it, so all of them agree on when school is in session. No row: the real timetable.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from twin.timetable import Timetable


def stored_timetable(conn: psycopg.Connection) -> Timetable:
    """The timetable the twin follows: the demo's when one is stored, else the real one."""
    row = conn.execute("SELECT shift_s, every_day FROM demo_timetable").fetchone()
    if row is None:
        return Timetable()
    return Timetable(shift=timedelta(seconds=row[0]), every_day=row[1])


def clear_demo_timetable(conn: psycopg.Connection) -> None:
    """Forget the demo's timetable (the demo, when it stops): the real one applies again."""
    conn.execute("DELETE FROM demo_timetable")


def store_demo_timetable(conn: psycopg.Connection, timetable: Timetable) -> None:
    """Store the demo's timetable (replacing the one stored)."""
    conn.execute("""INSERT INTO demo_timetable (only_row, shift_s, every_day) VALUES (true, %s, %s)
                    ON CONFLICT (only_row) DO UPDATE SET shift_s = excluded.shift_s, every_day = excluded.every_day,
                    set_at = now()""", (int(timetable.shift.total_seconds()), timetable.every_day))
