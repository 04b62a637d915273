"""`campus-twin ingest --workers N`, `export` and `db retention` as a user runs them."""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psutil
import psycopg
import pytest
from click.testing import CliRunner

from tests.helpers import publisher, small_twin, stored_readings, wait_for
from twin.cli import main
from twin.database import connection
from twin.messaging.broker import AmqttBroker, MosquittoBroker
from twin.messaging.contract import topic
from twin.storage.model import save_model
from twin.storage.partitions import ensure_partitions, list_partitions
from twin.storage.readings import ReadingWriter

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def twin_db(db_url: str) -> str:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
    return db_url


@pytest.mark.usefixtures("mosquitto_installed")
def test_two_worker_processes_share_the_stream_log_throughput_and_stop_cleanly(twin_db, tmp_path):
    broker = MosquittoBroker(tmp_path / "mosquitto", persist=False)
    group = f"cli-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "-v", "--database-url", twin_db, "--mqtt-url", broker.url, "ingest",
         "--workers", "2", "--client-id", "cli-w", "--share-group", group, "--stats-every", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(psutil.Process(proc.pid).children()) >= 2)
        children = psutil.Process(proc.pid).children(recursive=True)
        n = 2000
        with publisher(broker.url, "cli-pub") as client:
            # both members subscribed: probe until a message lands, then publish the stream
            t = topic("t1", "ENV-1", "telemetry")
            probe = orjson.dumps({"ts": int(BASE.timestamp() * 1000) - 1000, "metrics": {"co2": 1}})
            wait_for(lambda: client.publish(t, probe, qos=1) and stored_readings(twin_db) >= 1, interval=0.5)
            time.sleep(1.0)
            for i in range(n):
                ts = int((BASE + timedelta(seconds=i)).timestamp() * 1000)
                client.publish(t, orjson.dumps({"ts": ts, "metrics": {"co2": i}}), qos=1)
            wait_for(lambda: stored_readings(twin_db) >= n + 1, timeout=60)
        time.sleep(1.2)  # a throughput line from each worker
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()
    text = err.decode()
    assert proc.returncode == 0, text[-2000:]
    assert "ingest throughput client=cli-w-1" in text and "ingest throughput client=cli-w-2" in text
    assert "with 2 worker(s)" in out.decode()
    assert stored_readings(twin_db) == n + 1
    # the workers and multiprocessing's resource tracker end shortly after the parent: wait for them
    _, alive = psutil.wait_procs(children, timeout=30)
    assert children and alive == []


def test_several_workers_on_an_mqtt_311_broker_is_a_clear_error(twin_db):
    with AmqttBroker() as broker:
        result = CliRunner().invoke(main, ["--database-url", twin_db, "--mqtt-url", broker.url, "ingest",
                                           "--workers", "2"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "3.1.1" in result.output and "--workers 1" in result.output


def write_readings(url: str, rows: list[tuple[datetime, str, str, float]]) -> None:
    from twin.metrics import BY_NAME
    from twin.storage.model import device_keys

    with connection(url) as conn:
        keys = device_keys(conn)
    with psycopg.connect(url, autocommit=True) as conn:
        writer = ReadingWriter(conn)
        with conn.transaction():
            writer.write([(ts, keys[("t1", dev)], BY_NAME[m].metric_id, v) for ts, dev, m, v in rows])


def test_export_streams_csv_with_filters(twin_db, tmp_path):
    rows = [(BASE + timedelta(minutes=i), f"ENV-{i % 2}", "co2" if i % 3 else "temperature", 400.5 + i)
            for i in range(30)]
    write_readings(twin_db, rows)
    out = tmp_path / "x.csv"
    runner = CliRunner()
    result = runner.invoke(main, ["--database-url", twin_db, "export", "--site", "t1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = list(csv.reader(out.open()))
    assert got[0] == ["ts", "site", "device", "room", "metric", "value", "unit"]
    assert len(got) == 31
    first = got[1]
    assert first[0] == BASE.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert first[1:] == ["t1", "ENV-0", "Room 0", "temperature", "400.5", "°C"]
    start = (BASE + timedelta(minutes=10)).isoformat()
    end = (BASE + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = runner.invoke(main, ["--database-url", twin_db, "export", "--site", "t1", "--device", "ENV-1",
                                  "--metric", "co2", "--from", start, "--to", end])
    assert result.exit_code == 0, result.output
    lines = list(csv.reader(io.StringIO(result.stdout)))
    expected = [r for r in rows if r[1] == "ENV-1" and r[2] == "co2"
                and BASE + timedelta(minutes=10) <= r[0] < BASE + timedelta(minutes=20)]
    assert [float(line[5]) for line in lines[1:]] == [r[3] for r in expected] and expected
    bad = runner.invoke(main, ["--database-url", twin_db, "export", "--site", "nowhere"])
    assert bad.exit_code == 1 and "unknown site" in bad.output
    bad = runner.invoke(main, ["--database-url", twin_db, "export", "--site", "t1", "--metric", "warp"])
    assert bad.exit_code == 2


def test_db_retention_shows_then_drops_only_partitions_past_the_policy(twin_db, plain_postgresql):
    """Plain PostgreSQL's monthly partitions (TimescaleDB's chunks: tests/test_timescaledb.py)."""
    old = datetime.now(UTC) - timedelta(days=500)
    recent = datetime.now(UTC) - timedelta(days=1)
    with connection(twin_db) as conn:
        ensure_partitions(conn, old, old)
    write_readings(twin_db, [(old, "ENV-0", "co2", 500.0), (recent, "ENV-0", "co2", 600.0)])
    old_name = f"readings_y{old.year:04d}m{old.month:02d}"
    runner = CliRunner()
    shown = runner.invoke(main, ["--database-url", twin_db, "db", "retention", "--json"])
    assert shown.exit_code == 0, shown.output
    info = orjson.loads(shown.output)
    assert info["backend"] == "postgresql" and info["due"] == [old_name] and info["dropped"] == []
    assert stored_readings(twin_db) == 2
    applied = runner.invoke(main, ["--database-url", twin_db, "db", "retention", "--apply"])
    assert applied.exit_code == 0, applied.output
    assert f"dropped 1: {old_name}" in applied.output
    with connection(twin_db) as conn:
        assert old_name not in list_partitions(conn)
        assert conn.execute("SELECT value FROM readings").fetchall() == [(600.0,)]


def test_export_memory_stays_flat_however_many_rows(twin_db, tmp_path):
    """200,000 readings (about 12 MB of CSV) leave the server in chunks: the export's Python memory
    peaks at a small fraction of what it writes, where collecting the rows first would hold it all."""
    import tracemalloc

    from twin.storage.export import ExportFilter, export_csv

    n = 200_000
    with connection(twin_db) as conn:
        conn.execute("""INSERT INTO readings (ts, device_id, metric_id, value)
                        SELECT date_trunc('second', now()) - make_interval(secs => g), d.id, m.metric_id, g
                        FROM generate_series(1, %s) g,
                             (SELECT id FROM devices WHERE site_id = 't1' AND device_id = 'ENV-0') d,
                             (SELECT metric_id FROM metrics WHERE name = 'co2') m""", (n,))
        conn.commit()
        out = tmp_path / "all.csv"
        tracemalloc.start()
        try:
            with out.open("wb") as fh:
                rows = export_csv(conn, fh, ExportFilter(site="t1"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    size = out.stat().st_size
    assert rows == n
    with out.open() as fh:
        assert sum(1 for _ in fh) == n + 1
    assert size > 10 * 2**20
    assert peak < size / 20, f"peak {peak} bytes for {size} bytes written"
