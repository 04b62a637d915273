"""Accounts of the sites' adapters (zigbee2mqtt, ChirpStack, The Things Stack bridge, each Tasmota device) and
what the services may do with the adapters' topics: grants() itself, then a real Mosquitto started from the
generated configuration (docs/security.md, "Adapters: gateways and network servers")."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from paho.mqtt.client import topic_matches_sub

from tests.conftest import require_mosquitto
from tests.helpers import small_twin, wait_for
from tests.test_mqtt_security import Client, broker_folder, generate
from twin.database import connection
from twin.identities import ADAPTERS, CHIRPSTACK, TASMOTA, TTS, ZIGBEE2MQTT
from twin.messaging import contract, mqtt_auth
from twin.messaging.broker import ConfiguredMosquitto
from twin.messaging.mqtt_auth import Grants, covers, grants, overlap
from twin.storage import identities, mqtt_accounts
from twin.storage.identities import Binding, Route
from twin.storage.model import save_model

#: Site t1's adapters in the broker tests, and t2's (another school).
T1 = ((ZIGBEE2MQTT, "zigbee2mqtt"), (CHIRPSTACK, "application/7"), (TTS, "v3/school-1@campus"), (TASMOTA, ""))
T2 = ((ZIGBEE2MQTT, "school2/zigbee2mqtt"), (CHIRPSTACK, "application/9"), (TASMOTA, "school2"))
PLUG = "tasmota_1A2B3C"  # LUM-0's Tasmota topic


# --- grants(), pure ----------------------------------------------------------------------------------


def test_each_adapter_account_gets_its_own_topics() -> None:
    assert grants("integration", "zigbee2mqtt@hq", "hq", ((ZIGBEE2MQTT, "zigbee2mqtt/hq"),)) == Grants(
        ("zigbee2mqtt/hq/#",), ("zigbee2mqtt/hq/#",))
    assert grants("integration", "chirpstack@hq", "hq", ((CHIRPSTACK, "application/7"),)) == Grants(
        ("application/7/device/+/event/+",), ("application/7/device/+/command/down",),
        subscribe_only=("application/+/device/+/command/+",))
    assert grants("integration", "tts@hq", "hq", ((TTS, "v3/app@tenant"),)) == Grants(
        ("v3/app@tenant/devices/+/+",), ("v3/app@tenant/devices/+/down/push",))
    assert grants("integration", PLUG, "hq", ((TASMOTA, ""),)) == Grants(
        (f"tele/{PLUG}/#", f"stat/{PLUG}/#"), (f"cmnd/{PLUG}/#",))
    assert grants("integration", PLUG, "hq", ((TASMOTA, "hq/plugs"),)) == Grants(
        (f"hq/plugs/tele/{PLUG}/#", f"hq/plugs/stat/{PLUG}/#"), (f"hq/plugs/cmnd/{PLUG}/#",))
    with pytest.raises(ValueError, match="serves no adapter"):
        grants("integration", "zigbee2mqtt@hq", "hq")


def test_services_reach_the_enabled_adapters_topics() -> None:
    enabled = ((ZIGBEE2MQTT, "zigbee2mqtt"), (CHIRPSTACK, "application/+"), (TTS, "v3/+"), (TASMOTA, ""))
    native = grants("ingest", "ingest", None)
    ingest = grants("ingest", "ingest", None, enabled)
    assert ingest.shared and ingest.publish == ()
    assert ingest.subscribe == (*native.subscribe, "zigbee2mqtt/#", "application/+/device/+/event/+",
                                "v3/+/devices/+/+", "tele/+/#", "stat/+/#")
    dashboard = grants("dashboard", "dashboard", None, enabled)
    assert dashboard.subscribe == grants("dashboard", "dashboard", None).subscribe
    assert dashboard.publish[1:] == ("zigbee2mqtt/+/set", "zigbee2mqtt/+/+/set", "zigbee2mqtt/+/+/+/set",
                                     "application/+/device/+/command/down", "v3/+/devices/+/down/push",
                                     "cmnd/+/POWER", "cmnd/+/Dimmer")
    # the other accounts are not touched by the adapters
    for role, user, site in (("device", "ENV-0", "hq"), ("gateway", "gateway@hq", "hq"), ("monitor", "monitor", None)):
        assert grants(role, user, site, enabled) == grants(role, user, site)


def test_what_ingest_subscribes_and_the_dashboard_sends_falls_within_their_grants() -> None:
    """The adapters' own declarations (ingest/adapters/<name>.filters, twin.messaging.device_commands.encode)
    against the table."""
    from ingest.adapters.registry import adapter as decoder
    from twin.messaging.device_commands import encode

    for adapter, prefix in ((ZIGBEE2MQTT, "zigbee2mqtt/hq"), (CHIRPSTACK, "application/+"), (TTS, "v3/+"),
                            (TASMOTA, ""), (TASMOTA, "hq")):
        ingest = grants("ingest", "ingest", None, ((adapter, prefix),))
        dashboard = grants("dashboard", "dashboard", None, ((adapter, prefix),))
        for f in decoder(adapter).filters(prefix):
            assert any(covers(g, f) for g in ingest.subscribe), (adapter, f)
        address = {CHIRPSTACK: "7", TTS: "app@tenant/lamp-1", TASMOTA: PLUG}.get(adapter, "hall/lamp")
        route = Route(adapter, prefix, address, "ieee", "0011223344556677")
        for action, level in (("on", None), ("dim", 40.0)):
            topic = encode(route, action, level, "c1")[0]
            assert any(topic_matches_sub(g, topic) for g in dashboard.publish), (adapter, topic)


def test_covers_and_overlap() -> None:
    assert covers("a/#", "a/b/+") and covers("a/+/c", "a/x/c") and covers("a/+/c", "a/+/c")
    assert covers("a/#", "a") and covers("#", "a/b")
    assert not covers("a/+/c", "a/#") and not covers("a/x/c", "a/+/c") and not covers("a/b", "a/b/c")
    assert overlap("application/+/#", "application/7/#") and overlap("+/#", "campus/v1/#")
    assert overlap("a/#", "a") and overlap("a/+", "+/b")
    assert not overlap("zigbee2mqtt/#", "school2/zigbee2mqtt/#") and not overlap("a/b", "a/c")
    assert not overlap("a/+", "a/b/c")


# --- issuing and the broker's files --------------------------------------------------------------------


def _configure(db_url: str, t1: tuple[tuple[str, str], ...] = T1) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=2))
        save_model(conn, small_twin("t2", rooms=1))
        for site, enabled in (("t1", t1), ("t2", T2)):
            for adapter, prefix in enabled:
                identities.enable_adapter(conn, site, adapter, prefix)
        identities.bind(conn, "t1", [Binding("LUM-0", TASMOTA, PLUG), Binding("LUM-1", TASMOTA, "LUM-1")])


def test_credentials_lists_the_adapter_accounts_and_the_broker_files_hold_them(db_url: str, tmp_path: Path) -> None:
    _configure(db_url)
    out = tmp_path / "broker"
    from twin.cli import main

    result = CliRunner().invoke(main, ["--database-url", db_url, "devices", "credentials", "--site", "t1",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {(r["username"], r["role"]) for r in csv.DictReader((out / "credentials.csv").open())}
    # LUM-1's Tasmota topic is its device id: the hardware speaks Tasmota, so its account is the Tasmota one
    integration = {("zigbee2mqtt@t1", "integration"), ("chirpstack@t1", "integration"), ("tts@t1", "integration"),
                   (PLUG, "integration"), ("LUM-1", "integration")}
    assert integration <= rows and ("LUM-1", "device") not in rows and ("LUM-0", "device") in rows
    assert not any(user.endswith("@t2") for user, _ in rows)
    assert "issued 12 passwords (1 ingest, 1 dashboard, 1 monitor, 1 gateway, 5 integration, 3 device)" in result.output
    assert "skipped 'LUM-1': its hardware speaks Tasmota under this name" in result.output
    acl = (out / "acl").read_text()
    assert f"user {PLUG}\ntopic write tele/{PLUG}/#\ntopic write stat/{PLUG}/#\ntopic read cmnd/{PLUG}/#\n" in acl
    assert "user zigbee2mqtt@t1\ntopic write zigbee2mqtt/#\ntopic read zigbee2mqtt/#\n" in acl
    assert "topic read school2/tele/+/#\n" in acl  # ingest reads t2's adapters too
    passwd = (out / "passwd").read_text()
    assert all(f"{user}:$7$" in passwd for user, _ in integration)


def test_disabled_adapters_and_unbound_tasmota_topics_lose_their_accounts(db_url: str, tmp_path: Path) -> None:
    _configure(db_url)
    with connection(db_url) as conn:
        mqtt_auth.issue(conn, "t1")
        identities.disable_adapter(conn, "t1", ZIGBEE2MQTT, "zigbee2mqtt")
        identities.unbind(conn, TASMOTA, PLUG)
        names = {a["username"] for a in mqtt_accounts.accounts(conn)}
        assert "zigbee2mqtt@t1" not in names and PLUG not in names and "chirpstack@t1" in names
        # a second prefix of one adapter at a site gets a numbered name; a name stays with its prefix
        identities.enable_adapter(conn, "t1", ZIGBEE2MQTT, "zigbee2mqtt")
        identities.enable_adapter(conn, "t1", ZIGBEE2MQTT, "annex/zigbee2mqtt")
        issued = mqtt_auth.issue(conn, "t1")
        again = mqtt_auth.issue(conn, "t1")
        prefixes = {a["username"]: a["prefix"] for a in mqtt_accounts.accounts(conn) if a["adapter"] == ZIGBEE2MQTT}
        stale = mqtt_accounts.owner(conn, PLUG)
        # a prefix given up by one school and taken by another: the new school's account, with its own name
        identities.disable_adapter(conn, "t1", CHIRPSTACK, "application/7")
        identities.enable_adapter(conn, "t2", CHIRPSTACK, "application/7")
        mqtt_auth.issue(conn, "t2")
        chirpstack = {(a["username"], a["prefix"]) for a in mqtt_accounts.accounts(conn) if a["adapter"] == CHIRPSTACK}
    assert chirpstack == {("chirpstack@t2", "application/7"), ("chirpstack.2@t2", "application/9")}
    assert prefixes == {"zigbee2mqtt@t1": "zigbee2mqtt", "zigbee2mqtt.2@t1": "annex/zigbee2mqtt"}
    assert stale is None  # the unbound topic's account was dropped when t1's accounts were issued again
    assert {u for u, _, r in issued.rows if r == "integration"} == {u for u, _, r in again.rows if r == "integration"}


def test_an_account_reaching_into_other_topics_is_not_issued(db_url: str) -> None:
    """A prefix whose topics overlap the twin's own contract or another adapter's: its account would speak for
    devices that are not its own, so it gets none, and the reason is told."""
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=1))
        save_model(conn, small_twin("t2", rooms=1))
        # enable_adapter refuses such prefixes (tests/test_identities.py); a database edited by hand still
        # gets no account for them
        conn.execute("""INSERT INTO site_adapters (site_id, adapter, prefix) VALUES
                          ('t1', 'zigbee2mqtt', 'campus'),          -- campus/# holds campus/v1/...
                          ('t1', 'chirpstack', 'application/7'),
                          ('t2', 'chirpstack', 'application/+')     -- every application, t1's too""")
        identities.enable_adapter(conn, "t1", TTS, "v3/school-1@campus")
        issued = mqtt_auth.issue(conn, "t1")
        issued_t2 = mqtt_auth.issue(conn, "t2")
    skipped = dict(issued.skipped)
    assert "campus/v1/#" in skipped["zigbee2mqtt@t1"]
    assert "site 't2'" in skipped["chirpstack@t1"] and "site 't1'" in dict(issued_t2.skipped)["chirpstack@t2"]
    assert ("tts@t1", "integration") in {(u, r) for u, _, r in issued.rows}


# --- a real Mosquitto from the generated files -----------------------------------------------------------


@pytest.fixture
def adapters_broker(db_url: str, tmp_path: Path) -> Iterator[tuple[ConfiguredMosquitto, dict[str, str]]]:
    """Sites t1 and t2 with adapters enabled, t1's credentials issued, Mosquitto started from the files."""
    require_mosquitto()
    _configure(db_url)
    with broker_folder() as (out, owner):
        passwords, port = generate(db_url, out, owner)
        broker = ConfiguredMosquitto(out / "mosquitto.conf", port, tmp_path / "mosquitto.log")
        try:
            yield broker, passwords
        finally:
            broker.stop()


def test_ingest_with_its_account_stores_what_zigbee2mqtt_sends(adapters_broker, db_url: str) -> None:
    """The worker's own subscriptions to every enabled adapter are granted: a zigbee2mqtt sensor's state,
    published with the zigbee2mqtt account, is stored for the device its IEEE address is bound to."""
    from ingest.worker import IngestWorker
    from tests.helpers import running, stored_readings
    from tests.test_mqtt_security import _url

    broker, pw = adapters_broker
    with connection(db_url) as conn:
        identities.bind(conn, "t1", [Binding("ENV-0", "ieee", "00158d0001a2b3c4")])
    bridge = [{"ieee_address": "0x00158d0001a2b3c4", "type": "EndDevice", "friendly_name": "lab-sensor",
               "definition": {"model": "WSDCGQ11LM", "vendor": "Aqara", "description": "Temperature sensor"}}]
    worker = IngestWorker(db_url, _url(broker, "ingest", pw["ingest"]), client_id="acl-ingest",
                          share_group=contract.SHARE_GROUP)
    z2m = Client(broker.port, "zigbee2mqtt@t1", pw["zigbee2mqtt@t1"])
    try:
        with running(worker.run):
            assert worker.connected.wait(15)
            z2m.publish("zigbee2mqtt/bridge/devices", orjson.dumps(bridge))

            def sent_and_stored() -> int:  # the worker may not have read the bridge's list yet: send again
                z2m.publish("zigbee2mqtt/lab-sensor", orjson.dumps({"temperature": 22.5}))
                return stored_readings(db_url)
            wait_for(sent_and_stored, timeout=20, interval=0.5)
            assert worker.connected.is_set()
        with connection(db_url) as conn:
            stored = conn.execute("""SELECT DISTINCT d.device_id, r.value FROM readings r
                                     JOIN devices d ON d.id = r.device_id""").fetchall()
        assert stored == [("ENV-0", 22.5)]
    finally:
        z2m.close()


def _delivered(observer: Client, publisher: Client, refused: list[str], allowed: str) -> list[str]:
    """Publish ``refused`` topics, then ``allowed``, from one client; once ``allowed`` reached ``observer``
    (a client's messages arrive in order), every topic it received since."""
    start = len(observer.messages)
    for topic in [*refused, allowed]:
        publisher.publish(topic, b"{}")
    wait_for(lambda: any(t == allowed for t, _ in observer.messages[start:]), timeout=10)
    return [t for t, _ in observer.messages[start:]]


def test_the_zigbee2mqtt_account_speaks_only_under_its_prefix(adapters_broker) -> None:
    broker, pw = adapters_broker
    ingest = Client(broker.port, "ingest", pw["ingest"])
    z2m = Client(broker.port, "zigbee2mqtt@t1", pw["zigbee2mqtt@t1"])
    dashboard = Client(broker.port, "dashboard", pw["dashboard"])
    try:
        assert not z2m.refused
        for f in (f"$share/{contract.SHARE_GROUP}/zigbee2mqtt/#", "school2/zigbee2mqtt/#", contract.TELEMETRY_FILTER):
            assert not ingest.subscribe(f)[0].is_failure, f
        assert not z2m.subscribe("zigbee2mqtt/lab-lamp/set")[0].is_failure
        assert not z2m.subscribe("zigbee2mqtt/#")[0].is_failure  # what zigbee2mqtt itself subscribes to
        for f in ("campus/v1/#", contract.TELEMETRY_FILTER, "school2/zigbee2mqtt/#", "#", "application/+/#"):
            assert z2m.subscribe(f)[0].is_failure, f
        got = _delivered(ingest, z2m, ["campus/v1/t1/ENV-0/telemetry", "school2/zigbee2mqtt/lab-sensor"],
                         "zigbee2mqtt/lab-sensor")
        assert got == ["zigbee2mqtt/lab-sensor"]
        # the dashboard commands a lamp; zigbee2mqtt receives it on its base topic
        dashboard.publish("zigbee2mqtt/lab-lamp/set", b'{"state": "ON"}')
        dashboard.publish("zigbee2mqtt/hall/lamp/set", b'{"state": "OFF"}')  # a friendly name with a '/'
        wait_for(lambda: ("zigbee2mqtt/hall/lamp/set", b'{"state": "OFF"}') in z2m.messages, timeout=10)
        assert ("zigbee2mqtt/lab-lamp/set", b'{"state": "ON"}') in z2m.messages
    finally:
        for c in (ingest, z2m, dashboard):
            c.close()


def test_the_dashboard_may_command_adapters_but_not_speak_for_their_devices(adapters_broker) -> None:
    broker, pw = adapters_broker
    ingest = Client(broker.port, "ingest", pw["ingest"])
    z2m = Client(broker.port, "zigbee2mqtt@t1", pw["zigbee2mqtt@t1"])
    dashboard = Client(broker.port, "dashboard", pw["dashboard"])
    try:
        assert not ingest.subscribe("zigbee2mqtt/#")[0].is_failure
        assert not z2m.subscribe("zigbee2mqtt/#")[0].is_failure
        got = _delivered(ingest, dashboard, ["zigbee2mqtt/lab-sensor", "zigbee2mqtt/bridge/request/permit_join"],
                         "zigbee2mqtt/x/set")
        assert got == ["zigbee2mqtt/x/set"]
        wait_for(lambda: ("zigbee2mqtt/x/set", b"{}") in z2m.messages, timeout=10)
    finally:
        for c in (ingest, z2m, dashboard):
            c.close()


def test_a_tasmota_device_publishes_only_its_own_tele_and_stat(adapters_broker) -> None:
    broker, pw = adapters_broker
    ingest = Client(broker.port, "ingest", pw["ingest"])
    plug = Client(broker.port, PLUG, pw[PLUG])
    other = Client(broker.port, "LUM-1", pw["LUM-1"])
    dashboard = Client(broker.port, "dashboard", pw["dashboard"])
    try:
        assert not plug.refused
        for f in ("tele/+/#", "stat/+/#"):
            assert not ingest.subscribe(f)[0].is_failure
        assert not plug.subscribe(f"cmnd/{PLUG}/#")[0].is_failure
        for f in ("cmnd/LUM-1/#", "cmnd/tasmotas/#", "tele/+/#", "campus/v1/#"):
            assert plug.subscribe(f)[0].is_failure, f
        got = _delivered(ingest, plug, ["tele/LUM-1/SENSOR", "stat/LUM-1/POWER", f"cmnd/{PLUG}/POWER",
                                        "school2/tele/x/SENSOR", "campus/v1/t1/LUM-0/telemetry"],
                         f"tele/{PLUG}/SENSOR")
        assert got == [f"tele/{PLUG}/SENSOR"]
        assert _delivered(ingest, plug, [], f"stat/{PLUG}/RESULT") == [f"stat/{PLUG}/RESULT"]
        assert _delivered(ingest, other, [f"tele/{PLUG}/LWT"], "tele/LUM-1/LWT") == ["tele/LUM-1/LWT"]
        # commands: the dashboard switches the plug; the group topic reaches no one
        dashboard.publish("cmnd/tasmotas/POWER", b"OFF")
        dashboard.publish(f"cmnd/{PLUG}/POWER", b"ON")
        wait_for(lambda: plug.messages, timeout=10)
        assert plug.messages == [(f"cmnd/{PLUG}/POWER", b"ON")]
    finally:
        for c in (ingest, plug, other, dashboard):
            c.close()


def test_network_server_accounts(adapters_broker) -> None:
    """ChirpStack subscribes to its command topic with '+' for the application (and the command): granted, but
    it receives only its own application's downlinks. The Things Stack's bridge publishes uplinks and takes
    downlinks of its application only."""
    broker, pw = adapters_broker
    ingest = Client(broker.port, "ingest", pw["ingest"])
    chirpstack = Client(broker.port, "chirpstack@t1", pw["chirpstack@t1"])
    tts = Client(broker.port, "tts@t1", pw["tts@t1"])
    dashboard = Client(broker.port, "dashboard", pw["dashboard"])
    eui = "70b3d57ed005a1b2"
    try:
        for f in ("application/7/device/+/event/+", "v3/school-1@campus/devices/+/+"):
            assert not ingest.subscribe(f)[0].is_failure
        assert not chirpstack.subscribe("application/+/device/+/command/+")[0].is_failure
        assert chirpstack.subscribe("application/9/#")[0].is_failure
        assert not tts.subscribe("v3/school-1@campus/devices/+/down/push")[0].is_failure
        assert tts.subscribe("v3/+/devices/+/down/push")[0].is_failure
        got = _delivered(ingest, chirpstack, [f"application/9/device/{eui}/event/up", "campus/v1/t1/ENV-0/telemetry",
                                              f"application/7/device/{eui}/command/down"],
                         f"application/7/device/{eui}/event/up")
        assert got == [f"application/7/device/{eui}/event/up"]
        got = _delivered(ingest, tts, ["v3/other@campus/devices/lamp-1/up"], "v3/school-1@campus/devices/lamp-1/up")
        assert got == ["v3/school-1@campus/devices/lamp-1/up"]
        for topic in (f"application/9/device/{eui}/command/down", f"application/7/device/{eui}/command/down",
                      "v3/school-1@campus/devices/lamp-1/down/push"):
            dashboard.publish(topic, b"{}")
        wait_for(lambda: chirpstack.messages and tts.messages, timeout=10)
        assert chirpstack.messages == [(f"application/7/device/{eui}/command/down", b"{}")]
        assert tts.messages == [("v3/school-1@campus/devices/lamp-1/down/push", b"{}")]
    finally:
        for c in (ingest, chirpstack, tts, dashboard):
            c.close()


def test_every_adapter_is_in_the_table() -> None:
    for adapter in ADAPTERS:
        prefix = "" if adapter == TASMOTA else "p"
        assert grants("ingest", "ingest", None, ((adapter, prefix),)) != grants("ingest", "ingest", None), adapter


def test_a_tasmota_topic_that_is_another_devices_id_gets_no_account(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=2))
        identities.enable_adapter(conn, "t1", TASMOTA, "")
        mqtt_auth.issue(conn, "t1")
        identities.bind(conn, "t1", [Binding("LUM-0", TASMOTA, "ENV-1")])  # ENV-1 is a device of the twin
        issued = mqtt_auth.issue(conn, "t1")
        taken = mqtt_accounts.owner(conn, "ENV-1")
    assert issued.skipped == [("ENV-1", "username already taken by a device account of site 't1'")]
    assert taken is not None and taken[0] == "device"
