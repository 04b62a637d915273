"""Simulator physics and the fleet runner over a real broker."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime, timedelta

import orjson

from simulators.fleet import FleetRunner
from simulators.models import EnvSensor, Luminaire, Panel
from simulators.timetable import Timetable
from tests.helpers import running, small_twin, wait_for
from twin.contract import topic
from twin.database import connection
from twin.mqtt import MqttClient
from twin.storage.model import save_model

MONDAY = datetime(2026, 11, 23)  # a Monday


def run_env(sensor: EnvSensor, start: datetime, minutes: int) -> list[float]:
    return [sensor.step(60.0, start + timedelta(minutes=m))["co2"] for m in range(minutes)]


def test_timetable_phases():
    tt = Timetable()
    assert tt.phase(MONDAY.replace(hour=8, minute=10)) == "lesson"
    assert tt.phase(MONDAY.replace(hour=9, minute=50)) == "break"
    assert tt.phase(MONDAY.replace(hour=12, minute=30)) == "lunch"
    assert tt.phase(MONDAY.replace(hour=23)) == "night"
    assert tt.phase((MONDAY + timedelta(days=5)).replace(hour=10)) == "off_day"


def test_co2_rises_in_a_lesson_and_decays_after_school():
    sensor = EnvSensor(random.Random(1))
    during = run_env(sensor, MONDAY.replace(hour=8, minute=0), 45)
    assert during[-1] > during[0] + 400, during[::10]
    after = run_env(sensor, MONDAY.replace(hour=17, minute=30), 120)
    assert after[-1] < during[-1] - 300, after[::20]


def test_lights_follow_occupancy_and_meet_300_lx_when_on_at_night():
    lum = Luminaire(random.Random(2))
    night = lum.step(60, MONDAY.replace(hour=22))
    assert night["on"] == 0.0 and night["power"] == 0.0
    lum.override = {"on": 1.0, "dimming": 100.0}
    lit = lum.step(60, MONDAY.replace(hour=22))
    assert lit["illuminance"] >= 300 and lit["power"] > 0


def test_panels_are_off_at_night_and_at_weekends():
    panel = Panel(random.Random(3))
    assert panel.step(60, MONDAY.replace(hour=8, minute=20))["panel_state"] == 2.0
    assert panel.step(60, MONDAY.replace(hour=23))["panel_state"] == 0.0
    assert panel.step(60, (MONDAY + timedelta(days=6)).replace(hour=10))["panel_state"] == 0.0


def test_same_seed_same_values():
    a = run_env(EnvSensor(random.Random("7/x")), MONDAY.replace(hour=8), 30)
    b = run_env(EnvSensor(random.Random("7/x")), MONDAY.replace(hour=8), 30)
    c = run_env(EnvSensor(random.Random("8/x")), MONDAY.replace(hour=8), 30)
    assert a == b and a != c


def test_fleet_publishes_contract_payloads_and_obeys_a_luminaire_command(db_url, mqtt_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1", rooms=2))
    received: list[tuple[str, dict]] = []
    lock = threading.Lock()
    listener = MqttClient(mqtt_url, f"t-listen-{uuid.uuid4().hex[:6]}", persistent=False)

    def on_message(client, userdata, msg):
        with lock:
            received.append((msg.topic, orjson.loads(msg.payload)))

    subscribed = threading.Event()
    listener.client.on_message = on_message
    listener.client.on_connect = lambda c, *a: (c.subscribe("campus/v1/s1/#", qos=1), subscribed.set())
    listener.connect()
    assert subscribed.wait(10)
    runner = FleetRunner(db_url, mqtt_url, interval_s=0.3, seed=1, client_id=f"t-sim-{uuid.uuid4().hex[:6]}")
    try:
        with running(runner.run):
            assert runner.started.wait(10)
            wait_for(lambda: len({t for t, _ in received if t.endswith("/telemetry")}) == 4)
            listener.client.publish(topic("s1", "LUM-1", "cmd"), orjson.dumps({"id": "c1", "action": "dim", "level": 40}),
                                    qos=1)
            ack = wait_for(lambda: [p for t, p in list(received) if t == topic("s1", "LUM-1", "cmd/ack")])
            assert ack[0] == {"id": "c1", "ok": True, "action": "dim"}
            mark = len(received)
            dimmed = wait_for(lambda: [p for t, p in received[mark:] if t == topic("s1", "LUM-1", "telemetry")])
            assert dimmed[0]["metrics"]["dimming"] == 40.0 and dimmed[0]["metrics"]["on"] == 1.0
    finally:
        listener.close()
    with lock:
        env = [p for t, p in received if t == topic("s1", "ENV-0", "telemetry")]
        statuses = [p for t, p in received if t.endswith("/status")]
    assert {"co2", "temperature", "humidity", "occupancy"} <= set(env[0]["metrics"])
    seqs = [p["seq"] for p in env]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {"state": "online", "firmware": "sim-1.0"} in statuses
