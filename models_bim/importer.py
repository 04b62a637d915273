"""Load an IFC revision into the twin: read, plan (diff against the stored twin), apply, log; one transaction.

::

    summary = import_file(url, Path("school.ifc"), "m01", role="member")
    summary["diff"]["no_changes"], summary["plan"]["removals"], summary["applied"]

    plan = import_file(url, Path("school-v2.ifc"), "m01", dry_run=True)   # reads, writes nothing
    import_file(url, Path("school-v2.ifc"), "m01", allow_removals=True,
                expect_plan=plan["plan"]["fingerprint"])                  # exactly what was shown

**Plan, then apply.** Every load first computes the plan: the diff against the stored twin and
the counts it is taken against. A dry run stops there, in a read-only transaction. A plan that
removes any building or storey, or more than ``max_removals`` of the site's rooms or devices
(:func:`models_bim.diff.removal_check`), is refused unless ``allow_removals``: nothing is written
and :class:`RevisionRefused` is raised, carrying the summary (``refused`` true) for the planner
to see. A first import of a site is never refused. With
``expect_plan`` (a plan's fingerprint) the load is applied only if the diff is still the one
planned; otherwise :class:`PlanChanged` is raised and nothing is written.

The site is locked for the whole import (concurrent loads of one site queue up). When the
new model equals the stored twin (:func:`models_bim.diff.diff_models` is empty) no twin
table is written; the import log still gets a row (``changed = false``). An applied load
records who applied it in the audit log (action ``bim_apply``), in the same transaction. Any
error rolls the whole import back: the previous twin stays as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from models_bim.diff import MAX_REMOVALS, ModelDiff, diff_fingerprint, diff_models, removal_check
from models_bim.load import read_model
from models_bim.memory import peak_rss_mb
from models_bim.summary import summarize
from twin.database import connection
from twin.domain import SiteRole, TwinModel
from twin.storage import audit
from twin.storage.bim_imports import lock_site_for_import, record_import
from twin.storage.model import load_model, save_model, without_bound_identities

Progress = Callable[[str, int, int], None]
#: The audit log's action for an applied BIM revision.
AUDIT_ACTION = "bim_apply"


class PlanChanged(RuntimeError):
    """The stored twin changed between planning a revision and applying it: plan it again."""


class RevisionRefused(RuntimeError):
    """A revision that removes too much, loaded without ``allow_removals``; ``summary`` has its plan and diff."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(f"refused: {'; '.join(summary['plan']['removals'])}; nothing was written "
                         "(check the diff, then load again with --allow-removals)")
        self.summary = summary


def plan_of(old: TwinModel | None, diff: ModelDiff, *, max_removals: float = MAX_REMOVALS,
            allow_removals: bool = False) -> dict[str, Any]:
    """The plan of a revision, JSON-ready: diff counts, the stored counts, removals that need a confirmation.

    ``needs_confirmation`` is true when the removals exceed what may be applied without
    ``allow_removals``; ``fingerprint`` identifies the diff (:func:`models_bim.diff.diff_fingerprint`).
    """
    stored = {s: len(getattr(old, s)) if old is not None else 0 for s in ModelDiff.SECTIONS}
    removals = removal_check(diff, stored, max_removals)
    return {"first_import": diff.first_import, "no_changes": diff.empty, "counts": diff.counts(), "stored": stored,
            "max_removals": max_removals, "removals": removals, "needs_confirmation": bool(removals),
            "allow_removals": allow_removals, "fingerprint": diff_fingerprint(diff)}


def import_model(conn: psycopg.Connection, model: TwinModel, *, file_name: str, file_sha256: str,
                 dry_run: bool = False, allow_removals: bool = False, max_removals: float = MAX_REMOVALS,
                 expect_plan: str | None = None, applied_by: str | None = None,
                 remote_addr: str | None = None) -> dict[str, Any]:
    """Plan ``model`` against the stored twin of its site and, unless a dry run or refused, apply and log it.

    Runs in the caller's transaction; returns the summary with ``diff``, ``plan``, ``dry_run``,
    ``refused``, ``applied`` and ``import_id`` (None when nothing was applied). ``applied_by``
    (and ``remote_addr``) go into the audit log entry of an applied load. Raises
    :class:`RevisionRefused` (nothing written) when the plan needs ``allow_removals``, and
    :class:`PlanChanged` when the diff is not the one ``expect_plan`` names.
    """
    site_id = model.site.site_id
    if not dry_run:
        lock_site_for_import(conn, site_id)
    old = load_model(conn, site_id)
    model = without_bound_identities(conn, model)  # ids bound from a CSV to the same device: no change
    diff = diff_models(old, model)
    plan = plan_of(old, diff, max_removals=max_removals, allow_removals=allow_removals)
    if expect_plan is not None and plan["fingerprint"] != expect_plan:
        raise PlanChanged(f"the twin of site {site_id!r} changed since this revision was planned: "
                          "nothing was written; plan it again")
    refused = plan["needs_confirmation"] and not allow_removals and not dry_run
    summary = {"file": file_name, "file_sha256": file_sha256, **summarize(model)}
    summary["diff"] = diff.to_json()
    summary["removed_rooms"] = len(diff.rooms.removed)
    summary["removed_devices"] = len(diff.devices.removed)
    summary.update(plan=plan, dry_run=dry_run, refused=refused, applied=False, import_id=None)
    if refused:
        raise RevisionRefused(summary)
    if dry_run:
        return summary
    if not diff.empty:
        saved = save_model(conn, model)
        # Hardware ids of the file bound to other devices were not taken: the planner sees why.
        summary["warnings"] = [*summary["warnings"], *saved.identity_problems]
    logged = {k: v for k, v in summary.items() if k not in ("diff", "applied", "import_id")}
    summary["import_id"] = record_import(conn, site_id, file_name, file_sha256, model.schema, logged,
                                         summary["diff"], changed=not diff.empty)
    summary["applied"] = True
    audit.record(conn, AUDIT_ACTION, "ok", username=applied_by, target=site_id, remote_addr=remote_addr, detail={
        "file": file_name, "sha256": file_sha256, "site": site_id, "import_id": summary["import_id"],
        "counts": plan["counts"], "first_import": diff.first_import, "no_changes": diff.empty,
        "removals_confirmed": plan["removals"]})
    return summary


def file_sha256(path: Path) -> str:
    """SHA-256 of the file at ``path``, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def import_file(url: str, path: Path, site_id: str, *, name: str | None = None, role: SiteRole = "member",
                progress: Progress | None = None, dry_run: bool = False, allow_removals: bool = False,
                max_removals: float = MAX_REMOVALS, expect_plan: str | None = None, applied_by: str | None = None,
                remote_addr: str | None = None) -> dict[str, Any]:
    """Read the IFC file at ``path`` and plan or import it as ``site_id`` in one transaction (see
    :func:`import_model`); a dry run's transaction is read-only. Returns the summary; raises
    :class:`RevisionRefused` or :class:`PlanChanged` (nothing written)."""
    path = Path(path)
    model = read_model(path, site_id=site_id, site_name=name, role=role, progress=progress)
    sha = file_sha256(path)
    if progress:
        progress("planning" if dry_run else "saving", 0, 1)
    try:
        with connection(url) as conn:
            if dry_run:
                conn.execute("SET TRANSACTION READ ONLY")
            summary = import_model(conn, model, file_name=path.name, file_sha256=sha, dry_run=dry_run,
                                   allow_removals=allow_removals, max_removals=max_removals, expect_plan=expect_plan,
                                   applied_by=applied_by, remote_addr=remote_addr)
    except RevisionRefused as refused:
        _add_memory(refused.summary, path)
        raise
    if progress:
        progress("planning" if dry_run else "saving", 1, 1)
    return _add_memory(summary, path)


def _add_memory(summary: dict[str, Any], path: Path) -> dict[str, Any]:
    summary["file_mb"] = round(path.stat().st_size / 1e6, 2)
    summary["peak_rss_mb"] = peak_rss_mb()  # this process so far + its footprint process (models_bim.memory)
    return summary
