"""MQTT brokers: parse broker URLs and start a local broker when none is given.

The local broker is Mosquitto when ``mosquitto`` is on PATH (a private instance on a
free port, persistence in the data directory), else the in-process amqtt broker,
which speaks MQTT 3.1.1 only (clients detect that, see :mod:`twin.mqtt`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


class BrokerError(RuntimeError):
    """A broker URL is malformed or a local broker failed to start."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://user:pass@host:1883`` -> :class:`BrokerAddress` (port 1883 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BrokerError(f"not an MQTT URL (expected mqtt://host:port): {url!r}")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise BrokerError(f"bad port in MQTT URL {url!r}") from exc
    return BrokerAddress(
        parts.hostname, port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = START_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class LocalBroker:
    """A broker this process started; ``stop()`` ends it (also used as a context manager)."""

    url: str
    kind: str

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence {persist}
persistence_location {location}/
autosave_interval 30
max_inflight_messages 1000
max_queued_messages 200000
max_packet_size 2000000
log_dest file {location}/mosquitto.log
log_type error
log_type warning
"""


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the parent dies, so a killed demo leaves no broker."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's clean stop still ends it
        pass


class MosquittoBroker(LocalBroker):
    kind = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, *, persist: bool = True) -> None:
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=self.port, location=workdir, persist="true" if persist else "false")
        if os.geteuid() == 0:
            # As root, mosquitto would switch to its own user, which also drops the parent-death signal.
            text += "user root\n"
        conf.write_text(text)
        exe = shutil.which("mosquitto")
        if exe is None:
            raise BrokerError("mosquitto is not on PATH")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        if not wait_for_port("127.0.0.1", self.port):
            self.stop()
            raise BrokerError(f"mosquitto did not start on port {self.port}; see {workdir / 'mosquitto.log'}")
        self.url = f"mqtt://127.0.0.1:{self.port}"
        log.info("mosquitto started url=%s pid=%d", self.url, self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class AmqttBroker(LocalBroker):
    """The amqtt broker on its own event loop in a daemon thread of this process."""

    kind = "amqtt"

    def __init__(self, port: int | None = None) -> None:
        from amqtt.broker import Broker

        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self.port = port or free_port()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._error: BaseException | None = None

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.broker = Broker(config, loop=self.loop)
                self.loop.run_until_complete(self.broker.start())
            except BaseException as exc:  # reported to the starting thread
                self._error = exc
                started.set()
                return
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self.thread.start()
        started.wait(START_TIMEOUT_S)
        if self._error is not None or not started.is_set():
            raise BrokerError(f"in-process MQTT broker did not start: {self._error}")
        self.url = f"mqtt://127.0.0.1:{self.port}"
        log.info("amqtt broker started url=%s", self.url)

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop)
        try:
            fut.result(5)
        except Exception:  # shutting down anyway
            log.debug("amqtt shutdown error", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def start_local_broker(workdir: Path, *, prefer: str = "auto", persist: bool = True) -> LocalBroker:
    """Mosquitto when installed (or ``prefer="mosquitto"``), else the in-process amqtt broker."""
    if prefer == "amqtt" or (prefer == "auto" and shutil.which("mosquitto") is None):
        return AmqttBroker()
    return MosquittoBroker(workdir, persist=persist)
