"""``campus-twin dashboard`` on gunicorn: several stateless worker processes, a worker that dies is replaced
and the logged-in users do not notice, a clean stop; Werkzeug only with ``--debug`` (issue 18)."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import psutil

from tests.helpers import add_user, http_login, wait_for
from tests.test_dashboard_security import _dashboard_process


def _workers(pid: int) -> list[psutil.Process]:
    """gunicorn's workers: the live processes whose parent is gunicorn's master (a child of ``pid``)."""
    def alive(procs: list[psutil.Process], parent: int) -> list[psutil.Process]:
        out = []
        for p in procs:
            try:
                if p.ppid() == parent and p.status() != psutil.STATUS_ZOMBIE and "gunicorn" in " ".join(p.cmdline()):
                    out.append(p)
            except psutil.NoSuchProcess:
                continue  # ended between the listing and the question
        return out

    masters = alive(psutil.Process(pid).children(), pid)
    return alive(masters[0].children(), masters[0].pid) if masters else []


def _server(base: str) -> str:
    with urllib.request.urlopen(base + "/login", timeout=30) as response:
        return response.headers["Server"]


def test_gunicorn_serves_with_several_workers_and_a_killed_worker_loses_no_login(db_url: str,
                                                                                  tmp_path: Path) -> None:
    add_user(db_url, "viewer-1", "viewer")
    with _dashboard_process(db_url, tmp_path, "--workers", "2", "--threads", "2") as (base, pid):
        assert _server(base).startswith("gunicorn")
        workers = _workers(pid)
        assert len(workers) == 2, [p.cmdline() for p in psutil.Process(pid).children(recursive=True)]
        opener, _ = http_login(base, "viewer-1")
        pages = [opener.open(base + path, timeout=30).status for path in ("/", "/alarms", "/devices") * 4]
        assert pages == [200] * 12
        # A worker dies: gunicorn replaces it, and the session (in the database) is valid in every process.
        workers[0].send_signal(signal.SIGKILL)
        wait_for(lambda: len(_workers(pid)) == 2 and workers[0].pid not in {p.pid for p in _workers(pid)},
                 timeout=60)
        assert [opener.open(base + "/alarms", timeout=30).status for _ in range(8)] == [200] * 8
        tree = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    # _dashboard_process sent SIGTERM: nothing of the tree is left
    assert not [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_debug_serves_on_werkzeug_in_one_process(db_url: str, tmp_path: Path) -> None:
    with _dashboard_process(db_url, tmp_path, "--debug") as (base, pid):
        assert _server(base).startswith("Werkzeug")
        assert not [p for p in psutil.Process(pid).children(recursive=True) if "gunicorn" in " ".join(p.cmdline())]


def test_a_killed_dashboard_command_leaves_no_gunicorn_behind(db_url: str, tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, say) gives the command no chance to stop gunicorn: the master asked Linux to
    end it with its parent, and its workers end with it, so nothing keeps the port and the connections."""
    import os

    def alive(p: int) -> bool:
        try:
            return psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    with _dashboard_process(db_url, tmp_path, "--workers", "1") as (base, pid):
        assert _server(base).startswith("gunicorn")
        tree = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        assert len(tree) >= 2  # gunicorn's master and its worker
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(p) for p in tree), timeout=60)
