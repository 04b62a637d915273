"""A start never stops an embedded server that other processes use: real servers in temporary
data directories, a real holder process registered on them.

A cron ``campus-twin export`` started while the server is busy (every connection slot taken) or
does not answer for a while (here: its postmaster stopped with SIGSTOP) must wait for it and then
fail with one line, never fast-stop the server under ingest and the dashboard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.helpers import wait_for
from twin import embedded
from twin.embedded import EmbeddedDatabaseError, EmbeddedServer, read_postmaster

REPO = Path(__file__).resolve().parents[1]

#: Holds the embedded server of ``argv[1]`` until stdin closes; prints its URL.
HOLDER = """
import sys
from pathlib import Path
from twin.embedded import start_embedded
print(start_embedded(Path(sys.argv[1]), database="postgres"), flush=True)
sys.stdin.read()
"""


class Holder:
    """A Python process holding the embedded server (``start_embedded``) until its stdin closes."""

    def __init__(self, pgdata: Path, log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(pgdata)], cwd=REPO, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url, f"the holder failed: {log.read_text()[-3000:]}"

    def close(self) -> int:
        """Exit normally (stdin closed); the exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rc = self.proc.wait(90)
        self.log.close()
        return rc


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second start gives up after 8 s instead of pg_ctl's 60 (a server that does not answer
    would otherwise be stopped after 1 s)."""
    monkeypatch.setattr(embedded, "ANSWER_TIMEOUT_S", 1.0)
    monkeypatch.setattr(embedded, "PG_CTL_TIMEOUT_S", 8)


def _second_start(pgdata: Path) -> EmbeddedServer:
    """Another process's start on the same data directory (this test process, not yet registered)."""
    return EmbeddedServer(pgdata)


def _postmaster_pid(pgdata: Path) -> int:
    pm = read_postmaster(pgdata)
    assert pm is not None
    return pm.pid


def test_a_start_never_stops_a_held_server_that_does_not_answer(pgdata: Path, tmp_path: Path,
                                                                short_waits: None) -> None:
    holder = Holder(pgdata, tmp_path / "holder.log")
    pid = _postmaster_pid(pgdata)
    second = _second_start(pgdata)
    os.kill(pid, signal.SIGSTOP)  # the postmaster takes no connection, as under a stall
    try:
        with pytest.raises(EmbeddedDatabaseError) as raised:
            second.acquire()
    finally:
        os.kill(pid, signal.SIGCONT)
        if second.held:
            second.release()
    message = str(raised.value)
    assert "does not answer" in message and str(holder.proc.pid) in message and "\n" not in message, message
    assert _postmaster_pid(pgdata) == pid and psutil.pid_exists(pid)
    with psycopg.connect(holder.url, connect_timeout=30) as conn:  # the holder's server still serves
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert holder.close() == 0


def test_a_start_never_stops_a_server_that_answers_too_many_clients(pgdata: Path, tmp_path: Path,
                                                                    short_waits: None) -> None:
    first = Holder(pgdata, tmp_path / "first.log")  # initialises the data directory
    assert first.close() == 0
    wait_for(lambda: read_postmaster(pgdata) is None, timeout=60)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\nmax_connections = 5\n")
    holder = Holder(pgdata, tmp_path / "holder.log")
    pid = _postmaster_pid(pgdata)
    second = _second_start(pgdata)
    with ExitStack() as fillers:
        for _ in range(20):  # every slot taken (superusers too): the server answers 53300
            try:
                fillers.enter_context(psycopg.connect(holder.url, connect_timeout=30))
            except psycopg.OperationalError as exc:
                assert "too many clients" in str(exc), exc
                break
        else:
            pytest.fail("max_connections was not applied")
        try:
            with pytest.raises(EmbeddedDatabaseError) as raised:
                second.acquire()
        finally:
            if second.held:
                second.release()
    message = str(raised.value)
    assert "too many clients" in message and "\n" not in message, message
    assert _postmaster_pid(pgdata) == pid
    with psycopg.connect(holder.url, connect_timeout=30) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert holder.close() == 0
