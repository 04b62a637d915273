"""Load an IFC revision into the twin: read, diff against the stored twin, save, log; one transaction.

::

    summary = import_file(url, Path("school.ifc"), "m01", role="member")
    summary["diff"]["no_changes"]

The site is locked for the whole import (concurrent loads of one site queue up). When the
new model equals the stored twin (:func:`models_bim.diff.diff_models` is empty) no twin
table is written; the import log still gets a row (``changed = false``). Any error rolls
the whole import back: the previous twin stays as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from models_bim.diff import diff_models
from models_bim.load import read_model
from models_bim.summary import summarize
from twin.database import connection
from twin.domain import SiteRole, TwinModel
from twin.storage.bim_imports import lock_site_for_import, record_import
from twin.storage.model import load_model, save_model

Progress = Callable[[str, int, int], None]


def import_model(conn: psycopg.Connection, model: TwinModel, *, file_name: str, file_sha256: str
                 ) -> dict[str, Any]:
    """Diff ``model`` against the stored twin of its site, save it if anything changed, log the import.

    Runs in the caller's transaction; returns the summary (with ``diff`` and ``import_id``).
    """
    site_id = model.site.site_id
    lock_site_for_import(conn, site_id)
    old = load_model(conn, site_id)
    diff = diff_models(old, model)
    if not diff.empty:
        save_model(conn, model)
    summary = {"file": file_name, **summarize(model)}
    summary["diff"] = diff.to_json()
    summary["removed_rooms"] = len(diff.rooms.removed)
    summary["removed_devices"] = len(diff.devices.removed)
    logged = {k: v for k, v in summary.items() if k != "diff"}
    summary["import_id"] = record_import(conn, site_id, file_name, file_sha256, model.schema, logged,
                                         summary["diff"], changed=not diff.empty)
    return summary


def import_file(url: str, path: Path, site_id: str, *, name: str | None = None, role: SiteRole = "member",
                progress: Progress | None = None) -> dict[str, Any]:
    """Read the IFC file at ``path`` and import it as ``site_id`` in one transaction; return the summary."""
    path = Path(path)
    model = read_model(path, site_id=site_id, site_name=name, role=role, progress=progress)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if progress:
        progress("saving", 0, 1)
    with connection(url) as conn:
        summary = import_model(conn, model, file_name=path.name, file_sha256=sha)
    if progress:
        progress("saving", 1, 1)
    return summary
