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


def gunicorn_service(config_json: str, host: str, port: int, *, workers: int, threads: int) -> ThreadService:
    """The dashboard on gunicorn (:mod:`twin.cli.wsgi`): its master process as a service, ready when the port
    answers. gunicorn restarts a worker that dies; the master ending on its own is a crash of this service
    (loud); stopping sends it SIGTERM (graceful) and kills it after its grace."""
    import os
    import subprocess
    import sys

    from twin.children import stop_processes
    from twin.cli.wsgi import CONFIG_ENV, graceful_timeout
    from twin.services import ServiceError, port_answers

    def run(stop: threading.Event) -> None:
        env = {**os.environ, CONFIG_ENV: config_json}
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:twin.cli.wsgi", "--bind", f"{host}:{port}",
             "--workers", str(workers), "--threads", str(threads), "--name", "campus-twin-dashboard",
             "twin.cli.wsgi:application()"], env=env,
            start_new_session=True)  # Ctrl-C is ours to turn into a graceful SIGTERM, not gunicorn's quick stop
        try:
            while not stop.wait(0.5):
                if proc.poll() is not None:
                    raise ServiceError(f"the dashboard's gunicorn exited ({proc.returncode}); its errors are above")
        finally:
            stop_processes([_Popened(proc)], grace_s=graceful_timeout + 5, kill_wait_s=5)

    def answers() -> bool:  # a worker answers (the master binds the port before its workers have booted)
        import urllib.error
        import urllib.request

        if not port_answers(host, port)():
            return False
        try:
            urllib.request.urlopen(f"http://{host}:{port}/login", timeout=2).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    return ThreadService("dashboard", run, ready=answers)


class _Popened:
    """A ``subprocess.Popen`` as :func:`twin.children.stop_processes` stops processes."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()  # type: ignore[no-any-return]

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def join(self, timeout: float | None = None) -> None:
        import subprocess

        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


def dashboard_service(app: Any, host: str, port: int) -> ThreadService:
    """The dashboard's server in a thread, ready when its port answers; the app is closed after it stopped."""
    from dashboard.app import close_app
    from dashboard.serve import bind, serve_until
    from twin.services import port_answers

    server = bind(app, host, port)
    return ThreadService("dashboard", lambda stop: serve_until(server, stop), ready=port_answers(host, port),
                         close=lambda: close_app(app))

