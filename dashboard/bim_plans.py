"""Pending BIM plans: an uploaded IFC revision kept on the server, with its diff, until a planner confirms it.

The dashboard's BIM page plans first (a dry run of the injected loader) and applies only on
confirmation (:mod:`dashboard.pages.bim`). Between the two, the uploaded file and what was
shown are kept here, in a folder of their own per plan::

    <folder>/<plan_id>/<file name>     the uploaded bytes (mode 0600)
    <folder>/<plan_id>/plan.json       site, name, role, SHA-256, who planned it, when, the dry run's summary

``plan_id`` is random (128 bits, URL-safe); an id that is not one (``../x``) is simply unknown.
A plan expires after ``PLAN_TTL``; at most ``MAX_PENDING`` are kept (the oldest go first). The
folder is the app's ``PENDING_KEY`` extension, else one private to this user in the system's
temporary directory; several dashboard processes on one machine share it. No Dash here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: ``app.server.extensions[PENDING_KEY]``: the folder of pending plans (a Path).
PENDING_KEY = "campus_twin.bim_pending"
#: A plan not confirmed within this is dropped.
PLAN_TTL = timedelta(hours=24)
#: Pending plans kept at most (each holds an uploaded file of up to the upload limit).
MAX_PENDING = 16
PLAN_FILE = "plan.json"
_PLAN_ID = re.compile(r"[A-Za-z0-9_-]{22}")


@dataclass(frozen=True, slots=True)
class PendingPlan:
    """An uploaded revision waiting for a confirmation; ``summary`` is the dry run's (with ``diff`` and ``plan``)."""

    plan_id: str
    site_id: str
    name: str | None
    role: str
    file_name: str
    sha256: str
    size: int
    created_by: str | None
    created_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str | None:
        """The planned diff's fingerprint (:func:`models_bim.diff.diff_fingerprint`), given to the apply."""
        return self.summary.get("plan", {}).get("fingerprint")


def default_folder() -> Path:
    """A folder private to this user under the system's temporary directory."""
    return Path(tempfile.gettempdir()) / f"campus-twin-{os.getuid()}" / "bim-pending"


def _private_dir(path: Path) -> Path:
    """``path`` made (mode 0700) or checked: a directory of ours, not a link, not readable by others."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a directory of this user")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def stage(folder: Path, blob: bytes, file_name: str) -> tuple[str, Path]:
    """Keep ``blob`` as ``file_name`` under a new plan id; the id and the file's path."""
    plan_id = secrets.token_urlsafe(16)
    home = _private_dir(_private_dir(folder) / plan_id)
    path = home / Path(file_name).name
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(blob)
    return plan_id, path


def save(folder: Path, plan: PendingPlan) -> None:
    """Write the plan's record next to its staged file (atomically: a reader sees all or nothing)."""
    home = folder / plan.plan_id
    record = asdict(plan)
    record["created_at"] = plan.created_at.isoformat()
    tmp = home / f".{PLAN_FILE}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, default=str)
    tmp.replace(home / PLAN_FILE)


def load(folder: Path, plan_id: str, now: datetime | None = None) -> PendingPlan | None:
    """The pending plan ``plan_id``; None when the id is not one, unknown, incomplete or expired."""
    if not isinstance(plan_id, str) or not _PLAN_ID.fullmatch(plan_id):
        return None
    try:
        record = json.loads((folder / plan_id / PLAN_FILE).read_text("utf-8"))
        record["created_at"] = datetime.fromisoformat(record["created_at"])
        plan = PendingPlan(**record)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if plan.created_at < (now or datetime.now(UTC)) - PLAN_TTL:
        return None
    return plan


def file_of(folder: Path, plan: PendingPlan) -> Path:
    return folder / plan.plan_id / Path(plan.file_name).name


def verify(folder: Path, plan: PendingPlan) -> bool:
    """True when the kept file is still the one uploaded (size and SHA-256)."""
    path = file_of(folder, plan)
    try:
        if path.stat().st_size != plan.size:
            return False
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() == plan.sha256
    except OSError:
        return False


def discard(folder: Path, plan_id: str) -> None:
    """Forget the plan and its file (no-op for an unknown or malformed id)."""
    if isinstance(plan_id, str) and _PLAN_ID.fullmatch(plan_id):
        shutil.rmtree(folder / plan_id, ignore_errors=True)


def purge(folder: Path, now: datetime | None = None, keep: int = MAX_PENDING) -> int:
    """Drop expired and incomplete plans (staged over ``PLAN_TTL`` ago), then the oldest beyond ``keep``;
    how many were dropped."""
    if not folder.is_dir():
        return 0
    now = now or datetime.now(UTC)
    live: list[tuple[datetime, str]] = []
    dropped = 0
    for entry in folder.iterdir():
        if not _PLAN_ID.fullmatch(entry.name):
            continue
        plan = load(folder, entry.name, now)
        if plan is not None:
            live.append((plan.created_at, entry.name))
            continue
        staged = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
        if (entry / PLAN_FILE).exists() or staged < now - PLAN_TTL:  # expired, or never planned and stale
            discard(folder, entry.name)
            dropped += 1
    for _, plan_id in sorted(live)[:max(0, len(live) - keep)]:
        discard(folder, plan_id)
        dropped += 1
    return dropped
