"""Alarm notifications: lifecycle events out on MQTT (``campus/v1/{site}/alarms``) and an optional webhook.

The ``alarm_events`` table is the outbox. The monitor cycle only records events (raised and
cleared by the monitor, acknowledged from the dashboard or the CLI) and wakes the notifier;
the notifier's own worker thread (:meth:`Notifier.start`, owned by the monitor service)
delivers them, oldest first, one at a time: publish one JSON object, QoS 1 (confirmed by
PUBACK), POST the same JSON to the webhook when one is set, then mark that event sent. A
webhook that hangs or answers 5xx is retried with a growing backoff (capped) until it
answers, so every event is delivered exactly once and in order; a 4xx answer will not get
better and is logged and skipped. A hanging webhook holds the outbox, never a monitor cycle.

With channels configured (:mod:`twin.monitoring.channels`: WeCom, DingTalk, Feishu, e-mail), each
event taken out of the outbox is queued for its channels in the same transaction, and the same worker
sends the channels' queues, rate-limited and retried per channel (a slow robot holds only its own queue).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

from twin.database import DatabaseUnavailable, connect
from twin.messaging import contract
from twin.messaging.mqtt import MqttClient, PublishError
from twin.storage import alarms

if TYPE_CHECKING:
    from twin.monitoring.channels.dispatch import Dispatcher

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 0.5
#: The longest wait between two attempts of the worker at one event.
WEBHOOK_MAX_BACKOFF_S = 60.0
PUBLISH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
#: How often the worker looks at the outbox when nobody wakes it (events acknowledged elsewhere).
POLL_S = 5.0
#: How long :meth:`Notifier.close` lets the worker deliver what is pending before it stops it.
CLOSE_DRAIN_S = 5.0
#: The advisory lock a notifier holds while it delivers (:func:`twin.storage.alarms.lock_outbox`).
OUTBOX_LOCK = alarms.OUTBOX_LOCK
#: Events read from the outbox at a time.
BATCH = 500

_FIELDS = ("event", "at", "by", "note", "alarm_id", "site_id", "rule", "severity", "state", "message", "standard",
           "value", "raised_at", "known_at", "cleared_at", "room", "room_id", "device_id")


def event_payload(event: Mapping[str, Any]) -> bytes:
    """The JSON of one lifecycle event (times as RFC 3339 strings)."""
    return orjson.dumps({k: event.get(k) for k in _FIELDS})


def post_once(url: str, body: bytes, *, timeout: float = WEBHOOK_TIMEOUT_S) -> str | None:
    """POST ``body`` as JSON once; ``None`` when a 2xx answer came back, else why not (``"HTTP 4xx"`` is final)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "campus-twin"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc)) or type(exc).__name__


def _final(reason: str) -> bool:
    """A client error (4xx) will not get better with retries."""
    return reason.startswith("HTTP 4")


def post_webhook(url: str, body: bytes, *, attempts: int = WEBHOOK_ATTEMPTS, timeout: float = WEBHOOK_TIMEOUT_S,
                 backoff: float = WEBHOOK_BACKOFF_S, stop: threading.Event | None = None) -> bool:
    """POST ``body`` as JSON; retry on errors and 5xx; True when a 2xx answer came back."""
    stop = stop or threading.Event()
    for attempt in range(1, attempts + 1):
        reason = post_once(url, body, timeout=timeout)
        if reason is None:
            return True
        log.warning("alarm webhook failed attempt=%d/%d reason=%s", attempt, attempts, reason)
        if _final(reason) or attempt == attempts or stop.wait(backoff * attempt):
            return False
    return False


class Notifier:
    """Delivers the outbox from its own worker thread; MQTT connection opened on first use and kept."""

    def __init__(self, mqtt_url: str | None, webhook_url: str | None = None, *,
                 client_id: str = "campus-monitor", webhook_timeout_s: float = WEBHOOK_TIMEOUT_S,
                 backoff_s: float = WEBHOOK_BACKOFF_S, max_backoff_s: float = WEBHOOK_MAX_BACKOFF_S,
                 poll_s: float = POLL_S, channels: Dispatcher | None = None) -> None:
        self.mqtt_url = mqtt_url
        self.channels = channels
        self.webhook_url = webhook_url
        self.client_id = client_id
        self.webhook_timeout_s = webhook_timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_s = poll_s
        self._mqtt: MqttClient | None = None
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        #: The event already published on MQTT whose webhook is still being retried (no second publish).
        self._published: int | None = None
        self.sent = 0

    # -- the worker ----------------------------------------------------------------------------------
    def start(self, url: str) -> None:
        """Start the worker on the database at ``url`` (once; later calls wake it).

        The worker is a plain thread: an unexpected exception ends it through
        :data:`threading.excepthook` (:func:`twin.process.exit_on_thread_death` ends the process).
        """
        if self._thread is None:
            self._url = url
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
            self._thread.start()
        self.wake()

    def wake(self) -> None:
        """New events were recorded: look at the outbox now."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        assert self._url is not None
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            channels_wait: float | None = None
            try:
                with connect(self._url) as conn:
                    if alarms.lock_outbox(conn):  # released when the connection closes
                        complete = self._deliver(conn, retry_webhook=False)
                        channels_wait = self.channels.deliver(conn) if self.channels is not None else None
                    else:
                        log.debug("alarm notifications: another notifier is delivering the outbox")
                        complete = True
            except (DatabaseUnavailable, psycopg.OperationalError) as exc:  # the database away: try again later
                log.warning("alarm notifications: database unavailable: %s", str(exc).splitlines()[0] if str(exc)
                            else type(exc).__name__)
                complete = False
            if complete:
                failures = 0
                self._wake.wait(self.poll_s if channels_wait is None else min(self.poll_s, channels_wait))
            else:
                failures += 1
                self._stop.wait(min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1)))

    def _deliver(self, conn: psycopg.Connection, *, retry_webhook: bool) -> bool:
        """Deliver pending events in order, each marked (and committed) once delivered; stop at the first
        one that could not be. Return whether the outbox was emptied.

        With ``retry_webhook``, the webhook gets :data:`WEBHOOK_ATTEMPTS` attempts per event (one pass,
        for a command); without, one attempt (the worker backs off and comes back)."""
        while True:
            events = alarms.pending_events(conn, limit=BATCH)
            if not events:
                return True
            if not self._deliver_batch(conn, events, retry_webhook=retry_webhook):
                return False
            if len(events) < BATCH:
                return True

    def _deliver_batch(self, conn: psycopg.Connection, events: list[dict[str, Any]], *, retry_webhook: bool) -> bool:
        client = self._connected_client()
        if self.mqtt_url and client is None:
            log.warning("alarm notifications held back: MQTT broker not connected")
            return False
        for event in events:
            if self._stop.is_set():
                return False
            body = event_payload(event)
            if client is not None and self._published != event["event_id"]:
                info = client.publish(contract.alarms_topic(event["site_id"]), body, qos=contract.QOS_ALARMS)
                try:
                    info.wait_for_publish(PUBLISH_TIMEOUT_S)
                except PublishError as exc:
                    log.warning("alarm notification not published: %s", exc)
                    return False
                if not info.is_published():
                    log.warning("alarm notification not acknowledged by the broker in %.0f s", PUBLISH_TIMEOUT_S)
                    return False
                self._published = event["event_id"]
            if self.webhook_url and not self._post(event, body, retry=retry_webhook):
                return False
            if self.channels is not None:
                self.channels.queue(conn, event)
            alarms.mark_notified(conn, [event["event_id"]])
            conn.commit()
            self._published = None
            self.sent += 1
        return True

    def _post(self, event: Mapping[str, Any], body: bytes, *, retry: bool) -> bool:
        """Whether the event is done with the webhook: delivered, or refused for good (4xx, logged)."""
        assert self.webhook_url is not None
        attempts = WEBHOOK_ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            reason = post_once(self.webhook_url, body, timeout=self.webhook_timeout_s)
            if reason is None:
                return True
            if _final(reason):
                log.error("alarm webhook refused event=%s alarm=%s reason=%s; not retried", event["event"],
                          event["alarm_id"], reason)
                return True
            log.warning("alarm webhook failed event=%s alarm=%s reason=%s (retried)", event["event"],
                        event["alarm_id"], reason)
            if attempt < attempts and self._stop.wait(self.backoff_s * attempt):
                break
        return False

    # -- one pass, for a command ------------------------------------------------------------------------
    def send_pending(self, conn: psycopg.Connection) -> int:
        """Deliver the pending events now, in order (a few webhook attempts each); return how many were marked.

        For a one-shot command; what is not delivered stays in the outbox for the service's worker."""
        if not alarms.lock_outbox(conn):
            log.info("alarm notifications left to the notifier delivering the outbox now")
            return 0
        before = self.sent
        try:
            self._deliver(conn, retry_webhook=True)
            conn.commit()
            if self.channels is not None:
                self.channels.deliver(conn)
        finally:
            alarms.unlock_outbox(conn)
        return self.sent - before

    def _connected_client(self) -> MqttClient | None:
        if not self.mqtt_url:
            return None
        if self._mqtt is None:
            self._mqtt = MqttClient(self.mqtt_url, self.client_id, persistent=False,
                                    on_connect=lambda session_present: self._connected.set(),
                                    on_disconnect=lambda reason: self._connected.clear())
            self._mqtt.connect()
        return self._mqtt if self._connected.wait(CONNECT_TIMEOUT_S) else None

    def close(self, drain_s: float = CLOSE_DRAIN_S) -> None:
        """Stop the worker (after at most ``drain_s`` more of delivering what is pending), then disconnect."""
        thread = self._thread
        if thread is not None:
            self._drain(drain_s)
            self._stop.set()
            self._wake.set()
            thread.join(self.webhook_timeout_s + PUBLISH_TIMEOUT_S + 1.0)
            if thread.is_alive():
                log.warning("alarm notifier still busy at its stop; left behind")
            self._thread = None
        if self._mqtt is not None:
            self._mqtt.close()
            self._mqtt = None

    def _drain(self, drain_s: float) -> None:
        """Wait up to ``drain_s`` for the outbox to be empty (a ``--once`` run's events go out before the exit)."""
        if drain_s <= 0 or self._url is None or not self.running:
            return
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.running:
            try:
                with connect(self._url) as conn:
                    if not alarms.pending_events(conn, limit=1):
                        return
            except (DatabaseUnavailable, psycopg.OperationalError):
                return
            self._wake.set()
            self._stop.wait(0.05)
