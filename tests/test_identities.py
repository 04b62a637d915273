"""Hardware identities and site adapters in storage (schema 16): unique per kind, bind all or nothing,
IFC identities replaced by a revision while bound ones stay, prefixes owned by one site."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.helpers import small_twin
from twin.database import connection
from twin.identities import IdentityError, candidates, normalize, parse_identity
from twin.storage import identities as ids
from twin.storage.model import save_model


def test_normal_forms_and_refusals() -> None:
    assert normalize("ieee", "0x00158D0001A2B3C4") == "00158d0001a2b3c4"
    assert normalize("deveui", "70-B3-D5-7E-D0-05-A1-B2") == "70b3d57ed005a1b2"
    assert parse_identity("urn:dev:ow:10e2073a01080063") == ("urn", "urn:dev:ow:10e2073a01080063")
    assert ("mac", "0024befffe804ff1") in candidates("urn:dev:mac:0024befffe804ff1")
    for kind, raw in (("ieee", "0x123"), ("mac", "zz:zz:zz:zz:zz:zz"), ("urn", "urn:dev:xx:1"),
                      ("serial", "a b"), ("serial", "a/b"), ("nfc", "1")):
        with pytest.raises(IdentityError):
            normalize(kind, raw)


def test_bind_is_unique_per_kind_and_all_or_nothing(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        save_model(conn, small_twin("s2"))
        assert ids.bind(conn, "s1", [ids.Binding("ENV-0", "ieee", "00158d0001a2b3c4"),
                                     ids.Binding("LUM-0", "deveui", "70b3d57ed005a1b2")], by="planner") == 2
        assert ids.bind(conn, "s1", [ids.Binding("ENV-0", "ieee", "00158d0001a2b3c4")]) == 0  # again: nothing new
        with pytest.raises(ids.BindError) as refused:
            ids.bind(conn, "s2", [ids.Binding("ENV-1", "serial", "SN-9"),               # fine alone
                                  ids.Binding("ENV-0", "ieee", "00158d0001a2b3c4"),     # s1's ENV-0 has it
                                  ids.Binding("NOPE", "mac", "240ac4123456")])          # no such device
        assert len(refused.value.problems) == 2
        assert "already bound to 'ENV-0' at site 's1'" in str(refused.value)
        assert [(r.site_id, r.device_id, r.kind) for r in ids.identities(conn)] == [
            ("s1", "ENV-0", "ieee"), ("s1", "LUM-0", "deveui")]  # s2's good line was not bound either
        found = ids.resolver(conn)[("ieee", "00158d0001a2b3c4")]
        assert (found.site_id, found.device_id) == ("s1", "ENV-0")


def test_ifc_identities_follow_the_revision_bound_ones_stay(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        ids.bind(conn, "s1", [ids.Binding("ENV-0", "deveui", "70b3d57ed005a1b2")])
        assert ids.replace_ifc(conn, "s1", {"ENV-1": [("serial", "SN-1")], "LUM-1": [("serial", "SN-2")]}) == []
        problems = ids.replace_ifc(conn, "s1", {"ENV-1": [("serial", "SN-1")], "LUM-2": [("deveui", "70b3d57ed005a1b2")]})
        assert problems and "already bound to 'ENV-0'" in problems[0]
        assert {(r.device_id, r.hardware_id, r.source) for r in ids.identities(conn, site_id="s1")} == {
            ("ENV-0", "70b3d57ed005a1b2", "bind"), ("ENV-1", "SN-1", "ifc")}  # SN-2 left with its revision


def test_adapters_prefix_belongs_to_one_site_and_unmapped_hardware(db_url: str) -> None:
    at = datetime(2026, 12, 4, 8, tzinfo=UTC)
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        save_model(conn, small_twin("s2"))
        ids.enable_adapter(conn, "s1", "zigbee2mqtt", "z2m-s1")
        with pytest.raises(ids.BindError):
            ids.enable_adapter(conn, "s2", "zigbee2mqtt", "z2m-s1")
        with pytest.raises(IdentityError):
            ids.enable_adapter(conn, "s2", "zigbee2mqtt", "z2m/#")
        assert [(a.site_id, a.prefix) for a in ids.adapters(conn)] == [("s1", "z2m-s1")]
        ids.note_seen(conn, [ids.Seen("s1", "ieee", "00158d0001a2b3c4", "zigbee2mqtt", "lab-sensor", "WSDCGQ11LM", at, 3),
                             ids.Seen("s1", "ieee", "00158d0001a2b3c5", "zigbee2mqtt", "lab-lamp", None, at, 0)])
        assert ids.count_unmapped_hardware(conn, site_id="s1") == 2
        ids.bind(conn, "s1", [ids.Binding("LUM-0", "ieee", "00158d0001a2b3c5")])
        [left] = ids.unmapped_hardware(conn, site_id="s1")
        assert (left.address, left.model, left.messages) == ("lab-sensor", "WSDCGQ11LM", 3)
        route = ids.route(conn, conn.execute("SELECT id FROM devices WHERE device_id = 'LUM-0' AND site_id = 's1'")
                          .fetchone()[0])
        assert route is not None and (route.adapter, route.prefix, route.address) == ("zigbee2mqtt", "z2m-s1", "lab-lamp")
        assert ids.addresses(conn, "zigbee2mqtt")[("s1", None, "lab-sensor")] == ("ieee", "00158d0001a2b3c4")


def test_prefixes_that_share_topics_are_refused(db_url: str) -> None:
    """A message under two subscriptions would come twice and belong to whichever matched first."""
    with connection(db_url) as conn:
        save_model(conn, small_twin("aa"))
        save_model(conn, small_twin("bb"))
        ids.enable_adapter(conn, "aa", "chirpstack", "application/+")
        ids.enable_adapter(conn, "aa", "tasmota", "")
        for site, adapter, prefix, other in (("bb", "chirpstack", "application/appB", "chirpstack of site 'aa'"),
                                             ("bb", "zigbee2mqtt", "tele", "tasmota of site 'aa'"),
                                             ("bb", "zigbee2mqtt", "application", "chirpstack of site 'aa'"),
                                             ("bb", "zigbee2mqtt", "+", "the twin's own topics"),
                                             ("bb", "zigbee2mqtt", "campus", "the twin's own topics")):
            with pytest.raises(ids.BindError) as refused:
                ids.enable_adapter(conn, site, adapter, prefix)
            assert other in str(refused.value), (prefix, str(refused.value))
        ids.enable_adapter(conn, "aa", "chirpstack", "application/+", {"fport": 12})  # the same again: options
        ids.enable_adapter(conn, "bb", "zigbee2mqtt", "zigbee2mqtt-bb")
        assert [(a.site_id, a.adapter, a.prefix) for a in ids.adapters(conn)] == [
            ("aa", "chirpstack", "application/+"), ("aa", "tasmota", ""), ("bb", "zigbee2mqtt", "zigbee2mqtt-bb")]


def test_the_twins_adapter_filters_are_the_decoders_own() -> None:
    from ingest.adapters.registry import adapter
    from twin.identities import ADAPTERS, adapter_filters

    for name, default in ADAPTERS.items():
        for prefix in {default, "x/y", ""} - ({""} if name != "tasmota" else set()):
            assert adapter_filters(name, prefix) == adapter(name).filters(prefix)


def test_a_planners_binding_of_what_the_bim_says_outlives_the_revision_that_drops_it(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        ids.replace_ifc(conn, "s1", {"ENV-0": [("serial", "SN-1")]})
        assert ids.bind(conn, "s1", [ids.Binding("ENV-0", "serial", "SN-1")], by="planner") == 0
        ids.replace_ifc(conn, "s1", {})  # a revision without it
        assert [(r.device_id, r.hardware_id, r.source, r.bound_by) for r in ids.identities(conn)] == [
            ("ENV-0", "SN-1", "bind", "planner")]


def test_two_zigbee2mqtt_instances_of_one_site_each_reach_their_own_lamp(db_url: str) -> None:
    at = datetime(2026, 12, 4, 8, tzinfo=UTC)
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        ids.enable_adapter(conn, "s1", "zigbee2mqtt", "zA")
        ids.enable_adapter(conn, "s1", "zigbee2mqtt", "zB")
        ids.bind(conn, "s1", [ids.Binding("LUM-0", "ieee", "00158d0001a2b3c4"),
                              ids.Binding("LUM-1", "ieee", "00158d0001a2b3c5")])
        ids.note_seen(conn, [ids.Seen("s1", "ieee", "00158d0001a2b3c4", "zigbee2mqtt", "room1/lamp", None, at, 0, "zA"),
                             ids.Seen("s1", "ieee", "00158d0001a2b3c5", "zigbee2mqtt", "room1/lamp", None, at, 0, "zB")])
        keys = dict(conn.execute("SELECT device_id, id FROM devices").fetchall())
        assert (ids.route(conn, keys["LUM-0"]).prefix, ids.route(conn, keys["LUM-1"]).prefix) == ("zA", "zB")
        names = ids.addresses(conn, "zigbee2mqtt")
        assert names[("s1", "zA", "room1/lamp")] != names[("s1", "zB", "room1/lamp")]


def test_a_bridge_list_without_a_name_drops_it(db_url: str) -> None:
    """zigbee2mqtt's device list is complete: a renamed device's old name names nothing any more."""
    import orjson

    from ingest.routing import AdapterRouter
    from twin.database import connect

    at = datetime(2026, 12, 4, 8, tzinfo=UTC)
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        ids.enable_adapter(conn, "s1", "zigbee2mqtt", "z")
        ids.bind(conn, "s1", [ids.Binding("LUM-0", "ieee", "00158d0001a2b3c4")])
        conn.commit()
        lookup = connect(db_url, autocommit=True)
        try:
            router = AdapterRouter(ids.adapters(conn), lambda: lookup)
            [config] = router.configs

            def listed(name: str) -> bytes:
                return orjson.dumps([{"ieee_address": "0x00158d0001a2b3c4", "type": "Router", "friendly_name": name}])
            router.route(config, "z/bridge/devices", listed("old/lamp"), at)
            assert router.route(config, "z/old/lamp", b'{"state": "ON"}', at).reports
            router.route(config, "z/bridge/devices", listed("new/lamp"), at)
            assert router.route(config, "z/new/lamp", b'{"state": "ON"}', at).reports
            gone = router.route(config, "z/old/lamp", b'{"state": "ON"}', at)
            assert not gone.reports and "not in the adapter's device list" in gone.errors[0]
        finally:
            lookup.close()


def test_a_zigbee2mqtt_groups_state_is_not_a_device(db_url: str) -> None:
    """A group's state is published whenever a member changes: not dead-lettered as an unknown device."""
    import orjson

    from ingest.routing import AdapterRouter
    from twin.database import connect

    at = datetime(2026, 12, 4, 8, tzinfo=UTC)
    with connection(db_url) as conn:
        save_model(conn, small_twin("s1"))
        ids.enable_adapter(conn, "s1", "zigbee2mqtt", "z")
        conn.commit()
        lookup = connect(db_url, autocommit=True)
        try:
            router = AdapterRouter(ids.adapters(conn), lambda: lookup)
            [config] = router.configs
            before = router.route(config, "z/classroom lights", b'{"state": "ON", "brightness": 200}', at)
            assert "not in the adapter's device list" in before.errors[0]
            router.route(config, "z/bridge/groups", orjson.dumps(
                [{"id": 1, "friendly_name": "classroom lights", "members": [{"ieee_address": "0x00158d0001a2b3c4",
                                                                            "endpoint": 1}], "scenes": []}]), at)
            after = router.route(config, "z/classroom lights", b'{"state": "ON", "brightness": 200}', at)
            assert (after.reports, after.errors, after.seen) == ([], [], [])
        finally:
            lookup.close()
