"""The ingest worker: MQTT in, PostgreSQL out, acknowledged only after commit.

paho's network thread puts each message on a bounded queue (a full queue blocks it,
so the broker holds what we cannot take yet). The worker's thread takes batches bounded
by size and time and decodes them (``prepare``); a store thread writes each decoded batch
(readings with COPY, dead letters, device status) in one transaction, commits, and only
then acknowledges its messages (QoS 1, manual acknowledgement). The two stages overlap:
the next batch is decoded while the database works on the last one, so Python and
PostgreSQL are busy at the same time. If the database fails, the batch is retried with
backoff and nothing is acknowledged meanwhile.

What PostgreSQL refuses for a message's own values (a data error: SQLSTATE classes 21, 22,
23 and 54) cannot succeed on a retry: the batch is then stored again in one transaction,
split in halves inside savepoints until the refused messages are alone; each goes to the
dead letters with PostgreSQL's reason (``database refused the message (SQLSTATE): ...``, its
whole payload kept), the rest is stored, and the whole batch is acknowledged (a retained
poison message cannot wedge a restart). The halves are slices of what ``prepare`` decoded
(``Prepared.ends``): the store thread never decodes, so it shares no state with the main
thread. The happy path pays nothing for this: one ``try`` around the batch's transaction
and a tuple of offsets per message. Every other database
error (connection lost, server shutting down, a permission revoked) is retried with
backoff; an error that is not the database's ends ``run`` with that error.

A message is acknowledged only on the connection it came in on. Packet ids belong to a
connection's session: after a reconnect the broker resends what it kept (same ids) or,
if it lost the session, numbers new messages from 1 again, so a PUBACK for an id of an
earlier connection could acknowledge a new message that is not stored yet.

Retained messages (device statuses) come only with a new subscription (MQTT 5 retain handling 1),
not again on every reconnect, and a retained ``online`` does not count as the device seen now.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import psycopg

from ingest.decode import Status, decode_gateway_status, decode_status, decode_telemetry
from ingest.routing import AdapterRouter, ack_state, report_status
from twin.database import DatabaseUnavailable, connect
from twin.identities import candidates
from twin.messaging import contract
from twin.messaging.mqtt import RETAIN_SEND_IF_NEW, MqttClient, Received, Subscription
from twin.metrics import BY_NAME
from twin.storage import commands, events, identities, listening, model
from twin.storage.identities import Seen
from twin.storage.readings import ReadingWriter, Row

log = logging.getLogger(__name__)

BATCH_MAX = 5000
BATCH_WAIT_S = 0.2
#: A batch is also closed when no message came for this long (the broker's window is drained).
BATCH_IDLE_S = 0.01
QUEUE_MAX = 20000
#: Unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum):
#: larger than a batch, so the broker keeps sending while we fill and commit one.
RECEIVE_MAXIMUM = 20000
RETRY_MAX_S = 30.0
STATS_EVERY_S = 30.0
DEVICE_REFRESH_S = 10.0
#: Metrics whose reported state may acknowledge a command sent through an adapter (``ingest.routing.ack_state``).
ACK_METRIC_IDS = frozenset(BY_NAME[m].metric_id for m in ("on", "dimming"))
#: Unbound RFC 9039 URNs one SenML pack may add to the list of hardware not in the twin.
URNS_LISTED_MAX = 16
#: How often ``run`` reads the sites' enabled adapters again (``campus-twin adapters enable`` while running).
ADAPTERS_REFRESH_S = 30.0
STORING = "storing"
T = TypeVar("T")
#: SQLSTATE classes of what PostgreSQL refuses for the values it is given (retrying cannot help):
#: cardinality violation, data exception, integrity constraint violation, program limit exceeded.
DATA_ERROR_CLASSES = frozenset({"21", "22", "23", "54"})
#: Errors while storing that a retry gets through: the database's, and the network's.
RETRIED = (psycopg.Error, DatabaseUnavailable, OSError)


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database (or psycopg, before sending) refusing the values of a batch:
    a data exception such as text with NUL, a constraint violated, text that cannot be encoded."""
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError | UnicodeEncodeError):
        return True
    return isinstance(exc, psycopg.Error) and (exc.sqlstate or "")[:2] in DATA_ERROR_CLASSES


def refusal(exc: BaseException) -> str:
    """The dead-letter reason of a message the database refused: PostgreSQL's own message."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    text = primary or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return f"{events.DB_REFUSED} ({sqlstate(exc)}): {text}"


def sqlstate(exc: BaseException) -> str:
    """PostgreSQL's SQLSTATE of ``exc``, or its type's name when the refusal came before the server."""
    return getattr(exc, "sqlstate", None) or type(exc).__name__


#: One received message, as the MQTT wrapper delivers it (with the connection it came in on).
Message = Received


@dataclass(slots=True)
class Counters:
    messages: int = 0
    rows: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    db_errors: int = 0
    #: Messages the database refused for their values (dead-lettered with the SQLSTATE).
    db_refused: int = 0
    #: Stored, but not acknowledged: they came in on a connection that has since been lost.
    stale_acks: int = 0
    lag_s: float = 0.0  # receive to commit, oldest message of the last batch
    data_lag_s: float = 0.0  # reading timestamp to commit, newest reading of the last batch
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Prepared:
    """A decoded batch, ready to store: what ``prepare`` made of ``batch``."""

    batch: list[Message]
    rows: list[Row] = field(default_factory=list)
    letters: list[tuple[datetime, str, str, bytes]] = field(default_factory=list)
    statuses: list[tuple[int, Status, bool]] = field(default_factory=list)  # (device key, status, retained)
    #: device key: ``(seq, device time)`` per message received (the time ``None`` when the device sent none)
    seqs: dict[int, list[tuple[int, datetime | None]]] = field(default_factory=dict)
    newest: datetime | None = None  # newest reading timestamp
    #: ``(device key, seq, device time)`` per message that has a seq, in batch order (``seqs`` grouped).
    seq_log: list[tuple[int, int, datetime | None]] = field(default_factory=list)
    #: Hardware the adapters saw (``hardware_seen``), and luminaire states that may acknowledge commands
    #: sent through an adapter: ``(device key, time, on, dimming)``.
    seen: list[Seen] = field(default_factory=list)
    acks: list[tuple[int, datetime, float | None, float | None]] = field(default_factory=list)
    #: Per message, where its parts end in ``rows``, ``letters``, ``statuses``, ``seq_log``, ``seen`` and
    #: ``acks``: a slice of messages is a slice of each (see :meth:`part`).
    ends: list[tuple[int, ...]] = field(default_factory=list)

    def part(self, lo: int, hi: int) -> Prepared:
        """Messages ``lo`` to ``hi`` (exclusive) with their decoded parts, without decoding again."""
        start = self.ends[lo - 1] if lo else (0,) * 6
        end = self.ends[hi - 1]
        seq_log = self.seq_log[start[3]:end[3]]
        out = Prepared(self.batch[lo:hi], self.rows[start[0]:end[0]], self.letters[start[1]:end[1]],
                       self.statuses[start[2]:end[2]], group_seqs(seq_log), self.newest, seq_log,
                       self.seen[start[4]:end[4]], self.acks[start[5]:end[5]],
                       [tuple(e - s for e, s in zip(ends, start, strict=True)) for ends in self.ends[lo:hi]])
        return out


def group_seqs(seq_log: list[tuple[int, int, datetime | None]]) -> dict[int, list[tuple[int, datetime | None]]]:
    """``{device key: [(seq, device time), ...]}`` in the order received."""
    seqs: dict[int, list[tuple[int, datetime | None]]] = {}
    for key, seq, ts in seq_log:
        seqs.setdefault(key, []).append((seq, ts))
    return seqs


@dataclass(slots=True)
class Stored:
    """What a batch's transaction stored: readings sent and newly inserted, dead letters written."""

    rows: int = 0
    inserted: int = 0
    letters: int = 0


class IngestWorker:
    """One ingest worker; ``run(stop)`` blocks until ``stop`` is set.

    ``share_group`` names the MQTT 5 shared subscription group; ``""`` subscribes without
    sharing (one worker only: what survives a Mosquitto restart, see docs/mqtt.md). The class
    defaults to the shared group; ``campus-twin ingest`` defaults to ``--share-group auto``, which
    passes ``""`` for one worker and the shared group for several (``--workers``).
    """

    def __init__(self, database_url: str, mqtt_url: str, *, client_id: str = "campus-ingest-1",
                 batch_max: int = BATCH_MAX, batch_wait_s: float = BATCH_WAIT_S, queue_max: int = QUEUE_MAX,
                 share_group: str = contract.SHARE_GROUP, retry_max_s: float = RETRY_MAX_S,
                 receive_maximum: int = RECEIVE_MAXIMUM, stats_every_s: float = STATS_EVERY_S) -> None:
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.client_id = client_id
        self.share_group = share_group
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.retry_max_s = retry_max_s
        self.receive_maximum = receive_maximum
        self.stats_every_s = stats_every_s
        #: Received, not yet taken into a batch: the C ``SimpleQueue`` (no lock in Python per message),
        #: bounded by ``queue_max`` in :meth:`_on_message`.
        self.queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.queue_max = queue_max
        self._taken = threading.Event()
        self.counters = Counters()
        #: Set once the broker has acknowledged the subscriptions (cleared on disconnect).
        self.connected = threading.Event()
        self._devices: dict[tuple[str, str], int] = {}
        self._devices_loaded = 0.0
        self._topics: dict[str, tuple[contract.TopicParts, int] | str] = {}
        #: The last status payload this process took per status topic: the broker's retained copy of
        #: the same payload, sent again to a new subscription (a shared one after a Mosquitto 2.0
        #: restart), is skipped rather than applied (or dead-lettered) again.
        self._last_status: dict[str, bytes] = {}
        self._conn: psycopg.Connection | None = None
        self._lookup: psycopg.Connection | None = None
        self._writer: ReadingWriter | None = None
        self._mqtt: MqttClient | None = None
        self._mqtt_subscriptions: tuple[Subscription, ...] = ()
        self._stopping = False
        #: The sites' enabled adapters (read when ``run`` starts, or at the first batch, and again every
        #: ``adapters_refresh_s`` while running).
        self._router: AdapterRouter | None = None
        self.adapters_refresh_s = ADAPTERS_REFRESH_S
        self._unrouted_heads: set[str] = set()

    # -- MQTT side ---------------------------------------------------------
    @property
    def connections_lost(self) -> int:
        """Connections to the broker lost so far (a message is acknowledged only on its own)."""
        return self._mqtt.connection if self._mqtt is not None else 0

    def _subscriptions(self, mqtt: MqttClient) -> tuple[list[Subscription], tuple[str, ...]]:
        """What to subscribe on every connect, even to a resumed session (Mosquitto 2.0 does not restore
        shared subscriptions from its persistence file after a restart, docs/mqtt.md), and the other form
        to drop: a resumed session may still hold it (an upgrade from the old shared default, or back to
        several workers), and it would deliver every message twice."""
        plain = (contract.TELEMETRY_FILTER, contract.STATUS_FILTER, contract.GATEWAY_STATUS_FILTER,
                 *(self._router.filters() if self._router is not None else ()))
        filters, other = plain, tuple(f"$share/{contract.SHARE_GROUP}/{f}" for f in plain)
        if mqtt.shared_subscriptions and self.share_group:
            filters, other = tuple(f"$share/{self.share_group}/{f}" for f in plain), plain
        # Retained statuses only when the subscription is new, not again on every reconnect to a
        # resumed session (each would be stored, and dead-lettered, again). MQTT 5 only.
        subs = [Subscription(f, self._on_message, qos=1, retain_handling=RETAIN_SEND_IF_NEW) for f in filters]
        return subs, (other if mqtt.shared_subscriptions else ())

    def _on_connect(self, session_present: bool) -> None:
        assert self._mqtt is not None
        log.info("ingest subscribed client=%s protocol=%d filters=%s session_present=%s", self.client_id,
                 self._mqtt.protocol, tuple(s.topic_filter for s in self._mqtt_subscriptions), session_present)

    def _on_subscribed(self, refused: tuple[str, ...]) -> None:
        if refused:
            log.error("ingest subscription refused client=%s reasons=%s", self.client_id, list(refused))
            return
        self.connected.set()

    def _on_disconnect(self, reason: str) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("ingest disconnected reason=%s (reconnecting)", reason)

    def _on_message(self, msg: Message) -> None:
        # Blocks while the queue is full: the broker then holds what we cannot take yet.
        while self.queue.qsize() >= self.queue_max and not self._stopping:
            self._taken.clear()
            if self.queue.qsize() >= self.queue_max:
                self._taken.wait(0.1)
        self.queue.put(msg)

    # -- database side -----------------------------------------------------
    def _db(self) -> tuple[psycopg.Connection, ReadingWriter]:
        if self._conn is None or self._conn.closed or self._writer is None:
            self._conn = connect(self.database_url, autocommit=True)
            try:
                self._writer = ReadingWriter(self._conn)  # finds its backend: partitions or hypertable
            except BaseException:
                self._conn.close()  # e.g. BackendUnusable: retried on a new connection
                raise
            self._devices_loaded = 0.0
        return self._conn, self._writer

    def _lookup_db(self) -> psycopg.Connection:
        """The connection ``prepare`` looks devices up on (not the one a batch is being stored on)."""
        if self._lookup is None or self._lookup.closed:
            self._lookup = connect(self.database_url, autocommit=True)
        return self._lookup

    def _device_key(self, site: str, device: str) -> int | None:
        key = self._devices.get((site, device))
        if key is None and time.monotonic() - self._devices_loaded > DEVICE_REFRESH_S:
            self._devices = model.device_keys(self._lookup_db())
            self._devices_loaded = time.monotonic()
            self._topics.clear()
            key = self._devices.get((site, device))
        return key

    def _route(self, topic: str) -> tuple[contract.TopicParts, int] | str:
        """``(topic parts, device key)`` of a topic, or the dead-letter reason (cached per topic)."""
        hit = self._topics.get(topic)
        if hit is not None:
            return hit
        parts = contract.parse_topic(topic)
        if parts is None:
            return "topic outside the contract"
        key = self._device_key(parts.site_id, parts.device_id)
        if key is None:
            return f"unknown device {parts.device_id!r} at site {parts.site_id!r}"
        if len(self._topics) > 1_000_000:
            self._topics.clear()
        self._topics[topic] = (parts, key)
        return parts, key

    def prepare(self, batch: list[Message]) -> Prepared:
        """Decode and validate a batch into rows, dead letters, statuses and seq ranges.

        Touches the database only to look up devices not yet known (raises on database errors).
        """
        if not self._devices:
            self._devices, self._devices_loaded = model.device_keys(self._lookup_db()), time.monotonic()
        router = self.router()
        out = Prepared(batch)
        rows, letters, statuses, seq_log, ends = out.rows, out.letters, out.statuses, out.seq_log, out.ends
        newest: datetime | None = None
        taken: dict[str, bytes] = {}  # status payloads of this batch (kept only once it is decoded whole)
        for msg in batch:
            received_at = datetime.fromtimestamp(msg.received_at, UTC)
            config = None if msg.topic.startswith(contract.PREFIX) else router.config_for(msg.topic)
            route = "" if config is not None else self._route(msg.topic)
            if msg.retain and self._replayed(msg, taken):
                pass
            elif config is None and not msg.topic.startswith(contract.PREFIX):
                self._unrouted(msg.topic)
            elif config is not None:
                if msg.retain:
                    taken[msg.topic] = msg.payload
                last = self._adapter_message(router, config, msg, received_at, out)
                if last is not None and (newest is None or last > newest):
                    newest = last
            elif isinstance(route, str):
                gateway = contract.parse_gateway_status_topic(msg.topic)
                if gateway is None:
                    letters.append((received_at, msg.topic, route, msg.payload))
                else:
                    taken[msg.topic] = msg.payload
                    self._gateway_status(gateway[0], msg, received_at, out)
            elif route[0].channel == contract.STATUS:
                taken[msg.topic] = msg.payload
                status = decode_status(msg.payload)
                if isinstance(status, str):
                    letters.append((received_at, msg.topic, status, msg.payload))
                else:
                    # a mixed status keeps its state and valid fields; each bad field is a dead letter
                    statuses.append((route[1], status, msg.retain))
                    for reason in status.errors:
                        letters.append((received_at, msg.topic, reason, msg.payload))
            elif route[0].channel == contract.TELEMETRY:
                parts, key = route
                decoded = decode_telemetry(msg.payload, received_at, parts.device_id)
                for ts, metric, value in decoded.readings:
                    rows.append((ts, key, metric.metric_id, value))
                if decoded.readings:
                    last_ts = decoded.readings[-1][0]
                    if newest is None or last_ts > newest:
                        newest = last_ts
                # A device speaks only for itself (its topic is all the broker's ACL lets it write):
                # SenML records naming another device are refused, not stored as that device's.
                listed = 0
                for device in dict.fromkeys(d for d, _, _, _ in decoded.foreign):
                    found = router.resolve_urn(device) if device.lower().startswith("urn:") else None
                    if found is not None and found.device_key == key:  # its own hardware id (RFC 9039 URN)
                        rows.extend((ts, key, m.metric_id, v) for d, ts, m, v in decoded.foreign if d == device)
                    elif found is None and (urn := next(iter(candidates(device)), None)) is not None:
                        # publishing but not in the twin: listed for a planner to bind (its readings not kept);
                        # a few per message (one pack must not fill the list)
                        if listed < URNS_LISTED_MAX:
                            listed += 1
                            out.seen.append(Seen(parts.site_id, urn[0], urn[1], "senml", parts.device_id, None,
                                                 received_at, 1))
                    else:
                        decoded.errors.append(f"SenML record names device {device[:60]!r}; a device publishes only "
                                              f"its own readings (topic device {parts.device_id!r})")
                for reason in decoded.errors:
                    letters.append((received_at, msg.topic, reason, msg.payload))
                if decoded.seq is not None:
                    # the device's time tells a reboot from reordering (twin.sequence); a receive time cannot
                    sent = decoded.readings[0][0] if decoded.readings and not decoded.ts_from_receive else None
                    seq_log.append((key, decoded.seq, sent))
            ends.append((len(rows), len(letters), len(statuses), len(seq_log), len(out.seen), len(out.acks)))
        out.seqs = group_seqs(seq_log)
        out.newest = newest
        if taken:
            if len(self._last_status) > 1_000_000:
                self._last_status.clear()
            self._last_status.update(taken)
        return out

    def router(self) -> AdapterRouter:
        """The sites' enabled adapters, read from the database once (``run`` reads them before subscribing)."""
        if self._router is None:
            self._router = AdapterRouter(identities.adapters(self._lookup_db()), self._lookup_db)
        return self._router

    def _reload_adapters(self) -> None:
        """Read the sites' enabled adapters again; when they changed, route and subscribe by the new ones.
        A database error leaves the current ones in place until the next try."""
        try:
            configs = identities.adapters(self._lookup_db())
        except RETRIED as exc:
            log.warning("ingest could not read the sites' adapters (kept as they were): %s", exc)
            return
        if self._router is None or tuple(configs) == self._router.configs or self._mqtt is None:
            return
        log.info("ingest adapters changed: %s", ", ".join(f"{c.site_id}:{c.adapter}:{c.prefix}" for c in configs))
        self._router = AdapterRouter(configs, self._lookup_db)
        subscriptions, _ = self._subscriptions(self._mqtt)
        self._mqtt_subscriptions = tuple(subscriptions)
        self._mqtt.resubscribe(subscriptions)

    def _unrouted(self, topic: str) -> None:
        """A message under no enabled adapter's prefix: an adapter disabled while ingest was stopped (its
        persistent session still holds the subscription). Ignored, said once per topic's first level."""
        head = topic.split("/", 1)[0]
        if head not in self._unrouted_heads and len(self._unrouted_heads) < 1000:
            self._unrouted_heads.add(head)
            log.warning("ingest ignores messages under %r/...: no enabled adapter takes them (disabled? "
                        "campus-twin adapters list)", head)
        self.counters.extra["unrouted"] = self.counters.extra.get("unrouted", 0) + 1

    def _adapter_message(self, router: AdapterRouter, config: identities.AdapterConfig, msg: Message,
                         received_at: datetime, out: Prepared) -> datetime | None:
        """Decode a message of an adapter's topics into ``out``; the newest reading time it brought."""
        routed = router.route(config, msg.topic, msg.payload, received_at)
        out.seen.extend(routed.seen)
        newest = None
        rows = out.rows
        for key, report in routed.reports:
            if msg.retain and report.ts_from_receive:
                # a retained state without its own time is the broker's copy of an old message (a new subscription
                # gets it again): dated now, it would make a sensor that died long ago look current
                report.readings, report.seq = [], None
            acked = False
            for ts, metric, value in report.readings:
                rows.append((ts, key, metric.metric_id, value))
                if newest is None or ts > newest:
                    newest = ts
                acked = acked or metric.metric_id in ACK_METRIC_IDS
            if acked and (state := ack_state(key, report.readings)) is not None:
                out.acks.append(state)
            if (status := report_status(report)) is not None:
                out.statuses.append((key, status, msg.retain))
            if report.seq is not None:
                sent = report.readings[0][0] if report.readings and not report.ts_from_receive else None
                out.seq_log.append((key, report.seq, sent))
        for reason in routed.errors:
            out.letters.append((received_at, msg.topic, reason, msg.payload))
        return newest

    def _replayed(self, msg: Message, taken: dict[str, bytes]) -> bool:
        """Whether a retained message repeats the status this process last took on its topic."""
        last = taken.get(msg.topic)
        if last is None:
            last = self._last_status.get(msg.topic)
        return last == msg.payload

    def _gateway_status(self, site_id: str, msg: Message, received_at: datetime, out: Prepared) -> None:
        """A gateway going offline (its last will) takes its devices offline; online changes nothing
        (each device reports its own status through the gateway). A bad device id is a dead letter;
        the gateway's other devices still go offline."""
        decoded = decode_gateway_status(msg.payload)
        if isinstance(decoded, str):
            out.letters.append((received_at, msg.topic, decoded, msg.payload))
            return
        for reason in decoded.errors:
            out.letters.append((received_at, msg.topic, reason, msg.payload))
        if decoded.state != "offline":
            return
        for device_id in decoded.devices:
            key = self._device_key(site_id, device_id)
            if key is not None:
                out.statuses.append((key, Status("offline"), msg.retain))

    def store(self, prepared: Prepared) -> int:
        """Write a prepared batch in one transaction and count it; return the readings newly stored.

        A data error isolates the messages the database refuses (:meth:`_isolate`); other database
        errors are raised (the caller retries)."""
        conn, writer = self._db()
        try:
            with conn.transaction():
                done = self._write(conn, writer, prepared)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            done = self._isolate(conn, writer, prepared, exc)
        c = self.counters
        c.messages += len(prepared.batch)
        c.rows += done.inserted
        c.duplicates += done.rows - done.inserted
        c.dead_letters += done.letters
        c.batches += 1
        now = time.time()
        c.lag_s = now - prepared.batch[0].received_at
        if prepared.newest is not None:
            c.data_lag_s = now - prepared.newest.timestamp()
        return done.inserted

    @staticmethod
    def _write(conn: psycopg.Connection, writer: ReadingWriter, prepared: Prepared) -> Stored:
        """The batch's statements, inside the caller's transaction (or savepoint)."""
        inserted = writer.write(prepared.rows)
        events.add_dead_letters(conn, prepared.letters)
        events.update_statuses(conn, events.merge_statuses(
            [(key, s.state, s.firmware, s.battery_pct, s.rssi_dbm, retained) for key, s, retained in prepared.statuses]))
        events.record_seq(conn, prepared.seqs)
        identities.note_seen(conn, prepared.seen)
        if prepared.acks:
            commands.ack_from_state(conn, prepared.acks)
        return Stored(len(prepared.rows), inserted, len(prepared.letters))

    def _isolate(self, conn: psycopg.Connection, writer: ReadingWriter, prepared: Prepared,
                 error: BaseException) -> Stored:
        """Store ``prepared`` again in one transaction, bisecting it inside savepoints down to the
        messages the database refuses; those become dead letters with the database's reason."""
        self.counters.db_errors += 1
        log.warning("ingest batch of %d messages refused by the database, isolating the offending messages: %s",
                    len(prepared.batch), refusal(error))
        done, refused = Stored(), []
        # A partition made in a rolled-back transaction or savepoint is made again by the writer.
        with conn.transaction():
            self._bisect(conn, writer, prepared, 0, len(prepared.batch), error, done, refused)
            letters = [(datetime.fromtimestamp(msg.received_at, UTC), msg.topic, refusal(exc), msg.payload)
                       for msg, exc in refused]
            events.add_dead_letters(conn, letters)
        done.letters += len(letters)
        self.counters.db_refused += len(refused)
        for msg, exc in refused:
            log.warning("ingest message refused by the database, dead-lettered sqlstate=%s topic=%s bytes=%d "
                        "reason=%s", sqlstate(exc), msg.topic, len(msg.payload), refusal(exc))
        return done

    def _bisect(self, conn: psycopg.Connection, writer: ReadingWriter, prepared: Prepared, lo: int, hi: int,
                error: BaseException | None, done: Stored, refused: list[tuple[Message, BaseException]]) -> None:
        """Store messages ``lo`` to ``hi`` of ``prepared`` in a savepoint, or (on a data error, or ``error``
        already known for them) their halves; a single message refused is added to ``refused``."""
        if error is None:
            try:
                with conn.transaction():
                    stored = self._write(conn, writer, prepared.part(lo, hi))
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                error = exc
            else:
                done.rows += stored.rows
                done.inserted += stored.inserted
                done.letters += stored.letters
                return
        if hi - lo == 1:
            refused.append((prepared.batch[lo], error))
            return
        half = (lo + hi) // 2
        self._bisect(conn, writer, prepared, lo, half, None, done, refused)
        self._bisect(conn, writer, prepared, half, hi, None, done, refused)

    def write_batch(self, batch: list[Message]) -> None:
        """Decode and store one batch in one transaction (raises on database errors)."""
        self.store(self.prepare(batch))

    def _take_batch(self, stop: threading.Event) -> list[Message]:
        """Up to ``batch_max`` messages: closed at the size, after ``batch_wait_s``, or when the
        queue stays empty for ``BATCH_IDLE_S`` (no point waiting for what is not coming)."""
        try:
            first = self.queue.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        get_nowait = self.queue.get_nowait
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            try:
                batch.append(get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.queue.get(timeout=min(remaining, BATCH_IDLE_S)))
            except queue.Empty:
                break
        self._taken.set()
        return batch

    def _retry(self, step: Callable[[], T], stop: threading.Event, what: str) -> T | None:
        """``step()`` until it gets through the database errors (backoff up to ``retry_max_s``);
        ``None`` when ``stop`` is set first. Nothing is acknowledged meanwhile."""
        delay = 0.5
        while True:
            try:
                return step()
            except RETRIED as exc:
                self.counters.db_errors += 1
                transient = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | DatabaseUnavailable
                                       | OSError)
                log.log(logging.WARNING if transient else logging.ERROR,
                        "ingest database error while %s, retrying in %.1fs (nothing acknowledged): %s: %s", what,
                        delay, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                conn = self._conn if what == STORING else self._lookup
                if conn is not None:
                    conn.close()
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, self.retry_max_s)

    def _store_and_ack(self, prepared: Prepared, halt: threading.Event) -> None:
        """On the store thread: commit (retrying until ``halt``), then acknowledge the batch's messages."""
        if self._retry(lambda: self.store(prepared), halt, STORING) is None:
            return
        assert self._mqtt is not None
        # Only what came in on the current connection (packet ids belong to a connection's session).
        if stale := self._mqtt.acknowledge(prepared.batch):
            self.counters.stale_acks += stale
            log.info("ingest stored %d messages of a lost connection without acknowledging them "
                     "(a resumed session resends them; they are stored once)", stale)

    def log_stats(self, elapsed_s: float, messages_before: int) -> None:
        c = self.counters
        log.info("ingest throughput client=%s msgs_per_s=%.1f messages=%d rows=%d duplicates=%d dead_letters=%d "
                 "db_errors=%d db_refused=%d lag_s=%.3f data_lag_s=%.3f queue=%d", self.client_id,
                 (c.messages - messages_before) / max(elapsed_s, 1e-9), c.messages, c.rows, c.duplicates,
                 c.dead_letters, c.db_errors, c.db_refused, c.lag_s, c.data_lag_s, self.queue.qsize())

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; unacknowledged messages stay with the broker."""
        self._mqtt = MqttClient(self.mqtt_url, self.client_id, persistent=True, manual_ack=True,
                                receive_maximum=self.receive_maximum, on_connect=self._on_connect,
                                on_disconnect=self._on_disconnect, on_subscribed=self._on_subscribed)
        if self._retry(self.router, stop, "reading the sites' adapters") is None:
            return
        subscriptions, drop = self._subscriptions(self._mqtt)
        self._mqtt_subscriptions = tuple(subscriptions)
        self._mqtt.declare(subscriptions, unsubscribe=drop)
        self._mqtt.connect()
        last_stats, last_messages = time.monotonic(), 0
        last_adapters = time.monotonic()
        # Two stages: this thread decodes the next batch while the store thread commits the last
        # one, so the database's work overlaps Python's. One batch in each at most, in order.
        store_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{self.client_id}-store")
        storing: Future[None] | None = None
        # Ends the store thread's retries when this loop ends, by ``stop`` or by an exception.
        halt = threading.Event()
        # Records that this worker listens (its own thread and connection: never holds ingest up).
        heartbeat = listening.Heartbeat(self.database_url, self.client_id)
        heartbeat.start()
        try:
            while not stop.is_set():
                heartbeat.alive(self.connected.is_set())
                batch = self._take_batch(stop)
                if storing is not None and storing.done():
                    storing.result()  # a store error that is not the database's surfaces now, not at the next batch
                if batch:
                    prepared = self._retry(partial(self.prepare, batch), stop, "looking up devices")
                    if prepared is None:
                        break
                    if storing is not None:
                        _wait_for_store(storing, stop, halt)
                    storing = store_thread.submit(self._store_and_ack, prepared, halt)
                now = time.monotonic()
                if now - last_adapters >= self.adapters_refresh_s:
                    last_adapters = now
                    self._reload_adapters()
                if now - last_stats >= self.stats_every_s:
                    self.log_stats(now - last_stats, last_messages)
                    last_stats, last_messages = now, self.counters.messages
        finally:
            heartbeat.stop()
            self._stopping = True
            halt.set()
            store_thread.shutdown(wait=True)  # a batch being stored is committed and acknowledged
            if storing is not None and storing.done() and storing.exception() is not None:
                log.error("ingest store thread failed: %s", storing.exception())
            self._mqtt.close()
            for conn in (self._conn, self._lookup):
                if conn is not None:
                    conn.close()


def _wait_for_store(storing: Future[None], stop: threading.Event, halt: threading.Event) -> None:
    """Wait for the store thread's batch; once ``stop`` is set, ``halt`` its retries (a database
    that stays down must not keep the worker from stopping). Raises what the store raised."""
    while True:
        try:
            return storing.result(timeout=0.2)
        except TimeoutError:
            if stop.is_set():
                halt.set()
