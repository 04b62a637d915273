"""The devices page at network scale: server-side search, filters, sort and paging over 10,000 devices,
a refresh that sends one page, and the page in a browser."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dash
import pytest
from plotly.utils import PlotlyJSONEncoder

from dashboard.app import close_app
from tests.helpers import browser_login
from tests.test_dashboard import KnownTwin, app, base_url, browser, known_twin, make_app, screenshot, signed_in  # noqa: F401
from twin.database import connection
from twin.storage import devices
from twin.storage.devices import DeviceFilter
from twin.storage.events import add_dead_letters

N = 10_000
KINDS = ("env_sensor", "luminaire", "panel", "appliance")
NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Fleet:
    """What :func:`fleet` stored, device by device, to compute what every query must return."""

    site_id: str
    device_id: str
    kind: str
    room: str | None
    building: str | None
    state: str
    last_seen: datetime | None
    battery_pct: float | None


def _expected(i: int) -> Fleet:
    site = "big" if i < 9000 else "small"
    r = i % 200
    room = None if i % 50 == 0 else f"Room {r:03d}"
    building = None if room is None else ("West Wing" if site == "small" else "Block A" if r < 100 else "Block B")
    heard = i % 3 != 2
    return Fleet(site, f"dev-{i:05d}", KINDS[i % 4], room, building,
                 {0: "online", 1: "offline", 2: "unknown"}[i % 3],
                 NOW - timedelta(seconds=i) if heard else None, float(i % 101) if heard else None)


EXPECTED = [_expected(i) for i in range(N)]


def fill(conn, n: int = N) -> None:
    """``n`` devices over two schools (9,000 at ``big``, in two buildings), 200 rooms each, in plain SQL:
    every 50th in no room, a third online, a third offline, a third never heard; 30 unknown publishers."""
    conn.execute("INSERT INTO sites (site_id, name) VALUES ('big', 'Big School'), ('small', 'Small School')")
    conn.execute("""INSERT INTO buildings (site_id, global_id, name)
                    VALUES ('big', 'BA', 'Block A'), ('big', 'BB', 'Block B'), ('small', 'SW', 'West Wing')""")
    conn.execute("INSERT INTO storeys (building_id, global_id, name) SELECT id, global_id || '-1', '1F' FROM buildings")
    conn.execute("""INSERT INTO rooms (site_id, storey_id, global_id, name, use)
                    SELECT s.site_id, st.id, 'R' || r, 'Room ' || lpad(r::text, 3, '0'), 'classroom'
                    FROM generate_series(0, 199) r CROSS JOIN (VALUES ('big'), ('small')) s(site_id)
                    JOIN storeys st ON st.global_id = CASE WHEN s.site_id = 'small' THEN 'SW'
                                                           WHEN r < 100 THEN 'BA' ELSE 'BB' END || '-1'""")
    conn.execute("""INSERT INTO devices (site_id, device_id, kind, room_id, mapping)
                    SELECT s.site, 'dev-' || lpad(i::text, 5, '0'), (%(kinds)s::text[])[i %% 4 + 1], r.id,
                           CASE WHEN i %% 50 = 0 THEN 'unmapped' ELSE 'containment' END
                    FROM generate_series(0, %(last)s) i
                    CROSS JOIN LATERAL (SELECT CASE WHEN i < 9000 THEN 'big' ELSE 'small' END AS site) s
                    LEFT JOIN rooms r ON i %% 50 <> 0 AND r.site_id = s.site AND r.global_id = 'R' || (i %% 200)""",
                 {"kinds": list(KINDS), "last": n - 1})
    conn.execute("""INSERT INTO device_status (device_id, state, last_seen, battery_pct, rssi_dbm, firmware)
                    SELECT d.id, CASE WHEN x.n %% 3 = 0 THEN 'online' ELSE 'offline' END,
                           %(now)s - x.n * interval '1 second', x.n %% 101, -60, '1.4.2'
                    FROM devices d CROSS JOIN LATERAL (SELECT substr(d.device_id, 5)::int AS n) x
                    WHERE x.n %% 3 <> 2""", {"now": NOW})
    add_dead_letters(conn, [(NOW - timedelta(minutes=k), f"campus/v1/big/GHOST-{k:02d}/telemetry",
                             f"unknown device 'GHOST-{k:02d}' at site 'big'", b"{}") for k in range(30)])
    conn.commit()


@pytest.fixture
def many(db_url: str) -> str:
    with connection(db_url) as conn:
        fill(conn)
    return db_url


def everything(conn, where: DeviceFilter, sort: str = "device", descending: bool = False) -> list:
    return devices.device_page(conn, where, sort=sort, descending=descending, limit=N, offset=0)


def matching(**kw) -> set[str]:
    def ok(f: Fleet) -> bool:
        return all(getattr(f, k) == v for k, v in kw.items())
    return {f.device_id for f in EXPECTED if ok(f)}


# --- storage ----------------------------------------------------------------------------------------


def test_filters_and_counts_over_10000_devices(many: str) -> None:
    with connection(many) as conn:
        assert devices.device_list_counts(conn, DeviceFilter()) == {"online": 3334, "offline": 3333, "unknown": 3333}
        cases = [
            (DeviceFilter(site_id="small"), matching(site_id="small")),
            (DeviceFilter(state="offline"), matching(state="offline")),
            (DeviceFilter(kind="panel", state="unknown"), matching(kind="panel", state="unknown")),
            (DeviceFilter(site_id="big", kind="luminaire", state="online"),
             matching(site_id="big", kind="luminaire", state="online")),
        ]
        for where, expected in cases:
            assert {r.device_id for r in everything(conn, where)} == expected, where
            narrow = {k: getattr(where, k) for k in ("site_id", "kind") if getattr(where, k)}
            assert devices.device_list_counts(conn, where) == {  # per state, whatever the state filter
                s: len(matching(**narrow, state=s)) for s in ("online", "offline", "unknown")}, where
        assert devices.device_kinds(conn) == sorted(KINDS)
        assert devices.device_kinds(conn, "small") == sorted(KINDS)


def test_search_is_a_case_insensitive_literal_substring_of_device_room_building_or_kind(many: str) -> None:
    with connection(many) as conn:
        def found(text: str, **kw) -> set[str]:
            return {r.device_id for r in everything(conn, DeviceFilter(search=text, **kw))}

        assert found("DEV-0012") == {f"dev-{i:05d}" for i in range(120, 130)}
        assert found("block b") == matching(building="Block B")
        assert found("room 042") == matching(room="Room 042")
        assert found("wing", state="online") == matching(building="West Wing", state="online")
        assert found("LUMIN") == matching(kind="luminaire")
        assert found("_") == matching(kind="env_sensor")  # "_" is a character, not a LIKE wildcard
        assert found("%") == set() and found("nothing like it") == set()
        assert found("  dev-09999 ") == {"dev-09999"}  # spaces around are not part of it
        assert devices.device_list_counts(conn, DeviceFilter(search="room 042")) == {
            s: len(matching(room="Room 042", state=s)) for s in ("online", "offline", "unknown")}


SORT_KEYS = {
    "site": lambda r: r.site_id, "device": lambda r: r.device_id, "kind": lambda r: r.kind,
    "room": lambda r: (r.building, r.room), "last_seen": lambda r: r.last_seen, "battery": lambda r: r.battery_pct,
    "state": lambda r: ("offline", "unknown", "online").index(r.state),
}


@pytest.mark.parametrize("sort", sorted(SORT_KEYS))
@pytest.mark.parametrize("descending", [False, True])
def test_pages_follow_the_sort_and_cover_the_set_once(many: str, sort: str, descending: bool) -> None:
    where = DeviceFilter(site_id="small", kind="panel")  # 250 devices: 5 pages of 50
    with connection(many) as conn:
        whole = everything(conn, where, sort, descending)
        pages = [devices.device_page(conn, where, sort=sort, descending=descending, limit=50, offset=o)
                 for o in range(0, 300, 50)]
    assert [len(p) for p in pages] == [50, 50, 50, 50, 50, 0]
    assert [r.device_id for p in pages for r in p] == [r.device_id for r in whole]
    assert len({r.device_id for r in whole}) == 250
    key = SORT_KEYS[sort]

    def missing(r) -> bool:
        value = key(r)
        return None in (value if isinstance(value, tuple) else (value,))

    flags = [missing(r) for r in whole]
    assert flags == sorted(flags)  # missing values (never seen, no room) last, either way
    known = [key(r) for r in whole if not missing(r)]
    assert known == sorted(known, reverse=descending)
    for a, b in itertools.pairwise(whole):  # ties by site and device, so pages never shift
        if key(a) == key(b):
            assert (a.site_id, a.device_id) < (b.site_id, b.device_id)


def test_a_row_has_its_room_building_state_and_vitals(many: str) -> None:
    with connection(many) as conn:
        (row,) = devices.device_page(conn, DeviceFilter(search="dev-00103"), limit=50, offset=0)
        (roomless,) = devices.device_page(conn, DeviceFilter(search="dev-00100"), limit=50, offset=0)
        room_id = conn.execute("SELECT id FROM rooms WHERE site_id = 'big' AND global_id = 'R103'").fetchone()[0]
    assert (row.site_id, row.kind, row.room, row.building, row.room_id, row.state, row.battery_pct) == (
        "big", "appliance", "Room 103", "Block B", room_id, "offline", 2.0)
    assert row.last_seen == NOW - timedelta(seconds=103)
    assert (roomless.room, roomless.building, roomless.room_id, roomless.mapping) == (None, None, None, "unmapped")


def test_unknown_sort_keys_are_refused(many: str) -> None:
    with connection(many) as conn, pytest.raises(ValueError, match="sort"):
        devices.device_page(conn, DeviceFilter(), sort="id; DROP TABLE devices", limit=50, offset=0)


def test_unmapped_lists_are_paged_searched_and_counted(many: str) -> None:
    with connection(many) as conn:
        counts = devices.unmapped_counts(conn)
        assert (counts.unknown, counts.never_heard, counts.no_room) == (30, 3333, 200)
        first = devices.never_heard(conn, limit=20)
        second = devices.never_heard(conn, limit=20, offset=20)
        assert len(first) == len(second) == 20 and not {d.device_id for d in first} & {d.device_id for d in second}
        ghosts = devices.unknown_publishers(conn, limit=10, offset=25)
        assert [g.device_id for g in ghosts] == [f"GHOST-{k:02d}" for k in range(25, 30)]  # newest first
        small = devices.unmapped_counts(conn, site_id="small", search="DEV-095")
        assert (small.unknown, small.never_heard, small.no_room) == (
            0, len({d for d in matching(site_id="small", state="unknown") if d.startswith("dev-095")}),
            len([f for f in EXPECTED if f.site_id == "small" and f.room is None and f.device_id.startswith("dev-095")]))
        assert {d.device_id for d in devices.unmapped_in_bim(conn, site_id="small", search="DEV-095")} == {
            f.device_id for f in EXPECTED if f.site_id == "small" and f.room is None
            and f.device_id.startswith("dev-095")}
        assert [g.device_id for g in devices.unknown_publishers(conn, search="ghost-1")] == [
            f"GHOST-{k}" for k in range(10, 20)]


# --- the callback -----------------------------------------------------------------------------------


@pytest.fixture
def big_app(many: str) -> Iterator[dash.Dash]:
    dash_app = make_app(many)
    try:
        yield dash_app
    finally:
        close_app(dash_app)


def _refresh(dash_app: dash.Dash, *args) -> tuple[str, object, object]:
    """The callback's outputs as the JSON it sends (all of them), the number of pages and the page shown."""
    from dashboard.pages.devices import update_devices

    with dash_app.server.test_request_context("/", headers=signed_in(dash_app)):
        outputs = update_devices(*args)
    _, pages, active, _, _ = outputs
    return json.dumps(outputs, cls=PlotlyJSONEncoder, ensure_ascii=False), pages, active


def test_a_refresh_at_10000_devices_sends_one_page_under_100_kb(big_app: dash.Dash) -> None:
    body, pages, active = _refresh(big_app, "any", "any", "any", "", "state", "asc", 2, 3)
    assert len(body.encode()) < 100_000, len(body.encode())
    assert "51–100 of 10,000" in body and pages == 200 and active == 2
    assert "dev-00151" in body and "dev-00298" in body  # offline first (1, 4, 7, ...): the 51st to the 100th
    assert "dev-00148" not in body and "dev-00301" not in body
    assert "Block B · Room 151" in body
    assert "2026-12-04 15:57:29" in body  # 07:57:29 UTC in Asia/Shanghai


def test_a_new_search_filter_or_sort_goes_back_to_the_first_page() -> None:
    from dashboard.pages.devices import page_to_show

    assert page_to_show("devices-search", 7) == 1
    assert page_to_show("devices-kind", 7) == 1
    assert page_to_show("devices-sort", 7) == 1
    assert page_to_show("devices-page", 3) == 3
    assert page_to_show("devices-interval", 7) == 7  # kept within the pages there are by data.devices_view
    assert page_to_show(None, None) == 1


def test_a_search_narrows_and_the_page_is_clamped(big_app: dash.Dash) -> None:
    body, pages, active = _refresh(big_app, "any", "any", "any", "DEV-0012", "device", "asc", 1, None)
    assert (pages, active) == (1, 1) and "1–10 of 10" in body and "dev-00129" in body
    _, pages, active = _refresh(big_app, "small", "offline", "panel", "", "device", "desc", 99, None)
    assert (pages, active) == (2, 2)  # 83 offline panels at the small school: two pages, not 99


# --- in a browser -----------------------------------------------------------------------------------


@pytest.mark.browser
def test_devices_page_searches_and_pages_in_a_browser(browser: object, known_twin: KnownTwin,  # noqa: F811
                                                      base_url: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with connection(known_twin.url) as conn:  # 120 more devices in room 101 of the headquarters
        conn.execute("""INSERT INTO devices (site_id, device_id, kind, room_id, mapping)
                        SELECT 'hq', 'bulk-' || lpad(i::text, 3, '0'), 'env_sensor', %s, 'containment'
                        FROM generate_series(0, 119) i""", (known_twin.rooms["101"],))
    wait = WebDriverWait(browser, 20)
    find = browser.find_element
    browser_login(browser, base_url, known_twin.url, "ops-devices", "viewer", "/devices")
    wait.until(lambda d: "1–50 of 128" in d.find_element(By.ID, "devices-body").text)
    find(By.ID, "devices-search").send_keys("BULK", Keys.ENTER)
    wait.until(lambda d: "1–50 of 120" in d.find_element(By.ID, "devices-body").text)
    browser.find_element(By.XPATH, "//*[@id='devices-page']//a[normalize-space()='2']").click()
    wait.until(lambda d: "51–100 of 120" in d.find_element(By.ID, "devices-body").text)
    rows = browser.find_elements(By.CSS_SELECTOR, "#devices-table tbody tr")
    assert len(rows) == 50 and "bulk-050" in rows[0].text and "bulk-099" in rows[-1].text
    link = rows[0].find_element(By.TAG_NAME, "a")
    assert link.text == "Teaching block · 101"
    assert link.get_attribute("href").endswith(f"/room/{known_twin.rooms['101']}")
    assert "None." in find(By.ID, "unmapped").text  # the search narrows the unmapped lists too
    screenshot(browser, "devices-paged")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
