"""Run an app with werkzeug's threaded server until an event is set."""

from __future__ import annotations

import threading

import dash
from werkzeug.serving import make_server

#: How long :func:`serve` waits for the server thread after shutdown.
JOIN_TIMEOUT_S = 10.0


def serve(app: dash.Dash, host: str, port: int, stop: threading.Event) -> None:
    """Serve ``app`` on ``host:port`` (threaded) until ``stop`` is set, then shut down cleanly.

    Blocks; run it in a thread and set ``stop`` to end it. Binding errors (port in use)
    are raised before anything is served.
    """
    server = make_server(host, port, app.server, threaded=True)
    worker = threading.Thread(target=server.serve_forever, name=f"dashboard-{port}", daemon=True)
    worker.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        worker.join(JOIN_TIMEOUT_S)
        server.server_close()
