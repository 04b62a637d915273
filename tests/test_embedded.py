"""The embedded PostgreSQL across process deaths: real servers in temporary data directories.

Each test runs the twin's processes as a user would (a Python process that holds the
server, or ``campus-twin ingest`` on embedded defaults) and kills them, or the server,
with SIGKILL. What must hold: the next start works, one postmaster per data directory,
a dead server comes back while the twin runs (ingest storing every message), and no
server is left running that nobody uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil
import psycopg
import pytest

from tests.helpers import QosPublisher, in_thread, wait_for
from twin.embedded import server_processes
from twin.messaging.broker import MosquittoBroker, free_port
from twin.messaging.contract import topic

REPO = Path(__file__).resolve().parents[1]
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)

#: Holds the embedded server of ``argv[1]`` until stdin closes; prints its URL.
HOLDER = """
import sys
from pathlib import Path
from twin.embedded import start_embedded
print(start_embedded(Path(sys.argv[1]), database="postgres"), flush=True)
sys.stdin.read()
"""

#: Starts the embedded server of ``argv[1]``, migrates the twin's database and saves a small twin.
SEED = """
import sys
from pathlib import Path
from tests.helpers import small_twin
from twin.database import connection
from twin.embedded import start_embedded
from twin.storage.model import save_model
from twin.storage.schema import migrate
with connection(start_embedded(Path(sys.argv[1]))) as conn:
    migrate(conn)
    save_model(conn, small_twin("t1"))
"""


# -- what runs on a data directory, seen from outside (ps and postmaster.pid) ------------------------
def postmasters(pgdata: Path) -> list[int]:
    procs = server_processes(pgdata)
    pids = {p.pid for p in procs}
    return sorted(p.pid for p in procs if _parent(p) not in pids and p.is_running())


def _parent(proc: psutil.Process) -> int | None:
    """Its parent's pid; None when it has exited meanwhile (a backend ending between the listing and now:
    both TimescaleDB runs of the suite failed on that once)."""
    try:
        return proc.ppid()
    except psutil.NoSuchProcess:
        return None


def pid_file(pgdata: Path) -> list[str]:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return []


def url_of(pgdata: Path, database: str) -> str:
    """The server's URL from ``postmaster.pid`` (port and socket directory), without joining it."""
    lines = pid_file(pgdata)
    return f"postgresql://postgres@/{database}?host={lines[4]}&port={lines[3]}"


def answers(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def takes_connections(url: str) -> bool:
    try:
        return answers(url)
    except psycopg.OperationalError:  # not yet, or starting up
        return False


def one_postmaster(pgdata: Path) -> int:
    """Exactly one postmaster runs on ``pgdata``, the one ``postmaster.pid`` names; its pid."""
    pms = postmasters(pgdata)
    assert len(pms) == 1, f"postmasters on {pgdata}: {pms}"
    assert int(pid_file(pgdata)[0]) == pms[0]
    return pms[0]


def no_server_left(pgdata: Path) -> None:
    wait_for(lambda: not server_processes(pgdata), timeout=60)


# -- processes that hold the server ------------------------------------------------------------------
class Holder:
    """A Python process holding the embedded server (``start_embedded``) until its stdin closes."""

    def __init__(self, pgdata: Path) -> None:
        self.err = tempfile.TemporaryFile("w+")  # not a pipe: nobody reads it while the holder runs
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(pgdata)], cwd=REPO, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            self.proc.wait(30)
            raise AssertionError(f"the holder failed: {self._stderr()[-3000:]}")

    def close(self) -> int:
        """Exit normally (stdin closed); the exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.wait()

    def wait(self) -> int:
        rc = self.proc.wait(90)
        self.stderr = self._stderr()
        return rc

    def _stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()


def test_kill_9_of_the_owner_then_the_next_start_takes_over_and_its_exit_stops_the_server(pgdata):
    first = Holder(pgdata)
    first.proc.kill()
    first.wait()
    left = one_postmaster(pgdata)  # a killed process cannot stop the server: the next start must deal with it

    second = Holder(pgdata)
    assert one_postmaster(pgdata) == left, "the running server was not reused"
    assert answers(second.url)
    assert second.close() == 0, second.stderr[-3000:]
    no_server_left(pgdata)
    assert pid_file(pgdata) == []


def test_start_after_server_and_owner_killed_and_the_pid_reused_by_another_program(pgdata):
    first = Holder(pgdata)
    lines = pid_file(pgdata)
    os.kill(int(lines[0]), signal.SIGKILL)
    first.proc.kill()
    first.wait()
    wait_for(lambda: not postmasters(pgdata))
    # the dead postmaster's pid now belongs to another program (pids are reused, in containers often)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (pgdata / "postmaster.pid").write_text("\n".join([str(other.pid), *lines[1:]]) + "\n")
        second = Holder(pgdata)
        pid = one_postmaster(pgdata)
        assert pid != other.pid
        assert answers(second.url)
        assert second.close() == 0, second.stderr[-3000:]
        no_server_left(pgdata)
    finally:
        other.kill()
        other.wait()


def test_the_last_of_two_holders_stops_the_server_on_a_normal_exit_or_sigterm(pgdata):
    a, b = Holder(pgdata), Holder(pgdata)
    pid = one_postmaster(pgdata)
    assert a.close() == 0, a.stderr[-3000:]
    assert one_postmaster(pgdata) == pid and answers(b.url), "the server stopped while still in use"
    assert b.close() == 0, b.stderr[-3000:]
    no_server_left(pgdata)

    c = Holder(pgdata)
    c.proc.send_signal(signal.SIGTERM)
    assert c.wait() != 0
    no_server_left(pgdata)
    assert pid_file(pgdata) == []


def test_a_killed_server_held_by_two_processes_is_restarted_once_at_the_same_url(pgdata):
    a, b = Holder(pgdata), Holder(pgdata)
    killed = one_postmaster(pgdata)
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: postmasters(pgdata) not in ([], [killed]) and takes_connections(a.url), timeout=120)
    assert answers(b.url) and a.url == b.url
    assert one_postmaster(pgdata) != killed
    assert a.close() == 0, a.stderr[-3000:]
    assert b.close() == 0, b.stderr[-3000:]
    assert "embedded postgres restarted" in a.stderr + b.stderr
    no_server_left(pgdata)


# -- a dead server while ingest runs ---------------------------------------------------------------
def payload(i: int) -> bytes:
    ts = BASE + timedelta(seconds=i)
    return orjson.dumps({"ts": int(ts.timestamp() * 1000), "seq": i + 1, "metrics": {"energy": float(i)}})


def stored(pgdata: Path) -> int | None:
    """Readings stored, or ``None`` while the server does not answer."""
    try:
        with psycopg.connect(url_of(pgdata, "campus_twin"), connect_timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    except (psycopg.Error, IndexError):
        return None


def stream(start: int, stop: int) -> Iterator[tuple[str, bytes]]:
    """ENV-0's telemetry ``payload(i)`` for i in ``start..stop-1``."""
    t = topic("t1", "ENV-0", "telemetry")
    return ((t, payload(i)) for i in range(start, stop))


@pytest.mark.usefixtures("mosquitto_installed")
def test_server_killed_while_ingest_runs_is_restarted_and_every_message_is_stored(data_dir, pgdata, tmp_path):
    seed = subprocess.run([sys.executable, "-c", SEED, str(pgdata)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert seed.returncode == 0, seed.stderr[-3000:]
    broker = MosquittoBroker(tmp_path / "mosquitto", port=free_port(), persist=True)
    log_file = tmp_path / "ingest.log"  # a file, not a pipe: with -v the log outgrows a pipe nobody reads
    log = log_file.open("wb")
    ingest = subprocess.Popen([sys.executable, "-m", "twin.cli", "-v", "--data-dir", str(data_dir),
                               "--mqtt-url", broker.url, "ingest", "--client-id", "embedded-ingest"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    n = 3000
    try:
        pub = QosPublisher(broker.url, rate=1000)
        # ingest's subscription must exist before the stream starts: repeat message 0 (stored once) until it lands
        wait_for(lambda: pub.publish(stream(0, 1)) or (stored(pgdata) or 0) >= 1, timeout=120, interval=0.5)
        with in_thread(pub.publish, stream(1, n)):
            wait_for(lambda: (stored(pgdata) or 0) >= 300, timeout=60, interval=0.02)
            killed = one_postmaster(pgdata)
            os.kill(killed, signal.SIGKILL)
            at_kill = stored(pgdata)
            wait_for(lambda: postmasters(pgdata) not in ([], [killed]), timeout=120)
        assert at_kill is None or at_kill < n, "the server was not killed mid-stream"
        wait_for(lambda: stored(pgdata) == n, timeout=120)
        assert one_postmaster(pgdata) != killed
        with psycopg.connect(url_of(pgdata, "campus_twin")) as conn:
            rows = conn.execute("SELECT ts, value FROM readings ORDER BY ts").fetchall()
            assert rows == [(BASE + timedelta(seconds=i), float(i)) for i in range(n)]
            assert conn.execute("SELECT sum(n) FROM rollup_1m").fetchone()[0] == n
        pub.close()
    finally:
        ingest.send_signal(signal.SIGTERM)
        try:
            ingest.wait(60)
        finally:
            log.close()
            broker.stop()
    err = log_file.read_text(errors="replace")
    assert ingest.returncode == 0, err[-3000:]
    assert "embedded postgres restarted" in err
    no_server_left(pgdata)
