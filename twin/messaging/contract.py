"""The MQTT contract (docs/mqtt.md): topics, payload shapes, QoS.

Topics carry the contract version: ``campus/v1/{site}/{device}/{channel}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

VERSION = "v1"
PREFIX = f"campus/{VERSION}"
TELEMETRY = "telemetry"
STATUS = "status"
CMD = "cmd"
CMD_ACK = "cmd/ack"
QOS_TELEMETRY = 1
QOS_STATUS = 1
SHARE_GROUP = "campus-ingest"
TELEMETRY_FILTER = f"{PREFIX}/+/+/{TELEMETRY}"
STATUS_FILTER = f"{PREFIX}/+/+/{STATUS}"
SHARED_TELEMETRY_FILTER = f"$share/{SHARE_GROUP}/{TELEMETRY_FILTER}"
#: ``ingest --share-group auto`` (the default): see :func:`share_group_for`.
AUTO_SHARE = "auto"


def share_group_for(option: str, workers: int) -> str:
    """The share group ingest subscribes with: ``auto`` is a plain subscription (``""``) for one worker and
    :data:`SHARE_GROUP` for several; anything else as given.

    Mosquitto 2.0 restores the plain subscriptions of a persistent session after a restart, not the
    shared ones, so one worker on a plain subscription loses nothing across a broker restart (docs/mqtt.md).
    """
    if option != AUTO_SHARE:
        return option
    return "" if workers == 1 else SHARE_GROUP
#: Payloads larger than this are refused (dead letter, payload truncated).
MAX_PAYLOAD_BYTES = 64 * 1024
#: Alarm lifecycle events (raised, acknowledged, cleared) the twin publishes, per site: ``campus/v1/{site}/alarms``.
ALARMS = "alarms"
QOS_ALARMS = 1


def topic(site_id: str, device_id: str, channel: str) -> str:
    """``topic("hq", "ENV-101", "telemetry") == "campus/v1/hq/ENV-101/telemetry"``."""
    return f"{PREFIX}/{site_id}/{device_id}/{channel}"


def alarms_topic(site_id: str) -> str:
    """``alarms_topic("hq") == "campus/v1/hq/alarms"`` (4 levels: the device filters never match it)."""
    return f"{PREFIX}/{site_id}/{ALARMS}"


@dataclass(frozen=True, slots=True)
class TopicParts:
    site_id: str
    device_id: str
    channel: str


def parse_topic(name: str) -> TopicParts | None:
    """Split a contract topic; ``None`` when it is not one of ours."""
    parts = name.split("/", 4)
    if len(parts) != 5 or parts[0] != "campus" or parts[1] != VERSION:
        return None
    site_id, device_id, channel = parts[2], parts[3], parts[4]
    if not site_id or not device_id or channel not in (TELEMETRY, STATUS, CMD, CMD_ACK):
        return None
    return TopicParts(site_id, device_id, channel)


def telemetry_payload(ts: datetime, seq: int, metrics: dict[str, float]) -> bytes:
    """The native JSON telemetry payload, ``ts`` in epoch milliseconds."""
    return orjson.dumps({"ts": int(ts.timestamp() * 1000), "seq": seq, "metrics": metrics})


#: Gateways (one MQTT connection carrying many devices) report on a 6-level topic that the
#: device filters ``campus/v1/+/+/...`` never match; see docs/mqtt.md, "Additions".
GATEWAY = "_gateway"


GATEWAY_STATUS_FILTER = f"{PREFIX}/+/{GATEWAY}/+/{STATUS}"


def parse_gateway_status_topic(name: str) -> tuple[str, str] | None:
    """``(site, gateway)`` of a gateway status topic; ``None`` for any other topic."""
    parts = name.split("/")
    if (len(parts) != 6 or parts[0] != "campus" or parts[1] != VERSION or parts[3] != GATEWAY
            or parts[5] != STATUS or not parts[2] or not parts[4]):
        return None
    return parts[2], parts[4]


def gateway_status_topic(site_id: str, gateway_id: str) -> str:
    """``campus/v1/{site}/_gateway/{gateway}/status``: retained online/offline, the gateway's last will."""
    return f"{PREFIX}/{site_id}/{GATEWAY}/{gateway_id}/{STATUS}"


def status_payload(state: str, **extra: Any) -> bytes:
    """The retained status payload, ``{"state": "online"|"offline", ...}``."""
    return orjson.dumps({"state": state, **extra})
