"""MQTT brokers: parse broker URLs and start a local broker when none is given.

The local broker is Mosquitto when ``mosquitto`` is on PATH (a private instance on a
free port, persistence in the data directory), else the in-process amqtt broker,
which speaks MQTT 3.1.1 only (clients detect that, see :mod:`twin.messaging.mqtt`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from twin.process import die_with_parent

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
    #: ``mqtts://``: TLS, verified against ``ca_file`` (``?ca=/path/ca.pem``) or the system's CAs.
    tls: bool = False
    ca_file: str | None = None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://user:pass@host:1883`` or ``mqtts://user:pass@host:8883?ca=ca.pem`` -> :class:`BrokerAddress`."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        raise BrokerError(f"not an MQTT URL (expected mqtt://host:port or mqtts://host:port): {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise BrokerError(f"bad port in MQTT URL {url!r}") from exc
    query = dict(parse_qsl(parts.query))
    return BrokerAddress(
        parts.hostname, port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls, query.get("ca") or None,
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


#: What a Mosquitto of the twin may queue per client while that client is away (ingest stopped,
#: a worker restarting): Mosquitto's default of 1,000 messages drops the rest of an outage.
#: 1,000,000 messages is about an hour of a 14-school network at 280 msg/s; the byte bound
#: (payload bytes, per client) stops a flood of large payloads first (docs/security.md).
MAX_QUEUED_MESSAGES = 1_000_000
MAX_QUEUED_BYTES = 1 << 30
#: QoS 1 messages a client may have unacknowledged towards the broker (Mosquitto's default is 20:
#: a gateway publishing over a 10 ms link would top out at 2,000 msgs/s).
MAX_INFLIGHT_MESSAGES = 1000
#: Largest MQTT packet the twin's Mosquitto takes: zigbee2mqtt's retained ``bridge/devices`` lists every
#: device with its definition and exposes (several kB each), over 2 MB for a school of a few hundred
#: devices; a refused list makes zigbee2mqtt reconnect in a loop. Telemetry keeps its own 64 KiB limit
#: (``contract.MAX_PAYLOAD_BYTES``).
MAX_PACKET_BYTES = 16_000_000


def delivery_settings(max_queued_messages: int = MAX_QUEUED_MESSAGES,
                      max_queued_bytes: int = MAX_QUEUED_BYTES) -> str:
    """The ``mosquitto.conf`` lines on queues and in-flight windows shared by every Mosquitto of the twin."""
    return (f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}\n"
            f"max_queued_messages {max_queued_messages}\n"
            f"max_queued_bytes {max_queued_bytes}\n"
            f"max_packet_size {MAX_PACKET_BYTES}\n")


MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous {anonymous}
persistence {persist}
persistence_location {location}/
autosave_interval 30
{delivery}log_dest file {location}/mosquitto.log
log_type error
log_type warning
"""

DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"


def find_dynsec_plugin() -> str | None:
    """Mosquitto's dynamic security plugin next to the ``mosquitto`` on PATH (``<prefix>/lib/...``), or None."""
    exe = shutil.which("mosquitto")
    if exe is None:
        return None
    prefix = Path(exe).resolve().parent.parent
    for pattern in (f"lib/*/{DYNSEC_PLUGIN}", f"lib/{DYNSEC_PLUGIN}", f"lib*/mosquitto/{DYNSEC_PLUGIN}",
                    f"lib64/{DYNSEC_PLUGIN}"):
        found = sorted(prefix.glob(pattern))
        if found:
            return str(found[0])
    return None


def _start_mosquitto(conf: Path, port: int, log_file: Path | None, see: Path | None = None) -> subprocess.Popen:
    """``mosquitto -c conf``, waiting until it listens on ``port``; its stderr goes to ``log_file``
    (``see``: where its log is when the configuration names one)."""
    exe = shutil.which("mosquitto")
    if exe is None:
        raise BrokerError("mosquitto is not on PATH")
    err = log_file.open("ab") if log_file is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=die_with_parent)
    finally:
        if log_file is not None:
            err.close()  # type: ignore[union-attr]
    if not wait_for_port("127.0.0.1", port) or proc.poll() is not None:
        _stop_process(proc)
        raise BrokerError(f"mosquitto -c {conf} did not start on port {port}; see {see or log_file or 'its log'}")
    return proc


def _stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (Mosquitto then saves its persistence file), SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ConfiguredMosquitto(LocalBroker):
    """``mosquitto -c conf`` for a configuration written elsewhere (``campus-twin devices credentials``)."""

    kind = "mosquitto"

    def __init__(self, conf: Path, port: int, log_file: Path | None = None) -> None:
        self.port = port
        self.proc = _start_mosquitto(conf, port, log_file)
        self.url = f"mqtt://127.0.0.1:{port}"
        log.info("mosquitto started conf=%s url=%s pid=%d", conf, self.url, self.proc.pid)

    def stop(self) -> None:
        _stop_process(self.proc)


class MosquittoBroker(LocalBroker):
    kind = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, *, persist: bool = True, anonymous: bool = True,
                 extra_conf: str = "") -> None:
        """``anonymous=False`` with ``extra_conf`` (``password_file``, ``acl_file``, a TLS ``listener``)
        gives a secured broker (docs/security.md)."""
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=self.port, location=workdir, persist="true" if persist else "false",
                                     anonymous="true" if anonymous else "false",
                                     delivery=delivery_settings()) + extra_conf
        if os.geteuid() == 0:
            # As root, mosquitto would switch to its own user, which also drops the parent-death signal.
            text += "user root\n"
        conf.write_text(text)
        self.proc = _start_mosquitto(conf, self.port, None, see=workdir / "mosquitto.log")
        self.url = f"mqtt://127.0.0.1:{self.port}"
        log.info("mosquitto started url=%s pid=%d", self.url, self.proc.pid)

    def stop(self) -> None:
        _stop_process(self.proc)


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
