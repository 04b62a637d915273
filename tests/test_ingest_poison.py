"""Poison messages through a real Mosquitto and a real PostgreSQL: what the database refuses for one
message's values is dead-lettered with PostgreSQL's reason, the rest of its batch is stored, and the
worker stays alive, also across a restart with the poison still retained on the broker. A store
error that is not the database's ends ``campus-twin ingest`` with a non-zero exit and its reason."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ingest.worker import IngestWorker, Message
from tests.helpers import publisher, running, small_twin, stored_readings, wait_for
from twin.database import connection
from twin.messaging import contract
from twin.messaging.broker import MosquittoBroker, free_port
from twin.messaging.contract import topic
from twin.storage import events
from twin.storage.model import save_model

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
#: The payload of issue 13, as ``mosquitto_pub -m '{"state":"online","firmware":"x\u0000"}'`` sends it.
NUL_STATUS = b'{"state":"online","firmware":"x\\u0000"}'

#: A retained poison and restarts need a broker of this test only (nothing retained leaks to others).
pytestmark = pytest.mark.usefixtures("mosquitto_installed")


@pytest.fixture
def twin_db(db_url: str) -> str:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
    return db_url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "mosquitto", port=free_port(), persist=True)
    try:
        yield b
    finally:
        b.stop()


def payload(i: int, value: float | None = None, seq: int | None = None) -> bytes:
    doc: dict = {"ts": int((BASE + timedelta(seconds=i)).timestamp() * 1000),
                 "metrics": {"energy": float(i) if value is None else value}}
    if seq is not None:
        doc["seq"] = seq
    return orjson.dumps(doc)


def publish_range(url: str, start: int, stop: int, device: str = "ENV-0") -> None:
    with publisher(url, f"pub-{uuid.uuid4().hex[:6]}") as client:
        infos = [client.publish(topic("t1", device, "telemetry"), payload(i), qos=1) for i in range(start, stop)]
        for info in infos:
            info.wait_for_publish(30)


def letters(url: str, topic_: str) -> list[tuple[str, bytes]]:
    with connection(url) as conn:
        return [(r, bytes(p)) for r, p in conn.execute(
            "SELECT reason, payload FROM dead_letters WHERE topic = %s ORDER BY id", (topic_,)).fetchall()]


def values(url: str) -> list[float]:
    with connection(url) as conn:
        return [v for (v,) in conn.execute("SELECT value FROM readings ORDER BY ts").fetchall()]


class Running:
    """A worker's ``run`` in a thread that records how it ended."""

    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop within 30 s"


def last_seen(url: str, device: str) -> datetime | None:
    with connection(url) as conn:
        row = conn.execute("SELECT s.last_seen FROM device_status s JOIN devices d ON d.id = s.device_id "
                           "WHERE d.device_id = %s", (device,)).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("share_group", ["", contract.SHARE_GROUP], ids=["plain", "shared"])
def test_retained_statuses_are_not_replayed_by_a_restart_or_a_reconnect(twin_db, broker, tmp_path, share_group):
    """A retained NUL status is dead-lettered once (the state kept, the firmware not), and it does not wedge
    a restart; a retained ``online`` status does not move ``last_seen`` when ingest restarts on its session
    or reconnects after a broker restart (the broker sends retained messages only to a new subscription)."""
    client_id = f"poison-{uuid.uuid4().hex[:6]}"
    status_topic = topic("t1", "ENV-1", "status")

    def new_worker(url: str) -> IngestWorker:
        return IngestWorker(twin_db, url, client_id=client_id, share_group=share_group, batch_wait_s=0.05)

    def replayed_nothing(stored: int) -> None:
        assert values(twin_db) == [float(i) for i in range(stored)]
        assert [p for _, p in letters(twin_db, status_topic)] == [NUL_STATUS]
        assert last_seen(twin_db, "LUM-1") == seen
        with connection(twin_db) as conn:
            rows = conn.execute("SELECT d.device_id, s.state, s.firmware FROM device_status s JOIN devices d "
                                "ON d.id = s.device_id WHERE d.device_id IN ('ENV-1', 'LUM-1') ORDER BY 1").fetchall()
        assert rows == [("ENV-1", "online", None), ("LUM-1", "online", None)]

    first = Running(new_worker(broker.url))
    restarted: MosquittoBroker | None = None
    try:
        assert first.worker.connected.wait(10)
        with publisher(broker.url, "device-env-1") as device:
            device.publish(status_topic, NUL_STATUS, qos=1, retain=True).wait_for_publish(10)
            device.publish(topic("t1", "LUM-1", "status"), b'{"state":"online"}', qos=1,
                           retain=True).wait_for_publish(10)
        publish_range(broker.url, 0, 500)
        wait_for(lambda: stored_readings(twin_db) >= 500 or not first.alive(), timeout=60)
        assert first.alive(), f"the worker died: {first.error!r}"
        refused = letters(twin_db, status_topic)
        assert [p for _, p in refused] == [NUL_STATUS]
        assert "firmware" in refused[0][0] and "NUL" in refused[0][0], refused[0][0]
        seen = last_seen(twin_db, "LUM-1")
        assert seen is not None
        # A reconnect: the broker restarts (its persistence keeps the session). Mosquitto 2.0 does not
        # restore a shared subscription: the worker's new one gets the retained statuses again, which
        # the worker recognises as the ones it took.
        broker.stop()
        restarted = MosquittoBroker(tmp_path / "mosquitto", port=broker.port, persist=True)
        wait_for(lambda: first.worker.connections_lost >= 1 and first.worker.connected.is_set(), timeout=60)
        publish_range(broker.url, 500, 600)
        wait_for(lambda: stored_readings(twin_db) >= 600 or not first.alive(), timeout=60)
        assert first.alive(), f"the worker died after the broker restart: {first.error!r}"
        replayed_nothing(600)
    finally:
        first.close()
    assert first.error is None, repr(first.error)

    # A restart on the same session, the statuses still retained on the broker.
    second = Running(new_worker(broker.url))
    try:
        assert second.worker.connected.wait(10)
        publish_range(broker.url, 600, 700)
        wait_for(lambda: stored_readings(twin_db) >= 700 or not second.alive(), timeout=60)
        assert second.alive(), f"the restarted worker died: {second.error!r}"
        replayed_nothing(700)
    finally:
        second.close()
        if restarted is not None:
            restarted.stop()
    assert second.error is None, repr(second.error)


def test_a_value_the_database_refuses_mid_batch_dead_letters_that_message_only(twin_db, broker):
    """Values that pass decoding but that PostgreSQL refuses (CHECK constraints added to this test's
    database): the message's own dead letter with PostgreSQL's reason; its batch neighbours stored."""
    with connection(twin_db) as conn:
        conn.execute("ALTER TABLE readings ADD CONSTRAINT test_refuses_666 CHECK (value <> 666)")
        conn.execute("ALTER TABLE device_status ADD CONSTRAINT test_refuses_firmware "
                     "CHECK (firmware IS DISTINCT FROM 'refused-by-db')")
    client_id = f"mid-{uuid.uuid4().hex[:6]}"
    worker = IngestWorker(twin_db, broker.url, client_id=client_id, share_group="", batch_wait_s=0.5)
    with running(worker.run):  # creates the worker's session, so the broker queues what follows
        assert worker.connected.wait(10)
    n, poison = 301, 150
    t = topic("t1", "ENV-0", "telemetry")
    status_topic = topic("t1", "LUM-1", "status")
    bad_status = b'{"state": "online", "firmware": "refused-by-db"}'
    with publisher(broker.url, f"pub-{uuid.uuid4().hex[:6]}") as client:
        infos = [client.publish(t, payload(i, 666.0 if i == poison else None), qos=1) for i in range(n)]
        infos.insert(poison, client.publish(status_topic, bad_status, qos=1))
        infos.append(client.publish(topic("t1", "LUM-2", "status"), b'{"state": "online", "firmware": "2.0"}', qos=1))
        for info in infos:
            info.wait_for_publish(30)
    # the whole backlog comes at once when the worker resumes its session: one or a few batches
    worker = IngestWorker(twin_db, broker.url, client_id=client_id, share_group="", batch_wait_s=0.5)
    run = Running(worker)
    try:
        wait_for(lambda: stored_readings(twin_db) >= n - 1 or not run.alive(), timeout=60)
        assert run.alive(), f"the worker died: {run.error!r}"
        wait_for(lambda: letters(twin_db, status_topic) or not run.alive(), timeout=30)
        assert values(twin_db) == [float(i) for i in range(n) if i != poison]
        [(reason, body)] = letters(twin_db, t)
        assert body == payload(poison, 666.0)
        assert "test_refuses_666" in reason, reason
        [(reason, body)] = letters(twin_db, status_topic)
        assert body == bad_status and "test_refuses_firmware" in reason, reason
        with connection(twin_db) as conn:
            assert conn.execute("SELECT sum(n) FROM rollup_1m").fetchone()[0] == n - 1
            assert conn.execute("SELECT d.device_id, s.firmware FROM device_status s JOIN devices d "
                                "ON d.id = s.device_id WHERE s.firmware IS NOT NULL").fetchall() == [("LUM-2", "2.0")]
        # still working
        publish_range(broker.url, 1000, 1001)
        wait_for(lambda: stored_readings(twin_db) >= n, timeout=30)
    finally:
        run.close()
    assert run.error is None, repr(run.error)


def test_a_store_error_that_is_not_the_databases_ends_the_ingest_process_non_zero(twin_db, broker, tmp_path):
    """A device's sequence state that the worker cannot read (a corrupted row: ``seq_lost`` NULL) makes
    the store thread raise a TypeError: ``campus-twin ingest`` exits non-zero with the reason logged,
    instead of staying up without storing."""
    # its logs go to a file: a pipe nobody reads while it runs blocks the child once it fills (~64 KB)
    log_file = tmp_path / "ingest.log"
    with log_file.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "--database-url", twin_db, "--mqtt-url", broker.url, "ingest",
             "--client-id", f"crash-{uuid.uuid4().hex[:6]}", "--share-group", ""],
            stdout=subprocess.DEVNULL, stderr=sink)
    try:
        t = topic("t1", "ENV-2", "telemetry")
        with publisher(broker.url, f"pub-{uuid.uuid4().hex[:6]}") as client:
            # until the worker's subscription exists: the same message again is stored once
            wait_for(lambda: client.publish(t, payload(0, seq=1), qos=1).wait_for_publish(10)
                     or stored_readings(twin_db) >= 1, timeout=60, interval=0.5)
            with connection(twin_db) as conn:
                conn.execute("ALTER TABLE device_status ALTER COLUMN seq_lost DROP NOT NULL")
                conn.execute("UPDATE device_status SET seq_lost = NULL")
            client.publish(t, payload(1, seq=100), qos=1).wait_for_publish(10)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    err = log_file.read_text(errors="replace")
    assert code != 0, err[-2000:]
    assert "TypeError" in err, err[-2000:]


def test_any_thread_that_dies_ends_its_process_loudly():
    """``exit_on_thread_death``: a dying thread (paho's network thread, say) is logged with its reason;
    without a stop event the process ends at once with status 70, with one it is asked to stop and the
    main thread sees why."""
    at_once = subprocess.run([sys.executable, "-c", """
import threading, time
from twin.logs import setup_logging
from twin.process import exit_on_thread_death
setup_logging(0)
exit_on_thread_death()
threading.Thread(target=lambda: 1 / 0, name="paho-network").start()
time.sleep(60)
print("still running")
"""], capture_output=True, text=True, timeout=60)
    assert at_once.returncode == 70, at_once.stderr[-2000:]
    assert "thread 'paho-network' died: ZeroDivisionError" in at_once.stderr, at_once.stderr[-2000:]
    assert "still running" not in at_once.stdout
    stopping = subprocess.run([sys.executable, "-c", """
import sys, threading
from twin.process import exit_on_thread_death, thread_death
stop = threading.Event()
exit_on_thread_death(stop)
threading.Thread(target=lambda: {}["missing"], name="store").start()
stop.wait(60)
sys.exit(f"stopped: {thread_death()}")
"""], capture_output=True, text=True, timeout=60)
    assert stopping.returncode == 1 and "stopped: thread 'store' died: KeyError" in stopping.stderr, stopping.stderr


def test_a_refused_message_in_the_batch_that_opens_a_month_keeps_its_partition(twin_db, broker, server_backend):
    """The batch's transaction made a month's partition and was rolled back by a refused value: the
    savepoints that isolate the refused message make the partition again, so the month's readings
    are stored, not dead-lettered as "no partition of relation readings found for row". (On TimescaleDB
    the month's chunks are TimescaleDB's; the same readings are stored.)"""
    month_ago = (datetime.now(UTC) - timedelta(days=100)).replace(microsecond=0)
    partition = f"readings_y{month_ago.year:04d}m{month_ago.month:02d}"
    with connection(twin_db) as conn:
        assert server_backend != "postgresql" or conn.execute("SELECT to_regclass(%s)", (partition,)).fetchone()[0] is None
        conn.execute("ALTER TABLE device_status ADD CONSTRAINT test_refuses_firmware "
                     "CHECK (firmware IS DISTINCT FROM 'refused-by-db')")
    client_id = f"month-{uuid.uuid4().hex[:6]}"
    first = IngestWorker(twin_db, broker.url, client_id=client_id, share_group="")
    with running(first.run):  # creates the worker's session, so the broker queues what follows
        assert first.connected.wait(10)
    t, status_topic = topic("t1", "ENV-0", "telemetry"), topic("t1", "ENV-1", "status")
    bad_status = b'{"state": "online", "firmware": "refused-by-db"}'
    n = 40

    def old(i: int) -> bytes:
        ts = month_ago.replace(day=1, hour=0, minute=0, second=0) + timedelta(minutes=i)
        return orjson.dumps({"ts": ts.isoformat(), "metrics": {"energy": float(i)}})

    with publisher(broker.url, f"pub-{uuid.uuid4().hex[:6]}") as client:
        infos = [client.publish(t, old(i), qos=1) for i in range(n)]
        infos.insert(n // 2, client.publish(status_topic, bad_status, qos=1))
        for info in infos:
            info.wait_for_publish(30)
    run = Running(IngestWorker(twin_db, broker.url, client_id=client_id, share_group="", batch_wait_s=0.5))
    try:
        wait_for(lambda: letters(twin_db, status_topic) or not run.alive(), timeout=60)
        assert run.alive(), f"the worker died: {run.error!r}"
        wait_for(lambda: stored_readings(twin_db) >= n, timeout=30)
        assert values(twin_db) == [float(i) for i in range(n)]
        assert letters(twin_db, t) == []
        [(reason, body)] = letters(twin_db, status_topic)
        assert body == bad_status and "test_refuses_firmware" in reason, reason
    finally:
        run.close()
    assert run.error is None, repr(run.error)


def message(mid: int, topic_: str, body: bytes, retain: bool = False) -> Message:
    return Message(mid=mid, qos=1, topic=topic_, payload=body, received_at=time.time(), connection=0, retain=retain)


def test_a_refused_batch_is_isolated_from_its_decoded_parts_and_its_payload_kept_whole(twin_db, caplog):
    """The store thread bisects what ``prepare`` decoded (it never decodes again: ``prepare`` shares the
    device cache and lookup connection with the main thread, which decodes the next batch meanwhile).
    The refused message's dead letter keeps its whole payload (up to the contract's 64 KB), its reason
    is recognisable, and the refusal is logged at WARNING with its SQLSTATE and counted."""
    with connection(twin_db) as conn:
        conn.execute("ALTER TABLE readings ADD CONSTRAINT test_refuses_666 CHECK (value <> 666)")
    t = topic("t1", "ENV-0", "telemetry")
    big = orjson.dumps({"ts": int(BASE.timestamp() * 1000), "metrics": {"energy": 666.0},
                        "note": "x" * (contract.MAX_PAYLOAD_BYTES - 200)})
    assert 4096 < len(big) <= contract.MAX_PAYLOAD_BYTES
    batch = [message(i, t, payload(i)) for i in range(1, 9)]
    batch.insert(5, message(99, t, big))
    batch.append(message(100, topic("t1", "LUM-1", "status"), b'{"state":"online","battery":101}'))
    worker = IngestWorker(twin_db, "mqtt://127.0.0.1:1", client_id=f"iso-{uuid.uuid4().hex[:6]}")
    prepared = worker.prepare(batch)

    def decoding_again(_batch: list[Message]) -> None:
        raise AssertionError("prepare called while storing")

    worker.prepare = decoding_again  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="ingest.worker"):
            worker.store(prepared)
    finally:
        for conn in (worker._conn, worker._lookup):
            if conn is not None:
                conn.close()
    assert values(twin_db) == [float(i) for i in range(1, 9)]
    [(reason, body)] = letters(twin_db, t)
    assert body == big
    assert reason.startswith(f"{events.DB_REFUSED} (23514)") and "test_refuses_666" in reason, reason
    [(reason, body)] = letters(twin_db, topic("t1", "LUM-1", "status"))
    assert "battery 101 outside" in reason
    assert worker.counters.db_refused == 1 and worker.counters.dead_letters == 2
    assert any(r.levelno == logging.WARNING and "sqlstate=23514" in r.getMessage() and t in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    with connection(twin_db) as conn:
        assert conn.execute("SELECT s.state FROM device_status s JOIN devices d ON d.id = s.device_id "
                            "WHERE d.device_id = 'LUM-1'").fetchone() == ("online",)


def test_an_oversize_dead_letter_keeps_its_first_64_kb_and_says_so(twin_db):
    huge = b"{" + b" " * (contract.MAX_PAYLOAD_BYTES + 100) + b"}"
    t = topic("t1", "ENV-0", "telemetry")
    with connection(twin_db) as conn:
        events.add_dead_letters(conn, [(datetime.now(UTC), t, "bad JSON", huge)])
    [(reason, body)] = letters(twin_db, t)
    assert body == huge[:contract.MAX_PAYLOAD_BYTES]
    assert reason.startswith("bad JSON") and f"first {contract.MAX_PAYLOAD_BYTES} of {len(huge)} bytes" in reason


def test_a_retained_online_status_does_not_count_as_the_device_seen_now(twin_db):
    """What the broker replays to a new subscription is an old message: it sets the state, not ``last_seen``."""
    worker = IngestWorker(twin_db, "mqtt://127.0.0.1:1", client_id=f"seen-{uuid.uuid4().hex[:6]}")
    online = b'{"state":"online","battery":70}'
    try:
        worker.store(worker.prepare([message(1, topic("t1", "LUM-1", "status"), online, retain=True),
                                     message(2, topic("t1", "LUM-2", "status"), online)]))
        assert last_seen(twin_db, "LUM-1") is None and last_seen(twin_db, "LUM-2") is not None
        seen = last_seen(twin_db, "LUM-2")
        worker.store(worker.prepare([message(3, topic("t1", "LUM-2", "status"), b'{"state":"online"}', retain=True)]))
        assert last_seen(twin_db, "LUM-2") == seen
    finally:
        for conn in (worker._conn, worker._lookup):
            if conn is not None:
                conn.close()
    with connection(twin_db) as conn:
        assert conn.execute("SELECT d.device_id, s.state, s.battery_pct FROM device_status s JOIN devices d "
                            "ON d.id = s.device_id WHERE d.device_id IN ('LUM-1', 'LUM-2') ORDER BY 1"
                            ).fetchall() == [("LUM-1", "online", 70.0), ("LUM-2", "online", 70.0)]


def test_a_gateway_offline_with_a_bad_device_id_still_takes_its_other_devices_offline(twin_db):
    gateway = "campus/v1/t1/_gateway/G1/status"
    body = b'{"state":"offline","devices":["ENV-1","x\\u0000","LUM-1"]}'
    worker = IngestWorker(twin_db, "mqtt://127.0.0.1:1", client_id=f"gw-{uuid.uuid4().hex[:6]}")
    try:
        online = b'{"state":"online"}'
        worker.store(worker.prepare([message(1, topic("t1", "ENV-1", "status"), online),
                                     message(2, topic("t1", "LUM-1", "status"), online),
                                     message(3, gateway, body)]))
    finally:
        for conn in (worker._conn, worker._lookup):
            if conn is not None:
                conn.close()
    with connection(twin_db) as conn:
        assert conn.execute("SELECT d.device_id, s.state FROM device_status s JOIN devices d ON d.id = s.device_id "
                            "WHERE d.device_id IN ('ENV-1', 'LUM-1') ORDER BY 1").fetchall() == [
            ("ENV-1", "offline"), ("LUM-1", "offline")]
    assert letters(twin_db, gateway) == [("gateway status: device id 1 contains NUL (U+0000)", body)]
