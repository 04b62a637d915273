"""Alarm notifications: lifecycle events out on MQTT (``campus/v1/{site}/alarms``) and an optional webhook.

The ``alarm_events`` table is the outbox: :func:`send_pending` publishes every event not
yet notified (raised and cleared by the monitor, acknowledged from the dashboard or the
CLI) as one JSON object, QoS 1, POSTs the same JSON to the webhook when one is set, and
marks the events sent. A webhook that fails is retried a few times and then logged; it
never stops the monitor. MQTT delivery is confirmed (PUBACK) before an event is marked.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import orjson
import psycopg

from twin import contract
from twin.mqtt import MqttClient
from twin.storage import alarms

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 0.5
PUBLISH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0

_FIELDS = ("event", "at", "by", "note", "alarm_id", "site_id", "rule", "severity", "state", "message", "standard",
           "value", "raised_at", "cleared_at", "room", "room_id", "device_id")


def event_payload(event: Mapping[str, Any]) -> bytes:
    """The JSON of one lifecycle event (times as RFC 3339 strings)."""
    return orjson.dumps({k: event.get(k) for k in _FIELDS})


def post_webhook(url: str, body: bytes, *, attempts: int = WEBHOOK_ATTEMPTS, timeout: float = WEBHOOK_TIMEOUT_S,
                 backoff: float = WEBHOOK_BACKOFF_S) -> bool:
    """POST ``body`` as JSON; retry on errors and 5xx; True when a 2xx answer came back."""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "campus-twin"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
                if 200 <= response.status < 300:
                    return True
                reason = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code < 500:
                attempts = attempt  # a client error will not get better
        except (urllib.error.URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
        log.warning("alarm webhook failed attempt=%d/%d reason=%s", attempt, attempts, reason)
        if attempt < attempts:
            time.sleep(backoff * attempt)
    return False


class Notifier:
    """Sends the outbox; MQTT connection opened on first use and kept."""

    def __init__(self, mqtt_url: str | None, webhook_url: str | None = None, *,
                 client_id: str = "campus-monitor") -> None:
        self.mqtt_url = mqtt_url
        self.webhook_url = webhook_url
        self.client_id = client_id
        self._mqtt: MqttClient | None = None
        self._connected = threading.Event()
        self.sent = 0

    def _client(self) -> MqttClient | None:
        if not self.mqtt_url:
            return None
        if self._mqtt is None:
            self._mqtt = MqttClient(self.mqtt_url, self.client_id, persistent=False)
            self._mqtt.client.on_connect = lambda *a: self._connected.set()
            self._mqtt.client.on_disconnect = lambda *a: self._connected.clear()
            self._mqtt.connect()
        return self._mqtt if self._connected.wait(CONNECT_TIMEOUT_S) else None

    def send_pending(self, conn: psycopg.Connection) -> int:
        """Publish and post the events not yet notified; return how many were marked sent."""
        events = alarms.pending_events(conn)
        if not events:
            return 0
        client = self._client()
        if self.mqtt_url and client is None:
            log.warning("alarm notifications held back: MQTT broker not connected")
            return 0
        done = []
        for event in events:
            body = event_payload(event)
            if client is not None:
                info = client.client.publish(contract.alarms_topic(event["site_id"]), body, qos=contract.QOS_ALARMS)
                try:
                    info.wait_for_publish(PUBLISH_TIMEOUT_S)
                except (RuntimeError, ValueError) as exc:
                    log.warning("alarm notification not published: %s", exc)
                    break
                if not info.is_published():
                    log.warning("alarm notification not acknowledged by the broker in %.0f s", PUBLISH_TIMEOUT_S)
                    break
            if self.webhook_url and not post_webhook(self.webhook_url, body):
                log.error("alarm webhook gave up event=%s alarm=%s", event["event"], event["alarm_id"])
            done.append(event["event_id"])
        alarms.mark_notified(conn, done)
        conn.commit()
        self.sent += len(done)
        return len(done)

    def close(self) -> None:
        if self._mqtt is not None:
            self._mqtt.close()
            self._mqtt = None
