"""Rows that cross a package boundary are typed: what ``dashboard``, ``ingest``, ``models_bim`` and
``simulators`` call in ``twin.storage`` returns frozen dataclasses (or plain scalars and mappings of
them), never ``dict[str, Any]`` rows whose keys only the SQL knows.

The calls are found on the source (``ast``): ``from twin.storage import m`` then ``m.f(...)``, and
``from twin.storage.m import f`` then ``f(...)``; each function's return annotation is resolved
(``typing.get_type_hints``) and walked.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import types
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OTHER_PACKAGES = ("dashboard", "ingest", "models_bim", "simulators")
#: Calls left as they are, with the reason.
UNTYPED_ALLOWED: set[tuple[str, str]] = set()


def storage_calls(path: Path) -> set[tuple[str, str]]:
    """``(twin.storage module, function)`` of every call in ``path`` to a function of ``twin.storage``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: dict[str, str] = {}  # local name -> twin.storage module
    functions: dict[str, tuple[str, str]] = {}  # local name -> (module, function)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                local = alias.asname or alias.name
                if node.module == "twin.storage":
                    modules[local] = f"twin.storage.{alias.name}"
                elif node.module.startswith("twin.storage."):
                    functions[local] = (node.module, alias.name)
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in modules:
            found.add((modules[f.value.id], f.attr))
        elif isinstance(f, ast.Name) and f.id in functions:
            found.add(functions[f.id])
    return found


def untyped_parts(hint: object) -> list[str]:
    """The parts of a return type that are untyped rows: ``Any``, a bare ``dict``, ``dict[str, Any]``."""
    if hint is typing.Any or hint is dict:
        return [repr(hint)]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict and args and args[-1] is typing.Any:
        return [repr(hint)]
    if origin in (list, tuple, dict, set, frozenset, typing.Union, types.UnionType) or (
            origin is not None and getattr(origin, "__module__", "") == "collections.abc"):
        return [bad for arg in args for bad in untyped_parts(arg)]
    return []


def boundary_calls() -> dict[tuple[str, str], list[str]]:
    calls: dict[tuple[str, str], list[str]] = {}
    for package in OTHER_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for call in storage_calls(path):
                calls.setdefault(call, []).append(path.relative_to(REPO).as_posix())
    return calls


def untyped(module: str, name: str) -> list[str]:
    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, type):  # a class (a writer, a row type): what it makes is typed by its own code
        return []
    return untyped_parts(typing.get_type_hints(obj).get("return"))


def test_the_scan_finds_calls_and_untyped_returns(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from twin.storage import users as u, plans\nfrom twin.storage.devices import device as d\n"
                      "def f(c):\n    return u.list_users(c), plans.storey_snapshot(c, 1), d(c, 's', 'x')\n")
    assert storage_calls(source) == {("twin.storage.users", "list_users"), ("twin.storage.plans", "storey_snapshot"),
                                     ("twin.storage.devices", "device")}
    assert untyped("twin.storage.users", "list_users") == ["dict[str, typing.Any]"]  # what the check must catch
    assert untyped("twin.storage.plans", "storey_snapshot") == []
    assert ("twin.storage.plans", "storey_snapshot") in boundary_calls()  # the dashboard's floor plan


def test_what_other_packages_read_from_storage_is_typed():
    calls = boundary_calls()
    offenders = [f"{module}.{name} -> {', '.join(bad)} (called in {', '.join(sorted(set(where)))})"
                 for (module, name), where in sorted(calls.items())
                 if (module, name) not in UNTYPED_ALLOWED and (bad := untyped(module, name))]
    assert offenders == []


def test_row_types_are_frozen_dataclasses():
    from twin.storage import alarms, bim_imports, commands, devices, plans, readings, sites

    rows = [alarms.AlarmRow, bim_imports.ImportRow, commands.CommandRow, devices.DeviceListed, devices.DeviceRef,
            devices.RoomDevice, devices.DeviceRow, devices.UnknownPublisher, devices.NeverHeard,
            devices.UnmappedDevice, devices.CloudPanel, plans.StoreyRow, plans.RoomFootprint, plans.RoomRow,
            plans.BuildingRef, plans.BuildingRoom, plans.PlanRoom, plans.PlanDevice, plans.StoreySnapshot,
            readings.LatestValue, sites.SiteRef, sites.SiteSummary]
    assert all(dataclasses.is_dataclass(r) and r.__dataclass_params__.frozen for r in rows)
