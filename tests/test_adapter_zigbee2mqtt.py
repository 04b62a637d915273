"""The zigbee2mqtt adapter's decoder (pure): payloads shaped as zigbee2mqtt.io documents them ("MQTT Topics
and Messages", "Device-Availability", the exposes of zigbee-herdsman-converters), and their odd cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.adapters import zigbee2mqtt as z2m
from ingest.adapters.base import Decoded, Hardware
from twin.messaging import broker
from twin.messaging.contract import MAX_PAYLOAD_BYTES

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
P = "zigbee2mqtt"


def decode(topic: str, payload: bytes | str | object, prefix: str = P) -> Decoded:
    data = payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str) \
        else orjson.dumps(payload)
    return z2m.decode(f"{prefix}/{topic}" if topic else prefix, prefix, data, NOW)


def rows(out: Decoded) -> dict[str, float]:
    """The one report's readings as {metric: value} (each metric once)."""
    [report] = out.reports
    names = [m.name for _, m, _ in report.readings]
    assert len(names) == len(set(names))
    return {m.name: v for _, m, v in report.readings}


def test_filters_take_everything_under_the_base_topic() -> None:
    assert z2m.NAME == "zigbee2mqtt"
    assert z2m.filters("zigbee2mqtt") == ("zigbee2mqtt/#",)
    assert z2m.filters("campus/hq/z2m") == ("campus/hq/z2m/#",)


# The bridge/devices example of "MQTT Topics and Messages" (trimmed of endpoints and exposes), with a
# device zigbee2mqtt names by model_id only and two broken entries.
BRIDGE_DEVICES = [
    {"ieee_address": "0x00158d00018255df", "type": "Router", "network_address": 29159, "supported": True,
     "friendly_name": "my_plug", "definition": {"model": "ZNCZ02LM", "vendor": "Xiaomi",
                                                "description": "Mi power plug ZigBee", "options": [], "exposes": []},
     "power_source": "Mains (single phase)", "date_code": "02-28-2017", "model_id": "lumi.plug",
     "interviewing": False, "interview_completed": True},
    {"ieee_address": "0x90fd9ffffe6494fc", "type": "Router", "network_address": 57440, "supported": True,
     "friendly_name": "my_bulb", "definition": {"model": "LED1624G9", "vendor": "IKEA", "exposes": []},
     "software_build_id": "1.3.009", "model_id": "TRADFRI bulb E27 CWS opal 600lm"},
    {"ieee_address": "0x00169a00022256da", "type": "Router", "network_address": 22160, "supported": False,
     "friendly_name": "my_sensor", "definition": None, "power_source": "Battery", "model_id": None},
    {"ieee_address": "0x00124b00120144ae", "type": "Coordinator", "network_address": 0, "supported": False,
     "friendly_name": "Coordinator", "definition": None, "model_id": None},
    {"ieee_address": "0x00158d0005828ece", "type": "EndDevice", "friendly_name": "floor2/lab/weather",
     "model_id": "lumi.weather"},                                   # no definition key at all
    "not a device",
    {"ieee_address": "0x1234", "type": "EndDevice", "friendly_name": "short"},
    {"ieee_address": "0x00158d0005828ecf", "type": "EndDevice", "friendly_name": None},
]


def test_bridge_devices_announce_hardware_ids_names_and_models_without_the_coordinator() -> None:
    out = decode("bridge/devices", BRIDGE_DEVICES)
    assert out.names == [
        Hardware("ieee", "00158d00018255df", "my_plug", "ZNCZ02LM"),
        Hardware("ieee", "90fd9ffffe6494fc", "my_bulb", "LED1624G9"),
        Hardware("ieee", "00169a00022256da", "my_sensor", None),
        Hardware("ieee", "00158d0005828ece", "floor2/lab/weather", "lumi.weather"),
    ]
    assert out.reports == [] and not out.ignored
    assert len(out.errors) == 3
    assert "bridge/devices[5]: not an object" in out.errors[0]
    assert "bridge/devices[6]" in out.errors[1] and "'short'" in out.errors[1] and "16 hex digits" in out.errors[1]
    assert "bridge/devices[7]: friendly_name must be text" in out.errors[2]


def test_bridge_devices_that_are_not_a_list_are_refused() -> None:
    assert "bad JSON" in decode("bridge/devices", b"[{").errors[0]
    assert "expected a JSON list" in decode("bridge/devices", {"devices": []}).errors[0]
    assert decode("bridge/devices", []).errors == [] and decode("bridge/devices", []).names == []


def test_bridge_devices_may_be_larger_than_a_telemetry_message() -> None:
    big = [{"ieee_address": f"0x00158d00{i:08x}", "type": "EndDevice", "friendly_name": f"sensor-{i}",
            "definition": {"model": "WSDCGQ11LM", "vendor": "Aqara", "exposes": [{"name": "x" * 900}]}}
           for i in range(120)]
    payload = orjson.dumps(big)
    assert len(payload) > 64 * 1024
    out = z2m.decode("zigbee2mqtt/bridge/devices", "zigbee2mqtt", payload, NOW)
    assert out.errors == [] and len(out.names) == 120
    too_big = b"[" + b" " * z2m.DEVICES_MAX_BYTES + b"]"
    assert "exceeds" in z2m.decode("zigbee2mqtt/bridge/devices", "zigbee2mqtt", too_big, NOW).errors[0]


def test_a_schools_bridge_devices_of_3_mb_decode_up_to_what_the_bundled_broker_accepts() -> None:
    # a few hundred devices with their definitions and exposes (several kB each): zigbee2mqtt reconnects
    # forever when the broker refuses its retained device list
    big = [{"ieee_address": f"0x00158d00{i:08x}", "type": "Router", "friendly_name": f"floor{i % 5}/room {i}/lamp",
            "definition": {"model": "LED1545G12", "vendor": "IKEA",
                           "exposes": [{"type": "light", "name": f"feature {j}", "description": "d" * 480}
                                       for j in range(10)]}}
           for i in range(600)]
    payload = orjson.dumps(big)
    assert 3_000_000 < len(payload) <= z2m.DEVICES_MAX_BYTES
    out = z2m.decode("zigbee2mqtt/bridge/devices", "zigbee2mqtt", payload, NOW)
    assert out.errors == [] and len(out.names) == 600
    assert out.names[599] == Hardware("ieee", "00158d0000000257", "floor4/room 599/lamp", "LED1545G12")
    assert z2m.DEVICES_MAX_BYTES == broker.MAX_PACKET_BYTES  # one limit: the list the broker takes is decoded
    assert f"max_packet_size {z2m.DEVICES_MAX_BYTES}\n" in broker.delivery_settings()
    # telemetry keeps its 64 KiB limit
    state = orjson.dumps({"temperature": 21.5, "note": "x" * MAX_PAYLOAD_BYTES})
    assert decode("my_sensor", state).errors and not decode("my_sensor", state).reports


@pytest.mark.parametrize(("topic", "payload"), [
    ("bridge/state", "online"),
    ("bridge/state", '{"state":"offline"}'),
    ("bridge/info", '{"version":"1.13.0-dev","commit":"772f6c0","log_level":"debug","permit_join":true}'),
    ("bridge/logging", '{"level": "info", "message": "Zigbee: allowing new devices to join."}'),
    ("bridge/event", ('{"type":"device_joined","data":{"friendly_name":"0x90fd9ffffe6494fc",'
                      '"ieee_address":"0x90fd9ffffe6494fc"}}')),
    ("bridge/response/permit_join", '{"data":{"value":true},"status":"ok"}'),
    ("bridge/request/permit_join", '{"value": true}'),
])
def test_other_bridge_topics_are_ignored(topic: str, payload: str) -> None:
    out = decode(topic, payload)
    assert out.ignored and out.reports == [] and out.errors == [] and out.names == []


def test_the_bridge_group_list_names_the_groups() -> None:
    out = decode("bridge/groups", '[{"id":1,"friendly_name":"my_group","members":[]},{"id":2},'
                                  '{"id":3,"friendly_name":"hall/lights","members":[]}]')
    assert (out.groups, out.reports, out.errors, out.names) == (["my_group", "hall/lights"], [], [], [])
    assert decode("bridge/groups", '{"not": "a list"}').errors == ["zigbee2mqtt bridge/groups: expected a JSON list of groups"]


@pytest.mark.parametrize("topic", [
    "lab-lamp/set", "lab-lamp/get", "lab-lamp/set/state", "lab-lamp/get/brightness", "floor1/lab/lamp/set",
    "my_switch/left/set", "0x90fd9ffffe6494fc/set/brightness",
])
def test_commands_echoing_back_are_ignored(topic: str) -> None:
    out = decode(topic, {"state": "OFF", "brightness": 0})
    assert out.ignored and out.reports == [] and out.errors == []


def test_the_plain_text_action_copy_and_cleared_retained_messages_are_ignored() -> None:
    assert decode("hall/switch/action", "single").ignored          # zigbee2mqtt's copy for Home Assistant triggers
    assert decode("hall/switch", b"").ignored                      # retained state cleared (device renamed)
    assert decode("hall/switch/availability", b"").ignored


def test_state_of_a_device_named_by_its_ieee_address_names_its_hardware() -> None:
    # "Xiaomi MiJia temperature & humidity sensor (WSDCGQ01LM)" from the documentation
    out = decode("0x00158D0001A2B3C4", {"temperature": 27.34, "humidity": 44.72})
    assert out.errors == []
    [report] = out.reports
    assert report.hardware == Hardware("ieee", "00158d0001a2b3c4", "0x00158D0001A2B3C4")
    assert report.address == "0x00158D0001A2B3C4"
    assert [(ts, m.name, v) for ts, m, v in report.readings] == [(NOW, "temperature", 27.34), (NOW, "humidity", 44.72)]
    assert report.ts_from_receive and report.state is None


def test_state_of_a_renamed_device_with_slashes_under_a_multi_level_prefix_names_its_address() -> None:
    # "IKEA TRADFRI LED bulb E27 980 lumen (LED1545G12)" from the documentation, named kitchen/floor_light
    out = decode("kitchen/floor_light", {"state": "ON", "brightness": 215, "color_temp": 325},
                 prefix="campus/hq/zigbee2mqtt")
    assert out.errors == []
    [report] = out.reports
    assert report.hardware is None and report.address == "kitchen/floor_light"
    assert rows(out) == {"on": 1.0, "dimming": pytest.approx(215 / 254 * 100)}


def test_odd_state_fields_keep_the_valid_rest() -> None:
    out = decode("lab/air", {
        "temperature": 999,            # outside the physical range: refused
        "humidity": "45.5",            # a number as text: taken
        "co2": None,                   # not reported yet: skipped
        "pm25": True,                  # not a number: refused
        "voltage": 3005, "action": "", "update": {"state": "idle"},   # not in the table: ignored
        "battery": 87, "linkquality": 120,
    })
    assert rows(out) == {"humidity": 45.5, "link_quality": 120.0}
    assert out.reports[0].battery_pct == 87.0
    assert len(out.errors) == 2
    assert "temperature" in out.errors[0] and "outside physical range" in out.errors[0]
    assert "pm25: value must be a number, got bool" in out.errors[1]


def test_battery_outside_0_to_100_is_refused_and_unknown_words_named() -> None:
    out = decode("lab/lock", {"battery": 140, "state": "LOCK", "linkquality": 300})
    assert rows(out) == {}
    assert out.reports[0].battery_pct is None
    assert len(out.errors) == 3
    assert "battery: 140 outside [0, 100]" in out.errors[0]
    assert "state: unknown value 'LOCK'" in out.errors[1]
    assert "link_quality: 300 outside physical range" in out.errors[2]


def test_illuminance_lux_wins_over_a_raw_illuminance() -> None:
    # zigbee2mqtt 1.x: Xiaomi RTCGQ11LM sent a raw illuminance next to illuminance_lux
    assert rows(decode("hall/motion", {"illuminance": 30103, "illuminance_lux": 1023, "occupancy": True})) == {
        "illuminance": 1023.0, "presence": 1.0}
    # zigbee2mqtt 2.x: illuminance is in lx; illuminance_lux null (not reported yet) leaves it in place
    assert rows(decode("hall/motion", {"illuminance": 350, "illuminance_lux": None})) == {"illuminance": 350.0}


def test_presence_wins_over_occupancy_and_booleans_map_to_0_or_1() -> None:
    assert rows(decode("room/radar", {"presence": False, "occupancy": True})) == {"presence": 0.0}
    assert rows(decode("room/pir", {"occupancy": False})) == {"presence": 0.0}


def test_air_quality_fields() -> None:
    # Aqara TVOC monitor (VOCKQJK11LM: voc in ppb) and a Tuya air box (co2, voc, pm25, formaldehyd)
    assert rows(decode("lab/tvoc", {"voc": 200, "temperature": 21.5, "humidity": 40, "battery": 100})) == {
        "tvoc": pytest.approx(0.9), "temperature": 21.5, "humidity": 40.0}
    assert rows(decode("lab/box", {"co2": 612, "eco2": 700, "voc": 10, "pm25": 12, "formaldehyd": 0.02,
                                   "noise": 41.5})) == {"co2": 612.0, "tvoc": pytest.approx(0.045), "pm25": 12.0,
                                                        "noise": 41.5}
    assert rows(decode("lab/sgp", {"eco2": 450})) == {"co2": 450.0}


def test_plug_power_in_watts_and_energy_in_kwh() -> None:
    assert rows(decode("lab/plug", {"state": "OFF", "power": 12.5, "energy": 1.234, "voltage": 230,
                                    "current": 0.05})) == {"on": 0.0, "power": 12.5, "energy": pytest.approx(1234.0)}


@pytest.mark.parametrize(("last_seen", "ts"), [
    ("2026-03-10T07:58:30.941Z", datetime(2026, 3, 10, 7, 58, 30, 941000, tzinfo=UTC)),   # ISO_8601
    ("2026-03-10T15:58:30+08:00", datetime(2026, 3, 10, 7, 58, 30, tzinfo=UTC)),           # ISO_8601_local
    (int((NOW - timedelta(seconds=90)).timestamp() * 1000), NOW - timedelta(seconds=90)),   # epoch (ms)
])
def test_last_seen_gives_the_readings_time(last_seen: object, ts: datetime) -> None:
    out = decode("lab/air", {"temperature": 22.0, "last_seen": last_seen})
    [report] = out.reports
    assert out.errors == [] and not report.ts_from_receive
    assert [(t, m.name, v) for t, m, v in report.readings] == [(ts, "temperature", 22.0)]


@pytest.mark.parametrize("last_seen", [
    "2026-03-10T09:00:00Z",             # an hour ahead of the receive time
    "2024-01-01T00:00:00Z",             # older than retention
    "2026-03-10T07:58:30",              # no zone
    "yesterday", True, {"at": 1},
])
def test_a_last_seen_that_cannot_be_placed_leaves_the_receive_time(last_seen: object) -> None:
    out = decode("lab/air", {"temperature": 22.0, "last_seen": last_seen})
    [report] = out.reports
    assert out.errors == [] and report.ts_from_receive
    assert [(t, m.name, v) for t, m, v in report.readings] == [(NOW, "temperature", 22.0)]


@pytest.mark.parametrize(("payload", "state"), [
    ('{"state":"online"}', "online"),
    ('{"state":"offline"}', "offline"),
    ("online", "online"),                # legacy_availability_payload: true
    ("offline\n", "offline"),
])
def test_availability_json_and_legacy(payload: str, state: str) -> None:
    out = decode("floor1/lab/lamp/availability", payload)
    assert out.errors == []
    [report] = out.reports
    assert (report.hardware, report.address, report.state, report.readings) == (None, "floor1/lab/lamp", state, [])


def test_availability_of_a_device_named_by_its_ieee_address() -> None:
    [report] = decode("0x90fd9ffffe6494fc/availability", '{"state":"offline"}').reports
    assert report.hardware == Hardware("ieee", "90fd9ffffe6494fc", "0x90fd9ffffe6494fc")
    assert report.state == "offline"


@pytest.mark.parametrize(("payload", "reason"), [
    ("maybe", "expected {\"state\": \"online\"|\"offline\"} or online/offline, got 'maybe'"),
    ('{"state":"unknown"}', "got '{\"state\":\"unknown\"}'"),
    ('{"state":', "bad JSON"),
    ("ONLINE ", "got 'ONLINE'"),
])
def test_bad_availability_is_refused(payload: str, reason: str) -> None:
    out = decode("lab-lamp/availability", payload)
    assert out.reports == [] and len(out.errors) == 1 and reason in out.errors[0]


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "bad JSON"),
    (b"[1, 2]", "expected a non-empty JSON object"),
    (b"{}", "expected a non-empty JSON object"),
    (b"23.5", "expected a non-empty JSON object"),
    (b'"ON"', "expected a non-empty JSON object"),
    (b"null", "expected a non-empty JSON object"),
    (b"\xff\xfe", "bad JSON"),
    (b'{"temperature": ' + b"1" * 70_000 + b"}", "exceeds"),
])
def test_state_that_is_not_a_json_object_is_refused(payload: bytes, reason: str) -> None:
    out = decode("lab/air", payload)
    assert out.reports == [] and len(out.errors) == 1 and reason in out.errors[0]
    assert "'lab/air'" in out.errors[0] or "exceeds" in out.errors[0]


def test_a_topic_naming_no_device_or_a_name_with_control_characters_is_refused() -> None:
    assert "names no device" in decode("", {"state": "ON"}).errors[0]
    assert "friendly name contains control character U+0007" in decode("lab\x07lamp", {"state": "ON"}).errors[0]
