"""Helpers shared by the benchmarks: progress lines, an MQTT 5 client, a scratch twin database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from twin.messaging import contract
from twin.messaging.mqtt import MQTT_5, MqttClient, Subscription


def say(msg: str) -> None:
    """Progress goes to stderr: stdout is the one JSON object."""
    print(msg, file=sys.stderr, flush=True)


def fleet(rooms: int) -> list[str]:
    """The device ids of :func:`tests.helpers.small_twin` with ``rooms`` rooms."""
    return [f"{kind}-{i}" for i in range(rooms) for kind in ("ENV", "LUM")]


def telemetry(site: str, devices: Sequence[str], i: int, base_ms: int,
              metrics: dict[str, float]) -> tuple[str, bytes]:
    """Message ``i`` of a stream round-robin over ``devices``: the ``k = i // len(devices)``-th of device
    ``i % len(devices)``, ``ts`` = ``base_ms`` + ``k`` seconds, ``seq`` = ``k + 1``; unique by (device, ts)."""
    n = len(devices)
    k = i // n
    values = {name: v + (i % 17) for name, v in metrics.items()}
    return (contract.topic(site, devices[i % n], "telemetry"),
            orjson.dumps({"ts": base_ms + k * 1000, "seq": k + 1, "metrics": values}))


def client(url: str, client_id: str, *, persistent: bool, subscriptions: Sequence[Subscription] = (),
           **events: Any) -> MqttClient:
    """An MQTT 5 client subscribing to ``subscriptions`` on each connect (``connect()`` starts it);
    ``persistent``: the broker keeps its session for an hour. ``events``: ``on_connect`` and the others
    of :class:`twin.messaging.mqtt.MqttClient`. Reads the socket as plain paho does (no 64 KiB buffer):
    the baselines (receive limit, naive peer) stay the bare paho client they always were."""
    c = MqttClient(url, client_id, persistent=persistent, protocol=MQTT_5, session_expiry_s=3600,
                   receive_maximum=20000 if persistent else None, buffered_reads=False, **events)
    c.declare(subscriptions)
    return c


def setup_database(tmp: Path, site: str, rooms: int, given: str | None,
                   database: str = "bench") -> tuple[str, Callable[[], None]]:
    """A migrated database holding :func:`tests.helpers.small_twin` (``site``, ``rooms``); returns its URL
    and a function that drops it. ``given``: a scratch database ``campus_bench_*`` on that server, else
    an embedded PostgreSQL in ``tmp / "pgdata"`` (stopped when this process exits)."""
    from tests.helpers import small_twin
    from twin.storage.model import save_model
    from twin.storage.schema import migrate

    if given:
        name = f"campus_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(given, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = psycopg.conninfo.make_conninfo(given, dbname=name)

        def drop() -> None:
            with psycopg.connect(given, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    else:
        from twin.embedded import start_embedded

        url = start_embedded(tmp / "pgdata", database=database)

        def drop() -> None:
            pass
    with psycopg.connect(url) as conn:
        migrate(conn)
        conn.commit()
        save_model(conn, small_twin(site, rooms=rooms))
    return url, drop


def stop_group(proc: subprocess.Popen[Any], wait_s: float) -> float | None:
    """SIGTERM, as a service manager sends it (waiting up to ``wait_s``), then SIGKILL of the process's whole
    group, whatever is left; the seconds the SIGTERM stop took, None when it did not stop by itself."""
    took = None
    if proc.poll() is None:
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
            took = round(time.monotonic() - t, 2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return took
