"""Alarms a facility manager can trust (issue 17): one alarm per fault, times that make sense.

Through the real broker, ingest worker and PostgreSQL: a clock-skewed device is a clock alarm, not
an offline one; the monitor follows the data's clock for replays and accelerated simulation; every
alarm keeps when it started and when the twin knew; the database refuses an alarm cleared before it
was raised; the monitor's counts are rows. The invariants are checked after every test here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from tests.helpers import small_twin, wait_for
from tests.test_monitoring import DAY, count, ingest_history, lesson_history, listened, local, stored_alarms
from twin.database import connection
from twin.messaging import contract
from twin.monitoring.monitor import Monitor
from twin.monitoring.rule_engine import Episode
from twin.storage import alarms
from twin.storage.model import device_keys, save_model


@pytest.fixture
def site(db_url: str) -> Iterator[tuple[str, str]]:
    site_id = f"tr-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=3))
    yield db_url, site_id
    with connection(db_url) as conn:
        assert alarms.integrity_violations(conn) == []


def device_alarms(url: str, site_id: str) -> list[tuple]:
    return [(rule, dev, msg, sev) for rule, dev, msg, sev in _rows(
        url, """SELECT a.rule, d.device_id, a.message, a.severity FROM alarms a JOIN devices d ON d.id = a.device_id
                WHERE a.site_id = %s ORDER BY a.id""", site_id)]


def _rows(url: str, sql: str, *args: object) -> list[tuple]:
    with connection(url) as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def test_a_clock_skewed_device_is_one_clock_alarm_not_offline(site, mqtt_url):
    """ENV-0's clock is 21 minutes behind; it reports every 30 s like ENV-1. Three live cycles: no
    device_offline for it, one info alarm saying its clock is off (was: an offline alarm per cycle)."""
    url, site_id = site
    now = datetime.now(UTC)
    messages = []
    for k in range(6):
        at = now - timedelta(seconds=150 - 30 * k)
        messages += [("ENV-0", at - timedelta(minutes=21), {"co2": 700.0 + k}),
                     ("ENV-1", at, {"co2": 650.0 + k})]
    ingest_history(url, mqtt_url, site_id, messages)
    listened(url, now - timedelta(minutes=10), datetime.now(UTC))
    monitor = Monitor(url)
    for _ in range(3):
        monitor.run_once()
    assert device_alarms(url, site_id) == [("device_clock_skew", "ENV-0", "clock off by 21 min (behind)", "info")]
    assert monitor.totals.raised == 1


def test_an_episode_found_to_start_earlier_continues_the_open_alarm(site):
    """The data says the fault began 17 minutes before the open alarm: the same alarm, started earlier
    (was: the open alarm cleared at 18:06 although raised at 18:23, and a second one raised)."""
    url, site_id = site
    t = datetime(2026, 11, 16, 10, 23, tzinfo=UTC)
    with connection(url) as conn:
        dev = device_keys(conn)[(site_id, "ENV-0")]
        first = alarms.raise_alarm(conn, site_id, "device_offline", "warning", "no data", device_key=dev, at=t)
        counts = alarms.reconcile(conn, site_id, [Episode("device_offline", None, dev, t - timedelta(minutes=17),
                                                          None, "warning", 0.0, "no data")],
                                  rules=["device_offline"], start=t - timedelta(hours=3), end=t + timedelta(minutes=5),
                                  now=t + timedelta(minutes=5))
        conn.commit()
        rows = conn.execute("SELECT id, raised_at, state FROM alarms WHERE site_id = %s", (site_id,)).fetchall()
    assert rows == [(first, t - timedelta(minutes=17), "open")]
    assert counts == {"raised": 0, "cleared": 0, "updated": 1}


def test_the_database_refuses_an_alarm_cleared_before_it_was_raised(site):
    url, site_id = site
    t = datetime(2026, 11, 16, 10, 23, tzinfo=UTC)
    with connection(url) as conn:
        aid = alarms.raise_alarm(conn, site_id, "device_offline", "warning", device_key=device_keys(conn)[(site_id, "ENV-0")],
                                 at=t)
        assert alarms.clear(conn, aid, t - timedelta(minutes=17))  # clamped to when it was raised
        assert conn.execute("SELECT cleared_at FROM alarms WHERE id = %s", (aid,)).fetchone()[0] == t
        conn.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE alarms SET cleared_at = raised_at - interval '1 minute' WHERE id = %s", (aid,))
        conn.rollback()
        with pytest.raises(psycopg.errors.UniqueViolation):
            for _ in range(2):
                alarms.raise_alarm(conn, site_id, "device_stuck", "warning", device_key=device_keys(conn)[(site_id, "ENV-1")])
        conn.rollback()


def test_the_monitor_counts_rows_once(site):
    """A low battery raised by one cycle is one row and one in the totals (was: the vitals counted twice)."""
    url, site_id = site
    with connection(url) as conn:
        dev = device_keys(conn)[(site_id, "ENV-0")]
        conn.execute("INSERT INTO device_status (device_id, battery_pct) VALUES (%s, 12) "
                     "ON CONFLICT (device_id) DO UPDATE SET battery_pct = 12", (dev,))
    monitor = Monitor(url)
    monitor.run_once(datetime.now(UTC))
    rows = count(url, "SELECT count(*) FROM alarms WHERE site_id = %s", site_id)
    assert rows == 1 and monitor.totals.raised == 1


def test_on_the_data_clock_the_monitor_judges_the_simulated_day(site, mqtt_url):
    """A replayed morning (a past school day): on the wall clock the monitor sees nothing of it; on the data
    clock it is that morning, so the standards of that day are judged live, and a device silent since 08:40
    is offline three intervals after its last report, known at the data's time."""
    url, site_id = site
    history = [m for m in lesson_history() if not (m[0] == "LUM-2" and m[1] >= local(8, 40))]

    def out_of_range(client) -> None:  # ENV-1 at 08:30:30 of that morning: co2 beyond the physical range
        bad = orjson.dumps({"ts": int(local(8, 30).timestamp() * 1000) + 30_000, "seq": 999, "metrics": {"co2": 70000}})
        client.publish(contract.topic(site_id, "ENV-1", "telemetry"), bad, qos=1).wait_for_publish(10)

    ingest_history(url, mqtt_url, site_id, history, extra=out_of_range)
    wait_for(lambda: count(url, "SELECT count(*) FROM dead_letters WHERE topic LIKE %s", f"%{site_id}%") == 1)
    Monitor(url).run_once()  # the wall clock: that morning is not today (only the letter received now counts)
    assert [a for a in stored_alarms(url, site_id) if a[3].date() == DAY] == []
    monitor = Monitor(url, clock="data")
    with connection(url) as conn:
        assert monitor.now(conn) == local(8, 59)
    monitor.run_once()
    got = {(a[0], a[1] or a[2], a[3]) for a in stored_alarms(url, site_id)}
    assert ("temperature_out_of_range", "Room 0", local(8, 10)) in got
    assert ("device_offline", "LUM-2", local(8, 39) + timedelta(minutes=3)) in got
    # dated by the payload's own time, not by when it was received (was: missed on a replay)
    assert ("device_out_of_range", "ENV-1", local(8, 30) + timedelta(seconds=30)) in got
    known = _rows(url, """SELECT a.known_at FROM alarms a JOIN devices d ON d.id = a.device_id
                          WHERE a.site_id = %s AND d.device_id = 'LUM-2'""", site_id)
    assert known == [(local(8, 59),)]
    assert DAY == local(8, 59).date()


def test_a_clock_far_ahead_is_a_clock_alarm_not_offline(site, mqtt_url):
    """ENV-0's clock runs 9 minutes ahead: ingest refuses its telemetry (more than 5 min in the future, a dead
    letter), yet the device is alive: a clock alarm, no offline alarm (was: offline, and nothing said why)."""
    url, site_id = site
    now = datetime.now(UTC)
    ahead = [("ENV-0", now - timedelta(seconds=150 - 30 * k) + timedelta(minutes=9), {"co2": 700.0 + k})
             for k in range(6)]
    behind_ok = [("ENV-1", now - timedelta(seconds=150 - 30 * k), {"co2": 650.0 + k}) for k in range(6)]
    # ENV-0 reported normally before its clock jumped ahead (its last stored reading: 10 minutes ago); ENV-1's
    # last message goes out after ENV-0's, so once it is stored the refusals are too (one publisher, in order)
    ingest_history(url, mqtt_url, site_id, [("ENV-0", now - timedelta(minutes=10), {"co2": 690.0})])
    ingest_history(url, mqtt_url, site_id, [*ahead, *behind_ok], refused=len(ahead))
    assert count(url, "SELECT count(*) FROM dead_letters WHERE topic LIKE %s", f"%{site_id}%") == 6
    listened(url, now - timedelta(minutes=15), datetime.now(UTC))
    monitor = Monitor(url)
    for _ in range(2):
        monitor.run_once()
    assert device_alarms(url, site_id) == [("device_clock_skew", "ENV-0", "clock off by 9 min (ahead)", "info")]


def test_history_stored_before_schema_12_is_judged_from_the_rollups(site, mqtt_url):
    """An upgraded database: readings stored before device_minutes existed. ENV-0's silence of 08:10-08:20
    is still an offline alarm, judged on whole minutes (from the end of its last minute with data)."""
    url, site_id = site
    history = [m for m in lesson_history() if not (m[0] == "ENV-0" and local(8, 10) <= m[1] < local(8, 20))]
    ingest_history(url, mqtt_url, site_id, history)
    listened(url, local(7, 0), local(9, 0))
    with connection(url) as conn:
        conn.execute("DELETE FROM device_minutes")
        conn.execute("UPDATE device_minutes_since SET since = now()")
        Monitor(url).evaluate(conn, site_id, local(8, 0), local(8, 59), now=local(8, 59))
    offline = [(a[3], a[4]) for a in stored_alarms(url, site_id) if a[0] == "device_offline" and a[2] == "ENV-0"]
    assert offline == [(local(8, 11) + timedelta(seconds=30), local(8, 20))]


def _episode(dev: int, start: datetime, end: datetime | None) -> Episode:
    return Episode("device_stuck", None, dev, start, end, "warning", 0.0, "co2 stuck")


def test_an_earlier_ended_episode_does_not_close_the_fault_still_going(site):
    """Late data shows an earlier, finished episode before the open alarm: it is stored closed beside it, and
    the fault still going keeps its open alarm (was: the open alarm was cleared and never raised again)."""
    url, site_id = site
    t = datetime(2026, 11, 16, 3, 30, tzinfo=UTC)
    with connection(url) as conn:
        dev = device_keys(conn)[(site_id, "ENV-0")]
        alarms.raise_alarm(conn, site_id, "device_stuck", "warning", "co2 stuck", device_key=dev, at=t)
        alarms.reconcile(conn, site_id, [_episode(dev, t - timedelta(minutes=80), t - timedelta(minutes=50)),
                                         _episode(dev, t, None)],
                         rules=["device_stuck"], start=t - timedelta(hours=3), end=t + timedelta(minutes=30),
                         now=t + timedelta(minutes=30))
        rows = conn.execute("SELECT raised_at, state FROM alarms WHERE site_id = %s ORDER BY raised_at",
                            (site_id,)).fetchall()
    assert rows == [(t - timedelta(minutes=80), "closed"), (t, "open")]


def test_a_finished_episode_clipped_by_the_sliding_window_is_not_raised_again(site):
    """A 2-hour stuck run, over: each later cycle's 3-hour window starts inside it, so the episode starts at
    the window's first minute. It is the alarm already stored (was: a new alarm raised and cleared per cycle)."""
    url, site_id = site
    t0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
    with connection(url) as conn:
        dev = device_keys(conn)[(site_id, "ENV-0")]
        end = t0 + timedelta(hours=2)
        for cycle in range(4):
            now = t0 + timedelta(hours=3, minutes=10 * cycle)
            window = now - timedelta(hours=3)
            alarms.reconcile(conn, site_id, [_episode(dev, max(t0, window), end)], rules=["device_stuck"],
                             start=window, end=now, continuing_from=window, now=now)
        rows = conn.execute("SELECT raised_at, cleared_at FROM alarms WHERE site_id = %s", (site_id,)).fetchall()
    assert rows == [(t0, end)]


def test_a_backfill_is_heard_by_nobody_and_has_no_clock_to_judge(site):
    """History written at once (simulate --backfill) ends a step before now: judged as live, every device's
    clock would be "off by 15 min (behind)" and every device heard now. Only ingest's live writes say either."""
    from twin.metrics import BY_NAME
    from twin.storage.readings import ReadingWriter

    url, site_id = site
    now = datetime.now(UTC)
    with connection(url) as conn:
        keys = device_keys(conn)
        env0, env1 = keys[(site_id, "ENV-0")], keys[(site_id, "ENV-1")]
        co2 = BY_NAME["co2"].metric_id
        ReadingWriter(conn, live=False).write([(now - timedelta(minutes=15 * i), env0, co2, 600.0) for i in range(1, 9)])
        ReadingWriter(conn).write([(now - timedelta(minutes=20), env1, co2, 600.0)])
        conn.commit()
        status = dict(conn.execute("SELECT device_id, clock_offset_s FROM device_status WHERE device_id = ANY(%s)",
                                   ([env0, env1],)).fetchall())
        heard = [r[0] for r in conn.execute("SELECT device_id FROM device_heard").fetchall()]
    assert status[env0] is None and round(status[env1]) == -1200
    assert heard == [env1]
