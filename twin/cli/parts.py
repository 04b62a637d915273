"""The services made of the other packages (ingest, simulators, dashboard) and the demo's network of
schools: what the composition root hands to :mod:`twin.orchestrate`, which runs them.

Every import of ``ingest``, ``simulators``, ``dashboard`` and ``models_bim`` is inside a function.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from twin.cli.bim import bim_loader_for, load_bim
from twin.database import connection
from twin.services import ThreadService


def ensure_network(url: str, folder: Path, *, members: int, seed: int) -> list[dict[str, Any]]:
    """Generate the demo network (1 headquarters + ``members`` schools) and load the sites not yet loaded."""
    from models_bim.generate import generate_network
    from twin.storage.sites import list_sites

    with connection(url) as conn:
        present = {s.site_id for s in list_sites(conn)}
    folder.mkdir(parents=True, exist_ok=True)
    loaded = []
    for school in generate_network(folder, members=members, seed=seed):
        if school.site_id not in present:
            loaded.append(load_bim(url, school.path, school.site_id, name=school.name, role=school.role))
    return loaded


def ingest_service(url: str, mqtt_url: str, *, client_id: str, workers: int, share_group: str = "",
                   stats_every: float = 30.0) -> ThreadService:
    """One ingest worker in a thread (ready once its subscriptions are acknowledged), or a pool of
    ``workers`` processes (ready once they are started; ``subject`` then holds the pool's result)."""
    if workers == 1:
        from ingest.worker import IngestWorker

        worker = IngestWorker(url, mqtt_url, client_id=client_id, share_group=share_group, stats_every_s=stats_every)
        return ThreadService("ingest", worker.run, ready=worker.connected, subject=worker)
    import logging

    from ingest.pool import WorkerConfig, run_workers

    configs = [WorkerConfig(url, mqtt_url, f"{client_id}-{i}", share_group, stats_every, logging.getLogger().level)
               for i in range(1, workers + 1)]
    ready, results = threading.Event(), []  # results: the pool's PoolResult, once it stopped
    return ThreadService("ingest-pool", lambda stop: results.append(run_workers(configs, stop, ready)), ready=ready,
                         subject=results)


def simulator_service(url: str, mqtt_url: str, **options: Any) -> ThreadService:
    """The simulator fleet in a thread, ready once its connections are up and it publishes."""
    from simulators.fleet import FleetRunner

    runner = FleetRunner(url, mqtt_url, **options)
    return ThreadService("simulator", runner.run, ready=runner.started, subject=runner)


def dashboard_app(url: str, **options: Any) -> Any:
    from dashboard.app import create_app

    return create_app(url, bim_loader=bim_loader_for(url), **options)


def dashboard_service(app: Any, host: str, port: int) -> ThreadService:
    """The dashboard's server in a thread, ready when its port answers; the app is closed after it stopped."""
    from dashboard.app import close_app
    from dashboard.serve import bind, serve_until
    from twin.services import port_answers

    server = bind(app, host, port)
    return ThreadService("dashboard", lambda stop: serve_until(server, stop), ready=port_answers(host, port),
                         close=lambda: close_app(app))

