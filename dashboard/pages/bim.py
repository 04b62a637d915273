"""BIM for planners (``/bim``): upload an IFC revision, then its import summary, diff and unmapped devices.

The upload is limited to ``MAX_UPLOAD_BYTES``; a spinner shows while the file is sent and
imported. The import itself is the injected ``bim_loader`` (the composition root passes
``twin.cli.load_bim``), so this package does not import ``models_bim``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from dashboard import auth, data, ids
from dashboard.i18n import current, t
from dashboard.pages.room import _table
from dashboard.uploads import UploadError, check_ifc, decode_upload, run_isolated, site_id_for

SECTIONS = ("buildings", "storeys", "rooms", "devices")
LIST_LIMIT = 20

dash.register_page(__name__, path="/bim", name="BIM", title="Campus Twin – BIM", order=6)


def import_upload(contents: str, filename: str, site_id: str | None, name: str | None, role: str
                  ) -> dict[str, Any]:
    """Check size and type, write the upload to a temporary file under its own name, and run the
    injected loader on it in a child process within the app's limits (:mod:`dashboard.uploads`)."""
    loader = data.bim_loader()
    if loader is None:
        raise UploadError("no BIM loader")
    limits = data.upload_limits()
    blob = decode_upload(contents, limits.max_bytes)
    check_ifc(blob)
    site = site_id_for(site_id, filename)
    if role not in ("member", "headquarters"):
        raise UploadError(f"unknown role {role!r}")
    safe_name = re.sub(r"[^\w.-]+", "_", Path(filename).name)[-100:] or "upload.ifc"
    with tempfile.TemporaryDirectory(prefix="campus-bim-") as folder:
        path = Path(folder) / safe_name
        path.write_bytes(blob)
        return run_isolated(loader, path, site, name=(name or "").strip()[:200] or None, role=role, limits=limits)


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
    out: list[Any] = [html.H3(t("Import summary", lang)), _facts(summary, lang)]
    out += [html.P(f"⚠ {w}", className="warning") for w in summary.get("warnings", [])]
    out += [html.H3(t("Revision diff", lang)), *diff_view(summary.get("diff", {}), lang)]
    out += [html.H3(f"{t('unmapped devices', lang)} ({len(unmapped)})"),
            _table(("device", "kind", "Storey"), [(d["device_id"], d["kind"], d.get("storey") or "–")
                                                  for d in unmapped], lang) if unmapped
            else html.P(t("None.", lang), className="muted")]
    return out


def import_log(lang: str) -> Any:
    rows = data.bim_import_log()
    if not rows:
        return html.P(t("None.", lang), className="muted")
    return _table(("imported", "site", "file", "schema", "changed"), [
        (f"{r['imported_at']:%Y-%m-%d %H:%M}", r["site_id"], r["file_name"], r["ifc_schema"],
         "✓" if r["changed"] else "–") for r in rows], lang)


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
    upload = dcc.Upload(id=ids.BIM_UPLOAD, accept=".ifc", max_size=limits.max_bytes, multiple=False,
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
    ])


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
    """Import the uploaded file; show its summary, diff and unmapped devices (or the error in one line)."""
    lang = current()
    if not contents or not filename:
        return html.P(t("None.", lang)), dash.no_update
    target = f"{filename} as {site_id or '?'}"
    try:
        summary = import_upload(contents, filename, site_id, name, role or "member")
    except Exception as exc:  # noqa: BLE001 - any import failure is shown to the planner, not raised
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        auth.record("upload", "failed", target, {"error": message})
        return html.P(f"{t('Import failed', lang)}: {message}", className="error", id="bim-error"), dash.no_update
    auth.record("upload", "ok", target, {"site": summary.get("site"), "import_id": summary.get("import_id")})
    return html.Div(summary_view(summary, lang), id="bim-summary"), import_log(lang)
