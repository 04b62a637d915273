"""paho-mqtt behind one small module: client creation, protocol detection, sessions.

Clients use MQTT 5 (clean start off, session expiry) and fall back to 3.1.1 with a
persistent session (clean session off) when the broker refuses protocol 5, as the
in-process amqtt broker does.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from twin.messaging.broker import BrokerAddress, BrokerError, parse_mqtt_url

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
PROBE_TIMEOUT_S = 5.0
#: How long the broker keeps a persistent session of a disconnected client.
SESSION_EXPIRY_S = 24 * 3600
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
#: MQTT 5 CONNACK reasons "bad user name or password" and "not authorized".
REFUSED_CREDENTIALS = (0x86, 0x87)
#: Bytes asked of the socket per read (a few hundred telemetry messages).
READ_CHUNK = 65536
#: The first two bytes of a PUBACK (type 4, remaining length 2) as the top half of a 32-bit word.
_PUBACK_WORD = 0x4002 << 16


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@lru_cache(maxsize=16)
def detect_protocol(url: str) -> MQTTProtocolVersion:
    """MQTT 5 if the broker accepts it, else 3.1.1; raises :class:`BrokerError` if unreachable."""
    addr = parse_mqtt_url(url)
    result: dict[str, object] = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        result.setdefault("rc", reason_code)
        done.set()

    probe = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    _auth(probe, addr)
    probe.on_connect, probe.on_disconnect = on_connect, on_disconnect
    try:
        probe.connect(addr.host, addr.port, keepalive=10)
    except OSError as exc:
        raise BrokerError(f"MQTT broker {addr.host}:{addr.port} unreachable: {exc}") from exc
    probe.loop_start()
    done.wait(PROBE_TIMEOUT_S)
    probe.disconnect()
    probe.loop_stop()
    rc = result.get("rc")
    if rc is not None and not getattr(rc, "is_failure", True):
        return MQTTProtocolVersion.MQTTv5
    if rc is not None and getattr(rc, "value", None) in REFUSED_CREDENTIALS:
        raise BrokerError(f"MQTT broker {addr.host}:{addr.port} refused the credentials ({rc}); "
                          f"give user:password in the MQTT URL (docs/security.md)")
    log.info("broker refused MQTT 5 (%s); using 3.1.1 url=%s", rc, url)
    return MQTTProtocolVersion.MQTTv311


class _BufferedClient(paho.Client):
    """paho's client reading the socket in 64 KiB chunks.

    paho reads each packet with two or three ``recv`` calls (type byte, length bytes,
    body) after a ``select``. Each call releases the GIL, and in a process with another
    busy thread (the ingest writer) getting it back can take milliseconds, so a consumer
    spends much of its time waiting. Here one ``recv`` fills a buffer that the packet
    reads are served from, and ``loop_read`` goes on while the buffer holds data (it is
    invisible to ``select``). Only ``_sock_recv`` is overridden; should a paho release
    drop it, the client reads as plain paho does.
    """

    _rsock: object | None = None
    _rbuf: bytes = b""
    _rpos: int = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing buffered from the old one counts
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, READ_CHUNK))
            if len(data) <= bufsize:
                return data
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = end = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start:end]

    def _buffered(self) -> bool:
        return self._sock is not None and self._rsock is self._sock and self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == paho.MQTT_ERR_SUCCESS and self._buffered():
            rc = super().loop_read(max_packets)
        return rc


def _auth(client: paho.Client, addr: BrokerAddress) -> None:
    """Credentials and, for ``mqtts://``, TLS with the server's certificate verified."""
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    if addr.tls:
        client.tls_set(ca_certs=addr.ca_file)


class MqttClient:
    """A paho client bound to one broker URL, with persistent-session settings applied.

    ``protocol`` is 5 or 4 (3.1.1); ``shared_subscriptions`` tells whether
    ``$share/...`` filters may be used.
    """

    def __init__(self, url: str, client_id: str, *, persistent: bool = True, manual_ack: bool = False,
                 will: Will | None = None, receive_maximum: int | None = None, protocol: int | None = None) -> None:
        self.url = url
        #: MQTT 5 Receive Maximum sent on CONNECT: how many unacknowledged QoS 1 messages the
        #: broker may have in flight to us (a batching consumer needs more than a batch).
        self.receive_maximum = receive_maximum
        self.addr = parse_mqtt_url(url)
        # ``protocol=4`` forces MQTT 3.1.1 (what most device firmware speaks; cheaper for the simulators).
        self.version = MQTTProtocolVersion.MQTTv311 if protocol == 4 else detect_protocol(url)
        self.persistent = persistent
        kwargs: dict[str, object] = {}
        if self.version != MQTTProtocolVersion.MQTTv5:
            kwargs["clean_session"] = not persistent
        self.client = _BufferedClient(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=self.version,
                                  manual_ack=manual_ack, **kwargs)  # type: ignore[arg-type]
        _auth(self.client, self.addr)
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if will is not None:
            self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)

    @property
    def protocol(self) -> int:
        return 5 if self.version == MQTTProtocolVersion.MQTTv5 else 4

    @property
    def shared_subscriptions(self) -> bool:
        return self.version == MQTTProtocolVersion.MQTTv5

    def connect(self) -> None:
        """Start the network loop and connect (retries in the background if the broker is down)."""
        props = None
        clean_start: bool | int = paho.MQTT_CLEAN_START_FIRST_ONLY
        if self.version == MQTTProtocolVersion.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            if self.receive_maximum:
                props.ReceiveMaximum = min(self.receive_maximum, 65535)
            if self.persistent:
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                clean_start = False
            else:
                clean_start = True
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=KEEPALIVE_S,
                                  clean_start=clean_start, properties=props)
        self.client.loop_start()

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages (``manual_ack``) with one write for all of them.

        ``client.ack`` queues one 4-byte PUBACK per message and wakes the network thread for
        each (a system call that also hands the GIL over); here the PUBACKs are packed into
        one buffer and queued once. The bytes on the wire are the same. Should a paho release
        drop ``_packet_queue``, the messages are acknowledged one at a time.
        """
        if not mids:
            return
        queue_packet = getattr(self.client, "_packet_queue", None)
        if queue_packet is None:
            for mid in mids:
                self.client.ack(mid, 1)
            return
        # PUBACK: type 0x40, remaining length 2, packet id; one big-endian 32-bit word each.
        queue_packet(paho.PUBACK, struct.pack(f"!{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids]), 0, 0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
