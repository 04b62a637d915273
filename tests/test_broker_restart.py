"""A Mosquitto restart with persistence loses nothing that the broker acknowledged, with ingest's
default settings (issue 13, defect 5).

Mosquitto 2.0 restores the plain subscriptions of persistent sessions from its persistence file,
not shared ones: with the old default (a ``$share/campus-ingest/...`` subscription for a single
worker) everything published between the broker's restart and the worker's resubscription was
dropped (15,008 of 20,000 in the issue). ``--share-group auto`` (the default) subscribes plainly
with one worker.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.helpers import small_twin, stored_readings, wait_for
from twin.broker import MosquittoBroker, free_port
from twin.contract import topic
from twin.database import connection
from twin.mqtt import MqttClient
from twin.storage.model import save_model

pytestmark = pytest.mark.usefixtures("mosquitto_installed")

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def payload(i: int) -> bytes:
    ts = BASE + timedelta(seconds=i)
    return orjson.dumps({"ts": int(ts.timestamp() * 1000), "seq": i + 1, "metrics": {"energy": float(i)}})


class Publisher:
    """Publishes ``payload(i)`` at QoS 1 on a persistent session from a thread, ``rate`` a second; holds
    while ``go`` is clear; after a broker restart it reconnects within half a second (sooner than ingest,
    whose backoff starts at 1 s) and resends what was not acknowledged. ``acked`` counts PUBACKs."""

    def __init__(self, url: str, rate: float = 2000.0) -> None:
        self.mqtt = MqttClient(url, f"pub-{uuid.uuid4().hex[:8]}", persistent=True)
        self.mqtt.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.connected = threading.Event()
        self.mqtt.client.on_connect = lambda *a: self.connected.set()
        self.mqtt.client.on_disconnect = lambda *a: self.connected.clear()
        self.rate = rate
        self.go = threading.Event()
        self.go.set()
        self.infos: list = []
        self.mqtt.connect()
        assert self.connected.wait(10)

    def publish(self, start: int, stop: int) -> None:
        t = topic("t1", "ENV-0", "telemetry")
        t0, sent = time.monotonic(), 0
        for i in range(start, stop):
            self.go.wait()
            self.connected.wait(60)
            self.infos.append(self.mqtt.client.publish(t, payload(i), qos=1))
            sent += 1
            ahead = sent / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)

    def acked(self) -> int:
        return sum(1 for info in self.infos if info.is_published())

    def close(self) -> None:
        self.mqtt.close()


def ingest_cli(db: str, mqtt: str, *args: str) -> subprocess.Popen:
    """``campus-twin ingest`` with its default settings (and ``args``)."""
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "--database-url", db, "--mqtt-url", mqtt, "ingest",
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stored_values(url: str) -> list[tuple[datetime, float]]:
    with connection(url) as conn:
        return conn.execute("SELECT ts, value FROM readings ORDER BY ts").fetchall()


def readings_when(url: str, n: int, timeout: float = 60) -> int:
    """Stored readings once there are ``n``, or after ``timeout`` (to say how many are missing)."""
    try:
        wait_for(lambda: stored_readings(url) >= n, timeout=timeout)
    except AssertionError:
        pass
    return stored_readings(url)


def test_broker_restart_mid_stream_loses_nothing_with_the_default_settings(db_url: str, tmp_path: Path) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
    workdir, port, n = tmp_path / "mosquitto", free_port(), 5000
    broker = MosquittoBroker(workdir, port=port, persist=True)
    proc = ingest_cli(db_url, broker.url)
    pub = None
    try:
        pub = Publisher(broker.url)
        # ingest's session and subscription exist once message 0 is stored (stored once, however often sent)
        wait_for(lambda: pub.publish(0, 1) or stored_readings(db_url) >= 1, interval=0.5)
        thread = threading.Thread(target=pub.publish, args=(1, n), daemon=True)
        thread.start()
        wait_for(lambda: pub.acked() >= 1500, interval=0.02)
        pub.go.clear()
        broker.stop()  # SIGTERM: Mosquitto writes its persistence file
        assert broker.proc.returncode == 0
        broker = MosquittoBroker(workdir, port=port, persist=True)
        pub.go.set()
        thread.join(120)
        assert not thread.is_alive()
        wait_for(lambda: pub.acked() == len(pub.infos), timeout=60)  # every message acknowledged by the broker
        stored = readings_when(db_url, n)
        assert stored == n, f"{n - stored} of {n} acknowledged messages lost"
        assert proc.poll() is None
        assert stored_values(db_url) == [(BASE + timedelta(seconds=i), float(i)) for i in range(n)]
    finally:
        if pub is not None:
            pub.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        broker.stop()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
