"""``campus-twin db``: create, inspect and prune the database."""

from __future__ import annotations

import click

from twin.cli.base import friendly, main, print_json, settings_of
from twin.database import connection, database_url
from twin.orchestrate import migrated_url


@main.group()
def db() -> None:
    """Create and inspect the database."""


@db.command("init")
@click.pass_context
@friendly
def db_init(ctx: click.Context) -> None:
    """Create or upgrade the schema (idempotent).  Example: campus-twin db init"""
    from twin.storage.schema import migrate, schema_version

    url = database_url(settings_of(ctx))
    with connection(url) as conn:
        applied = migrate(conn)
        version = schema_version(conn)
    click.echo(f"schema version {version}" + (f" (applied {applied})" if applied else " (up to date)"))


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
@friendly
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Backend, server version, schema version, rows per table.  Example: campus-twin db status --json"""
    from twin.storage.stats import status

    with connection(database_url(settings_of(ctx))) as conn:
        info = status(conn)
    if as_json:
        print_json(info)
        return
    click.echo(f"backend: {info['backend']} (server {info['server_version']})")
    if info["problem"]:
        click.echo(f"problem: {info['problem']}")
    click.echo(f"schema: version {info['schema_version']} of {info['schema_latest']}")
    for table, count in info["tables"].items():
        click.echo(f"  {table:<14} {'-' if count is None else count:>10}")


@db.command("retention")
@click.option("--apply", "do_apply", is_flag=True, help="Drop what the policy says is due (default: only show).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
@friendly
def db_retention(ctx: click.Context, do_apply: bool, as_json: bool) -> None:
    """Show (and with --apply, carry out) the retention policy of raw readings.  Example: campus-twin db retention --apply"""
    from twin.storage.retention import apply, plan

    with connection(migrated_url(settings_of(ctx))) as conn:
        p = plan(conn)
        dropped = apply(conn, p) if do_apply else []
    if as_json:
        print_json({"backend": p.backend, "retention_days": p.retention_days, "cutoff": p.cutoff,
                    "due": [x.name for x in p.drop], "kept": [x.name for x in p.keep],
                    "policies": list(p.policies), "applied": do_apply, "dropped": dropped})
        return
    click.echo(f"backend: {p.backend}; raw readings kept {p.retention_days} days (cutoff {p.cutoff:%Y-%m-%d %H:%M}Z)")
    for job in p.policies:
        click.echo(f"  policy job {job['job_id']}: {job['proc']} every {job['schedule']} {job['config']}"
                   f" (last run: {job['last_run_status'] or 'none yet'}, failures: {job['total_failures'] or 0})")
    kind = "chunks" if p.backend == "timescaledb" else "partitions"
    for part in p.drop:
        rows = f"~{part.rows} rows" if part.rows >= 0 else "not analysed yet"
        click.echo(f"  due:  {part.name} ({part.start:%Y-%m-%d} .. {part.end:%Y-%m-%d}, {rows})")
    click.echo(f"  kept: {len(p.keep)} {kind}" + (f" ({p.keep[0].name} .. {p.keep[-1].name})" if p.keep else ""))
    if do_apply:
        click.echo(f"dropped {len(dropped)}: {', '.join(dropped) or 'nothing was due'}")
    elif p.drop:
        click.echo("run with --apply to drop them")

