"""Luminaire commands (on, off, dim) for devices reached through an adapter: pure, no I/O.

:func:`encode` turns a command into the topic, payload and QoS the device's gateway or network server
takes, per each project's documentation (docs/mqtt.md, "Commands through adapters"):

- **zigbee2mqtt**: ``{prefix}/{friendly name}/set`` with ``{"state": "ON"|"OFF"}``; dim adds
  ``"brightness"`` on Zigbee's 0–254 scale (``level * 254 / 100``, rounded half up). A friendly name of
  more than :data:`Z2M_NAME_LEVELS` levels is refused.
- **ChirpStack v4** (MQTT integration): ``application/{application id}/device/{devEui}/command/down`` with
  ``{"devEui", "confirmed": true, "fPort", "object"}``; ChirpStack turns ``object`` into bytes with the
  device profile codec's ``encodeDownlink``, so that codec must take the object
  ``{"state": "ON"|"OFF", "brightness": 0-100}`` (brightness, a whole percent, only for dim).
- **The Things Stack v3**: ``v3/{application}@{tenant}/devices/{device id}/down/push`` with one downlink
  ``{"f_port", "decoded_payload", "priority": "NORMAL", "confirmed": true}``; ``decoded_payload`` is the
  object above, encoded by the application's downlink payload formatter.
- **Tasmota**: ``cmnd/{topic}/POWER`` with ``ON``/``OFF``, ``cmnd/{topic}/Dimmer`` with the level as text
  (``40``); under a prefix, ``{prefix}/cmnd/...``.

The LoRaWAN port is the adapter's option ``fport`` (default :data:`DEFAULT_FPORT`). A ``+`` level of a
route's prefix is filled from its address: ChirpStack's address is the application id, The Things Stack's
``{application}@{tenant}/{device id}``.

>>> from twin.storage.identities import Route
>>> encode(Route("zigbee2mqtt", "zigbee2mqtt", "lab-lamp", "ieee", "00158d0001a2b3c5"), "dim", 40, "c1")
('zigbee2mqtt/lab-lamp/set', b'{"state":"ON","brightness":102}', 1)
>>> encode(Route("tasmota", "", "tasmota_1A2B3C", "tasmota", "tasmota_1A2B3C"), "off", None, "c1")
('cmnd/tasmota_1A2B3C/POWER', b'OFF', 1)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson

from twin.identities import CHIRPSTACK, TASMOTA, TTS, ZIGBEE2MQTT

if TYPE_CHECKING:
    from twin.storage.identities import Route

#: What a luminaire obeys through an adapter.
ACTIONS = ("on", "off", "dim")
#: QoS of a command published to the twin's broker (the bridge to a network server keeps its own).
QOS = 1
#: The LoRaWAN FPort of a downlink when the adapter's options name none.
DEFAULT_FPORT = 10
#: Zigbee's brightness scale: 0–254 (255 is not settable).
ZIGBEE_MAX_BRIGHTNESS = 254
#: Levels of a zigbee2mqtt friendly name the dashboard may command (``hall/lamp/set`` has two): its broker
#: account is granted ``{prefix}/+/set`` to ``{prefix}/+/+/+/set`` (``twin.messaging.mqtt_auth``); a deeper
#: name is refused here, the broker would drop the command silently.
Z2M_NAME_LEVELS = 3


class DeviceCommandError(ValueError):
    """A command that cannot be encoded: bad action or level, or a route that names no topic."""


def encode(route: Route, action: str, level: float | None, command_id: str) -> tuple[str, bytes, int]:
    """``(topic, payload, qos)`` of ``action`` (``level`` 0–100 % for ``dim``) for the device of ``route``.

    ``command_id`` is the twin's id of the command; none of these protocols carries it back (the
    acknowledgement follows the device's next state: ``twin.storage.commands.ack_from_state``)."""
    percent = check_level(action, level)
    encoder = _ENCODERS.get(route.adapter)
    if encoder is None:
        raise DeviceCommandError(f"no commands through adapter {route.adapter!r} (one of {', '.join(_ENCODERS)})")
    topic, payload = encoder(route, action, percent)
    levels = topic.split("/")
    if any(not part or part in ("+", "#") for part in levels) or "#" in topic or "+" in topic:
        raise DeviceCommandError(f"{route.adapter}: cannot address {route.hardware_id} (topic {topic!r})")
    return topic, payload, QOS


def check_level(action: str, level: float | None) -> float | None:
    """The dim level as a number 0–100, ``None`` for on/off; :class:`DeviceCommandError` for an unknown action or
    a bad level (what every luminaire command is checked by, native or through an adapter)."""
    if action not in ACTIONS:
        raise DeviceCommandError(f"unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
    if action != "dim":
        return None
    try:
        value = float(level)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not 0 <= value <= 100:  # NaN fails too
        raise DeviceCommandError(f"dim needs a level between 0 and 100, got {level!r}")
    return value


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _state(action: str, percent: float | None) -> dict[str, Any]:
    """The object ChirpStack's codec and The Things Stack's formatter encode: state, brightness in %."""
    if action == "dim":
        return {"state": "ON", "brightness": _half_up(percent)}  # type: ignore[arg-type]
    return {"state": "ON" if action == "on" else "OFF"}


def _fill(prefix: str, values: list[str]) -> str:
    """``prefix`` with its ``+`` levels replaced by ``values`` in order (all used, none missing)."""
    wild = prefix.split("/").count("+")
    if wild != len(values) or not all(values):
        raise DeviceCommandError(f"prefix {prefix!r} has {wild} '+' level(s), the route gives {values!r}")
    it = iter(values)
    return "/".join(next(it) if part == "+" else part for part in prefix.split("/"))


def _zigbee2mqtt(route: Route, action: str, percent: float | None) -> tuple[str, bytes]:
    if route.address.count("/") >= Z2M_NAME_LEVELS:
        raise DeviceCommandError(f"zigbee2mqtt: friendly name {route.address!r} has more than {Z2M_NAME_LEVELS} "
                                 f"levels: the twin commands names of at most {Z2M_NAME_LEVELS} levels "
                                 f"(rename the device in zigbee2mqtt)")
    body: dict[str, Any] = {"state": "OFF" if action == "off" else "ON"}
    if action == "dim":
        body["brightness"] = _half_up(percent * ZIGBEE_MAX_BRIGHTNESS / 100)  # type: ignore[operator]
    return f"{route.prefix}/{route.address}/set", orjson.dumps(body)


def _chirpstack(route: Route, action: str, percent: float | None) -> tuple[str, bytes]:
    application = _fill(route.prefix, [route.address] if "+" in route.prefix.split("/") else [])
    body = {"devEui": route.hardware_id, "confirmed": True, "fPort": _fport(route), "object": _state(action, percent)}
    return f"{application}/device/{route.hardware_id}/command/down", orjson.dumps(body)


def _tts(route: Route, action: str, percent: float | None) -> tuple[str, bytes]:
    application, _, device = route.address.rpartition("/")
    base = _fill(route.prefix, application.split("/") if "+" in route.prefix.split("/") else [])
    body = {"downlinks": [{"f_port": _fport(route), "decoded_payload": _state(action, percent), "priority": "NORMAL",
                           "confirmed": True}]}
    return f"{base}/devices/{device}/down/push", orjson.dumps(body)


def _tasmota(route: Route, action: str, percent: float | None) -> tuple[str, bytes]:
    head = f"{route.prefix}/cmnd" if route.prefix else "cmnd"
    if action == "dim":
        return f"{head}/{route.address}/Dimmer", str(_half_up(percent)).encode()  # type: ignore[arg-type]
    return f"{head}/{route.address}/POWER", b"ON" if action == "on" else b"OFF"


def _fport(route: Route) -> int:
    value = route.options.get("fport", DEFAULT_FPORT)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() \
            or not 1 <= int(value) <= 223:
        raise DeviceCommandError(f"{route.adapter}: option fport must be a LoRaWAN application port 1-223, "
                                 f"got {value!r}")
    return int(value)


_ENCODERS = {ZIGBEE2MQTT: _zigbee2mqtt, CHIRPSTACK: _chirpstack, TTS: _tts, TASMOTA: _tasmota}
