"""Fuzzing the payload decoders (hypothesis): whatever arrives, they return their documented
result types (readings and reason strings) and never raise."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import Decoded, Status, decode_status, decode_telemetry
from ingest.senml import SenmlReading, decode_pack
from twin.metrics import BY_NAME

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from([*BY_NAME, "", "co2_", "urn:dev:ow:10e2073a01080063:temp", "a/b", "\x00", "𝔠𝔬𝔤"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), NAMES)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.one_of(NAMES, st.text(max_size=8)), inner, max_size=6)),
    max_leaves=30)
SENML_KEYS = st.sampled_from(["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut",
                              "x_", "n_"])
SENML = st.lists(st.dictionaries(SENML_KEYS, SCALARS, max_size=6), max_size=6)
NATIVE = st.fixed_dictionaries({"metrics": st.dictionaries(NAMES, SCALARS, max_size=5)},
                               optional={"ts": SCALARS, "seq": SCALARS})


def _dumps(doc: object) -> bytes:
    """JSON text as a device might send it: big integers, ``NaN`` and ``Infinity`` included."""
    return json.dumps(doc, default=str).encode()


def _check(out: object) -> None:
    assert isinstance(out, Decoded)
    assert all(isinstance(e, str) and e for e in out.errors)
    for ts, metric, value in out.readings:
        assert ts.tzinfo is not None and math.isfinite(value) and metric.min_value <= value <= metric.max_value
    for device, ts, metric, value in out.foreign:
        assert isinstance(device, str) and math.isfinite(value)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(payload: bytes) -> None:
    _check(decode_telemetry(payload, NOW, "ENV-1"))
    assert isinstance(decode_status(payload), Status | str)


@FUZZ
@given(JSON)
def test_arbitrary_json(doc: object) -> None:
    payload = _dumps(doc)
    _check(decode_telemetry(payload, NOW, "ENV-1"))
    assert isinstance(decode_status(payload), Status | str)


@FUZZ
@given(NATIVE)
def test_native_objects_with_hostile_fields(doc: dict) -> None:
    _check(decode_telemetry(_dumps(doc), NOW, "ENV-1"))


@FUZZ
@given(SENML)
def test_senml_packs(pack: list) -> None:
    _check(decode_telemetry(_dumps(pack), NOW, "ENV-1"))
    readings, errors = decode_pack(pack, NOW)
    assert all(isinstance(r, SenmlReading) for r in readings) and all(isinstance(e, str) for e in errors)


@FUZZ
@given(st.integers(min_value=1, max_value=5000))
def test_deep_nesting_is_an_error_not_a_crash(depth: int) -> None:
    _check(decode_telemetry(b"[" * depth + b"]" * depth, NOW))
    _check(decode_telemetry(b'{"metrics":' * depth + b"1" + b"}" * depth, NOW))
