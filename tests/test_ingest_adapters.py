"""Devices as schools buy them, through a real Mosquitto into a real PostgreSQL (issue 19): zigbee2mqtt,
ChirpStack v4, The Things Stack v3 and Tasmota messages shaped as their projects document them, stored
for the twin's devices by hardware identity; malformed ones dead-lettered with reasons, the worker alive;
unknown hardware listed, stored once bound (what it sent before the binding is not kept)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest.worker import IngestWorker
from tests.helpers import publisher, running, small_twin, stored_readings, wait_for
from tests.test_ingest import count, new_worker
from twin.database import connection
from twin.storage import identities as ids
from twin.storage.model import save_model

IEEE = {"ENV-0": "0x00158d0001a2b3c4", "LUM-0": "0x00158d0001a2b3c5", "hall": "0x00158d0001a2b3c6"}



@pytest.fixture
def site() -> str:
    """A site of this test alone: retained messages other tests left under campus/v1/t1/... on a shared broker
    (statuses, junk) do not reach it."""
    return f"a{uuid.uuid4().hex[:8]}"


@pytest.fixture
def twin_db(db_url: str, site: str) -> str:
    with connection(db_url) as conn:
        save_model(conn, small_twin(site))
    return db_url

def readings(url: str) -> list[tuple[str, str, float]]:
    with connection(url) as conn:
        return conn.execute("""SELECT d.device_id, m.name, r.value FROM readings r JOIN devices d ON d.id = r.device_id
                               JOIN metrics m ON m.metric_id = r.metric_id ORDER BY 1, 2, r.ts""").fetchall()


def letters(url: str) -> list[str]:
    """Dead letters of the adapters' topics (not those of retained campus/v1 messages other tests left on a shared
    broker: this worker subscribes to every site's)."""
    with connection(url) as conn:
        return [r for (r,) in conn.execute(
            "SELECT reason FROM dead_letters WHERE topic NOT LIKE 'campus/v1/%' ORDER BY id").fetchall()]


def status(url: str, device: str) -> tuple:
    with connection(url) as conn:
        return conn.execute("""SELECT s.state, s.battery_pct, s.rssi_dbm, s.seq_gaps, s.last_seq FROM device_status s
                               JOIN devices d ON d.id = s.device_id WHERE d.device_id = %s""", (device,)).fetchone()


def publish(client, messages: list[tuple[str, bytes | str, bool]]) -> None:
    infos = [client.publish(t, p.encode() if isinstance(p, str) else p, qos=1, retain=r) for t, p, r in messages]
    for info in infos:
        info.wait_for_publish(10)


def clear_retained(mqtt_url: str, topics: list[str]) -> None:
    with publisher(mqtt_url, f"clear-{uuid.uuid4().hex[:6]}") as client:
        publish(client, [(t, b"", True) for t in topics])


def test_zigbee2mqtt_state_availability_bridge_list_unknown_then_bound(twin_db, mqtt_url, site):
    prefix = f"z2m-{uuid.uuid4().hex[:8]}"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "zigbee2mqtt", prefix)
        ids.bind(conn, site, [ids.Binding("ENV-0", "ieee", IEEE["ENV-0"][2:]), ids.Binding("LUM-0", "ieee", IEEE["LUM-0"][2:])])
    bridge = [
        {"ieee_address": "0x00124b0000000001", "type": "Coordinator", "friendly_name": "Coordinator", "definition": None},
        {"ieee_address": IEEE["ENV-0"], "type": "EndDevice", "friendly_name": "floor1/lab/air",
         "definition": {"model": "WSDCGQ11LM", "vendor": "Aqara", "description": "Temperature and humidity sensor"}},
        {"ieee_address": IEEE["LUM-0"], "type": "Router", "friendly_name": "lab-lamp",
         "definition": {"model": "LED1545G12", "vendor": "IKEA", "description": "TRADFRI bulb"}},
        {"ieee_address": IEEE["hall"], "type": "EndDevice", "friendly_name": "hall-sensor",
         "definition": {"model": "SNZB-02", "vendor": "SONOFF", "description": "Temperature and humidity sensor"}},
    ]
    retained = [f"{prefix}/bridge/devices", f"{prefix}/lab-lamp/availability"]
    worker = new_worker(twin_db, mqtt_url)
    try:
        with running(worker.run):
            assert worker.connected.wait(10)
            with publisher(mqtt_url) as client:
                publish(client, [
                    (f"{prefix}/bridge/devices", orjson.dumps(bridge), True),
                    (f"{prefix}/bridge/state", orjson.dumps({"state": "online"}), True),
                    (f"{prefix}/lab-lamp/availability", orjson.dumps({"state": "online"}), True),
                    (f"{prefix}/floor1/lab/air", orjson.dumps({"temperature": 22.5, "humidity": "45", "battery": 87,
                                                                 "linkquality": 120, "voltage": 3005, "co2": None}), False),
                    (f"{prefix}/lab-lamp", orjson.dumps({"state": "ON", "brightness": 127, "linkquality": 200}), False),
                    (f"{prefix}/lab-lamp/set", orjson.dumps({"state": "OFF"}), False),  # a command: not telemetry
                    (f"{prefix}/hall-sensor", orjson.dumps({"temperature": 20.0, "humidity": 50}), False),
                    (f"{prefix}/floor1/lab/air", b"{not json", False),
                    (f"{prefix}/floor1/lab/air", orjson.dumps({"temperature": 999, "humidity": 44}), False),
                ])
                wait_for(lambda: stored_readings(twin_db) >= 7 and len(letters(twin_db)) >= 2
                         and count(twin_db, "SELECT count(*) FROM hardware_seen WHERE messages > 0") >= 1)
                assert readings(twin_db) == [
                    ("ENV-0", "humidity", 45.0), ("ENV-0", "humidity", 44.0), ("ENV-0", "link_quality", 120.0),
                    ("ENV-0", "temperature", 22.5),
                    ("LUM-0", "dimming", pytest.approx(50.0, abs=0.01)), ("LUM-0", "link_quality", 200.0),
                    ("LUM-0", "on", 1.0)]
                reasons = letters(twin_db)
                assert len(reasons) == 2 and "bad JSON" in reasons[0] and "temperature" in reasons[1] \
                    and "outside physical range" in reasons[1]
                assert status(twin_db, "ENV-0")[1] == 87.0
                assert status(twin_db, "LUM-0")[0] == "online"
                with connection(twin_db) as conn:
                    [hall] = ids.unmapped_hardware(conn, site_id=site)
                    assert (hall.kind, hall.hardware_id, hall.address, hall.model, hall.messages) == (
                        "ieee", IEEE["hall"][2:], "hall-sensor", "SNZB-02", 1)
                    # a planner binds it: what it sends next is stored (what it sent before is not)
                    ids.bind(conn, site, [ids.Binding("ENV-1", "ieee", hall.hardware_id)])

                def sent_and_stored() -> bool:
                    publish(client, [(f"{prefix}/hall-sensor", orjson.dumps({"temperature": 20.5}), False)])
                    return any(d == "ENV-1" for d, _, _ in readings(twin_db))
                wait_for(sent_and_stored, interval=1.0)
                assert {(m, v) for d, m, v in readings(twin_db) if d == "ENV-1"} == {("temperature", 20.5)}
            assert worker.connected.is_set()
    finally:
        clear_retained(mqtt_url, retained)


def test_an_adapter_enabled_while_ingest_runs_is_subscribed(twin_db, mqtt_url, site):
    """``campus-twin adapters enable`` needs no restart of ingest: the worker reads the sites' adapters again."""
    prefix = f"z2m-{uuid.uuid4().hex[:8]}"
    with connection(twin_db) as conn:
        ids.bind(conn, site, [ids.Binding("ENV-0", "ieee", IEEE["ENV-0"][2:])])
    worker = new_worker(twin_db, mqtt_url)
    worker.adapters_refresh_s = 0.2
    with running(worker.run):
        assert worker.connected.wait(10)
        with connection(twin_db) as conn:
            ids.enable_adapter(conn, site, "zigbee2mqtt", prefix)
        with publisher(mqtt_url) as client:
            def sent_and_stored() -> bool:
                publish(client, [(f"{prefix}/{IEEE['ENV-0']}", orjson.dumps({"co2": 640}), False)])
                return stored_readings(twin_db) > 0
            wait_for(sent_and_stored, interval=0.5)
    assert {(d, m) for d, m, _ in readings(twin_db)} == {("ENV-0", "co2")}


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def test_chirpstack_uplinks_duplicates_counter_gap_null_object_join_status(twin_db, mqtt_url, site):
    app, eui = str(uuid.uuid4()), "70b3d57ed005a1b2"
    prefix = f"application/{app}"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "chirpstack", prefix)
        ids.bind(conn, site, [ids.Binding("ENV-1", "deveui", eui)])
    now = datetime.now(UTC).replace(microsecond=0)
    info = {"tenantId": str(uuid.uuid4()), "tenantName": "Campus", "applicationId": app, "applicationName": "air",
            "deviceProfileId": str(uuid.uuid4()), "deviceProfileName": "Milesight AM319", "deviceName": "lab-air",
            "devEui": eui, "tags": {}}

    def up(fcnt: int, ts: datetime, obj: object, rssi: tuple[int, ...] = (-80,)) -> bytes:
        return orjson.dumps({"deduplicationId": str(uuid.uuid4()), "time": iso(ts), "deviceInfo": info,
                             "devAddr": "00189440", "fCnt": fcnt, "fPort": 85, "data": "AXVkAmdAAQ==", "object": obj,
                             "rxInfo": [{"gatewayId": f"00800000a0000{i}", "rssi": r, "snr": 9.0}
                                        for i, r in enumerate(rssi)]})
    t = f"{prefix}/device/{eui}/event"
    first = up(10, now - timedelta(seconds=60), {"temperature": 23.8, "humidity": 62, "co2": 936}, (-80, -61))
    worker = new_worker(twin_db, mqtt_url)
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            publish(client, [
                (f"{t}/join", orjson.dumps({"deduplicationId": str(uuid.uuid4()), "time": iso(now - timedelta(minutes=5)),
                                            "deviceInfo": info, "devAddr": "00189440"}), False),
                (f"{t}/up", first, False),
                (f"{t}/up", first, False),  # the same uplink again (a second ChirpStack, a redelivery)
                (f"{t}/up", up(12, now - timedelta(seconds=30), {"co2": "950"}), False),  # fCnt 11 lost
                (f"{t}/up", up(13, now - timedelta(seconds=20), None, (-90, -70)), False),  # no codec on the profile
                (f"{t}/status", orjson.dumps({"deduplicationId": str(uuid.uuid4()), "time": iso(now),
                                              "deviceInfo": info, "margin": 7, "batteryLevel": 77.5}), False),
            ])
            wait_for(lambda: stored_readings(twin_db) >= 4 and letters(twin_db)
                     and (status(twin_db, "ENV-1") or (None, None))[1] == 77.5)
    assert readings(twin_db) == [("ENV-1", "co2", 936.0), ("ENV-1", "co2", 950.0), ("ENV-1", "humidity", 62.0),
                                 ("ENV-1", "temperature", 23.8)]
    [reason] = letters(twin_db)
    assert "no decoded object" in reason
    state, battery, rssi, gaps, last_seq = status(twin_db, "ENV-1")
    assert (state, battery, rssi, gaps, last_seq) == ("online", 77.5, -70.0, 1, 13)  # the best gateway's


def test_the_things_stack_uplinks_strings_missing_payload_join(twin_db, mqtt_url, site):
    app, tenant, device, eui = f"school-{uuid.uuid4().hex[:6]}", "ttn", "lab-co2", "a84041000181c061"
    prefix = f"v3/{app}@{tenant}"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "tts", prefix)
        ids.bind(conn, site, [ids.Binding("ENV-2", "deveui", eui)])
    now = datetime.now(UTC).replace(microsecond=0)
    ids_doc = {"device_id": device, "application_ids": {"application_id": app}, "dev_eui": eui.upper(),
               "join_eui": "0000000000000000", "dev_addr": "260B1234"}

    def up(fcnt: int, ts: datetime, decoded: object) -> bytes:
        msg = {"f_port": 2, "f_cnt": fcnt, "frm_payload": "CZgGPAK8", "received_at": iso(ts),
               "rx_metadata": [{"gateway_ids": {"gateway_id": "school-gw", "eui": "B827EBFFFE123456"},
                                "rssi": -97, "channel_rssi": -97, "snr": 6.5}],
               "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
                            "frequency": "868100000"}}
        if decoded is not None:
            msg["decoded_payload"] = decoded
        return orjson.dumps({"end_device_ids": ids_doc, "correlation_ids": ["as:up:01H"], "received_at": iso(ts),
                             "uplink_message": msg})
    t = f"{prefix}/devices/{device}"
    worker = new_worker(twin_db, mqtt_url)
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url) as client:
            publish(client, [
                (f"{t}/join", orjson.dumps({"end_device_ids": ids_doc, "received_at": iso(now - timedelta(minutes=3)),
                                            "join_accept": {"session_key_id": "AYf"}}), False),
                (f"{t}/up", up(1, now - timedelta(seconds=50), {"temperature": "21.5", "co2": 700, "humidity": None}),
                 False),
                (f"{t}/up", up(2, now - timedelta(seconds=40), None), False),  # no formatter output
            ])
            wait_for(lambda: stored_readings(twin_db) >= 2 and letters(twin_db))
    assert readings(twin_db) == [("ENV-2", "co2", 700.0), ("ENV-2", "temperature", 21.5)]
    [reason] = letters(twin_db)
    assert "decoded" in reason
    assert status(twin_db, "ENV-2")[0] == "online" and status(twin_db, "ENV-2")[2] == -97.0


def test_tasmota_sensor_state_lwt_through_the_broker(twin_db, mqtt_url, site):
    prefix, plug = f"tas-{uuid.uuid4().hex[:8]}", "tasmota_1A2B3C"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "tasmota", prefix)
        ids.bind(conn, site, [ids.Binding("LUM-1", "tasmota", plug)])
    lwt = f"{prefix}/tele/{plug}/LWT"
    worker = new_worker(twin_db, mqtt_url)
    try:
        with running(worker.run):
            assert worker.connected.wait(10)
            with publisher(mqtt_url) as client:
                publish(client, [
                    (lwt, "Online", True),
                    (f"{prefix}/tele/{plug}/STATE", orjson.dumps({
                        "Time": "2026-12-04T16:02:11", "Uptime": "0T01:02:03", "POWER": "ON", "Dimmer": 40,
                        "Wifi": {"AP": 1, "SSId": "campus", "RSSI": 76, "Signal": -62, "LinkCount": 1}}), False),
                    (f"{prefix}/tele/{plug}/SENSOR", orjson.dumps({
                        "Time": "2026-12-04T16:02:11", "ENERGY": {"TotalStartTime": "2026-09-01T08:00:00", "Total": 1.5,
                                                                 "Yesterday": 0.2, "Today": 0.1, "Power": 36,
                                                                 "Voltage": 229, "Current": 0.16},
                        "SHT3X": {"Temperature": "24.1", "Humidity": 40.2, "DewPoint": 9.9}, "TempUnit": "C"}), False),
                    (f"{prefix}/tele/{plug}/SENSOR", b"\x00\xff", False),
                ])
                wait_for(lambda: stored_readings(twin_db) >= 6 and letters(twin_db))
        got = {(m, v) for d, m, v in readings(twin_db) if d == "LUM-1"}
        assert got == {("on", 1.0), ("dimming", 40.0), ("energy", 1500.0), ("power", 36.0), ("temperature", 24.1),
                       ("humidity", 40.2)}
        assert len(letters(twin_db)) == 1
        assert status(twin_db, "LUM-1")[0] == "online" and status(twin_db, "LUM-1")[2] == -62.0
    finally:
        clear_retained(mqtt_url, [lwt])


def test_a_dashboard_command_reaches_zigbee2mqtt_and_the_lamps_next_state_acknowledges_it(twin_db, mqtt_url, site):
    from dashboard.commands import CommandBridge
    from tests.test_device_commands import listening
    from twin.database import open_pool
    from twin.storage import commands

    prefix = f"z2m-{uuid.uuid4().hex[:8]}"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "zigbee2mqtt", prefix)
        ids.bind(conn, site, [ids.Binding("LUM-0", "ieee", IEEE["LUM-0"][2:])])
        lamp = conn.execute("SELECT id FROM devices WHERE device_id = 'LUM-0'").fetchone()[0]
    bridge_list = orjson.dumps([{"ieee_address": IEEE["LUM-0"], "type": "Router", "friendly_name": "room 101/lamp",
                                 "definition": {"model": "LED1545G12", "vendor": "IKEA"}}])
    worker = new_worker(twin_db, mqtt_url)
    pool = open_pool(twin_db, name="test-adapter-command")
    try:
        with running(worker.run), listening(mqtt_url, [f"{prefix}/+/+/set", f"{prefix}/+/set"]) as commanded:
            assert worker.connected.wait(10)
            with publisher(mqtt_url) as client:
                publish(client, [(f"{prefix}/bridge/devices", bridge_list, True)])
                with connection(twin_db) as conn:
                    wait_for(lambda: ids.route(conn, lamp))  # ingest learnt how the lamp is reached
                bridge = CommandBridge(mqtt_url, pool).start()
                try:
                    command_id = bridge.send(site, "LUM-0", lamp, "dim", 50, sent_by="op")
                finally:
                    bridge.close()
                wait_for(lambda: commanded)
                assert [(m.topic, orjson.loads(m.payload)) for m in commanded] == [
                    (f"{prefix}/room 101/lamp/set", {"state": "ON", "brightness": 127})]
                with connection(twin_db) as conn:
                    assert commands.command(conn, command_id).acked_at is None
                    # zigbee2mqtt publishes the lamp's new state: that is the acknowledgement
                    publish(client, [(f"{prefix}/room 101/lamp",
                                      orjson.dumps({"state": "ON", "brightness": 127, "linkquality": 90}), False)])
                    row = wait_for(lambda: (c := commands.command(conn, command_id)).acked_at and c)
                    assert row.ok is True and row.ack["from"] == "state" and row.ack["dimming"] == pytest.approx(50, abs=1)
    finally:
        pool.close()
        clear_retained(mqtt_url, [f"{prefix}/bridge/devices"])


def test_a_retained_state_without_its_own_time_is_not_stored_as_now(twin_db, mqtt_url, site):
    """zigbee2mqtt's ``retain: true`` devices: the broker hands their last state to every new subscription;
    dated by its receipt it would make a sensor that died long ago look current. Its status is kept."""
    prefix = f"z2m-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}/{IEEE['ENV-0']}"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "zigbee2mqtt", prefix)
        ids.bind(conn, site, [ids.Binding("ENV-0", "ieee", IEEE["ENV-0"][2:])])
    with publisher(mqtt_url) as client:
        publish(client, [(topic, orjson.dumps({"temperature": 30.0, "battery": 12}), True)])
    worker = new_worker(twin_db, mqtt_url)
    try:
        with running(worker.run):
            assert worker.connected.wait(10)
            with publisher(mqtt_url) as client:
                publish(client, [(topic, orjson.dumps({"temperature": 21.0}), False)])
                wait_for(lambda: stored_readings(twin_db) >= 1)
        assert readings(twin_db) == [("ENV-0", "temperature", 21.0)]
        assert status(twin_db, "ENV-0")[1] == 12.0
    finally:
        clear_retained(mqtt_url, [topic])


def test_messages_of_an_adapter_disabled_while_ingest_was_stopped_are_ignored_not_dead_lettered(twin_db, mqtt_url, site):
    """Its persistent session still holds the subscription: the messages are not the twin's anymore."""
    prefix = f"z2m-{uuid.uuid4().hex[:8]}"
    with connection(twin_db) as conn:
        ids.enable_adapter(conn, site, "zigbee2mqtt", prefix)
    first = new_worker(twin_db, mqtt_url)
    with running(first.run):
        assert first.connected.wait(10)
    with connection(twin_db) as conn:
        ids.disable_adapter(conn, site, "zigbee2mqtt", prefix)
    again = IngestWorker(twin_db, mqtt_url, client_id=first.client_id, share_group=first.share_group, batch_wait_s=0.05)
    with running(again.run):
        assert again.connected.wait(10)
        with publisher(mqtt_url) as client:
            publish(client, [(f"{prefix}/lab-sensor", orjson.dumps({"temperature": 20.0}), False),
                             (f"campus/v1/{site}/ENV-0/telemetry", orjson.dumps({"metrics": {"co2": 500}}), False)])
            wait_for(lambda: stored_readings(twin_db) >= 1)
    assert letters(twin_db) == [] and readings(twin_db) == [("ENV-0", "co2", 500.0)]
    assert again.counters.extra.get("unrouted") == 1
