"""Monitoring through the real path: synthetic histories published over MQTT to a running ingest
worker into PostgreSQL, then the rule engine, device health, notifications, KPIs and the report."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import orjson
import pytest

from ingest.worker import IngestWorker
from tests.helpers import publisher, running, small_twin, wait_for
from twin.database import connection
from twin.messaging import contract
from twin.messaging.mqtt import MqttClient, Subscription
from twin.metrics import BY_NAME
from twin.monitoring.kpi_job import compute_day
from twin.monitoring.monitor import Monitor
from twin.monitoring.notify import Notifier
from twin.monitoring.report import month_report
from twin.monitoring.standards import SiteConfig
from twin.storage import alarms, listening
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter
from twin.timetable import SCHOOL_TZ

DAY = date(2026, 11, 16)  # a Monday, a school day, in the past


def local(hh: int, mm: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SCHOOL_TZ)


Message = tuple[str, datetime, dict[str, float]]  # device, ts, metrics


@pytest.fixture
def site(db_url: str) -> tuple[str, str]:
    """A fresh site id (the broker is shared and keeps retained messages) with three classrooms."""
    site_id = f"mon-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=3))
    return db_url, site_id


def ingest_history(url: str, mqtt_url: str, site_id: str, messages: list[Message], *,
                   extra: Callable[[object], None] | None = None, refused: int = 0) -> None:
    """Publish ``messages`` (in order, seq counting per device) through a running ingest worker; wait for the rows
    (all but ``refused`` messages' worth: those are dead letters)."""
    tag = uuid.uuid4().hex[:8]
    worker = IngestWorker(url, mqtt_url, client_id=f"t-mon-{tag}", share_group=f"t-mon-{tag}", batch_wait_s=0.05)
    expected = sum(len(m) for _, _, m in messages) - refused
    seq: dict[str, int] = {}
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url, f"t-mon-pub-{tag}") as client:
            infos = []
            for device, ts, metrics in messages:
                seq[device] = seq.get(device, 0) + 1
                infos.append(client.publish(contract.topic(site_id, device, "telemetry"),
                                            contract.telemetry_payload(ts, seq[device], metrics), qos=1))
            for info in infos:
                info.wait_for_publish(10)
            if extra is not None:
                extra(client)
            wait_for(lambda: count(url, "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                                        "WHERE d.site_id = %s", site_id) >= expected, timeout=60)


def listened(url: str, start: datetime, end: datetime) -> None:
    """The twin was listening over ``[start, end]`` (an ingest worker's heartbeats): silence then is the devices'."""
    with connection(url) as conn:
        listening.record(conn, "t-history-ingest", start, end)


def count(url: str, sql: str, *args: object) -> int:
    with connection(url) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def minutes(start: datetime, end: datetime) -> Iterator[tuple[int, datetime]]:
    t, i = start, 0
    while t < end:
        yield i, t
        t, i = t + timedelta(minutes=1), i + 1


def stored_alarms(url: str, site_id: str) -> list[tuple]:
    with connection(url) as conn:
        return [(r, room, dev, start.astimezone(SCHOOL_TZ), end.astimezone(SCHOOL_TZ) if end else None, sev)
                for r, room, dev, start, end, sev in conn.execute(
                    """SELECT a.rule, r.name, d.device_id, a.raised_at, a.cleared_at, a.severity FROM alarms a
                       LEFT JOIN rooms r ON r.id = a.room_id LEFT JOIN devices d ON d.id = a.device_id
                       WHERE a.site_id = %s ORDER BY a.raised_at, a.rule, r.name""", (site_id,)).fetchall()]


def lesson_history() -> list[Message]:
    """08:00-08:59 local, one message a minute per device, with known violations:

    - Room 0: 30 °C from 08:10 to 08:29 (20 min), 25 °C otherwise -> temperature 08:10-08:30.
    - Room 1: a single 35 °C / 5000 ppm spike at 08:20 -> nothing; desk 250 lx until 08:39, then 350 lx
      -> desk illuminance 08:00-08:40 (back above 300 + 20 hysteresis at 08:40).
    - Room 2: 2000 ppm until 08:29, then 400 ppm (+1 in odd minutes, so that no sensor looks stuck: the
      luminaires' illuminance and power move likewise). The
      daily mean over lesson minutes (the break 08:45-08:54 does not count) exceeds 1500 from 08:00; it is
      back under 1450 (hysteresis 50) at 08:55, the 46th counted minute:
      (30*2000 + 15 + 15*400 + 7 + 401) / 46 = 1444.0, while at 08:44 it is 66022 / 45 = 1467.2.
    """
    out: list[Message] = []
    for i, ts in minutes(local(8, 0), local(9, 0)):
        t0 = 30.0 if 10 <= i < 30 else 25.0
        t1, c1 = (35.0, 5000.0) if i == 20 else (25.0, 800.0)
        c2 = 2000.0 if i < 30 else 400.0
        out += [("ENV-0", ts, {"temperature": t0, "humidity": 50.0 + i % 3, "co2": 700.0 + i}),
                ("ENV-1", ts, {"temperature": t1, "humidity": 50.0 + i % 3, "co2": c1 + i % 2}),
                ("ENV-2", ts, {"temperature": 25.0 + i % 2 / 10, "humidity": 50.0 + i % 3, "co2": c2 + i % 2}),
                ("LUM-0", ts, {"illuminance": 500.0 + i % 2, "power": 400.0 + i % 2 / 10}),
                ("LUM-1", ts, {"illuminance": (250.0 if i < 40 else 350.0) + i % 2, "power": 400.0 + i % 2 / 10}),
                ("LUM-2", ts, {"illuminance": 520.0 + i % 2, "power": 400.0 + i % 2 / 10})]
    return out


def test_known_violations_give_exactly_the_expected_alarms(site, mqtt_url):
    url, site_id = site
    ingest_history(url, mqtt_url, site_id, lesson_history())
    now = local(9, 0, DAY + timedelta(days=1))
    listened(url, local(7, 0), now)
    monitor = Monitor(url)
    with connection(url) as conn:
        monitor.evaluate(conn, site_id, local(0, 0), local(0, 0, DAY + timedelta(days=1)), now=now)
    expected = [
        ("classroom_co2_high", "Room 2", None, local(8, 0), local(8, 55), "critical"),
        ("desk_illuminance_low", "Room 1", None, local(8, 0), local(8, 40), "warning"),
        ("temperature_out_of_range", "Room 0", None, local(8, 10), local(8, 30), "warning"),
        # the data stops at 08:59:00: every device is offline 3 intervals after its last report
        ("device_offline", None, "ENV-0", local(9, 0) + timedelta(seconds=30), None, "warning"),
        ("device_offline", None, "ENV-1", local(9, 0) + timedelta(seconds=30), None, "warning"),
        ("device_offline", None, "ENV-2", local(9, 0) + timedelta(seconds=30), None, "warning"),
        ("device_offline", None, "LUM-0", local(9, 2), None, "warning"),
        ("device_offline", None, "LUM-1", local(9, 2), None, "warning"),
        ("device_offline", None, "LUM-2", local(9, 2), None, "warning"),
    ]
    got = stored_alarms(url, site_id)
    assert sorted(got, key=str) == sorted(expected, key=str)
    # evaluating again changes nothing: one alarm per room and rule, the same start and end
    with connection(url) as conn:
        again = monitor.evaluate(conn, site_id, local(0, 0), local(0, 0, DAY + timedelta(days=1)), now=now)
        assert (again.raised, again.cleared) == (0, 0)
        events = conn.execute("SELECT event, count(*) FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
                              "WHERE a.site_id = %s GROUP BY 1 ORDER BY 1", (site_id,)).fetchall()
    assert events == [("cleared", 3), ("raised", 9)]
    assert sorted(stored_alarms(url, site_id), key=str) == sorted(expected, key=str)


def test_offline_and_stuck_devices_are_detected(site, mqtt_url):
    """10:00-10:59 local: ENV-0 silent from 10:20 to 10:39; ENV-1's CO2 frozen at 612 ppm until 10:29."""
    url, site_id = site
    history: list[Message] = []
    for i, ts in minutes(local(10, 0), local(11, 0)):
        if not 20 <= i < 40:
            history.append(("ENV-0", ts, {"temperature": 24.0 + i / 100, "humidity": 50.0 + i % 3, "co2": 600.0 + i}))
        history.append(("ENV-1", ts, {"temperature": 24.0 + i / 100, "humidity": 50.0 + i % 3,
                                      "co2": 612.0 if i < 30 else 700.0 + i}))
        history.append(("ENV-2", ts, {"temperature": 24.0 + i / 100, "humidity": 50.0 + i % 3, "co2": 600.0 + i}))
    ingest_history(url, mqtt_url, site_id, history)
    listened(url, local(9, 0), local(11, 0))
    with connection(url) as conn:
        Monitor(url).evaluate(conn, site_id, local(10, 0), local(11, 0), now=local(11, 0))
    # last seen at 10:19:00, offline 3 x 30 s later (to the second: not from the end of its minute); back at 10:40
    assert stored_alarms(url, site_id) == [
        ("device_stuck", None, "ENV-1", local(10, 0), local(10, 30), "warning"),
        ("device_offline", None, "ENV-0", local(10, 20) + timedelta(seconds=30), local(10, 40), "warning"),
    ]


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alarms", Hook.received
    server.shutdown()
    server.server_close()


def test_battery_seq_gaps_out_of_range_and_the_lifecycle_is_notified(site, mqtt_url, webhook):
    url, site_id = site
    hook_url, posted = webhook
    received: list[dict] = []
    now = datetime.now(UTC).replace(microsecond=0)
    tag = uuid.uuid4().hex[:8]
    subscribed = threading.Event()
    listener = MqttClient(mqtt_url, f"t-mon-sub-{tag}", persistent=False,
                          on_subscribed=lambda refused: subscribed.set())
    # only the alarms topic: in a whole run on the in-process amqtt broker this subscriber was also
    # handed other tests' offline statuses (not reproduced in isolation; cause not found)
    listener.declare([Subscription(contract.alarms_topic(site_id), lambda msg: (
        received.append(orjson.loads(msg.payload)) if msg.topic == contract.alarms_topic(site_id) else None))])
    listener.connect()
    assert subscribed.wait(10), "the alarms listener could not subscribe"
    with contextlib.closing(listener):

        def extra(client) -> None:  # not retained: the broker is shared, other tests' workers would see it
            client.publish(contract.topic(site_id, "ENV-0", "status"),
                           contract.status_payload("online", battery=12), qos=1).wait_for_publish(10)
            bad = orjson.dumps({"ts": int(now.timestamp() * 1000), "seq": 9, "metrics": {"co2": 20000}})
            client.publish(contract.topic(site_id, "ENV-2", "telemetry"), bad, qos=1).wait_for_publish(10)
            client.publish(contract.topic(site_id, "ENV-1", "telemetry"),
                           contract.telemetry_payload(now + timedelta(seconds=1), 6, {"co2": 602.0}),
                           qos=1).wait_for_publish(10)

        # ENV-1 sends seq 1, 2 then (below) 6: three messages missing
        history = [("ENV-1", now - timedelta(seconds=30), {"co2": 600.0}), ("ENV-1", now, {"co2": 601.0})]
        ingest_history(url, mqtt_url, site_id, history, extra=extra)
        wait_for(lambda: count(url, "SELECT count(*) FROM dead_letters WHERE topic LIKE %s", f"%{site_id}%") == 1)
        wait_for(lambda: count(url, "SELECT count(*) FROM device_status s JOIN devices d ON d.id = s.device_id "
                                    "WHERE d.site_id = %s AND s.battery_pct = 12", site_id) == 1)
        wait_for(lambda: count(url, "SELECT count(*) FROM device_status s JOIN devices d ON d.id = s.device_id "
                                    "WHERE d.site_id = %s AND s.seq_gaps = 3", site_id) == 1)
        monitor = Monitor(url, notifier=Notifier(mqtt_url, hook_url, client_id=f"t-mon-notify-{tag}"))
        # after every message was received (the out-of-range rule reads dead letters received before
        # the cycle's time; on a busy machine the publishing above takes more than a second)
        t0 = max(now, datetime.now(UTC)) + timedelta(seconds=1)
        monitor.run_once(t0)
        got = {(r, d) for r, _, d, _, end, _ in stored_alarms(url, site_id) if end is None}
        assert got == {("device_low_battery", "ENV-0"), ("device_seq_gaps", "ENV-1"),
                       ("device_out_of_range", "ENV-2")}
        wait_for(lambda: len(received) >= 3)
        assert sorted((e["event"], e["rule"], e["device_id"]) for e in received) == [
            ("raised", "device_low_battery", "ENV-0"), ("raised", "device_out_of_range", "ENV-2"),
            ("raised", "device_seq_gaps", "ENV-1")]
        assert sorted(e["rule"] for e in posted) == sorted(e["rule"] for e in received)
        # acknowledged in the dashboard (or the CLI): the next cycle notifies it
        with connection(url) as conn:
            battery = next(a for a in alarms.list_alarms(conn, site_id=site_id) if a.rule == "device_low_battery")
            assert alarms.acknowledge(conn, battery.id, by="li", note="battery ordered")
        monitor.run_once(t0 + timedelta(seconds=1))
        wait_for(lambda: any(e["event"] == "acknowledged" for e in received))
        ack = next(e for e in received if e["event"] == "acknowledged")
        assert (ack["by"], ack["note"], ack["state"]) == ("li", "battery ordered", "acknowledged")
        # a new battery: cleared automatically, with the time
        with connection(url) as conn:
            conn.execute("UPDATE device_status SET battery_pct = 90 WHERE device_id = (SELECT id FROM devices "
                         "WHERE site_id = %s AND device_id = 'ENV-0')", (site_id,))
        monitor.run_once(t0 + timedelta(seconds=2))
        wait_for(lambda: any(e["event"] == "cleared" and e["rule"] == "device_low_battery" for e in received))
        monitor.notifier.close()  # its worker thread, started by the first cycle
    with connection(url) as conn:
        events = alarms.alarm_events(conn, battery.id)
    assert [e[0] for e in events] == ["raised", "acknowledged", "cleared"]
    assert events[2][1] == t0 + timedelta(seconds=2)
    assert len(posted) == len(received)


def test_kpis_for_a_small_network_and_the_monthly_report(db_url, mqtt_url, tmp_path: Path):
    a, b = f"ka-{uuid.uuid4().hex[:6]}", f"kb-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(a, rooms=3))
        save_model(conn, small_twin(b, rooms=2))
    # 08:00-08:44 local (lesson 1), one message a minute: 45 messages per reporting device.
    history_a: list[Message] = []
    history_b: list[Message] = []
    for i, ts in minutes(local(8, 0), local(8, 45)):
        env = {"temperature": 25.0, "humidity": 50.0 + i % 3, "co2": 700.0 + i}
        history_a += [("ENV-0", ts, env), ("ENV-1", ts, env), ("LUM-0", ts, {"illuminance": 500.0, "power": 300.0}),
                      ("LUM-1", ts, {"illuminance": 250.0, "power": 300.0})]
        history_b += [("ENV-0", ts, env), ("LUM-0", ts, {"illuminance": 320.0, "power": 300.0}),
                      ("LUM-1", ts, {"illuminance": 600.0, "power": 300.0})]
    ingest_history(db_url, mqtt_url, a, history_a)
    ingest_history(db_url, mqtt_url, b, history_b)
    config = SiteConfig()
    with connection(db_url) as conn:
        got = compute_day(conn, DAY, rules_for=config.rules_for, now=datetime.now(UTC))
    # Hand-computed. School A: 3 classrooms (teaching rooms), ENV-0/1 and LUM-0/1 report, ENV-2/LUM-2 silent:
    #   IoT 2/3, smart lighting 2/3 (room 2's luminaire silent), panels 0/3;
    #   lighting: room 0 at 500 lx complies, room 1 at 250 lx does not, room 2 not measured -> 1/2;
    #   completeness: 4 devices x 45 messages received. Expected: the reporting devices were first heard at
    #   08:00 with nothing the day before, so from 08:00 (16 h = 57600 s): ENV-0/1 2 x 57600/30 = 3840,
    #   LUM-0/1 2 x 57600/60 = 1920; the silent ENV-2 and LUM-2 all day: 86400/30 + 86400/60 = 4320
    #   -> 180 / 10080.
    # School B: 2 classrooms, ENV-0, LUM-0, LUM-1 report: IoT 1/2, lighting 2/2, panels 0/2;
    #   lighting 320 lx and 600 lx both comply -> 2/2; completeness 135 / (1920 + 2 x 960 + silent ENV-1 2880
    #   = 6720).
    # Network: sums -> IoT 3/5, lighting 4/5, panels 0/5, compliance 3/4, completeness 315/16800.
    assert got[a] == pytest.approx({"iot_coverage": 2 / 3, "lighting_coverage": 2 / 3, "panel_coverage": 0.0,
                                    "lighting_compliance": 0.5, "data_completeness": 180 / 10080})
    assert got[b] == pytest.approx({"iot_coverage": 0.5, "lighting_coverage": 1.0, "panel_coverage": 0.0,
                                    "lighting_compliance": 1.0, "data_completeness": 135 / 6720})
    assert got["*"] == pytest.approx({"iot_coverage": 0.6, "lighting_coverage": 0.8, "panel_coverage": 0.0,
                                      "lighting_compliance": 0.75, "data_completeness": 315 / 16800})
    with connection(db_url) as conn:
        Monitor(db_url).evaluate(conn, a, local(0, 0), local(0, 0, DAY + timedelta(days=1)),
                                 now=local(9, 0, DAY + timedelta(days=1)))
        html = month_report(conn, a, 2026, 11, now=local(0, 0, date(2026, 12, 1)), config=config)
    out = tmp_path / "report.html"
    out.write_text(html, "utf-8")
    # The month's KPIs sum over its 30 days (only the 16th had data): IoT 2/90, lighting compliance 1/2,
    # completeness 180 / (29 x 12960 + 10080) = 0.047 % (the 16th from 08:00 for the reporting devices;
    # the other days, with nothing heard the day before, all day).
    assert "2.2%" in html and "50.0%" in html and "0.05%" in html
    # availability of the env sensors over the month: ENV-0/1 expected from 08:00 on the 16th (first heard) to
    # 1 Dec 00:00, 14 d 16 h = 1,267,200 s / 30 s = 42,240 each; ENV-2 never heard, the whole month
    # 2,592,000 s / 30 s = 86,400: 170,880 expected, 90 received.
    assert "<td class=num>170880</td>" in html and "<td class=num>90</td>" in html
    # compliance per classroom: Room 0 500 lx (1 of 1 days), Room 1 250 lx (0 of 1)
    assert "Room 0" in html and "500 lx" in html and "250 lx" in html
    assert "desk_illuminance_low" in html  # Room 1, 08:00 until the end of the lessons (no data after 08:44)
    assert "<svg" in html and "http://" not in html and "https://" not in html  # self-contained


def test_completeness_counts_a_device_from_the_minute_it_was_first_heard(db_url):
    """A device first heard at 08:30 with nothing the day before (just installed) is expected from 08:30."""
    site = f"kc-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site, rooms=1))
        env = device_keys(conn)[site, "ENV-0"]
        co2 = BY_NAME["co2"].metric_id
        ReadingWriter(conn).write(
            [(local(8, 30) + timedelta(minutes=i), env, co2, 600.0 + i) for i in range(10)])
        conn.commit()
        got = compute_day(conn, DAY, rules_for=SiteConfig().rules_for, now=local(9, 0))
    # ENV-0: 10 messages; expected 08:30-09:00 = 1800 s / 30 s = 60. LUM-0 never heard: expected from
    # midnight local to 09:00 = 32400 s / 60 s = 540. -> 10 / 600.
    assert got[site]["data_completeness"] == pytest.approx(10 / 600)


def test_an_offline_alarm_clears_when_the_device_is_back_after_a_weekend(db_url):
    """ENV-0 silent from Friday 09:10 to Monday 09:00: the alarm raised on Friday ends on Monday at 09:00."""
    site = f"kw-{uuid.uuid4().hex[:6]}"
    friday, monday = date(2026, 11, 13), date(2026, 11, 16)
    listened(db_url, local(8, 0, friday), local(10, 0, monday))
    with connection(db_url) as conn:
        save_model(conn, small_twin(site, rooms=1))
        env = device_keys(conn)[site, "ENV-0"]
        co2 = BY_NAME["co2"].metric_id
        writer = ReadingWriter(conn)
        writer.write([(local(9, i, friday), env, co2, 600.0 + i) for i in range(10)])  # 09:00-09:09
        conn.commit()
        monitor = Monitor(db_url)
        monitor.evaluate(conn, site, local(9, 0, friday), local(12, 0, friday), now=local(12, 0, friday))
        conn.commit()
        writer.write([(local(9, i, monday), env, co2, 700.0 + i) for i in range(60)])  # back at 09:00
        conn.commit()
        # the health window of a cycle at 10:00 on Monday: 07:00-10:00, nothing of Friday in its look-back
        monitor.evaluate(conn, site, local(7, 0, monday), local(10, 0, monday), now=local(10, 0, monday))
        conn.commit()
    offline = [a for a in stored_alarms(db_url, site) if a[0] == "device_offline" and a[2] == "ENV-0"]
    # last seen at 09:09:00, offline 3 x 30 s later; back at 09:00 on Monday
    assert offline == [("device_offline", None, "ENV-0", local(9, 10, friday) + timedelta(seconds=30),
                        local(9, 0, monday), "warning")]


def test_a_second_monitor_on_the_same_database_skips_its_cycle(db_url):
    """Two monitors would raise the same alarms and send every notification twice: one waits its turn."""
    from twin.storage.monitoring import MONITOR_LOCK

    site = f"kl-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site, rooms=1))
        conn.execute("UPDATE device_status SET battery_pct = 5")  # a low battery: one alarm to raise
        conn.commit()
    with connection(db_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (MONITOR_LOCK,))  # the first monitor's cycle
        skipped = Monitor(db_url).run_once(local(10, 0))
        held = stored_alarms(db_url, site)
        other.execute("SELECT pg_advisory_unlock(%s)", (MONITOR_LOCK,))
    ran = Monitor(db_url).run_once(local(10, 0))
    assert held == [] and skipped.raised == 0
    assert ran.raised >= 1 and [a[0] for a in stored_alarms(db_url, site)].count("device_low_battery") >= 1


def test_a_broken_stored_override_stops_only_its_own_school(db_url):
    from psycopg.types.json import Jsonb

    bad, good = f"kb-{uuid.uuid4().hex[:6]}", f"kg-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(bad, rooms=1))
        save_model(conn, small_twin(good, rooms=1))
        conn.execute("UPDATE device_status SET battery_pct = 5")  # a low-battery alarm to raise at each school
        conn.execute("INSERT INTO rule_overrides (site_id, rule_id, params) VALUES (%s, 'co2_classroom', %s)",
                     (bad, Jsonb({"min_duration": "soon"})))  # written past the CLI: not a duration
        conn.commit()
    counts = Monitor(db_url).run_once(local(10, 0))
    alarms_by_site = {s: [a[0] for a in stored_alarms(db_url, s)] for s in (bad, good)}
    assert counts.raised >= 1
    assert "device_low_battery" in alarms_by_site[good] and alarms_by_site[bad] == []
    with connection(db_url) as conn:  # the network's KPIs were still computed, the bad school on its defaults
        assert conn.execute("SELECT count(*) FROM kpi_daily WHERE scope = %s", (bad,)).fetchone()[0] > 0


def test_switching_a_rule_off_ends_its_open_alarms_now(db_url):
    from twin.storage.monitoring import set_rule_override

    site = f"ko-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site, rooms=1))
        env = device_keys(conn)[site, "ENV-0"]
        temperature = BY_NAME["temperature"].metric_id
        ReadingWriter(conn).write(  # 30 °C from 08:10, still going at 08:40
            [(local(8, i), env, temperature, 30.0 if i >= 10 else 25.0) for i in range(41)])
        conn.commit()
        monitor = Monitor(db_url)
        monitor.evaluate(conn, site, local(0, 0), local(8, 41), now=local(8, 41))
        conn.commit()
        before = [a for a in stored_alarms(db_url, site) if a[0] == "temperature_out_of_range"]
        set_rule_override(conn, site, "temperature_out_of_range", {"enabled": False})
        conn.commit()
        monitor.evaluate(conn, site, local(0, 0), local(8, 42), now=local(8, 42))
        conn.commit()
    after = [a for a in stored_alarms(db_url, site) if a[0] == "temperature_out_of_range"]
    assert before == [("temperature_out_of_range", "Room 0", None, local(8, 10), None, "warning")]
    assert after == [("temperature_out_of_range", "Room 0", None, local(8, 10), local(8, 42), "warning")]
