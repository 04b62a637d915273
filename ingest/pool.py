"""N supervised ingest worker processes sharing the MQTT 5 subscription (``campus-twin ingest --workers N``).

Each worker is a spawned process with a stable client id (``<client_id>-<i>``), so the broker
keeps its persistent session and its place in the shared group across restarts. A worker that
dies (kill -9, a crash) is started again with the same id after a backoff (1 s, doubling up to
30 s, back to 1 s once a run lasted a minute) and resumes its session: what the broker kept
for it meanwhile is delivered then, and what it had stored but not acknowledged is stored once.

Nothing is shared with the children that a killed one could leave locked (no multiprocessing
Event, Lock or Queue): the parent stops them with SIGTERM, waits against one deadline, then
SIGKILLs all that are left at once and reaps them against one more, so the pool stops within
:data:`STOP_GRACE_S` + :data:`KILL_WAIT_S` (under 10 s) however many workers are stuck. Each worker sends its totals over a pipe of its own as it exits; a killed worker
sends none (counted in :attr:`PoolResult.missing`). A worker whose parent dies (even by
SIGKILL) gets SIGTERM from the kernel, so no orphan keeps running. Spawning, the totals' pipe and the
stop against one deadline are :mod:`twin.children`'s.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from twin import children
from twin.messaging.broker import BrokerError
from twin.messaging.mqtt import detect_protocol
from twin.process import exit_on_thread_death, verbosity_of

log = logging.getLogger(__name__)

#: Seconds the workers get after SIGTERM to commit and acknowledge what they hold; then SIGKILL.
STOP_GRACE_S = 8.0
#: Seconds to reap the SIGKILLed workers (all of them, one deadline).
KILL_WAIT_S = 1.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
#: A worker that ran this long before it died is restarted after :data:`BACKOFF_FIRST_S` again.
HEALTHY_AFTER_S = 60.0
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    database_url: str
    mqtt_url: str
    client_id: str
    share_group: str
    stats_every_s: float
    log_level: int


@dataclass(frozen=True, slots=True)
class WorkerTotals:
    client_id: str
    messages: int = 0
    rows: int = 0
    duplicates: int = 0
    dead_letters: int = 0


@dataclass(slots=True)
class PoolResult:
    """What the pool's worker runs reported: one :class:`WorkerTotals` per run that ended cleanly;
    ``missing`` names the runs that reported nothing (killed, or died before reporting)."""

    totals: list[WorkerTotals] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    restarts: int = 0


@dataclass(slots=True)
class _Slot:
    """One worker: its current process (None while waiting to restart) and its restart state."""

    cfg: WorkerConfig
    proc: BaseProcess | None = None
    pipe: Connection | None = None  # the parent's end: the run's totals
    started: float = 0.0
    backoff_s: float | None = None
    restart_at: float | None = None


def check_workers(mqtt_url: str, workers: int) -> None:
    """Refuse several workers on an MQTT 3.1.1 broker (no shared subscriptions there)."""
    if workers > 1 and detect_protocol(mqtt_url) != 5:  # MQTT 5: shared subscriptions
        raise BrokerError(f"the broker at {mqtt_url} speaks MQTT 3.1.1 only (no shared subscriptions): "
                          f"run one ingest worker (--workers 1), or use an MQTT 5 broker such as Mosquitto 2")


def next_backoff(previous_s: float | None, ran_s: float) -> float:
    """Seconds before restarting a worker that died after running ``ran_s`` (``previous_s``: the
    backoff before that run, None for a first run)."""
    if previous_s is None or ran_s >= HEALTHY_AFTER_S:
        return BACKOFF_FIRST_S
    return min(previous_s * 2, BACKOFF_MAX_S)


def _work(cfg: WorkerConfig) -> dict[str, int | str]:
    """Body of one worker process (through :func:`twin.children.spawn`): runs until SIGTERM or SIGINT,
    then returns its totals, which the helper sends to the pool as the process exits."""
    from ingest.worker import IngestWorker
    from twin.logs import setup_logging

    setup_logging(verbosity_of(cfg.log_level))
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)  # Ctrl-C reaches the whole process group
    signal.signal(signal.SIGTERM, handler)
    exit_on_thread_death(stop)  # a dead thread (paho's, the store's) ends this worker non-zero: it is restarted
    worker = IngestWorker(cfg.database_url, cfg.mqtt_url, client_id=cfg.client_id, share_group=cfg.share_group,
                          stats_every_s=cfg.stats_every_s)
    try:
        worker.run(stop)
    except Exception:  # its totals still go to the pool; the exit is non-zero, so it is restarted
        log.critical("ingest worker failed client=%s", cfg.client_id, exc_info=True)
        children.set_exit_status(1)
    c = worker.counters
    worker.log_stats(1.0, c.messages)
    return asdict(WorkerTotals(cfg.client_id, c.messages, c.rows, c.duplicates, c.dead_letters))


def _start(slot: _Slot) -> None:
    child = children.spawn(_work, slot.cfg, process_name=slot.cfg.client_id, daemon=False)
    slot.proc, slot.pipe, slot.started, slot.restart_at = child.process, child.pipe, time.monotonic(), None
    log.info("ingest worker started client=%s pid=%s", slot.cfg.client_id, child.pid)


def _collect(slot: _Slot, result: PoolResult) -> None:
    """The totals an ended run sent, or its client id in ``result.missing``."""
    assert slot.pipe is not None
    try:
        message = children.receive(slot.pipe)
        if message is not None and message[0] == "ok":
            result.totals.append(WorkerTotals(**message[1]))
        else:
            result.missing.append(slot.cfg.client_id)
    finally:
        slot.pipe.close()
        slot.proc, slot.pipe = None, None


def _supervise(slot: _Slot, result: PoolResult) -> None:
    """Note a worker that died and schedule its restart; start it when its backoff is over."""
    now = time.monotonic()
    if slot.proc is not None and slot.proc.exitcode is not None:
        pid, code = slot.proc.pid, slot.proc.exitcode
        _collect(slot, result)
        slot.backoff_s = next_backoff(slot.backoff_s, now - slot.started)
        slot.restart_at = now + slot.backoff_s
        log.warning("ingest worker died client=%s pid=%s exit_code=%s ran_s=%.1f backoff_s=%.1f (restarting with "
                    "its session)", slot.cfg.client_id, pid, code, now - slot.started, slot.backoff_s)
    if slot.proc is None and slot.restart_at is not None and now >= slot.restart_at:
        _start(slot)
        result.restarts += 1


def _stop_all(slots: list[_Slot], result: PoolResult, grace_s: float = STOP_GRACE_S,
              kill_wait_s: float = KILL_WAIT_S) -> None:
    """SIGTERM every worker and wait against one deadline; then SIGKILL all that are left at once and
    reap them against one more (:func:`twin.children.stop_processes`); collect totals. Takes at most
    ``grace_s + kill_wait_s``."""
    t0 = time.monotonic()
    running = [s for s in slots if s.proc is not None]
    # SIGTERM: each worker commits and acknowledges the batch in hand
    killed = children.stop_processes([s.proc for s in running if s.proc is not None], grace_s, kill_wait_s)
    for slot in running:
        if slot.proc in killed:
            log.warning("ingest worker did not stop in %.0f s client=%s pid=%s; killed it (what it has not "
                        "acknowledged stays with the broker)", grace_s, slot.cfg.client_id, slot.proc.pid)
    for slot in running:
        _collect(slot, result)
    log.info("ingest pool stopped workers=%d killed=%d stop_s=%.1f", len(running), len(killed), time.monotonic() - t0)


def run_workers(configs: list[WorkerConfig], stop: threading.Event,
                ready: threading.Event | None = None) -> PoolResult:
    """Run one supervised process per config until ``stop`` is set, then stop them all; return their totals.

    ``ready`` is set once every worker process has started (the pool as a :class:`twin.services.ThreadService`)."""
    slots = [_Slot(cfg) for cfg in configs]
    result = PoolResult()
    try:
        for slot in slots:
            _start(slot)
        if ready is not None:
            ready.set()
        while not stop.wait(POLL_S):
            for slot in slots:
                _supervise(slot, result)
    finally:
        _stop_all(slots, result)
    return result
