"""Delivery guarantees through a real Mosquitto and a real PostgreSQL: nothing lost, nothing twice.

Each test publishes messages of known content (ENV-0, ``energy = i``, one second apart) and
checks the stored rows exactly, while something breaks mid-stream: the worker process
is killed with SIGKILL, the broker stops, the database refuses connections for 10 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO

import orjson
import psutil
import psycopg
import pytest
from psycopg import sql

from ingest.worker import IngestWorker
from tests.helpers import QosPublisher, in_thread, publisher, running, stored_readings, wait_for
from twin.database import connection
from twin.messaging.broker import MosquittoBroker, free_port
from twin.messaging.contract import SHARE_GROUP, TELEMETRY_FILTER, topic
from twin.messaging.mqtt import MqttClient, Subscription

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


#: Broker restarts and MQTT 5 shared subscriptions need a real Mosquitto.
pytestmark = pytest.mark.usefixtures("mosquitto_installed")


@pytest.fixture
def broker(persistent_broker: MosquittoBroker) -> MosquittoBroker:
    """This module's broker keeps its sessions across restarts."""
    return persistent_broker


def payload(i: int) -> bytes:
    ts = BASE + timedelta(seconds=i)
    return orjson.dumps({"ts": int(ts.timestamp() * 1000), "seq": i + 1, "metrics": {"energy": float(i)}})


def assert_exact(url: str, n: int) -> None:
    """Exactly ``n`` rows: ``energy = i`` at ``BASE + i s`` for i in 0..n-1, rollups counted once."""
    with connection(url) as conn:
        rows = conn.execute("SELECT ts, value FROM readings ORDER BY ts").fetchall()
        assert rows == [(BASE + timedelta(seconds=i), float(i)) for i in range(n)]
        assert conn.execute("SELECT sum(n) FROM rollup_1m").fetchone()[0] == n
        letters = conn.execute("SELECT reason FROM dead_letters WHERE topic LIKE 'campus/v1/t1/%' LIMIT 3").fetchall()
        assert letters == []


def stream(start: int, stop: int) -> Iterator[tuple[str, bytes]]:
    """ENV-0's telemetry ``payload(i)`` for i in ``start..stop-1``."""
    t = topic("t1", "ENV-0", "telemetry")
    return ((t, payload(i)) for i in range(start, stop))


def ingest_process(db: str, mqtt: str, client_id: str, log: IO[bytes]) -> subprocess.Popen:
    """``campus-twin ingest``, its log appended to ``log`` (a file: a pipe nobody reads would fill and block it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "--database-url", db, "--mqtt-url", mqtt, "ingest", "--client-id", client_id],
        stdout=subprocess.DEVNULL, stderr=log)


def test_kill_9_worker_mid_stream_and_restart_stores_every_message_once(twin_db, broker, tmp_path):
    log_file = tmp_path / "ingest.log"
    log = log_file.open("ab")
    n = 6000
    proc = ingest_process(twin_db, broker.url, "k9-worker", log)
    try:
        pub = QosPublisher(broker.url, rate=3000)
        # the worker's session must exist before the stream starts: repeat message 0 (stored once) until it lands
        wait_for(lambda: pub.publish(stream(0, 1)) or stored_readings(twin_db) >= 1, interval=0.5)
        with in_thread(pub.publish, stream(1, n)):
            wait_for(lambda: stored_readings(twin_db) >= 1500, interval=0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            at_kill = stored_readings(twin_db)
        assert at_kill < n, "the worker was not killed mid-stream"
        proc = ingest_process(twin_db, broker.url, "k9-worker", log)
        wait_for(lambda: stored_readings(twin_db) >= n, timeout=60)
        time.sleep(0.5)  # any duplicate would land now
        assert_exact(twin_db, n)
        pub.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        log.close()
    assert proc.returncode == 0, log_file.read_text(errors="replace")[-2000:]


def test_broker_stopped_mid_stream_and_started_again_stores_every_message_once(twin_db, tmp_path):
    """One worker on a plain persistent subscription: Mosquitto 2.0 does not restore shared
    subscriptions from its persistence file, so a shared one would drop what is published
    between the broker's restart and the worker's resubscription (docs/mqtt.md)."""
    workdir, port = tmp_path / "mosquitto", free_port()
    broker = MosquittoBroker(workdir, port=port, persist=True)
    worker = IngestWorker(twin_db, broker.url, client_id=f"bk-{uuid.uuid4().hex[:6]}", batch_max=200,
                          batch_wait_s=0.05, share_group="")
    n = 5000
    try:
        with running(worker.run):
            assert worker.connected.wait(10)
            pub = QosPublisher(broker.url, rate=3000)
            with in_thread(pub.publish, stream(0, n)):
                wait_for(lambda: worker.counters.messages >= 1000, interval=0.02)
                pub.go.clear()
                broker.stop()
                at_stop = worker.counters.messages
                wait_for(lambda: not worker.connected.is_set())
                broker = MosquittoBroker(workdir, port=port, persist=True)
                pub.go.set()
            assert at_stop < n, "the broker was not stopped mid-stream"
            wait_for(lambda: stored_readings(twin_db) >= n, timeout=30)
            time.sleep(0.5)
            pub.close()
        assert_exact(twin_db, n)
    finally:
        broker.stop()


def _database_of(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


def test_database_unavailable_for_10_s_mid_stream_loses_nothing_and_memory_stays_bounded(
        twin_db, broker, pg_admin_url):
    name = _database_of(twin_db)
    worker = IngestWorker(twin_db, broker.url, client_id="db-down", batch_max=200, batch_wait_s=0.05,
                          queue_max=500, receive_maximum=1000, retry_max_s=2.0)
    n, outage_at = 20000, 2000
    rss = psutil.Process(os.getpid()).memory_info().rss
    with running(worker.run):
        assert worker.connected.wait(10)
        pub = QosPublisher(broker.url, rate=20000)
        pub.publish(stream(0, outage_at))
        wait_for(lambda: stored_readings(twin_db) >= outage_at)
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                pub.publish(stream(outage_at, n))  # the broker takes them all; the worker can store none
                peak_queue, peak_rss = 0, 0
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    peak_queue = max(peak_queue, worker.queue.qsize())
                    peak_rss = max(peak_rss, psutil.Process(os.getpid()).memory_info().rss)
                    time.sleep(0.1)
                assert worker.counters.db_errors > 0
                assert worker.counters.messages == outage_at
            finally:
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
        wait_for(lambda: worker.counters.messages >= n, timeout=60)
        time.sleep(0.5)
        pub.close()
    assert_exact(twin_db, n)
    # bounded: the queue never grows past its limit, the rest waits at the broker
    assert peak_queue <= 500
    assert peak_rss - rss < 100 * 2**20


def test_two_workers_sharing_the_subscription_store_every_message_exactly_once(twin_db, broker):
    group = f"two-{uuid.uuid4().hex[:6]}"
    a = IngestWorker(twin_db, broker.url, client_id="share-a", share_group=group, batch_wait_s=0.05)
    b = IngestWorker(twin_db, broker.url, client_id="share-b", share_group=group, batch_wait_s=0.05)
    n = 4000
    with running(a.run), running(b.run):
        assert a.connected.wait(10) and b.connected.wait(10)
        time.sleep(0.3)  # both subscriptions in place
        pub = QosPublisher(broker.url, rate=20000)
        pub.publish(stream(0, n))
        wait_for(lambda: a.counters.messages + b.counters.messages >= n)
        pub.close()
    assert a.counters.messages > 0 and b.counters.messages > 0
    assert a.counters.messages + b.counters.messages == n
    assert a.counters.duplicates == b.counters.duplicates == 0
    assert_exact(twin_db, n)


class HeldWorker(IngestWorker):
    """A worker whose store waits for ``release`` and fails (as if the database were down) for any
    batch holding a message of ``refused`` payloads; counts what it received."""

    def __init__(self, *args, refused: set[bytes], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.refused = refused
        self.received = 0

    def _on_message(self, msg) -> None:
        super()._on_message(msg)
        self.received += 1

    def store(self, prepared):
        if any(m.payload in self.refused for m in prepared.batch):
            raise psycopg.OperationalError("test: database unavailable for this batch")
        self.release.wait(30)
        return super().store(prepared)


def test_a_batch_of_a_lost_session_acknowledges_nothing_on_the_next_connection(twin_db, tmp_path):
    """The broker restarts without persistence while a batch is being stored: the new session numbers
    its messages from 1 again. Committing the old batch must not acknowledge the new messages with
    the old packet ids: the new ones, never stored, stay with the broker and come again."""
    workdir, port = tmp_path / "mosquitto", free_port()
    broker = MosquittoBroker(workdir, port=port, persist=False)
    old = [payload(i) for i in range(5)]
    new = {payload(i) for i in range(100, 105)}
    client_id = f"stale-{uuid.uuid4().hex[:6]}"
    worker = HeldWorker(twin_db, broker.url, client_id=client_id, share_group="", retry_max_s=0.5, refused=new)
    t = topic("t1", "ENV-0", "telemetry")
    try:
        with running(worker.run):
            assert worker.connected.wait(10)
            with publisher(broker.url, "stale-pub-1") as pub:
                for p in old:
                    pub.publish(t, p, qos=1).wait_for_publish(10)
            wait_for(lambda: worker.received >= len(old))
            broker.stop()  # the old batch is held in store(): received, not yet committed
            wait_for(lambda: not worker.connected.is_set())
            broker = MosquittoBroker(workdir, port=port, persist=False)
            assert worker.connected.wait(20), "the worker did not come back"
            with publisher(broker.url, "stale-pub-2") as pub:
                for p in sorted(new):
                    pub.publish(t, p, qos=1).wait_for_publish(10)
            wait_for(lambda: worker.received >= len(old) + len(new))
            worker.release.set()  # the old batch commits; the new messages' batch keeps failing
            wait_for(lambda: stored_readings(twin_db) >= len(old))
            time.sleep(0.5)  # any acknowledgement is on the wire by now
        assert worker.counters.stale_acks == len(old)
        # Back on the worker's session: exactly the new messages come again (none was acknowledged).
        again = MqttClient(broker.url, client_id, persistent=True, manual_ack=True)
        got: list[bytes] = []
        # The worker's own subscription, held by its session (made again, the same, on connect).
        again.declare([Subscription(TELEMETRY_FILTER, lambda msg: got.append(msg.payload))])
        again.connect()
        wait_for(lambda: len(got) >= len(new), timeout=10)
        time.sleep(0.5)
        again.close()
        assert sorted(got) == sorted(new)
    finally:
        broker.stop()


class BrokenWorker(IngestWorker):
    """The database is down for every batch, and decoding fails on the second batch (a bug)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prepared = 0

    def store(self, prepared):
        raise psycopg.OperationalError("test: database unavailable")

    def prepare(self, batch):
        self.prepared += 1
        if self.prepared == 2:
            raise RuntimeError("test: a decoding bug")
        return super().prepare(batch)


def test_a_worker_that_fails_stops_its_store_thread_instead_of_retrying_forever(twin_db, broker):
    """An error in the worker's loop ends ``run`` with that error at once, even while the store
    thread is retrying a batch against a database that is down; nothing is acknowledged."""
    worker = BrokenWorker(twin_db, broker.url, client_id=f"broken-{uuid.uuid4().hex[:6]}", share_group="",
                          batch_max=1, retry_max_s=30.0)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(threading.Event())  # never set: only the error may end it
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert worker.connected.wait(10)
    with publisher(broker.url, "broken-pub") as pub:
        for i in range(3):
            pub.publish(topic("t1", "ENV-0", "telemetry"), payload(i), qos=1).wait_for_publish(10)
    thread.join(10)
    assert not thread.is_alive(), "run() kept waiting for the store thread's retries"
    assert [str(e) for e in errors] == ["test: a decoding bug"]
    assert worker.counters.db_errors >= 1 and worker.counters.messages == 0


def test_two_workers_sharing_one_devices_messages_suspect_no_loss_and_count_a_real_gap(twin_db, broker):
    """The broker hands each worker about every other message of the same devices: each worker's
    batches have holes that the other's fill. Only the 3 numbers never sent count as suspected loss.
    (500 messages a device: a backlog within the 1,024-number window, whatever the batches.)"""
    group = f"seq-{uuid.uuid4().hex[:6]}"
    a = IngestWorker(twin_db, broker.url, client_id="seq-a", share_group=group, batch_wait_s=0.05)
    b = IngestWorker(twin_db, broker.url, client_id="seq-b", share_group=group, batch_wait_s=0.05)
    devices, missing = ("ENV-0", "ENV-1", "LUM-0", "LUM-1"), {200, 201, 202}
    sent = [(device, k) for k in range(1, 501) for device in devices if not (device == "ENV-0" and k in missing)]
    with running(a.run), running(b.run):
        assert a.connected.wait(10) and b.connected.wait(10)
        time.sleep(0.3)  # both subscriptions in place
        with publisher(broker.url, "seq-pub") as pub:
            infos = [pub.publish(topic("t1", device, "telemetry"), orjson.dumps(
                {"ts": int((BASE + timedelta(seconds=k)).timestamp() * 1000), "seq": k, "metrics": {"energy": k}}),
                qos=1) for device, k in sent]
            for info in infos:
                info.wait_for_publish(30)
        wait_for(lambda: stored_readings(twin_db) >= len(sent), timeout=60)
    assert a.counters.messages > 100 and b.counters.messages > 100, "the broker did not share the stream"
    with connection(twin_db) as conn:
        got = {d: (gaps, last) for d, gaps, last in conn.execute(
            "SELECT d.device_id, s.seq_gaps, s.last_seq FROM device_status s JOIN devices d ON d.id = s.device_id "
            "WHERE d.device_id = ANY(%s)", (list(devices),)).fetchall()}
    assert got == {"ENV-0": (3, 500), "ENV-1": (0, 500), "LUM-0": (0, 500), "LUM-1": (0, 500)}

class DatabaseDownWorker(IngestWorker):
    """Every batch meets a database that is down."""

    def store(self, prepared):
        raise psycopg.OperationalError("test: database unavailable")


def test_stop_ends_a_worker_whose_database_stays_down(twin_db, broker):
    """One batch retrying in the store thread, the next one decoded and waiting for it: ``stop``
    ends both at once (nothing acknowledged, the broker keeps the messages)."""
    worker = DatabaseDownWorker(twin_db, broker.url, client_id=f"down-{uuid.uuid4().hex[:6]}", share_group="",
                                batch_max=1, retry_max_s=30.0)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    assert worker.connected.wait(10)
    with publisher(broker.url, "down-pub") as pub:
        for i in range(3):
            pub.publish(topic("t1", "ENV-0", "telemetry"), payload(i), qos=1).wait_for_publish(10)
    # the first batch is being retried, the second decoded and waiting for it (the third stays queued)
    wait_for(lambda: worker.counters.db_errors >= 2 and worker.queue.qsize() == 1)
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    assert not thread.is_alive(), "the worker kept retrying after stop"
    assert worker.counters.messages == 0


def test_a_worker_moved_from_shared_to_plain_on_its_session_receives_each_message_once(twin_db, broker):
    """An upgrade from the old default (``$share/campus-ingest``) to today's plain subscription, on the
    same persistent session: the old shared subscription is dropped, else every message arrives twice."""
    old = IngestWorker(twin_db, broker.url, client_id="upgraded", share_group=SHARE_GROUP, batch_wait_s=0.05)
    with running(old.run):
        assert old.connected.wait(10)
    new = IngestWorker(twin_db, broker.url, client_id="upgraded", share_group="", batch_wait_s=0.05)
    n = 300
    with running(new.run):
        assert new.connected.wait(10)
        pub = QosPublisher(broker.url, rate=3000)
        pub.publish(stream(0, n))
        wait_for(lambda: stored_readings(twin_db) >= n)
        # one more, after the others: both copies of every earlier message reach this session before it
        pub.publish(stream(n, n + 1))
        wait_for(lambda: stored_readings(twin_db) >= n + 1 and new.counters.messages >= n + 1)
        pub.close()
    assert (new.counters.messages, new.counters.duplicates) == (n + 1, 0)
    assert_exact(twin_db, n + 1)
