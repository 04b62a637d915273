"""Commands to luminaires over MQTT, and their acknowledgements, through ``twin``.

A :class:`CommandBridge` holds one MQTT connection for the app. :meth:`CommandBridge.send`
stores the command (``twin.storage.commands``) and publishes ``{"id", "action", "level"}``
on ``campus/v1/{site}/{device}/cmd`` (QoS 1); the bridge listens on
``campus/v1/+/+/cmd/ack`` and stores each ``{"id", "ok", ...}`` answer against its
command, so any dashboard process can show it.

A device reached through an adapter (a route in ``twin.storage.identities``: zigbee2mqtt, ChirpStack,
The Things Stack, Tasmota) gets the command in its adapter's own form instead
(``twin.messaging.device_commands``); it is stored the same way, and acknowledged by the device's next
state when ingest stores it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import orjson
from psycopg_pool import ConnectionPool

from twin.messaging import contract, device_commands
from twin.messaging.mqtt import MqttClient, Received, Subscription
from twin.storage import commands, identities

log = logging.getLogger(__name__)

#: What a luminaire obeys (the simulator also knows "auto"; panels "standby").
LUMINAIRE_ACTIONS = device_commands.ACTIONS
LUMINAIRE_KINDS = ("luminaire", "blackboard_luminaire")
ACK_FILTER = f"{contract.PREFIX}/+/+/{contract.CMD_ACK}"
QOS_CMD = 1
CONNECT_TIMEOUT_S = 5.0


class CommandError(ValueError):
    """A command that cannot be sent (bad action or level, broker not connected)."""


def command_payload(command_id: str, action: str, level: float | None = None) -> dict[str, Any]:
    """The ``cmd`` body; ``level`` (0–100 %) only for ``dim``.

    >>> command_payload("c1", "dim", 40)
    {'id': 'c1', 'action': 'dim', 'level': 40.0}
    """
    try:
        value = device_commands.check_level(action, level)
    except device_commands.DeviceCommandError as exc:
        raise CommandError(str(exc)) from exc
    body: dict[str, Any] = {"id": command_id, "action": action}
    if value is not None:
        body["level"] = value
    return body


class CommandBridge:
    """One MQTT connection of the dashboard: publishes commands, records acknowledgements."""

    def __init__(self, mqtt_url: str, pool: ConnectionPool, *, client_id: str | None = None) -> None:
        self.pool = pool
        self.connected = threading.Event()
        self.acks = 0
        self.mqtt = MqttClient(mqtt_url, client_id or f"campus-dashboard-{uuid.uuid4().hex[:8]}", persistent=False,
                               on_connect=self._on_connect, on_disconnect=self._on_disconnect)
        self.mqtt.declare([Subscription(ACK_FILTER, self._on_message, qos=1)])

    def start(self) -> CommandBridge:
        self.mqtt.connect()
        self.connected.wait(CONNECT_TIMEOUT_S)
        return self

    def close(self) -> None:
        self.mqtt.close()

    def send(self, site_id: str, device_id: str, device_key: int, action: str, level: float | None = None, *,
             sent_by: str | None = None) -> str:
        """Store and publish a command; return its id (the ack will carry it)."""
        if not self.connected.is_set():
            raise CommandError("the MQTT broker is not connected")
        command_id = uuid.uuid4().hex
        body = command_payload(command_id, action, level)
        topic, payload, qos = contract.topic(site_id, device_id, contract.CMD), orjson.dumps(body), QOS_CMD
        with self.pool.connection() as conn:
            route = identities.route(conn, device_key)
            if route is not None:
                try:
                    topic, payload, qos = device_commands.encode(route, action, body.get("level"), command_id)
                except device_commands.DeviceCommandError as exc:
                    raise CommandError(str(exc)) from exc
            commands.record_command(conn, command_id, site_id, device_key, action, body.get("level"), sent_by=sent_by)
        self.mqtt.send(topic, payload, qos=qos)
        log.info("command sent id=%s site=%s device=%s action=%s via=%s", command_id, site_id, device_id, action,
                 route.adapter if route is not None else "native")
        return command_id

    def _on_connect(self, session_present: bool) -> None:
        self.connected.set()  # the wrapper has asked for the ack subscription already

    def _on_disconnect(self, reason: str) -> None:
        self.connected.clear()

    def _on_message(self, message: Received) -> None:
        try:
            ack = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            log.warning("ack that is not JSON topic=%s", message.topic)
            return
        if not isinstance(ack, dict) or not ack.get("id"):
            return
        try:
            with self.pool.connection() as conn:
                if commands.record_ack(conn, str(ack["id"]), bool(ack.get("ok")), ack):
                    self.acks += 1
        except Exception:
            log.exception("could not store ack topic=%s", message.topic)
