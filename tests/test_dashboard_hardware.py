"""The devices page's "publishing but not in the twin": hardware adapters saw that no device carries, listed
with how it is addressed, its model and messages, and bound to a device in one step by a planner (or an admin),
through Dash's callback endpoint as a logged-in user, against the real database; and once in a browser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import pytest

from dashboard.app import close_app
from tests.helpers import Login, add_user, browser_login, login, wait_for
from tests.test_dashboard import KnownTwin, app, base_url, browser, known_twin, make_app, screenshot  # noqa: F401
from twin import security
from twin.database import connection
from twin.storage import audit
from twin.storage.identities import Binding, Seen, bind, identities, note_seen

CALLBACK = "/_dash-update-component"


def hardware_key(site: str, kind: str, hardware_id: str) -> str:
    """The key of a row's controls (imported late: a page module registers itself with the app)."""
    from dashboard.pages.devices import hardware_key as key

    return key(site, kind, hardware_id)
SEEN_AT = datetime(2026, 12, 4, 0, 50, 5, tzinfo=UTC)  # 08:50:05 in Asia/Shanghai
IEEE = "00158d0001a2b3c4"
DEVEUI = "70b3d57ed005a1b2"


def _seen(url: str) -> None:
    """A zigbee2mqtt sensor at hq whose friendly name is a device's id (twice: 7 then 5 more messages), a
    LoRaWAN node at hq named only by its application, a Tasmota plug at the member school."""
    with connection(url) as conn:
        note_seen(conn, [Seen("hq", "ieee", IEEE, "zigbee2mqtt", "env-104", None, SEEN_AT, 7),
                         Seen("hq", "deveui", DEVEUI, "chirpstack", "application/3", "Dragino LHT65",
                              SEEN_AT - timedelta(hours=1), 3),
                         Seen("m01", "tasmota", "plug_A1B2C3", "tasmota", "plug_A1B2C3", "Sonoff S26",
                              SEEN_AT - timedelta(hours=2), 1)])
        note_seen(conn, [Seen("hq", "ieee", IEEE, "zigbee2mqtt", "env-104", "Aqara WSDCGQ11LM",
                              SEEN_AT + timedelta(minutes=5), 5)])


@pytest.fixture
def hw_app(known_twin: KnownTwin) -> Iterator[dash.Dash]:  # noqa: F811
    """The real app on the known twin with hardware seen; one user per role."""
    _seen(known_twin.url)
    for role in security.ROLES:
        add_user(known_twin.url, f"{role}-hw", role)
    dash_app = make_app(known_twin.url)
    try:
        yield dash_app
    finally:
        close_app(dash_app)


class Session:
    """A user logged in through the login form, calling callbacks as dash-renderer does."""

    def __init__(self, dash_app: dash.Dash, username: str) -> None:
        self.client = dash_app.server.test_client()
        self.who: Login = login(self.client, username)
        deps = self.client.get("/_dash-dependencies").get_json()
        self.outputs = [d["output"] for d in deps]

    def output(self, first: str) -> str:
        return next(o for o in self.outputs if o == first or o.startswith(f"..{first}"))

    def post(self, body: dict[str, Any]) -> tuple[int, str]:
        """The status and the answer (as JSON without escapes, when it is JSON)."""
        response = self.client.post(CALLBACK, json=body, headers={"X-CSRFToken": self.who.csrf})
        text = response.get_data(as_text=True)
        return response.status_code, json.dumps(response.get_json(), ensure_ascii=False) if response.is_json else text

    def hardware(self, site: str = "any", page: int = 1, refresh: int = 0) -> str:
        """The hardware list as the page's first refresh sends it."""
        status, text = self.hardware_tick(site, page, refresh, changed="devices-site.value" if page == 1
                                          else "hardware-page.active_page")
        assert status == 200, text[:500]
        return text

    def hardware_tick(self, site: str = "any", page: int = 1, refresh: int = 0, *, changed: str = "devices-interval",
                      shown: Any = None, chosen: dict[str, str | None] | None = None) -> tuple[int, str]:
        """The hardware list's callback with the page showing ``shown`` (what it last sent) and the devices
        ``chosen`` in rows' dropdowns."""
        picked = [{"key": k, "type": "hardware-device"} for k in (chosen or {})]
        return self.post({
            "output": self.output("hardware.children"),
            "outputs": [{"id": "hardware", "property": "children"}, {"id": "hardware-page", "property": "max_value"},
                        {"id": "hardware-page", "property": "active_page"},
                        {"id": "hardware-page", "property": "style"}, {"id": "hardware-shown", "property": "data"}],
            "inputs": [{"id": "devices-site", "property": "value", "value": site},
                       {"id": "hardware-page", "property": "active_page", "value": page},
                       {"id": "hardware-refresh", "property": "data", "value": refresh},
                       {"id": "devices-interval", "property": "n_intervals", "value": 1}],
            "changedPropIds": [changed if "." in changed else f"{changed}.n_intervals"],
            "state": [{"id": "hardware-shown", "property": "data", "value": shown},
                      [{"id": p, "property": "value", "value": (chosen or {})[p["key"]]} for p in picked],
                      [{"id": p, "property": "id", "value": p} for p in picked]]})

    def bind(self, site: str, kind: str, hardware_id: str, device: str | None) -> tuple[int, str]:
        """Press Bind on the row of ``(site, kind, hardware_id)`` with ``device`` chosen."""
        key = hardware_key(site, kind, hardware_id)
        button = {"key": key, "type": "hardware-bind"}
        chooser = {"key": key, "type": "hardware-device"}
        return self.post({
            "output": self.output("hardware-status.children"),
            "outputs": [{"id": "hardware-status", "property": "children"},
                        {"id": "hardware-refresh", "property": "data"}],
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"],
            "state": [[{"id": chooser, "property": "value", "value": device}],
                      [{"id": chooser, "property": "id", "value": chooser}],
                      {"id": "hardware-refresh", "property": "data", "value": 0}]})

    def choices(self, site: str, kind: str, hardware_id: str, search: str) -> list[dict[str, str]]:
        """The devices the row's dropdown offers for what was typed in it."""
        chooser = {"key": hardware_key(site, kind, hardware_id), "type": "hardware-device"}
        status, text = self.post({
            "output": self.output('{"key":["MATCH"],"type":"hardware-device"}.options'),
            "outputs": {"id": chooser, "property": "options"},
            "inputs": [{"id": chooser, "property": "search_value", "value": search}],
            "changedPropIds": [json.dumps(chooser, separators=(",", ":"), sort_keys=True) + ".search_value"],
            "state": [{"id": chooser, "property": "value", "value": None},
                      {"id": chooser, "property": "id", "value": chooser}]})
        assert status == 200, text[:500]
        return json.loads(text)["response"][json.dumps(chooser, separators=(",", ":"), sort_keys=True)]["options"]

    def devices(self, search: str) -> str:
        """The devices list (the page's main table) for ``search``."""
        status, text = self.post({
            "output": self.output("devices-body.children"),
            "outputs": [{"id": i, "property": p} for i, p in (
                ("devices-body", "children"), ("devices-page", "max_value"), ("devices-page", "active_page"),
                ("unmapped", "children"), ("devices-kind", "options"))],
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in (
                ("devices-site", "value", "any"), ("devices-state", "value", "any"), ("devices-kind", "value", "any"),
                ("devices-search", "value", search), ("devices-sort", "value", "device"),
                ("devices-order", "value", "asc"), ("devices-page", "active_page", 1),
                ("devices-interval", "n_intervals", None), ("hardware-refresh", "data", 0))],
            "changedPropIds": ["devices-search.value"], "state": []})
        assert status == 200, text[:500]
        return text


def _chooser_value(text: str, site: str, kind: str, hardware_id: str) -> Any:
    """The value the row's device dropdown is rendered with."""
    key = hardware_key(site, kind, hardware_id)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == "Dropdown" and node["props"].get("id") == {"type": "hardware-device", "key": key}:
                return node["props"]
            for value in node.values():
                if (found := walk(value)) is not None:
                    return found
        elif isinstance(node, list):
            for value in node:
                if (found := walk(value)) is not None:
                    return found
        return None

    props = walk(json.loads(text))
    assert props is not None, f"no device dropdown for {key}"
    return props


def test_hardware_seen_is_listed_with_its_address_model_messages_and_local_times(hw_app: dash.Dash) -> None:
    text = Session(hw_app, "viewer-hw").hardware()
    for shown in ("Publishing but not in the twin (3)", IEEE, "zigbee2mqtt", "env-104", "Aqara WSDCGQ11LM",
                  DEVEUI, "chirpstack", "application/3", "Dragino LHT65", "plug_A1B2C3", "Sonoff S26",
                  "2026-12-04 08:50:05", "2026-12-04 08:55:05"):  # first and last seen in the school's zone
        assert shown in text, shown
    body = json.loads(text)["response"]
    rows = json.dumps(body["hardware"]["children"], ensure_ascii=False)
    assert rows.index(IEEE) < rows.index(DEVEUI) < rows.index("plug_A1B2C3")  # last seen newest first
    cells = [c for c in _texts(body["hardware"]["children"])]
    assert "12" in cells and "3" in cells  # messages: 7 + 5, and 3
    assert body["hardware-page"] == {"max_value": 1, "active_page": 1, "style": {"display": "none"}}
    # the school filter narrows it; Chinese headers from the same table
    member = Session(hw_app, "viewer-hw").hardware(site="m01")
    assert "plug_A1B2C3" in member and IEEE not in member and "(1)" in member


def _texts(node: Any) -> list[str]:
    """Every string child of a component tree (the cells' texts)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [str(node)]
    if isinstance(node, list):
        return [t for n in node for t in _texts(n)]
    if isinstance(node, dict):
        return _texts(node.get("props", {}).get("children"))
    return []


def test_the_list_is_paged_by_ten(hw_app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    with connection(known_twin.url) as conn:
        note_seen(conn, [Seen("hq", "ieee", f"00124b00000000{i:02x}", "zigbee2mqtt", f"0x00124b00000000{i:02x}",
                              None, SEEN_AT - timedelta(days=1, minutes=i), 1) for i in range(20)])
    session = Session(hw_app, "viewer-hw")
    first, third = session.hardware(page=1), session.hardware(page=3)
    assert "Publishing but not in the twin (23)" in first and "1–10 of 23" in first
    assert json.loads(first)["response"]["hardware-page"] == {"max_value": 3, "active_page": 1, "style": {}}
    assert IEEE in first and "00124b0000000013" not in first
    assert "21–23 of 23" in third and "00124b0000000013" in third and IEEE not in third


def test_a_refresh_that_finds_the_same_rows_patches_last_seen_and_messages_in(
        hw_app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    session = Session(hw_app, "planner-hw")
    first = json.loads(session.hardware())["response"]
    shown = first["hardware-shown"]["data"]
    rows = first["hardware"]["children"][1]["props"]["children"][1]["props"]["children"]  # the table's body
    assert [[c["props"]["children"] for c in r["props"]["children"][6:8]] for r in rows] == [  # last seen and messages, where the patch writes
        ["2026-12-04 08:55:05", "12"], ["2026-12-04 07:50:05", "3"], ["2026-12-04 06:50:05", "1"]]
    with connection(known_twin.url) as conn:
        note_seen(conn, [Seen("hq", "ieee", IEEE, "zigbee2mqtt", "env-104", None, SEEN_AT + timedelta(minutes=9), 4)])
    status, text = session.hardware_tick(shown=shown, chosen={hardware_key("hq", "ieee", IEEE): "env-101"})
    tick = json.loads(text)["response"]
    assert status == 200 and list(tick) == ["hardware"]  # the rows (and their dropdowns) stay as they are
    patch = tick["hardware"]["children"]
    assert "__dash_patch_update" in patch
    written = {tuple(op["location"]): op["params"]["value"] for op in patch["operations"]}
    body = (1, "props", "children", 1, "props", "children")
    assert written == {(*body, 0, "props", "children", 6, "props", "children"): "2026-12-04 08:59:05",
                       (*body, 0, "props", "children", 7, "props", "children"): "16",
                       (*body, 1, "props", "children", 6, "props", "children"): "2026-12-04 07:50:05",
                       (*body, 1, "props", "children", 7, "props", "children"): "3",
                       (*body, 2, "props", "children", 6, "props", "children"): "2026-12-04 06:50:05",
                       (*body, 2, "props", "children", 7, "props", "children"): "1"}
    # new hardware: the rows are drawn again, the device a planner chose in a row kept (not the suggestion)
    with connection(known_twin.url) as conn:
        note_seen(conn, [Seen("hq", "mac", "240ac4123456", "tasmota", "lum-101", None, SEEN_AT, 1)])
    status, redrawn = session.hardware_tick(shown=shown, chosen={hardware_key("hq", "ieee", IEEE): "env-101"})
    assert "Publishing but not in the twin (4)" in redrawn
    assert _chooser_value(redrawn, "hq", "ieee", IEEE).get("value") == "env-101"
    assert _chooser_value(redrawn, "hq", "mac", "240ac4123456").get("value") == "lum-101"  # its suggestion
    # nothing listed: a refresh sends nothing
    empty = json.loads(session.hardware(site="nowhere"))["response"]["hardware-shown"]["data"]
    assert session.hardware_tick(site="nowhere", shown=empty)[0] == 204


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_see_the_list_without_the_action_and_are_refused_on_the_server(
        hw_app: dash.Dash, known_twin: KnownTwin, role: str) -> None:  # noqa: F811
    session = Session(hw_app, f"{role}-hw")
    text = session.hardware()
    assert IEEE in text and "hardware-bind" not in text and "hardware-device" not in text
    status, _ = session.bind("hq", "ieee", IEEE, "env-104")  # a forged press of a button it was not shown
    assert status == 403
    with connection(known_twin.url) as conn:
        assert identities(conn, site_id="hq") == []
        denied = audit.recent(conn, 5, username=f"{role}-hw")
    assert denied and denied[0]["outcome"] == "denied" and denied[0]["target"] == "bind_hardware"
    assert IEEE in session.hardware()


@pytest.mark.parametrize("role", ["planner", "admin"])
def test_a_planner_binds_in_one_step_audited_and_the_row_leaves_the_list(
        hw_app: dash.Dash, known_twin: KnownTwin, role: str) -> None:  # noqa: F811
    session = Session(hw_app, f"{role}-hw")
    before = session.hardware()
    assert "hardware-bind" in before
    # the suggestion: the device without an ieee identity whose id is the zigbee2mqtt friendly name
    assert _chooser_value(before, "hq", "ieee", IEEE).get("value") == "env-104"
    assert _chooser_value(before, "hq", "deveui", DEVEUI).get("value") is None  # "application/3" resembles no device
    status, text = session.bind("hq", "ieee", IEEE, "env-104")
    assert status == 200, text[:500]
    assert f"Bound ieee:{IEEE} to env-104." in text
    assert json.loads(text)["response"]["hardware-refresh"]["data"] == 1
    with connection(known_twin.url) as conn:
        (row,) = identities(conn, site_id="hq")
        entries = audit.recent(conn, 5, action="bind", username=f"{role}-hw")
    assert (row.device_id, row.kind, row.hardware_id, row.source, row.bound_by) == (
        "env-104", "ieee", IEEE, "bind", f"{role}-hw")
    assert entries and entries[0]["outcome"] == "ok" and entries[0]["target"] == f"ieee:{IEEE}"
    assert entries[0]["detail"] == {"site": "hq", "device": "env-104", "new": 1}
    after = session.hardware(refresh=1)
    assert IEEE not in after and "Publishing but not in the twin (2)" in after and DEVEUI in after
    # the device row now shows its hardware id
    assert f"ieee:{IEEE}" in session.devices("env-104")


def test_a_conflicting_bind_shows_the_reason_and_binds_nothing(hw_app: dash.Dash,
                                                               known_twin: KnownTwin) -> None:  # noqa: F811
    session = Session(hw_app, "planner-hw")
    assert IEEE in session.hardware()
    with connection(known_twin.url) as conn:  # meanwhile a CSV binds it to another device
        bind(conn, "hq", [Binding("env-102", "ieee", IEEE)], by="csv-import")
    status, text = session.bind("hq", "ieee", IEEE, "env-104")
    assert status == 200
    assert f"Not bound: ieee:{IEEE} is already bound to 'env-102' at site 'hq' (unbind it first)" in text
    status, text = session.bind("hq", "deveui", DEVEUI, "m-pan")  # a device of another school
    assert "Not bound: no device 'm-pan' at site 'hq'" in text
    assert "hardware-refresh" not in json.loads(text)["response"]  # nothing changed: the list stays
    status, text = session.bind("hq", "deveui", DEVEUI, None)
    assert f"Choose the device to bind deveui:{DEVEUI} to." in text
    with connection(known_twin.url) as conn:
        assert [(r.device_id, r.bound_by) for r in identities(conn, site_id="hq")] == [("env-102", "csv-import")]
        failed = audit.recent(conn, 5, action="bind", username="planner-hw")
    assert [e["outcome"] for e in failed] == ["failed", "failed"]
    conflict = f"ieee:{IEEE} is already bound to 'env-102' at site 'hq' (unbind it first)"
    assert failed[-1]["detail"]["problems"] == [conflict]


def test_the_device_dropdown_searches_the_schools_devices(hw_app: dash.Dash) -> None:
    session = Session(hw_app, "planner-hw")
    found = session.choices("hq", "ieee", IEEE, "LUM")
    assert [o["value"] for o in found] == ["lum-101"]
    assert {o["value"] for o in session.choices("hq", "ieee", IEEE, "env")} == {
        "env-101", "env-102", "env-103", "env-104"}
    assert session.choices("m01", "tasmota", "plug_A1B2C3", "env") == []  # only the row's school


def test_the_chinese_page_translates_the_list(hw_app: dash.Dash) -> None:
    session = Session(hw_app, "planner-hw")
    session.client.set_cookie("campus_twin_lang", "zh")
    text = session.hardware()
    assert "在上报但不在孪生中 (3)" in text and "适配器" in text and "绑定" in text


# --- in a browser -----------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_planner_binds_a_listed_hardware_id_in_one_step_in_a_browser(
        browser: object, known_twin: KnownTwin, base_url: str) -> None:  # noqa: F811
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _seen(known_twin.url)
    # elements drawn anew (a refresh, the dropdown's options arriving) are looked up and tried again
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException, ElementNotInteractableException,
                                                          ElementClickInterceptedException))
    browser_login(browser, base_url, known_twin.url, "planner-browser", "planner", "/devices")

    def listed() -> str:
        return browser.find_element(By.ID, "hardware").text

    def text(xpath: str) -> str:
        return browser.find_element(By.XPATH, xpath).text

    def click(xpath: str) -> None:
        wait.until(lambda d: d.find_element(By.XPATH, xpath).click() or True)

    wait.until(lambda d: IEEE in listed() and DEVEUI in listed())
    row = f"//*[@id='hardware']//tr[contains(., '{DEVEUI}')]"
    # the LoRaWAN node resembles no device: search the school's devices in its dropdown and pick env-103
    click(f"{row}//*[contains(@class, 'dash-dropdown')]")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input.dash-dropdown-search").send_keys("103") or True)
    click("//*[@role='option'][contains(., 'env-103')]")
    wait.until(lambda d: "env-103" in text(row))
    click(f"{row}//button[normalize-space()='Bind']")
    wait.until(lambda d: f"Bound deveui:{DEVEUI} to env-103." in d.find_element(By.ID, "hardware-status").text)
    wait.until(lambda d: DEVEUI not in listed() and IEEE in listed())
    with connection(known_twin.url) as conn:
        bound = wait_for(lambda: identities(conn, site_id="hq"), timeout=10)
    assert [(r.device_id, r.hardware_id, r.bound_by) for r in bound] == [("env-103", DEVEUI, "planner-browser")]
    wait.until(lambda d: f"deveui:{DEVEUI}" in d.find_element(By.ID, "devices-table").text)
    # the next refresh updates the remaining rows in place: the device suggested in a row stays chosen
    zigbee = f"//*[@id='hardware']//tr[contains(., '{IEEE}')]"
    wait.until(lambda d: "env-104" in text(zigbee))
    with connection(known_twin.url) as conn:
        note_seen(conn, [Seen("hq", "ieee", IEEE, "zigbee2mqtt", "env-104", None, SEEN_AT + timedelta(minutes=9), 4)])
    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "16" in text(zigbee).split() and "2026-12-04 08:59:05" in text(zigbee) and "env-104" in text(zigbee))
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "devices-hardware-bound")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
