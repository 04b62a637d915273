"""Dashboard security against the real app and database: login, sessions, CSRF, the role matrix of
every state-changing callback, the audit log, injection strings, and hostile IFC uploads."""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash
import pytest

from dashboard.uploads import UploadLimits
from tests.helpers import PASSWORD, Login, add_user, http_login, login
from tests.test_dashboard import KnownTwin, _page, known_twin, make_app, serving  # noqa: F401 - fixture
from twin import security
from twin.database import connection
from twin.storage import alarms, audit, commands

ROLES = security.ROLES
#: The dashboard's state-changing actions and the roles allowed each (docs/security.md).
MATRIX = {"acknowledge": {"operator", "admin"}, "command": {"operator", "admin"}, "upload": {"planner", "admin"}}
JUNK_IFC = "data:application/octet-stream;base64," + base64.b64encode(b"MZ\x90\x00 not an IFC at all").decode()


@pytest.fixture
def secure_app(known_twin: KnownTwin, mqtt_url: str) -> Iterator[dash.Dash]:  # noqa: F811
    """The real app with a command bridge and a BIM loader; one user per role."""
    from twin.cli import load_bim

    for role in ROLES:
        add_user(known_twin.url, f"{role}-1", role)
    app = make_app(known_twin.url, mqtt_url=mqtt_url, bim_loader=functools.partial(load_bim, known_twin.url))
    try:
        yield app
    finally:
        from dashboard.app import close_app

        close_app(app)


def _outputs(client: Any) -> dict[str, str]:
    """Callback output keys by their first output id (from ``/_dash-dependencies``)."""
    deps = client.get("/_dash-dependencies").get_json()
    return {d["output"].strip(".").split(".")[0]: d["output"] for d in deps}


def _body(outputs: dict[str, str], action: str, known: KnownTwin, alarm_id: int) -> dict[str, Any]:
    """What dash-renderer POSTs when the button of ``action`` is pressed."""
    if action == "acknowledge":
        button = {"id": alarm_id, "type": "alarm-ack"}
        return {"output": outputs["alarm-status"],
                "outputs": [{"id": "alarm-status", "property": "children"},
                            {"id": "alarm-refresh", "property": "data"}],
                "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
                "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"],
                "state": [{"id": "alarm-note", "property": "value", "value": "seen"},
                          {"id": "alarm-refresh", "property": "data", "value": 0}]}
    if action == "command":
        button = {"action": "on", "type": "room-cmd"}
        return {"output": outputs["room-cmd-status"], "outputs": {"id": "room-cmd-status", "property": "children"},
                "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
                "changedPropIds": [json.dumps(button, separators=(",", ":"), sort_keys=True) + ".n_clicks"],
                "state": [{"id": "room-luminaire", "property": "value", "value": "*"},
                          {"id": "room-level", "property": "value", "value": 50},
                          {"id": "room-id", "property": "data", "value": known.rooms["101"]}]}
    return {"output": outputs["bim-result"],
            "outputs": [{"id": "bim-result", "property": "children"}, {"id": "bim-log", "property": "children"}],
            "inputs": [{"id": "bim-upload", "property": "contents", "value": JUNK_IFC}],
            "changedPropIds": ["bim-upload.contents"],
            "state": [{"id": "bim-upload", "property": "filename", "value": "junk.ifc"},
                      {"id": "bim-site", "property": "value", "value": "j1"},
                      {"id": "bim-name", "property": "value", "value": ""},
                      {"id": "bim-role", "property": "value", "value": "member"}]}


def _fresh_alarm(url: str) -> int:
    with connection(url) as conn:
        return alarms.raise_alarm(conn, "hq", f"test_{time.monotonic_ns()}", "warning", "for the matrix")


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_of_every_state_changing_callback(
        secure_app: dash.Dash, known_twin: KnownTwin, role: str) -> None:  # noqa: F811
    client = secure_app.server.test_client()
    who = login(client, f"{role}-1")
    outputs = _outputs(client)
    for action, allowed in MATRIX.items():
        alarm_id = _fresh_alarm(known_twin.url)
        response = client.post("/_dash-update-component", json=_body(outputs, action, known_twin, alarm_id),
                               headers={"X-CSRFToken": who.csrf})
        expected = 200 if role in allowed else 403
        assert response.status_code == expected, (role, action, response.status_code, response.get_data(as_text=True))
        text = response.get_data(as_text=True)
        with connection(known_twin.url) as conn:
            state = alarms.list_alarms(conn, state=None)
            entries = audit.recent(conn, 5, action=action, username=f"{role}-1")
            sent = commands.room_commands(conn, known_twin.rooms["101"])
        alarm = next(a for a in state if a.id == alarm_id)
        if action == "acknowledge":
            assert (alarm.state == "acknowledged") == (role in allowed)
            if role in allowed:
                assert alarm.acked_by == f"{role}-1" and "Alarm acknowledged." in text
        if action == "command" and role in allowed:
            assert "command sent" in text and any(c.action == "on" for c in sent)
        if action == "upload" and role in allowed:
            assert "not an IFC file" in text
        assert entries and entries[0]["outcome"] == ("denied" if role not in allowed else
                                                     "failed" if action == "upload" else "ok")
    with connection(known_twin.url) as conn:
        assert not any(c.action == "on" for c in commands.room_commands(conn, known_twin.rooms["101"])) \
            or role in MATRIX["command"]


def test_no_session_no_csrf_wrong_csrf_and_logged_out_requests_are_refused(secure_app: dash.Dash,
                                                                           known_twin: KnownTwin) -> None:  # noqa: F811
    alarm_id = _fresh_alarm(known_twin.url)
    client = secure_app.server.test_client()
    who = login(client, "admin-1")
    body = _body(_outputs(client), "acknowledge", known_twin, alarm_id)
    anonymous = secure_app.server.test_client()
    assert anonymous.post("/_dash-update-component", json=body).status_code == 401
    assert anonymous.get("/_dash-layout").status_code == 401
    assert anonymous.get("/_dash-dependencies").status_code == 401
    page = anonymous.get("/alarms?x=1")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/alarms%3Fx%3D1"
    # a stolen session cookie alone is not enough: the CSRF header must match the session
    assert client.post("/_dash-update-component", json=body).status_code == 403
    assert client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": "forged"}).status_code == 403
    other = login(secure_app.server.test_client(), "operator-1")
    assert client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": other.csrf}).status_code == 403
    with connection(known_twin.url) as conn:
        assert next(a for a in alarms.list_alarms(conn, state="open") if a.id == alarm_id)
    # logging out ends the session on the server: the old cookie opens nothing
    assert client.post("/logout", data={"csrf_token": who.csrf}).status_code == 302
    replay = secure_app.server.test_client()
    replay.set_cookie("campus_twin_session", who.session)
    assert replay.post("/_dash-update-component", json=body, headers={"X-CSRFToken": who.csrf}).status_code == 401


def test_direct_http_callback_without_a_session_over_the_served_app(secure_app: dash.Dash,
                                                                   known_twin: KnownTwin) -> None:  # noqa: F811
    with serving(secure_app) as base:
        opener, who = http_login(base, "viewer-1")
        deps = json.loads(opener.open(base + "/_dash-dependencies", timeout=10).read())
        outputs = {d["output"].strip(".").split(".")[0]: d["output"] for d in deps}
        body = json.dumps(_body(outputs, "command", known_twin, 0)).encode()
        for headers, session, expected in (({}, None, 401), ({"X-CSRFToken": who.csrf}, opener, 403)):
            request = urllib.request.Request(base + "/_dash-update-component", body,
                                             {"Content-Type": "application/json", **headers})
            with pytest.raises(urllib.error.HTTPError) as refused:
                (session or urllib.request.build_opener()).open(request, timeout=10)
            assert refused.value.code == expected
    with connection(known_twin.url) as conn:
        assert commands.room_commands(conn, known_twin.rooms["101"]) == []


def test_logins_are_audited_and_cookies_are_locked_down(
        secure_app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    client = secure_app.server.test_client()
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    bad = client.post("/login", data={"username": "admin-1", "password": "wrong", "csrf_token": token})
    assert bad.status_code == 401 and "Wrong username or password." in bad.get_data(as_text=True)
    sqli = client.post("/login", data={"username": "admin-1' OR '1'='1", "password": "' OR '1'='1",
                                       "csrf_token": token})
    assert sqli.status_code == 401
    no_token = secure_app.server.test_client().post("/login", data={"username": "admin-1", "password": PASSWORD})
    assert no_token.status_code == 403
    good = client.post("/login", data={"username": "admin-1", "password": PASSWORD, "csrf_token": token,
                                       "next": "//evil.example/"})
    assert good.status_code == 302 and good.headers["Location"] == "/"  # never to another site
    cookies = {c.split("=", 1)[0]: c for c in good.headers.getlist("Set-Cookie")}
    assert "HttpOnly" in cookies["campus_twin_session"] and "SameSite=Strict" in cookies["campus_twin_session"]
    assert "HttpOnly" not in cookies["_csrf_token"] and "SameSite=Strict" in cookies["_csrf_token"]
    with connection(known_twin.url) as conn:
        entries = [(e["username"], e["action"], e["outcome"]) for e in audit.recent(conn, 10, action="login")]
        stored = conn.execute("SELECT token_hash FROM user_sessions").fetchall()
    assert entries[:3] == [("admin-1", "login", "ok"), ("admin-1' OR '1'='1", "login", "failed"),
                           ("admin-1", "login", "failed")]
    session = client.get_cookie("campus_twin_session").value
    assert all(session not in h for (h,) in stored)  # only its hash is stored


def test_secure_cookies_when_configured(known_twin: KnownTwin) -> None:  # noqa: F811
    from dashboard.app import close_app

    add_user(known_twin.url, "sec-1", "viewer")
    app = make_app(known_twin.url, secure_cookies=True)
    try:
        client = app.server.test_client()
        token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        response = client.post("/login", data={"username": "sec-1", "password": PASSWORD, "csrf_token": token})
    finally:
        close_app(app)
    assert all("Secure" in c for c in response.headers.getlist("Set-Cookie"))


def test_repeated_failures_slow_the_next_attempt_down(secure_app: dash.Dash) -> None:
    """Wrong passwords from one address: soon 429 with Retry-After, even for the right one (the
    limits per address and per username, and their bounds: tests/test_dashboard_security.py)."""
    from twin.security import PAIR_THROTTLE

    client = secure_app.server.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    statuses = [client.post("/login", data={"username": "viewer-1", "password": "guess", "csrf_token": token},
                            environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code
                for _ in range(PAIR_THROTTLE.free + 10)]
    assert statuses[:PAIR_THROTTLE.free] == [401] * PAIR_THROTTLE.free and 429 in statuses, statuses
    with connection(secure_app.server.extensions["tests.db_url"]) as conn:
        conn.execute("""INSERT INTO audit_log (username, action, outcome, remote_addr)
                        SELECT 'viewer-1', 'login', 'failed', '203.0.113.5' FROM generate_series(1, 20)""")
    locked = client.post("/login", data={"username": "viewer-1", "password": PASSWORD, "csrf_token": token},
                         environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


def test_controls_follow_the_role(secure_app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    alarms_page, room, bim = _page("alarms"), _page("room"), _page("bim")
    for role, can_ack, can_command, can_upload in (("viewer", False, False, False), ("operator", True, True, False),
                                                   ("planner", False, False, True), ("admin", True, True, True)):
        who = login(secure_app.server.test_client(), f"{role}-1")
        with secure_app.server.test_request_context("/", headers=who.headers):
            table = _json(alarms_page.update_alarms("any", "any", "open", 0, None))
            lighting = _json(room.layout(room_id=str(known_twin.rooms["101"])))
            upload = _json(bim.layout())
        assert ("alarm-ack" in table) == can_ack, role
        assert ('"disabled":true' in lighting.replace(" ", "")) != can_command, role
        assert ("Only planners and admins may upload." in upload) != can_upload, role


# --- injection strings ----------------------------------------------------------------------------

HOSTILE = "<img src=x onerror=\"window.__xss=1\">'); DROP TABLE rooms;--"


def test_injection_strings_from_ifc_forms_and_device_ids_are_stored_and_shown_as_text(
        secure_app: dash.Dash, known_twin: KnownTwin, tmp_path: Path) -> None:  # noqa: F811
    """An IFC room name, a device id and an acknowledgement note carrying HTML and SQL: stored as
    they are, every table still there, and sent to the browser as text children (never markup)."""
    import ifcopenshell

    from models_bim.generate import generate_school
    from twin.cli import load_bim

    path = tmp_path / "hostile.ifc"
    generate_school(path, site_id="x1", name="Hostile", storeys=1, classrooms_per_storey=1, labs=0)
    model = ifcopenshell.open(str(path))
    space = model.by_type("IfcSpace")[0]
    space.Name, space.LongName = HOSTILE, "<script>window.__xss=2</script>"
    sensor = model.by_type("IfcSensor")[0]
    sensor.Tag = "ENV'; DELETE FROM devices;--<b>"
    for rel in model.by_type("IfcRelDefinesByProperties"):  # the Pset device id wins over the Tag: make it hostile
        if sensor in rel.RelatedObjects and rel.RelatingPropertyDefinition.Name == "Pset_CampusTwin":
            for prop in rel.RelatingPropertyDefinition.HasProperties:
                if prop.Name == "DeviceId":
                    prop.NominalValue.wrappedValue = "ENV'; DELETE FROM devices;--<b>"
    model.write(str(path))
    load_bim(known_twin.url, path, "x1")
    with connection(known_twin.url) as conn:
        room_id, name = conn.execute("SELECT id, name FROM rooms WHERE site_id = 'x1' AND use <> 'corridor' "
                                     "AND name = %s", (HOSTILE,)).fetchone()
        devices = [d for (d,) in conn.execute("SELECT device_id FROM devices WHERE site_id = 'x1'").fetchall()]
        alarm_id = alarms.raise_alarm(conn, "x1", "co2_high", "warning", HOSTILE, room_id=room_id)
    assert name == HOSTILE and any("DELETE-FROM-devices;--<b>" in d for d in devices), devices
    client = secure_app.server.test_client()
    who = login(client, "operator-1")
    outputs = _outputs(client)
    routed = client.post("/_dash-update-component", headers={"X-CSRFToken": who.csrf}, json={
        "output": next(o for k, o in outputs.items() if "_pages_content" in o),
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": "_pages_location", "property": "pathname", "value": f"/room/{room_id}"},
                   {"id": "_pages_location", "property": "search", "value": ""}],
        "changedPropIds": ["_pages_location.pathname"], "state": []})
    assert routed.status_code == 200
    layout = routed.get_json()
    texts = list(_strings(layout))
    assert any(HOSTILE in s for s in texts)  # the name, as a string child
    assert "dangerouslySetInnerHTML" not in routed.get_data(as_text=True)
    assert not any(n.get("type") in ("Markdown", "Iframe", "Script") for n in _nodes(layout))
    body = _body(outputs, "acknowledge", known_twin, alarm_id)
    body["state"][0]["value"] = HOSTILE
    assert client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": who.csrf}).status_code == 200
    with connection(known_twin.url) as conn:
        acked = next(a for a in alarms.list_alarms(conn, state="acknowledged") if a.id == alarm_id)
        assert acked.note == HOSTILE
        assert conn.execute("SELECT count(*) FROM rooms").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] > 0
    with secure_app.server.test_request_context("/", headers=who.headers):
        shown = alarms_page_table(state="acknowledged")
    assert any(HOSTILE == s for s in _strings(shown))


def alarms_page_table(state: str) -> Any:
    return json.loads(_json(_page("alarms").update_alarms("x1", "any", state, 0, None)))


def _json(component: Any) -> str:
    from plotly.utils import PlotlyJSONEncoder

    return json.dumps(component, cls=PlotlyJSONEncoder)


def _nodes(tree: Any) -> Iterator[dict]:
    if isinstance(tree, dict):
        if "type" in tree and "props" in tree:
            yield tree
        for v in tree.values():
            yield from _nodes(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _nodes(v)


def _strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _strings(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _strings(v)


# --- hostile uploads ------------------------------------------------------------------------------

HEADER = (b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('ViewDefinition [CoordinationView]'),'2;1');\n"
          b"FILE_NAME('h.ifc','2026-01-01T00:00:00',(''),(''),'','','');\nFILE_SCHEMA(('IFC4'));\nENDSEC;\nDATA;\n")


def _data_url(blob: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(blob).decode()


def _upload(opener: Any, who: Login, base: str, outputs: dict[str, str], blob: bytes, name: str) -> tuple[int, str]:
    body = {"output": outputs["bim-result"],
            "outputs": [{"id": "bim-result", "property": "children"}, {"id": "bim-log", "property": "children"}],
            "inputs": [{"id": "bim-upload", "property": "contents", "value": _data_url(blob)}],
            "changedPropIds": ["bim-upload.contents"],
            "state": [{"id": "bim-upload", "property": "filename", "value": name},
                      {"id": "bim-site", "property": "value", "value": "h1"},
                      {"id": "bim-name", "property": "value", "value": ""},
                      {"id": "bim-role", "property": "value", "value": "member"}]}
    request = urllib.request.Request(base + "/_dash-update-component", json.dumps(body).encode(),
                                     {"Content-Type": "application/json", "X-CSRFToken": who.csrf})
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_hostile_ifc_uploads_are_refused_or_stopped_while_the_dashboard_answers(
        known_twin: KnownTwin) -> None:  # noqa: F811
    import multiprocessing

    from dashboard.app import close_app
    from twin.cli import load_bim

    add_user(known_twin.url, "planner-9", "planner")
    limits = UploadLimits(max_bytes=8 * 1024 * 1024, timeout_s=3.0, memory_bytes=3 * 1024**3)
    app = make_app(known_twin.url, bim_loader=functools.partial(load_bim, known_twin.url), upload_limits=limits)
    nested = HEADER + b"#1=IFCPROPERTYSINGLEVALUE('a',$,IFCLABEL(" + b"(" * 200_000 + b")" * 200_000 + b"),$);\n"
    many = HEADER + b"".join(b"#%d=IFCCARTESIANPOINT((%d.,0.,0.));\n" % (i, i) for i in range(1, 150_000))
    cases = {
        "junk.ifc": (b"\x00\x01binary junk" * 1000, "not an IFC file"),
        "huge.ifc": (HEADER + b" " * (9 * 1024 * 1024), "file too large"),
        "nested.ifc": (nested, "Import failed"),
        "slow.ifc": (many, "Import failed"),
    }
    try:
        with serving(app) as base:
            opener, who = http_login(base, "planner-9")
            deps = json.loads(opener.open(base + "/_dash-dependencies", timeout=10).read())
            outputs = {d["output"].strip(".").split(".")[0]: d["output"] for d in deps}
            for name, (blob, expected) in cases.items():
                result: dict[str, tuple[int, str]] = {}
                worker = threading.Thread(target=lambda n=name, b=blob, r=result: r.__setitem__(
                    n, _upload(opener, who, base, outputs, b, n)))
                started = time.monotonic()
                worker.start()
                answered = []
                while worker.is_alive():  # the dashboard keeps answering meanwhile
                    t0 = time.monotonic()
                    with opener.open(base + "/_dash-layout", timeout=10) as r:
                        assert r.status == 200
                    answered.append(time.monotonic() - t0)
                    time.sleep(0.1)
                worker.join()
                status, text = result[name]
                assert status == 200 and expected in text, (name, status, text[:300])
                assert time.monotonic() - started < limits.timeout_s + 20, name
                assert all(a < 2.0 for a in answered), (name, max(answered))
    finally:
        close_app(app)
    assert multiprocessing.active_children() == []
    with connection(known_twin.url) as conn:
        assert conn.execute("SELECT count(*) FROM sites WHERE site_id = 'h1'").fetchone()[0] == 0
        outcomes = [(e["outcome"], e["target"]) for e in audit.recent(conn, 10, action="upload")]
    assert [o for o, _ in outcomes[:4]] == ["failed"] * 4


# --- the isolation itself, with loaders that misbehave on purpose ------------------------------------


def sleepy_loader(path: Path, site_id: str, *, name: str | None, role: str) -> dict[str, Any]:
    time.sleep(60)
    return {}


def greedy_loader(path: Path, site_id: str, *, name: str | None, role: str) -> dict[str, Any]:
    hog = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GiB
    return {"n": len(hog)}


def crashing_loader(path: Path, site_id: str, *, name: str | None, role: str) -> dict[str, Any]:
    import os

    os._exit(3)


def test_the_import_process_is_killed_at_the_time_limit_and_capped_in_memory(tmp_path: Path) -> None:
    from dashboard.uploads import UploadError, run_isolated

    path = tmp_path / "x.ifc"
    path.write_bytes(HEADER)
    started = time.monotonic()
    with pytest.raises(UploadError, match="took longer than 2 s and was stopped"):
        run_isolated(sleepy_loader, path, "s", name=None, role="member", limits=UploadLimits(timeout_s=2.0))
    assert time.monotonic() - started < 10
    with pytest.raises(UploadError, match="ran out of memory"):
        run_isolated(greedy_loader, path, "s", name=None, role="member",
                     limits=UploadLimits(timeout_s=60, memory_bytes=1024**3))
    with pytest.raises(UploadError, match="died \\(exit code 3\\)"):
        run_isolated(crashing_loader, path, "s", name=None, role="member", limits=UploadLimits(timeout_s=60))
    import multiprocessing

    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "//evil.example", "https://evil.example/",
                                    "/\\evil.example", " /alarms", "javascript:alert(1)", "", None])
def test_the_page_after_login_is_never_another_site(target: str | None) -> None:
    from dashboard.auth import _safe_next

    assert _safe_next(target, "/") == "/"


def test_the_page_after_login_may_be_any_page_of_the_app() -> None:
    from dashboard.auth import _safe_next

    assert _safe_next("/alarms?site=hq", "/") == "/alarms?site=hq"
    assert _safe_next("/twin/room/5", "/twin/") == "/twin/room/5"
    assert _safe_next("/other/room/5", "/twin/") == "/twin/"  # outside the app's prefix


def test_a_request_body_over_the_upload_limit_is_refused_before_it_is_read(known_twin: KnownTwin) -> None:  # noqa: F811
    from dashboard.app import close_app

    add_user(known_twin.url, "viewer-big", "viewer")
    app = make_app(known_twin.url, upload_limits=UploadLimits(max_bytes=1024 * 1024))
    try:
        client = app.server.test_client()
        session = login(client, "viewer-big")
        huge = b'{"output": "x", "inputs": [], "pad": "' + b"x" * (8 * 1024 * 1024) + b'"}'
        refused = client.post("/_dash-update-component", data=huge, content_type="application/json",
                              headers={"X-CSRFToken": session.csrf})
        small = client.get("/_dash-layout")
    finally:
        close_app(app)
    assert refused.status_code == 413
    assert small.status_code == 200


def test_one_ifc_import_at_a_time(tmp_path: Path) -> None:
    from dashboard.uploads import UploadError, run_isolated

    path = tmp_path / "x.ifc"
    path.write_bytes(HEADER)
    first: dict[str, Any] = {}

    def slow() -> None:
        try:
            run_isolated(sleepy_loader, path, "s", name=None, role="member", limits=UploadLimits(timeout_s=3.0))
        except UploadError as exc:
            first["error"] = str(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    with pytest.raises(UploadError, match="another IFC import is running"):
        run_isolated(sleepy_loader, path, "t", name=None, role="member", limits=UploadLimits(timeout_s=3.0))
    thread.join(20)
    assert "took longer than 3 s" in first["error"]  # the first one ran to its own time limit
