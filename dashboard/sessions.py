"""Cloud classes of the 1+N network: panels grouped by session, main classroom first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twin.storage.devices import CloudPanel


def group_sessions(panels: Sequence[CloudPanel]) -> list[dict[str, Any]]:
    """Cloud-class panels grouped by session: the main classroom (role 1) and the auxiliaries (role 2)."""
    sessions: dict[int, dict[str, Any]] = {}
    for p in panels:
        s = sessions.setdefault(int(p.session), {"session": int(p.session), "main": None, "aux": []})
        if p.role == 1 and s["main"] is None:
            s["main"] = p
        else:
            s["aux"].append(p)
    return [sessions[k] for k in sorted(sessions)]
