"""The room page: a summary first (aggregated, judged, words for states), charts with gaps and empty ranges,
local time on the axis, a window around a given time (``?metric=&at=``); in a browser with a clean console."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, date, datetime, timedelta

import dash
import pytest
from plotly.io.json import to_json_plotly

from dashboard.figures import series_csv, series_figure
from tests.helpers import browser_login
from tests.test_dashboard import (  # noqa: F401  (fixtures)
    KnownTwin,
    _json,
    app,
    base_url,
    browser,
    known_twin,
    signed_in,
)
from twin.monitoring.site_standards import SiteStandards
from twin.storage.readings import LatestValue
from twin.timetable import SCHOOL_TZ


@pytest.fixture
def room(app: dash.Dash):  # noqa: F811
    """The room page's module (pages are imported once an app exists)."""
    return importlib.import_module("dashboard.pages.room")


MONDAY = date(2026, 11, 23)  # a school day
NIGHT = datetime(2026, 11, 23, 22, 0, tzinfo=SCHOOL_TZ).astimezone(UTC)
LESSON = datetime(2026, 11, 23, 8, 10, tzinfo=SCHOOL_TZ).astimezone(UTC)
STANDARDS = SiteStandards("hq", MONDAY)


def _v(device: str, kind: str, metric: str, value: float, unit: str = "", ts: datetime = NIGHT) -> LatestValue:
    return LatestValue(device, kind, metric, unit, ts, value)


ROWS = [
    _v("env-1", "env_sensor", "co2", 800.0, "ppm"), _v("env-2", "env_sensor", "co2", 1000.0, "ppm"),
    _v("env-1", "env_sensor", "occupancy", 0.0, "persons"),
    *[_v(f"lum-{i}", "luminaire", "on", 1.0 if i < 3 else 0.0) for i in range(9)],
    _v("pan-1", "panel", "panel_state", 1.0), _v("pan-1", "panel", "input_source", 3.0),
    _v("pan-1", "panel", "screen_on", 0.0),
    _v("bb-1", "blackboard_sensor", "blackboard_illuminance", 12.0, "lx"),
]


def _by_metric(items: list) -> dict:
    return {i.metric: i for i in items}


def test_summary_aggregates_each_metric_over_the_devices_with_words_for_states(room) -> None:
    items = _by_metric(room.room_summary(ROWS, "classroom", STANDARDS, now=NIGHT, lang="en"))
    assert items["co2"].text == "900 ppm" and items["co2"].devices == 2  # the mean over two sensors
    assert items["on"].text == "3 of 9 on"
    assert items["panel_state"].text == "standby"
    assert items["input_source"].text == "cloud-class stream"
    assert items["screen_on"].text == "off"
    assert not any("0.0" in i.text or "1.0" in i.text for i in items.values())
    zh = _by_metric(room.room_summary(ROWS, "classroom", STANDARDS, now=NIGHT, lang="zh"))
    assert zh["panel_state"].text == "待机" and zh["screen_on"].text == "关" and "9" in zh["on"].text
    assert zh["on"].text != items["on"].text and zh["input_source"].text == "云课堂直播"
    # the summary's order: the room's climate first, then light, then the devices' states
    order = [i.metric for i in room.room_summary(ROWS, "classroom", STANDARDS, now=NIGHT)]
    assert order.index("co2") < order.index("blackboard_illuminance") < order.index("panel_state")


def test_light_rules_say_not_in_session_at_night_and_judge_in_a_lesson(room) -> None:
    night = _by_metric(room.room_summary(ROWS, "classroom", STANDARDS, now=NIGHT))
    assert night["blackboard_illuminance"].status == room.NOT_IN_SESSION  # not red with the lights off at night
    assert night["co2"].status == room.NOT_IN_SESSION  # the CO2 rules too are rules of lessons
    lesson_rows = [r if r.metric != "occupancy" else _v("env-1", "env_sensor", "occupancy", 30.0) for r in ROWS]
    lesson = _by_metric(room.room_summary(lesson_rows, "classroom", STANDARDS, now=LESSON))
    assert lesson["blackboard_illuminance"].status == STANDARDS.judge(
        "blackboard_illuminance", 12.0, "classroom", occupied=True).status != "ok"
    assert lesson["co2"].status == "ok"
    assert lesson["on"].status == "none"  # no standard judges a switch
    # the same verdicts as the floor plan in a lesson
    assert lesson["co2"].status == STANDARDS.judge("co2", 900.0, "classroom", occupied=True).status


def _points(minutes: list[int]) -> list[tuple[datetime, float, float, float]]:
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    return [(start + timedelta(minutes=m), 800.0 + m, 790.0, 810.0 + m) for m in minutes]


def test_a_gap_in_the_data_is_a_break_in_the_lines() -> None:
    fig = json.loads(to_json_plotly(series_figure(_points([0, 1, 2, 10, 11]), "co2", "ppm",
                                                  interval=timedelta(minutes=1))))
    for trace in fig["data"]:
        assert trace["connectgaps"] is False
        assert trace["y"][3] is None and len(trace["y"]) == 6  # one break between minute 2 and minute 10
    # two missing minutes or fewer are no gap
    fig = json.loads(to_json_plotly(series_figure(_points([0, 1, 3]), "co2", "ppm", interval=timedelta(minutes=1))))
    assert None not in fig["data"][2]["y"]


def test_the_axis_is_local_time_with_the_zone_and_the_csv_stays_utc() -> None:
    points = _points([0, 1])
    fig = json.loads(to_json_plotly(series_figure(points, "co2", "ppm", interval=timedelta(minutes=1),
                                                  zone=SCHOOL_TZ, lang="en")))
    assert fig["data"][2]["x"][0].startswith("2026-11-23T08:00")  # 00:00 UTC is 08:00 in Shanghai
    assert "Asia/Shanghai" in json.dumps(fig["layout"]["xaxis"]["title"])
    assert "2026-11-23T00:00:00+00:00" in series_csv(points, "co2", "ppm")


def test_an_empty_range_says_no_data_in_this_range() -> None:
    fig = series_figure([], "co2", "ppm", lang="en")
    assert "no data in this range" in json.dumps(fig["layout"]["annotations"])
    assert "该时段无数据" in json.dumps(series_figure([], "co2", "ppm", lang="zh")["layout"]["annotations"],
                                      ensure_ascii=False)


def test_an_empty_range_offers_the_last_range_with_data(room, app: dash.Dash,  # noqa: F811
                                                        known_twin: KnownTwin) -> None:  # noqa: F811
    rid = known_twin.rooms["101"]
    long_ago = (datetime.now(UTC) - timedelta(days=60)).date().isoformat()
    with app.server.test_request_context("/", headers=signed_in(app)):
        fig, points = room.chart(rid, "co2", "custom", long_ago, long_ago)
        offer = room.data_offer(rid, "co2", points, "en")
        none = room.data_offer(rid, "pm25", [], "en")
        _, shown = room.chart(rid, "co2", room.AT_RANGE, at=known_twin.m2.isoformat())
        last = room.last_data(rid, "co2")
    assert points == [] and "no data in this range" in _json(fig)
    assert offer is not None and offer.at == known_twin.m2 + timedelta(seconds=35) and "Last data" in offer.text
    assert last == known_twin.m2 + timedelta(seconds=35)
    assert none is None  # no data at all: nothing to offer
    assert [p[0] for p in shown] == [known_twin.m1, known_twin.m2]  # the window around the time has the data


def test_a_link_with_metric_and_time_opens_the_chart_around_it(room, app: dash.Dash,  # noqa: F811
                                                               known_twin: KnownTwin) -> None:  # noqa: F811
    rid = known_twin.rooms["101"]
    at = known_twin.m2.isoformat()
    with app.server.test_request_context("/", headers=signed_in(app)):
        page = _json(room.layout(room_id=str(rid), metric="temperature", at=at))
        plain = _json(room.layout(room_id=str(rid), metric="no-such-metric", at="not a time"))
    assert f'"value": "{room.AT_RANGE}"' in page and '"value": "temperature"' in page and at in page
    assert '"value": "co2"' in plain and f'"value": "{room.AT_RANGE}"' not in plain
    start, end, hourly = room.window(room.AT_RANGE, at=at)
    assert start < known_twin.m2 < end and not hourly


def test_page_order_summary_then_history_then_devices_then_raw_values(room, app: dash.Dash,  # noqa: F811
                                                                      known_twin: KnownTwin) -> None:  # noqa: F811
    rid = known_twin.rooms["101"]
    with app.server.test_request_context("/", headers=signed_in(app)):
        page = _json(room.layout(room_id=str(rid)))
        summary, table, devices = room.update_live(1, rid)
    order = [page.index(f'"{name}"') for name in ("room-summary", "room-series", "room-devices", "room-table")]
    assert order == sorted(order)
    assert "810 ppm" in _json(summary) and "25.0 °C" in _json(summary) and "1 of 1 on" in _json(summary)
    assert "810 ppm" in _json(table) and "lum-101" in _json(devices)
    assert '"type": "Details"' in page  # the raw values are collapsed


@pytest.mark.browser
def test_room_page_in_a_browser(browser: object, app: dash.Dash, base_url: str,  # noqa: F811
                                known_twin: KnownTwin) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser_login(browser, base_url, known_twin.url, "room-viewer", "viewer")
    rid = known_twin.rooms["101"]
    browser.get(f"{base_url}/room/{rid}")
    wait.until(lambda d: "810 ppm" in d.find_element(By.ID, "room-summary").text)
    summary = browser.find_element(By.ID, "room-summary")
    assert "1 of 1 on" in summary.text and "cloud-class stream" in summary.text and "0.0" not in summary.text
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#room-series .scatterlayer .trace"))
    tops = browser.execute_script("return ['room-summary', 'room-series', 'room-devices', 'room-table'].map("
                                  "i => document.getElementById(i).getBoundingClientRect().top)")
    assert tops[:3] == sorted(tops[:3])  # the summary first, then the history, then the devices
    assert browser.find_element(By.ID, "room-table").text == ""  # the raw values collapsed
    assert "Asia/Shanghai" in browser.find_element(By.ID, "room-series").text
    # a time without data (60 days ago): "no data in this range" and a button to the last data
    long_ago = (datetime.now(UTC) - timedelta(days=60)).isoformat()
    browser.get(f"{base_url}/room/{rid}?metric=co2&at={long_ago.replace('+', '%2B')}")
    wait.until(lambda d: "no data in this range" in d.find_element(By.ID, "room-series").text)
    button = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#room-offer button").is_displayed()
                        and d.find_element(By.CSS_SELECTOR, "#room-offer button"))
    button.click()
    wait.until(lambda d: "no data in this range" not in d.find_element(By.ID, "room-series").text
               and d.find_elements(By.CSS_SELECTOR, "#room-series .scatterlayer .trace"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
