"""Ingest through a real broker into a real PostgreSQL: exact counts, duplicates, dead letters."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.worker import IngestWorker
from tests.helpers import publisher, running, small_twin, stored_readings, wait_for
from twin.database import connection
from twin.messaging.broker import AmqttBroker
from twin.messaging.contract import gateway_status_topic, status_payload, telemetry_payload, topic
from twin.messaging.mqtt import MqttClient, Will
from twin.storage.model import save_model


def new_worker(url: str, mqtt_url: str) -> IngestWorker:
    """A worker with its own client id and share group: persistent sessions of earlier tests'
    workers stay members of their group on the shared broker and would take a share of the messages."""
    tag = uuid.uuid4().hex[:8]
    return IngestWorker(url, mqtt_url, client_id=f"t-ingest-{tag}", share_group=f"t-{tag}", batch_wait_s=0.05)


def count(url: str, sql: str, *args: object) -> int:
    with connection(url) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


@pytest.fixture
def twin_db(db_url: str) -> str:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
    return db_url


def publish_known(client, n: int, base: datetime) -> list[tuple[datetime, float]]:
    """``n`` messages of ENV-0 with co2 = 500 + i at one-second steps; QoS 1, waits for PUBACKs."""
    sent = []
    infos = []
    for i in range(n):
        ts = base + timedelta(seconds=i)
        payload = orjson.dumps({"ts": int(ts.timestamp() * 1000), "seq": i + 1, "metrics": {"co2": 500 + i}})
        infos.append(client.publish(topic("t1", "ENV-0", "telemetry"), payload, qos=1))
        sent.append((ts, 500.0 + i))
    for info in infos:
        info.wait_for_publish(10)
    return sent


def test_exact_rows_latest_and_rollups_then_redelivery_stores_nothing_twice(twin_db, mqtt_url):
    worker = new_worker(twin_db, mqtt_url)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            sent = publish_known(client, 300, base)
            wait_for(lambda: stored_readings(twin_db) >= 300)
            with connection(twin_db) as conn:
                rows = conn.execute(
                    """SELECT r.ts, r.value FROM readings r JOIN devices d ON d.id = r.device_id
                       WHERE d.device_id = 'ENV-0' ORDER BY r.ts""").fetchall()
                assert rows == sent
                latest = conn.execute("SELECT ts, value FROM latest").fetchall()
                assert latest == [sent[-1]]
                n, total = conn.execute("SELECT sum(n), sum(sum) FROM rollup_1m").fetchone()
                assert (n, total) == (300, sum(v for _, v in sent))
                assert conn.execute("SELECT sum(n) FROM rollup_1h").fetchone()[0] == 300
                assert conn.execute("SELECT seq_gaps, last_seq FROM device_status ds JOIN devices d ON d.id = "
                                    "ds.device_id WHERE d.device_id = 'ENV-0'").fetchone() == (0, 300)
            # the same messages again (a redelivery): nothing new is stored, rollups unchanged
            publish_known(client, 300, base)
            # a redelivery is counted as a duplicate; if any were stored again, this would time out
            wait_for(lambda: worker.counters.duplicates >= 300)
    assert worker.counters.duplicates == 300
    assert count(twin_db, "SELECT count(*) FROM readings") == 300
    assert count(twin_db, "SELECT sum(n) FROM rollup_1m") == 300


def test_invalid_payloads_go_to_dead_letters_and_valid_neighbours_are_kept(twin_db, mqtt_url):
    worker = new_worker(twin_db, mqtt_url)
    now = datetime.now(UTC)
    good = orjson.dumps({"ts": now.isoformat(), "metrics": {"temperature": 23.5}})
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            msgs = [
                (topic("t1", "ENV-1", "telemetry"), good),
                (topic("t1", "ENV-1", "telemetry"), b"{broken"),
                (topic("t1", "NOPE", "telemetry"), good),
                (topic("t1", "ENV-2", "telemetry"), b'{"metrics": {"co2": -5, "humidity": 50}}'),
                (topic("t1", "LUM-2", "telemetry"), good),
            ]
            for t, p in msgs:
                client.publish(t, p, qos=1).wait_for_publish(10)
            # LUM-2's reading, published last on this connection, is stored after the others are handled
            wait_for(lambda: count(twin_db, "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id "
                                            "WHERE d.device_id = 'LUM-2'") == 1)
    with connection(twin_db) as conn:
        # only this test's site: the shared broker also hands out retained statuses of other tests' sites
        reasons = sorted(r[0] for r in conn.execute(
            "SELECT reason FROM dead_letters WHERE topic LIKE 'campus/v1/t1/%'").fetchall())
        assert len(reasons) == 3
        assert reasons[0].startswith("bad JSON")
        assert "co2: -5 outside physical range" in reasons[1]
        assert reasons[2].startswith("unknown device 'NOPE'")
        stored = conn.execute("""SELECT d.device_id, m.name, r.value FROM readings r JOIN devices d ON d.id = r.device_id
                                 JOIN metrics m USING (metric_id) ORDER BY 1, 2""").fetchall()
        assert stored == [("ENV-1", "temperature", 23.5), ("ENV-2", "humidity", 50.0), ("LUM-2", "temperature", 23.5)]


def test_a_senml_record_naming_another_device_is_refused(twin_db, mqtt_url):
    """ENV-0 may write ENV-0's topic only; a SenML pack there that names ENV-1 must not become ENV-1's data."""
    worker = new_worker(twin_db, mqtt_url)
    pack = orjson.dumps([{"bn": "ENV-0/", "n": "co2", "u": "ppm", "v": 640},
                         {"n": "ENV-1/co2", "u": "ppm", "v": 4999}, {"n": "ENV-1/temperature", "u": "Cel", "v": 35}])
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            client.publish(topic("t1", "ENV-0", "telemetry"), pack, qos=1).wait_for_publish(10)
            wait_for(lambda: count(twin_db, "SELECT count(*) FROM dead_letters WHERE topic LIKE %s", "campus/v1/t1/%"))
    with connection(twin_db) as conn:
        stored = conn.execute("""SELECT d.device_id, m.name, r.value FROM readings r JOIN devices d ON d.id = r.device_id
                                 JOIN metrics m USING (metric_id) WHERE d.site_id = 't1'""").fetchall()
        reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters WHERE topic LIKE 'campus/v1/t1/%'")]
    assert stored == [("ENV-0", "co2", 640.0)]
    assert reasons == ["SenML record names device 'ENV-1'; a device publishes only its own readings "
                       "(topic device 'ENV-0')"]


def test_status_messages_update_device_status(twin_db, mqtt_url):
    worker = new_worker(twin_db, mqtt_url)
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            client.publish(topic("t1", "LUM-1", "status"), b'{"state": "offline"}', qos=1).wait_for_publish(10)
            client.publish(topic("t1", "ENV-1", "status"), b'{"state": "online", "firmware": "2.1", "battery": 77}',
                           qos=1).wait_for_publish(10)
            # on what is stored (the message counter also counts other sites' retained statuses);
            # ENV-1's status was published last on the same connection, so LUM-1's is stored too
            wait_for(lambda: count(twin_db, "SELECT count(*) FROM device_status s JOIN devices d ON d.id = "
                                            "s.device_id WHERE d.device_id = 'ENV-1' AND s.firmware = '2.1'") == 1)
    with connection(twin_db) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            """SELECT d.device_id, s.state, s.firmware, s.battery_pct FROM device_status s
               JOIN devices d ON d.id = s.device_id WHERE d.device_id IN ('LUM-1', 'ENV-1')""").fetchall()}
    assert rows["LUM-1"][0] == "offline"
    assert rows["ENV-1"] == ("online", "2.1", 77.0)


def test_in_process_broker_falls_back_to_mqtt_311_and_still_stores_exactly(twin_db, tmp_path):
    with AmqttBroker() as broker:
        worker = IngestWorker(twin_db, broker.url, client_id="t-ingest-amqtt", batch_wait_s=0.05)
        with running(worker.run):
            assert worker.connected.wait(10)
            with publisher(broker.url) as client:
                sent = publish_known(client, 50, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
                wait_for(lambda: worker.counters.messages >= 50)
        assert worker._mqtt is not None and worker._mqtt.protocol == 4
    with connection(twin_db) as conn:
        assert conn.execute("SELECT ts, value FROM readings ORDER BY ts").fetchall() == sent


def _state(url: str, site_id: str, device_id: str) -> str | None:
    with connection(url) as conn:
        row = conn.execute("SELECT s.state FROM device_status s JOIN devices d ON d.id = s.device_id "
                           "WHERE d.site_id = %s AND d.device_id = %s", (site_id, device_id)).fetchone()
    return row[0] if row else None


def _drop(mqtt: MqttClient) -> None:
    """Break the connection without DISCONNECT: the broker publishes the client's last will."""
    assert mqtt.socket() is not None
    mqtt.drop()  # the network thread stopped first: no reconnection, so the will is published once


def test_last_wills_of_a_device_and_of_a_gateway_take_their_devices_offline(db_url, mqtt_url):
    """Real last wills, published by the broker when a connection breaks: a device's own (on its
    status topic) and a gateway's (on ``campus/v1/{site}/_gateway/{id}/status``, naming its devices)."""
    site = f"lw{uuid.uuid4().hex[:6]}"  # wills are not retained here, and nobody else's site is touched
    with connection(db_url) as conn:
        save_model(conn, small_twin(site))
    worker = new_worker(db_url, mqtt_url)
    own = MqttClient(mqtt_url, f"{site}-ENV-0", persistent=False, protocol=4,
                     will=Will(topic(site, "ENV-0", "status"), status_payload("offline", reason="connection lost"),
                               retain=False))
    gateway = MqttClient(mqtt_url, f"{site}-gw", persistent=False, protocol=4,
                         will=Will(gateway_status_topic(site, "gw"),
                                   status_payload("offline", gateway="gw", devices=["ENV-1", "LUM-1", "NOT-OURS"]),
                                   retain=False))
    with running(worker.run):
        assert worker.connected.wait(10)
        for mqtt, devices in ((own, ["ENV-0"]), (gateway, ["ENV-1", "LUM-1"])):
            connected = threading.Event()
            mqtt.on_connect = lambda session_present, ev=connected: ev.set()
            mqtt.connect()
            assert connected.wait(10)
            for device in devices:
                mqtt.publish(topic(site, device, "status"), status_payload("online"), qos=1).wait_for_publish(10)
        for device in ("ENV-0", "ENV-1", "LUM-1"):
            wait_for(lambda d=device: _state(db_url, site, d) == "online")
        _drop(own)
        wait_for(lambda: _state(db_url, site, "ENV-0") == "offline")
        assert _state(db_url, site, "ENV-1") == "online"
        _drop(gateway)
        wait_for(lambda: _state(db_url, site, "ENV-1") == "offline" and _state(db_url, site, "LUM-1") == "offline")
        # The gateway is back: an older reading (sent before it went down) changes nothing; a newer one
        # shows the device online again, though no status message says so.
        with publisher(mqtt_url, f"{site}-gw-back") as pub:
            before = datetime.now(UTC) - timedelta(minutes=5)
            pub.publish(topic(site, "ENV-1", "telemetry"), telemetry_payload(before, 1, {"co2": 500.0}),
                        qos=1).wait_for_publish(10)
            wait_for(lambda: stored_readings(db_url) >= 1)
            assert _state(db_url, site, "ENV-1") == "offline"
            pub.publish(topic(site, "ENV-1", "telemetry"), telemetry_payload(datetime.now(UTC), 2, {"co2": 510.0}),
                        qos=1).wait_for_publish(10)
            wait_for(lambda: _state(db_url, site, "ENV-1") == "online")
        assert _state(db_url, site, "LUM-1") == "offline"
    assert _state(db_url, site, "LUM-0") in (None, "unknown")  # not named by the gateway: untouched
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters WHERE topic LIKE %s", (f"%/{site}/%",)).fetchone()[0] == 0
