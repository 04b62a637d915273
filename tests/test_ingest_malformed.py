"""Malformed input through a real broker and database: every valid message kept, every bad one
dead-lettered with a reason, the worker still running. Also seq gaps and an oversize payload."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.worker import IngestWorker
from tests.helpers import publisher, running, small_twin, stored_readings, wait_for
from twin.database import connection
from twin.messaging.contract import topic
from twin.storage.events import DEAD_LETTER_MAX_BYTES
from twin.storage.model import save_model

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = NOW - timedelta(days=1)


@pytest.fixture
def twin_db(db_url: str) -> str:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
    return db_url


def new_worker(url: str, mqtt_url: str) -> IngestWorker:
    tag = uuid.uuid4().hex[:8]
    return IngestWorker(url, mqtt_url, client_id=f"t-bad-{tag}", share_group=f"t-{tag}", batch_wait_s=0.05)


def malformed(i: int, rng: random.Random) -> tuple[str, bytes]:
    """The ``i``-th malformed message ``(topic, payload)``: unique, no valid reading in it."""
    t = topic("t1", f"ENV-{i % 3}", "telemetry")
    ms = int((BASE + timedelta(seconds=i)).timestamp() * 1000)
    kind = i % 16
    if kind == 0:
        return t, f"{i}:".encode() + rng.randbytes(rng.randint(0, 64))
    if kind == 1:
        return t, orjson.dumps({"ts": ms, "metrics": {"co2": 500}, "n": i})[: rng.randint(1, 30)] + b"\x00" + str(i).encode()
    if kind == 2:
        return t, orjson.dumps(rng.choice([[i, 1], f"s{i}", i]))
    if kind == 3:
        return t, orjson.dumps({"ts": ms, "n": i, "metrics": rng.choice([[], {}, "co2", 3, None])})
    if kind == 4:
        return t, orjson.dumps({"ts": ms, "n": i, "metrics": {"co2": rng.choice(["812", None, [1], {"v": 1}, True])}})
    if kind == 5:
        return t, b'{"n": %d, "metrics": {"temperature": %s}}' % (i, rng.choice([b"NaN", b"Infinity", b"1e999", b"-1e400"]))
    if kind == 6:
        return t, orjson.dumps({"ts": ms, "n": i, "metrics": {"humidity": rng.choice([-0.1, 100.5, 1e9])}})
    if kind == 7:
        return t, orjson.dumps({"ts": ms, "n": i, "metrics": {f"warp{rng.randint(0, 9)}": 1}})
    if kind == 8:
        return t, orjson.dumps({"ts": int((NOW + timedelta(days=rng.randint(1, 999))).timestamp() * 1000), "n": i,
                                "metrics": {"co2": 500}})
    if kind == 9:
        return t, orjson.dumps({"ts": rng.choice(["yesterday", "2026-13-40T00:00:00Z", "2026-01-01T00:00:00"]),
                                "n": i, "metrics": {"co2": 500}})
    if kind == 10:
        return t, orjson.dumps({"ts": ms - 500 * 86400_000, "n": i, "metrics": {"co2": 500}})
    if kind == 11:
        return topic("t1", f"GHOST-{i}", "telemetry"), orjson.dumps({"ts": ms, "metrics": {"co2": 500}})
    if kind == 12:
        return t, orjson.dumps([{"n": "voltage", "u": "V", "v": i}])
    if kind == 13:
        return t, orjson.dumps([{"n": "co2", "u": "Cel", "v": 500, "t": i}])
    if kind == 14:
        return t, orjson.dumps([{"n": "noise", "vs": f"loud {i}"}, {"bn": "x", "bt": "soon", "n": "co2", "v": 1}])
    return t, orjson.dumps({"ts": ms, "n": i, "metrics": {"co2": 500}, "pad": "x" * 70_000})


def valid(i: int) -> tuple[str, bytes]:
    ts = BASE + timedelta(seconds=i)
    return topic("t1", "LUM-0", "telemetry"), orjson.dumps({"ts": int(ts.timestamp() * 1000), "metrics": {"energy": i}})


def test_10000_malformed_payloads_interleaved_with_valid_ones(twin_db, mqtt_url):
    rng = random.Random(4)
    n = 10_000
    bad = [malformed(i, rng) for i in range(n)]
    assert len({p for _, p in bad}) == n
    worker = new_worker(twin_db, mqtt_url)
    with running(worker.run) as stop:
        assert worker.connected.wait(10)
        with publisher(mqtt_url, f"pub-bad-{uuid.uuid4().hex[:6]}") as client:
            # In windows of 400 messages: a broker with Mosquitto's default max_queued_messages (1000)
            # drops QoS 1 messages for a subscriber that is further behind than that.
            for start in range(0, n, 200):
                infos = []
                for i in range(start, min(start + 200, n)):
                    infos.append(client.publish(*valid(i), qos=1))
                    infos.append(client.publish(*bad[i], qos=1))
                for info in infos:
                    info.wait_for_publish(30)
                # on what is stored (the message counter also counts other tests' retained statuses)
                done = min(start + 200, n)
                wait_for(lambda done=done: stored_readings(twin_db) >= done, timeout=60)
            # still running: one more valid message is stored
            client.publish(*valid(n), qos=1).wait_for_publish(10)
            # published after every malformed one on this connection, so stored after they are handled
            wait_for(lambda: stored_readings(twin_db) >= n + 1)
        assert not stop.is_set()
    with connection(twin_db) as conn:
        rows = conn.execute("SELECT ts, value FROM readings ORDER BY ts").fetchall()
        assert rows == [(BASE + timedelta(seconds=i), float(i)) for i in range(n + 1)]
        letters = conn.execute("SELECT payload, reason, payload_size FROM dead_letters "
                               "WHERE topic LIKE 'campus/v1/t1/%' AND reason <> ''").fetchall()
    assert all(reason for _, reason, _ in letters)
    # every malformed message has at least one dead letter (payloads are stored up to DEAD_LETTER_MAX_BYTES)
    assert {bytes(p) for p, _, _ in letters} == {p[:DEAD_LETTER_MAX_BYTES] for _, p in bad}
    assert all(size == len(bytes(p)) for p, _, size in letters if size <= DEAD_LETTER_MAX_BYTES)


def readings_of(url: str, device_id: str) -> int:
    with connection(url) as conn:
        return conn.execute("SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                            "WHERE d.device_id = %s", (device_id,)).fetchone()[0]


def test_a_1_mb_payload_is_refused_cleanly_and_its_neighbour_kept(twin_db, mqtt_url):
    worker = new_worker(twin_db, mqtt_url)
    big = b'{"metrics": {"co2": 500}, "pad": "' + b"x" * (1 << 20) + b'"}'
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url, f"pub-big-{uuid.uuid4().hex[:6]}") as client:
            client.publish(topic("t1", "ENV-1", "telemetry"), big, qos=1).wait_for_publish(10)
            client.publish(*valid(1), qos=1).wait_for_publish(10)
            # the valid neighbour was published after the big one: once it is stored, both were handled
            wait_for(lambda: readings_of(twin_db, "LUM-0") >= 1)
    with connection(twin_db) as conn:
        letter = conn.execute("SELECT reason, payload_size, length(payload) FROM dead_letters "
                              "WHERE topic = 'campus/v1/t1/ENV-1/telemetry'").fetchall()
        assert conn.execute("SELECT value FROM readings").fetchall() == [(1.0,)]
    assert len(letter) == 1
    reason, size, kept = letter[0]
    assert "exceeds" in reason and size == len(big) and kept == DEAD_LETTER_MAX_BYTES < size


def test_seq_gaps_are_counted_as_suspected_loss(twin_db, mqtt_url):
    worker = new_worker(twin_db, mqtt_url)
    t = topic("t1", "ENV-2", "telemetry")
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url, f"pub-seq-{uuid.uuid4().hex[:6]}") as client:
            for k, seq in enumerate((1, 2, 5, 6)):  # gap of 2
                ts = int((BASE + timedelta(seconds=k)).timestamp() * 1000)
                client.publish(t, orjson.dumps({"ts": ts, "seq": seq, "metrics": {"co2": 400}}), qos=1).wait_for_publish(10)
            # wait on what is stored: the worker's message counter also counts retained statuses
            # of other tests' sites on a shared broker
            wait_for(lambda: readings_of(twin_db, "ENV-2") >= 4)
            ts = int((BASE + timedelta(seconds=9)).timestamp() * 1000)  # a later batch: gap of 3
            client.publish(t, orjson.dumps({"ts": ts, "seq": 10, "metrics": {"co2": 400}}), qos=1).wait_for_publish(10)
            wait_for(lambda: readings_of(twin_db, "ENV-2") >= 5)
    with connection(twin_db) as conn:
        gaps, last = conn.execute("SELECT s.seq_gaps, s.last_seq FROM device_status s JOIN devices d "
                                  "ON d.id = s.device_id WHERE d.device_id = 'ENV-2'").fetchone()
    assert (gaps, last) == (5, 10)
