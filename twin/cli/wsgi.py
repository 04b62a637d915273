"""The dashboard as a WSGI application for gunicorn (``campus-twin dashboard``'s production server).

gunicorn's master forks ``--workers`` processes; each builds its own app here (its own database pool
and MQTT connection: nothing is shared across a fork) from the settings the command put in
:data:`CONFIG_ENV`, and closes it when the worker exits. The app is stateless: logins live in the
database, so several processes, or hosts behind a load balancer, serve the same users.

    gunicorn -c python:twin.cli.wsgi 'twin.cli.wsgi:application()'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The environment variable with the app's settings (JSON), set by ``campus-twin dashboard`` for its
#: gunicorn process.
CONFIG_ENV = "CAMPUS_TWIN_DASHBOARD_CONFIG"

_app: Any = None

# gunicorn settings read from this module (``-c python:twin.cli.wsgi``); the command line adds the rest.
worker_class = "gthread"
accesslog = None  # quiet by default; errors and worker restarts go to stderr
loglevel = "warning"
graceful_timeout = 10
# Uploads run minutes in a child process of the worker; gthread workers keep their heartbeat meanwhile.
timeout = 60


def settings(url: str, *, mqtt_url: str | None, secure_cookies: bool, trusted_proxies: int, pending_dir: Path,
             rules_file: Path | None) -> str:
    """The JSON for :data:`CONFIG_ENV`."""
    return json.dumps({"url": url, "mqtt_url": mqtt_url, "secure_cookies": secure_cookies,
                       "trusted_proxies": trusted_proxies, "pending_dir": str(pending_dir),
                       "rules_file": str(rules_file) if rules_file else None})


def application() -> Any:
    """This worker's Flask server (the Dash app), built once per process from :data:`CONFIG_ENV`."""
    global _app
    from twin.cli.parts import dashboard_app
    from twin.monitoring.standards import load_config

    if _app is None:
        conf = json.loads(os.environ[CONFIG_ENV])
        rules = load_config(Path(conf["rules_file"]) if conf["rules_file"] else None)
        _app = dashboard_app(conf["url"], mqtt_url=conf["mqtt_url"], secure_cookies=conf["secure_cookies"],
                             trusted_proxies=conf["trusted_proxies"], pending_dir=Path(conf["pending_dir"]),
                             rules=rules)
    return _app.server


def on_starting(server: Any) -> None:
    """gunicorn hook, in the master: end with ``campus-twin dashboard`` even when it is killed (SIGKILL, OOM),
    so no orphan keeps the port and the database connections."""
    from twin.process import die_with_parent

    die_with_parent()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: release the worker's pool and MQTT connection."""
    if _app is not None:
        from dashboard.app import close_app

        close_app(_app)
