"""The network overview as the bureau's command centre: schools ranked by what needs attention, the
school x KPI matrix with every "–" explained, a map fitted to the schools, and the page in a browser."""

from __future__ import annotations

import importlib
import json
import math
from datetime import date, timedelta

import dash
import pytest
from plotly.utils import PlotlyJSONEncoder
from shapely.geometry import box

from dashboard.data import SiteView
from dashboard.figures import network as net_fig
from tests.helpers import browser_login
from tests.test_dashboard import KnownTwin, app, base_url, browser, known_twin, screenshot, signed_in  # noqa: F401
from twin.database import connection
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.storage import alarms, kpis
from twin.storage import sites as sites_store
from twin.storage.kpis import StoredKpi
from twin.storage.model import save_model
from twin.storage.sites import SiteSummary

DAY = date(2026, 11, 23)


def summary(site_id: str, *, devices: int = 10, online: int = 10, role: str = "member", lat: float | None = 22.55,
            lon: float | None = 114.05, name: str | None = None) -> SiteSummary:
    return SiteSummary(site_id, name or f"School {site_id}", role, lat, lon, 1, 20, devices, online, 0)


def view(site_id: str, *, critical: int = 0, warning: int = 0, info: int = 0, offline: int = 0,
         kpis_: dict | None = None, daily: dict | None = None, **kw) -> SiteView:
    full = {"iot_coverage": 1.0, "lighting_coverage": 1.0, "panel_coverage": 1.0, "lighting_compliance": 1.0,
            "data_completeness": 1.0, "teaching_rooms": 10, "classrooms": 8, **(kpis_ or {})}
    stored = daily if daily is not None else {k: StoredKpi(DAY, 1, 1, 1.0) for k in net_fig.DAILY}
    return SiteView(summary(site_id, **kw), full, {"critical": critical, "warning": warning, "info": info},
                    offline, stored)


def _json(component: object) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


# --- ranking: which school to look at --------------------------------------------------------------------


def test_schools_are_ranked_by_critical_alarms_then_offline_devices_then_warnings_then_kpis() -> None:
    views = [
        view("fine"),
        view("dark", kpis_={"lighting_compliance": 0.62}),
        view("warn", warning=2),
        view("silent", offline=12, online=0, devices=12),
        view("fire", critical=3, info=1),
        view("empty", devices=0, online=0),
        view("note", info=1),
    ]
    ranked, without = net_fig.rank(views)
    assert [r.view.site.site_id for r in ranked] == ["fire", "silent", "warn", "dark", "note", "fine"]
    assert [v.site.site_id for v in without] == ["empty"]  # a site without devices is no school to rank
    texts = {r.view.site.site_id: net_fig.reason_line(r.reasons, "en") for r in ranked}
    assert texts["fire"].startswith("3 critical alarms")
    assert texts["silent"].startswith("12 devices offline")
    assert texts["dark"] == "lighting compliance 62% < 100%"
    assert texts["fine"] == "all fine"
    assert [r.level for r in ranked] == ["critical", "warning", "warning", "warning", "info", "ok"]
    assert net_fig.reason_line(ranked[0].reasons, "zh").startswith("3 条严重告警")


def test_one_of_each_reads_in_the_singular() -> None:
    ranked, _ = net_fig.rank([view("a", critical=1, offline=1, online=9)])
    assert net_fig.reason_line(ranked[0].reasons, "en") == "1 critical alarm · 1 device offline"


# --- what "–" means -------------------------------------------------------------------------------------


def test_a_dash_says_why_there_is_no_value() -> None:
    none_stored = view("new", kpis_={"lighting_compliance": None, "data_completeness": None}, daily={})
    weekend = view("sat", kpis_={"lighting_compliance": None},
                   daily={"lighting_compliance": StoredKpi(DAY, 0, 0, None),
                          "data_completeness": StoredKpi(DAY, 10, 10, 1.0)})
    no_rooms = view("hall", kpis_={"iot_coverage": None, "lighting_coverage": None, "panel_coverage": None,
                                   "teaching_rooms": 0, "classrooms": 0})
    assert "not computed yet" in net_fig.why_missing("lighting_compliance", none_stored, "en")
    assert "monitor" in net_fig.why_missing("data_completeness", none_stored, "en")
    text = net_fig.why_missing("lighting_compliance", weekend, "en")
    assert "2026-11-23" in text and "lesson" in text and "desk illuminance" in text
    assert "no classroom or lab" in net_fig.why_missing("iot_coverage", no_rooms, "en")
    assert "no classroom" in net_fig.why_missing("panel_coverage", no_rooms, "en")
    assert net_fig.why_missing("iot_coverage", view("ok"), "en") == ""  # a value: nothing to explain
    assert net_fig.why_missing("lighting_compliance", weekend, "zh") != text  # in Chinese too


# --- the map: fitted to the schools ---------------------------------------------------------------------

#: 1 + 13 schools within ~40 km in Shenzhen, and a German file uploaded as a member.
SHENZHEN = [(22.543, 114.058), (22.553, 114.068), (22.548, 114.030), (22.560, 114.050), (22.530, 114.040),
            (22.575, 114.120), (22.610, 113.930), (22.720, 114.240), (22.650, 113.850), (22.530, 113.920),
            (22.690, 114.020), (22.600, 114.300), (22.760, 113.890), (22.545, 114.063)]


def shenzhen() -> list[SiteView]:
    out = [view(f"s{i:02d}", lat=lat, lon=lon, role="headquarters" if i == 0 else "member",
                name=f"深圳市第{i + 1}实验学校") for i, (lat, lon) in enumerate(SHENZHEN)]
    out.append(view("de1", lat=50.11, lon=8.68, name="Frankfurt Schule"))
    return out


def test_a_far_away_site_is_shown_apart_and_does_not_stretch_the_map() -> None:
    views = shenzhen()
    near, far = net_fig.split_far([v.site for v in views])
    assert [s.site_id for s, _ in far] == ["de1"] and far[0][1] > 8000  # km from the network
    assert len(near) == 14
    ranked, _ = net_fig.rank(views)
    fig = net_fig.network_map(ranked, "en")
    (x0, x1), (y0, y1) = fig["layout"]["xaxis"]["range"], fig["layout"]["yaxis"]["range"]
    assert 113.5 < x0 < 113.85 and 114.3 < x1 < 114.6 and 22.3 < y0 < 22.53 and 22.76 < y1 < 23.0
    schools = fig["data"][-1]
    assert "de1" not in schools["customdata"] and len(schools["customdata"]) == 14


def test_every_marker_carries_its_own_school_and_rank() -> None:
    ranked, _ = net_fig.rank(shenzhen())
    fig = net_fig.network_map(ranked, "en")
    schools = fig["data"][-1]
    by_id = {r.view.site.site_id: (i + 1, r.view.site) for i, r in enumerate(ranked)}
    for x, y, site_id, number in zip(schools["x"], schools["y"], schools["customdata"], schools["text"], strict=True):
        rank, site = by_id[site_id]
        assert (x, y) == (site.longitude, site.latitude) and number == str(rank)
        assert site.name in schools["hovertext"][schools["customdata"].index(site_id)]


def test_labels_on_the_map_do_not_collide() -> None:
    """14 schools within 40 km: a name is drawn only where it fits; every school keeps its name on hover."""
    ranked, _ = net_fig.rank(shenzhen())
    labels = net_fig.place_labels([r.view.site for r in ranked if r.view.site.site_id != "de1"],
                                  net_fig.map_ranges([r.view.site for r in ranked if r.view.site.site_id != "de1"]))
    boxes = [b for b in labels if b is not None]
    assert 0 < len(boxes) < 14  # some names fit, a dense cluster's do not
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0, (a, b)


def test_a_lone_pair_of_schools_far_apart_still_has_a_map() -> None:
    near, far = net_fig.split_far([summary("hq", role="headquarters"), summary("de", lat=50.1, lon=8.7)])
    assert [s.site_id for s in near] == ["hq"] and [s.site_id for s, _ in far] == ["de"]


def test_distance_is_great_circle() -> None:
    assert net_fig.km((22.54, 114.05), (50.11, 8.68)) == pytest.approx(9200, rel=0.03)
    assert math.isclose(net_fig.km((0.0, 0.0), (0.0, 1.0)), 111.2, rel_tol=0.01)


# --- storage -------------------------------------------------------------------------------------------


def test_attention_counts_open_alarms_by_severity_and_offline_devices(known_twin: KnownTwin) -> None:  # noqa: F811
    with connection(known_twin.url) as conn:
        closed = alarms.raise_alarm(conn, "hq", "co2_high", "warning", "old")
        conn.commit()
        alarms.clear(conn, closed)
        conn.commit()
        found = sites_store.attention(conn)
    assert found["hq"] == sites_store.SiteAttention("hq", critical=1, warning=0, info=0, offline=1)
    assert found["m01"] == sites_store.SiteAttention("m01", critical=0, warning=1, info=0, offline=0)


def test_latest_days_keep_numerator_and_denominator(known_twin: KnownTwin) -> None:  # noqa: F811
    with connection(known_twin.url) as conn:
        kpis.store_day(conn, DAY - timedelta(days=1), "hq", {"lighting_compliance": (1, 2)})
        kpis.store_day(conn, DAY, "hq", {"lighting_compliance": (0, 0), "data_completeness": (9, 10)})
        conn.commit()
        latest = kpis.latest_days(conn)
    assert latest["hq"]["lighting_compliance"] == StoredKpi(DAY, 0, 0, None)
    assert latest["hq"]["data_completeness"] == StoredKpi(DAY, 9, 10, 0.9)
    assert "m01" not in latest


# --- the page ------------------------------------------------------------------------------------------


def _page():
    return importlib.import_module("dashboard.pages.overview")


@pytest.fixture
def network_twin(known_twin: KnownTwin) -> KnownTwin:  # noqa: F811
    """The known twin, a site uploaded without devices and a German school far away."""
    with connection(known_twin.url) as conn:
        save_model(conn, TwinModel(site=Site("bare", "Bare Site", latitude=22.58, longitude=114.0),
                                   buildings=(), storeys=(), rooms=(), devices=()))
        save_model(conn, TwinModel(
            site=Site("de1", "Frankfurt Schule", latitude=50.11, longitude=8.68),
            buildings=(Building("DB", "Haus A"),), storeys=(Storey("DS", "DB", "EG", 0.0),),
            rooms=(Room("DR", "DS", "Klasse 1a", use="classroom", footprint=box(0, 0, 8, 6)),),
            devices=(Device("de-env", "DENV", "env_sensor", "IfcSensor", room_global_id="DR", storey_global_id="DS",
                            mapping="containment", x=1.0, y=1.0),)))
        conn.commit()
    return known_twin


def test_the_overview_ranks_schools_explains_dashes_and_counts_bare_sites_apart(app: dash.Dash,  # noqa: F811
                                                                              network_twin: KnownTwin) -> None:
    overview = _page()
    with app.server.test_request_context("/", headers=signed_in(app)):
        tiles, ranking, fig, _, matrix, outside, _ = overview.update_overview(1)
    tiles_text, ranking_text, matrix_text = _json(tiles), _json(ranking), _json(matrix)
    assert ranking_text.index("Futian HQ School") < ranking_text.index("Member School 1")  # 1 critical first
    assert "1 critical alarm" in ranking_text and "1 warning" in ranking_text
    assert "1 site without devices" in ranking_text and "Bare Site" in ranking_text
    assert '"3"' in tiles_text  # hq, m01, de1: the bare site is no school
    assert "Bare Site" not in matrix_text and "Frankfurt Schule" in matrix_text
    assert "not computed yet" in matrix_text  # no daily KPI stored: the "–" says why
    assert "Frankfurt Schule" in _json(outside) and "km" in _json(outside)
    assert "de1" not in fig["data"][-1]["customdata"]
    assert overview.open_site({"points": [{"customdata": "m01"}]}) == "/site/m01"


def test_every_tile_explains_itself_in_both_languages(app: dash.Dash, network_twin: KnownTwin) -> None:  # noqa: F811
    overview = _page()
    for lang, word in (("en", "reporting"), ("zh", "上报")):
        with app.server.test_request_context("/", headers=signed_in(app, lang=lang)):
            tiles = overview.update_overview(1)[0]
        assert len(tiles) == 8
        for tile in tiles:
            assert tile.title and tile.children[-1].className == "kpi-help" and tile.children[-1].children
        assert word in _json(tiles)


@pytest.fixture
def city_twin(network_twin: KnownTwin) -> KnownTwin:
    """The network twin with 12 more member schools in Shenzhen (1 + 13 within ~40 km), one sensor each."""
    with connection(network_twin.url) as conn:
        for i, (lat, lon) in enumerate(SHENZHEN[1:13], 2):
            save_model(conn, TwinModel(
                site=Site(f"m{i:02d}", f"深圳市第{i}实验学校", latitude=lat, longitude=lon),
                buildings=(Building(f"B{i}", "教学楼"),), storeys=(Storey(f"S{i}", f"B{i}", "1F", 0.0),),
                rooms=(Room(f"R{i}", f"S{i}", "101", use="classroom", footprint=box(0, 0, 8, 6)),),
                devices=(Device(f"env-{i}", f"E{i}", "env_sensor", "IfcSensor", room_global_id=f"R{i}",
                                storey_global_id=f"S{i}", mapping="containment", x=1.0, y=1.0),)))
        conn.commit()
    return network_twin


@pytest.mark.browser
def test_the_overview_in_a_browser(browser: object, base_url: str, city_twin: KnownTwin) -> None:  # noqa: F811
    """1 + 13 schools in Shenzhen and one in Germany: the ranking and the matrix are shown, the German school
    is listed off the map, a click on a school's marker opens that school; a clean console."""
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    find = browser.find_element
    browser_login(browser, base_url, city_twin.url, "ops-overview", "viewer", "/")
    items = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-cards .rank-item"))
    assert "Futian HQ School" in items[0].text and "1 critical alarm" in items[0].text
    wait.until(lambda d: "Frankfurt Schule" in d.find_element(By.ID, "overview-matrix").text)
    assert "not computed yet" in find(By.ID, "overview-matrix").text
    assert "Frankfurt Schule" in find(By.ID, "overview-outside").text
    points = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overview-map .scatterlayer .trace:last-child"
                                                                  " .points path"))
    assert len(points) == 14  # de1 is outside the map
    screenshot(browser, "overview-network")
    customdata = browser.execute_script(
        "const g = document.querySelector('#overview-map .js-plotly-plot');"
        "return g.data[g.data.length - 1].customdata;")
    ActionChains(browser).move_to_element(points[customdata.index("m01")]).click().perform()
    wait.until(lambda d: d.current_url.endswith("/site/m01"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

