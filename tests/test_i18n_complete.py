"""Every text the dashboard translates has its Chinese (issue 18: "every string a person reads in both
languages"): each literal handed to ``t(...)`` in ``dashboard/`` is a key of the table."""

from __future__ import annotations

import ast
from pathlib import Path

from dashboard.i18n import ZH

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"


def translated_literals() -> dict[str, list[str]]:
    """English literals passed to ``t`` (first argument), with where they are."""
    found: dict[str, list[str]] = {}
    for path in sorted(DASHBOARD.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, []).append(f"{path.relative_to(DASHBOARD)}:{node.lineno}")
    return found


def test_every_literal_the_dashboard_translates_has_its_chinese() -> None:
    literals = translated_literals()
    assert len(literals) > 50  # the scan finds the pages' texts
    missing = {text: where for text, where in literals.items() if text not in ZH}
    assert missing == {}


def test_device_kinds_room_uses_states_and_metrics_have_their_chinese() -> None:
    """What pages show through ``t(variable)``: the words of the twin's own vocabularies."""
    from typing import get_args

    from twin.domain import DEVICE_KINDS, RoomUse
    from twin.metrics import CATALOGUE

    words = [*DEVICE_KINDS, *get_args(RoomUse), "online", "offline", "unknown", "open", "acknowledged", "closed",
             "critical", "warning", "info", *(m.name for m in CATALOGUE)]
    assert [w for w in words if w not in ZH] == []
