"""BIM for planners (``/bim``): upload an IFC revision, see its plan (the diff against the stored
twin), then confirm it to apply it, or discard it.

Plan, then apply. An upload is limited to ``MAX_UPLOAD_BYTES`` and type-checked, kept on the
server as a pending plan (:mod:`dashboard.bim_plans`: the file, its SHA-256, who uploaded it)
and planned by a dry run of the injected ``bim_loader`` in a child process: nothing is written to
the twin. The page shows the diff, says when its removals exceed the threshold (any building or
storey, more than 20 % of the site's rooms or devices), and offers "Apply". Applying is checked
on the server (the ``upload`` permission: planners and admins; anyone else gets 403, audited) and
runs the loader again on the kept file with ``allow_removals`` (the planner's confirmation is
the CLI's ``--allow-removals``) and the plan's fingerprint, so exactly the diff shown is applied:
if the twin changed meanwhile, nothing is. The loader records the ``bim_apply`` audit entry
(who, file, SHA-256, site, counts) in the import's own transaction.

The loader is injected (the composition root passes ``twin.cli.load_bim`` bound to the database),
so this package does not import ``models_bim``. Callbacks are glue: :func:`plan_upload` and
:func:`apply_plan` do the work, the views are pure functions of the summary.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import auth, bim_plans, data, ids
from dashboard.i18n import current, t
from dashboard.localtime import SCHOOL_TZ, fmt_time, zone_label
from dashboard.uploads import ACCEPTED_SUFFIXES, UploadError, check_ifc, decode_upload, run_isolated, site_id_for

SECTIONS = ("buildings", "storeys", "rooms", "devices")
LIST_LIMIT = 20
#: Component ids of the plan view (made by the upload callback, inside ``ids.BIM_RESULT``).
BIM_PLAN = "bim-plan"
BIM_PLAN_ID = "bim-plan-id"
BIM_CONFIRM = "bim-confirm"
BIM_DISCARD = "bim-discard"
BIM_APPLIED = "bim-applied"
#: The audit log's action for an applied (or failed) revision; the loader records the applied ones.
APPLY_ACTION = "bim_apply"

dash.register_page(__name__, path="/bim", name="BIM", title="Campus Twin – BIM", order=6)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], lang: str, **kwargs: Any) -> dbc.Table:
    """A table with translated headers. Its own, not the room page's: a page imported by another before Dash's
    page loader reaches it has its callbacks registered twice."""
    head = html.Thead(html.Tr([html.Th(t(h, lang)) for h in headers]))
    return dbc.Table([head, html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])], className="table",
                     **kwargs)


def pending_folder() -> Path:
    """The app's folder of pending plans (:data:`dashboard.bim_plans.PENDING_KEY`), else the default one."""
    return Path(flask.current_app.extensions.get(bim_plans.PENDING_KEY) or bim_plans.default_folder())


#: Another dashboard process (or host) is importing: one import at a time, wherever it was uploaded.
BUSY = "another IFC import is running: try again when it has finished"


def _loader() -> data.BimLoader:
    loader = data.bim_loader()
    if loader is None:
        raise UploadError("no BIM loader")
    return loader


def plan_upload(contents: str, filename: str, site_id: str | None, name: str | None, role: str, *,
                username: str | None) -> bim_plans.PendingPlan:
    """Check size and type, keep the upload as a pending plan, and plan it: a dry run of the injected
    loader in a child process within the app's limits (:mod:`dashboard.uploads`). Writes nothing to the twin."""
    loader = _loader()
    limits = data.upload_limits()
    blob = decode_upload(contents, limits.max_bytes)
    check_ifc(blob)
    site = site_id_for(site_id, filename)
    if role not in ("member", "headquarters"):
        raise UploadError(f"unknown role {role!r}")
    safe_name = re.sub(r"[^\w.-]+", "_", Path(filename).name)[-100:] or "upload.ifc"
    site_name = (name or "").strip()[:200] or None
    folder = pending_folder()
    bim_plans.purge(folder, keep=bim_plans.MAX_PENDING - 1)
    plan_id, path = bim_plans.stage(folder, blob, safe_name)
    try:
        with data.import_slot() as ours:
            if not ours:
                raise UploadError(BUSY)
            summary = run_isolated(functools.partial(loader, dry_run=True), path, site, name=site_name, role=role,
                                   limits=limits)
        plan = bim_plans.PendingPlan(plan_id, site, site_name, role, path.name, hashlib.sha256(blob).hexdigest(),
                                     len(blob), username, datetime.now(UTC), summary)
        bim_plans.save(folder, plan)
    except BaseException:
        bim_plans.discard(folder, plan_id)
        raise
    return plan


def apply_plan(plan_id: str, *, username: str | None, remote_addr: str | None) -> dict[str, Any]:
    """Apply the pending plan ``plan_id`` as it was shown: its kept file (checked against its SHA-256),
    removals allowed (this is the planner's confirmation), only if the diff is still the one planned.
    The plan is forgotten once applied; the loader audits the apply. Returns the import summary."""
    loader = _loader()
    folder = pending_folder()
    plan = bim_plans.load(folder, plan_id)
    if plan is None:
        raise UploadError("this plan is no longer pending (applied, discarded or expired): upload the file again")
    if not bim_plans.verify(folder, plan):
        bim_plans.discard(folder, plan_id)
        raise UploadError("the kept file does not match the uploaded file (SHA-256): upload it again")
    apply = functools.partial(loader, allow_removals=True, expect_plan=plan.fingerprint, applied_by=username,
                              remote_addr=remote_addr)
    with data.import_slot() as ours:
        if not ours:
            raise UploadError(BUSY)
        summary = run_isolated(apply, bim_plans.file_of(folder, plan), plan.site_id, name=plan.name,
                               role=plan.role, limits=data.upload_limits())
    bim_plans.discard(folder, plan_id)
    return summary


FACTS = ("site", "file", "schema", "buildings", "storeys", "rooms", "rooms_without_geometry", "devices")


def _facts(summary: Mapping[str, Any], lang: str) -> Any:
    rows = [(t(k.replace("_", " "), lang), summary[k]) for k in FACTS if summary.get(k) is not None]
    for key in ("devices_by_kind", "devices_by_mapping"):
        rows.append((t(key.replace("_", " "), lang), ", ".join(f"{k} {v}" for k, v in summary.get(key, {}).items())))
    return html.Dl([item for label, value in rows for item in (html.Dt(label), html.Dd(str(value)))],
                   className="facts facts-wide")


def diff_view(diff: Mapping[str, Any], lang: str) -> list[Any]:
    """The revision diff: counts per section, then the elements added, removed and changed."""
    counts = diff.get("counts", {})
    if diff.get("first_import"):
        head: Any = html.P(t("first import of this site", lang) + ": " + ", ".join(
            f"{counts[s]['added']} {t(s, lang)}" for s in SECTIONS if s in counts), className="diff-head")
    elif diff.get("no_changes"):
        head = html.P(t("no changes", lang), className="diff-head")
    else:
        head = _table(("", "added", "removed", "changed"),
                      [(t(s, lang), counts[s]["added"], counts[s]["removed"], counts[s]["changed"])
                       for s in SECTIONS if s in counts], lang)
    items: list[Any] = []
    for section in SECTIONS:
        part = diff.get(section)
        if not part:
            continue
        key = "device_id" if section == "devices" else "global_id"
        for verb in ("added", "removed"):
            items += [html.Li(f"{t(verb, lang)} · {t(section, lang)} · {r.get('name') or r.get(key)} ({r.get(key)})")
                      for r in part[verb][:LIST_LIMIT]]
        for c in part["changed"][:LIST_LIMIT]:
            what = "; ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in c["changes"].items())
            items.append(html.Li(f"{t('changed', lang)} · {t(section, lang)} · {c.get('name') or c.get(key)}: {what}"))
    return [head, html.Ul(items, className="diff-list")] if items else [head]


def summary_view(summary: Mapping[str, Any], lang: str) -> list[Any]:
    unmapped: Sequence[Mapping[str, Any]] = summary.get("unmapped_device_details", [])
    out: list[Any] = [html.H3(t("Import summary", lang) if summary.get("applied", True) else t("In the file", lang)),
                      _facts(summary, lang)]
    out += [html.P(f"⚠ {w}", className="warning") for w in summary.get("warnings", [])]
    out += [html.H3(t("Revision diff", lang)), *diff_view(summary.get("diff", {}), lang)]
    out += [html.H3(f"{t('unmapped devices', lang)} ({len(unmapped)})"),
            _table(("device", "kind", "Storey"), [(d["device_id"], d["kind"], d.get("storey") or "–")
                                                  for d in unmapped], lang) if unmapped
            else html.P(t("None.", lang), className="muted")]
    return out


def plan_view(plan: bim_plans.PendingPlan, lang: str) -> list[Any]:
    """The plan of an upload: what it is, the diff, removals over the threshold, and Apply / Discard."""
    summary = plan.summary
    planned = summary.get("plan", {})
    removals: Sequence[str] = planned.get("removals", [])
    out: list[Any] = [html.H3(f"{t('Plan', lang)}: {plan.file_name} → {plan.site_id}"),
                      html.P(f"SHA-256 {plan.sha256[:16]}… · {t('planned by', lang)} {plan.created_by or '–'}",
                             className="muted")]
    if removals:
        out.append(html.Div([html.P(t("This revision removes more than the threshold", lang) + ":", className="error"),
                             html.Ul([html.Li(r) for r in removals]),
                             html.P(t("applying it removes them from the twin (their history is kept)", lang),
                                    className="warning")], className="removals"))
    out += [dcc.Store(id=BIM_PLAN_ID, data=plan.plan_id),
            html.Div([html.Button(t("Apply, including the removals" if removals else "Apply this revision", lang),
                                  id=BIM_CONFIRM, n_clicks=0, className="button"),
                      " ",
                      html.Button(t("Discard", lang), id=BIM_DISCARD, n_clicks=0, className="button")],
                     className="plan-actions"),
            dcc.Loading(html.Div(html.P(t("Nothing has been applied yet.", lang), className="warning"),
                                 id=BIM_APPLIED), type="default")]
    return out + summary_view(summary, lang)


def import_log(lang: str) -> Any:
    rows = data.bim_import_log()
    if not rows:
        return html.P(t("None.", lang), className="muted")
    zones = data.zones()  # each import in its school's time (the zone in a tooltip)
    return _table(("imported", "site", "file", "schema", "changed"), [
        (html.Span(fmt_time(r.imported_at, lang, zone := zones.get(r.site_id, SCHOOL_TZ), seconds=False),
                   title=zone_label(zone, lang)), r.site_id, r.file_name, r.ifc_schema,
         "✓" if r.changed else "–") for r in rows], lang)


def layout(**_: Any) -> html.Div:
    lang = current()
    limits = data.upload_limits()
    allowed = auth.can("upload")
    enabled = data.bim_loader() is not None and allowed
    form = html.Div([
        html.Label([t("Site id", lang), dcc.Input(id=ids.BIM_SITE, type="text", placeholder="hq, m01, ...",
                                                  className="text-input")]),
        html.Label([t("Site name (optional)", lang), dcc.Input(id=ids.BIM_NAME, type="text",
                                                               className="text-input")]),
        html.Label([t("Role", lang), dcc.Dropdown(id=ids.BIM_ROLE, value="member", clearable=False,
                                                  options=[{"label": t(r, lang), "value": r}
                                                           for r in ("member", "headquarters")],
                                                  className="picker picker-small")]),
    ], className="pickers")
    upload = dcc.Upload(id=ids.BIM_UPLOAD, accept=ACCEPTED_SUFFIXES, max_size=limits.max_bytes, multiple=False,
                        disabled=not enabled, className="upload",
                        children=html.Div([t("Drag an IFC file here or click to choose", lang),
                                           html.Span(f" ({t('maximum size', lang)} "
                                                     f"{limits.max_bytes // (1024 * 1024)} MB)", className="muted")]))
    notice = [] if enabled else [html.P(t("Uploads are disabled: no BIM loader (start with campus-twin dashboard).",
                                          lang) if allowed else t("Only planners and admins may upload.", lang),
                                        className="warning")]
    return html.Div([
        html.H2(t("Upload an IFC revision", lang)),
        *notice, form, upload,
        dcc.Loading(html.Div(id=ids.BIM_RESULT), type="default"),
        html.H3(t("Recent imports", lang)),
        html.Div(import_log(lang), id=ids.BIM_LOG),
        *_brick_link(lang),
    ])


def _brick_link(lang: str) -> list[Any]:
    """For admins: the twin as Brick (``/brick.ttl``, :mod:`dashboard.brick_download`)."""
    if not auth.can("export"):
        return []
    href = f"{flask.current_app.extensions['campus_twin.prefix']}brick.ttl"
    return [html.H3(t("The twin as Brick", lang)),
            html.P([html.A(t("Download the network as Brick (Turtle)", lang), href=href, id=ids.BIM_BRICK),
                    html.Span(" " + t("(one school: ?site=ID)", lang), className="muted")])]


@dash.callback(
    Output(ids.BIM_RESULT, "children"),
    Output(ids.BIM_LOG, "children"),
    Input(ids.BIM_UPLOAD, "contents"),
    State(ids.BIM_UPLOAD, "filename"),
    State(ids.BIM_SITE, "value"),
    State(ids.BIM_NAME, "value"),
    State(ids.BIM_ROLE, "value"),
    prevent_initial_call=True,
)
@auth.requires("upload")
def upload(contents: str | None, filename: str | None, site_id: str | None, name: str | None, role: str
           ) -> tuple[Any, Any]:
    """Plan the uploaded file; show its diff with Apply / Discard (or the error in one line). Nothing is applied."""
    lang = current()
    if not contents or not filename:
        return html.P(t("None.", lang)), dash.no_update
    target = f"{filename} as {site_id or '?'}"
    try:
        plan = plan_upload(contents, filename, site_id, name, role or "member", username=_username())
    except Exception as exc:  # noqa: BLE001 - any import failure is shown to the planner, not raised
        message = _first_line(exc)
        auth.record("upload", "failed", target, {"error": message})
        return html.P(f"{t('Import failed', lang)}: {message}", className="error", id="bim-error"), dash.no_update
    planned = plan.summary.get("plan", {})
    auth.record("upload", "ok", target, {"site": plan.site_id, "plan_id": plan.plan_id, "file": plan.file_name,
                                         "sha256": plan.sha256, "counts": planned.get("counts"),
                                         "removals": planned.get("removals")})
    return html.Div(plan_view(plan, lang), id=BIM_PLAN), dash.no_update


@dash.callback(
    Output(BIM_APPLIED, "children"),
    Output(BIM_CONFIRM, "disabled"),
    Output(BIM_DISCARD, "disabled"),
    Output(ids.BIM_LOG, "children", allow_duplicate=True),
    Input(BIM_CONFIRM, "n_clicks"),
    Input(BIM_DISCARD, "n_clicks"),
    State(BIM_PLAN_ID, "data"),
    prevent_initial_call=True,
)
@auth.requires("upload")
def decide(confirm_clicks: int | None, discard_clicks: int | None, plan_id: str | None) -> tuple[Any, ...]:
    """Apply the pending plan (Apply) or forget it (Discard); checked on the server by role.

    Dash also calls this when the plan view is inserted (its buttons with 0 clicks): nothing happens then.
    """
    lang = current()
    pressed = _pressed(confirm_clicks, discard_clicks)
    if pressed is None:
        raise PreventUpdate
    if pressed == BIM_DISCARD:
        bim_plans.discard(pending_folder(), plan_id or "")
        auth.record("upload", "ok", f"discard {plan_id}", {"plan_id": plan_id, "discarded": True})
        return html.P(t("Discarded: nothing was applied.", lang), className="muted"), True, True, dash.no_update
    try:
        summary = apply_plan(plan_id or "", username=_username(),
                             remote_addr=flask.request.remote_addr if flask.has_request_context() else None)
    except Exception as exc:  # noqa: BLE001 - shown to the planner in one line
        message = _first_line(exc)
        auth.record(APPLY_ACTION, "failed", str(plan_id)[:64], {"plan_id": str(plan_id)[:64], "error": message})
        return (html.P(f"{t('Apply failed', lang)}: {message}", className="error", id="bim-apply-error"),
                False, False, dash.no_update)
    done = html.P(f"{t('Applied', lang)}: {t('import', lang)} #{summary.get('import_id')}", className="diff-head")
    return html.Div([done, *summary_view(summary, lang)], id="bim-summary"), True, True, import_log(lang)


def _pressed(confirm_clicks: int | None, discard_clicks: int | None) -> str | None:
    """The button that was pressed (``dash.ctx``'s trigger; called directly, as in tests, the one clicked),
    or None when none was: a button that fired with no clicks was only inserted into the page."""
    clicks = {BIM_CONFIRM: confirm_clicks or 0, BIM_DISCARD: discard_clicks or 0}
    try:
        triggered = dash.ctx.triggered_id
    except Exception:  # noqa: BLE001 - outside a Dash request: no callback context
        triggered = next((button for button, n in clicks.items() if n), None)
    return triggered if triggered in clicks and clicks[triggered] > 0 else None


def _username() -> str | None:
    user = auth.current_user()
    return user.username if user else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
