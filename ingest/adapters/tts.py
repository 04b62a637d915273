"""The Things Stack v3's MQTT server: ``v3/<application id>@<tenant id>/devices/<device id>/<event>``
(``v3/<application id>/...`` on the open-source stack; prefix ``v3/+``).

Messages are JSON from The Things Stack's Protocol Buffers (snake_case names, empty and zero values left
out), as its documentation's "Data Formats" and "MQTT Server" pages show them:

- ``up``: ``{"end_device_ids": {"device_id", "application_ids": {"application_id"}, "dev_eui", ...},
  "received_at", "uplink_message": {"f_cnt", "f_port", "frm_payload", "decoded_payload": {...},
  "rx_metadata": [{"gateway_ids", "rssi", "channel_rssi", "snr", ...}], "received_at", ...}}``: readings from
  ``decoded_payload`` (what the payload formatter decoded) through ``fields/lorawan.toml``, at the network
  server's ``received_at`` (else the application server's, else the time of receipt); ``f_cnt`` is the
  sequence number, the strongest RSSI of the gateways the signal, ``last_battery_percentage`` (3.33 and later)
  the battery unless the formatter reports one. Without ``decoded_payload`` the uplink still says the device
  is alive and its counter, and the reason is dead-lettered.
- ``join``: the device is online. Downlink events (``down/...``), ``service/data`` and ``location/solved``
  carry nothing for the twin (ignored).

The device is named by its DevEUI; ``address`` is ``<application id>@<tenant id>/<device id>``, how a
downlink reaches it again (``v3/<address's application>/devices/<device id>/down/push``).
"""

from __future__ import annotations

from datetime import datetime

from ingest.adapters import lorawan
from ingest.adapters.base import Decoded, Hardware, Report, load_json
from twin.identities import DEVEUI, IdentityError, adapter_filters

NAME = "tts"
_NO_FORMATTER = f"{NAME}: no decoded_payload (is a payload formatter set on the device or its application?)"


def filters(prefix: str) -> tuple[str, ...]:
    """The MQTT filters of The Things Stack's device messages under ``prefix`` (``v3/+`` by default):
    uplinks and joins, one topic level after the device id."""
    return adapter_filters(NAME, prefix)


def decode(topic: str, prefix: str, payload: bytes, received_at: datetime) -> Decoded:
    """One message of The Things Stack's MQTT server (``topic`` in full, under ``prefix``)."""
    out = Decoded()
    parts = lorawan.split_topic(topic, prefix)
    rest = parts[1] if parts else []
    if parts is None or len(rest) < 3 or rest[0] != "devices":
        out.errors.append(f"{NAME}: topic {topic[:200]} is not <prefix>/devices/<device id>/<event>")
        return out
    event = "/".join(rest[2:])
    if event not in ("up", "join"):
        out.ignored = True
        return out
    doc = load_json(payload, NAME)
    if isinstance(doc, str):
        out.errors.append(doc)
        return out
    if not isinstance(doc, dict):
        out.errors.append(f"{NAME}: message must be a JSON object, got {type(doc).__name__}")
        return out
    hardware = _hardware(parts[0], rest[1], doc, out.errors)
    if hardware is None:
        return out
    if event == "join":
        out.reports.append(Report(hardware, state="online"))
        return out
    report = _uplink(hardware, doc, received_at, out.errors)
    if report is not None:
        out.reports.append(report)
    return out


def _hardware(app: str, device_id: str, doc: dict, errors: list[str]) -> Hardware | None:
    """The device: ``end_device_ids.dev_eui``, the ids there agreeing with the topic's."""
    ids = doc.get("end_device_ids")
    if not isinstance(ids, dict):
        errors.append(f"{NAME}: end_device_ids must be an object")
        return None
    named = ids.get("device_id")
    if named is not None and named != device_id:
        errors.append(f"{NAME}: topic names device {device_id[:80]!r}, end_device_ids.device_id {str(named)[:80]!r}")
        return None
    app_ids = ids.get("application_ids")
    named_app = app_ids.get("application_id") if isinstance(app_ids, dict) else None
    if named_app is not None and named_app != app.partition("@")[0]:
        errors.append(f"{NAME}: topic names application {app[:80]!r}, "
                      f"end_device_ids.application_ids.application_id {str(named_app)[:80]!r}")
        return None
    if ids.get("dev_eui") is None:
        errors.append(f"{NAME}: end_device_ids.dev_eui missing (the device has no DevEUI)")
        return None
    try:
        eui = lorawan.dev_eui(ids["dev_eui"], "end_device_ids.dev_eui")
    except IdentityError as exc:
        errors.append(f"{NAME}: {exc}")
        return None
    return Hardware(DEVEUI, eui, address=f"{app}/{device_id}")


def _model(uplink: dict) -> str | None:
    """``<brand>/<model>`` of the device repository's ``version_ids``, when the uplink has them."""
    ids = uplink.get("version_ids")
    if not isinstance(ids, dict):
        return None
    brand, model = lorawan.text(ids.get("brand_id")), lorawan.text(ids.get("model_id"))
    return lorawan.text(f"{brand}/{model}") if brand and model else None


def _uplink(hardware: Hardware, doc: dict, received_at: datetime, errors: list[str]) -> Report | None:
    uplink = doc.get("uplink_message")
    if not isinstance(uplink, dict):
        errors.append(f"{NAME}: uplink_message must be an object")
        return None
    field, raw = (("uplink_message.received_at", uplink["received_at"]) if uplink.get("received_at") is not None
                  else ("received_at", doc.get("received_at")))
    when = lorawan.timestamp(raw, received_at)
    if isinstance(when, str):
        errors.append(f"{NAME}: {field} {when.removeprefix('ts ')}")
        return None
    ts, from_receive = when
    if (model := _model(uplink)) is not None:
        hardware = Hardware(hardware.kind, hardware.hardware_id, hardware.address, model)
    report = Report(hardware, ts_from_receive=from_receive)
    seq = lorawan.frame_counter(uplink.get("f_cnt"), f"{NAME}: uplink_message.f_cnt")
    if isinstance(seq, str):
        errors.append(seq)
    else:
        report.seq = seq
    report.rssi_dbm = lorawan.best_rssi(uplink.get("rx_metadata"), ("rssi", "channel_rssi"),
                                        f"{NAME}: uplink_message.rx_metadata", errors)
    last = uplink.get("last_battery_percentage")
    if isinstance(last, dict):
        report.battery_pct = lorawan.battery(last.get("value"), f"{NAME}: uplink_message.last_battery_percentage",
                                             errors)
    decoded = uplink.get("decoded_payload")
    if decoded is not None:
        lorawan.map_object(NAME, decoded, "decoded_payload", ts, report, errors)
    elif lorawan.has_payload(uplink.get("frm_payload")):
        errors.append(_NO_FORMATTER)
    return report
