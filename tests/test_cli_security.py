"""``campus-twin users`` and ``campus-twin devices credentials`` against a real database."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from click.testing import CliRunner

from tests.helpers import small_twin
from twin import security
from twin.cli import main
from twin.database import connection
from twin.storage import audit, users
from twin.storage.model import save_model


def run(db_url: str, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["--database-url", db_url, *args], input=stdin, catch_exceptions=False)


def test_users_add_list_remove_with_the_password_never_echoed(db_url: str) -> None:
    added = run(db_url, "users", "add", "li", "--role", "operator", "--password-stdin", stdin="s3cret-pass\n")
    assert added.exit_code == 0 and added.output == "added li (operator)\n"
    prompted = run(db_url, "users", "add", "wang", "--role", "viewer", stdin="another-pass\nanother-pass\n")
    assert prompted.exit_code == 0 and "another-pass" not in prompted.output
    with connection(db_url) as conn:
        assert users.authenticate(conn, "li", "s3cret-pass").role == "operator"
        assert users.authenticate(conn, "li", "wrong") is None
        stored = conn.execute("SELECT password_hash FROM users WHERE username = 'li'").fetchone()[0]
    assert stored.startswith("scrypt$") and "s3cret-pass" not in stored
    listed = orjson.loads(run(db_url, "users", "list", "--json").output)
    assert [(u["username"], u["role"]) for u in listed] == [("li", "operator"), ("wang", "viewer")]
    assert run(db_url, "users", "remove", "wang").output == "removed wang\n"
    with connection(db_url) as conn:
        assert [e["action"] for e in audit.recent(conn, 5)] == ["user_remove", "user_add", "user_add"]


def test_users_bad_input_gets_one_line_errors(db_url: str) -> None:
    run(db_url, "users", "add", "li", "--role", "admin", "--password-stdin", stdin="long-enough\n")
    for args, stdin, message in (
        (("users", "add", "li", "--role", "admin", "--password-stdin"), "long-enough\n", "Error: user 'li' exists"),
        (("users", "add", "x y", "--role", "admin", "--password-stdin"), "long-enough\n", "Error: username 'x y'"),
        (("users", "add", "zhao", "--role", "admin", "--password-stdin"), "short\n", "Error: password too short"),
        (("users", "remove", "nobody"), None, "Error: no user 'nobody'"),
    ):
        result = run(db_url, *args, stdin=stdin)
        assert result.exit_code == 1 and result.output.startswith(message) and result.output.count("\n") == 1, \
            result.output
    bad_role = run(db_url, "users", "add", "zhao", "--role", "root", "--password-stdin", stdin="long-enough\n")
    assert bad_role.exit_code == 2


def test_devices_credentials_writes_passwd_acl_and_csv(db_url: str, tmp_path: Path) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("c1", rooms=2))
    result = run(db_url, "devices", "credentials", "--site", "c1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("issued 8 passwords (1 ingest, 1 dashboard, 1 monitor, 1 gateway, 4 device)")
    rows = list(csv.DictReader((tmp_path / "out" / "credentials.csv").open()))
    assert [r["username"] for r in rows] == ["ingest", "dashboard", "monitor", "gateway@c1", "ENV-0", "ENV-1", "LUM-0", "LUM-1"]
    passwd = dict(line.split(":", 1) for line in (tmp_path / "out" / "passwd").read_text().splitlines())
    assert all(security.verify_password(r["password"], passwd[r["username"]]) for r in rows)
    with connection(db_url) as conn:
        hashes = dict(conn.execute("SELECT username, password_hash FROM mqtt_accounts").fetchall())
    assert hashes == passwd  # stored hashed, the same hashes the broker reads
    unknown = run(db_url, "devices", "credentials", "--site", "nope", "--out", str(tmp_path / "x"))
    assert unknown.exit_code == 1 and unknown.output == "Error: unknown site 'nope'\n"
