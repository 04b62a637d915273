"""The ChirpStack v4 adapter, a pure decoder: its MQTT integration's events as ChirpStack's documentation
shows them ("Event types": up, join, status, ack, txack, log, location; protojson field names, zero values
left out), with the odd cases real ones have."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.adapters import chirpstack
from ingest.adapters.base import Decoded, Hardware, Report

PREFIX = "application/+"
APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
EUI = "0101010101010101"
RECEIVED = datetime(2022, 7, 18, 9, 34, 16, tzinfo=UTC)
TIME = datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC)  # the example's nanoseconds, to microseconds
HARDWARE = Hardware("deveui", EUI, address=APP, model="Test device-profile")

DEVICE_INFO = {
    "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
    "tenantName": "ChirpStack",
    "applicationId": APP,
    "applicationName": "Test application",
    "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
    "deviceProfileName": "Test device-profile",
    "deviceName": "Test device",
    "devEui": EUI,
    "tags": {"key": "value"},
}
#: The documentation's uplink example, as it is: no codec on the profile (no ``object``), ``fCnt`` 0 left out.
DOC_UP = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00",
    "deviceInfo": DEVICE_INFO,
    "devAddr": "00189440",
    "dr": 1,
    "fPort": 1,
    "data": "qg==",
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -36, "snr": 10.5,
                "context": "E3OWOQ==", "metadata": {"region_name": "eu868", "region_common_name": "EU868"}}],
    "txInfo": {"frequency": 867100000,
               "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5"}}},
}
#: A Milesight AM319's uplink decoded by its codec (Milesight-IoT/SensorDecoders, am-series/am319-hcho).
AM319 = {"temperature": 23.8, "humidity": 62, "pir": "trigger", "light_level": 2, "co2": 936, "tvoc": 250,
         "pressure": 1008.6, "hcho": 0.07, "pm2_5": 32, "pm10": 48, "battery": 93}
NO_CODEC = "no decoded object (is a codec set on the device profile?)"
#: Sets a field to JSON null (``None`` removes it).
NULL = object()


def topic(event: str, eui: str = EUI, app: str = APP) -> str:
    return f"application/{app}/device/{eui}/event/{event}"


def up(**changes: object) -> dict:
    """The documented uplink with a codec's ``object`` and a frame counter, changed by ``changes``
    (``None`` removes a field, :data:`NULL` makes it null)."""
    doc = copy.deepcopy(DOC_UP) | {"fCnt": 10, "object": copy.deepcopy(AM319)}
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = None if value is NULL else value
    return doc


def decode(doc: object, event: str = "up", *, eui: str = EUI, received: datetime = RECEIVED) -> Decoded:
    payload = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return chirpstack.decode(topic(event, eui), PREFIX, payload, received)


def values(report: Report) -> dict[str, float]:
    assert len({m.name for _, m, _ in report.readings}) == len(report.readings)  # one reading per metric
    return {m.name: v for _, m, v in report.readings}


def only(decoded: Decoded) -> Report:
    assert len(decoded.reports) == 1 and not decoded.ignored
    return decoded.reports[0]


def test_name_and_subscription() -> None:
    assert chirpstack.NAME == "chirpstack"
    assert chirpstack.filters("application/+") == ("application/+/device/+/event/+",)
    assert chirpstack.filters("campus/application/7") == ("campus/application/7/device/+/event/+",)


def test_an_uplink_with_a_codecs_object_becomes_readings() -> None:
    decoded = decode(up())
    assert decoded.errors == []
    report = only(decoded)
    assert report.hardware == HARDWARE
    assert values(report) == pytest.approx({"temperature": 23.8, "humidity": 62.0, "presence": 1.0, "co2": 936.0,
                                            "tvoc": 0.25, "pm25": 32.0})
    assert {ts for ts, _, _ in report.readings} == {TIME} and not report.ts_from_receive
    assert (report.seq, report.rssi_dbm, report.battery_pct, report.state) == (10, -36.0, 93.0, None)


def test_the_documented_uplink_without_a_codec_is_heard_but_says_why_nothing_is_stored() -> None:
    decoded = decode(DOC_UP)
    assert len(decoded.errors) == 1 and NO_CODEC in decoded.errors[0]
    report = only(decoded)  # the device is alive: its counter and signal are kept
    assert report.hardware == HARDWARE and report.readings == []
    assert (report.seq, report.rssi_dbm) == (0, -36.0)  # fCnt 0 is left out of protojson
    null_object = decode(up(object=NULL))
    assert len(null_object.errors) == 1 and NO_CODEC in null_object.errors[0]
    assert only(null_object).readings == [] and only(null_object).seq == 10


def test_an_uplink_without_application_data_needs_no_codec() -> None:
    decoded = decode(up(object=None, data=None, fPort=None))  # fPort 0: MAC commands only, no `data`
    assert decoded.errors == []
    assert only(decoded).readings == [] and only(decoded).seq == 10


def test_numbers_as_strings_and_the_fields_a_codec_names_otherwise() -> None:
    # Dragino LHT65's codec sends toFixed() text; BatV is a voltage, not a charge, and is not kept
    dragino = decode(up(object={"BatV": 3.05, "TempC_SHT": "22.50", "Hum_SHT": "48.1", "TempC_DS": "327.67"}))
    assert dragino.errors == []
    assert values(only(dragino)) == {"temperature": 22.5, "humidity": 48.1}
    assert only(dragino).battery_pct is None
    # Elsys ERS: light in lux, soundAvg in dB(A); a generic codec's numeric strings for everything
    elsys = decode(up(object={"temperature": 21.3, "light": 412, "motion": 3, "soundAvg": 41, "vdd": 3648}))
    assert values(only(elsys)) == {"temperature": 21.3, "illuminance": 412.0, "noise": 41.0}
    generic = decode(up(object={"co2": "612", "illuminance": " 350.5 ", "pir": "idle", "battery": "71"}))
    assert generic.errors == []
    assert values(only(generic)) == {"co2": 612.0, "illuminance": 350.5, "presence": 0.0}
    assert only(generic).battery_pct == 71.0


@pytest.mark.parametrize(("occupancy", "presence"), [(2, 1.0), (1, 1.0), (0, 0.0), (2.0, 1.0), ("2", 1.0)])
def test_an_elsys_ers_eye_occupancy_of_0_empty_1_pending_2_occupied(occupancy: float, presence: float) -> None:
    # Elsys' codec (elsys.js): occupancy 0 = unoccupied, 1 = pending (someone entering or leaving), 2 = occupied
    eye = decode(up(object={"temperature": 22.1, "humidity": 41, "light": 180, "motion": 1,
                            "occupancy": occupancy, "vdd": 3620}))
    assert eye.errors == []
    assert values(only(eye)) == {"temperature": 22.1, "humidity": 41.0, "illuminance": 180.0, "presence": presence}


def test_occupancy_beyond_the_elsys_states_is_refused() -> None:
    for beyond in (3, 1.5, -1):
        errors = decode(up(object={"occupancy": beyond})).errors
        assert len(errors) == 1 and f"object.occupancy: presence: {beyond:g} outside physical range" in errors[0]


def test_a_smart_socket_and_a_light_controller() -> None:
    # Milesight WS52x's ChirpStack codec: power in W, power_sum in Wh, state "open" (on) / "close" (off)
    socket = decode(up(object={"voltage": 229.8, "power": 35, "factor": 85, "power_sum": 2500, "current": 150,
                               "state": "open"}))
    assert socket.errors == []
    assert values(only(socket)) == {"power": 35.0, "energy": 2500.0, "on": 1.0}
    light = decode(up(object={"on": False, "dimming": 40, "energy": 12.5, "active_power": 7}))
    assert values(only(light)) == {"on": 0.0, "dimming": 40.0, "energy": 12.5, "power": 7.0}


def test_out_of_range_and_malformed_fields_are_refused_and_the_rest_kept() -> None:
    decoded = decode(up(object={"temperature": 21.0, "co2": 20000, "humidity": "wet", "pir": "maybe",
                                "battery": 140, "dimming": {"level": 3}}))
    assert values(only(decoded)) == {"temperature": 21.0}
    assert only(decoded).battery_pct is None
    errors = " | ".join(decoded.errors)
    assert len(decoded.errors) == 5
    assert "chirpstack: object.co2: co2: 20000 outside physical range [0, 10000] ppm" in errors
    assert "chirpstack: object.humidity: value must be a number, got str" in errors
    assert "chirpstack: object.pir: unknown value 'maybe'" in errors
    assert "chirpstack: object.battery: 140 outside [0, 100]" in errors
    assert "chirpstack: object.dimming: value must be a number, got dict" in errors
    not_an_object = decode(up(object=[1, 2]))
    assert not_an_object.errors == ["chirpstack: object must be an object, got list"]


def test_frame_counters() -> None:
    assert only(decode(up(fCnt=0))).seq == 0
    assert only(decode(up(fCnt=None))).seq == 0  # left out: zero
    assert only(decode(up(fCnt=2**32 - 1))).seq == 2**32 - 1
    assert only(decode(up(fCnt="17"))).seq == 17
    for bad in (2**32, -1, 1.5, "seven", True):
        decoded = decode(up(fCnt=bad))
        assert len(decoded.errors) == 1 and "chirpstack: fCnt must be an integer from 0 to 4294967295" in decoded.errors[0]
        assert only(decoded).seq is None and values(only(decoded))["co2"] == 936.0  # the rest kept


def test_one_uplink_heard_by_several_gateways_and_published_twice() -> None:
    rx = [{"gatewayId": "0016c001f153a14c", "rssi": -110, "snr": -7.2},
          {"gatewayId": "0016c001f153a14d", "rssi": -36, "snr": 10.5},
          {"gatewayId": "0016c001f153a14e", "rssi": "-87", "snr": 2}]
    first = decode(up(rxInfo=rx))
    assert first.errors == [] and only(first).rssi_dbm == -36.0
    assert decode(up(rxInfo=rx)) == first  # the same message again: the same readings, time and counter
    # another ChirpStack instance (or a re-publish) of the same uplink: its own deduplication id, gateways in
    # another order; what is stored is the same
    other = decode(up(rxInfo=list(reversed(rx)), deduplicationId="9f0c1d2e-0000-4b8d-9386-a5c902f9202d"))
    assert other == first
    assert [(ts, m.name, v) for ts, m, v in only(other).readings] == [
        (ts, m.name, v) for ts, m, v in only(first).readings]
    bad_gateway = decode(up(rxInfo=[*rx, {"gatewayId": "x", "rssi": "strong"}, "not a gateway"]))
    assert only(bad_gateway).rssi_dbm == -36.0
    assert bad_gateway.errors == ["chirpstack: rxInfo[3].rssi: 'strong' is not an RSSI in [-200, 50] dBm",
                                  "chirpstack: rxInfo[4] must be an object"]
    assert only(decode(up(rxInfo=None))).rssi_dbm is None
    assert only(decode(up(rxInfo=[{"gatewayId": "0016c001f153a14c"}]))).rssi_dbm is None  # rssi 0 left out


def test_time() -> None:
    missing = only(decode(up(time=None)))
    assert missing.ts_from_receive and {ts for ts, _, _ in missing.readings} == {RECEIVED}
    for bad, reason in (("yesterday", "not RFC 3339"), ("2022-07-18T09:34:15", "no time zone"),
                        ((RECEIVED + timedelta(hours=1)).isoformat(), "in the future")):
        decoded = decode(up(time=bad))
        assert decoded.reports == [] and len(decoded.errors) == 1
        assert decoded.errors[0].startswith("chirpstack: time ") and reason in decoded.errors[0]


def test_the_topic_and_the_message_must_name_the_same_device() -> None:
    other = decode(up(), eui="0202020202020202")
    assert other.reports == []
    assert other.errors == ["chirpstack: topic names DevEUI 0202020202020202, deviceInfo.devEui 0101010101010101"]
    assert only(decode(up(), eui="0101010101010101".upper())).hardware == HARDWARE  # the same EUI, other case
    bad = decode(up(), eui="not-an-eui")
    assert bad.reports == [] and "deveui: 'not-an-eui' is not 16 hex digits" in bad.errors[0]
    bad_body = decode(up(deviceInfo=DEVICE_INFO | {"devEui": 42}))
    assert bad_body.reports == [] and "deviceInfo.devEui must be text" in bad_body.errors[0]


def test_without_device_info_the_topic_names_the_device() -> None:
    report = only(decode(up(deviceInfo=None)))
    assert report.hardware == Hardware("deveui", EUI, address=APP, model=None)
    assert values(report)["co2"] == 936.0
    odd = only(decode(up(deviceInfo=DEVICE_INFO | {"applicationId": "a\x00b", "deviceProfileName": ""})))
    assert odd.hardware == Hardware("deveui", EUI, address=APP, model=None)  # unusable text is not kept


def test_join_and_status() -> None:
    join = {"deduplicationId": "c9dbe358-2578-4fb7-b295-66b44edc45a6",
            "time": "2022-07-18T09:33:28.823500726+00:00", "deviceInfo": DEVICE_INFO, "devAddr": "00189440"}
    decoded = decode(join, "join")
    assert decoded.errors == [] and decoded.reports == [Report(HARDWARE, state="online")]
    status = {"deduplicationId": "bf2a9746-1c8b-49be-a92e-f0b89c8534e4",
              "time": "2022-07-18T09:35:06.927172638+00:00", "deviceInfo": DEVICE_INFO,
              "margin": 10, "batteryLevel": 88.3}
    decoded = decode(status, "status")
    assert decoded.errors == [] and decoded.reports == [Report(HARDWARE, state="online", battery_pct=88.3)]
    for flags in ({"externalPowerSource": True}, {"batteryLevelUnavailable": True}, {"batteryLevel": None}):
        decoded = decode({k: v for k, v in (status | flags).items() if v is not None}, "status")
        assert decoded.errors == [] and only(decoded).battery_pct is None
    bad = decode(status | {"batteryLevel": 120}, "status")
    assert only(bad).battery_pct is None and only(bad).state == "online"
    assert bad.errors == ["chirpstack: batteryLevel: '120' is not a battery charge in [0, 100] %"]


@pytest.mark.parametrize("event", ["ack", "txack", "log", "location", "integration"])
def test_events_that_carry_nothing_for_the_twin_are_ignored(event: str) -> None:
    body = {"time": "2022-07-18T09:39:57.311414029+00:00", "deviceInfo": DEVICE_INFO, "level": "ERROR",
            "code": "UPLINK_MIC", "description": "MIC of join-request is invalid, make sure keys are correct"}
    decoded = decode(body, event)
    assert decoded.ignored and decoded.reports == [] and decoded.errors == []
    assert decode(b"not json", event).ignored


def test_bad_payloads_and_topics() -> None:
    bad_json = decode(b'{"deviceInfo": ')
    assert bad_json.reports == [] and len(bad_json.errors) == 1 and bad_json.errors[0].startswith("chirpstack: bad JSON")
    assert decode([DOC_UP]).errors == ["chirpstack: event must be a JSON object, got list"]
    assert decode(b"x" * 300_000).errors[0].startswith("chirpstack: payload of 300000 bytes exceeds")
    wrong = chirpstack.decode(f"application/{APP}/gateway/{EUI}/event/up", PREFIX, orjson.dumps(DOC_UP), RECEIVED)
    assert wrong.reports == [] and wrong.errors == [
        (f"chirpstack: topic application/{APP}/gateway/{EUI}/event/up is not "
         "<prefix>/device/<devEui>/event/<event>")]
    echo = chirpstack.decode(f"application/{APP}/device/{EUI}/command/down", PREFIX, b"{}", RECEIVED)
    assert echo.ignored and echo.errors == []  # a downlink queued through the integration, not an event


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


@pytest.mark.parametrize("event", ["up", "join", "status"])
def test_no_message_makes_the_decoder_raise(event: str) -> None:
    for variant in odd_variants(up(rxInfo=[{"gatewayId": "a", "rssi": -40}], batteryLevel=50)):
        decoded = decode(json.dumps(variant).encode(), event)  # json writes integers beyond 64 bits
        assert isinstance(decoded, Decoded)
        assert all(isinstance(e, str) and len(e) < 400 for e in decoded.errors)
