"""``campus-twin users``: the dashboard's users and their roles."""

from __future__ import annotations

import click

from twin.cli.base import friendly, main, operator_name, print_json, settings_of
from twin.database import connection
from twin.orchestrate import migrated_url


@main.group()
def users() -> None:
    """Dashboard users and their roles (viewer, operator, planner, admin)."""


def _read_password(password_stdin: bool) -> str:
    import sys

    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "operator", "planner", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (no prompt).")
@click.pass_context
@friendly
def users_add(ctx: click.Context, username: str, role: str, password_stdin: bool) -> None:
    """Add a dashboard user (the password is prompted for, never echoed).  Example: campus-twin users add li --role operator"""
    from twin.storage import audit
    from twin.storage.users import add_user

    url = migrated_url(settings_of(ctx))
    password = _read_password(password_stdin)
    with connection(url) as conn:
        add_user(conn, username, role, password)
        audit.record(conn, "user_add", "ok", username=operator_name(), target=username, detail={"role": role})
    click.echo(f"added {username} ({role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@friendly
def users_list(ctx: click.Context, as_json: bool) -> None:
    """Users with role, creation and last login.  Example: campus-twin users list"""
    from twin.storage.users import list_users

    with connection(migrated_url(settings_of(ctx))) as conn:
        rows = list_users(conn)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        last = r["last_login"].strftime("%Y-%m-%d %H:%M") if r["last_login"] else "never"
        click.echo(f"{r['username']:<24} {r['role']:<9} created {r['created_at']:%Y-%m-%d}  last login {last}")
    click.echo(f"{len(rows)} users")


@users.command("remove")
@click.argument("username")
@click.pass_context
@friendly
def users_remove(ctx: click.Context, username: str) -> None:
    """Remove a user and end their sessions.  Example: campus-twin users remove li"""
    from twin.storage import audit
    from twin.storage.users import remove_user

    with connection(migrated_url(settings_of(ctx))) as conn:
        if not remove_user(conn, username):
            raise click.ClickException(f"no user {username!r}")
        audit.record(conn, "user_remove", "ok", username=operator_name(), target=username)
    click.echo(f"removed {username}")

