"""Sensor drift against neighbours (issue 17): pure cases on 10-minute means, and one through PostgreSQL."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import small_twin
from twin.database import connection
from twin.metrics import BY_NAME
from twin.monitoring.drift import BOUNDS, WINDOW, DeviceMean, drift_episodes
from twin.storage.drift import neighbour_means
from twin.storage.model import device_keys, save_model

START = datetime(2026, 11, 16, 14, 0, tzinfo=UTC)  # 22:00 at school, a Monday night: the rooms are quiet
END = START + WINDOW
STEP = timedelta(minutes=10)
OFFSETS = (0.0, 0.6, -0.7, 1.3, -0.4, 0.9)

Value = Callable[[float], float]  # hours since START -> value


def means(devices: dict[int, Value], *, metric: str = "temperature", rooms: dict[int, int] | None = None,
          noise: float = 0.1, seed: int = 1, skip: Callable[[int, int], bool] = lambda dev, k: False) -> list[DeviceMean]:
    """10-minute means over the window of ``devices`` (key -> value at hour h), each in its own room of storey 1."""
    rng = random.Random(seed)
    out = []
    for k in range(int(WINDOW / STEP)):
        bucket = START + k * STEP
        h = (k + 0.5) * STEP / timedelta(hours=1)
        for dev, value in devices.items():
            if not skip(dev, k):
                room = (rooms or {}).get(dev, 100 + dev)
                out.append(DeviceMean(dev, room, 1, metric, bucket, value(h) + rng.gauss(0, noise), 20))
    return out


def steady(offset: float) -> Value:
    return lambda h: 21.0 + 0.6 * math.sin(h) + offset  # the whole storey warms and cools together


def drifting(offset: float, per_hour: float) -> Value:
    return lambda h: steady(offset)(h) + per_hour * h


def test_a_drifting_sensor_among_steady_neighbours_is_flagged():
    devices = {i + 1: steady(o) for i, o in enumerate(OFFSETS)}
    devices[4] = drifting(OFFSETS[3], 0.8)  # the simulator's temperature drift: 2.4 °C in 3 h
    [ep] = drift_episodes(means(devices), start=START, end=END)
    assert (ep.rule, ep.room_id, ep.device, ep.end, ep.severity) == ("device_drift", None, 4, None, "warning")
    assert 2.0 <= ep.value <= 2.8
    assert ep.message.startswith("temperature drifts +2.") and ep.message.endswith("°C from 5 neighbours over 3 h")
    # the fitted residual leaves the 1.5 °C bound about 1.5 / 0.8 h after the window began
    assert START + timedelta(hours=1.4) <= ep.start <= START + timedelta(hours=2.2)
    assert (ep.start - START) % STEP == timedelta(0)


def test_a_downward_drift_is_flagged_with_its_sign():
    devices = {i + 1: steady(o) for i, o in enumerate(OFFSETS)}
    devices[2] = drifting(OFFSETS[1], -0.8)
    [ep] = drift_episodes(means(devices), start=START, end=END)
    assert ep.device == 2 and ep.value < -2.0 and "drifts -2." in ep.message


def test_an_open_alarm_keeps_its_start():
    devices = {i + 1: steady(o) for i, o in enumerate(OFFSETS)}
    devices[4] = drifting(OFFSETS[3], 0.8)
    raised = START - timedelta(hours=2)
    [ep] = drift_episodes(means(devices), start=START, end=END, open_since={4: raised, 5: raised})
    assert (ep.device, ep.start) == (4, raised)


def test_school_hours_are_not_judged_and_an_open_alarm_carries_on_through_them():
    devices = {i + 1: steady(o) for i, o in enumerate(OFFSETS)}
    devices[4] = drifting(OFFSETS[3], 0.8)
    day = START - timedelta(hours=10)  # 12:00-15:00 at school: occupancy, windows, air conditioning
    shifted = [replace(m, bucket=m.bucket - timedelta(hours=10)) for m in means(devices)]
    assert drift_episodes(shifted, start=day, end=day + WINDOW) == []
    raised = day - timedelta(hours=14)
    [ep] = drift_episodes(shifted, start=day, end=day + WINDOW, open_since={4: raised})
    assert (ep.device, ep.start, ep.end, ep.rule) == (4, raised, None, "device_drift")
    assert "not judged" in ep.message


def test_steady_sensors_with_different_offsets_are_not_flagged():
    devices = {i + 1: steady(3 * o) for i, o in enumerate(OFFSETS)}  # offsets up to 3.9 °C
    for seed in range(20):
        assert drift_episodes(means(devices, noise=0.3, seed=seed), start=START, end=END) == []


def test_a_change_of_the_whole_storey_is_not_drift():
    # windows open at 1 h everywhere: every room cools by 4 °C with a 25-minute time constant
    def opened(offset: float) -> Value:
        return lambda h: steady(offset)(h) - (4.0 * (1 - math.exp(-(h - 1) / (25 / 60))) if h > 1 else 0.0)

    devices = {i + 1: opened(o) for i, o in enumerate(OFFSETS)}
    assert drift_episodes(means(devices), start=START, end=END) == []


def test_a_step_in_one_room_is_not_a_trend():
    # one room's windows open at 1.5 h (a 2 °C drop within 20 minutes), the neighbours keep theirs shut
    devices = {i + 1: steady(o) for i, o in enumerate(OFFSETS)}
    devices[3] = lambda h: steady(OFFSETS[2])(h) - (2.0 * (1 - math.exp(-(h - 1.5) / 0.1)) if h > 1.5 else 0.0)
    assert drift_episodes(means(devices), start=START, end=END) == []


def test_drift_below_the_bound_is_not_flagged():
    devices = {i + 1: steady(o) for i, o in enumerate(OFFSETS)}
    devices[4] = drifting(OFFSETS[3], 0.35)  # 1.05 °C in 3 h, under the 1.5 °C bound
    assert BOUNDS["temperature"] == 1.5
    assert drift_episodes(means(devices), start=START, end=END) == []


def test_fewer_than_two_neighbours_gives_nothing():
    pair = {1: steady(0.0), 2: drifting(0.5, 0.8)}
    assert drift_episodes(means(pair), start=START, end=END) == []
    # three sensors, but the two neighbours never report in the same 10 minutes
    trio = {1: steady(0.0), 2: drifting(0.5, 0.8), 3: steady(-0.5)}
    alternate = means(trio, skip=lambda dev, k: dev != 2 and k % 2 == dev // 2)
    assert drift_episodes(alternate, start=START, end=END) == []


def test_neighbours_in_the_same_room_come_before_the_storey():
    # three sensors in room 1 (the drifting one and two peers), four elsewhere on the storey
    devices = {i + 1: steady(o) for i, o in enumerate((*OFFSETS, 0.2))}
    devices[1] = drifting(0.0, 1.0)
    rooms = {1: 1, 2: 1, 3: 1}
    [ep] = drift_episodes(means(devices, rooms=rooms), start=START, end=END)
    assert ep.device == 1 and "from 2 neighbours" in ep.message


def test_metrics_that_do_not_drift_are_ignored():
    devices = {i + 1: steady(10 * o) for i, o in enumerate(OFFSETS)}
    devices[4] = drifting(0.0, 30.0)
    assert drift_episodes(means(devices, metric="occupancy"), start=START, end=END) == []
    assert "occupancy" not in BOUNDS and set(BOUNDS) <= set(BY_NAME)


def test_co2_drift_shows_when_the_rooms_are_empty():
    # a night: every room near the outdoor 420 ppm, one sensor drifting 150 ppm/h
    def night(offset: float, per_hour: float = 0.0) -> Value:
        return lambda h: 430.0 + 10 * offset + per_hour * h

    devices = {i + 1: night(o) for i, o in enumerate(OFFSETS)}
    devices[5] = night(OFFSETS[4], 150.0)
    [ep] = drift_episodes(means(devices, metric="co2", noise=8.0), start=START, end=END)
    assert ep.device == 5 and "co2 drifts +4" in ep.message and "ppm from 5 neighbours" in ep.message


# -- through PostgreSQL ----------------------------------------------------------------------------


def test_neighbour_means_from_rollups_flag_only_the_drifting_sensor(db_url):
    site_id = f"drift-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=6))  # one storey, six classrooms, a sensor in each
        keys = device_keys(conn)
        sensors = [keys[(site_id, f"ENV-{i}")] for i in range(6)]
        drifter = sensors[2]
        rng = random.Random(7)
        rows = []
        for m in range(int(WINDOW / timedelta(minutes=1))):
            bucket, h = START + timedelta(minutes=m), m / 60
            for i, dev in enumerate(sensors):
                temp = 22.0 + OFFSETS[i] + 0.5 * math.sin(h) + rng.gauss(0, 0.1) + (0.8 * h if dev == drifter else 0)
                hum = 55.0 + 2 * OFFSETS[i] - 1.5 * h + rng.gauss(0, 0.5)
                for metric, value in (("temperature", temp), ("humidity", hum)):
                    n = 2  # two 30-second readings a minute
                    rows.append((dev, BY_NAME[metric].metric_id, bucket, n, n * value, value - 0.05, value + 0.05))
        # a minute outside the window and a luminaire on the storey (not a metric asked for) are not read
        rows.append((sensors[0], BY_NAME["temperature"].metric_id, END, 1, 99.0, 99.0, 99.0))
        rows.append((keys[(site_id, "LUM-0")], BY_NAME["power"].metric_id, START, 1, 400.0, 400.0, 400.0))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO rollup_1m (device_id, metric_id, bucket, n, sum, min, max) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
        conn.commit()
        got = neighbour_means(conn, site_id, ["temperature", "humidity"], START, END)
        storey = conn.execute("SELECT DISTINCT storey_id FROM rooms WHERE site_id = %s", (site_id,)).fetchone()[0]
        room_of = dict(conn.execute("SELECT id, room_id FROM devices WHERE site_id = %s", (site_id,)).fetchall())

    assert len(got) == 2 * 6 * 18 and all(isinstance(r, DeviceMean) for r in got)
    assert {r.metric for r in got} == {"temperature", "humidity"}
    assert {r.bucket for r in got} == {START + k * STEP for k in range(18)}
    assert all(r.storey_id == storey and r.room_id == room_of[r.device] and r.n == 20 for r in got)
    first = next(r for r in got if r.device == sensors[0] and r.metric == "temperature" and r.bucket == START)
    assert first.mean == pytest.approx(22.0 + 0.5 * math.sin(4.5 / 60), abs=0.15)

    [ep] = drift_episodes(got, start=START, end=END)
    assert (ep.device, ep.rule, ep.end) == (drifter, "device_drift", None)
    assert "temperature drifts +2." in ep.message and "from 5 neighbours over 3 h" in ep.message
