"""``campus-twin ingest --workers N`` under faults: a worker killed under load, months without a partition.

Real Mosquitto and real PostgreSQL: a publisher sends a known number of QoS 1 messages and
waits for every PUBACK; the stored rows are then checked exactly.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
import pytest

from ingest.pool import HEALTHY_AFTER_S, STOP_GRACE_S, PoolResult, WorkerConfig, _Slot, _stop_all, next_backoff
from ingest.worker import IngestWorker
from tests.helpers import QosPublisher, running, stored_readings, wait_for
from twin.database import connection
from twin.messaging.contract import topic
from twin.metrics import BY_NAME
from twin.storage import partitions
from twin.storage.model import device_keys
from twin.storage.readings import ReadingWriter

pytestmark = pytest.mark.usefixtures("mosquitto_installed")

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
STARTED = re.compile(r"ingest worker started client=(\S+) pid=(\d+)")


def publish_all(url: str, messages: list[tuple[str, bytes]], rate_per_s: float) -> None:
    """Publish ``messages`` at QoS 1, throttled, and wait for every PUBACK."""
    with QosPublisher(url, rate_per_s) as pub:
        pub.publish(messages, ack_timeout=120)


def energy(i: int, ts: datetime) -> tuple[str, bytes]:
    body = {"ts": int(ts.timestamp() * 1000), "metrics": {"energy": float(i)}}
    return topic("t1", "ENV-0", "telemetry"), orjson.dumps(body)


def stored_exactly(url: str, expected: list[tuple[datetime, float]]) -> None:
    """The readings are exactly ``expected`` (each once), and nothing was refused."""
    with connection(url) as conn:
        rows = conn.execute("SELECT ts, value FROM readings ORDER BY ts, value").fetchall()
        letters = conn.execute("SELECT reason FROM dead_letters LIMIT 5").fetchall()
    assert letters == []
    assert rows == sorted(expected)


def kill_left(proc: subprocess.Popen) -> None:
    """A pool that a failed test left running: its workers, then itself (SIGKILL)."""
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait(10)


def log_text(path: Path) -> str:
    return path.read_text(errors="replace")


def started(path: Path) -> list[tuple[str, int]]:
    """``(client id, pid)`` of every worker process the pool started, in order."""
    return [(c, int(p)) for c, p in STARTED.findall(log_text(path))]


def test_a_worker_killed_under_load_is_restarted_with_its_session_and_sigterm_stops_the_pool(
        twin_db, broker, tmp_path):
    n = 6000
    expected = [(BASE + timedelta(seconds=i), float(i)) for i in range(n)]
    log_file = tmp_path / "ingest.log"
    with log_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "-v", "--database-url", twin_db, "--mqtt-url", broker.url, "ingest",
             "--workers", "2", "--client-id", "pool-w", "--share-group", f"pool-{uuid.uuid4().hex[:6]}",
             "--stats-every", "1"],
            stdout=subprocess.PIPE, stderr=err)
    try:
        wait_for(lambda: {c for c, _ in started(log_file)} == {"pool-w-1", "pool-w-2"}, timeout=60)
        wait_for(lambda: all(f"ingest subscribed client=pool-w-{i}" in log_text(log_file) for i in (1, 2)),
                 timeout=60)
        victim, victim_pid = started(log_file)[0]
        publisher = threading.Thread(target=publish_all, args=(broker.url, [energy(i, ts) for ts, i in expected],
                                                               1000.0), daemon=True)
        publisher.start()
        wait_for(lambda: stored_readings(twin_db) >= 1500, timeout=60, interval=0.02)
        psutil.Process(victim_pid).send_signal(signal.SIGKILL)
        at_kill = stored_readings(twin_db)
        # the pool starts the same client id again (a new process), which resumes the broker session
        wait_for(lambda: [p for c, p in started(log_file) if c == victim and p != victim_pid], timeout=60)
        publisher.join(180)
        assert not publisher.is_alive(), "the publisher did not get every PUBACK"
        assert at_kill < n, "the worker was not killed mid-stream"
        wait_for(lambda: stored_readings(twin_db) >= n, timeout=120)
        stored_exactly(twin_db, expected)
        text = log_text(log_file)
        assert re.search(rf"ingest worker died client={victim} pid={victim_pid} exit_code=-9 .*backoff_s=", text)
        workers = psutil.Process(proc.pid).children()
        assert len([c for c, _ in started(log_file)]) == 3 and len(workers) >= 2
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)  # it exited (the bound asked of the pool is 10 s)
    finally:
        kill_left(proc)
    text = log_text(log_file)
    assert proc.returncode == 0, text[-3000:]
    assert "with 2 worker(s)" in out.decode() and "totals of 1 worker run(s) missing" in out.decode(), out.decode()
    _, alive = psutil.wait_procs(workers, timeout=30)  # workers, and multiprocessing's resource tracker
    assert alive == [], text[-3000:]


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_healthy_run():
    delays, previous = [], None
    for _ in range(8):
        previous = next_backoff(previous, ran_s=2.0)
        delays.append(previous)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert next_backoff(30.0, ran_s=HEALTHY_AFTER_S) == 1.0


def _deaf_to_sigterm(ready: Any) -> None:
    """A stuck worker: ignores SIGTERM and sleeps."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(600)


def stuck_slots(count: int) -> list[_Slot]:
    """``count`` spawned processes that SIGTERM cannot stop, as pool slots."""
    ctx = mp.get_context("spawn")
    slots = []
    for i in range(count):
        cfg = WorkerConfig("postgresql:///unused", "mqtt://unused", f"stuck-{i}", "g", 60.0, 20)
        reader, writer = ctx.Pipe(duplex=False)
        ready = ctx.Event()
        proc = ctx.Process(target=_deaf_to_sigterm, args=(ready,), name=cfg.client_id, daemon=True)
        proc.start()
        writer.close()
        assert ready.wait(60), "stuck child did not start"
        slots.append(_Slot(cfg, proc, reader))
    return slots


def test_the_pool_stop_kills_every_stuck_worker_before_waiting_once(caplog):
    """Several workers that ignore SIGTERM are all SIGKILLed at the end of the one grace period and
    reaped against one more deadline, not one after the other: the stop is bounded by grace + kill wait."""
    slots = stuck_slots(4)
    procs = [s.proc for s in slots]
    result = PoolResult()
    try:
        with caplog.at_level("INFO", logger="ingest.pool"):
            _stop_all(slots, result, grace_s=0.5, kill_wait_s=5.0)
    finally:
        for p in procs:
            if p is not None and p.exitcode is None:
                p.kill()
    assert [p.exitcode for p in procs] == [-signal.SIGKILL] * 4
    assert result.missing == [f"stuck-{i}" for i in range(4)] and result.totals == []
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest pool stopped")]
    assert len(summary) == 1 and "workers=4 killed=4" in summary[0], summary
    stop_s = float(summary[0].split("stop_s=")[1])
    assert stop_s <= 0.5 + 5.0 + 0.5, summary  # the pool's own measure: one grace, one kill wait


def test_sigterm_stops_the_pool_even_with_a_worker_that_does_not_stop(twin_db, broker, tmp_path):
    """A worker frozen by SIGSTOP cannot handle SIGTERM: the pool kills it after its grace and exits."""
    log_file = tmp_path / "ingest.log"
    with log_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "-v", "--database-url", twin_db, "--mqtt-url", broker.url, "ingest",
             "--workers", "2", "--client-id", "frozen-w", "--share-group", f"frozen-{uuid.uuid4().hex[:6]}"],
            stdout=subprocess.PIPE, stderr=err)
    try:
        wait_for(lambda: all(f"ingest subscribed client=frozen-w-{i}" in log_text(log_file) for i in (1, 2)),
                 timeout=60)
        frozen, frozen_pid = started(log_file)[0]
        psutil.Process(frozen_pid).suspend()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        kill_left(proc)
    text = log_text(log_file)
    assert proc.returncode == 0, text[-3000:]
    assert f"ingest worker did not stop in {STOP_GRACE_S:.0f} s client={frozen} pid={frozen_pid}" in text
    assert not psutil.pid_exists(frozen_pid) or psutil.Process(frozen_pid).status() == psutil.STATUS_ZOMBIE
    assert f"totals of 1 worker run(s) missing ({frozen}" in out.decode(), out.decode()


def far_months(now: datetime, count: int) -> list[datetime]:
    """``count`` month starts in the past that migration did not partition (it covers ±62 days),
    each at least a month inside the decoder's 400 days of accepted age."""
    months, cur = [], partitions.month_start(now - timedelta(days=75))
    while len(months) < count:
        months.append(cur)
        cur = partitions.month_start(cur - timedelta(days=1))
    assert now - months[-1] < timedelta(days=365)
    return months


def waiting_on_locks(url: str) -> int:
    """Sessions of ``url``'s database waiting for a lock (a table's or an advisory one)."""
    with connection(url) as conn:
        return int(conn.execute("""SELECT count(*) FROM pg_stat_activity
                                   WHERE datname = current_database() AND wait_event_type = 'Lock'""").fetchone()[0])


def test_two_workers_writing_into_months_without_a_partition_store_everything(twin_db, broker, caplog,
                                                                              server_backend):
    """On plain PostgreSQL both workers make the months' partitions as they go; on TimescaleDB the
    chunks are TimescaleDB's: the same readings are stored either way."""
    now = datetime.now(UTC)
    months = far_months(now, 9)
    with connection(twin_db) as conn:
        existing = set(partitions.list_partitions(conn))
    assert not {partitions.partition_name(m) for m in months} & existing
    # interleaved: every batch of each worker holds readings of every one of those months
    n = 1800
    expected = [(months[i % len(months)] + timedelta(days=1, seconds=i), float(i)) for i in range(n)]
    # and the edges of what the decoder accepts: 400 days old, 5 minutes ahead
    expected += [(now.replace(microsecond=0) - timedelta(days=399), float(n)),
                 (now.replace(microsecond=0) + timedelta(minutes=4), float(n + 1))]
    n = len(expected)
    errors: list[BaseException] = []
    group = f"part-{uuid.uuid4().hex[:6]}"

    def pair() -> list[IngestWorker]:
        return [IngestWorker(twin_db, broker.url, client_id=f"part-{k}", share_group=group, batch_max=100,
                             batch_wait_s=0.05) for k in "ab"]

    def recording(worker: IngestWorker):
        def run(stop: threading.Event) -> None:
            try:
                worker.run(stop)
            except BaseException as exc:
                errors.append(exc)
                raise
        return run

    workers = pair()
    with running(recording(workers[0])), running(recording(workers[1])):
        assert all(w.connected.wait(10) for w in workers)
        with psycopg.connect(twin_db) as holder:
            # as a concurrent DDL, dump or retention run would: both workers' first batches meet at the table
            holder.execute("LOCK TABLE readings IN SHARE MODE")
            publish_all(broker.url, [energy(int(v), ts) for ts, v in expected], 5000.0)
            wait_for(lambda: waiting_on_locks(twin_db) >= 2 or errors, timeout=60)
        wait_for(lambda: stored_readings(twin_db) >= n or errors, timeout=60)
    assert errors == []
    assert all(w.counters.messages > 0 for w in workers)
    assert [w.counters.db_errors for w in workers] == [0, 0]  # no DuplicateTable retried either
    assert "already exists" not in caplog.text
    stored_exactly(twin_db, expected)
    if server_backend == "postgresql":
        with connection(twin_db) as conn:
            assert {partitions.partition_name(m) for m in months} <= set(partitions.list_partitions(conn))


def test_concurrent_ensure_partitions_from_two_connections_never_raises(db_url, plain_postgresql):
    rounds = 25
    months = [datetime(2001, 1, 1, tzinfo=UTC)]
    while len(months) < rounds:
        months.append(partitions.next_month(months[-1]))
    barrier = threading.Barrier(2)
    created: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for month in months:
                try:
                    barrier.wait(30)
                    created[k] += partitions.ensure_partitions(conn, month, month)
                except BaseException as exc:
                    errors.append(exc)
                    barrier.abort()
                    return

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    names = [partitions.partition_name(m) for m in months]
    assert sorted(created[0] + created[1]) == sorted(names)  # each made once, by one of the two
    with connection(db_url) as conn:
        assert set(names) <= set(partitions.list_partitions(conn))


def key_of(url: str) -> tuple[int, int]:
    with connection(url) as conn:
        return device_keys(conn)[("t1", "ENV-0")], BY_NAME["co2"].metric_id


def test_the_writer_creates_this_and_next_month_ahead(twin_db, plain_postgresql):
    now = datetime.now(UTC)
    this, ahead = partitions.month_start(now), partitions.next_month(partitions.month_start(now))
    names = {partitions.partition_name(m) for m in (this, ahead)}
    with connection(twin_db) as conn:
        for name in names:
            conn.execute(f"DROP TABLE {name}")
        conn.commit()
    device, metric = key_of(twin_db)
    with psycopg.connect(twin_db, autocommit=True) as conn:
        writer = ReadingWriter(conn)
        with conn.transaction():
            assert writer.write([(BASE - timedelta(days=200), device, metric, 400.0)]) == 1
        assert names <= set(partitions.list_partitions(conn))


def test_a_partition_made_in_a_rolled_back_batch_is_made_again(twin_db, plain_postgresql):
    old = partitions.month_start(datetime.now(UTC) - timedelta(days=300)) + timedelta(days=2)
    device, metric = key_of(twin_db)
    with psycopg.connect(twin_db, autocommit=True) as conn:
        writer = ReadingWriter(conn)
        with conn.transaction():
            writer.write([(old, device, metric, 400.0)])
            raise psycopg.Rollback  # the batch failed after its partition was made
        assert partitions.partition_name(old) not in partitions.list_partitions(conn)
        with conn.transaction():
            assert writer.write([(old, device, metric, 401.0)]) == 1
    stored_exactly(twin_db, [(old, 401.0)])


def test_a_month_made_ahead_carries_the_key_and_the_checks_of_readings(db_url, plain_postgresql):
    month = datetime(2003, 5, 1, tzinfo=UTC)
    name = partitions.partition_name(month)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE readings ADD CONSTRAINT test_no_negative_ids CHECK (device_id >= 0)")
        assert partitions.ensure_partitions(conn, month, month) == [name]
        unique = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (name,)).fetchall()
        assert [d for (d,) in unique if d.startswith("CREATE UNIQUE INDEX") and "(device_id, metric_id, ts)" in d]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO readings VALUES (%s, -1, 1, 1.0)", (month,))
        conn.execute("INSERT INTO readings VALUES (%s, 1, 1, 1.0)", (month,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO readings VALUES (%s, 1, 1, 2.0)", (month,))
