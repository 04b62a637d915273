"""The dashboard against a real database: figures, data access, callbacks, pages over HTTP and in a browser."""

from __future__ import annotations

import base64
import functools
import importlib
import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dash
import numpy as np
import orjson
import pytest
from dash.exceptions import PreventUpdate
from plotly.utils import PlotlyJSONEncoder
from shapely.geometry import MultiPolygon, box

from dashboard import data, history, uploads
from dashboard.app import close_app, create_app
from dashboard.commands import CommandError, command_payload
from dashboard.figures import (
    BAD,
    COMPLIANCE,
    DEVICE_HEALTH,
    GOOD,
    NEUTRAL,
    NO_DATA,
    STATE_COLOURS,
    STATUS_COLOURS,
    band_intervals,
    colour_for,
    floorplan_figure,
    room_from_click,
    room_style,
    series_csv,
    with_derived,
)
from dashboard.serve import serve
from dashboard.sessions import group_sessions
from tests.helpers import PASSWORD, Login, add_user, http_login, login, wait_for
from twin.database import connection
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.messaging import contract
from twin.messaging.mqtt import MqttClient, Received, Subscription
from twin.metrics import BY_NAME
from twin.monitoring.site_standards import SiteStandards, standards_for
from twin.monitoring.standards import DEFAULT_RULES, SUMMER, WINTER
from twin.storage import alarms, audit, commands, devices, kpis
from twin.storage.devices import CloudPanel
from twin.storage.events import add_dead_letters, update_status
from twin.storage.model import device_keys, save_model
from twin.storage.monitoring import set_rule_override
from twin.storage.plans import PlanRoom, storey_rooms
from twin.storage.readings import ReadingWriter, room_latest

CO2 = BY_NAME["co2"].metric_id
TEMPERATURE = BY_NAME["temperature"].metric_id
OCCUPANCY = BY_NAME["occupancy"].metric_id
ILLUMINANCE = BY_NAME["illuminance"].metric_id
SESSION = 2026112301


@dataclass(frozen=True)
class KnownTwin:
    """What the fixture stored: ids to look things up and the values written."""

    url: str
    storey_id: int
    building_id: int
    rooms: dict[str, int]  # room name -> rooms.id
    latest_co2: dict[str, float]  # room name -> latest CO2
    m1: datetime  # first minute bucket of room 101's CO2
    m2: datetime
    keys: dict[tuple[str, str], int]
    alarm_id: int  # an open critical alarm at hq


def _model() -> TwinModel:
    rooms = (
        Room("R101", "S1", "101", use="classroom", footprint=box(0, 0, 8, 6), area_m2=48.0, height_m=3.2),
        Room("R102", "S1", "102", use="classroom", footprint=box(8, 0, 16, 6), area_m2=48.0, height_m=3.2),
        Room("R103", "S1", "103", long_name="化学实验室", use="lab", footprint=box(16, 0, 24, 6), area_m2=48.0),
        Room("R104", "S1", "104 store", use="other"),  # no footprint: not drawn
    )
    devices = tuple(
        Device(f"env-{r.name[:3]}", f"D{r.global_id}", "env_sensor", "IfcSensor", room_global_id=r.global_id,
               storey_global_id="S1", mapping="containment", x=float(i * 8 + 1), y=1.0, z=1.0)
        for i, r in enumerate(rooms)
    ) + (
        Device("lum-101", "LUM101", "luminaire", "IfcLightFixture", room_global_id="R101", storey_global_id="S1",
               mapping="containment", x=4.0, y=3.0, z=3.0),
        Device("pan-101", "PAN101", "panel", "IfcAudioVisualAppliance", room_global_id="R101",
               storey_global_id="S1", mapping="containment", x=0.5, y=3.0, z=1.2),
        Device("orphan-1", "ORPH1", "env_sensor", "IfcSensor"),  # in the BIM, in no room
    )
    return TwinModel(
        site=Site("hq", "Futian HQ School", role="headquarters", latitude=22.54, longitude=114.05),
        buildings=(Building("B1", "Teaching block"),),
        storeys=(Storey("S1", "B1", "1F", 0.0),),
        rooms=rooms,
        devices=devices,
    )


def _member() -> TwinModel:
    return TwinModel(
        site=Site("m01", "Member School 1", latitude=22.60, longitude=114.10),
        buildings=(Building("MB", "主楼"),),
        storeys=(Storey("MS1", "MB", "一层", 0.0),),
        rooms=(Room("MR1", "MS1", "音乐教室", use="classroom", footprint=box(0, 0, 9, 7)),),
        devices=(Device("m-pan", "MPAN", "panel", "IfcAudioVisualAppliance", room_global_id="MR1",
                        storey_global_id="MS1", mapping="containment", x=1.0, y=1.0),),
    )


@pytest.fixture
def known_twin(db_url: str) -> KnownTwin:
    """A headquarters and a member school; CO2 in three rooms, a cloud class, an alarm, a dead letter."""
    now = datetime.now(UTC)
    m1 = now.replace(second=0, microsecond=0) - timedelta(minutes=10)
    if m1.minute == 59:  # both minutes in one hour, whatever the clock says (the hourly charts count them as one);
        m1 += timedelta(minutes=1)  # later, not earlier: the cloud class must stay within SESSION_FRESH
    m2 = m1 + timedelta(minutes=1)
    s = timedelta(seconds=1)
    with connection(db_url) as conn:
        save_model(conn, _model())
        save_model(conn, _member())
        keys = device_keys(conn)
        d101, d102, d103 = keys["hq", "env-101"], keys["hq", "env-102"], keys["hq", "env-103"]
        pan, mpan, lum = keys["hq", "pan-101"], keys["m01", "m-pan"], keys["hq", "lum-101"]
        metric = {m: BY_NAME[m].metric_id for m in ("cloud_session", "cloud_role", "panel_state", "input_source")}
        rows = [
            (m1 + 5 * s, d101, CO2, 700.0), (m1 + 35 * s, d101, CO2, 900.0),  # minute 1: mean 800
            (m2 + 5 * s, d101, CO2, 790.0), (m2 + 35 * s, d101, CO2, 810.0),  # minute 2: mean 800, latest 810
            (m2 + 10 * s, d101, TEMPERATURE, 25.0),
            (m2 + 10 * s, d102, CO2, 1200.0),
            (m2 + 10 * s, d103, CO2, 1700.0),
            (m2 + 10 * s, lum, BY_NAME["on"].metric_id, 1.0),
            (m2 + 10 * s, pan, metric["cloud_session"], float(SESSION)), (m2 + 10 * s, pan, metric["cloud_role"], 1.0),
            (m2 + 10 * s, pan, metric["panel_state"], 2.0), (m2 + 10 * s, pan, metric["input_source"], 3.0),
            (m2 + 10 * s, mpan, metric["cloud_session"], float(SESSION)),
            (m2 + 10 * s, mpan, metric["cloud_role"], 2.0), (m2 + 10 * s, mpan, metric["panel_state"], 2.0),
        ]
        ReadingWriter(conn).write(rows)
        update_status(conn, d103, "offline")
        alarm_id = alarms.raise_alarm(conn, "hq", "co2_high", "critical", "CO2 above 1500 ppm",
                                      room_id=None, device_key=d103)
        alarms.raise_alarm(conn, "m01", "device_offline", "warning", "panel silent")
        add_dead_letters(conn, [(now, "campus/v1/hq/GHOST-1/telemetry", "unknown device 'GHOST-1' at site 'hq'",
                                 b"{}")])
        conn.commit()
        storey_id, building_id = conn.execute(
            "SELECT s.id, s.building_id FROM storeys s WHERE global_id = 'S1'").fetchone()
        room_ids = dict(conn.execute("SELECT name, id FROM rooms").fetchall())
        conn.execute("UPDATE alarms SET room_id = %s WHERE id = %s", (room_ids["103"], alarm_id))
    return KnownTwin(db_url, storey_id, building_id, room_ids, {"101": 810.0, "102": 1200.0, "103": 1700.0}, m1, m2,
                     keys, alarm_id)


ADMIN = "admin-test"


def signed_in(app: dash.Dash, lang: str | None = None) -> dict[str, str]:
    """Request headers of an admin logged in through the app's login form (the user is made once per database)."""
    key = "tests.admin_login"
    if key not in app.server.extensions:
        from twin.storage.users import UserError

        try:
            add_user(app.server.extensions["tests.db_url"], ADMIN, "admin")
        except UserError:
            pass
        app.server.extensions[key] = login(app.server.test_client(), ADMIN)
    headers = dict(app.server.extensions[key].headers)
    if lang:
        headers["Cookie"] += f"; campus_twin_lang={lang}"
    return headers


def make_app(url: str, **kwargs: object) -> dash.Dash:
    """``create_app`` that remembers its database, for :func:`signed_in`."""
    app = create_app(url, **kwargs)
    app.server.extensions["tests.db_url"] = url
    return app


@pytest.fixture
def app(known_twin: KnownTwin) -> Iterator[dash.Dash]:
    app = make_app(known_twin.url)
    try:
        yield app
    finally:
        close_app(app)


def _json(component: object) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


def _room_colours(fig: dict) -> dict[str, str]:
    return {t["name"]: t["fillcolor"] for t in fig["data"] if "fillcolor" in t}  # the outlines (not the hit points)


def _page(name: str):
    return importlib.import_module(f"dashboard.pages.{name}")


# --- pure figures ---------------------------------------------------------------------------


DECEMBER = SiteStandards("hq", date(2026, 12, 14))  # winter in the default climate zone
JULY = SiteStandards("hq", date(2026, 7, 6))
TEMPERATURE_RULE = DEFAULT_RULES["temperature_out_of_range"]


def expected(standards: SiteStandards, metric: str, value: float, use: str) -> str:
    """The colour a room must have: its verdict under the site's rules (what the rule engine judges by)."""
    return STATUS_COLOURS[standards.judge(metric, value, use).status]


def test_plan_colours_are_the_verdicts_of_the_rules() -> None:
    cases = {"co2": (400, 1000, 1001, 1500, 1501), "temperature": (17.5, 21.9, 22, 28, 28.1),
             "illuminance": (299.9, 300, 750), "humidity": (35, 85), "noise": (44, 46), "pm25": (20, 60)}
    for standards in (DECEMBER, JULY):
        for metric, values in cases.items():
            for use in ("classroom", "lab", "office", "corridor"):
                for v in values:
                    assert colour_for(metric, v, use=use, standards=standards) == expected(standards, metric, v, use)
    assert colour_for("co2", None) == NO_DATA == colour_for("co2", float("nan"))
    assert colour_for("temperature", 35.0, use="corridor", standards=JULY) == NEUTRAL  # no rule judges corridors


def test_a_december_classroom_at_17_5_is_green_and_judged_by_the_summer_band_in_july() -> None:
    """Issue 16: the plan coloured it "marginal" against the summer band in December while no alarm was raised."""
    low_winter, low_summer = TEMPERATURE_RULE.bounds(WINTER)[0], TEMPERATURE_RULE.bounds(SUMMER)[0]
    assert low_winter <= 17.5 < low_summer  # the premise, from the rule set
    values = {"temperature": 17.5, "occupancy": 30.0}
    for metric in ("temperature", COMPLIANCE):
        winter = room_style("101", with_derived(values, None, use="classroom", standards=DECEMBER), metric,
                            use="classroom", standards=DECEMBER)
        summer = room_style("101", with_derived(values, None, use="classroom", standards=JULY), metric,
                            use="classroom", standards=JULY)
        assert winter[0] == GOOD
        assert summer[0] == STATUS_COLOURS[TEMPERATURE_RULE.severity] != GOOD


def test_compliance_takes_the_worst_rule_and_judges_light_only_when_occupied() -> None:
    def compliance(values: dict[str, float]) -> str:
        return colour_for(COMPLIANCE, with_derived(values, None, use="classroom", standards=JULY).get(COMPLIANCE))

    co2, desk = DEFAULT_RULES["classroom_co2_high"], DEFAULT_RULES["desk_illuminance_low"]
    assert compliance({"co2": co2.max - 100, "temperature": 25, "occupancy": 30}) == GOOD
    assert compliance({"co2": co2.max + 100, "temperature": 25, "occupancy": 30}) == STATUS_COLOURS[co2.severity]
    assert compliance({"co2": 800, "illuminance": desk.min - 100, "occupancy": 0}) == NO_DATA  # empty: may be dark
    assert compliance({"co2": 800, "illuminance": desk.min - 100, "occupancy": 30}) == STATUS_COLOURS[desk.severity]
    assert COMPLIANCE not in with_derived({"occupancy": 3}, None, use="classroom", standards=JULY)
    values = with_derived({"co2": 1600}, (1, 4))
    assert values[DEVICE_HEALTH] == 25.0 and colour_for(DEVICE_HEALTH, values[DEVICE_HEALTH]) == BAD
    assert colour_for(DEVICE_HEALTH, with_derived({}, (2, 2))[DEVICE_HEALTH]) == GOOD
    assert DEVICE_HEALTH not in with_derived({}, None)


def test_chart_bands_split_the_view_at_the_rules_bounds_of_the_season() -> None:
    for standards in (DECEMBER, JULY):
        low, high = TEMPERATURE_RULE.bounds(standards.season)
        broken = STATUS_COLOURS[TEMPERATURE_RULE.severity]
        assert band_intervals(standards.bands("temperature", "classroom"), 10, 35) == [
            (10, low, broken), (low, high, GOOD), (high, 35, broken)]
    assert band_intervals(JULY.bands("co2", "classroom"), 400, 900) == [(400, 900, GOOD)]


def test_multipolygon_room_is_one_trace_with_none_separated_rings() -> None:
    rooms = [PlanRoom(7, "split", None, MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)]))]
    fig = floorplan_figure(rooms, {7: {"co2": 500.0}}, "co2")
    assert [t["name"] for t in fig["data"]] == ["split", "labels", "split", "outside"]  # then its hit points
    trace = fig["data"][0]
    assert int(np.isnan(trace["x"]).sum()) == 1 and len(trace["x"]) == 11
    assert set(trace["customdata"]) == {7}
    assert fig["layout"]["yaxis"]["scaleanchor"] == "x"


def test_a_click_on_a_fill_a_vertex_or_a_device_names_the_room() -> None:
    assert room_from_click({"points": [{"curveNumber": 0, "customdata": [5, 5, 5]}]}) == 5
    assert room_from_click({"points": [{"curveNumber": 0, "pointNumber": 2, "customdata": 5}]}) == 5
    assert room_from_click({"points": [{"curveNumber": 0}]}) is None
    assert room_from_click(None) is None


def test_chart_ranges_use_minute_rollups_up_to_a_day_and_hourly_beyond() -> None:
    room = history
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert room.chart_window("1h", now=now) == (now - timedelta(hours=1), now, False)
    assert room.chart_window("24h", now=now)[2] is False
    assert room.chart_window("7d", now=now)[2] is True
    start, end, hourly = room.chart_window("custom", "2026-03-01", "2026-03-01", now=now)
    assert (start, end, hourly) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), False)
    assert room.chart_window("custom", "2026-03-01", "2026-03-10", now=now)[2] is True


def test_csv_has_one_row_per_shown_bucket() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    text = series_csv([(t0, 800.0, 700.0, 900.0), (t0 + timedelta(hours=1), 810.0, 800.0, 820.0)], "co2", "ppm")
    assert text.splitlines() == ["bucket_utc,metric,unit,mean,min,max", "2026-03-01T00:00:00+00:00,co2,ppm,800,700,900",
                                 "2026-03-01T01:00:00+00:00,co2,ppm,810,800,820"]


def test_command_payloads_and_uploads_are_checked() -> None:
    assert command_payload("a", "on") == {"id": "a", "action": "on"}
    with pytest.raises(CommandError):
        command_payload("a", "dim", 140)
    for level in ("bright", None, float("nan"), [50]):  # what a crafted request may carry: refused, no crash
        with pytest.raises(CommandError):
            command_payload("a", "dim", level)  # type: ignore[arg-type]
    assert command_payload("a", "dim", "40") == {"id": "a", "action": "dim", "level": 40.0}
    with pytest.raises(CommandError):
        command_payload("a", "explode")
    bim = uploads
    assert bim.decode_upload("data:application/octet-stream;base64,SUZD") == b"IFC"
    with pytest.raises(bim.UploadError):
        bim.decode_upload("data:x;base64," + "A" * 400, max_bytes=100)
    assert bim.site_id_for("", "new school v2.ifc") == "new-school-v2"
    with pytest.raises(bim.UploadError):
        bim.site_id_for("bad/id", "x.ifc")


def panel(session: float, role: float, site_name: str) -> CloudPanel:
    """A cloud-class panel row (:func:`twin.storage.devices.cloud_panels`) with what grouping reads."""
    return CloudPanel(site_id=site_name, site_name=site_name, site_role="member", device_id="pan", room_id=None,
                      room=None, session=session, role=role, panel_state=None, input_source=None, screen_on=None)


def test_cloud_class_panels_group_by_session() -> None:
    panels = [panel(5, 2.0, "m"), panel(5, 1.0, "hq"), panel(7, 2.0, "n")]
    groups = group_sessions(panels)
    assert [g["session"] for g in groups] == [5, 7]
    assert groups[0]["main"].site_name == "hq" and len(groups[0]["aux"]) == 1
    assert groups[1]["main"] is None


# --- storage for the dashboard ------------------------------------------------------------------


def test_coverage_kpis_count_teaching_rooms_with_reporting_devices(known_twin: KnownTwin) -> None:
    with connection(known_twin.url) as conn:
        k = kpis.site_kpis(conn)
        later = kpis.site_kpis(conn, now=datetime.now(UTC) + timedelta(hours=1))
    hq = k.sites["hq"]
    assert (hq["teaching_rooms"], hq["iot_rooms"]) == (3, 3)  # 101, 102 classrooms and 103 lab all report CO2
    assert (hq["classrooms"], hq["lit_classrooms"], hq["panel_classrooms"]) == (2, 1, 1)  # only 101 has them
    assert hq["iot_coverage"] == 1.0 and hq["lighting_coverage"] == 0.5 and hq["panel_coverage"] == 0.5
    m01 = k.sites["m01"]
    assert (m01["iot_coverage"], m01["lighting_coverage"], m01["panel_coverage"]) == (0.0, 0.0, 1.0)
    assert k.network["iot_rooms"] == 3 and k.network["teaching_rooms"] == 4
    assert k.network["iot_coverage"] == 0.75
    assert later.sites["hq"]["iot_coverage"] == 0.0  # nothing reported within the window an hour from now


def test_alarms_filter_acknowledge_and_keep_history(known_twin: KnownTwin) -> None:
    with connection(known_twin.url) as conn:
        assert [a.site_id for a in alarms.list_alarms(conn)] == ["m01", "hq"]  # newest first
        assert [a.id for a in alarms.list_alarms(conn, site_id="hq", severity="critical", state="open")] == [
            known_twin.alarm_id]
        assert alarms.list_alarms(conn, severity="info") == []
        assert alarms.acknowledge(conn, known_twin.alarm_id, by="li", note="window opened")
        assert not alarms.acknowledge(conn, known_twin.alarm_id, by="li", note="twice")
        acked = alarms.list_alarms(conn, state="acknowledged")
        assert [(a.acked_by, a.note, a.room) for a in acked] == [("li", "window opened", "103")]
        assert alarms.clear(conn, known_twin.alarm_id) and alarms.open_counts(conn) == {"m01": 1}
        assert [a.state for a in alarms.list_alarms(conn, site_id="hq")] == ["closed"]


def test_commands_store_one_ack_each(known_twin: KnownTwin) -> None:
    with connection(known_twin.url) as conn:
        commands.record_command(conn, "c1", "hq", known_twin.keys["hq", "lum-101"], "dim", 40.0, sent_by="t")
        assert commands.command(conn, "c1").acked_at is None
        assert commands.record_ack(conn, "c1", True, {"id": "c1", "ok": True})
        assert not commands.record_ack(conn, "c1", False, {"id": "c1", "ok": False})  # duplicate ack ignored
        assert not commands.record_ack(conn, "nope", True, {})
        rows = commands.room_commands(conn, known_twin.rooms["101"])
    assert [(r.device_id, r.action, r.level, r.ok) for r in rows] == [("lum-101", "dim", 40.0, True)]


def test_unmapped_devices_come_from_dead_letters_and_silent_bim_devices(known_twin: KnownTwin) -> None:
    with connection(known_twin.url) as conn:
        unknown = devices.unknown_publishers(conn)
        silent = {d.device_id for d in devices.never_heard(conn)}
        no_room = [d.device_id for d in devices.unmapped_in_bim(conn)]
    assert [(u.site_id, u.device_id, u.messages) for u in unknown] == [("hq", "GHOST-1", 1)]
    assert silent == {"env-104", "orphan-1"}  # everything else has sent something
    assert no_room == ["orphan-1"]


# --- callbacks against the real database ----------------------------------------------------------


USES = {"101": "classroom", "102": "classroom", "103": "lab"}


def hq_standards(known_twin: KnownTwin) -> SiteStandards:
    with connection(known_twin.url) as conn:
        return standards_for(conn, "hq")


def co2_colours(known_twin: KnownTwin, standards: SiteStandards | None = None) -> dict[str, str]:
    """The fixture's drawn rooms as the rules judge their latest CO2 (a classroom's limit is not a lab's)."""
    standards = standards or hq_standards(known_twin)
    return {n: expected(standards, "co2", known_twin.latest_co2[n], use) for n, use in USES.items()}


def test_floorplan_has_one_trace_per_room_with_footprint_coloured_by_co2(known_twin: KnownTwin) -> None:
    with connection(known_twin.url) as conn:
        rooms = storey_rooms(conn, known_twin.storey_id)
        values = room_latest(conn, [r.room_id for r in rooms])
        standards = standards_for(conn, "hq")
    fig = floorplan_figure(rooms, values, "co2", standards=standards)
    assert len(rooms) == 4 and len(fig["data"]) == 8  # "104 store" has no footprint; the labels, hits, outside
    assert list(fig["data"][3]["text"]) == ["101<br><b>810 ppm</b>", "102<br><b>1200 ppm</b>", "103<br><b>1700 ppm</b>"]
    assert _room_colours(fig) == co2_colours(known_twin, standards)
    assert len(set(_room_colours(fig).values())) > 1  # the fixture tells rooms apart
    for trace in fig["data"][:3]:
        assert set(trace["customdata"]) == {known_twin.rooms[trace["name"]]}
    assert "810 ppm" in fig["data"][4]["text"]  # room 101's hover, on its hit points
    temperature = floorplan_figure(rooms, values, "temperature", standards=standards)
    assert _room_colours(temperature) == {"101": expected(standards, "temperature", 25.0, "classroom"),
                                          "102": NO_DATA, "103": NO_DATA}


def test_floorplan_callback_draws_rooms_devices_health_and_compliance(app: dash.Dash, known_twin: KnownTwin) -> None:
    site = _page("site")
    with app.server.test_request_context("/", headers=signed_in(app)):
        fig, drawn = site.update_floorplan(known_twin.storey_id, "co2", None, None)
        legend = site.update_legend("co2", known_twin.storey_id)
        health, _ = site.update_floorplan(known_twin.storey_id, "device_health", None, None)
        compliance, _ = site.update_floorplan(known_twin.storey_id, "compliance", None, None)
        empty, _ = site.update_floorplan(None, "co2", None, None)
        href = site.open_room({"points": [{"curveNumber": 1, "customdata": [42] * 5}]})
        with pytest.raises(PreventUpdate):
            site.open_room({"points": [{"curveNumber": 1}]})
    assert [t["name"] for t in fig["data"]][:5] == ["101", "102", "103", "labels", "devices"]
    assert _room_colours(fig) == co2_colours(known_twin)
    assert drawn["rooms"] == [known_twin.rooms[n] for n in ("101", "102", "103")]
    markers = dict(zip(fig["data"][4]["customdata"], fig["data"][4]["marker"]["color"], strict=False))
    assert len(fig["data"][4]["x"]) == 6  # env-101..103, lum-101, pan-101 placed on the storey, plus env-104
    assert markers[known_twin.rooms["103"]] == "#b71c1c"  # env-103 is offline
    assert _room_colours(health) == {"101": GOOD, "102": GOOD, "103": BAD}
    standards = hq_standards(known_twin)
    latest = {n: {"co2": known_twin.latest_co2[n], **({"temperature": 25.0} if n == "101" else {})} for n in USES}
    verdicts = {n: standards.judge_room(latest[n], use).status for n, use in USES.items()}
    assert _room_colours(compliance) == {n: STATUS_COLOURS[v] for n, v in verdicts.items()}
    for rule in ("classroom_co2_high", "indoor_co2_high"):  # each rule's bound, from the rule set
        assert f"{DEFAULT_RULES[rule].max:g} ppm" in _json(legend)
    assert empty["data"] == []
    assert href == "/room/42"


def test_live_refresh_patches_only_the_room_that_changed(app: dash.Dash, known_twin: KnownTwin) -> None:
    site = _page("site")
    with app.server.test_request_context("/", headers=signed_in(app)):
        _, drawn = site.update_floorplan(known_twin.storey_id, "co2", None, None)
        unchanged = site.update_floorplan(known_twin.storey_id, "co2", 1, drawn)
        with connection(known_twin.url) as conn:
            ReadingWriter(conn).write(
                [(datetime.now(UTC), known_twin.keys["hq", "env-102"], CO2, 1600.0)])
        _, values, states, standards = data.floorplan(known_twin.storey_id)
        changed, devices_changed, new_drawn = site.refresh_changes(drawn, values, states, standards)
        patch, stored = site.update_floorplan(known_twin.storey_id, "co2", 2, drawn)
    assert unchanged == (dash.no_update, dash.no_update)
    now_bad = expected(standards, "co2", 1600.0, "classroom")
    assert list(changed) == [1] and changed[1][0] == now_bad != co2_colours(known_twin)["102"]
    assert not devices_changed
    assert new_drawn["styles"][1] == site.fingerprint(changed[1]) != drawn["styles"][1]
    assert new_drawn["styles"][0] == drawn["styles"][0]
    assert isinstance(patch, dash.Patch) and stored == new_drawn
    operations = json.dumps(patch.to_plotly_json(), default=str)
    assert now_bad in operations and co2_colours(known_twin)["101"] not in operations  # only room 102 is sent


def test_a_device_going_offline_patches_its_marker_and_its_room(app: dash.Dash, known_twin: KnownTwin) -> None:
    site = _page("site")
    with app.server.test_request_context("/", headers=signed_in(app)):
        _, drawn = site.update_floorplan(known_twin.storey_id, "co2", None, None)
        with connection(known_twin.url) as conn:
            update_status(conn, known_twin.keys["hq", "lum-101"], "offline")
            conn.commit()
        patch, stored = site.update_floorplan(known_twin.storey_id, "co2", 1, drawn)
    operations = patch.to_plotly_json()["operations"]
    # the markers, and room 101 (index 0) whose hover (on its hit points, index 5) counts its devices online;
    # not rooms 102 and 103
    assert {tuple(op["location"]) for op in operations} == {("data", 4, "marker", "color"), ("data", 4, "text"),
                                                            ("data", 0, "fillcolor"), ("data", 5, "text"),
                                                            ("data", 3, "text", 0)}
    colours = next(op["params"]["value"] for op in operations if op["location"][-1] == "color")
    assert colours.count(STATE_COLOURS["offline"]) == 2  # env-103 was offline already, lum-101 now too
    assert stored["styles"][1:] == drawn["styles"][1:] and stored["device_styles"] != drawn["device_styles"]


def test_a_new_bim_revision_redraws_the_floor_plan_on_the_next_tick(app: dash.Dash, known_twin: KnownTwin) -> None:
    """The storey's geometry is cached per BIM import: a new revision (room 104 gets a footprint) is drawn."""
    site = _page("site")
    with app.server.test_request_context("/", headers=signed_in(app)):
        _, drawn = site.update_floorplan(known_twin.storey_id, "co2", None, None)
        again = site.update_floorplan(known_twin.storey_id, "co2", 1, drawn)
        model = _model()
        rooms = tuple(replace(r, footprint=box(24, 0, 30, 6)) if r.name == "104 store" else r for r in model.rooms)
        with connection(known_twin.url) as conn:
            save_model(conn, replace(model, rooms=rooms))
            conn.commit()
        redrawn, new_drawn = site.update_floorplan(known_twin.storey_id, "co2", 2, drawn)
    assert again == (dash.no_update, dash.no_update)
    assert [t["name"] for t in redrawn["data"]][:6] == ["101", "102", "103", "104 store", "labels", "devices"]
    assert (min(redrawn["data"][3]["x"]), max(redrawn["data"][3]["x"])) == (24.0, 30.0)
    assert new_drawn["rooms"][-1] == known_twin.rooms["104 store"] and new_drawn["plan"] != drawn["plan"]


def test_30_day_chart_reads_the_hourly_rollups(app: dash.Dash, known_twin: KnownTwin) -> None:
    """Hourly rollups without any raw reading behind them: the 30-day chart shows them, the 1-hour one not."""
    room = _page("room")
    d101 = known_twin.keys["hq", "env-101"]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    buckets = [hour - timedelta(days=d) for d in (20, 10, 2)]
    with connection(known_twin.url) as conn:
        for b in buckets:
            conn.execute("INSERT INTO rollup_1h (device_id, metric_id, bucket, n, sum, min, max)"
                         " VALUES (%s, %s, %s, 2, 2000, 900, 1100)", (d101, CO2, b))
    with app.server.test_request_context("/", headers=signed_in(app)):
        fig, points = room.chart(known_twin.rooms["101"], "co2", "30d")
        hourly_days, _ = room.chart(known_twin.rooms["101"], "co2", "7d")
        fig_1h, points_1h = room.chart(known_twin.rooms["101"], "co2", "1h")
    assert [p[0] for p in points][:3] == buckets and points[0][1:] == (1000.0, 900.0, 1100.0)
    assert "1-hour rollups" in _json(fig) and "1-minute rollups" in _json(fig_1h)
    shown = [y for y in hourly_days["data"][-1]["y"] if not np.isnan(y)]  # a gap between them is a break (NaN)
    assert len(shown) == 2  # the 2-day-old bucket and the current hour from the fixture
    assert [p[1:] for p in points_1h] == [(800.0, 700.0, 900.0), (800.0, 790.0, 810.0)]  # minute rollups
    assert any(s["type"] == "rect" for s in fig["layout"]["shapes"])  # the standard's bands


def test_room_page_layout_live_values_and_csv(app: dash.Dash, known_twin: KnownTwin) -> None:
    room = _page("room")
    rid = known_twin.rooms["101"]
    with app.server.test_request_context("/", headers=signed_in(app)):
        page = _json(room.layout(room_id=str(rid)))
        summary, table, devices = room.update_live(1, rid)
        download = room.download_csv(1, "co2", "1h", None, None, rid)
        unknown = _json(room.layout(room_id="999999"))
    assert "Teaching block" in page and "Futian HQ School" in page and "lum-101" in page
    assert "Commands need an MQTT broker" in page  # this app has no broker
    assert "810 ppm" in _json(table) and "25.0 °C" in _json(table)
    assert "810 ppm" in _json(summary) and "25.0 °C" in _json(summary)
    assert "lum-101" in _json(devices) and "pan-101" in _json(devices)
    assert download["filename"].startswith("101-co2-") and download["content"].count("\n") == 3
    assert "Unknown room" in unknown


def test_overview_callback_shows_kpis_cards_map_and_cloud_classes(app: dash.Dash, known_twin: KnownTwin) -> None:
    overview = _page("overview")
    with app.server.test_request_context("/", headers=signed_in(app)):
        tiles, cards, fig, sessions, *_ = overview.update_overview(1)
        site = overview.open_site({"points": [{"customdata": "m01"}]})
    cards_text, tiles_text, sessions_text = _json(cards), _json(tiles), _json(sessions)
    assert cards_text.index("Futian HQ School") < cards_text.index("Member School 1")  # headquarters first
    assert '"/site/hq"' in cards_text
    assert "75%" in tiles_text  # IoT coverage of the network: 3 of 4 teaching rooms
    assert '"2"' in tiles_text  # open alarms
    schools = fig["data"][-1]
    assert schools["customdata"] == ["hq", "m01"] and schools["marker"]["symbol"] == ["star", "circle"]
    assert str(SESSION) in sessions_text and "音乐教室" in sessions_text and "cloud-class stream" in sessions_text
    assert site == "/site/m01"


def test_building_in_3d_extrudes_every_room_with_a_footprint(app: dash.Dash, known_twin: KnownTwin) -> None:
    building = _page("building")
    with app.server.test_request_context("/", headers=signed_in(app)):
        fig, _ = building.update_building("co2", None, known_twin.building_id)
    mesh = fig["data"][0]
    assert mesh["type"] == "mesh3d"
    # three boxes: 2 top triangles + 4 walls x 2 triangles each
    assert len(mesh["i"]) == 3 * 10 == len(mesh["facecolor"])
    assert set(mesh["facecolor"]) == set(co2_colours(known_twin).values()) and float(mesh["z"].max()) == pytest.approx(0.9 * 3.2)


def test_a_site_override_changes_the_plan_the_legend_and_the_chart_bands(app: dash.Dash,
                                                                       known_twin: KnownTwin) -> None:
    """The same override the monitor uses (stored per site) recolours the plan: 1200 ppm in a classroom.

    The app has drawn the plan with the defaults first: the standards it keeps between ticks (and their
    verdicts) give way to the stored override at the next draw."""
    site, room = _page("site"), _page("room")
    with app.server.test_request_context("/", headers=signed_in(app)):
        before, _ = site.update_floorplan(known_twin.storey_id, "co2", None, None)
    assert _room_colours(before) == co2_colours(known_twin)
    with connection(known_twin.url) as conn:
        set_rule_override(conn, "hq", "classroom_co2_high", {"max": 1000})
        conn.commit()
    overridden = hq_standards(known_twin)
    assert overridden.judge("co2", 1200.0, "classroom").status != JULY.judge("co2", 1200.0, "classroom").status
    with app.server.test_request_context("/", headers=signed_in(app)):
        fig, _ = site.update_floorplan(known_twin.storey_id, "co2", None, None)
        legend = site.update_legend("co2", known_twin.storey_id)
        chart, _ = room.chart(known_twin.rooms["102"], "co2", "1h")
    assert _room_colours(fig) == co2_colours(known_twin, overridden)
    assert _room_colours(fig)["102"] == STATUS_COLOURS[DEFAULT_RULES["classroom_co2_high"].severity]
    assert "≤ 1000 ppm (classroom)" in _json(legend)
    assert 1000.0 in [s["y0"] for s in chart["layout"]["shapes"]] + [s["y1"] for s in chart["layout"]["shapes"]]


def test_the_rules_file_of_the_monitor_recolours_the_plan_too(known_twin: KnownTwin, tmp_path: Path) -> None:
    """``dashboard --rules`` (as ``monitor --rules``): an override set only in the file reaches the plan."""
    from twin.monitoring.standards import load_config

    rules = tmp_path / "rules.toml"
    rules.write_text("[sites.hq.rules.classroom_co2_high]\nmax = 1000\n", "utf-8")
    config = load_config(rules)
    expected = SiteStandards("hq", JULY.day, JULY.climate_zone,
                             config.rules_for("hq", {}))
    assert expected.judge("co2", 1200.0, "classroom").status != JULY.judge("co2", 1200.0, "classroom").status
    app = make_app(known_twin.url, rules=config)
    try:
        with app.server.test_request_context("/", headers=signed_in(app)):
            fig, _ = _page("site").update_floorplan(known_twin.storey_id, "co2", None, None)
            legend = _page("site").update_legend("co2", known_twin.storey_id)
    finally:
        close_app(app)
    assert _room_colours(fig)["102"] == STATUS_COLOURS[DEFAULT_RULES["classroom_co2_high"].severity]
    assert "≤ 1000 ppm (classroom)" in _json(legend)


def test_language_switch_translates_pages_and_keeps_chinese_names(app: dash.Dash, known_twin: KnownTwin) -> None:
    signed_in(app)  # the admin user exists
    client = app.server.test_client()
    login(client, ADMIN)
    response = client.get("/lang/zh", headers={"Referer": "http://localhost/site/m01"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/site/m01")
    layout = client.get("/_dash-layout").get_json()
    assert "告警" in json.dumps(layout, ensure_ascii=False)
    overview = _page("overview")
    with app.server.test_request_context("/", headers=signed_in(app, lang="zh")):
        tiles, cards, *_ = overview.update_overview(1)
    assert "物联感知覆盖率" in _json(tiles) and "总校" in _json(cards)


def test_devices_and_alarms_pages(app: dash.Dash, known_twin: KnownTwin) -> None:
    devices, alarms_page = _page("devices"), _page("alarms")
    with app.server.test_request_context("/", headers=signed_in(app)):
        body = _json(devices.update_devices("any", "any", "any", "", "state", "asc", 1, None))
        offline = _json(devices.update_devices("hq", "offline", "any", "", "state", "asc", 1, None))
        table = _json(alarms_page.update_alarms("any", "critical", "open", 0, None))
        none = _json(alarms_page.update_alarms("m01", "critical", "any", 0, None))
    assert "GHOST-1" in body and "orphan-1" in body and "env-104" in body
    assert "env-103" in offline and "env-101" not in offline
    assert "CO2 above 1500 ppm" in table and "alarm-ack" in table and "panel silent" not in table
    assert "No alarms match." in none


def test_bim_upload_imports_a_generated_ifc(known_twin: KnownTwin, tmp_path: Path) -> None:
    from models_bim.generate import generate_school
    from twin.cli import load_bim

    path = tmp_path / "upload.ifc"
    generate_school(path, site_id="up1", name="上传学校", storeys=1, classrooms_per_storey=2, labs=0)
    contents = "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode()
    app = make_app(known_twin.url, bim_loader=functools.partial(load_bim, known_twin.url))
    bim = _page("bim")  # pages register after an app exists
    app.server.extensions["campus_twin.bim_pending"] = tmp_path / "pending"
    try:
        with app.server.test_request_context("/", headers=signed_in(app)):
            planned, _ = bim.upload(contents, "upload.ifc", "up1", "", "member")
            plan_id = next(c["props"]["data"] for c in json.loads(_json(planned))["props"]["children"]
                           if c["props"].get("id") == "bim-plan-id")  # the plan view's Store
            result, *_, log = bim.decide(1, None, plan_id)
            planned_again, _ = bim.upload(contents, "upload.ifc", "up1", "", "member")
            bad, _ = bim.upload("data:x;base64,Tk9UIElGQw==", "broken.ifc", "up2", "", "member")
    finally:
        close_app(app)
    assert "first import of this site" in _json(planned) and "Nothing has been applied yet." in _json(planned)
    text = _json(result)
    assert "bim-summary" in text and "first import of this site" in text and "up1" in text
    assert "upload.ifc" in _json(log)
    assert "no changes" in _json(planned_again)
    assert "Import failed" in _json(bad)


def test_command_bridge_publishes_and_records_the_ack(known_twin: KnownTwin, mqtt_url: str) -> None:
    with responder(mqtt_url, "hq") as received:
        app = make_app(known_twin.url, mqtt_url=mqtt_url)
        try:
            room = _page("room")
            with app.server.test_request_context("/", headers=signed_in(app)):
                sent = room.send(known_twin.rooms["101"], "*", "dim", 30)
                wait_for(lambda: data.room_commands(known_twin.rooms["101"])[0].acked_at is not None, timeout=15)
                row = data.room_commands(known_twin.rooms["101"])[0]
        finally:
            close_app(app)
    assert len(sent) == 1 and row.id == sent[0] and row.ok is True and row.level == 30.0
    assert ("campus/v1/hq/lum-101/cmd", {"id": sent[0], "action": "dim", "level": 30.0}) in received, received


# --- a device answering commands (as the simulator does) ------------------------------------------


class _Responder:
    def __init__(self, mqtt_url: str, site: str) -> None:
        self.received: list[tuple[str, dict]] = []
        self.site = site
        self.ready = threading.Event()
        self.mqtt = MqttClient(mqtt_url, f"test-responder-{time.monotonic_ns()}", persistent=False,
                               on_subscribed=lambda refused: self.ready.set())
        self.mqtt.declare([Subscription(f"{contract.PREFIX}/{self.site}/+/{contract.CMD}", self._message, qos=1)])

    def _message(self, message: Received) -> None:
        body = orjson.loads(message.payload)
        self.received.append((message.topic, body))
        self.mqtt.send(message.topic + "/ack", orjson.dumps({"id": body["id"], "ok": True, "action": body["action"]}),
                       qos=1)


@contextmanager
def responder(mqtt_url: str, site: str) -> Iterator[list[tuple[str, dict]]]:
    """Acknowledge every command to ``site``'s devices, like a device would."""
    r = _Responder(mqtt_url, site)
    r.mqtt.connect()
    assert r.ready.wait(10), "responder could not subscribe"
    try:
        yield r.received
    finally:
        r.mqtt.close()


# --- over HTTP --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> str:
    with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode("utf-8")


def _post(url: str, body: dict, session: tuple[urllib.request.OpenerDirector, Login]) -> dict:
    """A callback POST as dash-renderer sends it: the session cookie and the ``X-CSRFToken`` header."""
    opener, who = session
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", "X-CSRFToken": who.csrf})
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())



@contextmanager
def serving(app: dash.Dash) -> Iterator[str]:
    """``app`` served by :func:`dashboard.serve.serve` on a free port; its base URL."""
    port = _free_port()
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(app, "127.0.0.1", port, stop), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base), timeout=10)
        yield base
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def _up(base: str) -> bool:
    try:
        _get(base + "/login")
        return True
    except OSError:
        return False


@pytest.fixture
def base_url(app: dash.Dash) -> Iterator[str]:
    with serving(app) as base:
        yield base


def test_app_serves_pages_and_callbacks_over_http(app: dash.Dash, base_url: str, known_twin: KnownTwin) -> None:
    base = base_url
    signed_in(app)  # the admin user exists
    session = http_login(base, ADMIN)
    opener = session[0]
    index = _get(base + "/", opener)
    assert "_dash-config" in index and "cdn" not in index.lower()
    assert "style.css" in index
    for path in ("/site/hq", "/alarms", "/devices", "/bim", f"/building/{known_twin.building_id}"):
        assert "_dash-config" in _get(base + path, opener)
    assert "_pages_content" in _get(base + "/_dash-layout", opener)
    dependencies = json.loads(_get(base + "/_dash-dependencies", opener))
    outputs = [d["output"] for d in dependencies]
    assert len(outputs) == len(set(outputs))  # each page callback registered once
    router = next(o for o in outputs if "_pages_content.children" in o)
    routed = _post(base + "/_dash-update-component", {
        "output": router,
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/site/hq"},
                   {"id": "_pages_location", "property": "search", "value": ""}],
        "changedPropIds": ["_pages_location.pathname"], "state": [],
    }, session)
    assert "Teaching block" in json.dumps(routed, ensure_ascii=False)
    output = next(o for o in outputs if o.startswith("..site-floorplan.figure"))
    drawn = _post(base + "/_dash-update-component", {
        "output": output,
        "outputs": [{"id": "site-floorplan", "property": "figure"}, {"id": "site-drawn", "property": "data"}],
        "inputs": [{"id": "site-storey", "property": "value", "value": known_twin.storey_id},
                   {"id": "site-metric", "property": "value", "value": "co2"},
                   {"id": "site-interval", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["site-interval.n_intervals"], "state": [{"id": "site-drawn", "property": "data"}],
    }, session)
    assert len(drawn["response"]["site-floorplan"]["figure"]["data"]) == 9  # 3 rooms, labels, devices, 3 hits, outside


# --- in a real browser ------------------------------------------------------------------------

ARTIFACTS = Path(os.environ.get("CAMPUS_TWIN_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


def screenshot(driver: object, name: str) -> None:
    """Save a PNG of the page to the artifacts folder, to be looked at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
    driver.set_window_size(1400, min(max(1000, height + 120), 2400))  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium through selenium, recording the browser console."""
    driver_path = shutil.which("chromedriver")
    chrome = shutil.which("chromium") or shutil.which("google-chrome")
    if not (driver_path and chrome):
        message = "headless Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CAMPUS_TWIN_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader",  # WebGL for the 3D view, in software
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


ROOM_TRACES = "#site-floorplan .scatterlayer .trace"


def _rgb(colour: str) -> str:
    """``#43a047`` as the browser reports a fill, ``rgb(67, 160, 71)``."""
    return "rgb({}, {}, {})".format(*(int(colour[i:i + 2], 16) for i in (1, 3, 5)))


def _fill_colour(driver, index: int) -> str:
    paths = driver.find_elements("css selector", ROOM_TRACES + " .fills path")
    return paths[index].value_of_css_property("fill") if len(paths) > index else ""


@pytest.mark.browser
def test_every_page_in_a_browser(browser: object, known_twin: KnownTwin, mqtt_url: str, tmp_path: Path) -> None:
    """Network -> school -> storey -> room in clicks, live refresh, a luminaire command and its ack,
    the 3D view, alarms, devices, an IFC upload, and the Chinese interface; a screenshot of each."""
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from models_bim.generate import generate_school
    from twin.cli import load_bim

    ifc = tmp_path / "planner.ifc"
    generate_school(ifc, site_id="p1", name="规划学校", storeys=1, classrooms_per_storey=2, labs=0)
    wait = WebDriverWait(browser, 20)
    find = browser.find_element
    with responder(mqtt_url, "hq") as received:
        app = make_app(known_twin.url, mqtt_url=mqtt_url, bim_loader=functools.partial(load_bim, known_twin.url))
        try:
            with serving(app) as base:
                # 0. the login form (a page of the app asks for it first)
                add_user(known_twin.url, "ops-admin", "admin")
                browser.get(base + "/")
                wait.until(lambda d: d.find_elements(By.ID, "login-username"))
                assert "/login?next=/" in browser.current_url
                find(By.ID, "login-username").send_keys("ops-admin")
                find(By.ID, "login-password").send_keys(PASSWORD)
                find(By.ID, "login-submit").click()
                wait.until(lambda d: d.find_elements(By.ID, "current-user"))
                assert find(By.ID, "current-user").text == "ops-admin (admin)"
                # 1. the network
                browser.get(base + "/")
                cards = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card-link"))
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-map .scatterlayer .trace"))
                wait.until(lambda d: str(SESSION) in d.find_element(By.ID, "overview-sessions").text)
                screenshot(browser, "overview")
                assert [c.find_element(By.CSS_SELECTOR, ".card-title").text for c in cards] == [
                    "Futian HQ School", "Member School 1"]
                assert "75%" in find(By.ID, "overview-kpis").text
                # 2. a school: its floor plan, live without a reload
                cards[0].click()
                wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROOM_TRACES)) == 9)
                assert browser.current_url == base + "/site/hq"
                before, after = co2_colours(known_twin)["102"], expected(hq_standards(known_twin), "co2", 1650.0,
                                                                         "classroom")
                assert before != after  # the rules judge 1200 and 1650 ppm in a classroom apart
                wait.until(lambda d: _fill_colour(d, 1) == _rgb(before))  # room 102 as the rules judge it
                marker = browser.execute_script("window.__still_here = 1; return 1;")
                with connection(known_twin.url) as conn:
                    ReadingWriter(conn).write(
                        [(datetime.now(UTC), known_twin.keys["hq", "env-102"], CO2, 1650.0)])
                wait.until(lambda d: _fill_colour(d, 1) == _rgb(after))  # pushed by the refresh
                assert browser.execute_script("return window.__still_here") == marker  # no reload happened
                screenshot(browser, "floorplan")
                # 3. a room, by clicking it
                fills = browser.find_elements(By.CSS_SELECTOR, ROOM_TRACES + " .fills path")
                ActionChains(browser).move_to_element(sorted(fills, key=lambda e: e.location["x"])[0]).click().perform()
                wait.until(lambda d: d.current_url.endswith(f"/room/{known_twin.rooms['101']}"))
                wait.until(lambda d: "810 ppm" in d.find_element(By.ID, "room-summary").text)
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#room-series .scatterlayer .trace"))
                # a luminaire command, acknowledged by the device
                find(By.XPATH, "//button[normalize-space()='On']").click()
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#room-commands .ack-ok"))
                with connection(known_twin.url) as conn:  # the command the click stored, by its id
                    newest = commands.room_commands(conn, known_twin.rooms["101"])[0]
                # QoS 1 is at least once: the responder may also see an earlier test's command again
                assert newest.action == "on" and ("campus/v1/hq/lum-101/cmd", {"id": newest.id, "action": "on"}) \
                    in received, received
                find(By.XPATH, "//label[normalize-space()='30 d']").click()
                wait.until(lambda d: "1-hour rollups" in d.find_element(By.ID, "room-series").text)
                screenshot(browser, "room")
                # 4. the building in 3D
                browser.get(f"{base}/site/hq")
                wait.until(lambda d: d.find_element(By.ID, "site-3d-link").get_attribute("href").endswith(
                    f"/building/{known_twin.building_id}"))
                find(By.ID, "site-3d-link").click()
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#building-figure .gl-container canvas"))
                time.sleep(1)  # let WebGL paint before the screenshot (not an assertion)
                screenshot(browser, "building3d")
                # 5. alarms: acknowledge with a note
                browser.get(base + "/alarms")
                button = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#alarm-table button"))
                find(By.ID, "alarm-note").send_keys("window opened")
                button.click()
                wait.until(lambda d: "Alarm acknowledged." in d.find_element(By.ID, "alarm-status").text)
                with connection(known_twin.url) as conn:
                    assert alarms.list_alarms(conn, state="acknowledged")[0].note == "window opened"
                screenshot(browser, "alarms")
                # 6. devices and the unmapped ones
                browser.get(base + "/devices")
                wait.until(lambda d: "GHOST-1" in d.find_element(By.ID, "unmapped").text)
                assert "orphan-1" in find(By.ID, "unmapped").text
                screenshot(browser, "devices")
                # 7. a planner uploads an IFC revision
                browser.get(base + "/bim")
                wait.until(lambda d: d.find_element(By.ID, "bim-site")).send_keys("p1")
                find(By.CSS_SELECTOR, "#bim-upload input[type=file]").send_keys(str(ifc))
                wait.until(lambda d: "first import of this site" in d.find_element(By.ID, "bim-result").text)
                find(By.ID, "bim-confirm").click()  # planned first, applied on confirmation
                wait.until(lambda d: d.find_elements(By.ID, "bim-summary"))
                assert "first import of this site" in find(By.ID, "bim-summary").text
                assert "planner.ifc" in find(By.ID, "bim-log").text
                screenshot(browser, "bim")
                # 8. the Chinese interface, Chinese names
                browser.get(base + "/")
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card-link"))
                find(By.ID, "lang-zh").click()
                wait.until(lambda d: "物联感知覆盖率" in d.find_element(By.ID, "overview-kpis").text)
                wait.until(lambda d: "规划学校" in d.find_element(By.ID, "overview-cards").text)
                screenshot(browser, "overview-zh")
                browser.get(base + "/site/m01")
                wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ROOM_TRACES)) == 5)
                assert "音乐教室" in find(By.ID, "site-floorplan").text
                screenshot(browser, "floorplan-zh")
                console = browser.get_log("browser")
                assert [e for e in console if "Content Security Policy" in e["message"]] == []
                errors = [e for e in console if e["level"] == "SEVERE"]
                assert errors == []
                # the policy is in force: a script injected into the page does not run
                assert browser.execute_script(
                    "const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
                    "document.head.appendChild(s); return window.__injected === undefined;")
                # 9. log out: back to the login form, and the pages ask for it again
                find(By.ID, "logout").click()
                wait.until(lambda d: d.find_elements(By.ID, "login-username"))
                browser.get(base + "/alarms")
                wait.until(lambda d: d.find_elements(By.ID, "login-username"))
                with connection(known_twin.url) as conn:
                    done = {(e["action"], e["outcome"]) for e in audit.recent(conn, username="ops-admin")}
                assert {("login", "ok"), ("acknowledge", "ok"), ("command", "ok"), ("upload", "ok"),
                        ("bim_apply", "ok"), ("logout", "ok")} <= done
        finally:
            close_app(app)
