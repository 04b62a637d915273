"""Run an app with werkzeug's threaded server until an event is set."""

from __future__ import annotations

import threading

import dash
from werkzeug.serving import BaseWSGIServer, make_server

#: How long :func:`serve_until` waits for the server thread after shutdown.
JOIN_TIMEOUT_S = 10.0


class PortInUse(OSError):
    """The dashboard's port cannot be bound."""


def bind(app: dash.Dash, host: str, port: int) -> BaseWSGIServer:
    """Bind a threaded server for ``app``; raises :class:`PortInUse` with a one-line message."""
    try:
        return make_server(host, port, app.server, threaded=True)
    except (OSError, SystemExit) as exc:  # werkzeug exits on "address already in use"
        raise PortInUse(f"cannot serve the dashboard on {host}:{port}: port in use or not available "
                        f"(choose another with --port)") from exc


def serve_until(server: BaseWSGIServer, stop: threading.Event) -> None:
    """Serve until ``stop`` is set, then shut down cleanly (blocks; run it in a thread)."""
    worker = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
    worker.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        worker.join(JOIN_TIMEOUT_S)
        server.server_close()


def serve(app: dash.Dash, host: str, port: int, stop: threading.Event) -> None:
    """Bind and serve ``app`` on ``host:port`` until ``stop`` is set."""
    serve_until(bind(app, host, port), stop)
