"""Payload decoding and validation (pure functions)."""

from datetime import UTC, datetime, timedelta

import orjson

from ingest.decode import decode_status, decode_telemetry

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
