"""ChirpStack v4's MQTT integration: ``<prefix>/device/<devEui>/event/<event>`` (prefix ``application/<id>``).

Events are JSON from ChirpStack's Protocol Buffers (``integration.proto``, camelCase names, zero values left
out), as its documentation's "Event types" shows them:

- ``up``: ``{"deduplicationId", "time", "deviceInfo": {"applicationId", "deviceProfileName", "devEui", ...},
  "fCnt", "fPort", "data", "object": {...}, "rxInfo": [{"gatewayId", "rssi", "snr"}, ...]}``: readings from
  ``object`` (what the device profile's codec decoded) through ``fields/lorawan.toml``, at ``time``; ``fCnt``
  is the sequence number, the strongest ``rxInfo`` RSSI the signal. Without ``object`` (no codec, or the
  codec failed) the uplink still says the device is alive and its counter, and the reason is dead-lettered.
- ``join``: the device is online; ``status`` (its DevStatusAns): ``batteryLevel`` in %, unless
  ``externalPowerSource`` or ``batteryLevelUnavailable``.
- ``ack``, ``txack``, ``log``, ``location``, ``integration``: nothing for the twin (ignored).

ChirpStack has already merged what several gateways heard into one event (``rxInfo`` lists them); the same
uplink published twice decodes to the same readings at the same time, which storage keeps once.
"""

from __future__ import annotations

from datetime import datetime

from ingest.adapters import lorawan
from ingest.adapters.base import Decoded, Hardware, Report, load_json
from twin.identities import DEVEUI, IdentityError, adapter_filters

NAME = "chirpstack"
#: Events that carry readings or a device's state; any other event type is ignored.
_EVENTS = ("up", "join", "status")
_NO_CODEC = f"{NAME}: no decoded object (is a codec set on the device profile?)"


def filters(prefix: str) -> tuple[str, ...]:
    """The MQTT filters of ChirpStack's device events under ``prefix`` (``application/+`` by default)."""
    return adapter_filters(NAME, prefix)


def decode(topic: str, prefix: str, payload: bytes, received_at: datetime) -> Decoded:
    """One event of ChirpStack's MQTT integration (``topic`` in full, under ``prefix``)."""
    out = Decoded()
    parts = lorawan.split_topic(topic, prefix)
    rest = parts[1] if parts else []
    if len(rest) == 4 and rest[0] == "device" and rest[2] == "command":
        out.ignored = True  # a downlink queued through the integration (.../command/down), not an event
        return out
    if parts is None or len(rest) != 4 or rest[0] != "device" or rest[2] != "event":
        out.errors.append(f"{NAME}: topic {topic[:200]} is not <prefix>/device/<devEui>/event/<event>")
        return out
    event = rest[3]
    if event not in _EVENTS:
        out.ignored = True
        return out
    doc = load_json(payload, NAME)
    if isinstance(doc, str):
        out.errors.append(doc)
        return out
    if not isinstance(doc, dict):
        out.errors.append(f"{NAME}: event must be a JSON object, got {type(doc).__name__}")
        return out
    hardware = _hardware(parts[0], rest[1], doc, out.errors)
    if hardware is None:
        return out
    if event == "join":
        out.reports.append(Report(hardware, state="online"))
    elif event == "status":
        out.reports.append(_status(hardware, doc, out.errors))
    else:
        report = _uplink(hardware, doc, received_at, out.errors)
        if report is not None:
            out.reports.append(report)
    return out


def _hardware(app: str, topic_eui: str, doc: dict, errors: list[str]) -> Hardware | None:
    """The device the event is about: the topic's DevEUI, which ``deviceInfo.devEui`` must repeat."""
    info = doc.get("deviceInfo")
    info = info if isinstance(info, dict) else {}
    try:
        eui = lorawan.dev_eui(topic_eui, "topic DevEUI")
        named = info.get("devEui")
        if named is not None and (body := lorawan.dev_eui(named, "deviceInfo.devEui")) != eui:
            errors.append(f"{NAME}: topic names DevEUI {eui}, deviceInfo.devEui {body}")
            return None
    except IdentityError as exc:
        errors.append(f"{NAME}: {exc}")
        return None
    address = lorawan.text(info.get("applicationId")) or app
    return Hardware(DEVEUI, eui, address=address, model=lorawan.text(info.get("deviceProfileName")))


def _status(hardware: Hardware, doc: dict, errors: list[str]) -> Report:
    report = Report(hardware, state="online")  # the device has just answered the network server
    if doc.get("externalPowerSource") is not True and doc.get("batteryLevelUnavailable") is not True:
        report.battery_pct = lorawan.battery(doc.get("batteryLevel"), f"{NAME}: batteryLevel", errors)
    return report


def _uplink(hardware: Hardware, doc: dict, received_at: datetime, errors: list[str]) -> Report | None:
    when = lorawan.timestamp(doc.get("time"), received_at)
    if isinstance(when, str):
        errors.append(f"{NAME}: time {when.removeprefix('ts ')}")
        return None
    ts, from_receive = when
    report = Report(hardware, ts_from_receive=from_receive)
    seq = lorawan.frame_counter(doc.get("fCnt"), f"{NAME}: fCnt")
    if isinstance(seq, str):
        errors.append(seq)
    else:
        report.seq = seq
    report.rssi_dbm = lorawan.best_rssi(doc.get("rxInfo"), ("rssi",), f"{NAME}: rxInfo", errors)
    obj = doc.get("object")
    if obj is not None:
        lorawan.map_object(NAME, obj, "object", ts, report, errors)
    elif lorawan.has_payload(doc.get("data")):
        errors.append(_NO_CODEC)
    return report
