"""Simulator physics with the real models, faults, backfill, and the fleet over a real broker."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from simulators.backfill import backfill, parse_span
from simulators.climate import desk_daylight, outdoor
from simulators.cloud_class import CloudSeat
from simulators.faults import (
    AFFECTED,
    FAULT_KINDS,
    OUT_OF_RANGE,
    PROFILES,
    FaultInjector,
    FaultLog,
    FaultProfileError,
    parse_profile,
)
from simulators.fleet import BATTERY_EVERY, FleetRunner, build_fleet, synthetic_spec
from simulators.models import SCHOOL_TZ, EnvSensor, Luminaire, Panel
from simulators.rooms import RoomContext, day_plan, occupancy
from simulators.siting import class_size
from simulators.timetable import LESSONS, Timetable
from tests.helpers import running, small_twin, wait_for
from twin.database import connection
from twin.messaging import contract
from twin.messaging.contract import topic
from twin.messaging.mqtt import MqttClient, Received, Subscription
from twin.metrics import BY_NAME
from twin.storage.model import save_model

MONDAY = datetime(2026, 11, 23)  # a Monday in term time (naive = school-local time)
CLOSED = RoomContext(key="test/closed", opens_windows=False, fresh_air_ach=0.0)


def at(day: datetime, hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return day.replace(hour=h, minute=m)


def run(model, start: datetime, minutes: int, key: str) -> list[float]:
    return [model.step(60.0, start + timedelta(minutes=m))[key] for m in range(minutes)]


def test_timetable_phases_weekends_and_holidays():
    tt = Timetable()
    assert tt.phase(at(MONDAY, "08:10")) == "lesson"
    assert tt.phase(at(MONDAY, "09:50")) == "break"
    assert tt.phase(at(MONDAY, "12:30")) == "lunch"
    assert tt.phase(at(MONDAY, "23:00")) == "night"
    assert tt.phase(at(MONDAY + timedelta(days=5), "10:00")) == "off_day"  # Saturday
    assert tt.phase(datetime(2026, 10, 2, 10, 0)) == "off_day"  # National Day holiday, a Friday
    assert tt.phase(datetime(2026, 8, 3, 10, 0)) == "off_day"  # summer vacation, a Monday


def test_co2_rises_in_an_occupied_closed_classroom_and_decays_after_the_lesson():
    plan = day_plan(CLOSED.key, MONDAY.date(), len(LESSONS))
    last = max(i for i in range(len(LESSONS)) if i != plan.pe_lesson)
    start, end = (datetime.combine(MONDAY.date(), t) for t in LESSONS[last])
    sensor = EnvSensor(random.Random(1), room=CLOSED)
    sensor.step(3600, start - timedelta(minutes=1))
    assert occupancy(Timetable(), start, CLOSED) > 30
    during = run(sensor, start, int((end - start).total_seconds() // 60), "co2")
    assert during[-1] > during[0] + 800, during[::10]
    after = run(sensor, end, 180, "co2")
    assert after[-1] < during[-1] - 600, after[::30]
    # The same lesson with the windows open ends with far less CO2.
    airy = EnvSensor(random.Random(1), room=RoomContext(key=CLOSED.key, opens_windows=True))
    airy.step(3600, start - timedelta(minutes=1))
    assert run(airy, start, len(during), "co2")[-1] < during[-1] - 500


def _school_day_co2(room: RoomContext, day: datetime, step_min: int = 2) -> list[tuple[datetime, float]]:
    sensor = EnvSensor(random.Random(room.key), room=room)
    sensor.step(3600, at(day, "06:00"))
    return [(when, sensor.step(step_min * 60.0, when)["co2"])
            for when in (at(day, "06:00") + timedelta(minutes=m) for m in range(0, 12 * 60, step_min))]


def test_co2_stays_plausible_over_school_days_in_many_classrooms():
    """Closed, occupied classrooms reach 2,000-4,000 ppm in published measurements, not 7,000."""
    days = [datetime(2026, 1, 12), datetime(2026, 4, 13), datetime(2026, 7, 6), datetime(2026, 9, 14),
            datetime(2026, 11, 23)]
    peaks, hourly_maxima, closed_peaks = [], [], []
    for n in range(24):
        r = random.Random(f"co2/{n}")
        area, height = r.uniform(40, 95), r.uniform(2.7, 3.8)
        room = RoomContext(key=f"co2/{n}", class_size=class_size(area, "classroom"), area_m2=area, height_m=height,
                           weather_seed=n, fresh_air_ach=2.0 if n % 3 == 0 else 0.0, opens_windows=n % 4 != 1,
                           airs_at_ppm=r.uniform(2000, 3000))
        for day in days:
            values = _school_day_co2(room, day)
            hours: dict[int, list[float]] = {}
            for when, v in values:
                hours.setdefault(when.hour, []).append(v)
            means = [sum(v) / len(v) for v in hours.values()]
            peaks.append(max(v for _, v in values))
            hourly_maxima.append(max(means))
            if not room.opens_windows and not room.fresh_air_ach:
                closed_peaks.append(peaks[-1])
    assert max(peaks) < 5000, max(peaks)
    assert max(hourly_maxima) <= 4000, max(hourly_maxima)
    assert min(hourly_maxima) > 700, min(hourly_maxima)  # lessons do fill the air, even an airy room's
    assert closed_peaks and min(closed_peaks) > 1500, closed_peaks
    assert max(peaks) > 2000  # and a stuffy classroom is still a stuffy classroom


def test_fleet_rooms_get_aired_at_their_own_stuffy_level():
    levels = {d.model.room.airs_at_ppm for d in build_fleet(synthetic_spec(13 * 8, sites=1), seed=1)
              if d.kind == "env_sensor"}
    assert len(levels) == 8 and all(2000 <= v <= 3000 for v in levels)


#: Metrics a healthy device must never repeat exactly for 20 minutes (the twin's stuck rules), and when.
LIVELY = {
    "co2": None, "noise": None, "pm25": None, "temperature": None, "humidity": None, "panel_temperature": None,
    "illuminance": lambda m: m["illuminance"] > 50, "blackboard_illuminance": lambda m: m["blackboard_illuminance"] > 50,
    "power": lambda m: m.get("on") == 1.0 or m.get("panel_state") == 2.0,
}


@pytest.mark.parametrize("day", [datetime(2026, 1, 12), datetime(2026, 7, 6)])
def test_healthy_devices_never_repeat_a_value_for_20_minutes(day):
    fleet = build_fleet(synthetic_spec(13 * 2, sites=1), seed=day.month)
    start = day.replace(tzinfo=SCHOOL_TZ)
    longest: dict[tuple[str, str], timedelta] = {}
    for dev in fleet:
        runs: dict[str, tuple[float, datetime]] = {}
        when = start
        while when < start + timedelta(days=1):
            metrics = dev.model.step(dev.interval_s, when)
            for metric, lively in LIVELY.items():
                if metric not in metrics:
                    continue
                if lively is not None and not lively(metrics):
                    runs.pop(metric, None)
                    continue
                value, since = runs.get(metric, (None, when))
                if value != metrics[metric]:
                    runs[metric] = (metrics[metric], when)
                    continue
                key = (dev.device_id, metric)
                longest[key] = max(longest.get(key, timedelta(0)), when - since)
            when += timedelta(seconds=dev.interval_s)
    worst = {k: v for k, v in longest.items() if v >= timedelta(minutes=20)}
    assert not worst, worst
    assert {m for _, m in longest} <= set(LIVELY)


def test_temperature_and_humidity_follow_the_season_and_the_air_conditioning():
    july = EnvSensor(random.Random(2), room=CLOSED)
    afternoon = run(july, datetime(2026, 7, 6, 13, 0), 120, "temperature")  # a hot school day before the holidays
    assert outdoor(datetime(2026, 7, 6, 14, 30, tzinfo=SCHOOL_TZ)).temperature_c > 28
    assert 25.0 <= afternoon[-1] <= 27.5, afternoon[::20]  # the AC holds about 26 °C
    january = EnvSensor(random.Random(2), room=CLOSED)
    night = run(january, datetime(2027, 1, 12, 1, 0), 240, "temperature")
    assert night[-1] < 21.0
    humidity = run(EnvSensor(random.Random(3)), MONDAY, 24 * 60, "humidity")
    assert all(20 <= h <= 99 for h in humidity)


def test_desk_illuminance_with_lights_on_at_night_meets_300_lx():
    lum = Luminaire(random.Random(2))
    night = lum.step(60, at(MONDAY, "22:00"))
    assert night["on"] == 0.0 and night["power"] < 1.0
    lum.command("on")
    lit = lum.step(60, at(MONDAY, "22:01"))
    assert lit["illuminance"] >= 300 and lit["power"] > 30
    old = Luminaire(random.Random(2), hours=50_000.0)  # lamp ageing: L80
    old.command("on")
    assert old.step(60, at(MONDAY, "22:01"))["illuminance"] >= 300
    assert old.lumen_factor < lum.lumen_factor


def test_lights_are_switched_by_occupancy_and_dimmed_by_daylight():
    room = RoomContext(key="test/lights")
    plan = day_plan(room.key, MONDAY.date(), len(LESSONS))
    first = 0 if plan.pe_lesson != 0 else 1
    start = datetime.combine(MONDAY.date(), LESSONS[first][0]) + timedelta(minutes=5)
    lum = Luminaire(random.Random(4), room=room)
    morning = lum.step(60, start)
    assert morning["on"] == 1.0 and morning["illuminance"] >= 300
    assert lum.step(60, at(MONDAY, "20:00"))["on"] == 0.0  # nobody there
    board = Luminaire(random.Random(5), room=room, blackboard=True)
    assert board.step(60, start)["blackboard_illuminance"] >= 500
    south = desk_daylight(datetime(2026, 12, 21, 12, 0, tzinfo=SCHOOL_TZ), window_azimuth=180, cloud=0.1)
    north = desk_daylight(datetime(2026, 12, 21, 12, 0, tzinfo=SCHOOL_TZ), window_azimuth=0, cloud=0.1)
    assert south > north > 0
    assert desk_daylight(datetime(2026, 12, 21, 22, 0, tzinfo=SCHOOL_TZ)) == 0.0


def test_panels_are_off_at_night_and_at_weekends_and_obey_standby():
    room = RoomContext(key="test/panel")
    plan = day_plan(room.key, MONDAY.date(), len(LESSONS))
    used = next(i for i in range(len(LESSONS)) if plan.panel_used[i] and i != plan.pe_lesson)
    in_lesson = datetime.combine(MONDAY.date(), LESSONS[used][0]) + timedelta(minutes=10)
    panel = Panel(random.Random(3), room=room)
    on = panel.step(60, in_lesson)
    assert on["panel_state"] == 2.0 and on["screen_on"] == 1.0 and on["power"] > 100 and on["input_source"] in (1, 2)
    assert panel.step(60, at(MONDAY, "23:00"))["panel_state"] == 0.0
    assert panel.step(60, at(MONDAY + timedelta(days=6), "10:00"))["panel_state"] == 0.0  # Sunday
    panel.command("standby", in_lesson)
    held = panel.step(60, in_lesson + timedelta(minutes=1))
    assert held["panel_state"] == 1.0 and held["screen_on"] == 0.0 and held["power"] < 1
    with pytest.raises(ValueError):
        panel.command("dim", in_lesson)


def test_cloud_class_main_and_auxiliary_classrooms_share_a_session():
    spec = synthetic_spec(13 * 12, sites=3)  # 12 classrooms over hq, m01, m02
    fleet = build_fleet(spec, seed=1)
    panels = [d for d in fleet if d.kind == "panel"]
    when = at(MONDAY, "09:00")  # second lesson: a cloud lesson
    sessions: dict[str, list[tuple[float, float]]] = {}
    for d in panels:
        m = d.model.step(60, when.replace(tzinfo=SCHOOL_TZ))
        if m["cloud_session"]:
            sessions.setdefault(d.site_id, []).append((m["cloud_session"], m["cloud_role"]))
            assert m["input_source"] == 3.0 and m["panel_state"] == 2.0
    assert sessions["hq"] == [(2026112301.0, 1.0)]
    assert sessions["m01"] == [(2026112301.0, 2.0)] and sessions["m02"] == [(2026112301.0, 2.0)]
    for d in panels:  # no cloud lesson in the first lesson
        assert d.model.step(60, at(MONDAY, "08:10").replace(tzinfo=SCHOOL_TZ))["cloud_session"] == 0.0
    seat = CloudSeat("member", 0, 4, 0)
    assert Panel(random.Random(1), seat=seat).step(60, when)["cloud_session"] == 0.0  # no headquarters: no sessions


def _day_of_values(seed: int) -> list[dict[str, float]]:
    fleet = build_fleet(synthetic_spec(26, sites=2), seed=seed)
    out = []
    for minute in range(0, 24 * 60, 15):
        when = (MONDAY + timedelta(minutes=minute)).replace(tzinfo=SCHOOL_TZ)
        out.extend(d.model.step(900, when) for d in fleet)
    return out


def test_same_seed_same_values():
    a, b, c = _day_of_values(7), _day_of_values(7), _day_of_values(8)
    assert a == b and a != c


def _stream(profile: str, messages: int = 4000, *, batteries: dict[str, list[float | None]] | None = None,
            ) -> tuple[list[dict], list[tuple[str, bytes]]]:
    """Telemetry of 4 devices every 30 s through the injector; D0 and D1 run on batteries (the battery
    each reports after the faults lands in ``batteries``)."""
    sink = FaultLog()
    injector = FaultInjector(parse_profile(profile), seed=3, sink=sink)
    out: list[tuple[str, bytes]] = []
    base = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    seqs = {f"D{i}": 0 for i in range(4)}
    for n in range(messages):
        device = f"D{n % 4}"
        seqs[device] += 1
        ts = base + timedelta(seconds=30 * (n // 4))
        metrics = {"co2": 600.0 + n % 7, "temperature": 24.0 + (n % 5) / 10, "humidity": 60.0}
        battery = 80.0 - n / 1e4 if device in ("D0", "D1") else None
        outcome = injector.telemetry("s", device, ts, seqs[device], metrics, 30.0, battery=battery)
        seqs[device] = outcome.seq
        out.extend((device, p) for p in outcome.payloads)
        if batteries is not None:
            batteries.setdefault(device, []).append(outcome.battery)
        injector.disconnect("s/gw", ts)
    return sink.events, out


def test_each_fault_type_appears_as_declared(tmp_path: Path):
    events, out = _stream("all")
    assert {e["kind"] for e in events} == set(FAULT_KINDS)
    assert all(e["site"] and e["device"] and e["ts"] for e in events)
    details = {"stuck": {"metric", "value", "until"}, "drift": {"metric", "per_hour", "start"},
               "spike": {"metric", "value"}, "out_of_range": {"metric", "value"}, "low_battery": {"battery"}}
    for e in events:
        assert details.get(e["kind"], set()) <= set(e), e
    decoded = []
    malformed = 0
    for device, payload in out:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            malformed += 1
            continue
        if not isinstance(doc.get("metrics"), dict) or not all(isinstance(v, float) for v in doc["metrics"].values()):
            malformed += 1
            continue
        decoded.append((device, doc))
    assert malformed >= sum(e["kind"] == "malformed" for e in events) > 0
    raw = [p for _, p in out]
    assert len(raw) > len(set(raw))  # duplicates: the same bytes twice
    per_device: dict[str, list[dict]] = {}
    for device, doc in decoded:
        per_device.setdefault(device, []).append(doc)
    seq_back = sum(1 for docs in per_device.values() for a, b in itertools.pairwise(docs)
                   if b["seq"] < a["seq"])
    assert seq_back > 0  # out of order and reboots
    assert any(d["metrics"].get("co2") == 9500.0 or d["metrics"].get("temperature") == 84.0
               or d["metrics"].get("humidity") == 100.0 for _, d in decoded)  # spikes
    outside = [(m, v) for _, d in decoded for m, v in d["metrics"].items()
               if not BY_NAME[m].min_value <= v <= BY_NAME[m].max_value]
    assert outside and len(outside) == sum(e["kind"] == "out_of_range" for e in events)  # dead letters to be
    ts_back = sum(1 for docs in per_device.values() for a, b in itertools.pairwise(docs)
                  if b["ts"] < a["ts"] - 60_000)
    assert ts_back > 0  # clock skew (and out of order)
    # Only what is declared: a profile of spikes gives spikes and nothing else.
    events, out = _stream("spike=0.1", 800)
    assert {e["kind"] for e in events} == {"spike"} and len(out) == 800
    assert {e["kind"] for e in _stream("none", 800)[0]} == set()
    # The JSON-lines log.
    sink = FaultLog(tmp_path / "faults.jsonl")
    sink.record("spike", "s", "D1", datetime(2026, 11, 23, tzinfo=UTC), metric="co2")
    sink.close()
    line = orjson.loads((tmp_path / "faults.jsonl").read_text().splitlines()[0])
    assert line == {"kind": "spike", "site": "s", "device": "D1", "ts": "2026-11-23T00:00:00+00:00", "metric": "co2"}


def test_fault_values_spikes_stay_in_range_out_of_range_values_do_not():
    for metric, (_, spike) in AFFECTED.items():
        m = BY_NAME[metric]
        assert m.min_value <= spike <= m.max_value, metric  # absurd but valid: an outlier, not a dead letter
        assert metric in OUT_OF_RANGE
    for metric, values in OUT_OF_RANGE.items():
        m = BY_NAME[metric]
        assert values and all(not m.min_value <= v <= m.max_value for v in values), metric
    for name in ("light", "chaos", "all"):
        assert {"out_of_range", "low_battery", "stuck"} <= {k for k, r in PROFILES[name].items() if r > 0}, name


def test_stuck_lasts_30_to_120_simulated_minutes_whatever_the_interval():
    for interval in (30.0, 60.0, 600.0):
        sink = FaultLog()
        injector = FaultInjector(parse_profile("stuck=0.02"), seed=5, sink=sink)
        base = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
        sent: list[tuple[datetime, dict]] = []
        for n in range(int(5 * 24 * 3600 / interval)):
            ts = base + timedelta(seconds=interval * n)
            metrics = {"co2": 600.0 + n % 97 / 10, "noise": 40.0 + n % 89 / 10}
            sent.append((ts, orjson.loads(injector.telemetry("s", "D", ts, n + 1, metrics, interval).payloads[0])))
        assert len(sink.events) >= 10
        for e in sink.events:
            since, until = datetime.fromisoformat(e["ts"]), datetime.fromisoformat(e["until"])
            assert timedelta(minutes=30) <= until - since <= timedelta(minutes=120), e
            held = {d["metrics"][e["metric"]] for ts, d in sent if since <= ts < until}
            assert held == {e["value"]}, e


def test_a_low_battery_fault_drops_the_battery_below_20_percent_for_good():
    batteries: dict[str, list[float | None]] = {}
    events, _ = _stream("low_battery=0.002", 8000, batteries=batteries)
    low = [e for e in events if e["kind"] == "low_battery"]
    assert {e["device"] for e in low} == {"D0", "D1"}  # only devices with a battery, once each
    assert len(low) == 2
    for e in low:
        reported = batteries[e["device"]]
        first = next(i for i, b in enumerate(reported) if b is not None and b < 20)
        assert reported[first] == e["battery"] < 20
        assert all(b is not None and b < 20 for b in reported[first:])
        assert all(b is not None and b > 70 for b in reported[:first])
    assert all(b is None for b in batteries["D2"] + batteries["D3"])


def test_fault_profiles_are_checked():
    assert parse_profile("light,spike=0.5").rates["spike"] == 0.5
    for bad in ("bogus", "spike=2", "spike=x", "melt=0.1"):
        with pytest.raises(FaultProfileError):
            parse_profile(bad)
    assert parse_span("2w") == timedelta(days=14)
    with pytest.raises(ValueError):
        parse_span("30 days")


def test_battery_sensors_report_a_slowly_falling_battery_in_their_status():
    runner = FleetRunner(None, "mqtt://127.0.0.1:1", seed=1, faults="low_battery=0.0001")
    runner.fleet = build_fleet(synthetic_spec(13 * 6, sites=1), seed=1)
    injector = FaultInjector(runner.profile, runner.seed, runner.fault_log)
    sent: list[tuple[str, dict]] = []

    class Conn:
        name = "hq/gw"

    runner._conns = [Conn()]
    runner._send = lambda conn, topic_, payload, retain=False: sent.append((topic_, orjson.loads(payload)))
    start = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    due = {i: start + i for i in range(len(runner.fleet))}
    for i, dev in enumerate(runner.fleet):  # two days of the sensors, an hour of the others
        while due[i] < start + (2 * 86400 if dev.kind == "env_sensor" else 3600):
            runner._publish(dev, due[i], injector)
            due[i] += dev.interval_s
    statuses: dict[str, list[dict]] = {}
    telemetry: dict[str, int] = {}
    for t, doc in sent:
        device, channel = t.split("/")[3], t.split("/")[4]
        if channel == "status":
            statuses.setdefault(device, []).append(doc)
        else:
            telemetry[device] = telemetry.get(device, 0) + 1
    low = {e["device"]: e for e in runner.fault_log.events if e["kind"] == "low_battery"}
    sensors = [d for d in runner.fleet if d.kind == "env_sensor"]
    assert 0 < len(low) < len(sensors)
    for dev in runner.fleet:
        if dev.kind != "env_sensor":
            assert all("battery" not in s for s in statuses.get(dev.device_id, []))
            continue
        reports = [s["battery"] for s in statuses[dev.device_id]]
        assert all(s["state"] == "online" for s in statuses[dev.device_id])
        assert len(reports) >= telemetry[dev.device_id] // BATTERY_EVERY  # republished periodically
        if dev.device_id in low:
            fault = reports.index(low[dev.device_id]["battery"])
            assert all(b < 20 for b in reports[fault:]) and all(b >= 20 for b in reports[:fault])
            reports = reports[:fault]
        assert all(20 <= b <= 100 for b in reports)
        assert reports == sorted(reports, reverse=True)
        if len(reports) > 24:  # a day and more: falling, slowly
            assert 0 < reports[0] - reports[-1] < 1.0, reports


class Listener:
    """A subscriber that keeps every (topic, payload) published while it listens (retained ones skipped)."""

    def __init__(self, mqtt_url: str, filter_: str) -> None:
        self.received: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.mqtt = MqttClient(mqtt_url, f"t-listen-{uuid.uuid4().hex[:6]}", persistent=False,
                               on_connect=lambda session_present: subscribed.set())
        self.mqtt.declare([Subscription(filter_, self._on_message, qos=1)])
        self.mqtt.connect()
        assert subscribed.wait(10)

    def _on_message(self, msg: Received) -> None:
        if msg.retain:  # left on a shared broker by an earlier run, not published by this test
            return
        try:
            doc = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            doc = {"_raw": bytes(msg.payload)}
        with self.lock:
            self.received.append((msg.topic, doc))

    def on(self, name: str) -> list[dict]:
        with self.lock:
            return [p for t, p in self.received if t == name]

    def close(self) -> None:
        self.mqtt.close()


def test_fleet_publishes_contract_payloads_and_obeys_a_luminaire_command(db_url, mqtt_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1", rooms=2))
    listener = Listener(mqtt_url, "campus/v1/s1/#")
    runner = FleetRunner(db_url, mqtt_url, interval_s=0.3, seed=1, client_id=f"t-sim-{uuid.uuid4().hex[:6]}")
    try:
        with running(runner.run):
            assert runner.started.wait(10)
            wait_for(lambda: len({t for t, _ in listener.received if t.endswith("/telemetry")}) == 4)
            listener.mqtt.publish(topic("s1", "LUM-1", "cmd"),
                                  orjson.dumps({"id": "c1", "action": "dim", "level": 40}), qos=1)
            ack = wait_for(lambda: listener.on(topic("s1", "LUM-1", "cmd/ack")))
            assert ack[0] == {"id": "c1", "ok": True, "action": "dim"}
            mark = len(listener.received)
            dimmed = wait_for(lambda: [p for t, p in listener.received[mark:] if t == topic("s1", "LUM-1", "telemetry")])
            assert dimmed[0]["metrics"]["dimming"] == 40.0 and dimmed[0]["metrics"]["on"] == 1.0
            listener.mqtt.publish(topic("s1", "ENV-0", "cmd"), orjson.dumps({"id": "c2", "action": "off"}), qos=1)
            refused = wait_for(lambda: listener.on(topic("s1", "ENV-0", "cmd/ack")))
            assert refused[0]["id"] == "c2" and refused[0]["ok"] is False
    finally:
        listener.close()
    env = listener.on(topic("s1", "ENV-0", "telemetry"))
    assert {"co2", "temperature", "humidity", "occupancy", "pm25", "noise"} <= set(env[0]["metrics"])
    seqs = [p["seq"] for p in env]
    assert seqs == list(range(1, len(seqs) + 1))
    statuses = [p for t, p in listener.received if t == topic("s1", "ENV-0", "status")]
    assert statuses[0]["state"] == "online" and statuses[0]["firmware"] == "sim-1.0"
    assert 20 <= statuses[0]["battery"] <= 100  # sensors run on batteries, luminaires on the mains
    assert all("battery" not in p for t, p in listener.received if t == topic("s1", "LUM-1", "status"))
    assert statuses[-1]["state"] == "offline"
    gateway = [p for t, p in listener.received if t == contract.gateway_status_topic("s1", runner.client_id + "-s1")]
    assert gateway[0]["state"] == "online" and set(gateway[0]["devices"]) == {"ENV-0", "LUM-0", "ENV-1", "LUM-1"}


@pytest.mark.parametrize("connections", ["gateway", "device"])
def test_a_dropped_connection_sends_the_last_will_and_comes_back(db_url, mqtt_url, tmp_path, connections):
    site = f"d{connections[0]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site, rooms=1))
    client_id = f"t-sim-{uuid.uuid4().hex[:6]}"
    listener = Listener(mqtt_url, f"campus/v1/{site}/#")
    log_path = tmp_path / "faults.jsonl"
    runner = FleetRunner(db_url, mqtt_url, interval_s=0.2, seed=2, client_id=client_id, faults="disconnect=0.2",
                         fault_log=log_path, connections=connections)
    status = (contract.gateway_status_topic(site, f"{client_id}-{site}") if connections == "gateway"
              else topic(site, "ENV-0", "status"))
    try:
        with running(runner.run):
            states = lambda: [p["state"] for p in listener.on(status)]
            wait_for(lambda: "offline" in states() and states()[-1] == "online" and states().index("offline") > 0)
    finally:
        listener.close()
    events = [orjson.loads(line) for line in log_path.read_text().splitlines()]
    assert events and all(e["kind"] == "disconnect" for e in events)


def test_accelerated_time_runs_a_school_day_fast(db_url, mqtt_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("s3", rooms=1))
    listener = Listener(mqtt_url, "campus/v1/s3/ENV-0/telemetry")
    start = datetime.combine(Timetable().last_school_day(datetime.now(SCHOOL_TZ).date() - timedelta(days=1)),
                             datetime.min.time().replace(hour=7, minute=30), tzinfo=SCHOOL_TZ)
    runner = FleetRunner(db_url, mqtt_url, seed=3, speed=3600, start=start, client_id=f"t-sim-{uuid.uuid4().hex[:6]}")
    try:
        with running(runner.run):
            wait_for(lambda: len(listener.on(topic("s3", "ENV-0", "telemetry"))) > 2
                     and listener.on(topic("s3", "ENV-0", "telemetry"))[-1]["ts"] >= (start + timedelta(hours=1)).timestamp() * 1000)
    finally:
        listener.close()
    first = listener.on(topic("s3", "ENV-0", "telemetry"))[0]
    assert first["ts"] >= start.timestamp() * 1000
    occupied = [p["metrics"]["occupancy"] for p in listener.on(topic("s3", "ENV-0", "telemetry"))]
    assert max(occupied) > 0  # the school day really started


def test_backfill_writes_history_with_rollups(db_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("s4", rooms=2))
    end = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    seen: list[tuple[int, int]] = []
    result = backfill(db_url, timedelta(days=1), step=timedelta(minutes=10), seed=4, end=end,
                      progress=lambda done, total: seen.append((done, total)))
    assert result.devices == 4 and result.samples == 4 * 144
    assert seen[-1] == (144, 144)
    with connection(db_url) as conn:
        readings = conn.execute("SELECT count(*), min(ts), max(ts) FROM readings").fetchone()
        hours = conn.execute("SELECT count(DISTINCT bucket) FROM rollup_1h").fetchone()[0]
        co2_max = conn.execute("SELECT max(value) FROM readings JOIN metrics USING (metric_id) "
                               "WHERE name = 'co2'").fetchone()[0]
    assert readings[0] == result.rows > 4 * 144 * 4
    assert end - timedelta(days=1) <= readings[1] and readings[2] < end
    assert hours == 24
    assert co2_max > 800  # a school day happened in it
    again = backfill(db_url, timedelta(days=1), step=timedelta(minutes=10), seed=4, end=end)
    assert again.rows == 0  # the same seed rewrites the same rows: nothing new


def test_simulate_command_backfills_and_injects_faults(db_url, mqtt_url, tmp_path):
    from click.testing import CliRunner

    from twin.cli import main

    with connection(db_url) as conn:
        save_model(conn, small_twin("s5", rooms=1))
    cli = CliRunner()
    result = cli.invoke(main, ["--database-url", db_url, "simulate", "--backfill", "3h", "--seed", "5"],
                        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "backfilled" in result.output and "for 2 devices: 24 samples" in result.output  # 3 h every 15 min
    log_path = tmp_path / "faults.jsonl"
    result = cli.invoke(main, ["--database-url", db_url, "--mqtt-url", mqtt_url, "simulate", "--interval", "0.1",
                               "--duration", "3", "--faults", "all", "--fault-log", str(log_path),
                               "--client-id", f"t-cli-{uuid.uuid4().hex[:6]}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "published" in result.output and "injected" in result.output
    assert log_path.read_text().strip()
    for bad in (["--faults", "bogus"], ["--backfill", "thirty days"], ["--start", "monday"]):
        result = cli.invoke(main, ["--database-url", db_url, "simulate", *bad])
        assert result.exit_code == 2, (bad, result.output)


def test_fleet_from_a_loaded_bim_faces_windows_outwards_and_seats_cloud_classes(db_url, tmp_path):
    from collections import Counter

    from models_bim.generate import generate_school
    from simulators.fleet import load_spec
    from twin.cli import load_bim

    generate_school(tmp_path / "hq.ifc", site_id="hq", name="HQ", storeys=1, classrooms_per_storey=4)
    generate_school(tmp_path / "m01.ifc", site_id="m01", name="M01", storeys=1, classrooms_per_storey=2)
    load_bim(db_url, tmp_path / "hq.ifc", "hq", role="headquarters")
    load_bim(db_url, tmp_path / "m01.ifc", "m01")
    fleet = build_fleet(load_spec(db_url), seed=0)
    sensors = [d for d in fleet if d.kind == "env_sensor" and d.model.room.use == "classroom"]
    assert len(sensors) == 6
    # Classrooms either side of the corridor look out on opposite sides.
    azimuths = Counter(round(d.model.room.window_azimuth) for d in sensors if d.site_id == "hq")
    assert len(azimuths) == 2 and {(a - b) % 360 for a in azimuths for b in azimuths} >= {180}, azimuths
    lights = [d.model.position_factor for d in fleet if d.kind == "luminaire"]
    assert max(lights) > 1.2 and min(lights) < 0.9  # near the window and deep in the room
    seats = [d.model.seat for d in fleet if d.kind == "panel" and d.model.seat is not None]
    assert {s.role for s in seats} == {"headquarters", "member"} and all(s.hq_panels == 4 for s in seats)
