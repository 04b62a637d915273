"""The alarms page: room and building of every alarm (a device alarm's room is its device's), a link to the
room's chart around the alarm's time, several acknowledged at once; in a browser with a clean console."""

from __future__ import annotations

import importlib
import json

import dash
import pytest

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
from twin.database import connection
from twin.storage import alarms, audit


def _page():
    return importlib.import_module("dashboard.pages.alarms")


def _device_alarm(known: KnownTwin, device: str = "env-101", rule: str = "temperature_out_of_range") -> int:
    with connection(known.url) as conn:
        return alarms.raise_alarm(conn, "hq", rule, "warning", "too warm", device_key=known.keys["hq", device])


def test_every_alarm_has_its_room_and_building(known_twin: KnownTwin) -> None:  # noqa: F811
    alarm_id = _device_alarm(known_twin)
    with connection(known_twin.url) as conn:
        rows = {a.id: a for a in alarms.list_alarms(conn)}
    device_alarm, room_alarm = rows[alarm_id], rows[known_twin.alarm_id]
    assert (device_alarm.room, device_alarm.room_id, device_alarm.building) == (
        "101", known_twin.rooms["101"], "Teaching block")  # the device's room
    assert (room_alarm.room, room_alarm.building, room_alarm.building_id) == ("103", "Teaching block",
                                                                              known_twin.building_id)
    site_alarm = next(a for a in rows.values() if a.site_id == "m01")
    assert (site_alarm.room, site_alarm.building) == (None, None)


def test_the_table_links_each_alarm_to_its_room_chart_around_its_time(app: dash.Dash,  # noqa: F811
                                                                      known_twin: KnownTwin) -> None:  # noqa: F811
    page = _page()
    alarm_id = _device_alarm(known_twin)
    with app.server.test_request_context("/", headers=signed_in(app)):
        table = _json(page.update_alarms("hq", "any", "open", 0, None))
        rows = {a.id: a for a in page.data.alarm_list("hq", None, "open")}
    assert "Teaching block" in table
    raised = rows[alarm_id].raised_at
    assert f"/room/{known_twin.rooms['101']}?metric=temperature&amp;at=" not in table  # not escaped twice
    assert f"/room/{known_twin.rooms['101']}?metric=temperature&at=" in table
    assert f"/room/{known_twin.rooms['103']}?metric=co2&at=" in table
    room = importlib.import_module("dashboard.pages.room")
    link = json.loads(table)
    hrefs = [h for h in _hrefs(link) if f"/room/{known_twin.rooms['101']}?" in h]
    at = hrefs[0].split("at=")[1]
    assert abs((room.parse_at(at) - raised).total_seconds()) < 1
    assert page.metric_of("classroom_co2_high") == "co2" and page.metric_of("co2_high") == "co2"
    assert page.metric_of("blackboard_illuminance_low") == "blackboard_illuminance"
    assert page.metric_of("device_offline") is None


def _hrefs(node: object) -> list[str]:
    if isinstance(node, dict):
        return ([node["href"]] if isinstance(node.get("href"), str) else []) + [
            h for v in node.values() for h in _hrefs(v)]
    if isinstance(node, list):
        return [h for v in node for h in _hrefs(v)]
    return []


def test_several_alarms_acknowledged_at_once_each_audited(app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    page = _page()
    second = _device_alarm(known_twin)
    with app.server.test_request_context("/", headers=signed_in(app)):
        status, _ = page.acknowledge_selected(1, [known_twin.alarm_id, second], "both seen", 0)
        again, _ = page.acknowledge_selected(1, [known_twin.alarm_id], "", 0)
    assert "2" in status and "0" in again
    with connection(known_twin.url) as conn:
        acked = {a.id: a for a in alarms.list_alarms(conn, state="acknowledged")}
        entries = audit.recent(conn, 10, action="acknowledge")
    assert {known_twin.alarm_id, second} <= set(acked) and acked[second].note == "both seen"
    assert {e["target"] for e in entries if e["outcome"] == "ok"} >= {f"alarm {known_twin.alarm_id}",
                                                                      f"alarm {second}"}


@pytest.mark.browser
def test_alarms_page_in_a_browser(browser: object, app: dash.Dash, base_url: str,  # noqa: F811
                                  known_twin: KnownTwin) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    second = _device_alarm(known_twin)
    wait = WebDriverWait(browser, 20)
    browser_login(browser, base_url, known_twin.url, "alarm-operator", "operator")
    browser.get(base_url + "/alarms")
    wait.until(lambda d: "Teaching block" in d.find_element(By.ID, "alarm-table").text)
    table = browser.find_element(By.ID, "alarm-table").text
    assert "103" in table and "101" in table
    # the room link opens the room's chart around the alarm's time
    link = wait.until(lambda d: d.find_element(
        By.CSS_SELECTOR, f"#alarm-table a[href*='/room/{known_twin.rooms['103']}?']"))
    link.click()
    wait.until(lambda d: "metric=co2" in d.current_url and "at=" in d.current_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#room-series .scatterlayer .trace"))
    checked = browser.find_element(By.CSS_SELECTOR, "#room-range input:checked").get_attribute("value")
    assert checked == "at"
    # several at once
    browser.get(base_url + "/alarms")
    boxes = wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#alarm-table input[type=checkbox]")) >= 2
                       and d.find_elements(By.CSS_SELECTOR, "#alarm-table input[type=checkbox]"))
    for box in boxes:
        box.click()
    browser.find_element(By.ID, "alarm-note").send_keys("all seen")
    browser.find_element(By.ID, "alarm-ack-selected").click()
    wait.until(lambda d: f"{len(boxes)} alarms acknowledged" in d.find_element(By.ID, "alarm-bulk-status").text)
    with connection(known_twin.url) as conn:
        acked = {a.id for a in alarms.list_alarms(conn, state="acknowledged")}
    assert {known_twin.alarm_id, second} <= acked
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
