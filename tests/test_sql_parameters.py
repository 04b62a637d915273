"""SQL is parameterised everywhere: no ``execute``/``copy`` of a string built with an f-string,
``%`` or ``.format`` (values go as parameters, identifiers through ``psycopg.sql``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("twin", "ingest", "dashboard", "models_bim", "simulators", "bench")
#: Module-constant DDL only (the readings table's column list), no input reaches it.
ALLOWED = {("twin/storage/schema.py", "_readings")}
CALLS = {"execute", "executemany", "copy", "stream"}


def _built(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return isinstance(node.left, (ast.Constant, ast.JoinedStr)) and isinstance(
            getattr(node.left, "value", ""), str) or _built(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, (ast.Constant, ast.JoinedStr))
    return False


def offences() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text("utf-8"))
            for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
                for call in ast.walk(func):
                    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr in CALLS and call.args and _built(call.args[0])
                            and (rel, func.name) not in ALLOWED):
                        found.append(f"{rel}:{call.lineno} in {func.name}()")
    return sorted(set(found))


def test_no_sql_is_built_by_string_formatting() -> None:
    assert offences() == []


def test_the_check_finds_what_it_looks_for() -> None:
    bad = ast.parse('cur.execute(f"SELECT * FROM t WHERE name = \'{name}\'")').body[0].value  # type: ignore[attr-defined]
    assert _built(bad.args[0])
    assert _built(ast.parse('"SELECT %s" % (x,)').body[0].value)  # type: ignore[attr-defined]
    assert not _built(ast.parse('"SELECT 1 WHERE a = %s"').body[0].value)  # type: ignore[attr-defined]
