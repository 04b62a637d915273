"""N ingest worker processes sharing the MQTT 5 subscription (``campus-twin ingest --workers N``).

Each worker is a spawned process with a stable client id (``<client_id>-<i>``), so the
broker keeps its persistent session and its place in the shared group across restarts.
The parent stops them on SIGINT/SIGTERM through a shared event; a worker whose parent
dies (even by SIGKILL) gets SIGTERM from the kernel, so no orphan keeps running.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
from dataclasses import asdict, dataclass

from twin.broker import BrokerError
from twin.process import die_with_parent, verbosity_of
from twin.mqtt import detect_protocol

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0


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


def check_workers(mqtt_url: str, workers: int) -> None:
    """Refuse several workers on an MQTT 3.1.1 broker (no shared subscriptions there)."""
    from paho.mqtt.enums import MQTTProtocolVersion

    if workers > 1 and detect_protocol(mqtt_url) != MQTTProtocolVersion.MQTTv5:
        raise BrokerError(f"the broker at {mqtt_url} speaks MQTT 3.1.1 only (no shared subscriptions): "
                          f"run one ingest worker (--workers 1), or use an MQTT 5 broker such as Mosquitto 2")


def _child(cfg: WorkerConfig, stop: mp.synchronize.Event, results: mp.Queue) -> None:
    """Body of one worker process."""
    from ingest.worker import IngestWorker
    from twin.logs import setup_logging

    die_with_parent()
    setup_logging(verbosity_of(cfg.log_level))
    local = threading.Event()

    def handler(signum: int, frame: object) -> None:
        local.set()

    signal.signal(signal.SIGINT, handler)  # Ctrl-C reaches the whole process group
    signal.signal(signal.SIGTERM, handler)
    worker = IngestWorker(cfg.database_url, cfg.mqtt_url, client_id=cfg.client_id, share_group=cfg.share_group,
                          stats_every_s=cfg.stats_every_s)
    watcher = threading.Thread(target=lambda: (stop.wait(), local.set()), daemon=True)
    watcher.start()
    try:
        worker.run(local)
    finally:
        c = worker.counters
        worker.log_stats(1.0, c.messages)
        results.put(asdict(WorkerTotals(cfg.client_id, c.messages, c.rows, c.duplicates, c.dead_letters)))


def run_workers(configs: list[WorkerConfig], stop: threading.Event) -> list[WorkerTotals]:
    """Start one process per config, wait for ``stop``, stop them all; return their totals."""
    ctx = mp.get_context("spawn")
    shared_stop = ctx.Event()
    results: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(cfg, shared_stop, results), name=cfg.client_id, daemon=False)
             for cfg in configs]
    for p in procs:
        p.start()
        log.info("ingest worker started client=%s pid=%s", p.name, p.pid)
    try:
        while not stop.wait(0.5):
            dead = [p for p in procs if not p.is_alive()]
            if dead:
                log.error("ingest worker exited client=%s code=%s; stopping the others", dead[0].name,
                          dead[0].exitcode)
                break
    finally:
        shared_stop.set()
        totals = []
        for p in procs:
            p.join(STOP_GRACE_S)
            if p.is_alive():
                log.warning("ingest worker did not stop in time client=%s; terminating", p.name)
                p.terminate()
                p.join(5)
        while len(totals) < len(procs):
            try:
                totals.append(WorkerTotals(**results.get(timeout=1)))
            except Exception:  # a worker that died without reporting
                break
    return totals
