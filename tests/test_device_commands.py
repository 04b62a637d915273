"""Commands to devices reached through an adapter (issue 19): the pure encoders of each adapter, the
acknowledgement that follows a device's next state, and the dashboard's bridge publishing through a real
broker to a device bound to a zigbee2mqtt friendly name (native devices keep their ``cmd`` topic)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from dashboard.commands import CommandBridge, CommandError
from tests.helpers import small_twin, wait_for
from twin.database import connection, open_pool
from twin.messaging.device_commands import DeviceCommandError, encode
from twin.messaging.mqtt import MqttClient, Received, Subscription
from twin.storage import commands
from twin.storage import identities as ids
from twin.storage.identities import Route
from twin.storage.model import save_model

LAMP_IEEE = "00158d0001a2b3c5"
LAMP_EUI = "70b3d57ed005a1b2"
APP_UUID = "2b0d3f4e-8a1c-4c55-9d7e-1f2a3b4c5d6e"


def z2m(prefix: str = "zigbee2mqtt", name: str = "lab-lamp") -> Route:
    return Route("zigbee2mqtt", prefix, name, "ieee", LAMP_IEEE)


def chirpstack(prefix: str = "application/+", address: str = APP_UUID, **options: object) -> Route:
    return Route("chirpstack", prefix, address, "deveui", LAMP_EUI, dict(options))


def tts(prefix: str = "v3/+", address: str = "campus-lights@ttn/lum-101", **options: object) -> Route:
    return Route("tts", prefix, address, "deveui", LAMP_EUI, dict(options))


def tasmota(prefix: str = "", topic: str = "tasmota_1A2B3C") -> Route:
    return Route("tasmota", prefix, topic, "tasmota", topic)


def as_json(encoded: tuple[str, bytes, int]) -> tuple[str, object, int]:
    topic, payload, qos = encoded
    return topic, orjson.loads(payload), qos


# -- pure encoding ------------------------------------------------------------------------------------
def test_zigbee2mqtt_set_topic_with_state_and_brightness_of_254_steps() -> None:
    assert encode(z2m(), "on", None, "c1") == ("zigbee2mqtt/lab-lamp/set", b'{"state":"ON"}', 1)
    assert encode(z2m(), "off", None, "c1") == ("zigbee2mqtt/lab-lamp/set", b'{"state":"OFF"}', 1)
    assert encode(z2m("z2m/school-3", "1F/lab-lamp"), "dim", 40, "c1") == (
        "z2m/school-3/1F/lab-lamp/set", b'{"state":"ON","brightness":102}', 1)
    assert as_json(encode(z2m(), "dim", 100, "c1"))[1] == {"state": "ON", "brightness": 254}
    assert as_json(encode(z2m(), "dim", 0, "c1"))[1] == {"state": "ON", "brightness": 0}
    assert as_json(encode(z2m(), "dim", "75", "c1"))[1] == {"state": "ON", "brightness": 191}  # 190.5, half up


def test_chirpstack_downlink_to_the_application_of_the_route() -> None:
    assert as_json(encode(chirpstack(), "on", None, "c1")) == (
        f"application/{APP_UUID}/device/{LAMP_EUI}/command/down",
        {"devEui": LAMP_EUI, "confirmed": True, "fPort": 10, "object": {"state": "ON"}}, 1)
    assert as_json(encode(chirpstack("application/7", "7", fport=15), "dim", 40, "c1")) == (
        f"application/7/device/{LAMP_EUI}/command/down",
        {"devEui": LAMP_EUI, "confirmed": True, "fPort": 15, "object": {"state": "ON", "brightness": 40}}, 1)
    assert as_json(encode(chirpstack("lns/application/+"), "off", None, "c1"))[:2] == (
        f"lns/application/{APP_UUID}/device/{LAMP_EUI}/command/down",
        {"devEui": LAMP_EUI, "confirmed": True, "fPort": 10, "object": {"state": "OFF"}})


def test_the_things_stack_downlink_push_with_a_decoded_payload() -> None:
    assert as_json(encode(tts(), "dim", 40, "c1")) == (
        "v3/campus-lights@ttn/devices/lum-101/down/push",
        {"downlinks": [{"f_port": 10, "decoded_payload": {"state": "ON", "brightness": 40}, "priority": "NORMAL",
                        "confirmed": True}]}, 1)
    topic, body, _ = as_json(encode(tts(fport=3), "off", None, "c1"))
    assert topic == "v3/campus-lights@ttn/devices/lum-101/down/push"
    assert body == {"downlinks": [{"f_port": 3, "decoded_payload": {"state": "OFF"}, "priority": "NORMAL",
                                   "confirmed": True}]}
    # a prefix naming the application itself: the route's application part is not needed
    assert encode(tts("v3/campus-lights@ttn", "lum-101"), "on", None, "c1")[0] == \
        "v3/campus-lights@ttn/devices/lum-101/down/push"


def test_tasmota_power_and_dimmer_commands_as_text() -> None:
    assert encode(tasmota(), "on", None, "c1") == ("cmnd/tasmota_1A2B3C/POWER", b"ON", 1)
    assert encode(tasmota(), "off", None, "c1") == ("cmnd/tasmota_1A2B3C/POWER", b"OFF", 1)
    assert encode(tasmota(), "dim", 40, "c1") == ("cmnd/tasmota_1A2B3C/Dimmer", b"40", 1)
    assert encode(tasmota("school3/lights"), "on", None, "c1") == ("school3/lights/cmnd/tasmota_1A2B3C/POWER", b"ON", 1)


@pytest.mark.parametrize(("route", "action", "level"), [
    (z2m(), "explode", None),
    (z2m(), "auto", None),
    (z2m(), "dim", 140),
    (z2m(), "dim", -1),
    (z2m(), "dim", None),
    (z2m(), "dim", "bright"),
    (z2m(), "dim", float("nan")),
    (tasmota(), "dim", 101),
    (Route("knx", "knx", "1/2/3", "serial", "x"), "on", None),
    (chirpstack(address=""), "on", None),              # no application id for the '+' level
    (tts(address="lum-101"), "on", None),                # v3/+ and no application@tenant
    (z2m("zigbee2mqtt/+"), "on", None),                  # a wildcard left in the topic
    (z2m(name=""), "on", None),
])
def test_bad_commands_and_routes_are_refused(route: Route, action: str, level: object) -> None:
    with pytest.raises(DeviceCommandError):
        encode(route, action, level, "c1")  # type: ignore[arg-type]
    assert issubclass(DeviceCommandError, ValueError)


def test_a_zigbee2mqtt_name_deeper_than_the_dashboards_broker_grant_is_refused() -> None:
    from twin.messaging import device_commands, mqtt_auth

    assert device_commands.Z2M_NAME_LEVELS == 3 and mqtt_auth.Z2M_NAME_LEVELS == device_commands.Z2M_NAME_LEVELS
    assert encode(z2m(name="bldg/floor/lamp"), "on", None, "c1")[0] == "zigbee2mqtt/bldg/floor/lamp/set"
    # the broker would drop bldg/floor/room/lamp/set silently (the dashboard may publish {prefix}/+/+/+/set at most)
    with pytest.raises(DeviceCommandError, match="at most 3 levels"):
        encode(z2m(name="bldg/floor/room/lamp"), "off", None, "c1")


# -- acknowledgements from the device's next state ------------------------------------------------------
def _keys(conn, site: str) -> dict[str, int]:
    return dict(conn.execute("SELECT device_id, id FROM devices WHERE site_id = %s", (site,)).fetchall())


def test_a_state_acknowledges_the_open_commands_it_satisfies(db_url: str) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)  # a device clock just after the send
    with connection(db_url) as conn:
        save_model(conn, small_twin("a1"))
        key = _keys(conn, "a1")
        lamp, other = key["LUM-0"], key["LUM-1"]
        for cid, device, action, level in (("on", lamp, "on", None), ("dim", lamp, "dim", 40.0),
                                           ("off", lamp, "off", None), ("dim45", lamp, "dim", 45.0),
                                           ("old", lamp, "on", None), ("later", lamp, "on", None),
                                           ("other", other, "on", None)):
            commands.record_command(conn, cid, "a1", device, action, level, sent_by="t")
        conn.execute("UPDATE commands SET sent_at = now() - interval '11 minutes' WHERE id = 'old'")
        # committed after the reporting transaction began: not acknowledged by what that transaction stores
        conn.execute("UPDATE commands SET sent_at = now() + interval '1 second' WHERE id = 'later'")

        # on, at 102/254 of brightness (40.16 %): "on" and "dim 40" are done, not "off" nor "dim 45"
        assert commands.ack_from_state(conn, [(lamp, at, 1.0, 102 * 100 / 254)]) == 2
        done = {cid: commands.command(conn, cid) for cid in ("on", "dim", "off", "dim45", "old", "later", "other")}
        assert {cid for cid, row in done.items() if row.acked_at is not None} == {"on", "dim"}
        assert done["dim"].ok is True
        assert done["dim"].ack == {"from": "state", "on": 1, "dimming": pytest.approx(40.157, abs=1e-3),
                                   "ts": at.isoformat()}

        # off with its brightness kept (zigbee2mqtt reports it): "off" only, not "dim 45"
        assert commands.ack_from_state(conn, [(lamp, at, 0.0, 45.0)]) == 1
        assert commands.command(conn, "off").ack == {"from": "state", "on": 0, "dimming": 45.0,
                                                     "ts": at.isoformat()}
        assert commands.command(conn, "dim45").acked_at is None
        # a report without on/off but at 44.5 %: dim 45 is done; nothing is acknowledged twice
        assert commands.ack_from_state(conn, [(lamp, at, None, 44.5), (lamp, at, 1.0, 40.0)]) == 1
        assert commands.command(conn, "dim45").ack["on"] is None
        assert commands.ack_from_state(conn, [(lamp, at, 1.0, 40.0)]) == 0
        assert not commands.record_ack(conn, "on", True, {"id": "on", "ok": True})  # already acknowledged
        for cid in ("old", "later", "other"):
            assert commands.command(conn, cid).acked_at is None, cid
        assert commands.ack_from_state(conn, []) == 0


def test_a_state_reported_before_the_command_was_sent_does_not_acknowledge_it(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("a2"))
        lamp = _keys(conn, "a2")["LUM-0"]
        commands.record_command(conn, "off", "a2", lamp, "off", sent_by="t")
        sent = commands.command(conn, "off").sent_at
        slack = timedelta(seconds=commands.STATE_ACK_CLOCK_SKEW_S)
        # the lamp was off an hour ago, or just beyond a device clock's slack: that state predates the command
        assert commands.ack_from_state(conn, [(lamp, sent - timedelta(hours=1), 0.0, None),
                                              (lamp, sent - slack - timedelta(seconds=1), 0.0, None)]) == 0
        assert commands.command(conn, "off").acked_at is None
        # a device clock a little behind the server's: the state answers the command
        assert commands.ack_from_state(conn, [(lamp, sent - slack + timedelta(seconds=1), 0.0, None)]) == 1
        assert commands.command(conn, "off").ack["ts"] == (sent - slack + timedelta(seconds=1)).isoformat()


# -- the dashboard's bridge through a real broker -------------------------------------------------------
@contextmanager
def listening(mqtt_url: str, filters: list[str]) -> Iterator[list[Received]]:
    """Messages on ``filters`` as they arrive (subscribed before the block starts)."""
    received: list[Received] = []
    ready = threading.Event()
    mqtt = MqttClient(mqtt_url, f"test-listen-{uuid.uuid4().hex[:8]}", persistent=False,
                      on_subscribed=lambda refused: ready.set())
    mqtt.declare([Subscription(f, received.append, qos=1) for f in filters])
    mqtt.connect()
    assert ready.wait(10), "listener could not subscribe"
    try:
        yield received
    finally:
        mqtt.close()


def test_the_bridge_publishes_through_zigbee2mqtt_and_natively_otherwise(db_url: str, mqtt_url: str) -> None:
    site, prefix = f"z{uuid.uuid4().hex[:6]}", f"z2m-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site))
        key = _keys(conn, site)
        ids.bind(conn, site, [ids.Binding("LUM-0", "ieee", LAMP_IEEE)], by="planner")
        ids.enable_adapter(conn, site, "zigbee2mqtt", prefix)
        ids.note_seen(conn, [ids.Seen(site, "ieee", LAMP_IEEE, "zigbee2mqtt", "lab-lamp", "LED1545G12",
                                      datetime.now(UTC))])
    pool = open_pool(db_url, name="test-device-commands")
    try:
        with listening(mqtt_url, [f"{prefix}/#", f"campus/v1/{site}/+/cmd"]) as received:
            bridge = CommandBridge(mqtt_url, pool).start()
            try:
                through = bridge.send(site, "LUM-0", key["LUM-0"], "on", sent_by="op")
                native = bridge.send(site, "LUM-1", key["LUM-1"], "dim", 30, sent_by="op")
                with pytest.raises(CommandError):
                    bridge.send(site, "LUM-0", key["LUM-0"], "dim", 140)
                wait_for(lambda: len(received) >= 2, timeout=15)
            finally:
                bridge.close()
    finally:
        pool.close()
    by_topic = {m.topic: m.payload for m in received}
    assert len(received) == 2, received
    assert by_topic[f"{prefix}/lab-lamp/set"] == b'{"state":"ON"}'
    assert orjson.loads(by_topic[f"campus/v1/{site}/LUM-1/cmd"]) == {"id": native, "action": "dim", "level": 30.0}
    with connection(db_url) as conn:
        row = commands.command(conn, through)
        assert (row.device_id, row.action, row.level, row.sent_by, row.acked_at) == ("LUM-0", "on", None, "op", None)
        assert [r.id for r in commands.room_commands(conn, row_room(conn, site, "LUM-0"))] == [through]
        # the lamp's next state (as the ingest worker passes it on) acknowledges it on the room page
        assert commands.ack_from_state(conn, [(key["LUM-0"], datetime.now(UTC), 1.0, 100.0)]) == 1
        assert commands.room_commands(conn, row_room(conn, site, "LUM-0"))[0].ok is True


def row_room(conn, site: str, device: str) -> int:
    return conn.execute("SELECT room_id FROM devices WHERE site_id = %s AND device_id = %s", (site, device)).fetchone()[0]
