"""The package rules of DESIGN.md, checked on the imports of the source (``ast``, every
import statement, function-level ones included).

- ``twin`` is the core: it imports none of the other four packages, except the ``campus-twin`` CLI
  (``twin/cli/``, every module of it: the composition root), and that one only lazily, inside functions;
  the CLI parses and calls, its SQL is in ``twin/storage/``.
- ``ingest``, ``models_bim``, ``simulators`` and ``dashboard`` may import ``twin`` and
  nothing of each other.
- paho is touched by the messaging room only (``twin/messaging/``): nothing else imports it, and
  nothing else reaches through the wrapper (``MqttClient``) to the paho object it keeps.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("twin", "ingest", "models_bim", "simulators", "dashboard")
#: What each package may import of the others (DESIGN.md, "Packages").
MAY_IMPORT = {
    "twin": set(),
    "ingest": {"twin"},
    "models_bim": {"twin"},
    "simulators": {"twin"},
    "dashboard": {"twin"},
}
#: The composition root (the package ``twin.cli``, every module of it): may reach every package, lazily.
CLI = "twin/cli/"
#: Where paho may be imported: the messaging room.
PAHO_HOME = ("twin/messaging/",)
#: The attributes of ``twin.messaging.mqtt.MqttClient`` that hold paho objects (checked below on a real
#: client): no code outside ``PAHO_HOME`` may name them.
WRAPPER_PAHO_ATTRIBUTES = frozenset({"_client"})


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository, with forward slashes
    line: int
    module: str  # absolute dotted name
    top_level: bool  # at module level (not inside a function or class body)

    @property
    def root(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    """The dotted module of a ``from ... import``, relative ones resolved against the file's package."""
    if node.level == 0:
        return node.module or ""
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = list(path.relative_to(REPO).parts[:-1])
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(REPO).as_posix()
    found: list[Import] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(rel, child.lineno, alias.name, not nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append(Import(rel, child.lineno, _absolute(child, path), not nested))
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef)
            visit(child, inner)

    visit(tree, False)
    return found


def sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def all_imports(*roots: str) -> list[Import]:
    return [imp for path in sources(*roots) for imp in imports_of(path)]


# -- the parser itself ---------------------------------------------------------------------


def test_parser_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "dashboard"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "pages.py"
    module.write_text(
        "import os\n"
        "from . import figures\n"
        "def callback():\n"
        "    from ingest.worker import IngestWorker\n"
        "    import paho.mqtt.client as mqtt\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    got = [(i.module, i.top_level) for i in imports_of(module)]
    assert got == [("os", True), ("dashboard", True), ("ingest.worker", False), ("paho.mqtt.client", False)]


def test_every_package_is_scanned():
    for package in PACKAGES:
        assert sources(package), f"no Python files under {package}/"


def test_the_cli_is_a_package_whose_modules_are_scanned():
    """The rules below cover every module of the CLI, its ``__init__`` included."""
    modules = {p.relative_to(REPO).as_posix() for p in sources(CLI)}
    assert f"{CLI}__init__.py" in modules and len(modules) > 1, modules
    assert not (REPO / "twin" / "cli.py").exists(), "the CLI is the package twin/cli/; a twin/cli.py would escape these rules"


# -- the rules ------------------------------------------------------------------------------


def test_twin_imports_no_other_package_outside_the_cli():
    offenders = [
        str(i) for i in all_imports("twin")
        if i.root in PACKAGES and i.root != "twin" and not i.path.startswith(CLI)
    ]
    assert offenders == [], "twin is the core; only twin/cli/ may reach the other packages:\n" + "\n".join(offenders)


def test_the_cli_reaches_other_packages_only_lazily():
    offenders = [
        str(i) for i in all_imports(CLI)
        if i.root in PACKAGES and i.root != "twin" and i.top_level
    ]
    assert offenders == [], "twin/cli/ imports the other packages inside each subcommand:\n" + "\n".join(offenders)


SQL_START = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH ", "CREATE ", "ALTER ", "DROP ", "COPY ")


def sql_in(path: Path) -> list[str]:
    """Where ``path`` runs a statement itself (``.execute``/``.executemany``/``.copy``/``.cursor``) or holds a
    string that starts like one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(REPO).as_posix()
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "copy", "cursor")):
            found.append(f"{rel}:{node.lineno} calls .{node.func.attr}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and node.value.lstrip().startswith(SQL_START)):
            found.append(f"{rel}:{node.lineno} holds SQL {node.value.strip()[:40]!r}")
    return found


def test_the_sql_scan_sees_statements_and_their_strings(tmp_path, monkeypatch):
    module = tmp_path / "cmd.py"
    module.write_text(
        "def kpis(conn, day):\n"
        "    return conn.execute('SELECT scope FROM kpi_daily WHERE day = %s', (day,)).fetchall()\n"
        "HELP = 'Select the site (--site)'  # words, not a statement\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert sql_in(module) == ["cmd.py:2 calls .execute", "cmd.py:2 holds SQL 'SELECT scope FROM kpi_daily WHERE day = '"]


def test_the_cli_holds_no_sql():
    """The CLI parses and calls: its queries are functions of ``twin.storage``."""
    offenders = [hit for path in sources(CLI) for hit in sql_in(path)]
    assert offenders == [], "SQL belongs in twin/storage/, not in the CLI:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "twin"])
def test_packages_import_only_twin(package):
    allowed = MAY_IMPORT[package] | {package}
    offenders = [str(i) for i in all_imports(package) if i.root in PACKAGES and i.root not in allowed]
    assert offenders == [], f"{package} may import only {sorted(MAY_IMPORT[package])} (DESIGN.md):\n" + "\n".join(
        offenders
    )


def _paho_offenders() -> list[str]:
    return [
        str(i) for i in all_imports(*PACKAGES, "bench")
        if i.root == "paho" and not i.path.startswith(PAHO_HOME)
    ]


def test_paho_is_imported_where_the_wrapper_is():
    """The wrapper exists where the rule below says paho may be imported."""
    homes = {i.path for i in all_imports("twin") if i.root == "paho"}
    assert homes and all(h.startswith(PAHO_HOME) for h in homes), homes


def test_only_the_mqtt_wrapper_imports_paho():
    offenders = _paho_offenders()
    assert offenders == [], "paho is imported outside twin/messaging/mqtt.py (twin/messaging/):\n" + "\n".join(offenders)


def paho_reaches_of(path: Path) -> list[str]:
    """Where ``path`` names an attribute of :data:`WRAPPER_PAHO_ATTRIBUTES` (``x._client``, or through
    ``getattr``/``setattr``/``hasattr`` with the name as a string)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(REPO).as_posix()
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant)):
            name = node.args[1].value
        if name in WRAPPER_PAHO_ATTRIBUTES:
            found.append(f"{rel}:{node.lineno} reaches .{name}")
    return found


def test_the_reach_scan_sees_attributes_and_getattr(tmp_path, monkeypatch):
    module = tmp_path / "worker.py"
    module.write_text(
        "def f(self):\n"
        "    self._mqtt._client.ack(1, 1)\n"
        "    getattr(self.mqtt, '_client').publish('t', b'')\n"
        "    self.client.publish('t', b'')  # a wrapper kept under the name client: fine\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert paho_reaches_of(module) == ["worker.py:2 reaches ._client", "worker.py:3 reaches ._client"]


def test_the_wrapper_keeps_its_paho_objects_under_the_names_the_scan_looks_for():
    """Every attribute of a client that holds a paho object is one of WRAPPER_PAHO_ATTRIBUTES, and none
    is public: renaming it (or adding another) fails here until the scan below knows the new name."""
    from twin.messaging.mqtt import MqttClient

    client = MqttClient("mqtt://127.0.0.1:1", "architecture-check", protocol=4)  # no connection made
    holding_paho = {name for name, value in vars(client).items()
                    if type(value).__module__.split(".")[0] == "paho"
                    or any(c.__module__.split(".")[0] == "paho" for c in type(value).__mro__)}
    assert holding_paho and holding_paho <= WRAPPER_PAHO_ATTRIBUTES, holding_paho
    public = [name for name in dir(client) if not name.startswith("_")]
    leaking = [name for name in public if type(getattr(client, name)).__module__.split(".")[0] == "paho"]
    assert leaking == [], leaking


def test_nothing_outside_the_messaging_room_reaches_the_wrappers_paho_object():
    offenders = [
        reach for path in sources(*PACKAGES, "bench") if not path.relative_to(REPO).as_posix().startswith(PAHO_HOME)
        for reach in paho_reaches_of(path)
    ]
    assert offenders == [], ("the paho object inside twin.messaging.mqtt.MqttClient is the wrapper's own; use its "
                             "methods:\n" + "\n".join(offenders))
