"""The Tasmota adapter's decoder (pure): payloads shaped as Tasmota's documentation shows them (the sensors'
pages, JSON Status Responses, the console of a Sonoff TH16), and their odd cases."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest.adapters import tasmota
from ingest.adapters.base import Decoded, Hardware

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def decode(topic: str, payload: bytes | str | object, prefix: str = "") -> Decoded:
    data = payload if isinstance(payload, bytes) else payload.encode() if isinstance(payload, str) \
        else orjson.dumps(payload)
    return tasmota.decode(f"{prefix}/{topic}" if prefix else topic, prefix, data, NOW)


def rows(out: Decoded) -> dict[str, float]:
    """The one report's readings as {metric: value} (each metric once, all at the receive time)."""
    [report] = out.reports
    assert report.ts_from_receive and all(ts == NOW for ts, _, _ in report.readings)
    names = [m.name for _, m, _ in report.readings]
    assert len(names) == len(set(names))
    return {m.name: v for _, m, v in report.readings}


def test_filters_under_no_prefix_and_under_one() -> None:
    assert tasmota.NAME == "tasmota"
    assert tasmota.filters("") == ("tele/+/SENSOR", "tele/+/STATE", "tele/+/LWT", "stat/+/RESULT", "stat/+/POWER")
    assert tasmota.filters("school7/+") == ("school7/+/tele/+/SENSOR", "school7/+/tele/+/STATE",
                                            "school7/+/tele/+/LWT", "school7/+/stat/+/RESULT",
                                            "school7/+/stat/+/POWER")


def test_am2301_sensor_names_the_device_by_its_topic() -> None:
    # docs/AM2301.md
    out = decode("tele/lab-th16/SENSOR", {"Time": "2019-01-01T00:00:00", "AM2301": {"Temperature": 24.6,
                                                                                     "Humidity": 58.2},
                                          "TempUnit": "C"})
    assert out.errors == []
    [report] = out.reports
    assert report.hardware == Hardware("tasmota", "lab-th16", "lab-th16") and report.address == "lab-th16"
    assert rows(out) == {"temperature": 24.6, "humidity": 58.2}


def test_energy_power_in_watts_and_total_in_kwh() -> None:
    # docs: a Sonoff POW R2's SENSOR
    out = decode("tele/pow-1/SENSOR", {"Time": "2018-02-15T17:37:10", "ENERGY": {
        "TotalStartTime": "2018-11-14T18:39:40", "Total": 6.294, "Yesterday": 5.340, "Today": 0.954, "Period": 217,
        "Power": 2635, "ApparentPower": 2650, "ReactivePower": 282, "Factor": 0.99, "Voltage": 227,
        "Current": 11.661}})
    assert out.errors == []
    assert rows(out) == {"energy": pytest.approx(6294.0), "power": 2635.0}


def test_a_multi_channel_meter_s_power_is_summed() -> None:
    # a Shelly 2.5: one Power per channel
    out = decode("tele/shelly25/SENSOR", {"ENERGY": {"Total": 0.5, "Power": [12.5, "7.5"], "Voltage": [230, 230]}})
    assert out.errors == [] and rows(out) == {"energy": pytest.approx(500.0), "power": 20.0}
    bad = decode("tele/shelly25/SENSOR", {"ENERGY": {"Power": [12.5, "x"]}})
    assert rows(bad) == {} and "ENERGY: Power: value must be a number, got list" in bad.errors[0]


def test_scd40_carbon_dioxide_wins_over_its_eco2() -> None:
    # docs/SCD4x.md
    out = decode("tele/class-2f-01/SENSOR", {"Time": "2024-01-01T10:31:09", "SCD40": {
        "CarbonDioxide": 1204, "eCO2": 1235, "Temperature": 28.8, "Humidity": 47.5, "DewPoint": 16.5},
        "TempUnit": "C"})
    assert out.errors == [] and rows(out) == {"co2": 1204.0, "temperature": 28.8, "humidity": 47.5}


def test_iaq_eco2_and_tvoc_in_ppb() -> None:
    # docs/IAQ.md
    out = decode("tele/iaq/SENSOR", {"Time": "2020-01-01T00:00:00", "IAQ": {"eCO2": 450, "TVOC": 125,
                                                                           "Resistance": 76827}})
    assert out.errors == [] and rows(out) == {"co2": 450.0, "tvoc": pytest.approx(0.5625)}


@pytest.mark.parametrize(("sensor", "lux"), [("BH1750", 79), ("TSL2561", 21.180)])
def test_illuminance(sensor: str, lux: float) -> None:
    # docs/BH1750.md, docs/TSL2561.md
    out = decode("tele/desk-lux/SENSOR", f'{{"Time":"2019-11-03T20:45:37","{sensor}":{{"Illuminance":{lux}}}}}')
    assert out.errors == [] and rows(out) == {"illuminance": float(lux)}


def test_pms5003_pm25_next_to_htu21() -> None:
    # docs/JSON-Status-Responses.md "PMS5003 and HTU21"
    out = decode("tele/air/SENSOR", {"Time": "2018-02-16T16:22:12", "HTU21": {"Temperature": 24.7, "Humidity": 32.1},
                                     "PMS5003": {"CF1": 1, "CF2.5": 2, "CF10": 2, "PM1": 1, "PM2.5": 2, "PM10": 2,
                                                 "PB0.3": 423, "PB0.5": 116, "PB1": 17, "PB2.5": 1, "PB5": 0,
                                                 "PB10": 0},
                                     "TempUnit": "C"})
    assert out.errors == [] and rows(out) == {"temperature": 24.7, "humidity": 32.1, "pm25": 2.0}


def test_fahrenheit_is_converted_and_the_first_of_two_sensors_is_kept() -> None:
    # docs/JSON-Status-Responses.md "SHT3X (and DHT11, multiple Sensor example)", TempUnit F
    out = decode("tele/th/SENSOR", {"Time": "2018-02-07T20:16:19", "DHT11": {"Temperature": 78.8, "Humidity": 27.0},
                                    "SHT3X": {"Temperature": 74.8, "Humidity": 18.9}, "TempUnit": "F"})
    assert out.errors == [] and rows(out) == {"temperature": pytest.approx(26.0), "humidity": 27.0}
    assert rows(decode("tele/th/SENSOR", {"SHT3X": {"Temperature": "-40"}, "TempUnit": "F"})) == {
        "temperature": pytest.approx(-40.0)}


def test_the_esp32_chip_temperature_is_no_room_temperature() -> None:
    # docs/Teleinfo.md: an ESP32 reading a meter
    out = decode("tele/tic/SENSOR", {"Time": "2021-10-26T17:28:45", "ENERGY": {
        "TotalStartTime": "2021-10-25T15:22:04", "Total": 9098.245, "Yesterday": 6822.685, "Today": 2275.560,
        "Period": 9, "Power": 170, "Current": 1.000, "Load": 6},
        "TIC": {"ADCO": "021528603314", "PAPP": 170}, "ESP32": {"Temperature": 36.1}, "TempUnit": "C"})
    assert out.errors == [] and rows(out) == {"energy": pytest.approx(9098245.0), "power": 170.0}


def test_older_firmware_s_top_level_fields() -> None:
    # docs/JSON-Status-Responses.md "Sonoff SC": Noise and Light are relative levels, not kept
    out = decode("tele/sc/SENSOR", {"Time": "2018-02-16T16:18:49", "Temperature": 25, "Humidity": 83, "Light": 10,
                                    "Noise": 20, "AirQuality": 100, "TempUnit": "C"})
    assert out.errors == [] and rows(out) == {"temperature": 25.0, "humidity": 83.0}


def test_odd_sensor_fields_keep_the_valid_rest() -> None:
    out = decode("tele/lab/SENSOR", {"Time": "2026-03-10T09:00:00", "SHT3X": {
        "Temperature": "21.5",       # a number as text
        "Humidity": 140,             # outside the physical range
        "DewPoint": None, "Pressure": 1000},
        "BH1750": {"Illuminance": None},
        "SCD30": {"CarbonDioxide": "lots", "Temperature": 30.0}})
    assert rows(out) == {"temperature": 21.5}
    assert len(out.errors) == 2
    assert out.errors[0].startswith("tasmota SHT3X: Humidity: humidity: 140 outside physical range")
    assert out.errors[1].startswith("tasmota SCD30: CarbonDioxide: value must be a number, got str")


def test_state_power_dimmer_and_wifi_signal() -> None:
    # a Sonoff TH16's console: "tele/TH16/STATE = {...}" (Wifi RSSI is a 0-100 quality, no Signal yet)
    out = decode("tele/TH16/STATE", {"Time": "2018-03-02T18:25:02", "Uptime": "0T00:00:19", "Vcc": 3.151,
                                     "POWER": "OFF", "Wifi": {"AP": 1, "SSId": "TGV", "RSSI": 66,
                                                              "APMac": "60:A4:4C:DC:F8:78"}})
    assert out.errors == [] and rows(out) == {"on": 0.0} and out.reports[0].rssi_dbm is None
    out = decode("tele/lamp-3/STATE", {"Time": "2024-05-01T10:00:00", "Uptime": "1T02:03:04", "UptimeSec": 93784,
                                       "Heap": 25, "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19, "MqttCount": 1,
                                       "POWER": "ON", "Dimmer": 40, "Color": "66", "HSBColor": "0,0,40",
                                       "Channel": [40], "Fade": "OFF", "Speed": 1, "LedTable": "ON",
                                       "Wifi": {"AP": 1, "SSId": "school", "Channel": 6, "Mode": "11n", "RSSI": 76,
                                                "Signal": -62, "LinkCount": 1, "Downtime": "0T00:00:03"}})
    assert out.errors == [] and rows(out) == {"on": 1.0, "dimming": 40.0}
    assert out.reports[0].rssi_dbm == -62.0


def test_state_of_a_two_relay_device_and_a_bad_signal() -> None:
    out = decode("tele/dual/STATE", {"POWER1": "ON", "POWER2": "OFF", "Wifi": {"Signal": "strong"}})
    assert rows(out) == {"on": 1.0} and out.reports[0].rssi_dbm is None
    assert len(out.errors) == 1 and "Wifi.Signal must be a number of dBm" in out.errors[0]
    assert "got 'strong'" in decode("tele/dual/STATE", {"Wifi": {"Signal": "strong"}}).errors[0]
    assert "Wifi.Signal" in decode("tele/dual/STATE", {"Wifi": {"Signal": 20000}}).errors[0]


@pytest.mark.parametrize(("payload", "state"), [("Online", "online"), ("Offline", "offline"), ("online\n", "online")])
def test_lwt(payload: str, state: str) -> None:
    out = decode("tele/lamp-3/LWT", payload)
    assert out.errors == []
    [report] = out.reports
    assert (report.hardware, report.state, report.readings) == (Hardware("tasmota", "lamp-3", "lamp-3"), state, [])


def test_bad_lwt_is_refused() -> None:
    out = decode("tele/lamp-3/LWT", "Gone")
    assert out.reports == [] and "expected Online or Offline, got 'Gone'" in out.errors[0]


def test_result_and_power_acknowledge_a_command_with_the_device_s_state() -> None:
    # the TH16's console: "stat/TH16/RESULT = {"POWER":"OFF"}", "stat/TH16/POWER = OFF"
    assert rows(decode("stat/TH16/RESULT", {"POWER": "OFF"})) == {"on": 0.0}
    assert rows(decode("stat/lamp-3/RESULT", {"POWER": "ON", "Dimmer": 40, "Color": "66", "Channel": [40]})) == {
        "on": 1.0, "dimming": 40.0}
    assert rows(decode("stat/TH16/POWER", "OFF")) == {"on": 0.0}
    assert rows(decode("stat/TH16/POWER", "ON")) == {"on": 1.0}


def test_a_result_answering_another_command_is_ignored() -> None:
    for payload in ({"TelePeriod": 300}, {"Command": "Unknown"}, {"Time": "2024-05-01T10:00:00"}):
        out = decode("stat/lamp-3/RESULT", payload)
        assert out.ignored and out.reports == [] and out.errors == []


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("stat/lamp-3/RESULT", {"POWER": "MAYBE"}, "POWER: unknown value 'MAYBE'"),
    ("stat/lamp-3/RESULT", {"Dimmer": 140}, "dimming: 140 outside physical range"),
    ("stat/lamp-3/POWER", "TOGGLE", "POWER: unknown value 'TOGGLE'"),
    ("tele/lamp-3/SENSOR", b"{\"Time\":", "bad JSON"),
    ("tele/lamp-3/STATE", b"[]", "expected a JSON object"),
    ("stat/lamp-3/RESULT", b"\"ON\"", "expected a JSON object"),
    ("tele/my lamp/LWT", "Online", "must be 1 to 128 characters without spaces"),
])
def test_malformed_messages_are_refused(topic: str, payload: object, reason: str) -> None:
    out = decode(topic, payload)
    assert out.reports == [] or out.reports[0].readings == []
    assert len(out.errors) == 1 and reason in out.errors[0]


def test_topics_under_a_prefix() -> None:
    [report] = decode("tele/plug-1/STATE", {"POWER": "ON"}, prefix="school7/gw").reports
    assert report.hardware == Hardware("tasmota", "plug-1", "plug-1")
    out = tasmota.decode("school7/gw-2/tele/plug-2/LWT", "school7/+", b"Offline", NOW)
    assert out.reports[0].address == "plug-2" and out.reports[0].state == "offline"
    assert "is none of school7/gw/tele|stat/<topic>/<command>" in decode(
        "cmnd/plug-1/POWER", "ON", prefix="school7/gw").errors[0]
    assert "is none of" in tasmota.decode("tele/a/b/SENSOR", "", b"{}", NOW).errors[0]
