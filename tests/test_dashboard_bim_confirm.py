"""The BIM page plans, then applies: an upload is shown as a diff and kept as a pending plan; only a planner's
(or admin's) confirmation applies it, the audit log says who applied what; a viewer or operator cannot."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dash
import ifcopenshell
import ifcopenshell.api.root
import pytest

from dashboard import bim_plans
from tests.helpers import add_user, login
from tests.test_bim_revisions import snapshot
from tests.test_dashboard import KnownTwin, _json, _page, browser, known_twin, make_app, screenshot, serving  # noqa: F401
from twin.database import connection
from twin.storage import audit

SITE = "pc1"


@pytest.fixture
def school(known_twin: KnownTwin, tmp_path: Path) -> tuple[Path, Path]:  # noqa: F811
    """A generated school loaded as site ``pc1`` (8 rooms), and a revision of it without 4 of its rooms."""
    from models_bim.generate import generate_school
    from twin.cli import load_bim

    v1 = tmp_path / "v1.ifc"
    generate_school(v1, site_id=SITE, name="确认学校", storeys=1, classrooms_per_storey=4, labs=0)
    load_bim(known_twin.url, v1, SITE)
    f = ifcopenshell.open(str(v1))
    for space in [s for s in f.by_type("IfcSpace") if "班" in (s.Name or "")]:
        ifcopenshell.api.root.remove_product(f, product=space)
    v2 = tmp_path / "v2.ifc"
    f.write(str(v2))
    return v1, v2


@pytest.fixture
def planner_app(known_twin: KnownTwin, tmp_path: Path) -> Iterator[dash.Dash]:  # noqa: F811
    from dashboard.app import close_app
    from twin.cli import load_bim

    for role in ("viewer", "operator", "planner", "admin"):
        add_user(known_twin.url, f"{role}-c", role)
    app = make_app(known_twin.url, bim_loader=functools.partial(load_bim, known_twin.url))
    app.server.extensions[bim_plans.PENDING_KEY] = tmp_path / "pending"
    try:
        yield app
    finally:
        close_app(app)


def _data_url(path: Path) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode()


def _plan_id(tree: Any) -> str:
    """The pending plan's id, from the Store of the plan view."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == "bim-plan-id":
            return tree["props"]["data"]
        for v in tree.values():
            if found := _plan_id(v):
                return found
    elif isinstance(tree, list):
        for v in tree:
            if found := _plan_id(v):
                return found
    return ""


def _rooms(url: str) -> tuple[int, int]:
    with connection(url) as conn:
        return conn.execute("""SELECT count(*) FILTER (WHERE removed_at IS NULL), count(*) FILTER (WHERE removed_at
                               IS NOT NULL) FROM rooms WHERE site_id = %s""", (SITE,)).fetchone()


def _imports(url: str) -> int:
    with connection(url) as conn:
        return conn.execute("SELECT count(*) FROM bim_imports").fetchone()[0]


def test_an_upload_is_a_plan_and_is_applied_when_the_planner_confirms(
        planner_app: dash.Dash, known_twin: KnownTwin, school: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    bim = _page("bim")
    _, v2 = school
    who = login(planner_app.server.test_client(), "planner-c")
    before, imports = snapshot(known_twin.url), _imports(known_twin.url)
    with planner_app.server.test_request_context("/", headers=who.headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        shown, _ = bim.upload(_data_url(v2), "v2.ifc", SITE, "", "member")
        page = _json(bim.layout())
    assert '"accept": ".ifc,.ifczip,.zip"' in page  # ifcZIP offered by the file chooser
    text = _json(shown)
    assert "bim-plan" in text and "Nothing has been applied yet." in text
    assert "removes 4 of 8 rooms (50%, more than 20%)" in text  # over the threshold: said, confirmed explicitly
    assert "Apply, including the removals" in text
    assert "removed · rooms · 初一(1)班" in text  # the diff itself
    plan_id = _plan_id(json.loads(text))
    assert plan_id and [p.name for p in (tmp_path / "pending").iterdir()] == [plan_id]
    assert snapshot(known_twin.url) == before and _imports(known_twin.url) == imports  # nothing applied yet
    with planner_app.server.test_request_context("/", headers=who.headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        applied, confirm_disabled, discard_disabled, log = bim.decide(1, None, plan_id)
    assert "bim-summary" in _json(applied) and confirm_disabled and discard_disabled
    assert "v2.ifc" in _json(log)
    assert _rooms(known_twin.url) == (4, 4)
    with connection(known_twin.url) as conn:
        entry = audit.recent(conn, 1, action="bim_apply")[0]
        upload = audit.recent(conn, 1, action="upload")[0]
    assert (entry["username"], entry["outcome"], entry["target"], entry["remote_addr"]) == (
        "planner-c", "ok", SITE, "10.1.2.3")
    assert entry["detail"]["file"] == "v2.ifc"
    assert entry["detail"]["sha256"] == hashlib.sha256(v2.read_bytes()).hexdigest()
    assert entry["detail"]["counts"]["rooms"] == {"added": 0, "removed": 4, "changed": 0}
    assert entry["detail"]["removals_confirmed"] == ["removes 4 of 8 rooms (50%, more than 20%)"]
    assert upload["detail"]["plan_id"] == plan_id and upload["username"] == "planner-c"
    assert list((tmp_path / "pending").iterdir()) == []  # the pending plan is gone
    with planner_app.server.test_request_context("/", headers=who.headers):
        again, *_ = bim.decide(2, None, plan_id)
    assert "no longer pending" in _json(again)


def test_a_discarded_plan_changes_nothing(planner_app: dash.Dash, known_twin: KnownTwin,  # noqa: F811
                                          school: tuple[Path, Path], tmp_path: Path) -> None:
    bim = _page("bim")
    _, v2 = school
    who = login(planner_app.server.test_client(), "planner-c")
    before = snapshot(known_twin.url)
    with planner_app.server.test_request_context("/", headers=who.headers):
        shown, _ = bim.upload(_data_url(v2), "v2.ifc", SITE, "", "member")
        result, confirm_disabled, _, _ = bim.decide(None, 1, _plan_id(json.loads(_json(shown))))
    assert "Discarded" in _json(result) and confirm_disabled
    assert snapshot(known_twin.url) == before and list((tmp_path / "pending").iterdir()) == []


def _confirm_body(deps: list[dict[str, Any]], plan_id: str) -> dict[str, Any]:
    """What dash-renderer POSTs when the confirm button is pressed."""
    output = next(d["output"] for d in deps if d["output"].startswith("..bim-applied.children"))
    outputs = [dict(zip(("id", "property"), o.split(".", 1), strict=True)) for o in output.strip(".").split("...")]
    return {"output": output, "outputs": outputs,
            "inputs": [{"id": "bim-confirm", "property": "n_clicks", "value": 1},
                       {"id": "bim-discard", "property": "n_clicks", "value": None}],
            "changedPropIds": ["bim-confirm.n_clicks"],
            "state": [{"id": "bim-plan-id", "property": "data", "value": plan_id}]}


def test_a_viewer_or_operator_cannot_confirm_a_plan(planner_app: dash.Dash, known_twin: KnownTwin,  # noqa: F811
                                                    school: tuple[Path, Path], tmp_path: Path) -> None:
    bim = _page("bim")
    _, v2 = school
    planner = login(planner_app.server.test_client(), "planner-c")
    with planner_app.server.test_request_context("/", headers=planner.headers):
        shown, _ = bim.upload(_data_url(v2), "v2.ifc", SITE, "", "member")
    plan_id = _plan_id(json.loads(_json(shown)))
    before, imports = snapshot(known_twin.url), _imports(known_twin.url)
    for role in ("viewer", "operator"):
        client = planner_app.server.test_client()
        who = login(client, f"{role}-c")
        deps = client.get("/_dash-dependencies").get_json()
        response = client.post("/_dash-update-component", json=_confirm_body(deps, plan_id),
                               headers={"X-CSRFToken": who.csrf})
        assert response.status_code == 403, (role, response.status_code, response.get_data(as_text=True)[:300])
        with connection(known_twin.url) as conn:
            denied = audit.recent(conn, 1, username=f"{role}-c")[0]
        assert (denied["action"], denied["outcome"], denied["target"]) == ("upload", "denied", "decide")
    assert snapshot(known_twin.url) == before and _imports(known_twin.url) == imports
    assert [p.name for p in (tmp_path / "pending").iterdir()] == [plan_id]  # still pending
    client = planner_app.server.test_client()
    who = login(client, "admin-c")
    deps = client.get("/_dash-dependencies").get_json()
    response = client.post("/_dash-update-component", json=_confirm_body(deps, plan_id),
                           headers={"X-CSRFToken": who.csrf})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert _rooms(known_twin.url) == (4, 4)


def test_a_plan_is_applied_only_as_shown(planner_app: dash.Dash, known_twin: KnownTwin,  # noqa: F811
                                         school: tuple[Path, Path], tmp_path: Path) -> None:
    """The twin changed since the plan, or the pending file changed, or the id is not a plan: nothing applied."""
    from twin.cli import load_bim

    bim = _page("bim")
    v1, v2 = school
    who = login(planner_app.server.test_client(), "planner-c")
    with planner_app.server.test_request_context("/", headers=who.headers):
        outdated = _plan_id(json.loads(_json(bim.upload(_data_url(v2), "v2.ifc", SITE, "", "member")[0])))
        tampered = _plan_id(json.loads(_json(bim.upload(_data_url(v2), "v2b.ifc", SITE, "", "member")[0])))
    folder = tmp_path / "pending"
    (folder / tampered / "v2b.ifc").write_bytes(v1.read_bytes())
    load_bim(known_twin.url, v2, SITE, allow_removals=True)  # someone else applied it meanwhile
    before, imports = snapshot(known_twin.url), _imports(known_twin.url)
    with planner_app.server.test_request_context("/", headers=who.headers):
        changed = _json(bim.decide(1, None, outdated)[0])
        mismatch = _json(bim.decide(1, None, tampered)[0])
        traversal = _json(bim.decide(1, None, "../../etc")[0])
    assert "changed since this revision was planned" in changed
    assert "does not match the uploaded file" in mismatch
    assert "no longer pending" in traversal
    assert snapshot(known_twin.url) == before and _imports(known_twin.url) == imports
    with connection(known_twin.url) as conn:
        failed = [e for e in audit.recent(conn, 10, action="bim_apply") if e["outcome"] == "failed"]
    assert len(failed) == 3 and all(e["username"] == "planner-c" for e in failed)


def test_pending_plans_expire_and_are_kept_private(tmp_path: Path) -> None:
    folder = tmp_path / "pending"
    plan_id, path = bim_plans.stage(folder, b"ISO-10303-21;", "a.ifc")
    assert path.read_bytes() == b"ISO-10303-21;" and path.name == "a.ifc"
    assert (folder.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)
    plan = bim_plans.PendingPlan(plan_id, "s1", None, "member", "a.ifc", hashlib.sha256(b"ISO-10303-21;").hexdigest(),
                                 13, "p", datetime.now(UTC) - bim_plans.PLAN_TTL - timedelta(seconds=1), {})
    bim_plans.save(folder, plan)
    assert bim_plans.load(folder, plan_id) is None  # expired
    assert bim_plans.purge(folder) == 1 and list(folder.iterdir()) == []
    fresh_id, _ = bim_plans.stage(folder, b"x", "b.ifc")
    bim_plans.save(folder, bim_plans.PendingPlan(fresh_id, "s1", None, "member", "b.ifc",
                                                 hashlib.sha256(b"x").hexdigest(), 1, "p", datetime.now(UTC), {}))
    loaded = bim_plans.load(folder, fresh_id)
    assert loaded is not None and loaded.site_id == "s1" and bim_plans.verify(folder, loaded)
    for bad in ("", "..", "../x", fresh_id + "/..", "a" * 200):
        assert bim_plans.load(folder, bad) is None
    assert os.listdir(folder) == [fresh_id]


@pytest.mark.browser
def test_a_planner_confirms_a_revision_in_a_browser(browser: object, planner_app: dash.Dash,  # noqa: F811
                                                    known_twin: KnownTwin,  # noqa: F811
                                                    school: tuple[Path, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, v2 = school
    wait = WebDriverWait(browser, 30)
    find = browser.find_element  # type: ignore[attr-defined]
    with serving(planner_app) as base:
        browser.get(base + "/bim")  # type: ignore[attr-defined]
        wait.until(lambda d: d.find_elements(By.ID, "login-username"))
        find(By.ID, "login-username").send_keys("planner-c")
        from tests.helpers import PASSWORD

        find(By.ID, "login-password").send_keys(PASSWORD)
        find(By.ID, "login-submit").click()
        wait.until(lambda d: d.find_elements(By.ID, "bim-site")).pop().send_keys(SITE)
        find(By.CSS_SELECTOR, "#bim-upload input[type=file]").send_keys(str(v2))
        wait.until(lambda d: "Nothing has been applied yet." in d.find_element(By.ID, "bim-result").text)
        plan = find(By.ID, "bim-plan").text
        assert "removes 4 of 8 rooms (50%, more than 20%)" in plan and "Nothing has been applied yet." in plan
        assert _rooms(known_twin.url) == (8, 0)
        screenshot(browser, "bim-plan")
        find(By.ID, "bim-confirm").click()
        wait.until(lambda d: d.find_elements(By.ID, "bim-summary"))
        assert find(By.ID, "bim-confirm").get_attribute("disabled") is not None
        wait.until(lambda d: "v2.ifc" in d.find_element(By.ID, "bim-log").text)
        screenshot(browser, "bim-applied")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
        assert errors == []
    assert _rooms(known_twin.url) == (4, 4)
    with connection(known_twin.url) as conn:
        entry = audit.recent(conn, 1, action="bim_apply")[0]
    assert entry["username"] == "planner-c" and entry["detail"]["file"] == "v2.ifc"
