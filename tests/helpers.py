"""Small helpers shared by tests: a known twin, waiting for conditions, publishing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shapely.geometry import box

from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.mqtt import MqttClient


def small_twin(site_id: str = "t1", rooms: int = 3) -> TwinModel:
    """One building, one storey, ``rooms`` classrooms side by side, a sensor and a luminaire in each."""
    room_list = tuple(
        Room(f"R{i}", "S1", f"Room {i}", use="classroom", footprint=box(i * 10, 0, i * 10 + 9, 7),
             area_m2=63.0, height_m=3.2)
        for i in range(rooms)
    )
    devices = tuple(
        dev for i in range(rooms) for dev in (
            Device(f"ENV-{i}", f"G-ENV-{i}", "env_sensor", "IfcSensor", room_global_id=f"R{i}",
                   storey_global_id="S1", mapping="containment", x=i * 10 + 1, y=1, z=1),
            Device(f"LUM-{i}", f"G-LUM-{i}", "luminaire", "IfcLightFixture", room_global_id=f"R{i}",
                   storey_global_id="S1", mapping="containment", x=i * 10 + 4, y=3, z=3),
        )
    )
    return TwinModel(Site(site_id, f"Test school {site_id}", "headquarters", 22.5, 114.0),
                     (Building("B1", "Main"),), (Storey("S1", "B1", "1F", 0.0),), room_list, devices, "IFC4")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


@contextmanager
def running(target: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run ``target(stop)`` in a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "worker did not stop within 20 s"


@contextmanager
def publisher(mqtt_url: str, client_id: str = "test-pub") -> Iterator[Any]:
    """A connected paho client; waits for outstanding QoS 1 publishes before disconnecting."""
    mqtt = MqttClient(mqtt_url, client_id, persistent=False)
    connected = threading.Event()
    mqtt.client.on_connect = lambda *a: connected.set()
    mqtt.connect()
    assert connected.wait(10), "publisher could not connect"
    try:
        yield mqtt.client
    finally:
        mqtt.close()
