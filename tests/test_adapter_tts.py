"""The Things Stack v3 adapter, a pure decoder: its MQTT server's messages as The Things Stack's
documentation shows them ("Data Formats" and "MQTT Server": join-accept and uplink messages, zero and empty
fields left out), with the odd cases real ones have."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.adapters import tts
from ingest.adapters.base import Decoded, Hardware, Report

PREFIX = "v3/+"
RECEIVED = datetime(2020, 2, 12, 15, 15, 47, tzinfo=UTC)
NS_TIME = datetime(2020, 2, 12, 15, 15, 45, 789585, tzinfo=UTC)  # uplink_message.received_at, to microseconds
HARDWARE = Hardware("deveui", "0004a30b001c0530", address="app1@tenant1/dev1")
NO_FORMATTER = "no decoded_payload (is a payload formatter set on the device or its application?)"
NULL = object()

IDS = {"device_id": "dev1", "application_ids": {"application_id": "app1"}, "dev_eui": "0004A30B001C0530",
       "join_eui": "800000000000000C", "dev_addr": "00BCB929"}
#: "Data Formats", the uplink message example, as it is (``f_port`` left out there; decoded by a formatter).
DOC_UP = {
    "end_device_ids": IDS,
    "correlation_ids": ["as:up:01E0WZGT6Y7657CPFPE5WEYDSQ", "gs:conn:01E0WDEC6T5T4XXBAX7S1VMFKE",
                        "gs:uplink:01E0WZGSZWT07NE5TS2APTV1Z9", "ns:uplink:01E0WZGSZXZXZS8RFAWZX0F2FY",
                        "rpc:/ttn.lorawan.v3.GsNs/HandleUplink:01E0WZGSZXGE1KS577PFBWRJEE"],
    "received_at": "2020-02-12T15:15:46.014773143Z",
    "uplink_message": {
        "session_key_id": "AXA50tHUGUucuzS/bCGMNw==",
        "f_cnt": 1,
        "frm_payload": "gkHe",
        "decoded_payload": {"temperature": 1.0, "luminosity": 0.64},
        "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"},
                         "time": "2020-02-12T15:15:45.787Z", "timestamp": 2463457000, "rssi": -35,
                         "channel_rssi": -35, "snr": 5, "uplink_token": "ChIKEAoEZ3R3MRIInFyOAAAaBcQQ6L3Vlgk=",
                         "channel_index": 2}],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "data_rate_index": 5,
                     "coding_rate": "4/6", "frequency": "868300000", "timestamp": 2463457000,
                     "time": "2020-02-12T15:15:45.787Z"},
        "consumed_airtime": "0.056576s",
        "locations": {"user": {"latitude": 37.97155556731436, "longitude": 23.72678801175413, "altitude": 10,
                               "source": "SOURCE_REGISTRY"}},
        "received_at": "2020-02-12T15:15:45.789585559Z",
    },
}
#: "MQTT Server", the uplink example: no formatter (no decoded_payload), no f_cnt (0), no received_at.
MQTT_UP = {
    "end_device_ids": {"device_id": "dev1", "application_ids": {"application_id": "app1"},
                       "dev_eui": "4200000000000000", "join_eui": "4200000000000000", "dev_addr": "01DA1F15"},
    "correlation_ids": ["gs:conn:01D2CSNX7FJVKQPCVG612QF1TX", "as:up:01D2CV8HNGJ57G25BW0FCZNY07"],
    "uplink_message": {
        "session_key_id": "AWiZpAyXrAfEkUNkBljRoA==", "f_port": 15, "frm_payload": "VGVtcGVyYXR1cmUgPSAwLjA=",
        "rx_metadata": [{"gateway_ids": {"gateway_id": "eui-0242020000247803", "eui": "0242020000247803"},
                         "time": "2019-01-29T13:02:34.981Z", "timestamp": 1283325000, "rssi": -35, "snr": 5,
                         "uplink_token": "CiIKIAoUZXVpLTAyNDIwMjAwMDAyNDc4MDMSCAJCAgAAJHgDEMj49+ME"}],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "coding_rate": "4/6",
                     "frequency": "868500000", "gateway_channel_index": 2, "device_channel_index": 2},
    },
}


def up(**changes: object) -> dict:
    """The documented uplink, its ``uplink_message`` fields changed by ``changes`` (``None`` removes one,
    :data:`NULL` makes it null)."""
    doc = copy.deepcopy(DOC_UP)
    for key, value in changes.items():
        if value is None:
            doc["uplink_message"].pop(key, None)
        else:
            doc["uplink_message"][key] = None if value is NULL else value
    return doc


def decode(doc: object, event: str = "up", *, app: str = "app1@tenant1", device: str = "dev1",
           received: datetime = RECEIVED) -> Decoded:
    payload = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return tts.decode(f"v3/{app}/devices/{device}/{event}", PREFIX, payload, received)


def values(report: Report) -> dict[str, float]:
    assert len({m.name for _, m, _ in report.readings}) == len(report.readings)
    return {m.name: v for _, m, v in report.readings}


def only(decoded: Decoded) -> Report:
    assert len(decoded.reports) == 1 and not decoded.ignored
    return decoded.reports[0]


def test_name_and_subscription() -> None:
    assert tts.NAME == "tts"
    assert tts.filters("v3/+") == ("v3/+/devices/+/+",)
    assert tts.filters("v3/school-7@ttn") == ("v3/school-7@ttn/devices/+/+",)


def test_the_documented_uplink() -> None:
    decoded = decode(DOC_UP)
    assert decoded.errors == []
    report = only(decoded)
    assert report.hardware == HARDWARE
    assert values(report) == {"temperature": 1.0}  # "luminosity" is no field of the table
    assert {ts for ts, _, _ in report.readings} == {NS_TIME} and not report.ts_from_receive
    assert (report.seq, report.rssi_dbm, report.battery_pct, report.state) == (1, -35.0, None, None)


def test_an_uplink_of_a_device_from_the_device_repository() -> None:
    # A newer uplink (The Things Stack 3.34 and later): version_ids, the last battery percentage; an
    # AM319 decoded by Milesight's formatter, numbers partly as strings
    doc = up(f_port=85, f_cnt=14,
             decoded_payload={"temperature": "23.8", "humidity": 62, "pir": "idle", "co2": "936", "tvoc": 400,
                              "pm2_5": 12, "light_level": 2, "battery": 91},
             version_ids={"brand_id": "milesight-iot", "model_id": "am319", "hardware_version": "1.0",
                          "firmware_version": "1.1", "band_id": "EU_863_870"},
             last_battery_percentage={"f_cnt": 14, "value": 90.118576, "received_at": "2020-02-12T15:15:45Z"})
    decoded = decode(doc)
    assert decoded.errors == []
    report = only(decoded)
    assert report.hardware == Hardware("deveui", "0004a30b001c0530", address="app1@tenant1/dev1",
                                       model="milesight-iot/am319")
    assert values(report) == pytest.approx({"temperature": 23.8, "humidity": 62.0, "presence": 0.0, "co2": 936.0,
                                            "tvoc": 0.4, "pm25": 12.0})
    assert report.battery_pct == 91.0  # the device's own report wins over the network server's estimate
    del doc["uplink_message"]["decoded_payload"]["battery"]
    assert only(decode(doc)).battery_pct == 90.118576


def test_the_mqtt_example_without_formatter_counter_or_times() -> None:
    decoded = decode(MQTT_UP, device="dev1")
    assert len(decoded.errors) == 1 and NO_FORMATTER in decoded.errors[0]
    report = only(decoded)  # heard: alive, counter and signal kept
    assert report.hardware == Hardware("deveui", "4200000000000000", address="app1@tenant1/dev1")
    assert report.readings == [] and report.ts_from_receive
    assert (report.seq, report.rssi_dbm) == (0, -35.0)  # f_cnt 0 is left out
    null = decode(up(decoded_payload=NULL))
    assert len(null.errors) == 1 and NO_FORMATTER in null.errors[0] and only(null).seq == 1
    no_data = decode(up(decoded_payload=None, frm_payload=None, f_port=None))  # MAC commands only
    assert no_data.errors == [] and only(no_data).readings == []


def test_time_comes_from_the_network_server_then_the_application_server_then_receipt() -> None:
    top = only(decode(up(received_at=None)))
    assert {ts for ts, _, _ in top.readings} == {datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC)}
    doc = up(received_at=None)
    del doc["received_at"]
    neither = only(decode(doc))
    assert neither.ts_from_receive and {ts for ts, _, _ in neither.readings} == {RECEIVED}
    for bad, reason in (("soon", "not RFC 3339"), ((RECEIVED + timedelta(hours=2)).isoformat(), "in the future"),
                        ((RECEIVED - timedelta(days=500)).isoformat(), "older than 400 days")):
        decoded = decode(up(received_at=bad))
        assert decoded.reports == [] and len(decoded.errors) == 1
        assert decoded.errors[0].startswith("tts: uplink_message.received_at ") and reason in decoded.errors[0]


def test_frame_counters() -> None:
    assert only(decode(up(f_cnt=None))).seq == 0
    assert only(decode(up(f_cnt=2**32 - 1))).seq == 2**32 - 1
    assert only(decode(up(f_cnt="42"))).seq == 42
    for bad in (2**32, -3, 2.5, [1]):
        decoded = decode(up(f_cnt=bad))
        assert len(decoded.errors) == 1
        assert "tts: uplink_message.f_cnt must be an integer from 0 to 4294967295" in decoded.errors[0]
        assert only(decoded).seq is None and values(only(decoded)) == {"temperature": 1.0}


def test_one_uplink_heard_by_several_gateways_and_published_twice() -> None:
    rx = [{"gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"}, "rssi": -112, "channel_rssi": -112,
           "snr": -9.5},
          {"gateway_ids": {"gateway_id": "gtw2", "eui": "9C5C8E00001A05C5"}, "rssi": -81, "channel_rssi": -79,
           "snr": 7},
          {"gateway_ids": {"gateway_id": "packetbroker"}, "channel_rssi": "-95", "snr": 1.25}]
    first = decode(up(rx_metadata=rx))
    assert first.errors == [] and only(first).rssi_dbm == -79.0  # the best of rssi and channel_rssi
    assert decode(up(rx_metadata=rx)) == first  # the same message twice: the same readings, time and counter
    again = up(rx_metadata=list(reversed(rx)))
    again["correlation_ids"] = ["as:up:01E0WZGT6Y7657CPFPE5WEYDSR"]
    assert decode(again) == first
    odd = decode(up(rx_metadata=[*rx, {"gateway_ids": {"gateway_id": "gtw3"}, "rssi": 90}]))
    assert only(odd).rssi_dbm == -79.0
    assert odd.errors == ["tts: uplink_message.rx_metadata[3].rssi: '90' is not an RSSI in [-200, 50] dBm"]
    assert only(decode(up(rx_metadata=None))).rssi_dbm is None
    assert decode(up(rx_metadata={"rssi": -40})).errors == ["tts: uplink_message.rx_metadata must be a list, got dict"]


def test_out_of_range_and_malformed_fields_are_refused_and_the_rest_kept() -> None:
    decoded = decode(up(decoded_payload={"temperature": 21.5, "humidity": 120, "co2": None, "state": "half",
                                         "noise": "loud", "illumination": -4}))
    assert values(only(decoded)) == {"temperature": 21.5}  # null: not reported yet
    assert decoded.errors == [
        "tts: decoded_payload.humidity: humidity: 120 outside physical range [0, 100] %RH",
        "tts: decoded_payload.state: unknown value 'half'",
        "tts: decoded_payload.noise: value must be a number, got str",
        "tts: decoded_payload.illumination: illuminance: -4 outside physical range [0, 200000] lx"]
    assert decode(up(decoded_payload="23.5")).errors == ["tts: decoded_payload must be an object, got str"]
    bad_battery = decode(up(last_battery_percentage={"value": "full"}))
    assert bad_battery.errors == [("tts: uplink_message.last_battery_percentage: 'full' is not a battery charge "
                                   "in [0, 100] %")]


def test_the_device_must_be_named_consistently() -> None:
    doc = copy.deepcopy(DOC_UP)
    del doc["end_device_ids"]["dev_eui"]
    missing = decode(doc)
    assert missing.reports == [] and missing.errors == ["tts: end_device_ids.dev_eui missing (the device has no DevEUI)"]
    doc["end_device_ids"]["dev_eui"] = "00-04-A3-0B-00-1C-05"
    assert "deveui: '00-04-A3-0B-00-1C-05' is not 16 hex digits" in decode(doc).errors[0]
    other = decode(DOC_UP, device="dev2")
    assert other.reports == [] and other.errors == ["tts: topic names device 'dev2', end_device_ids.device_id 'dev1'"]
    app = decode(DOC_UP, app="app2@tenant1")
    assert app.reports == [] and app.errors == [
        "tts: topic names application 'app2@tenant1', end_device_ids.application_ids.application_id 'app1'"]
    no_ids = decode({"uplink_message": DOC_UP["uplink_message"]})
    assert no_ids.reports == [] and no_ids.errors == ["tts: end_device_ids must be an object"]
    no_uplink = decode({"end_device_ids": IDS, "received_at": "2020-02-12T15:15:46Z"})
    assert no_uplink.reports == [] and no_uplink.errors == ["tts: uplink_message must be an object"]


def test_the_open_source_stack_names_no_tenant() -> None:
    report = only(decode(DOC_UP, app="app1"))
    assert report.hardware == Hardware("deveui", "0004a30b001c0530", address="app1/dev1")


def test_join() -> None:
    join = {"end_device_ids": IDS | {"dev_addr": "01497ECC"},
            "correlation_ids": ["as:up:01E191YN5F2HMBQCBCVRF731VY", "gs:conn:01E191S6ZEWB630NTR45K5QN4Q"],
            "received_at": "2020-02-17T07:49:09.935284891Z",
            "join_accept": {"session_key_id": "AXBSH1Pk6Z0G166RlH16CQ==",
                            "received_at": "2020-02-17T07:49:09.736532315Z"}}
    decoded = decode(join, "join")
    assert decoded.errors == [] and decoded.reports == [Report(HARDWARE, state="online")]


@pytest.mark.parametrize("event", ["down/queued", "down/sent", "down/ack", "down/nack", "down/failed",
                                   "service/data", "location/solved", "down/push"])
def test_other_messages_are_ignored(event: str) -> None:
    ack = {"end_device_ids": IDS, "correlation_ids": ["my-correlation-id"],
           "downlink_ack": {"session_key_id": "AWnj0318qrtJ7kbudd8Vmw==", "f_port": 15, "f_cnt": 11,
                            "frm_payload": "vu8=", "confirmed": True, "priority": "NORMAL"}}
    decoded = decode(ack, event)
    assert decoded.ignored and decoded.reports == [] and decoded.errors == []


def test_bad_payloads_and_topics() -> None:
    bad = decode(b'{"end_device_ids": {')
    assert bad.reports == [] and len(bad.errors) == 1 and bad.errors[0].startswith("tts: bad JSON")
    assert decode(b"[]").errors == ["tts: message must be a JSON object, got list"]
    wrong = tts.decode("v3/app1@tenant1/gateways/gtw1/up", PREFIX, orjson.dumps(DOC_UP), RECEIVED)
    assert wrong.reports == [] and wrong.errors == [
        "tts: topic v3/app1@tenant1/gateways/gtw1/up is not <prefix>/devices/<device id>/<event>"]


def odd_variants(doc: dict) -> list[dict]:
    """``doc`` with each field, nested ones too, replaced in turn by a value of another shape."""
    odd = (None, "", "²", [], {}, [None], -1, 2**70, 1e308, True, "x" * 300)
    out: list[dict] = []

    def walk(node: dict, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            for replacement in odd:
                variant = copy.deepcopy(doc)
                target = variant
                for step in path:
                    target = target[step]
                target[key] = replacement
                out.append(variant)
            if isinstance(value, dict):
                walk(value, (*path, key))

    walk(doc, ())
    return out


@pytest.mark.parametrize("event", ["up", "join"])
def test_no_message_makes_the_decoder_raise(event: str) -> None:
    for variant in odd_variants(up(last_battery_percentage={"value": 50, "f_cnt": 3})):
        decoded = decode(json.dumps(variant).encode(), event)  # json writes integers beyond 64 bits
        assert isinstance(decoded, Decoded)
        assert all(isinstance(e, str) and len(e) < 400 for e in decoded.errors)
