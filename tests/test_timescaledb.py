"""The storage backends: which one the twin picks, and TimescaleDB's own mechanisms.

Every other test runs on whichever server ``CAMPUS_TWIN_TEST_DATABASE_URL`` names (plain
PostgreSQL or TimescaleDB) and asserts the same behaviour on both. The tests here are about one
backend's mechanism: TimescaleDB's hypertable, chunks, compression and retention policies run on
``CAMPUS_TWIN_TEST_TIMESCALEDB_URL`` (else on the test server when it is a TimescaleDB one) and
are skipped with that reason otherwise; a server with TimescaleDB's files but without
``shared_preload_libraries`` is a private cluster made from ``CAMPUS_TWIN_TEST_TIMESCALEDB_BINDIR``.
"""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from tests.conftest import fresh_database
from tests.helpers import small_twin
from twin.cli import main
from twin.database import BackendUnusable, connection
from twin.messaging.broker import free_port
from twin.metrics import BY_NAME
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter, room_series
from twin.storage.schema import COMPRESS_AFTER, RETENTION, timescaledb_problem

CO2 = BY_NAME["co2"].metric_id


def invoke(url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", url, *args])


def write(url: str, rows: list[tuple[datetime, int, int, float]]) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        writer = ReadingWriter(conn)
        with conn.transaction():
            return writer.write(rows)


def env0(url: str) -> int:
    with connection(url) as conn:
        return device_keys(conn)[("t1", "ENV-0")]


def chunks(url: str) -> list[tuple[str, datetime, datetime, bool]]:
    with connection(url) as conn:
        return conn.execute(
            """SELECT chunk_schema || '.' || chunk_name, range_start, range_end, is_compressed
               FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' ORDER BY range_start"""
        ).fetchall()


def policy_jobs(url: str) -> dict[str, tuple[int, dict]]:
    """``{proc_name: (job_id, config)}`` of the policies on ``readings``."""
    with connection(url) as conn:
        rows = conn.execute(
            """SELECT proc_name, job_id, config FROM timescaledb_information.jobs
               WHERE hypertable_name = 'readings'""").fetchall()
    return {name: (job_id, config) for name, job_id, config in rows}


def pause_policies(url: str) -> None:
    """Stop the background scheduler from running the policies, so the test runs them when it says."""
    with connection(url) as conn:
        for job_id, _ in policy_jobs(url).values():
            conn.execute("SELECT alter_job(%s, scheduled => false)", (job_id,))


# -- both backends -------------------------------------------------------------------------------
def test_db_status_names_the_backend_the_server_gives(db_url, server_backend):
    result = invoke(db_url, "db", "status", "--json")
    assert result.exit_code == 0, result.output
    info = orjson.loads(result.output)
    assert info["backend"] == server_backend and info["problem"] is None


def test_the_writer_finds_its_backend_and_stores_any_month_once(twin_db, server_backend):
    """No caller says how readings are laid out: a month that migration did not prepare (200 days
    back) gets its partition on plain PostgreSQL and its chunk on TimescaleDB; a re-sent batch adds nothing."""
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)
    device = env0(twin_db)
    rows = [(old + timedelta(seconds=i), device, CO2, 400.0 + i) for i in range(10)]
    with psycopg.connect(twin_db, autocommit=True) as conn:
        writer = ReadingWriter(conn)
        assert writer.backend == server_backend
        assert writer.partitioned is (server_backend == "postgresql")
        with conn.transaction():
            assert writer.write(rows) == 10
        with conn.transaction():
            assert writer.write(rows) == 0
        assert conn.execute("SELECT count(*) FROM readings WHERE ts < now() - interval '150 days'").fetchone()[0] == 10


# -- TimescaleDB ---------------------------------------------------------------------------------
def test_a_new_database_on_timescaledb_gets_a_hypertable_with_one_day_chunks_compression_and_both_policies(tsdb_url):
    with connection(tsdb_url) as conn:
        (interval,) = conn.execute(
            """SELECT time_interval FROM timescaledb_information.dimensions
               WHERE hypertable_name = 'readings' AND column_name = 'ts'""").fetchone()
        settings = conn.execute(
            """SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings
               WHERE hypertable = 'readings'::regclass""").fetchone()
    assert interval == timedelta(days=1)
    assert settings == ("device_id,metric_id", "ts DESC")
    jobs = policy_jobs(tsdb_url)
    assert jobs["policy_compression"][1]["compress_after"] == "7 days"
    assert jobs["policy_retention"][1]["drop_after"] == "400 days"
    status = orjson.loads(invoke(tsdb_url, "db", "status", "--json").output)
    assert status["backend"] == "timescaledb" and status["problem"] is None
    assert invoke(tsdb_url, "db", "init").exit_code == 0  # idempotent on TimescaleDB too
    assert set(policy_jobs(tsdb_url)) == {"policy_compression", "policy_retention"}


def test_db_retention_on_timescaledb_shows_the_policies_and_drops_the_due_chunks_and_nothing_else(tsdb_twin):
    pause_policies(tsdb_twin)
    now = datetime.now(UTC)
    device = env0(tsdb_twin)
    due_ts, kept_ts, recent_ts = now - RETENTION - timedelta(days=3), now - RETENTION + timedelta(days=3), now
    assert write(tsdb_twin, [(due_ts, device, CO2, 500.0), (kept_ts, device, CO2, 600.0),
                             (recent_ts, device, CO2, 700.0)]) == 3
    before = chunks(tsdb_twin)
    due = [name for name, start, end, _ in before if start <= due_ts < end]
    assert len(before) == 3 and len(due) == 1

    shown = invoke(tsdb_twin, "db", "retention", "--json")
    assert shown.exit_code == 0, shown.output
    info = orjson.loads(shown.output)
    assert info["backend"] == "timescaledb" and info["due"] == due and info["dropped"] == []
    assert sorted(p["proc"] for p in info["policies"]) == ["policy_compression", "policy_retention"]
    assert len(info["kept"]) == 2
    text = invoke(tsdb_twin, "db", "retention")
    assert "policy_retention" in text.output and f"due:  {due[0]}" in text.output

    applied = invoke(tsdb_twin, "db", "retention", "--apply")
    assert applied.exit_code == 0, applied.output
    assert f"dropped 1: {due[0]}" in applied.output
    assert [c[0] for c in chunks(tsdb_twin)] == [c[0] for c in before if c[0] not in due]
    with connection(tsdb_twin) as conn:
        assert conn.execute("SELECT value FROM readings ORDER BY ts").fetchall() == [(600.0,), (700.0,)]
        # rollups and latest values are kept
        assert conn.execute("SELECT sum(n) FROM rollup_1h").fetchone()[0] == 3
    again = orjson.loads(invoke(tsdb_twin, "db", "retention", "--apply", "--json").output)
    assert again["due"] == [] and again["dropped"] == []


def test_chunks_past_the_compression_policy_are_compressed_and_still_store_late_readings_once(tsdb_twin, tmp_path):
    """The policy compresses the chunks older than 7 days and nothing newer; readings re-sent into
    them are stored once, late ones are added (once) and reach the rollups; the export and the
    dashboard's chart query read across compressed and plain chunks alike."""
    pause_policies(tsdb_twin)
    device = env0(tsdb_twin)
    day = (datetime.now(UTC) - timedelta(days=10)).replace(hour=8, minute=0, second=0, microsecond=0)
    recent = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    old_rows = [(day + timedelta(minutes=i), device, CO2, 400.0 + i) for i in range(120)]
    new_rows = [(recent + timedelta(minutes=i), device, CO2, 800.0 + i) for i in range(60)]
    assert write(tsdb_twin, old_rows + new_rows) == 180

    with psycopg.connect(tsdb_twin, autocommit=True) as conn:  # the job commits as it goes: no transaction around it
        conn.execute("CALL run_job(%s)", (policy_jobs(tsdb_twin)["policy_compression"][0],))
    cutoff = datetime.now(UTC) - COMPRESS_AFTER
    state = chunks(tsdb_twin)
    assert [compressed for _, _, end, compressed in state] == [end <= cutoff for _, _, end, _ in state]
    assert any(compressed for *_, compressed in state) and not all(compressed for *_, compressed in state)

    assert write(tsdb_twin, old_rows) == 0  # re-sent into a compressed chunk: stored once
    late = [(day + timedelta(minutes=i, seconds=30), device, CO2, 1000.0) for i in range(30)]
    assert write(tsdb_twin, late + late[:10]) == 30  # late readings, some twice in the batch
    assert write(tsdb_twin, late) == 0
    with connection(tsdb_twin) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 210
        assert conn.execute(
            "SELECT count(DISTINCT (device_id, metric_id, ts)) FROM readings").fetchone()[0] == 210
        (room_id,) = conn.execute("SELECT room_id FROM devices WHERE id = %s", (device,)).fetchone()
        hours = room_series(conn, room_id, "co2", day, day + timedelta(hours=2), hourly=True)
        minutes = room_series(conn, room_id, "co2", day, day + timedelta(minutes=2))
        assert conn.execute("SELECT sum(n) FROM rollup_1m").fetchone()[0] == 210
    first_hour = [400.0 + i for i in range(60)] + [1000.0] * 30
    assert hours[0][0] == day and hours[0][1:] == (pytest.approx(sum(first_hour) / 90), 400.0, 1000.0)
    assert [m[1:] for m in minutes] == [(700.0, 400.0, 1000.0), (700.5, 401.0, 1000.0)]

    out = tmp_path / "co2.csv"
    result = invoke(tsdb_twin, "export", "--site", "t1", "--metric", "co2",
                    "--from", (day - timedelta(hours=1)).isoformat(), "--out", str(out))
    assert result.exit_code == 0, result.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 210 and sum(float(r["value"]) == 1000.0 for r in rows) == 30


# -- TimescaleDB that cannot be used ---------------------------------------------------------------
@pytest.mark.parametrize(("available", "installed", "loaded", "readings", "expected"), [
    (None, None, False, None, None),                        # plain PostgreSQL
    ("2.28.3", None, True, None, None),                     # a TimescaleDB server, new database
    ("2.28.3", "2.28.3", True, "hypertable", None),
    ("2.28.3", None, False, "partitioned", None),           # a plain twin on a server that gained the files
    ("2.28.3", None, False, None, "not preloaded"),
    ("2.28.3", "2.28.3", False, "hypertable", "not preloaded"),
    ("2.11.2", None, True, None, "older than 2.13"),
    ("2.28.3", "2.12.0", True, "hypertable", "older than 2.13"),
    (None, "2.28.3", False, "hypertable", "no TimescaleDB files"),
])
def test_what_keeps_a_database_from_its_timescaledb_is_said_in_one_line(available, installed, loaded, readings,
                                                                       expected):
    problem = timescaledb_problem(available=available, installed=installed, loaded=loaded, readings=readings)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and "\n" not in problem


@pytest.fixture(scope="module")
def unpreloaded_server() -> Iterator[tuple[str, Path]]:
    """A private cluster with TimescaleDB's files but no ``shared_preload_libraries``: the state right
    after installing the package, before ``timescaledb-tune``. Yields its admin URL and data directory."""
    bindir = os.environ.get("CAMPUS_TWIN_TEST_TIMESCALEDB_BINDIR")
    if not bindir:
        pytest.skip("set CAMPUS_TWIN_TEST_TIMESCALEDB_BINDIR to the bin directory of a PostgreSQL that has "
                    "TimescaleDB's files (docs/testing.md)")
    server = PrivateServer(Path(bindir))
    try:
        server.start(preload=False)
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


class PrivateServer:
    """``initdb`` + ``pg_ctl`` of a given bin directory in a temporary folder, on a free port."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="campus-tsdb-"))
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                self.user = pwd.getpwnam("postgres").pw_name
            except KeyError:
                pytest.skip("running as root needs a 'postgres' system user to run the private server")
            self.root.chmod(0o755)
            shutil.chown(self.root, self.user)
        self.pgdata = self.root / "data"
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "utf8")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([str(self.bindir / program), *args], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, user=self.user)

    def start(self, *, preload: bool) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if preload:
            options += " -c shared_preload_libraries=timescaledb"
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")


def test_db_init_on_a_server_where_timescaledb_is_not_preloaded_says_what_to_change_in_one_line(unpreloaded_server):
    with fresh_database(unpreloaded_server.url) as url:
        result = invoke(url, "db", "init")
        assert result.exit_code == 1
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
        assert "not preloaded" in result.output and "shared_preload_libraries = 'timescaledb'" in result.output
        with connection(url) as conn:  # nothing half-made: no readings table, no migration recorded
            assert conn.execute("SELECT to_regclass('readings')").fetchone()[0] is None
        status = invoke(url, "db", "status", "--json")
        assert status.exit_code == 0 and "not preloaded" in orjson.loads(status.output)["problem"]


def test_a_timescaledb_twin_whose_server_lost_its_preload_refuses_to_write_rather_than_hide_rows(
        unpreloaded_server):
    """Without the library loaded, PostgreSQL would put rows into the hypertable's root table, where
    TimescaleDB never shows them: the writer refuses with the one-line reason instead."""
    server = unpreloaded_server
    server.stop()
    server.start(preload=True)
    try:
        with fresh_database(server.url) as url:
            assert invoke(url, "db", "init").exit_code == 0
            with connection(url) as conn:
                save_model(conn, small_twin("t1"))
            device = env0(url)
            server.stop()
            server.start(preload=False)
            with psycopg.connect(url, autocommit=True) as conn, pytest.raises(BackendUnusable, match="not preloaded"):
                ReadingWriter(conn)
            assert write_refused(url, device)
            result = invoke(url, "db", "init")
            assert result.exit_code == 1 and "not preloaded" in result.output and result.output.count("\n") == 1
            server.stop()
            server.start(preload=True)
    finally:
        server.stop()
        server.start(preload=False)


def write_refused(url: str, device: int) -> bool:
    try:
        write(url, [(datetime.now(UTC), device, CO2, 500.0)])
    except BackendUnusable:
        with connection(url) as conn:
            return conn.execute("SELECT count(*) FROM ONLY readings").fetchone()[0] == 0
    return False
