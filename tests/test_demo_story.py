"""The demo tells a story from its first minute: a week of history, alarms of both kinds, daily KPIs, a
cloud class in session whatever the hour it starts (a demo-only timetable shift, docs/simulators.md)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import wait_for
from twin.database import connection
from twin.messaging.broker import free_port
from twin.timetable import SCHOOL_TZ, Timetable, demo_timetable


@pytest.mark.parametrize("weekday", range(7))
def test_the_demo_timetable_puts_every_minute_of_the_week_in_a_cloud_lesson(weekday):
    from simulators.cloud_class import CLOUD_LESSONS

    start = datetime(2026, 11, 23 + weekday, 0, 0, tzinfo=SCHOOL_TZ)  # Monday 23 Nov 2026 + weekday
    for minute in range(0, 24 * 60, 7):
        now = start + timedelta(minutes=minute)
        tt = demo_timetable(now)
        assert tt.occupied(now) and tt.lesson_index(now) in CLOUD_LESSONS, now
        assert tt.occupied(now + timedelta(minutes=30)), now  # still in that lesson half an hour later
        assert abs(tt.shift) <= timedelta(hours=12)


def test_a_shifted_timetable_is_the_plain_one_read_at_the_shifted_clock():
    tt = Timetable(shift=timedelta(hours=8, minutes=10), every_day=True)
    night = datetime(2026, 12, 5, 0, 50, tzinfo=SCHOOL_TZ)  # a Saturday, 00:50
    assert Timetable().phase(night) == "off_day" and tt.phase(night) == "lesson"
    assert tt.school_clock(night).time().isoformat() == "09:00:00"
    start, end = tt.day_hours(tt.school_date(night))
    assert start <= night < end and end - start == timedelta(hours=9, minutes=50)
    assert Timetable().day_hours(night.date())[0] == datetime(2026, 12, 5, 7, 40, tzinfo=SCHOOL_TZ)


def test_the_demo_at_any_hour_shows_a_session_alarms_and_lighting_compliance_in_its_first_minute(
        db_url, mqtt_url, tmp_path):
    """Started at 00:50 in Shenzhen (the clock injected): school is in session, a cloud class runs, the
    backfilled week has standards and device-health alarms and a lighting-compliance value per day."""
    real = datetime.now(UTC).astimezone(SCHOOL_TZ)
    now = real.replace(hour=0, minute=50, second=0, microsecond=0)
    if now > real:
        now -= timedelta(days=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "--database-url", db_url, "--mqtt-url", mqtt_url, "--data-dir",
         str(tmp_path / "data"), "demo", "--now", now.isoformat(), "--port", str(free_port()), "--interval", "2", "--schools", "1",
         "--backfill-step", "2h", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("login:"):
                break
        out = "".join(lines)
        assert "in session" in out and "backfilled" in out, out
        with connection(db_url) as conn:
            first, last = conn.execute("SELECT min(ts), max(ts) FROM readings").fetchone()
            assert last - first >= timedelta(days=6, hours=22), (first, last)
            rules = {r for (r,) in conn.execute("SELECT DISTINCT rule FROM alarms")}
            assert any(r.startswith("device_") for r in rules), rules
            assert any(not r.startswith("device_") for r in rules), rules
            days = conn.execute("SELECT count(*) FROM kpi_daily WHERE kpi = 'lighting_compliance' AND scope = '*'"
                                " AND value IS NOT NULL AND day >= %s", (now.date() - timedelta(days=6),)).fetchone()
            assert days[0] >= 6, days

        def cloud_class_running() -> bool:
            with connection(db_url) as conn:
                row = conn.execute(
                    "SELECT count(DISTINCT l.value) FILTER (WHERE l.value > 0), count(*) FILTER (WHERE l.value > 0)"
                    " FROM latest l JOIN metrics m ON m.metric_id = l.metric_id WHERE m.name = 'cloud_session'"
                    " AND l.ts > %s", (now,)).fetchone()
            return row[0] == 1 and row[1] >= 2  # one session: the main classroom and auxiliary ones

        wait_for(cloud_class_running, timeout=45)
        with connection(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM demo_timetable").fetchone()[0] == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    # the shift is the demo's alone: once it stopped, a `monitor` or `dashboard` on this database follows the
    # real timetable
    assert proc.returncode == 0
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM demo_timetable").fetchone()[0] == 0
