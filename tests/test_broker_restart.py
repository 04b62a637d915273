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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import orjson
import pytest

from tests.helpers import QosPublisher, stored_readings, wait_for
from twin.database import connection
from twin.messaging.broker import MosquittoBroker, free_port
from twin.messaging.contract import topic

pytestmark = pytest.mark.usefixtures("mosquitto_installed")

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def payload(i: int) -> bytes:
    ts = BASE + timedelta(seconds=i)
    return orjson.dumps({"ts": int(ts.timestamp() * 1000), "seq": i + 1, "metrics": {"energy": float(i)}})


def stream(start: int, stop: int) -> Iterator[tuple[str, bytes]]:
    """ENV-0's telemetry ``payload(i)`` for i in ``start..stop-1``."""
    t = topic("t1", "ENV-0", "telemetry")
    return ((t, payload(i)) for i in range(start, stop))


def ingest_cli(db: str, mqtt: str, log: IO[bytes], *args: str) -> subprocess.Popen:
    """``campus-twin ingest`` with its default settings (and ``args``), its log written to ``log``
    (a file: a pipe nobody reads while it runs would fill and block it)."""
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "--database-url", db, "--mqtt-url", mqtt, "ingest",
                             *args], stdout=subprocess.DEVNULL, stderr=log)


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


def test_broker_restart_mid_stream_loses_nothing_with_the_default_settings(twin_db: str, tmp_path: Path) -> None:
    workdir, port, n = tmp_path / "mosquitto", free_port(), 5000
    broker = MosquittoBroker(workdir, port=port, persist=True)
    log_file = tmp_path / "ingest.log"
    log = log_file.open("wb")
    proc = ingest_cli(twin_db, broker.url, log)
    pub = None
    try:
        pub = QosPublisher(broker.url, rate=2000)
        # ingest's session and subscription exist once message 0 is stored (stored once, however often sent)
        wait_for(lambda: pub.publish(stream(0, 1)) or stored_readings(twin_db) >= 1, interval=0.5)
        thread = threading.Thread(target=pub.publish, args=(stream(1, n), None), daemon=True)
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
        stored = readings_when(twin_db, n)
        assert stored == n, f"{n - stored} of {n} acknowledged messages lost"
        assert proc.poll() is None
        assert stored_values(twin_db) == [(BASE + timedelta(seconds=i), float(i)) for i in range(n)]
    finally:
        if pub is not None:
            pub.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
        broker.stop()
    assert proc.returncode == 0, log_file.read_text(errors="replace")[-2000:]
