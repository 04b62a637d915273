"""What the code imports is what pyproject.toml declares.

Every third-party module imported by the project's packages comes from a distribution in
``[project] dependencies``; what tests and benchmarks import comes from those or from the
``[test]`` extra. Each requirement is a range (a lower bound, and an upper bound unless the
project is calendar-versioned data) that the installed version satisfies. A declared runtime
dependency that no package imports is a leftover (plotly came only through Dash).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("twin", "ingest", "models_bim", "simulators", "dashboard")
#: Declared but never imported, on purpose: the IANA database that zoneinfo reads when the
#: system has none; gunicorn, run as a program (``python -m gunicorn``, :func:`twin.cli.parts.gunicorn_service`).
NOT_IMPORTED = {"tzdata", "gunicorn"}
#: No upper bound on purpose: calendar-versioned data, every release is compatible.
UNBOUNDED = {"tzdata"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(section: str) -> list[Requirement]:
    project = _pyproject()["project"]
    lines = project["dependencies"] if section == "project" else project["optional-dependencies"][section]
    return [Requirement(line) for line in lines]


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def imported_modules(*roots: str) -> dict[str, str]:
    """Top-level third-party modules imported under ``roots`` (function-level imports too),
    each with one place that imports it."""
    own = set(PACKAGES) | {"tests", "bench", "__future__"}
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in own or top in sys.stdlib_module_names:
                        continue
                    found.setdefault(top, f"{path.relative_to(REPO).as_posix()}:{node.lineno}")
    return found


def distributions_of(modules: dict[str, str]) -> dict[str, str]:
    """Distribution (canonical name) -> where it is imported; a module no distribution provides
    is reported as ``?module``."""
    provided = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for module, where in modules.items():
        for dist in provided.get(module, [f"?{module}"]):
            found.setdefault(canonicalize_name(dist) if not dist.startswith("?") else dist, where)
    return found


def test_the_packages_import_only_declared_dependencies():
    declared = _names(_requirements("project"))
    used = distributions_of(imported_modules(*PACKAGES))
    undeclared = {dist: where for dist, where in used.items() if dist not in declared}
    assert undeclared == {}, "imported by the project's packages but not in [project] dependencies"


def test_tests_and_benchmarks_import_only_declared_dependencies():
    declared = _names(_requirements("project")) | _names(_requirements("test"))
    used = distributions_of(imported_modules("tests", "bench"))
    undeclared = {dist: where for dist, where in used.items() if dist not in declared}
    assert undeclared == {}, "imported by tests or bench but in neither [project] dependencies nor [test]"


def test_every_runtime_dependency_is_imported():
    used = set(distributions_of(imported_modules(*PACKAGES)))
    unused = _names(_requirements("project")) - used - NOT_IMPORTED
    assert unused == set(), "declared in [project] dependencies but imported by no package (only reached through another?)"


@pytest.mark.parametrize("section", ["project", "test"])
def test_requirements_are_ranges_the_installed_versions_satisfy(section):
    problems = []
    for req in _requirements(section):
        name = canonicalize_name(req.name)
        operators = {spec.operator for spec in req.specifier}
        if not operators & {">=", "~=", "=="}:
            problems.append(f"{req}: no lower bound")
        if name not in UNBOUNDED and not operators & {"<", "~=", "=="}:
            problems.append(f"{req}: no upper bound")
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{req}: not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{req}: installed {installed} is outside the range")
    assert problems == []
