"""The fleet runner: every device of the twin publishes telemetry and status over MQTT.

Devices come from the database (after a BIM load). Each publishes at its own interval
with jitter, following the contract of DESIGN.md; luminaires obey ``cmd`` messages
(on, off, dim) and acknowledge them on ``cmd/ack``.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from simulators.models import DeviceModel, Luminaire, model_for
from simulators.timetable import Timetable
from twin import contract
from twin.database import connection
from twin.mqtt import MqttClient
from twin.storage.model import list_devices

log = logging.getLogger(__name__)

SCHOOL_TZ = ZoneInfo("Asia/Shanghai")
FIRMWARE = "sim-1.0"


@dataclass(slots=True)
class SimDevice:
    site_id: str
    device_id: str
    kind: str
    model: DeviceModel
    interval_s: float
    seq: int = 0
    last_step: float | None = None


def build_fleet(devices: list[dict[str, Any]], *, seed: int, interval_s: float,
                timetable: Timetable | None = None) -> list[SimDevice]:
    """One simulated device per twin device that publishes telemetry, reproducible for ``seed``."""
    tt = timetable or Timetable()
    fleet = []
    for d in devices:
        rng = random.Random(f"{seed}/{d['site_id']}/{d['device_id']}")
        model = model_for(d["kind"], rng, tt)
        if model is not None:
            fleet.append(SimDevice(d["site_id"], d["device_id"], d["kind"], model,
                                   interval_s * rng.uniform(0.9, 1.1)))
    return fleet


def apply_command(dev: SimDevice, payload: bytes) -> dict[str, Any]:
    """Apply a ``cmd`` payload to a device; return the acknowledgement body."""
    try:
        cmd = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {"ok": False, "error": "bad JSON"}
    if not isinstance(cmd, dict):
        return {"ok": False, "error": "command must be an object"}
    cid, action = cmd.get("id"), cmd.get("action")
    if isinstance(dev.model, Luminaire) and action in ("on", "off", "dim"):
        level = cmd.get("level", 100)
        if action == "dim" and (not isinstance(level, int | float) or not 0 <= level <= 100):
            return {"id": cid, "ok": False, "error": "level must be 0..100"}
        dev.model.override = {"on": 0.0 if action == "off" else 1.0,
                              "dimming": float(level) if action == "dim" else 100.0}
        return {"id": cid, "ok": True, "action": action}
    return {"id": cid, "ok": False, "error": f"unsupported action {action!r} for {dev.kind}"}


class FleetRunner:
    """Publishes for a fleet until stopped; ``speed`` > 1 runs simulated time faster."""

    def __init__(self, database_url: str, mqtt_url: str, *, interval_s: float = 5.0, seed: int = 0,
                 speed: float = 1.0, client_id: str = "campus-sim", site_id: str | None = None) -> None:
        self.database_url, self.mqtt_url = database_url, mqtt_url
        self.interval_s, self.seed, self.speed = interval_s, seed, speed
        self.client_id, self.site_id = client_id, site_id
        self.published = 0
        self.started = threading.Event()
        self.fleet: list[SimDevice] = []
        self.status_topics: list[str] = []
        self._by_topic: dict[str, SimDevice] = {}
        self._t0_wall = time.time()
        self._t0_mono = time.monotonic()

    def sim_now(self) -> datetime:
        elapsed = (time.monotonic() - self._t0_mono) * self.speed
        return datetime.fromtimestamp(self._t0_wall + elapsed, tz=UTC)

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        dev = self._by_topic.get(msg.topic)
        if dev is None:
            return
        ack = apply_command(dev, bytes(msg.payload))
        client.publish(contract.topic(dev.site_id, dev.device_id, contract.CMD_ACK), orjson.dumps(ack), qos=1)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not reason_code.is_failure:
            client.subscribe(f"{contract.PREFIX}/+/+/{contract.CMD}", qos=1)

    def run(self, stop: threading.Event) -> None:
        with connection(self.database_url) as conn:
            devices = list_devices(conn, self.site_id)
        self.fleet = build_fleet(devices, seed=self.seed, interval_s=self.interval_s)
        self.status_topics = [contract.topic(d["site_id"], d["device_id"], contract.STATUS) for d in devices]
        self._by_topic = {contract.topic(d.site_id, d.device_id, contract.CMD): d for d in self.fleet}
        mqtt = MqttClient(self.mqtt_url, self.client_id, persistent=False)
        client = mqtt.client
        client.on_message, client.on_connect = self._on_message, self._on_connect
        mqtt.connect()
        for status_topic in self.status_topics:  # every device of the twin, telemetry or not
            client.publish(status_topic, contract.status_payload("online", firmware=FIRMWARE), qos=1, retain=True)
        rng = random.Random(self.seed)
        now = time.monotonic()
        heap = [(now + rng.uniform(0, min(dev.interval_s, 2.0)), i) for i, dev in enumerate(self.fleet)]
        heapq.heapify(heap)
        log.info("simulator started devices=%d interval_s=%.1f speed=%g", len(self.fleet), self.interval_s, self.speed)
        self.started.set()
        try:
            while heap and not stop.is_set():
                due, i = heap[0]
                wait = due - time.monotonic()
                if wait > 0 and stop.wait(min(wait, 0.5)):
                    break
                if wait > 0:
                    continue
                heapq.heapreplace(heap, (due + self.fleet[i].interval_s / self.speed, i))
                self._publish(client, self.fleet[i])
        finally:
            for status_topic in self.status_topics:
                client.publish(status_topic, contract.status_payload("offline"), qos=1, retain=True)
            mqtt.close()

    def _publish(self, client: Any, dev: SimDevice) -> None:
        ts = self.sim_now()
        mono = time.monotonic()
        dt = dev.interval_s if dev.last_step is None else (mono - dev.last_step) * self.speed
        dev.last_step = mono
        metrics = dev.model.step(dt, ts.astimezone(SCHOOL_TZ))
        dev.seq += 1
        client.publish(contract.topic(dev.site_id, dev.device_id, contract.TELEMETRY),
                       contract.telemetry_payload(ts, dev.seq, metrics), qos=contract.QOS_TELEMETRY)
        self.published += 1
