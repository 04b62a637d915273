"""The site floor plan of issue 18: rooms open on a click anywhere inside, hovers with verdicts, legible labels,
a device legend, the building, storey and metric in the URL, human metric names."""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import replace
from datetime import date
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from dashboard.figures import FLOORPLAN_METRICS, floorplan_figure, room_from_click
from dashboard.figures.floorplan import KIND_SYMBOLS, plan_geometry
from dashboard.figures.legend import device_legend_items
from dashboard.metrics import metric_label
from tests.helpers import browser_login
from tests.test_dashboard import (  # noqa: F401  (fixtures)
    KnownTwin,
    _model,
    app,
    base_url,
    browser,
    known_twin,
)
from twin.database import connection
from twin.domain import Room, Storey
from twin.monitoring.site_standards import SiteStandards
from twin.storage.model import save_model
from twin.storage.plans import PlanRoom

DECEMBER = SiteStandards("hq", date(2026, 12, 14))


def site_page():
    return importlib.import_module("dashboard.pages.site")


def hit_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if t.get("meta") == "hit"]


def targets(fig: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every point a hover or click can land on (rooms' hits, the outside guard, devices) and its room (-1: none)."""
    xy, rooms = [], []
    for t in fig["data"]:
        if t.get("meta") in ("hit", "outside") or t.get("name") == "devices":
            points = np.column_stack([np.asarray(t["x"], float), np.asarray(t["y"], float)])
            xy.append(points)
            rooms.append(np.nan_to_num(np.asarray(t["customdata"], float), nan=-1.0))
    return np.concatenate(xy), np.concatenate(rooms)


def nearest_room(fig: dict, x: float, y: float) -> int:
    """The room a click at ``(x, y)`` opens: plotly hovers the closest point (``hoverdistance`` -1: no cutoff)."""
    xy, rooms = targets(fig)
    return int(rooms[int(np.argmin(np.hypot(xy[:, 0] - x, xy[:, 1] - y)))])


def l_shape() -> Polygon:
    return Polygon([(0, 6), (12, 6), (12, 8), (2, 8), (2, 14), (0, 14)])


def storey_rooms() -> list[PlanRoom]:
    """Classrooms side by side, a toilet, an L-shaped corridor, a thin duct and a tiny store; no devices."""
    return [PlanRoom(1, "101", "classroom", box(0, 0, 8, 6)), PlanRoom(2, "102", "classroom", box(8, 0, 16, 6)),
            PlanRoom(3, "Toilet", "toilet", box(16, 0, 19, 6)), PlanRoom(4, "Corridor", "corridor", l_shape()),
            PlanRoom(5, "Duct", "other", box(12, 6, 12.4, 8)), PlanRoom(6, "St", "other", box(13, 6.5, 13.6, 7.1))]


# --- pure: the figure ---------------------------------------------------------------------------------------


def test_a_click_anywhere_inside_a_room_opens_that_room() -> None:
    rooms = storey_rooms()
    fig = floorplan_figure(rooms, {}, "co2")
    assert fig["layout"]["hoverdistance"] == -1  # the closest point wins, however far (zoomed in)
    for room in rooms:
        inner = room.footprint.buffer(-0.12)  # all but a hair along the walls
        xmin, ymin, xmax, ymax = room.footprint.bounds
        probes = [(x, y) for x in np.linspace(xmin, xmax, 25) for y in np.linspace(ymin, ymax, 25)
                  if inner.contains(Point(x, y))]
        probes.append(tuple(shapely.get_coordinates(room.footprint.representative_point())[0]))
        assert probes
        wrong = [p for p in probes if nearest_room(fig, *p) != room.room_id]
        assert wrong == [], (room.name, wrong[:5])
    assert nearest_room(fig, 30.0, 30.0) == -1  # outside the building: nothing opens
    assert nearest_room(fig, 10.0, 12.0) == -1  # beside the corridor's leg
    assert room_from_click({"points": [{"curveNumber": 9, "pointNumber": 0, "customdata": -1}]}) is None


def test_device_markers_keep_their_tooltips_and_rooms_hover_their_values_with_the_verdicts() -> None:
    rooms = storey_rooms()[:3]
    lum = SimpleNamespace(device_id="lum-101", kind="luminaire", room_id=1, x=4.0, y=3.0, state="online")
    values = {1: {"co2": 1200.0, "temperature": 25.0}, 2: {"co2": 800.0}}
    fig = floorplan_figure(rooms, values, "co2", devices=[lum], standards=DECEMBER)
    hits = {t["customdata"][0]: t for t in hit_traces(fig)}
    hover = hits[1]["text"]
    assert "<b>101</b>" in hover and "CO₂: 1200 ppm" in hover and "Temperature: 25.0 °C" in hover
    assert "outside a standard (warning)" in hover  # 25 °C in a classroom in December
    assert "meets the standards" in hover  # 1200 ppm in a classroom
    assert "lum-101" not in hover
    devices = next(t for t in fig["data"] if t["name"] == "devices")
    assert "lum-101" in devices["text"][0]
    assert nearest_room(fig, 4.0, 3.0) == 1  # on the marker: the device, in room 101
    for t in fig["data"]:
        if t.get("meta") != "hit" and t["name"] != "devices":
            assert t.get("hoverinfo") in ("skip", "none") or t.get("meta") == "outside" or "hoverinfo" not in t
    labels = next(t for t in fig["data"] if t["name"] == "labels")
    assert labels["hoverinfo"] == "skip"
    label_at = labels["x"][0], labels["y"][0]
    assert math.dist(label_at, (4.0, 3.0)) > 0.5  # the label is not drawn over the luminaire
    zh = floorplan_figure(rooms, values, "co2", lang="zh", standards=DECEMBER)
    assert "二氧化碳: 1200 ppm" in {t["customdata"][0]: t for t in hit_traces(zh)}[1]["text"]


def many_rooms(count: int = 122) -> list[PlanRoom]:
    """Two wings, each two rows of classrooms, offices and toilets along a corridor, with a few tiny stores."""
    rooms: list[PlanRoom] = []
    sizes = [(9.0, "classroom"), (4.0, "office"), (2.5, "toilet")]
    rows = [0.0, 9.0, 20.0, 29.0]  # a corridor between rows 0 and 1, and between rows 2 and 3
    per_row = (count - 2) // len(rows)
    for r, y0 in enumerate(rows):
        x = 0.0
        for i in range(per_row):
            n = r * per_row + i
            width, use = sizes[n % 3]
            if i % 10 == 9:
                width, use = 0.8, "other"
            rooms.append(PlanRoom(1000 + n, f"{use.title()} {n:03d} 北区", use, box(x, y0, x + width, y0 + 7)))
            x += width + 0.2
    length = max(r.footprint.bounds[2] for r in rooms)
    rooms += [PlanRoom(998, "Corridor", "corridor", box(0, 7, length, 9)),
              PlanRoom(999, "Corridor 2", "corridor", box(0, 27, length, 29))]
    return rooms


def test_labels_are_sized_by_room_hidden_when_too_small_and_the_full_name_is_on_hover() -> None:
    rooms = many_rooms()
    fig = floorplan_figure(rooms, {r.room_id: {"co2": 700.0} for r in rooms}, "co2")
    labels = next(t for t in fig["data"] if t["name"] == "labels")
    sizes = dict(zip([r.room_id for r in rooms], labels["textfont"]["size"], strict=True))
    texts = dict(zip([r.room_id for r in rooms], labels["text"], strict=True))
    tiny = [r.room_id for r in rooms if r.footprint.area < 6]
    assert tiny and all(texts[i] == "" for i in tiny)  # hidden
    classroom, office = rooms[0].room_id, rooms[1].room_id
    assert sizes[classroom] > sizes[office] >= 7
    assert max(sizes.values()) <= 14
    hovers = {t["customdata"][0]: t["text"] for t in hit_traces(fig)}
    assert all(f"<b>{r.name}</b>" in hovers[r.room_id] for r in rooms)  # the full name, whatever the label shows
    drawn = [t for t in texts.values() if t]
    assert len(drawn) > 60  # most rooms keep a label


def test_a_122_room_storey_stays_a_reasonable_figure() -> None:
    rooms = many_rooms()
    fig = floorplan_figure(rooms, {r.room_id: {"co2": 700.0} for r in rooms}, "co2")
    points = sum(len(t["x"]) for t in fig["data"] if t.get("meta") in ("hit", "outside"))
    size = len(orjson.dumps(fig, option=orjson.OPT_SERIALIZE_NUMPY))
    assert points <= 8000, points
    assert size <= 250_000, size


def test_the_legend_names_every_device_symbol_in_both_languages() -> None:
    en, zh = device_legend_items("en"), device_legend_items("zh")
    assert {symbol for symbol, _ in en} == set(KIND_SYMBOLS.values())
    assert any(label == "luminaire" for _, label in en) and any(label == "灯具" for _, label in zh)
    assert any(label == "interactive panel" for _, label in en) and any(label == "交互大屏" for _, label in zh)


def test_metric_names_are_human_in_both_languages() -> None:
    assert [metric_label(m, "en") for m in ("co2", "illuminance", "device_health")] == [
        "CO₂", "Desk illuminance", "Device health"]
    assert [metric_label(m, "zh") for m in ("co2", "illuminance", "device_health")] == ["二氧化碳", "课桌照度", "设备健康"]
    for m in FLOORPLAN_METRICS:
        assert metric_label(m, "en") != m and metric_label(m, "zh") != m
    assert metric_label("no_such_metric", "en") == "no_such_metric"


def test_the_picker_shows_human_names_and_the_url_keeps_building_storey_and_metric(app) -> None:  # noqa: F811
    assert [o["label"] for o in site_page().metric_options("en")][:3] == ["CO₂", "Temperature", "Desk illuminance"]
    assert [o["label"] for o in site_page().metric_options("zh")][:3] == ["二氧化碳", "温度", "课桌照度"]
    site = site_page()
    assert site.query_string(3, 12, "co2") == "?building=3&storey=12&metric=co2"
    assert site.parse_query("?building=3&storey=12&metric=temperature") == (3, 12, "temperature")
    assert site.parse_query("?storey=x&metric=nonsense") == (None, None, None)
    assert site.parse_query("") == (None, None, None)


def test_geometry_is_ready_before_any_value() -> None:
    geometry = plan_geometry(storey_rooms())
    assert len(geometry.hits) == len(geometry.room_ids) and geometry.outside.shape[1] == 2


# --- in a browser ------------------------------------------------------------------------------------------


def with_second_storey_and_rooms_without_devices(url: str) -> dict[str, int]:
    """hq gets a toilet on 1F and a 2F with an office, none with devices; their ids by name and the storeys'."""
    model = _model()
    rooms = model.rooms + (Room("R105", "S1", "105 toilet", use="toilet", footprint=box(0, 6, 8, 12)),
                           Room("R201", "S2", "201 office", use="office", footprint=box(0, 0, 10, 6)))
    with connection(url) as conn:
        save_model(conn, replace(model, storeys=(*model.storeys, Storey("S2", "B1", "2F", 3.6)), rooms=rooms))
        conn.commit()
        found = dict(conn.execute("SELECT name, id FROM rooms WHERE name IN ('105 toilet', '201 office')").fetchall())
        found |= dict(conn.execute("SELECT name, id FROM storeys").fetchall())
    return found


def click_at(driver, x: float, y: float) -> None:
    """Click the floor plan at plan coordinates ``(x, y)`` (metres)."""
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    graph = driver.find_element(By.CSS_SELECTOR, "#site-floorplan .js-plotly-plot")
    px, py = driver.execute_script(
        "const gd = arguments[0], L = gd._fullLayout;"
        "return [L._size.l + L.xaxis.l2p(arguments[1]), L._size.t + L.yaxis.l2p(arguments[2])];", graph, x, y)
    rect = graph.rect
    ActionChains(driver).move_to_element_with_offset(
        graph, int(px - rect["width"] / 2), int(py - rect["height"] / 2)).pause(0.2).click().perform()


@pytest.mark.browser
def test_floor_plan_in_a_browser(browser, base_url: str, known_twin: KnownTwin) -> None:  # noqa: F811
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    ids = with_second_storey_and_rooms_without_devices(known_twin.url)
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))  # pages re-render
    browser_login(browser, base_url, known_twin.url, "fp-viewer", "viewer")

    def plan_text() -> str:
        return browser.find_element(By.ID, "site-floorplan").text

    # a deep link to 2F with a metric, and a reload keep both
    browser.get(f"{base_url}/site/hq?storey={ids['2F']}&metric=temperature")
    wait.until(lambda d: "201 office" in plan_text())
    assert "Temperature" in browser.find_element(By.ID, "site-metric").text
    browser.refresh()
    wait.until(lambda d: "201 office" in plan_text())
    assert "Temperature" in browser.find_element(By.ID, "site-metric").text
    # the metric picker shows human names
    browser.find_element(By.ID, "site-metric").click()
    menu = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=listbox]"))
    names = menu.text
    assert "CO₂" in names and "Desk illuminance" in names and "Device health" in names and "co2" not in names
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "[role=listbox]"))
    # picking 1F puts it in the URL
    browser.find_element(By.ID, "site-storey").click()
    wait.until(lambda d: d.find_element(By.XPATH, "//*[@role='option'][normalize-space()='1F']")).click()
    wait.until(lambda d: f"storey={ids['1F']}" in d.current_url and "metric=temperature" in d.current_url)
    wait.until(lambda d: "105 toilet" in plan_text())
    one_f = browser.current_url
    browser.refresh()
    wait.until(lambda d: "105 toilet" in plan_text())
    assert browser.current_url == one_f
    # a click at the centroid of the toilet (no devices) opens it
    click_at(browser, 4.0, 9.0)
    wait.until(lambda d: d.current_url.endswith(f"/room/{ids['105 toilet']}"))
    # back: 1F and the metric again
    browser.back()
    wait.until(lambda d: d.current_url == one_f)
    wait.until(lambda d: "105 toilet" in plan_text() and "Temperature" in d.find_element(By.ID, "site-metric").text)
    # back once more: 2F, as first linked
    browser.back()
    wait.until(lambda d: "201 office" in plan_text())
    assert f"storey={ids['2F']}" in browser.current_url
    assert "Sensor" in browser.find_element(By.ID, "site-legend").text or "sensor" in \
        browser.find_element(By.ID, "site-legend").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], json.dumps(errors)[:2000]
