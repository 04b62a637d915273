"""When the twin was listening: heartbeats in PostgreSQL, and device-offline alarms that know the
twin's own downtime (issue 13, defect 10), through a real ingest worker, broker and database."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ingest.worker import IngestWorker
from tests.helpers import publisher, running, small_twin, wait_for
from twin.database import connection
from twin.messaging import contract
from twin.messaging.broker import MosquittoBroker, free_port
from twin.monitoring.monitor import Monitor
from twin.storage import listening
from twin.storage.model import save_model
from twin.timetable import SCHOOL_TZ

DAY = date(2026, 11, 16)  # a Monday in the past
GAP = listening.SPELL_GAP


def local(hh: int, mm: int) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=SCHOOL_TZ)


def spell_rows(url: str, client_id: str | None = None) -> list[tuple[str, datetime, datetime]]:
    with connection(url) as conn:
        return conn.execute("SELECT client_id, started_at, last_seen_at FROM ingest_listening "
                            "WHERE %(c)s::text IS NULL OR client_id = %(c)s ORDER BY started_at, client_id",
                            {"c": client_id}).fetchall()


def test_beats_extend_a_spell_and_a_late_beat_begins_a_new_one(db_url):
    t = local(10, 0)
    with connection(db_url) as conn:
        for s in (0, 5, 10, 15):
            listening.beat(conn, "w1", t + timedelta(seconds=s))
        listening.beat(conn, "w1", t + timedelta(seconds=15) + GAP + timedelta(seconds=1))  # too late: new spell
        listening.beat(conn, "w2", t + timedelta(seconds=3))
        listening.beat(conn, "w1", t + timedelta(seconds=7))  # a late, out-of-order beat moves nothing back
        got = listening.spells(conn, t - timedelta(hours=1), t + timedelta(hours=1))
    late = t + timedelta(seconds=16) + GAP
    assert spell_rows(db_url, "w1") == [("w1", t, t + timedelta(seconds=15)), ("w1", late, late)]
    assert spell_rows(db_url, "w2") == [("w2", t + timedelta(seconds=3), t + timedelta(seconds=3))]
    # each spell counts as listening until its next beat was due (+ SPELL_GAP)
    assert got == [(t, t + timedelta(seconds=15) + GAP), (t + timedelta(seconds=3), t + timedelta(seconds=3) + GAP),
                   (late, late + GAP)]
    with connection(db_url) as conn:  # only spells touching the range
        assert listening.spells(conn, late + GAP, late + timedelta(hours=1)) == []
        assert listening.spells(conn, t - timedelta(hours=1), t) == []


def test_a_running_ingest_worker_records_that_it_listens(db_url, mqtt_url):
    """The hook in the worker: a spell of its client id, extended while it runs (server clock)."""
    client_id = f"t-listen-{uuid.uuid4().hex[:8]}"
    worker = IngestWorker(db_url, mqtt_url, client_id=client_id, share_group=client_id)
    with running(worker.run):
        assert worker.connected.wait(10)
        [(_, started, _)] = wait_for(lambda: spell_rows(db_url, client_id), timeout=30)
        # the next beat (every BEAT_EVERY_S) extends the same spell
        wait_for(lambda: [r[2] > started for r in spell_rows(db_url, client_id)] == [True], timeout=60)
    with connection(db_url) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
    [(_, started, last)] = spell_rows(db_url, client_id)
    assert started < last <= now


@pytest.mark.usefixtures("mosquitto_installed")
def test_a_worker_cut_off_from_the_broker_stops_listening_and_resumes_in_a_new_spell(db_url, tmp_path: Path):
    """The broker stopped for longer than SPELL_GAP: the worker's spell ends, a new one begins once its
    subscription is acknowledged again; the worker itself runs on."""
    workdir, port = tmp_path / "mosquitto", free_port()
    broker = MosquittoBroker(workdir, port=port, persist=True)
    client_id = f"t-cut-{uuid.uuid4().hex[:8]}"
    worker = IngestWorker(db_url, broker.url, client_id=client_id, share_group="")
    try:
        with running(worker.run):
            assert worker.connected.wait(10)
            wait_for(lambda: spell_rows(db_url, client_id), timeout=30)
            broker.stop()
            wait_for(lambda: not worker.connected.is_set(), timeout=30)
            # no beat while cut off: the spell's last beat falls behind the server's clock by SPELL_GAP
            wait_for(lambda: silent_for(db_url, client_id) > GAP, timeout=120, interval=1.0)
            [(_, _, cut_at)] = spell_rows(db_url, client_id)
            broker = MosquittoBroker(workdir, port=port, persist=True)
            assert worker.connected.wait(60)
            wait_for(lambda: len(spell_rows(db_url, client_id)) == 2, timeout=60)
    finally:
        broker.stop()
    (_, first_start, first_end), (_, second_start, _) = spell_rows(db_url, client_id)
    assert first_end == cut_at and second_start > first_end + GAP


def silent_for(url: str, client_id: str) -> timedelta:
    with connection(url) as conn:
        return conn.execute("SELECT now() - max(last_seen_at) FROM ingest_listening WHERE client_id = %s",
                            (client_id,)).fetchone()[0]


Minute = tuple[str, datetime, dict[str, float]]


class Fleet:
    """The six devices of a small twin publishing one message a minute, seq counting on per device."""

    def __init__(self, url: str, mqtt_url: str, site_id: str) -> None:
        self.url, self.mqtt_url, self.site_id = url, mqtt_url, site_id
        self.client_id = f"t-restart-{uuid.uuid4().hex[:8]}"
        self.seq: dict[str, int] = {}

    def history(self, start: datetime, end: datetime, *, silent: dict[str, tuple[datetime, datetime]]) -> list[Minute]:
        out: list[Minute] = []
        t, i = start, 0
        while t < end:
            for dev in ("ENV-0", "ENV-1", "ENV-2", "LUM-0", "LUM-1", "LUM-2"):
                lo, hi = silent.get(dev, (end, end))
                if not lo <= t < hi:
                    metrics = ({"temperature": 22.0 + i % 5 / 10, "humidity": 50.0 + i % 3, "co2": 600.0 + i}
                               if dev.startswith("ENV") else {"illuminance": 500.0 + i % 2, "power": 400.0 + i % 2 / 10})
                    out.append((dev, t, metrics))
            t, i = t + timedelta(minutes=1), i + 1
        return out

    def ingest(self, messages: list[Minute]) -> None:
        """One run of the twin's ingest (the same client id each time: a restart) storing ``messages``."""
        worker = IngestWorker(self.url, self.mqtt_url, client_id=self.client_id, share_group=self.client_id,
                              batch_wait_s=0.05)
        before = self.stored()
        with running(worker.run):
            assert worker.connected.wait(10)
            with publisher(self.mqtt_url, f"{self.client_id}-pub") as client:
                infos = []
                for dev, ts, metrics in messages:
                    self.seq[dev] = self.seq.get(dev, 0) + 1
                    infos.append(client.publish(contract.topic(self.site_id, dev, "telemetry"),
                                                contract.telemetry_payload(ts, self.seq[dev], metrics), qos=1))
                for info in infos:
                    info.wait_for_publish(10)
            expected = before + sum(len(m) for _, _, m in messages)
            wait_for(lambda: self.stored() >= expected, timeout=60)
            # this run's own spell, at the server's present time (the history below is in the past)
            wait_for(lambda: spell_rows(self.url, self.client_id), timeout=30)

    def stored(self) -> int:
        with connection(self.url) as conn:
            return int(conn.execute("SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                                    "WHERE d.site_id = %s", (self.site_id,)).fetchone()[0])


def device_alarms(url: str, site_id: str) -> list[tuple]:
    with connection(url) as conn:
        return [(rule, dev, start.astimezone(SCHOOL_TZ), end.astimezone(SCHOOL_TZ) if end else None)
                for rule, dev, start, end in conn.execute(
                    """SELECT a.rule, d.device_id, a.raised_at, a.cleared_at FROM alarms a
                       LEFT JOIN devices d ON d.id = a.device_id WHERE a.site_id = %s
                       ORDER BY a.raised_at, d.device_id""", (site_id,)).fetchall()]


@pytest.fixture
def fleet(db_url: str, mqtt_url: str) -> Fleet:
    site_id = f"ls-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=3))
    return Fleet(db_url, mqtt_url, site_id)


def test_a_twin_restart_after_ten_minutes_down_raises_no_offline_alarm(fleet):
    """10:00-10:30 the twin listens; 10:30-10:40 it is down (broker and ingest: what the devices sent is
    lost); it restarts at 10:40. Every device reports throughout, except ENV-2, silent 10:50-11:00 while the
    twin listens: that, and only that, is a device fault."""
    url, site_id = fleet.url, fleet.site_id
    fleet.ingest(fleet.history(local(10, 0), local(10, 30), silent={}))
    fleet.ingest(fleet.history(local(10, 40), local(11, 10), silent={"ENV-2": (local(10, 50), local(11, 0))}))
    # The two runs happened now; in the history they listened 10:00-10:30 and from 10:40 (their last beats
    # a few seconds before they stopped).
    with connection(url) as conn:
        listening.record(conn, fleet.client_id, local(10, 0), local(10, 30) - timedelta(seconds=3))
        listening.record(conn, fleet.client_id, local(10, 40), local(11, 10) - timedelta(seconds=3))
    # ENV-2 last seen at 10:49:00, offline 3 x 30 s later, back at 11:00
    expected = [("device_offline", "ENV-2", local(10, 50) + timedelta(seconds=30), local(11, 0))]
    # the restarted twin's monitor: its first cycle (health over the last 3 hours) ...
    monitor = Monitor(url)
    monitor.run_once(local(11, 10))
    assert device_alarms(url, site_id) == expected
    # ... and the same range again with `monitor --from/--to`: nothing raised or cleared
    with connection(url) as conn:
        again = monitor.evaluate(conn, site_id, local(7, 0), local(11, 10), now=local(11, 10))
    assert (again.raised, again.cleared) == (0, 0)
    assert device_alarms(url, site_id) == expected


def test_after_the_restart_a_device_still_silent_is_offline_from_three_intervals_after_the_resume(fleet):
    """LUM-1 does not come back after the twin's downtime: offline from 10:43 (10:40 + 3 x 60 s), not from
    10:33 (its last minute 10:29 + 1 min + 3 min: the twin was not listening then); cycles while the twin
    was down raised nothing."""
    url, site_id = fleet.url, fleet.site_id
    fleet.ingest(fleet.history(local(10, 0), local(10, 30), silent={}))
    with connection(url) as conn:
        listening.record(conn, fleet.client_id, local(10, 0), local(10, 30) - timedelta(seconds=3))
    monitor = Monitor(url)
    monitor.run_once(local(10, 38))  # the monitor ran on while ingest was down
    assert device_alarms(url, site_id) == []
    fleet.ingest(fleet.history(local(10, 40), local(11, 0), silent={"LUM-1": (local(10, 40), local(11, 0))}))
    with connection(url) as conn:
        listening.record(conn, fleet.client_id, local(10, 40), local(11, 0) - timedelta(seconds=3))
    monitor.run_once(local(10, 42))  # within the grace after the resume: nothing yet
    assert device_alarms(url, site_id) == []
    monitor.run_once(local(11, 0))
    assert device_alarms(url, site_id) == [("device_offline", "LUM-1", local(10, 43), None)]


def test_history_from_before_the_twin_ever_listened_raises_nothing(fleet):
    """No heartbeat at all in the range (data written before the first start, or by a backfill)."""
    url, site_id = fleet.url, fleet.site_id
    fleet.ingest(fleet.history(local(10, 0), local(11, 0), silent={"ENV-0": (local(10, 20), local(10, 40))}))
    with connection(url) as conn:
        Monitor(url).evaluate(conn, site_id, local(10, 0), local(11, 0), now=local(11, 0))
    assert device_alarms(url, site_id) == []


def test_the_monitor_says_once_when_no_ingest_listens_and_again_after_it_came_back(fleet, caplog):
    """Offline alarms wait while nobody listens: the operator must be told why none come."""
    url = fleet.url
    monitor = Monitor(url)
    with caplog.at_level(logging.INFO, logger="twin.monitoring.monitor"):
        monitor.run_once(local(10, 0))
        monitor.run_once(local(10, 1))
        with connection(url) as conn:
            listening.record(conn, fleet.client_id, local(10, 1), local(10, 3))
        monitor.run_once(local(10, 2))
        monitor.run_once(local(10, 10))  # the spell ended at 10:03 (+ its gap): deaf again
    said = [r.getMessage() for r in caplog.records if r.name == "twin.monitoring.monitor" and "listening" in r.getMessage()]
    assert [m.split(";")[0] for m in said] == [
        "monitor: no ingest worker is listening (last heard never)",
        "monitor: ingest is listening again",
        f"monitor: no ingest worker is listening (last heard {(local(10, 3) + listening.SPELL_GAP).astimezone(UTC).isoformat(timespec='seconds')})",
    ]


def test_a_monitor_started_with_ingest_waits_for_its_first_beat_before_saying_it_is_deaf(fleet, caplog):
    """The demo and a service start both at once: no warning before ingest's first beat was due."""
    url = fleet.url
    monitor = Monitor(url)
    with caplog.at_level(logging.INFO, logger="twin.monitoring.monitor"):
        monitor.run_once(local(10, 0))  # ingest is still connecting: nothing heard yet
        with connection(url) as conn:
            listening.record(conn, fleet.client_id, local(10, 0) + timedelta(seconds=5),
                             local(10, 0) + timedelta(seconds=5))
        monitor.run_once(local(10, 0) + timedelta(seconds=20))
    assert [r.getMessage() for r in caplog.records if r.name == "twin.monitoring.monitor" and "listening" in r.getMessage()] == []
