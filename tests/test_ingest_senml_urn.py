"""SenML packs naming their device by an RFC 9039 URN (issue 19): stored for the device the URN is bound
to when it is the topic's device; an unbound URN listed as hardware publishing but not in the twin; a URN
bound to another device refused (a device speaks only for itself)."""

from __future__ import annotations

import time

import orjson

from tests.helpers import publisher, running, stored_readings, wait_for
from tests.test_ingest import count, new_worker
from tests.test_ingest_adapters import site, twin_db  # noqa: F401  (fixtures: a site of its own)
from twin.database import connection
from twin.messaging.contract import topic
from twin.storage import identities as ids

OW = "urn:dev:ow:10e2073a01080063"
MAC = "urn:dev:mac:0024befffe804ff1"


def test_senml_urn_of_the_topics_device_is_stored_unbound_listed_foreign_refused(twin_db, mqtt_url, site):  # noqa: F811
    with connection(twin_db) as conn:
        ids.bind(conn, site, [ids.Binding("ENV-2", "urn", OW), ids.Binding("ENV-0", "mac", "0024befffe804ff1")])
    now = int(time.time())
    worker = new_worker(twin_db, mqtt_url)
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            for info in (
                client.publish(topic(site, "ENV-2", "telemetry"), orjson.dumps(
                    [{"bn": f"{OW}:", "bt": now, "n": "temperature", "u": "Cel", "v": 23.1},
                     {"n": "co2", "u": "ppm", "v": 640}])),
                client.publish(topic(site, "ENV-2", "telemetry"), orjson.dumps(
                    [{"n": OW.upper().replace("URN:DEV:OW:", "urn:dev:ow:"), "u": "%RH", "t": now - 60, "v": 41}])),
                # the MAC inside a urn:dev:mac: URN is ENV-0's own identity
                client.publish(topic(site, "ENV-0", "telemetry"), orjson.dumps(
                    [{"bn": f"{MAC}:", "bt": now, "n": "co2", "u": "ppm", "v": 700}])),
                # not bound to anything: listed, not stored
                client.publish(topic(site, "ENV-1", "telemetry"), orjson.dumps(
                    [{"n": "urn:dev:ow:ffffffffffffffff:temperature", "u": "Cel", "t": now, "v": 20.0}])),
                # ENV-2's URN sent by ENV-1: refused
                client.publish(topic(site, "ENV-1", "telemetry"), orjson.dumps(
                    [{"n": f"{OW}:temperature", "u": "Cel", "t": now, "v": 19.0}])),
            ):
                info.wait_for_publish(10)
            wait_for(lambda: stored_readings(twin_db) >= 4 and count(twin_db, "SELECT count(*) FROM dead_letters WHERE topic "
                                                                       "LIKE %s", f"campus/v1/{site}/%") >= 1
                     and count(twin_db, "SELECT count(*) FROM hardware_seen") >= 1)
    with connection(twin_db) as conn:
        rows = conn.execute("""SELECT d.device_id, m.name, r.value FROM readings r JOIN devices d ON d.id = r.device_id
                               JOIN metrics m ON m.metric_id = r.metric_id ORDER BY 1, 2""").fetchall()
        assert rows == [("ENV-0", "co2", 700.0), ("ENV-2", "co2", 640.0), ("ENV-2", "humidity", 41.0),
                        ("ENV-2", "temperature", 23.1)]
        [unbound] = ids.unmapped_hardware(conn, site_id=site)
        assert (unbound.kind, unbound.hardware_id, unbound.adapter, unbound.address, unbound.messages) == (
            "urn", "urn:dev:ow:ffffffffffffffff", "senml", "ENV-1", 1)
        [(reason,)] = conn.execute("SELECT reason FROM dead_letters WHERE topic LIKE %s",
                                   (f"campus/v1/{site}/%",)).fetchall()
        assert reason.startswith(f"SenML record names device '{OW}'")


def test_one_pack_of_many_unbound_urns_lists_only_a_few(twin_db, site):  # noqa: F811
    """One device must not fill the planners' list of hardware not in the twin with one message."""
    from datetime import UTC, datetime

    from ingest.worker import URNS_LISTED_MAX, IngestWorker
    from twin.messaging.mqtt import Received

    pack = [{"n": f"urn:dev:ow:{i:016x}:temperature", "u": "Cel", "v": 20.0} for i in range(100)]
    worker = IngestWorker(twin_db, "mqtt://127.0.0.1:1")
    msg = Received(1, 1, topic(site, "ENV-1", "telemetry"), orjson.dumps(pack), datetime.now(UTC).timestamp(), 0, False)
    worker.store(worker.prepare([msg]))
    with connection(twin_db) as conn:
        assert ids.count_unmapped_hardware(conn, site_id=site) == URNS_LISTED_MAX == 16
    assert stored_readings(twin_db) == 0
