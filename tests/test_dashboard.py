"""The dashboard against a real database: figures, data access, callbacks, pages over HTTP."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from datetime import UTC, datetime, timedelta

import dash
import pytest
from dash.exceptions import PreventUpdate
from plotly.utils import PlotlyJSONEncoder
from shapely.geometry import MultiPolygon, box

from dashboard import data
from dashboard.app import close_app, create_app
from dashboard.figures import (
    BAD, GOOD, NO_DATA, WARN, colour_for, floorplan_figure, room_from_click, series_figure,
)
from dashboard.serve import serve
from twin.database import connection
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.metrics import BY_NAME
from twin.storage.model import device_keys, save_model, storey_rooms
from twin.storage.readings import ReadingWriter, room_latest

CO2 = BY_NAME["co2"].metric_id
TEMPERATURE = BY_NAME["temperature"].metric_id


@dataclass(frozen=True)
class KnownTwin:
    """What the fixture stored: ids to look things up and the values written."""

    url: str
    storey_id: int
    rooms: dict[str, int]  # room name -> rooms.id
    latest_co2: dict[str, float]  # room name -> latest CO2
    m1: datetime  # first minute bucket of room 101's CO2
    m2: datetime


def _model() -> TwinModel:
    rooms = (
        Room("R101", "S1", "101", use="classroom", footprint=box(0, 0, 8, 6), area_m2=48.0),
        Room("R102", "S1", "102", use="classroom", footprint=box(8, 0, 16, 6), area_m2=48.0),
        Room("R103", "S1", "103", use="lab", footprint=box(16, 0, 24, 6), area_m2=48.0),
        Room("R104", "S1", "104 store", use="other"),  # no footprint: not drawn
    )
    devices = tuple(
        Device(f"env-{r.name[:3]}", f"D{r.global_id}", "env_sensor", "IfcSensor", room_global_id=r.global_id,
               storey_global_id="S1", mapping="containment")
        for r in rooms
    )
    return TwinModel(
        site=Site("hq", "Futian HQ School", role="headquarters"),
        buildings=(Building("B1", "Teaching block"),),
        storeys=(Storey("S1", "B1", "1F", 0.0),),
        rooms=rooms,
        devices=devices,
    )


@pytest.fixture
def known_twin(db_url: str) -> KnownTwin:
    """One headquarters and one member school; three rooms with CO2, one with temperature too."""
    m1 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    m2 = m1 + timedelta(minutes=1)
    s = timedelta(seconds=1)
    with connection(db_url) as conn:
        save_model(conn, _model())
        save_model(conn, TwinModel(site=Site("m01", "Member School 1")))
        keys = device_keys(conn)
        d101, d102, d103 = keys["hq", "env-101"], keys["hq", "env-102"], keys["hq", "env-103"]
        rows = [
            (m1 + 5 * s, d101, CO2, 700.0), (m1 + 35 * s, d101, CO2, 900.0),  # minute 1: mean 800
            (m2 + 5 * s, d101, CO2, 790.0), (m2 + 35 * s, d101, CO2, 810.0),  # minute 2: mean 800, latest 810
            (m2 + 10 * s, d101, TEMPERATURE, 25.0),
            (m2 + 10 * s, d102, CO2, 1200.0),
            (m2 + 10 * s, d103, CO2, 1700.0),
        ]
        ReadingWriter(conn, partitioned=True).write(rows)
        conn.commit()
        storey_id = conn.execute("SELECT id FROM storeys WHERE global_id = 'S1'").fetchone()[0]
        room_ids = dict(conn.execute("SELECT name, id FROM rooms WHERE site_id = 'hq'").fetchall())
    return KnownTwin(db_url, storey_id, room_ids, {"101": 810.0, "102": 1200.0, "103": 1700.0}, m1, m2)


@pytest.fixture
def app(known_twin: KnownTwin) -> Iterator[dash.Dash]:
    app = create_app(known_twin.url)
    try:
        yield app
    finally:
        close_app(app)


def _json(component: object) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


def _trace_colours(fig) -> dict[str, str]:
    return {t.name: t.fillcolor for t in fig.data}


# --- pure figures ---------------------------------------------------------------------------


def test_colour_buckets_follow_the_national_standards() -> None:
    assert [colour_for("co2", v) for v in (400, 1000, 1001, 1500, 1501)] == [GOOD, GOOD, WARN, WARN, BAD]
    assert [colour_for("temperature", v) for v in (21.9, 22, 28, 28.1)] == [WARN, GOOD, GOOD, WARN]
    assert [colour_for("illuminance", v) for v in (299.9, 300, 750)] == [BAD, GOOD, GOOD]
    assert colour_for("humidity", 85) == WARN and colour_for("noise", 44) == GOOD
    assert colour_for("co2", None) == NO_DATA == colour_for("co2", float("nan"))


def test_multipolygon_room_is_one_trace_with_none_separated_rings() -> None:
    rooms = [{"room_id": 7, "name": "split", "footprint": MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)])}]
    fig = floorplan_figure(rooms, {7: {"co2": 500.0}}, "co2")
    assert len(fig.data) == 1
    trace = fig.data[0]
    assert list(trace.x).count(None) == 1 and len(trace.x) == 11
    assert set(trace.customdata) == {7}
    assert fig.layout.yaxis.scaleanchor == "x"


def test_a_click_on_a_fill_or_a_vertex_names_the_room() -> None:
    assert room_from_click({"points": [{"curveNumber": 0, "customdata": [5, 5, 5]}]}) == 5
    assert room_from_click({"points": [{"curveNumber": 0, "pointNumber": 2, "customdata": 5}]}) == 5
    assert room_from_click({"points": [{"curveNumber": 0}]}) is None
    assert room_from_click(None) is None


# --- real database --------------------------------------------------------------------------


def test_floorplan_has_one_trace_per_room_with_footprint_coloured_by_co2(known_twin: KnownTwin) -> None:
    with connection(known_twin.url) as conn:
        rooms = storey_rooms(conn, known_twin.storey_id)
        values = room_latest(conn, [r["room_id"] for r in rooms])
    fig = floorplan_figure(rooms, values, "co2")
    assert len(rooms) == 4 and len(fig.data) == 3  # "104 store" has no footprint
    assert _trace_colours(fig) == {"101": GOOD, "102": WARN, "103": BAD}
    for trace in fig.data:
        assert set(trace.customdata) == {known_twin.rooms[trace.name]}
    assert "810 ppm" in fig.data[0].hovertemplate
    temperature = floorplan_figure(rooms, values, "temperature")
    assert _trace_colours(temperature) == {"101": GOOD, "102": NO_DATA, "103": NO_DATA}


def test_room_series_returns_the_one_minute_rollup_means(app: dash.Dash, known_twin: KnownTwin) -> None:
    with app.server.app_context():
        points = data.room_series(known_twin.rooms["101"], "co2")
        empty = data.room_series(known_twin.rooms["101"], "co2", now=known_twin.m1)
    assert points == [(known_twin.m1, 800.0, 700.0, 900.0), (known_twin.m2, 800.0, 790.0, 810.0)]
    assert empty == []  # the window ends before the first bucket
    fig = series_figure(points, "co2", "ppm")
    assert list(fig.data[-1].y) == [800.0, 800.0]


def test_create_app_registers_the_three_pages(app: dash.Dash) -> None:
    paths = {page.get("path_template") or page["path"] for page in dash.page_registry.values()}
    assert {"/", "/site/<site_id>", "/room/<room_id>"} <= paths
    assert {"dashboard.pages.overview", "dashboard.pages.site", "dashboard.pages.room"} <= set(dash.page_registry)
    layout = app.server.test_client().get("/_dash-layout").get_json()
    assert "_pages_content" in json.dumps(layout)


def test_floorplan_callback_draws_the_storey(app: dash.Dash, known_twin: KnownTwin) -> None:
    site = importlib.import_module("dashboard.pages.site")
    with app.server.app_context():
        fig = site.update_floorplan(known_twin.storey_id, "co2", 3)
        empty = site.update_floorplan(None, "co2", None)
        href = site.open_room({"points": [{"curveNumber": 1, "customdata": [42] * 5}]})
        with pytest.raises(PreventUpdate):
            site.open_room({"points": [{"curveNumber": 1}]})
    assert len(fig.data) == 3
    assert _trace_colours(fig) == {"101": GOOD, "102": WARN, "103": BAD}
    assert len(empty.data) == 0
    assert href == "/room/42"


def test_page_layouts_show_the_known_twin(app: dash.Dash, known_twin: KnownTwin) -> None:
    overview = importlib.import_module("dashboard.pages.overview")
    room = importlib.import_module("dashboard.pages.room")
    with app.server.test_request_context("/"):
        cards = _json(overview.layout())
        room_page = _json(room.layout(room_id=str(known_twin.rooms["101"])))
        table, fig = room.update_room("co2", 1, known_twin.rooms["101"])
    assert cards.index("Futian HQ School") < cards.index("Member School 1")  # headquarters first
    assert '"/site/hq"' in cards and "75%" in cards  # 3 of 4 devices have reported
    assert "Teaching block" in room_page and "Futian HQ School" in room_page
    table_text = _json(table)
    assert "810 ppm" in table_text and "25.0 °C" in table_text
    assert len(fig.data[-1].y) == 2


# --- over HTTP --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode("utf-8")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def base_url(app: dash.Dash) -> Iterator[str]:
    """The app served by :func:`dashboard.serve.serve` on a free port, stopped afterwards."""
    port = _free_port()
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(app, "127.0.0.1", port, stop), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                _get(base + "/_dash-layout")
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_app_serves_pages_and_callbacks_over_http(base_url: str, known_twin: KnownTwin) -> None:
    base = base_url
    index = _get(base + "/")
    assert "_dash-config" in index and "cdn" not in index.lower()
    assert "style.css" in index
    assert "_dash-config" in _get(base + "/site/hq")
    assert "_pages_content" in _get(base + "/_dash-layout")
    dependencies = json.loads(_get(base + "/_dash-dependencies"))
    outputs = [d["output"] for d in dependencies]
    assert len(outputs) == len(set(outputs))  # each page callback registered once
    router = next(o for o in outputs if "_pages_content.children" in o)
    routed = _post(base + "/_dash-update-component", {
        "output": router,
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/site/hq"},
                   {"id": "_pages_location", "property": "search", "value": ""}],
        "changedPropIds": ["_pages_location.pathname"], "state": [],
    })
    assert "Teaching block – 1F" in json.dumps(routed, ensure_ascii=False)
    drawn = _post(base + "/_dash-update-component", {
        "output": "site-floorplan.figure",
        "outputs": {"id": "site-floorplan", "property": "figure"},
        "inputs": [{"id": "site-storey", "property": "value", "value": known_twin.storey_id},
                   {"id": "site-metric", "property": "value", "value": "co2"},
                   {"id": "site-interval", "property": "n_intervals", "value": 1}],
        "changedPropIds": ["site-interval.n_intervals"], "state": [],
    })
    assert len(drawn["response"]["site-floorplan"]["figure"]["data"]) == 3


ARTIFACTS = Path(os.environ.get("CAMPUS_TWIN_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


def screenshot(driver: object, name: str) -> None:
    """Save a PNG of the page to the artifacts folder, to be looked at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
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
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.browser
def test_three_clicks_from_the_network_to_a_room_in_a_browser(
    browser: object, base_url: str, known_twin: KnownTwin
) -> None:
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(base_url + "/")
    cards = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card-link"))
    screenshot(browser, "overview")
    assert [c.find_element(By.CSS_SELECTOR, ".card-title").text for c in cards] == [
        "Futian HQ School", "Member School 1"]
    cards[0].click()
    traces = "#site-floorplan .scatterlayer .trace"
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, traces)) == 3)
    assert browser.current_url == base_url + "/site/hq"
    screenshot(browser, "floorplan")
    fills = browser.find_elements(By.CSS_SELECTOR, traces + " .fills path")
    fills_by_x = sorted(fills, key=lambda e: e.location["x"])  # rooms 101, 102, 103 from left to right
    ActionChains(browser).move_to_element(fills_by_x[0]).click().perform()
    wait.until(lambda d: d.current_url.endswith(f"/room/{known_twin.rooms['101']}"))
    wait.until(lambda d: "810 ppm" in d.find_element(By.ID, "room-table").text)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#room-series .scatterlayer .trace"))
    screenshot(browser, "room")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
