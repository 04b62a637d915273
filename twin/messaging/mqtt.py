"""paho-mqtt behind one module: the only place of the code base that touches paho objects.

What callers get is plain Python:

- :class:`MqttClient`, bound to one broker URL: MQTT 5 (clean start off and a session expiry
  for a persistent session), or 3.1.1 with clean session off when the broker refuses protocol
  5, as the in-process amqtt broker does (:func:`detect_protocol`, asked once per client; a
  caller that knows the answer passes ``protocol=``).
- Subscriptions are declared as data (:class:`Subscription`: filter, QoS, MQTT 5 options and a
  handler) with :meth:`MqttClient.declare`; the client makes them on **every** connect, a
  resumed session included (Mosquitto 2.0 does not restore shared subscriptions after its own
  restart, docs/mqtt.md), before it calls ``on_connect``.
- Connection state arrives as ``on_connect(session_present)``, ``on_disconnect(reason)`` and
  ``on_subscribed(refused)``; messages as :class:`Received` tuples (which connection each came
  in on included, so that acknowledgements never reach a later connection: :meth:`MqttClient.acknowledge`).
- :meth:`MqttClient.publish` returns a :class:`Publication` to wait on; :meth:`MqttClient.send`
  is the same without one, for the simulator's hot path.
- Either a network thread (:meth:`MqttClient.connect`) or the caller's own ``select`` loop
  (:meth:`MqttClient.open`, :meth:`socket`, :meth:`want_write`, :meth:`loop_read`,
  :meth:`loop_write`, :meth:`loop_misc`), as the simulator drives thousands of clients from one thread.

paho's public API does it all but two things, each isolated in one function below and
named so: buffered socket reads (:class:`_BufferedClient`, ``_sock_recv``) and one write for a
batch of PUBACKs (:func:`_queue_raw_packet`, ``_packet_queue``). Should a paho release drop
either, the client falls back to plain paho behaviour.
"""

from __future__ import annotations

import logging
import socket as _socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import time as _now
from typing import NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from twin.messaging.broker import BrokerAddress, BrokerError, parse_mqtt_url

log = logging.getLogger(__name__)

#: Protocol levels as :func:`detect_protocol` and :attr:`MqttClient.protocol` give them.
MQTT_5, MQTT_311 = 5, 4
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
#: MQTT 5 retain handling of a subscription: retained messages on every subscribe, only when the
#: subscription is new, never.
RETAIN_SEND, RETAIN_SEND_IF_NEW, RETAIN_NEVER = 0, 1, 2


class PublishError(RuntimeError):
    """A message that was not handed to the broker (not connected, queue full)."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Received(NamedTuple):
    """One message as delivered (a tuple: several times cheaper to make than a frozen dataclass)."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float  # epoch seconds (cheaper than a datetime per message)
    connection: int  # which connection it came in on: :attr:`MqttClient.connection` at receipt
    retain: bool = False  # the broker's retained copy (sent on subscribing), not a live message


#: Called on the network thread (or the caller's loop) for each message of a subscription.
Handler = Callable[[Received], None]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription the client makes on every connect.

    ``no_local`` and ``retain_handling`` (:data:`RETAIN_SEND_IF_NEW`: retained messages only for a
    subscription the session does not hold yet) are MQTT 5 options, left out on 3.1.1.
    """

    topic_filter: str
    handler: Handler
    qos: int = 1
    no_local: bool = False
    retain_handling: int = RETAIN_SEND


class Publication:
    """A message handed to the client; :meth:`wait_for_publish` until the broker has it."""

    __slots__ = ("_info",)

    def __init__(self, info: paho.MQTTMessageInfo) -> None:
        self._info = info

    @property
    def mid(self) -> int:
        return self._info.mid

    def is_published(self) -> bool:
        """Whether the broker acknowledged it (QoS 1) or it was written (QoS 0)."""
        return self._info.is_published()

    def wait_for_publish(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` s (then ask :meth:`is_published`); :class:`PublishError` if it cannot be published."""
        try:
            self._info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(str(exc)) from exc


def detect_protocol(url: str) -> int:
    """:data:`MQTT_5` if the broker accepts it, else :data:`MQTT_311`; raises :class:`BrokerError` if
    unreachable or the credentials are refused. One probe connection per call (no cache: keep the answer)."""
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
        return MQTT_5
    if rc is not None and getattr(rc, "value", None) in REFUSED_CREDENTIALS:
        raise BrokerError(f"MQTT broker {addr.host}:{addr.port} refused the credentials ({rc}); "
                          f"give user:password in the MQTT URL (docs/security.md)")
    log.info("broker refused MQTT 5 (%s); using 3.1.1 url=%s", rc, url)
    return MQTT_311


class _BufferedClient(paho.Client):
    """paho's client reading the socket in 64 KiB chunks.

    paho reads each packet with two or three ``recv`` calls (type byte, length bytes,
    body) after a ``select``. Each call releases the GIL, and in a process with another
    busy thread (the ingest writer) getting it back can take milliseconds, so a consumer
    spends much of its time waiting. Here one ``recv`` fills a buffer that the packet
    reads are served from, and ``loop_read`` goes on while the buffer holds data (it is
    invisible to ``select``).

    paho has no public hook for how its socket is read: overriding the private ``_sock_recv``
    is this class's one use of paho's internals (the socket itself comes from the public
    ``socket()``). Should a paho release drop ``_sock_recv``, the override is never called and
    the client reads as plain paho does.
    """

    _rsock: object | None = None
    _rbuf: bytes = b""
    _rpos: int = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self.socket()
        if self._rsock is not sock:  # a new connection: nothing buffered from the old one counts
            self._rsock, self._rbuf, self._rpos = sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, READ_CHUNK))
            if len(data) <= bufsize:
                return data
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = end = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start:end]

    def _buffered(self) -> bool:
        sock = self.socket()
        return sock is not None and self._rsock is sock and self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered():
            rc = super().loop_read(max_packets)
        return rc


def _queue_raw_packet(client: paho.Client, command: int, packet: bytes) -> bool:
    """Queue ``packet`` (whole MQTT packets, already encoded) for writing in one go; False if this
    paho has no way to (then the caller sends them one by one through the public API).

    paho has no public API for sending several packets in one write: this uses its private
    ``_packet_queue`` (the function ``ack`` itself queues through), and nothing else here does.
    """
    queue_packet = getattr(client, "_packet_queue", None)
    if queue_packet is None:
        return False
    queue_packet(command, packet, 0, 0)
    return True


def _auth(client: paho.Client, addr: BrokerAddress) -> None:
    """Credentials and, for ``mqtts://``, TLS with the server's certificate verified."""
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    if addr.tls:
        client.tls_set(ca_certs=addr.ca_file)


def _options(sub: Subscription, protocol: int) -> SubscribeOptions | int:
    if protocol != MQTT_5:
        return sub.qos
    return SubscribeOptions(qos=sub.qos, noLocal=sub.no_local, retainHandling=sub.retain_handling)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` falls under the MQTT filter ``topic_filter`` (``+`` and ``#`` wildcards)."""
    return paho.topic_matches_sub(topic_filter, topic)


def _matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` falls under ``topic_filter`` (a shared ``$share/{group}/`` prefix ignored)."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    return paho.topic_matches_sub(topic_filter, topic)


class MqttClient:
    """One MQTT connection bound to a broker URL, with persistent-session settings applied.

    ``protocol`` is 5 or 4 (3.1.1; what most device firmware speaks, cheaper for the simulators),
    detected when not given; ``shared_subscriptions`` tells whether ``$share/...`` filters may be
    used. ``manual_ack``: QoS 1 messages are acknowledged by :meth:`acknowledge` (or :meth:`ack_many`),
    not on receipt. The callbacks run on the network thread (or in the caller's loop):

    - ``on_connect(session_present)`` once the broker accepted a connection (a refusal is logged);
    - ``on_disconnect(reason)`` when a connection ends (:attr:`connection` is already counted up);
    - ``on_subscribed(refused)`` when the broker answered the declared subscriptions of a
      connection: the reasons of those it refused, ``()`` when it granted all;
    - ``on_published(mid, reason)`` per message the broker acknowledged (QoS 1): its packet id
      (:attr:`Publication.mid`) and the PUBACK's reason code (0 success, 0x10 no matching
      subscribers, 0x80 and above a refusal; always 0 on MQTT 3.1.1).
    """

    def __init__(self, url: str, client_id: str, *, persistent: bool = True, manual_ack: bool = False,
                 will: Will | None = None, receive_maximum: int | None = None, protocol: int | None = None,
                 max_inflight: int = 1000, reconnect_delay_s: tuple[float, float] = (RECONNECT_MIN_S, RECONNECT_MAX_S),
                 on_connect: Callable[[bool], None] | None = None,
                 on_disconnect: Callable[[str], None] | None = None,
                 on_subscribed: Callable[[tuple[str, ...]], None] | None = None,
                 on_published: Callable[[int, int], None] | None = None,
                 session_expiry_s: int = SESSION_EXPIRY_S, buffered_reads: bool = True) -> None:
        self.url = url
        self.client_id = client_id
        #: MQTT 5 Receive Maximum sent on CONNECT: how many unacknowledged QoS 1 messages the
        #: broker may have in flight to us (a batching consumer needs more than a batch).
        self.receive_maximum = receive_maximum
        self.addr = parse_mqtt_url(url)
        self.protocol: int = protocol if protocol in (MQTT_5, MQTT_311) else detect_protocol(url)
        self.persistent = persistent
        self.session_expiry_s = session_expiry_s
        self.on_connect, self.on_disconnect, self.on_subscribed = on_connect, on_disconnect, on_subscribed
        #: Connections lost so far: a message's :attr:`Received.connection`. Counted up (under the
        #: acknowledgement lock) before paho reconnects, so :meth:`acknowledge` never reaches a later connection.
        self.connection = 0
        self._ack_lock = threading.Lock()
        self._subscriptions: tuple[Subscription, ...] = ()
        self._unsubscribe: tuple[str, ...] = ()
        self._subscribe_mid: int | None = None
        self._handler: Handler | None = None
        self._opened = False
        self._loop_started = False
        version = MQTTProtocolVersion.MQTTv5 if self.protocol == MQTT_5 else MQTTProtocolVersion.MQTTv311
        kwargs: dict[str, object] = {}
        if version != MQTTProtocolVersion.MQTTv5:
            kwargs["clean_session"] = not persistent
        # ``buffered_reads=False``: paho's own reads, two or three ``recv`` a packet (the benchmarks' baseline).
        cls = _BufferedClient if buffered_reads else paho.Client
        self._client = cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
                           manual_ack=manual_ack, **kwargs)  # type: ignore[arg-type]
        c = self._client
        _auth(c, self.addr)
        c.reconnect_delay_set(*reconnect_delay_s)  # type: ignore[arg-type]
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        if will is not None:
            c.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        c.on_connect, c.on_disconnect, c.on_subscribe = self._connected, self._disconnected, self._subscribed
        if on_published is not None:
            c.on_publish = lambda client, userdata, mid, reason_code, properties: on_published(
                mid, getattr(reason_code, "value", 0))

    @property
    def shared_subscriptions(self) -> bool:
        return self.protocol == MQTT_5

    # -- subscriptions -------------------------------------------------------------------------
    def declare(self, subscriptions: Sequence[Subscription], *, unsubscribe: Sequence[str] = ()) -> None:
        """The subscriptions to make on every connect (replacing those declared before), then
        ``unsubscribe``: filters a resumed session may still hold from another configuration,
        dropped once the new subscriptions are in place (nothing falls between them).

        Declare before :meth:`connect`; subscriptions declared later are made on the next connect."""
        self._subscriptions = tuple(subscriptions)
        self._unsubscribe = tuple(unsubscribe)
        handlers = list(dict.fromkeys(s.handler for s in self._subscriptions))
        if len(handlers) == 1:
            self._handler = handlers[0]
            self._client.on_message = self._deliver_one
        elif handlers:
            self._client.on_message = self._deliver_matching
        else:
            self._client.on_message = None

    def resubscribe(self, subscriptions: Sequence[Subscription]) -> None:
        """Replace the declared subscriptions while connected: subscribe what is new, unsubscribe what is
        gone (the next connect makes them all again). The broker's answer comes to ``on_subscribed``."""
        before = {s.topic_filter for s in self._subscriptions}
        after = {s.topic_filter for s in subscriptions}
        self.declare(subscriptions, unsubscribe=self._unsubscribe)
        new = [s for s in subscriptions if s.topic_filter not in before]
        if new and self._client.is_connected():
            self._subscribe_mid = self._client.subscribe([(s.topic_filter, _options(s, self.protocol)) for s in new])[1]
        if gone := sorted(before - after):
            self._client.unsubscribe(gone)

    def _deliver_one(self, client, userdata, msg) -> None:
        self._handler(  # type: ignore[misc]
            Received(msg.mid, msg.qos, msg.topic, msg.payload, _now(), self.connection, msg.retain))

    def _deliver_matching(self, client, userdata, msg) -> None:
        """Several handlers: the first subscription whose filter the topic falls under gets it (a message
        of a subscription the session holds but nobody declared goes nowhere)."""
        received = Received(msg.mid, msg.qos, msg.topic, msg.payload, _now(), self.connection, msg.retain)
        for sub in self._subscriptions:
            if _matches(sub.topic_filter, received.topic):
                sub.handler(received)
                return

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused client=%s reason=%s", self.client_id, reason_code)
            return
        if self._subscriptions:
            self._subscribe_mid = client.subscribe(
                [(s.topic_filter, _options(s, self.protocol)) for s in self._subscriptions])[1]
        if self._unsubscribe:
            client.unsubscribe(list(self._unsubscribe))
        if self.on_connect is not None:
            self.on_connect(bool(getattr(flags, "session_present", False)))

    def _subscribed(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._subscribe_mid or self.on_subscribed is None:
            return
        self.on_subscribed(tuple(str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)))

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        with self._ack_lock:
            self.connection += 1
        if self.on_disconnect is not None:
            self.on_disconnect(str(reason_code))

    # -- with a network thread -----------------------------------------------------------------
    def _connect_args(self) -> tuple[bool | int, Properties | None]:
        props = None
        clean_start: bool | int = paho.MQTT_CLEAN_START_FIRST_ONLY
        if self.protocol == MQTT_5:
            props = Properties(PacketTypes.CONNECT)
            if self.receive_maximum:
                props.ReceiveMaximum = min(self.receive_maximum, 65535)
            if self.persistent:
                props.SessionExpiryInterval = self.session_expiry_s
                clean_start = False
            else:
                clean_start = True
        return clean_start, props

    def connect(self) -> None:
        """Start the network thread and connect (retries in the background if the broker is down)."""
        clean_start, props = self._connect_args()
        self._client.connect_async(self.addr.host, self.addr.port, keepalive=KEEPALIVE_S,
                                   clean_start=clean_start, properties=props)
        self._client.loop_start()
        self._loop_started = True

    def close(self) -> None:
        """DISCONNECT, and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
        self._loop_started = False

    def drop(self) -> None:
        """Break the connection without DISCONNECT, so the broker publishes the last will. With a
        network thread, it is stopped first (no reconnecting); in the caller's loop, :meth:`open` again."""
        if self._loop_started:
            self._client.loop_stop()
            self._loop_started = False
        sock = self._client.socket()
        if sock is not None:
            try:
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    def is_connected(self) -> bool:
        return self._client.is_connected()

    # -- in the caller's own loop (no network thread) --------------------------------------------
    def open(self) -> None:
        """Connect now (blocking on the TCP connect; the first time, else reconnect), for a caller
        that runs the loop itself. Raises :class:`OSError` if the broker cannot be reached."""
        if not self._opened:
            self._opened = True
            clean_start, props = self._connect_args()
            self._client.connect(self.addr.host, self.addr.port, keepalive=KEEPALIVE_S,
                                 clean_start=clean_start, properties=props)
        else:
            self._client.reconnect()

    def disconnect(self) -> None:
        """Send DISCONNECT (the caller's loop writes it)."""
        self._client.disconnect()

    def socket(self) -> _socket.socket | None:
        """The connection's socket, for ``select``; ``None`` while not connected."""
        return self._client.socket()  # type: ignore[return-value]

    def want_write(self) -> bool:
        return self._client.want_write()

    def loop_read(self) -> None:
        self._client.loop_read()

    def loop_write(self) -> None:
        self._client.loop_write()

    def loop_misc(self) -> None:
        """Keepalive and timeouts: call about once a second or more often."""
        self._client.loop_misc()

    def loop(self, timeout: float) -> None:
        """One round for a single client: wait up to ``timeout`` s for the socket, read, write, keep alive."""
        self._client.loop(timeout)

    # -- publishing and acknowledging ------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Publication:
        return Publication(self._client.publish(topic, payload, qos=qos, retain=retain))

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """:meth:`publish` without a :class:`Publication` (nothing to wait on, nothing made per message)."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def acknowledge(self, messages: Sequence[Received]) -> int:
        """Acknowledge ``messages`` (``manual_ack``) that came in on the current connection, in one
        write; return how many QoS > 0 ones were left unacknowledged because their connection is gone.

        Packet ids belong to a connection's session: after a reconnect the broker resends what it
        kept (same ids) or, if it lost the session, numbers new messages from 1 again, so a PUBACK
        for an id of an earlier connection could acknowledge a new message that is not stored yet."""
        with self._ack_lock:
            current = self.connection
            fresh = [m for m in messages if m.connection == current]
            self.ack_many([m.mid for m in fresh if m.qos == 1])
            for m in fresh:
                if m.qos == 2:  # a QoS 2 subscription gets PUBCOMPs
                    self._client.ack(m.mid, 2)
        return sum(m.qos > 0 for m in messages) - sum(m.qos > 0 for m in fresh)

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages (``manual_ack``) with one write for all of them, whatever
        connection they came in on (:meth:`acknowledge` checks that).

        ``ack`` queues one 4-byte PUBACK per message and wakes the network thread for each (a
        system call that also hands the GIL over); here the PUBACKs are packed into one buffer
        and queued once. The bytes on the wire are the same."""
        if not mids:
            return
        # PUBACK: type 0x40, remaining length 2, packet id; one big-endian 32-bit word each.
        packet = struct.pack(f"!{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids])
        if not _queue_raw_packet(self._client, paho.PUBACK, packet):
            for mid in mids:
                self._client.ack(mid, 1)
