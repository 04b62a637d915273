"""The ingest worker: MQTT in, PostgreSQL out, acknowledged only after commit.

paho's network thread puts each message on a bounded queue (a full queue blocks it,
so the broker holds what we cannot take yet). The writer thread takes batches bounded
by size and time, decodes them, writes readings with COPY plus dead letters and device
status in one transaction, commits, and only then acknowledges the messages (QoS 1,
manual acknowledgement). If the database fails, the batch is retried with backoff and
nothing is acknowledged meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from ingest.decode import decode_status, decode_telemetry
from twin import contract
from twin.database import connect
from twin.mqtt import MqttClient
from twin.storage import events, model
from twin.storage.readings import ReadingWriter, Row
from twin.storage.schema import backend

log = logging.getLogger(__name__)

BATCH_MAX = 2000
BATCH_WAIT_S = 0.2
QUEUE_MAX = 20000
RETRY_MAX_S = 30.0
STATS_EVERY_S = 30.0
DEVICE_REFRESH_S = 10.0


@dataclass(frozen=True, slots=True)
class Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(slots=True)
class Counters:
    messages: int = 0
    rows: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    batches: int = 0
    db_errors: int = 0
    lag_s: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class IngestWorker:
    """One ingest worker; ``run(stop)`` blocks until ``stop`` is set."""

    def __init__(self, database_url: str, mqtt_url: str, *, client_id: str = "campus-ingest-1",
                 batch_max: int = BATCH_MAX, batch_wait_s: float = BATCH_WAIT_S, queue_max: int = QUEUE_MAX,
                 share_group: str = contract.SHARE_GROUP) -> None:
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.client_id = client_id
        self.share_group = share_group
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=queue_max)
        self.counters = Counters()
        self.connected = threading.Event()
        self._devices: dict[tuple[str, str], int] = {}
        self._devices_loaded = 0.0
        self._conn: psycopg.Connection | None = None
        self._writer: ReadingWriter | None = None
        self._mqtt: MqttClient | None = None
        self._stopping = False

    # -- MQTT side ---------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            log.warning("ingest connect refused reason=%s", reason_code)
            return
        assert self._mqtt is not None
        filters = (contract.TELEMETRY_FILTER, contract.STATUS_FILTER)
        if self._mqtt.shared_subscriptions:
            filters = tuple(f"$share/{self.share_group}/{f}" for f in filters)
        client.subscribe([(f, 1) for f in filters])
        log.info("ingest subscribed client=%s protocol=%d filters=%s", self.client_id, self._mqtt.protocol, filters)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.connected.clear()
        if not self._stopping:
            log.warning("ingest disconnected reason=%s (reconnecting)", reason_code)

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        self.queue.put(Message(msg.mid, msg.qos, msg.topic, bytes(msg.payload), datetime.now(UTC)))

    # -- database side -----------------------------------------------------
    def _db(self) -> tuple[psycopg.Connection, ReadingWriter]:
        if self._conn is None or self._conn.closed or self._writer is None:
            self._conn = connect(self.database_url, autocommit=True)
            self._writer = ReadingWriter(self._conn, partitioned=backend(self._conn) == "postgresql")
            self._devices_loaded = 0.0
        return self._conn, self._writer

    def _device_key(self, conn: psycopg.Connection, site: str, device: str) -> int | None:
        key = self._devices.get((site, device))
        if key is None and time.monotonic() - self._devices_loaded > DEVICE_REFRESH_S:
            self._devices = model.device_keys(conn)
            self._devices_loaded = time.monotonic()
            key = self._devices.get((site, device))
        return key

    def write_batch(self, batch: list[Message]) -> None:
        """Decode and store one batch in one transaction (raises on database errors)."""
        conn, writer = self._db()
        if not self._devices:
            self._devices, self._devices_loaded = model.device_keys(conn), time.monotonic()
        rows: list[Row] = []
        letters: list[tuple[datetime, str, str, bytes]] = []
        statuses = []
        seqs: dict[int, tuple[int, int, int]] = {}
        for msg in batch:
            parts = contract.parse_topic(msg.topic)
            key = self._device_key(conn, parts.site_id, parts.device_id) if parts else None
            if parts is None:
                letters.append((msg.received_at, msg.topic, "topic outside the contract", msg.payload))
                continue
            if key is None:
                letters.append((msg.received_at, msg.topic, f"unknown device {parts.device_id!r} at site "
                                f"{parts.site_id!r}", msg.payload))
                continue
            if parts.channel == contract.STATUS:
                status = decode_status(msg.payload)
                if isinstance(status, str):
                    letters.append((msg.received_at, msg.topic, status, msg.payload))
                else:
                    statuses.append((key, status))
                continue
            if parts.channel != contract.TELEMETRY:
                continue
            decoded = decode_telemetry(msg.payload, msg.received_at)
            rows.extend((ts, key, metric.metric_id, value) for ts, metric, value in decoded.readings)
            for reason in decoded.errors:
                letters.append((msg.received_at, msg.topic, reason, msg.payload))
            if decoded.seq is not None:
                first, last, gaps = seqs.get(key, (decoded.seq, decoded.seq - 1, 0))
                gaps += max(0, decoded.seq - last - 1)
                seqs[key] = (first, max(last, decoded.seq), gaps)
        with conn.transaction():
            inserted = writer.write(rows)
            events.add_dead_letters(conn, letters)
            for key, status in statuses:
                events.update_status(conn, key, status.state, firmware=status.firmware,
                                     battery_pct=status.battery_pct, rssi_dbm=status.rssi_dbm)
            events.record_seq(conn, seqs)
        c = self.counters
        c.messages += len(batch)
        c.rows += inserted
        c.duplicates += len(rows) - inserted
        c.dead_letters += len(letters)
        c.batches += 1
        c.lag_s = (datetime.now(UTC) - batch[0].received_at).total_seconds()

    def _take_batch(self, stop: threading.Event) -> list[Message]:
        try:
            first = self.queue.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _commit_with_retry(self, batch: list[Message], stop: threading.Event) -> bool:
        delay = 0.5
        while True:
            try:
                self.write_batch(batch)
                return True
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                self.counters.db_errors += 1
                log.warning("ingest database error, retrying in %.1fs (nothing acknowledged): %s",
                            delay, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; unacknowledged messages stay with the broker."""
        self._mqtt = MqttClient(self.mqtt_url, self.client_id, persistent=True, manual_ack=True)
        client = self._mqtt.client
        client.on_connect, client.on_disconnect, client.on_message = (
            self._on_connect, self._on_disconnect, self._on_message)
        self._mqtt.connect()
        last_stats, last_messages = time.monotonic(), 0
        try:
            while not stop.is_set():
                batch = self._take_batch(stop)
                if batch:
                    if not self._commit_with_retry(batch, stop):
                        break
                    for msg in batch:
                        if msg.qos > 0:
                            client.ack(msg.mid, msg.qos)
                now = time.monotonic()
                if now - last_stats >= STATS_EVERY_S:
                    rate = (self.counters.messages - last_messages) / (now - last_stats)
                    log.info("ingest throughput client=%s msgs_per_s=%.1f rows=%d dead_letters=%d lag_s=%.3f queue=%d",
                             self.client_id, rate, self.counters.rows, self.counters.dead_letters,
                             self.counters.lag_s, self.queue.qsize())
                    last_stats, last_messages = now, self.counters.messages
        finally:
            self._stopping = True
            self._mqtt.close()
            if self._conn is not None:
                self._conn.close()
