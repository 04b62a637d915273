"""Fuzzing the store path end to end (hypothesis): hostile telemetry (JSON and SenML) and status
payloads published to a real Mosquitto and stored in a real PostgreSQL by a running worker.

Whatever arrives, the worker stays alive, every reading the pure decoder finds valid is stored and
every refusal it reports is a dead letter: nothing reaches the database that it would refuse.
Each example is closed by a sentinel reading published after it on the same connection (QoS 1,
one worker: handled in order), then the tables are emptied for the next example.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import Status, decode_status, decode_telemetry
from ingest.worker import IngestWorker
from tests.helpers import publisher, small_twin, wait_for
from twin.database import connection
from twin.messaging.contract import topic
from twin.metrics import BY_NAME
from twin.storage.model import save_model

SITE = "fz"
DEVICES = ("ENV-0", "LUM-0", "ENV-1")
SENTINEL = "LUM-1"  # closes each example; no example publishes for it
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.usefixtures("mosquitto_installed")

HOSTILE = st.one_of(
    st.text(max_size=40),  # any code point but surrogates, NUL and control characters included
    st.sampled_from(["x\x00", "\x00", "1.0\x1b[31m", "\u0085", "9" * 65, "a" * 300, "𝔣𝔦𝔯𝔪𝔴𝔞𝔯𝔢", "\u202eevil",
                     "\ufeff", "\uffff", "'; DROP TABLE readings; --", "\ud800", "co2\x00", "ENV-1/co2", "固件 1.2"]),
)
NAMES = st.one_of(st.sampled_from(list(BY_NAME)), HOSTILE)
NUMBERS = st.one_of(
    st.floats(min_value=0, max_value=100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([1e308, -1e308, 5e-324, 10**400, 0, -0.0]),
)
SCALARS = st.one_of(NUMBERS, st.none(), st.booleans(), HOSTILE)
#: Timestamp offsets from the receive time, in seconds, well inside or well outside what is accepted
#: (a worker receives a message a moment after it is built: no case near a limit).
OFFSETS = st.one_of(st.integers(-300 * 86400, -60), st.integers(3600, 10**7), st.integers(-2000 * 86400, -401 * 86400))
TS = st.one_of(st.none(), st.tuples(st.sampled_from(["ms", "iso"]), OFFSETS), SCALARS)
NATIVE = st.fixed_dictionaries(
    {"metrics": st.one_of(st.dictionaries(NAMES, SCALARS, max_size=4), SCALARS)},
    optional={"ts": TS, "seq": st.one_of(st.integers(-5, 2**33), SCALARS)})
SENML_RECORD = st.fixed_dictionaries({}, optional={
    "bn": st.one_of(st.sampled_from(["", "ENV-0/", "ENV-1/", "LUM-0:", "urn:dev:ow:10e2073a01080063:"]), HOSTILE),
    "n": NAMES, "u": st.one_of(st.sampled_from(["Cel", "ppm", "%RH", "kW", "lx", "furlong"]), HOSTILE),
    "v": NUMBERS, "vb": st.booleans(), "vs": HOSTILE,
    "t": st.one_of(st.integers(-86400, -1), st.integers(600, 10**7), st.integers(-(10**8), -4 * 10**7), SCALARS)})
SENML = st.lists(SENML_RECORD, min_size=1, max_size=4)
STATUS = st.fixed_dictionaries(
    {"state": st.one_of(st.sampled_from(["online", "offline"]), HOSTILE)},
    optional={"firmware": st.one_of(st.sampled_from(["1.0.3", "sim-1.0", "固件 v2"]), HOSTILE, SCALARS),
              "battery": st.one_of(st.floats(0, 100), SCALARS), "rssi": st.one_of(st.floats(-120, 0), SCALARS)})
#: ``(device, channel, document or bytes, JSON encoding)``; documents are made concrete at publish time.
DEVICE = st.sampled_from(DEVICES)
MESSAGE = st.one_of(
    st.tuples(DEVICE, st.just("telemetry"), st.one_of(NATIVE, SENML, st.binary(max_size=120)), st.booleans()),
    st.tuples(DEVICE, st.just("status"), st.one_of(
        STATUS, st.builds(lambda fw, state: {"state": state, "firmware": fw}, HOSTILE, st.just("online")),
        st.binary(max_size=40).map(lambda b: b'{"state":"online","firmware":"' + b + b'"}')), st.booleans()),
    st.tuples(DEVICE, st.sampled_from(["telemetry", "status"]), st.one_of(NATIVE, SENML, STATUS), st.booleans()),
)

def concrete(doc: Any, now: datetime) -> Any:
    """``doc`` with its ``("ms"|"iso", offset)`` timestamps made real, relative to ``now``."""
    if isinstance(doc, dict):
        out = {k: concrete(v, now) for k, v in doc.items()}
        ts = doc.get("ts")
        if isinstance(ts, tuple):
            when = now + timedelta(seconds=ts[1])
            out["ts"] = int(when.timestamp() * 1000) if ts[0] == "ms" else when.isoformat()
        return out
    if isinstance(doc, list):
        return [concrete(v, now) for v in doc]
    return doc


def encode(doc: Any, ascii_only: bool) -> bytes:
    """JSON as a device might send it: NaN, Infinity and big integers included; lone surrogates as
    ``\\ud800`` escapes or as the invalid UTF-8 bytes they make."""
    if isinstance(doc, bytes):
        return doc
    return json.dumps(doc, ensure_ascii=ascii_only, default=str).encode("utf-8", "surrogatepass")


def expect(device: str, channel: str, payload: bytes, received_at: datetime
           ) -> tuple[set[tuple[str, str, datetime]], int, Status | None]:
    """What the pure decoder says the worker must make of one message: reading keys, dead letters, status."""
    if channel == "status":
        status = decode_status(payload)
        if isinstance(status, str):
            return set(), 1, None
        return set(), len(status.errors), status  # one dead letter per bad field, the rest kept
    decoded = decode_telemetry(payload, received_at, device)
    keys = {(device, m.name, ts) for ts, m, _ in decoded.readings}
    # the worker adds one refusal per other device a SenML pack names (a device speaks for itself only)
    return keys, len(decoded.errors) + len({d for d, *_ in decoded.foreign}), None


@pytest.fixture
def fuzz_db(db_url: str) -> str:
    with connection(db_url) as conn:
        save_model(conn, small_twin(SITE, rooms=2))
    return db_url


def test_hostile_payloads_through_broker_and_database(fuzz_db, broker):
    worker = IngestWorker(fuzz_db, broker.url, client_id=f"fuzz-{uuid.uuid4().hex[:6]}", share_group="",
                          batch_wait_s=0.05)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # noqa: BLE001
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    sentinel_base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    numbers = count()
    examples = []
    try:
        assert worker.connected.wait(10)
        with publisher(broker.url, f"fuzz-pub-{uuid.uuid4().hex[:6]}") as client, connection(fuzz_db) as conn:
            conn.autocommit = True

            @FUZZ
            @given(st.lists(MESSAGE, min_size=1, max_size=6))
            def check(messages: list[tuple[str, str, Any, bool]]) -> None:
                now = datetime.now(UTC)
                keys: set[tuple[str, str, datetime]] = set()
                explicit: set[tuple[str, str, datetime]] = set()
                letters = 0
                statuses: dict[str, list[Status]] = {}
                for k, (device, channel, doc, ascii_only) in enumerate(messages):
                    payload = encode(concrete(doc, now), ascii_only)
                    # a distinct receive time per message, as the worker has: readings without a time
                    # of their own are distinct rows
                    received = now + timedelta(milliseconds=k)
                    more, refused, status = expect(device, channel, payload, received)
                    keys |= more
                    # keys that do not depend on the receive time: the stored rows must have exactly these
                    explicit |= more & expect(device, channel, payload, received + timedelta(seconds=1))[0]
                    letters += refused
                    if status is not None:
                        statuses.setdefault(device, []).append(status)
                    client.publish(topic(SITE, device, channel), payload, qos=1).wait_for_publish(10)
                mark = sentinel_base + timedelta(seconds=next(numbers))
                client.publish(topic(SITE, SENTINEL, "telemetry"),
                               json.dumps({"ts": mark.isoformat(), "metrics": {"energy": 1}}).encode(),
                               qos=1).wait_for_publish(10)
                wait_for(lambda: failure or conn.execute(
                    "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                    "WHERE d.device_id = %s AND r.ts = %s", (SENTINEL, mark)).fetchone()[0], timeout=60)
                assert not failure and thread.is_alive(), f"the worker died: {failure!r}"
                stored = conn.execute(
                    "SELECT d.device_id, m.name, r.ts FROM readings r JOIN devices d ON d.id = r.device_id "
                    "JOIN metrics m ON m.metric_id = r.metric_id WHERE d.device_id <> %s", (SENTINEL,)).fetchall()
                assert len(stored) == len(keys), (messages, stored, keys)
                assert explicit <= set(stored), (messages, explicit - set(stored))
                refusals = conn.execute("SELECT reason FROM dead_letters WHERE topic LIKE %s",
                                        (f"campus/v1/{SITE}/%",)).fetchall()
                assert len(refusals) == letters, (messages, refusals)
                assert all(reason and "database refused" not in reason for (reason,) in refusals), refusals
                for device, seen in statuses.items():
                    firmware = next((s.firmware for s in reversed(seen) if s.firmware is not None), None)
                    battery = next((s.battery_pct for s in reversed(seen) if s.battery_pct is not None), None)
                    assert conn.execute(
                        "SELECT s.firmware, s.battery_pct FROM device_status s JOIN devices d ON d.id = s.device_id "
                        "WHERE d.device_id = %s", (device,)).fetchone() == (firmware, battery), messages
                examples.append(len(messages))
                # empty for the next example (the worker is idle: its sentinel is stored)
                conn.execute("TRUNCATE readings, latest, rollup_1m, rollup_1h, dead_letters")
                conn.execute("UPDATE device_status SET state = 'unknown', firmware = NULL, battery_pct = NULL, "
                             "rssi_dbm = NULL, last_seq = NULL, seq_window = NULL, seq_lost = 0, seq_gaps = 0")

            check()
        assert thread.is_alive() and not failure
        assert len(examples) >= 30, "hypothesis ran fewer examples than expected"
    finally:
        stop.set()
        thread.join(30)
    assert not failure, repr(failure)
