"""Smoke test of bench/chaos.py: a short run with one fault of each kind (kill -9 of an ingest worker,
a broker restart, a database restart) prints the promised JSON, and nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import orjson
import psutil
import pytest

from tests.conftest import REPO
from tests.helpers import wait_for
from twin.embedded import server_processes

CHAOS = [sys.executable, str(REPO / "bench" / "chaos.py")]

KEYS = {"published_total", "published_acked", "stored", "lost", "duplicates", "stored_unacked", "faults",
        "fault_log", "max_recovery_s", "duration_s", "seed", "targets_met"}


@pytest.mark.usefixtures("mosquitto_installed")
@pytest.mark.parametrize(("workers", "kinds"), [
    (1, ("kill_worker", "broker_restart", "db_restart")),  # the default: one worker, a plain subscription
    # several workers share a subscription, which Mosquitto 2 does not keep across its own restart
    # (docs/mqtt.md, "Broker restarts"): their supervision and the database's restart lose nothing
    (2, ("kill_worker", "db_restart")),
])
def test_chaos_benchmark_loses_nothing_acknowledged(tmp_path, workers, kinds):
    """Its own Mosquitto and embedded PostgreSQL (it restarts both), a real ``campus-twin ingest``."""
    logs = tmp_path / "logs"
    cmd = [*CHAOS, "--duration", "25", "--rate", "300", "--faults-per-kind", "1", "--seed", "1", "--idle", "30",
           "--keep-logs", str(logs), "--workers", str(workers), "--faults", ",".join(kinds)]
    out = run_in_session(cmd, timeout=600)
    assert out.returncode == 0, out.stderr[-5000:]
    result = orjson.loads(out.stdout)
    assert KEYS <= set(result)
    assert result["faults"] == dict.fromkeys(kinds, 1)
    assert result["published_acked"] > 0
    assert result["stored"] + result["lost"] == result["published_acked"]
    why = {k: result[k] for k in ("lost", "lost_no_subscribers", "partial", "duplicates", "fault_log", "ingest")}
    ingest_log = (logs / "ingest.log").read_text(errors="replace")[-2000:]
    assert result["lost"] == 0 and result["duplicates"] == 0, f"{why}\n{out.stderr}\ningest log:\n{ingest_log}"
    assert result["targets_met"]


def stop_session(proc: subprocess.Popen, grace_s: float = 90.0) -> None:
    """SIGTERM the process group of ``proc`` (chaos.py stops its servers and removes its folder on it),
    then SIGKILL whatever of it is left after ``grace_s``."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def run_in_session(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a session (process group) of its own; on a timeout, stop the whole group and fail."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_session(proc)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # something it started still holds its pipes
            out, err = "", "(its output pipes are held open by a process it started)"
        pytest.fail(f"{cmd[1]} ran over {timeout:.0f} s; stopped. stderr:\n{err[-5000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def chaos_folder(arg: str) -> Path | None:
    """The benchmark's temporary folder (``campus-chaos-*``), if the argument ``arg`` is a path in it."""
    path = Path(arg)
    for folder in (path, *path.parents):
        if folder.name.startswith("campus-chaos-"):
            return folder
    return None


def session_members(sid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        with suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


@pytest.mark.usefixtures("mosquitto_installed")
def test_sigterm_to_the_benchmark_stops_its_servers_and_removes_its_folder(tmp_path):
    """What the timeout of the test above relies on: chaos.py, SIGTERMed mid-run, leaves no PostgreSQL
    (daemonised: outside the benchmark's process group), Mosquitto or ingest running and no temporary
    folder behind."""
    err_path = tmp_path / "chaos.err"
    with err_path.open("wb") as err:
        proc = subprocess.Popen([*CHAOS, "--duration", "300", "--rate", "100", "--faults", "db_restart",
                                 "--faults-per-kind", "1"], stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        wait_for(lambda: "publishing" in err_path.read_text(errors="replace"), timeout=300, interval=0.5)
        folders = {chaos_folder(arg) for p in session_members(proc.pid) for arg in p.cmdline()} - {None}
        assert len(folders) == 1, folders  # Mosquitto's configuration is in it
        (folder,) = folders
        assert folder is not None and server_processes(folder / "pgdata"), "no PostgreSQL runs on its folder"
        proc.send_signal(signal.SIGTERM)  # chaos.py alone: its own clean-up must stop the rest
        proc.wait(120)
    finally:
        if proc.poll() is None:
            stop_session(proc)
    text = err_path.read_text(errors="replace")[-3000:]
    assert proc.returncode == 143, text
    wait_for(lambda: not server_processes(folder / "pgdata") and not session_members(proc.pid), timeout=60)
    assert not folder.exists(), text
