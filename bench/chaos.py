"""Benchmark: nothing acknowledged is lost while ingest workers, the broker and the database fail.

Prints one JSON object on stdout (progress on stderr). For ``--duration`` seconds one publisher
(``twin.messaging.mqtt``'s client over paho-mqtt, QoS 1, a persistent session that it resumes after a broker restart) sends ``--rate``
telemetry messages a second for the 300 devices of a small twin, every message unique by (device,
``ts``) with 2 metrics, and records every PUBACK. A real ``campus-twin ingest`` stores them: by
default one worker on a plain persistent subscription, the product's default (``--workers N``: a
pool sharing one subscription, which a Mosquitto 2 restart loses until the workers subscribe
again: docs/mqtt.md, "Broker restarts"); default settings but the URLs. Meanwhile, at seeded random moments, each
fault kind of ``--faults`` happens ``--faults-per-kind`` times:

- ``kill_worker``: SIGKILL of one ingest worker process (a child of the ``campus-twin ingest`` process;
  with one worker, of the ingest process itself, which the benchmark then starts again);
- ``broker_restart``: the benchmark's own Mosquitto (persistence on) is stopped with SIGTERM, so that it
  saves its state, and started again on the same port ``--down`` seconds later. (A broker killed with -9
  loses what it had not saved: that is the broker's loss, not the twin's.)
- ``db_restart``: the embedded PostgreSQL is stopped (fast mode) and started again ``--down`` seconds
  later; skipped, with the reason in ``skipped_faults``, when ``--database-url`` names a server that the
  benchmark did not start.

Then the publisher waits (bounded) for its outstanding PUBACKs; the benchmark waits until ingest has
stored every message, has stored nothing new for ``--idle`` seconds, or ``--drain`` seconds have passed;
stops ingest with SIGTERM (then SIGKILL of its process group); and counts what is in ``readings``:

- ``published_total``: messages handed to the publisher; ``published_acked``: those whose PUBACK came
  (``acked_no_subscribers``: of those, the broker said it had no subscriber for them);
- ``stored``: acknowledged messages whose rows are all stored; ``lost``: acknowledged but not stored
  (``partial``: of those, some of whose rows are stored; ``lost_no_subscribers``: of those, acknowledged
  with "no matching subscribers"); ``stored_unacked``: stored though no PUBACK came
  (fine: the broker had it); ``duplicates``: messages stored with more rows than metrics (a redelivered
  message stored once is not a duplicate);
- ``faults``: how many of each kind happened; ``fault_log``: each one's moment and recovery time, from the
  fault until 50 consecutive messages published after it are all stored, i.e. the stream flows whole again
  (null: not within the run and the drain); ``max_recovery_s`` (null when some fault never recovered);
- ``ingest``: worker processes seen (a restarted worker is a new process), whether the ingest process
  exited during the run, and how long it took to stop on SIGTERM (null: it did not within 15 s);
- ``targets_met``: something was acknowledged, ``lost == 0`` and ``duplicates == 0``.

Everything is bounded in time, so a product that hangs gives a result, not a hung benchmark.

    python bench/chaos.py [--duration 180] [--rate 600] [--seed 1] [--database-url URL]
                          [--faults kill_worker,broker_restart,db_restart] [--faults-per-kind 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import fcntl
import logging
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson
import psycopg

from bench._common import client, fleet, say, setup_database, stop_group, telemetry
from twin.messaging.broker import BrokerError, MosquittoBroker
from twin.process import die_with_parent

SITE = "chaos"
ROOMS = 150  # 300 devices: 2 messages a second each at 600 msgs/s
METRICS = {"co2": 650.0, "temperature": 23.4}
KINDS = ("kill_worker", "broker_restart", "db_restart")
#: A fault has recovered when this many of the messages published after it are stored.
PROBE = 50
TICK_S = 0.5
ACK_WAIT_S = 60.0
START_WAIT_S = 120.0
SIGTERM_WAIT_S = 15.0
#: MQTT 5 PUBACK reason "No matching subscribers" (accepted, but nobody was subscribed).
NO_SUBSCRIBERS = 0x10


# -- the stream -------------------------------------------------------------------
class Publisher:
    """Publishes message ``i`` at ``t0 + i / rate`` (QoS 1) and records every PUBACK by message.

    paho calls ``on_publish`` while holding its own lock, and ``publish()`` takes that lock: the
    mid -> message map has its own lock, never held around a paho call; a PUBACK that comes before
    ``publish()`` has returned its mid waits in ``_early``.
    """

    def __init__(self, mqtt_url: str, devices: list[str], base_ms: int, rate: float) -> None:
        self.devices, self.base_ms, self.rate = devices, base_ms, rate
        self.sent_at: list[float] = []  # monotonic time of each message's publish(), in order
        self.acked: dict[int, int] = {}  # message -> PUBACK reason code
        self.refused = 0  # PUBACKs with an error reason
        self.disconnects = 0
        self.error: BaseException | None = None
        self._pending: dict[int, int] = {}  # mid -> message, until its PUBACK
        self._early: dict[int, int] = {}  # mid -> reason code
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        connected = threading.Event()
        self.client = client(mqtt_url, f"chaos-pub-{uuid.uuid4().hex[:6]}", persistent=True,
                             reconnect_delay_s=(1, 2), on_published=self._on_publish,
                             on_disconnect=self._on_disconnect, on_connect=lambda session_present: connected.set())
        self.client.connect()
        if not connected.wait(10):
            self.client.close()
            raise BrokerError(f"the chaos publisher could not connect to {mqtt_url}")

    def _on_publish(self, mid: int, reason: int) -> None:
        self._pair(mid, code=reason)

    def _on_disconnect(self, reason: str) -> None:
        self.disconnects += 1

    def _pair(self, mid: int, *, index: int | None = None, code: int | None = None) -> None:
        """Pair message ``index`` (from publish(); -1 outside the stream) or PUBACK ``code`` with the other,
        whichever came first."""
        with self._lock:
            if index is None:
                index = self._pending.pop(mid, None)
                if index is None:
                    self._early[mid] = code
                    return
            else:
                code = self._early.pop(mid, None)
                if code is None:
                    self._pending[mid] = index
                    return
            if index < 0:
                return
            if code < 0x80:
                self.acked[index] = code
            else:
                self.refused += 1

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish outside the stream (the warm-up); its PUBACK is not counted."""
        self._pair(self.client.publish(topic, payload, qos=1).mid, index=-1)

    def start(self, t0: float, until: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(t0, until), name="publisher", daemon=True)
        self._thread.start()

    def _run(self, t0: float, until: float) -> None:
        i = 0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= until:
                    return
                ahead = t0 + i / self.rate - now
                if ahead > 0.002:  # pace in steps of a few ms: a sleep per message costs more than it
                    time.sleep(min(ahead, until - now))
                    continue
                topic, payload = telemetry(SITE, self.devices, i, self.base_ms, METRICS)
                self.sent_at.append(time.monotonic())
                self._pair(self.client.publish(topic, payload, qos=1).mid, index=i)
                i += 1
        except BaseException as exc:  # reported in the result
            self.error = exc

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_acks(self, timeout: float) -> None:
        """Until every message has its PUBACK (paho resends after a reconnect) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(TICK_S)

    def stop(self) -> None:
        self._stop.set()
        self.join(5)
        self.client.close()


# -- what is stored ---------------------------------------------------------------
class Store:
    """Reads back what ingest stored, by message index; every call survives the database being down."""

    def __init__(self, url: str, devices: list[str], base_ms: int) -> None:
        self.url, self.base = url, datetime.fromtimestamp(base_ms / 1000, UTC)
        self.n_devices, self.base_ms = len(devices), base_ms
        with psycopg.connect(url) as conn:
            keys = dict(conn.execute("SELECT device_id, id FROM devices WHERE site_id = %s", (SITE,)).fetchall())
            self.metric = conn.execute("SELECT metric_id FROM metrics WHERE name = %s",
                                       (next(iter(METRICS)),)).fetchone()[0]
        self.ids = [keys[d] for d in devices]
        self.index_of = {key: i for i, key in enumerate(self.ids)}
        self._conn: psycopg.Connection | None = None

    def _query(self, query: str, params: tuple) -> list[tuple] | None:
        """Rows, or None while the database is unreachable."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3,
                                             options="-c statement_timeout=60000")
            return self._conn.execute(query, params).fetchall()
        except psycopg.Error:
            self.close()
            return None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def stored_between(self, lo: int, hi: int) -> list[int] | None:
        """Messages ``lo <= i < hi`` whose first metric is stored (a message's rows commit together)."""
        first, last = lo // self.n_devices, (hi - 1) // self.n_devices
        got = self._query("SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint FROM readings "
                          "WHERE metric_id = %s AND ts BETWEEN %s AND %s",
                          (self.metric, self.base + timedelta(seconds=first), self.base + timedelta(seconds=last)))
        if got is None:
            return None
        found = (self._index(device, ts_ms) for device, ts_ms in got)
        return [i for i in found if i is not None and lo <= i < hi]

    def _index(self, device: int, ts_ms: int) -> int | None:
        k, rest = divmod(ts_ms - self.base_ms, 1000)
        dev = self.index_of.get(device)
        return None if dev is None or rest or k < 0 else k * self.n_devices + dev

    def rows(self) -> int | None:
        """Rows of the stream stored so far (the warm-up's are older than ``base``)."""
        got = self._query("SELECT count(*) FROM readings WHERE ts >= %s", (self.base,))
        return None if got is None else int(got[0][0])

    def warm(self) -> bool:
        got = self._query("SELECT EXISTS (SELECT 1 FROM readings WHERE ts < %s)", (self.base,))
        return bool(got and got[0][0])

    def tally(self) -> tuple[dict[int, tuple[int, int]], int]:
        """Message index -> (rows, distinct metrics) of every stored message of the stream; dead letters."""
        got = self._query(
            "SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint, count(*), count(DISTINCT metric_id) "
            "FROM readings WHERE ts >= %s GROUP BY device_id, ts", (self.base,))
        dead = self._query("SELECT count(*) FROM dead_letters", ())
        if got is None or dead is None:
            raise SystemExit("the database is unreachable after the run: nothing to count")
        out = {}
        for device, ts_ms, rows, metrics in got:
            i = self._index(device, ts_ms)
            if i is not None:
                out[i] = (rows, metrics)
        return out, int(dead[0][0])


# -- the services and their faults -------------------------------------------------
class Ingest:
    """``campus-twin ingest --workers N`` as users run it, in a process group of its own.

    With one worker, ingest is a single process: killing its worker kills that process, and the
    benchmark starts it again at once, as a service manager (``Restart=always``) would.
    """

    def __init__(self, db_url: str, mqtt_url: str, workdir: Path, workers: int) -> None:
        exe = Path(sys.executable).with_name("campus-twin")
        self.cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "twin.cli"]
        self.cmd += ["--database-url", db_url, "--mqtt-url", mqtt_url, "ingest", "--workers", str(workers)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUS_TWIN_")}
        self.env["CAMPUS_TWIN_DATA_DIR"] = str(workdir / "data")
        self.log_path, self.n = workdir / "ingest.log", workers
        self._lock = threading.Lock()  # held while a killed single-process ingest is replaced
        self.sigterm_stop_s: float | None = None
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                                    start_new_session=True, preexec_fn=die_with_parent)

    def exit_code(self) -> int | None:
        """The ingest process's exit status; None while it runs (or is being replaced by the benchmark)."""
        with self._lock:
            return self.proc.poll()

    def workers(self) -> list[int]:
        """Pids of the live worker processes: multiprocessing children (not its resource tracker), or
        the ingest process itself with one worker."""
        with self._lock:
            parent = self.proc.pid
            if self.n == 1:
                return [] if self.proc.poll() is not None else [parent]
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_bytes()
                fields = stat[stat.rindex(b")") + 2:].split()
                if int(fields[1]) == parent and fields[0] != b"Z" \
                        and b"spawn_main" in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
        return sorted(out)

    def kill_worker(self, rng: random.Random) -> str:
        """SIGKILL one worker; what was done, or why nothing was."""
        pids = self.workers()
        if not pids:
            return "no live worker process"
        if self.n > 1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(pids), signal.SIGKILL)
            return "SIGKILL"
        with self._lock:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = self._spawn()
        return "SIGKILL of the ingest process, started again"

    def stop(self) -> None:
        """SIGTERM, as a service manager sends it; then SIGKILL of the whole group, whatever is left."""
        took = stop_group(self.proc, SIGTERM_WAIT_S)
        if took is not None:
            self.sigterm_stop_s = took


class Broker:
    """The benchmark's own Mosquitto with persistence; a restart is graceful (it saves its state)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.mosquitto = MosquittoBroker(workdir, persist=True)
        self.url, self.port = self.mosquitto.url, self.mosquitto.port

    def restart(self, down_s: float) -> str:
        proc = self.mosquitto.proc
        self.mosquitto.stop()  # SIGTERM: it saves its persistence file (SIGKILL after 5 s, shown as -9)
        time.sleep(down_s)
        for attempt in range(10):  # the port may linger a moment
            try:
                self.mosquitto = MosquittoBroker(self.workdir, self.port, persist=True)
                break
            except BrokerError:
                if attempt == 9:
                    raise
                time.sleep(1)
        return f"mosquitto exited {proc.returncode} on SIGTERM"

    def stop(self) -> None:
        self.mosquitto.stop()


class EmbeddedPostgres:
    """The embedded server the benchmark started, stopped and started again with the wheel's ``pg_ctl``.

    A fault holds ``<pgdata>.lock``, the lock under which twin.embedded starts and stops the server of a
    data directory: its supervisor (which restarts a server it finds dead) waits for the end of the
    outage instead of cutting it short.
    """

    def __init__(self, pgdata: Path) -> None:
        from twin.embedded import bin_path

        self.pgdata = pgdata.resolve()
        self.pg_ctl = bin_path() / "pg_ctl"
        # As root the server runs as the data directory's owner (PostgreSQL refuses root).
        self.user = pwd.getpwuid(self.pgdata.stat().st_uid).pw_name if os.geteuid() == 0 else None
        # postmaster.pid, line 5: the socket directory chosen at start (the server listens on no address)
        self.socket_dir = (self.pgdata / "postmaster.pid").read_text().splitlines()[4].strip()
        self.lock_path = self.pgdata.with_name(self.pgdata.name + ".lock")
        self.log = self.pgdata.parent / "pg_ctl.log"

    def _pg_ctl(self, *args: str) -> None:
        with self.log.open("ab") as log:
            subprocess.run([str(self.pg_ctl), "-D", str(self.pgdata), "-w", "-t", "60", *args], user=self.user,
                           cwd="/", stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True, timeout=90)

    def running(self) -> bool:
        try:
            os.kill(int((self.pgdata / "postmaster.pid").read_text().split()[0]), 0)
        except (OSError, ValueError, IndexError):
            return False
        return True

    def restart(self, down_s: float) -> str:
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._pg_ctl("-m", "fast", "stop")
            time.sleep(down_s)
            if self.running():
                return "pg_ctl stop -m fast; something else started it again"
            self._pg_ctl("-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start")
        return "pg_ctl stop -m fast, then start"

    def shutdown(self) -> None:
        """Leave the server as twin.embedded does (when it can), then stop whatever still runs."""
        import twin.embedded

        with contextlib.suppress(Exception):
            getattr(twin.embedded, "stop_embedded", lambda _: None)(self.pgdata)
        if self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self._pg_ctl("-m", "fast", "stop")


# -- faults and recovery -------------------------------------------------------------
@dataclass(slots=True)
class Fault:
    kind: str
    at_s: float  # since publishing started
    done_s: float = 0.0  # when the fault was over (the service back)
    injected: bool = True
    detail: str = ""
    recovery_s: float | None = None


def schedule(kinds: list[str], per_kind: int, duration: float, rng: random.Random) -> list[tuple[float, str]]:
    """``per_kind`` faults of each kind in a seeded order, one in each equal slot of 10-75 % of the run, at
    a seeded moment in the first half of its slot (faults do not overlap; the last quarter shows recovery)."""
    order = [kind for kind in kinds for _ in range(per_kind)]
    rng.shuffle(order)
    start, slot = 0.1 * duration, 0.65 * duration / max(len(order), 1)
    return [(round(start + i * slot + rng.uniform(0, slot / 2), 2), kind) for i, kind in enumerate(order)]


class Monitor:
    """Every ``TICK_S``: which faults have recovered, which worker processes exist, whether ingest runs.

    A fault has recovered when ``PROBE`` consecutive messages published after it are all stored: the
    stream flows whole again. Each fault keeps a cursor, the start of the latest run of stored messages
    after it; a message missing behind a stored one (lost, or held in a dead worker's session) ends a run.
    """

    def __init__(self, store: Store, publisher: Publisher, ingest: Ingest, t0: float) -> None:
        self.store, self.publisher, self.ingest, self.t0 = store, publisher, ingest, t0
        self.faults: list[Fault] = []
        self.worker_pids: set[int] = set()
        self.ingest_exit: dict[str, float] | None = None
        self._cursor: dict[int, int] = {}  # id(fault) -> first message of its latest run
        self._stored = bytearray()  # message -> stored, as far as seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self.worker_pids.update(self.ingest.workers())
            code = self.ingest.exit_code()
            if code is not None and self.ingest_exit is None:
                self.ingest_exit = {"at_s": round(time.monotonic() - self.t0, 1), "code": code}
                say(f"    ingest exited with code {code}")
            self._check()

    def _check(self) -> None:
        sent, hi = self.publisher.sent_at, len(self.publisher.sent_at)
        waiting = [f for f in self.faults if f.injected and f.recovery_s is None]
        for f in waiting:
            self._cursor.setdefault(id(f), bisect.bisect_left(sent, self.t0 + f.at_s))
        if not waiting:
            return
        lo = min(self._cursor[id(f)] for f in waiting)
        if lo >= hi:
            return
        stored = self.store.stored_between(lo, hi)
        if stored is None:
            return  # the database is down: next tick
        self._stored.extend(bytes(hi - len(self._stored)))
        for i in stored:
            self._stored[i] = 1
        for f in waiting:
            if self._recovered(f, hi):
                f.recovery_s = round(time.monotonic() - self.t0 - f.at_s, 2)
                say(f"    {f.kind} at {f.at_s:.1f} s: recovered in {f.recovery_s:.1f} s")

    def _recovered(self, fault: Fault, hi: int) -> bool:
        """Move the fault's cursor to its latest run of stored messages; True once a run is long enough
        (all the messages after the fault, when fewer were published)."""
        after = hi - bisect.bisect_left(self.publisher.sent_at, self.t0 + fault.at_s)
        need = PROBE if self.publisher.running else min(PROBE, after)
        run = 0
        for i in range(self._cursor[id(fault)], hi):
            if not self._stored[i]:
                run = 0
                continue
            if run == 0:
                self._cursor[id(fault)] = i
            run += 1
            if run >= need:
                return True
        return False

    def stop(self) -> None:
        """Stop watching; a last look at the faults not yet seen to recover (the drain may end between ticks)."""
        self._stop.set()
        self._thread.join(30)
        self._check()


def inject(kind: str, ingest: Ingest, broker: Broker, database: EmbeddedPostgres | None, down_s: float,
           rng: random.Random) -> tuple[bool, str]:
    if kind == "kill_worker":
        detail = ingest.kill_worker(rng)
        return detail.startswith("SIGKILL"), detail
    if kind == "broker_restart":
        return True, broker.restart(down_s)
    assert database is not None
    return True, database.restart(down_s)


# -- the run ----------------------------------------------------------------------
def warm_up(publisher: Publisher, store: Store, ingest: Ingest, devices: list[str], base_ms: int) -> None:
    """Until ingest stores a message (its workers are subscribed): messages older than the stream's."""
    deadline = time.monotonic() + START_WAIT_S
    while not store.warm():
        code = ingest.exit_code()
        if code is not None or time.monotonic() > deadline:
            tail = ingest.log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"ingest stored nothing within {START_WAIT_S:.0f} s of starting" if code is None
                             else f"ingest exited with code {code} before storing anything:\n{tail}")
        for i in range(10):
            publisher.publish(*telemetry(SITE, devices, i, base_ms - 3_600_000, METRICS))
        time.sleep(2)


def drain(publisher: Publisher, store: Store, idle_s: float, limit_s: float) -> float:
    """Wait for the PUBACKs, then until every message is stored, nothing new for ``idle_s`` or ``limit_s``."""
    t = time.monotonic()
    publisher.wait_acks(ACK_WAIT_S)
    want = len(publisher.sent_at) * len(METRICS)
    last, changed = -1, time.monotonic()
    while time.monotonic() - t < limit_s:
        rows = store.rows()
        if rows is not None and rows >= want:
            break
        if rows is not None and rows != last:
            last, changed = rows, time.monotonic()
        elif time.monotonic() - changed > idle_s:
            say(f"    nothing new stored for {idle_s:.0f} s: counting ({last} of {want} rows)")
            break
        time.sleep(1)
    return round(time.monotonic() - t, 1)


def count(publisher: Publisher, stored: dict[int, tuple[int, int]]) -> dict[str, int | bool]:
    """Published, acknowledged, stored, lost and duplicated messages; whether the targets are met."""
    total, acked = len(publisher.sent_at), publisher.acked
    full = {i for i, (_, metrics) in stored.items() if metrics == len(METRICS) and i < total}
    lost = [i for i in acked if i not in full]
    duplicates = sum(1 for rows, metrics in stored.values() if rows > metrics)
    return {
        "published_total": total,
        "published_acked": len(acked),
        "acked_no_subscribers": sum(1 for code in acked.values() if code == NO_SUBSCRIBERS),
        "puback_refused": publisher.refused,
        "stored": sum(1 for i in acked if i in full),
        "lost": len(lost),
        "partial": sum(1 for i in lost if i in stored),
        "lost_no_subscribers": sum(1 for i in lost if acked[i] == NO_SUBSCRIBERS),
        "stored_unacked": sum(1 for i in full if i not in acked),
        "duplicates": duplicates,
        "targets_met": bool(acked) and not lost and not duplicates,
    }


def run(args: argparse.Namespace, kinds: list[str], tmp: Path, stack: contextlib.ExitStack) -> dict:
    rng = random.Random(args.seed)
    skipped: dict[str, str] = {}
    broker = Broker(tmp / "mosquitto")
    stack.callback(broker.stop)
    db_url, drop = setup_database(tmp, SITE, ROOMS, args.database_url, database="chaos")
    stack.callback(drop)
    database = None
    if args.database_url:
        if "db_restart" in kinds:
            kinds.remove("db_restart")
            skipped["db_restart"] = "--database-url names a server that this benchmark did not start"
    else:
        logging.getLogger("twin.embedded").setLevel(logging.ERROR)  # its supervisor's warnings are the faults
        database = EmbeddedPostgres(tmp / "pgdata")
        stack.callback(database.shutdown)
    devices = fleet(ROOMS)
    base_ms = int((datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)).timestamp() * 1000)
    store = Store(db_url, devices, base_ms)
    stack.callback(store.close)
    say(f"ingest --workers {args.workers}, mosquitto at {broker.url}, {len(devices)} devices")
    ingest = Ingest(db_url, broker.url, tmp, args.workers)
    stack.callback(ingest.stop)
    publisher = Publisher(broker.url, devices, base_ms, args.rate)
    stack.callback(publisher.stop)
    warm_up(publisher, store, ingest, devices, base_ms)

    plan = schedule(kinds, args.faults_per_kind, args.duration, rng)
    say(f"publishing {args.rate:.0f} msgs/s for {args.duration:.0f} s; faults at "
        + ", ".join(f"{at:.1f} s {kind}" for at, kind in plan))
    t0 = time.monotonic()
    publisher.start(t0, t0 + args.duration)
    monitor = Monitor(store, publisher, ingest, t0)
    stack.callback(monitor.stop)
    for at, kind in plan:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        fault = Fault(kind, round(time.monotonic() - t0, 2))
        fault.injected, fault.detail = inject(kind, ingest, broker, database, args.down, rng)
        fault.done_s = round(time.monotonic() - t0, 2)
        monitor.faults.append(fault)
        say(f"    {fault.at_s:.1f} s {kind}: {fault.detail}")
    publisher.join(t0 + args.duration - time.monotonic() + 5)
    say(f"published {len(publisher.sent_at)} messages; draining")
    drain_s = drain(publisher, store, args.idle, args.drain)
    monitor.stop()
    ingest.stop()
    stored, dead_letters = store.tally()
    return {**count(publisher, stored), "dead_letters": dead_letters,
            **summary(args, kinds, monitor, ingest, publisher), "skipped_faults": skipped, "drain_s": drain_s}


def summary(args: argparse.Namespace, kinds: list[str], monitor: Monitor, ingest: Ingest,
            publisher: Publisher) -> dict:
    """The faults, their recovery, how ingest and the publisher fared, and the run's settings."""
    faults = monitor.faults
    recovered = [f.recovery_s for f in faults if f.injected and f.recovery_s is not None]
    unrecovered = sum(1 for f in faults if f.injected and f.recovery_s is None)
    sent = publisher.sent_at
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    return {
        "faults": {kind: sum(1 for f in faults if f.kind == kind and f.injected) for kind in kinds},
        "faults_not_injected": sum(1 for f in faults if not f.injected),
        "fault_log": [asdict(f) for f in faults],
        "max_recovery_s": max(recovered) if recovered and not unrecovered else None,
        "unrecovered_faults": unrecovered,
        "ingest": {"workers": args.workers, "worker_processes_seen": len(monitor.worker_pids),
                   "exited_during_run": monitor.ingest_exit, "sigterm_stop_s": ingest.sigterm_stop_s},
        "publisher_error": repr(publisher.error) if publisher.error else None,
        "publisher_disconnects": publisher.disconnects,
        "rate_target_msgs_per_s": args.rate,
        "rate_msgs_per_s": round(len(sent) / max(span, 1e-9), 1),
        "devices": len(publisher.devices),
        "metrics_per_message": len(METRICS),
        "duration_s": args.duration,
        "down_s": args.down,
        "seed": args.seed,
    }


def keep_logs(tmp: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for src, name in ((tmp / "ingest.log", "ingest.log"), (tmp / "mosquitto" / "mosquitto.log", "mosquitto.log"),
                      (tmp / "pgdata" / "log", "postgresql.log"), (tmp / "pg_ctl.log", "pg_ctl.log")):
        with contextlib.suppress(OSError):
            shutil.copyfile(src, to / name)


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"fault kinds are {', '.join(KINDS)}; got {text!r}")
    return list(dict.fromkeys(kinds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of publishing and faults")
    ap.add_argument("--rate", type=float, default=600.0, help="messages a second")
    ap.add_argument("--seed", type=int, default=1, help="seeds the faults' order, moments and victims")
    ap.add_argument("--faults", type=parse_kinds, default=list(KINDS), help="comma-separated fault kinds")
    ap.add_argument("--faults-per-kind", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1,
                    help="campus-twin ingest --workers (default: the product's default, 1; with several, a broker "
                         "restart on Mosquitto 2 loses what is published before they subscribe again: docs/mqtt.md)")
    ap.add_argument("--down", type=float, default=3.0, help="seconds the broker or the database stays down")
    ap.add_argument("--idle", type=float, default=40.0, help="drain ends after this long with nothing new stored")
    ap.add_argument("--drain", type=float, default=180.0, help="longest drain after publishing, seconds")
    ap.add_argument("--database-url", help="a PostgreSQL server for a scratch database (no db_restart then); "
                                           "default: an embedded PostgreSQL of the benchmark's own")
    ap.add_argument("--keep-logs", type=Path, help="copy the ingest, Mosquitto and PostgreSQL logs here")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as for Ctrl-C
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="campus-chaos-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            with contextlib.ExitStack() as stack:
                out = run(args, list(args.faults), tmp, stack)
        finally:
            if args.keep_logs:
                keep_logs(tmp, args.keep_logs)
    out["elapsed_s"] = round(time.monotonic() - t, 1)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
