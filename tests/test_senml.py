"""SenML packs (RFC 8428) decoded into catalogue readings (pure functions)."""

from datetime import UTC, datetime, timedelta

import orjson

from ingest.decode import decode_telemetry
from ingest.senml import resolve_name

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DEV = "urn:dev:ow:10e2073a01080063"


def rows(out):
    return [(ts, m.name, v) for ts, m, v in out.readings]


def test_rfc8428_single_datapoint_unit_picks_the_metric():
    # RFC 8428 section 5.1.1
    out = decode_telemetry(b'[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]', NOW, DEV)
    assert out.errors == []
    assert rows(out) == [(NOW, "temperature", 23.1)]
    assert out.ts_from_receive


def test_rfc8428_multiple_datapoints_outside_the_catalogue_are_refused_with_reasons():
    # RFC 8428 section 5.1.2: voltage and current are not campus metrics
    pack = b'[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},{"n":"current","u":"A","v":1.2}]'
    out = decode_telemetry(pack, NOW, DEV)
    assert out.readings == []
    assert len(out.errors) == 2 and all("names no catalogue metric" in e for e in out.errors)


def test_rfc8428_multiple_measurements_with_base_time_and_relative_times():
    # RFC 8428 section 5.1.4 shape: base name and unit, absolute base time, times relative to it,
    # records of units outside the catalogue (lon, lat, %EL) next to the humidity ones
    bt = 1.320067464e09
    received = datetime.fromtimestamp(bt + 200, tz=UTC)
    pack = [
        {"bn": "urn:dev:ow:10e2073a01080063:", "bt": bt, "bu": "%RH", "v": 20.0},
        {"u": "lon", "v": 24.30621},
        {"u": "lat", "v": 60.07965},
        {"t": 60, "v": 20.3},
        {"t": 120, "v": 20.7},
        {"u": "%EL", "t": 150, "v": 98.0},
        {"t": 180, "v": 21.2},
    ]
    out = decode_telemetry(orjson.dumps(pack), received, DEV)
    t0 = datetime.fromtimestamp(bt, tz=UTC)
    assert rows(out) == [(t0 + timedelta(seconds=s), "humidity", v) for s, v in
                         ((0, 20.0), (60, 20.3), (120, 20.7), (180, 21.2))]
    assert len(out.errors) == 3 and not out.ts_from_receive


def test_rfc8428_collection_of_resources_names_other_devices():
    # RFC 8428 section 5.1.6 shape: one pack, several devices by base name
    bt = int(NOW.timestamp()) - 60
    pack = [
        {"bn": "2001:db8::2/", "bt": bt, "n": "temperature", "u": "Cel", "v": 27.2},
        {"n": "humidity", "u": "%RH", "v": 80},
        {"bn": "2001:db8::1/", "n": "temperature", "u": "Cel", "v": 12.3},
    ]
    out = decode_telemetry(orjson.dumps(pack), NOW, "2001:db8::2")
    ts = NOW - timedelta(seconds=60)
    assert rows(out) == [(ts, "temperature", 27.2), (ts, "humidity", 80.0)]
    assert [(d, t, m.name, v) for d, t, m, v in out.foreign] == [("2001:db8::1", ts, "temperature", 12.3)]


def test_base_value_relative_time_booleans_sums_and_unit_conversion():
    pack = [
        {"bn": "ENV-1/", "bv": 400, "n": "co2", "u": "ppm", "v": 12, "t": -30},
        {"n": "power", "bv": 0, "u": "kW", "v": 1.5},
        {"n": "temperature", "u": "K", "v": 296.15},
        {"bn": "LUM-1:", "n": "on", "vb": True},
        {"n": "energy", "u": "kWh", "s": 2},
        {"n": "blackboard_illuminance", "u": "lx", "v": 510},
    ]
    out = decode_telemetry(orjson.dumps(pack), NOW, "ENV-1")
    got = rows(out)
    assert got[0] == (NOW - timedelta(seconds=30), "co2", 412.0)
    assert got[1][1:] == ("power", 1500.0)
    assert got[2][1] == "temperature" and abs(got[2][2] - 23.0) < 1e-9
    assert [(d, m.name, v) for d, _, m, v in out.foreign] == [
        ("LUM-1", "on", 1.0), ("LUM-1", "energy", 2000.0), ("LUM-1", "blackboard_illuminance", 510.0)]
    assert out.errors == []


def test_senml_refusals_carry_reasons_and_keep_valid_records():
    future = NOW.timestamp() + 3600
    pack = [
        {"n": "co2", "u": "ppm", "v": 700},
        {"n": "co2", "u": "Cel", "v": 700},
        {"n": "humidity", "v": 140},
        {"n": "noise", "vs": "loud"},
        {"n": "noise", "vd": "AAEC"},
        {"n": "temperature", "t": future, "v": 20},
        {"n": "temperature", "v": "warm"},
        {"n": "pm25", "u": "furlong", "v": 5},
        {"n": "tvoc"},
        7,
    ]
    out = decode_telemetry(orjson.dumps(pack), NOW, "ENV-1")
    assert rows(out) == [(NOW, "co2", 700.0)]
    joined = "\n".join(out.errors)
    for reason in ("does not fit", "outside physical range", "vs (string)", "vd (data)", "in the future",
                   "v must be a number", "unknown SenML unit", "has no value", "is not an object"):
        assert reason in joined, reason
    assert len(out.errors) == 9


def test_must_understand_fields_and_newer_versions_refuse_the_whole_pack():
    out = decode_telemetry(b'[{"n":"co2","v":500},{"n":"co2","v":501,"t":1,"x_":1}]', NOW, "E")
    assert out.readings == [] and "must-understand" in out.errors[0]
    out = decode_telemetry(b'[{"bver":11,"n":"co2","v":500}]', NOW, "E")
    assert out.readings == [] and "version" in out.errors[0]
    out = decode_telemetry(b"[]", NOW, "E")
    assert out.readings == [] and out.errors


def test_name_resolution():
    assert resolve_name("co2", None)[1].name == "co2"
    assert resolve_name("campus/v1/hq/ENV-101/co2", None)[0] == "ENV-101"
    assert resolve_name("urn:dev:ow:1:temperature", None)[0] == "urn:dev:ow:1"
    assert resolve_name("urn:dev:ow:1", "lx")[1].name == "illuminance"
    assert isinstance(resolve_name("urn:dev:ow:1", None), str)
