"""Payload decoding and validation (pure functions)."""

from datetime import UTC, datetime, timedelta

import orjson

from ingest.decode import GatewayStatus, decode_gateway_status, decode_status, decode_telemetry

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_native_payload_with_epoch_ms_gives_one_reading_per_metric():
    ts_ms = int(NOW.timestamp() * 1000) - 1500
    out = decode_telemetry(orjson.dumps({"ts": ts_ms, "seq": 7, "metrics": {"co2": 812, "temperature": 24.5}}), NOW)
    assert out.errors == []
    assert out.seq == 7
    assert [(ts, m.name, v) for ts, m, v in out.readings] == [
        (NOW - timedelta(milliseconds=1500), "co2", 812.0),
        (NOW - timedelta(milliseconds=1500), "temperature", 24.5),
    ]


def test_rfc3339_timestamp_and_missing_ts_uses_receive_time():
    out = decode_telemetry(b'{"ts": "2026-11-23T07:59:00+00:00", "metrics": {"noise": 40}}', NOW)
    assert out.readings[0][0] == datetime(2026, 11, 23, 7, 59, tzinfo=UTC)
    out = decode_telemetry(b'{"metrics": {"noise": 40}}', NOW)
    assert out.ts_from_receive and out.readings[0][0] == NOW


def test_mixed_payload_keeps_the_valid_part():
    payload = b'{"metrics": {"co2": 900, "humidity": 140, "warp": 1, "temperature": "hot", "pm25": NaN}}'
    out = decode_telemetry(payload, NOW)
    # NaN is not JSON: the whole payload is refused
    assert out.readings == [] and out.errors[0].startswith("bad JSON")
    out = decode_telemetry(b'{"metrics": {"co2": 900, "humidity": 140, "warp": 1, "temperature": "hot"}}', NOW)
    assert [(m.name, v) for _, m, v in out.readings] == [("co2", 900.0)]
    assert len(out.errors) == 3
    assert any("humidity" in e and "outside physical range" in e for e in out.errors)
    assert any("unknown metric 'warp'" in e for e in out.errors)
    assert any("temperature: value must be a number" in e for e in out.errors)


def test_refusals_carry_a_reason():
    cases = {
        b"not json": "bad JSON",
        b"[1, 2]": "JSON object",
        b'{"metrics": {}}': "non-empty",
        b'{"ts": "yesterday", "metrics": {"co2": 1}}': "RFC 3339",
        b'{"ts": 4102444800000, "metrics": {"co2": 1}}': "future",
        b'{"metrics": {"on": true}}': "must be a number",
        b"x" * 70000: "exceeds",
    }
    for payload, reason in cases.items():
        out = decode_telemetry(payload, NOW)
        assert out.readings == [], payload[:40]
        assert reason in out.errors[0], (payload[:40], out.errors)


def test_status_payload():
    st = decode_status(b'{"state": "online", "firmware": "1.2", "battery": 88, "rssi": -61}')
    assert (st.state, st.firmware, st.battery_pct, st.rssi_dbm) == ("online", "1.2", 88.0, -61.0)
    assert isinstance(decode_status(b'{"state": "sleepy"}'), str)


def test_seq_beyond_an_unsigned_32_bit_counter_is_refused_and_the_readings_kept():
    out = decode_telemetry(orjson.dumps({"seq": 2**32, "metrics": {"co2": 812}}), NOW)
    assert out.seq is None and out.errors == ["seq must be an integer from 0 to 4294967295"]
    assert [m.name for _, m, _ in out.readings] == ["co2"]
    assert decode_telemetry(orjson.dumps({"seq": 2**32 - 1, "metrics": {"co2": 812}}), NOW).seq == 2**32 - 1


def test_status_text_is_checked_before_the_database_sees_it():
    """No NUL or other control character, bounded length, valid UTF-8, known state, vitals in range.
    A bad state (or a payload that is no JSON) refuses the status, with a reason."""
    refused = {
        b'{"state":"online","firmware":"\xff"}': "bad JSON",  # not UTF-8
        b'{"state":"online","firmware":"\\ud800"}': "bad JSON",  # a lone surrogate
        b'{"state":"sleepy"}': "'state' must be",
        b'{"state":"online\\u0000"}': "'state' must be",
        b'{"firmware":"1.0"}': "'state' must be",
    }
    for payload, reason in refused.items():
        out = decode_status(payload)
        assert isinstance(out, str) and reason in out, (payload, out)
    ok = decode_status('{"state":"offline","firmware":"固件 v2.1-β","battery":null,"rssi":-120}'.encode())
    assert (ok.state, ok.firmware, ok.battery_pct, ok.rssi_dbm, ok.errors) == ("offline", "固件 v2.1-β", None, -120.0, ())
    assert decode_status(b'{"state":"online","firmware":"' + b"9" * 64 + b'"}').firmware == "9" * 64


def test_a_status_with_a_bad_field_keeps_its_state_and_its_valid_fields():
    """A mixed status keeps its valid part: the bad field is left out and named in ``errors`` (each
    becomes a dead letter), the state and the other fields are kept."""
    bad_field = {
        b'{"state":"online","firmware":"x\\u0000","battery":50}': "firmware contains NUL (U+0000)",
        b'{"state":"online","firmware":"1.0\\u001b[31m","battery":50}': "control character U+001B",
        b'{"state":"online","firmware":"1.0\\u0085","battery":50}': "control character U+0085",
        b'{"state":"online","firmware":"' + b"9" * 65 + b'","battery":50}': "65 characters long (at most 64)",
        b'{"state":"online","firmware":"","battery":50}': "firmware is empty",
        b'{"state":"online","firmware":7,"battery":50}': "firmware must be text",
        b'{"state":"online","firmware":"2.1","battery":101}': "battery 101 outside [0, 100]",
        b'{"state":"online","firmware":"2.1","battery":"88%"}': "battery must be a number",
        b'{"state":"online","firmware":"2.1","battery":50,"rssi":-1e300}': "rssi -1e+300 outside",
    }
    for payload, reason in bad_field.items():
        out = decode_status(payload)
        assert not isinstance(out, str), (payload, out)
        assert out.state == "online" and len(out.errors) == 1 and reason in out.errors[0], (payload, out)
        assert out.firmware in (None, "2.1") and out.battery_pct in (None, 50.0), (payload, out)
    two = decode_status(b'{"state":"offline","firmware":"3.0","battery":"88%","rssi":99}')
    assert (two.state, two.firmware, two.battery_pct, two.rssi_dbm) == ("offline", "3.0", None, None)
    assert [e.split()[1] for e in two.errors] == ["battery", "rssi"], two.errors


def test_gateway_status_device_ids_are_checked_one_by_one():
    """A bad device id is refused alone: the gateway's other devices still go offline."""
    assert decode_gateway_status(b'{"state":"offline","devices":["ENV-1","LUM-2"]}') == GatewayStatus(
        "offline", ("ENV-1", "LUM-2"))
    for devices, reason in ((b'["ENV-1", "x\\u0000"]', "device id 1 contains NUL"),
                            (b'["ENV-1", "' + b"D" * 129 + b'"]', "at most 128"), (b'["ENV-1", ""]', "device id 1 is empty"),
                            (b'[7, "ENV-1"]', "device id 0 must be text")):
        out = decode_gateway_status(b'{"state":"offline","devices":' + devices + b"}")
        assert not isinstance(out, str) and out.devices == ("ENV-1",), (devices, out)
        assert len(out.errors) == 1 and reason in out.errors[0], (devices, out)
    for payload in (b'{"state":"gone","devices":["ENV-1"]}', b'{"state":"offline","devices":"ENV-1"}'):
        assert isinstance(decode_gateway_status(payload), str), payload


def test_senml_names_and_units_are_checked_text():
    cases = {
        b'[{"n":"co2\\u0000","v":500}]': "name contains NUL",
        b'[{"bn":"ENV-1\\u0007/","n":"co2","v":500}]': "bn contains control character U+0007",
        b'[{"n":"' + b"a" * 260 + b'/co2","v":500}]': "at most 256",
        b'[{"n":"x","u":"ppm\\u0000","v":500}]': "u contains NUL",
    }
    for payload, reason in cases.items():
        out = decode_telemetry(payload, NOW, "ENV-1")
        assert out.readings == [] and out.foreign == [] and any(reason in e for e in out.errors), (payload, out.errors)
    # printable text from any script is fine
    out = decode_telemetry('[{"bn":"传感器-1/","n":"co2","v":500}]'.encode(), NOW, "传感器-1")
    assert [(m.name, v) for _, m, v in out.readings] == [("co2", 500.0)]
