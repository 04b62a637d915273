"""The ``campus-twin`` command: a thin adapter over the packages (the composition root).

Only this module imports ``ingest``, ``models_bim``, ``simulators`` and ``dashboard``,
lazily, inside the subcommand that needs them. Library errors become one-line
messages and exit status 1; wrong arguments exit 2 (click's convention).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from twin.database import DatabaseUnavailable, connection, database_url
from twin.embedded import EmbeddedDatabaseError
from twin.logs import setup_logging
from twin.messaging.broker import MAX_QUEUED_MESSAGES, BrokerError
from twin.orchestrate import migrated_url, run_services
from twin.process import thread_death
from twin.services import ServiceError, ThreadService
from twin.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    from dashboard.serve import PortInUse
    from models_bim.errors import IfcReadError
    from models_bim.importer import PlanChanged, RevisionRefused
    from twin.messaging.mqtt_auth import CredentialsError
    from twin.monitoring.report import ReportError
    from twin.monitoring.standards import RulesError
    from twin.storage.users import UserError

    return (DatabaseUnavailable, EmbeddedDatabaseError, BrokerError, IfcReadError, PortInUse, UserError,
            CredentialsError, RulesError, ReportError, RevisionRefused, PlanChanged, ServiceError)


def friendly(fn: F) -> F:
    """Turn known library errors into ``Error: <one line>`` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    click.echo(orjson.dumps(obj, default=str, option=orjson.OPT_INDENT_2).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="CAMPUS_TWIN_DATABASE_URL", help="PostgreSQL URL; default: embedded server.")
@click.option("--mqtt-url", envvar="CAMPUS_TWIN_MQTT_URL", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883.")
@click.option("--data-dir", envvar="CAMPUS_TWIN_DATA_DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Where embedded data is kept; default ~/.local/share/campus-twin.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="campus-twin")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, mqtt_url: str | None, data_dir: Path | None,
         verbose: int) -> None:
    """Campus Twin: a live digital twin of school campuses.

    \b
    Try:  campus-twin demo          # everything on embedded defaults
          campus-twin db status     # what is stored
    """
    setup_logging(verbose)
    ctx.obj = Settings.from_env().override(database_url=database_url, mqtt_url=mqtt_url, data_dir=data_dir)


@main.result_callback()
def _exit_if_a_thread_died(*_: object, **__: object) -> None:
    """A command whose stop came from a dead thread (see :func:`stop_on_signals`) fails with its reason."""
    if (died := thread_death()) is not None:
        raise click.ClickException(died)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings)  # type: ignore[return-value]


def require_mqtt(settings: Settings) -> str:
    if not settings.mqtt_url:
        raise click.UsageError("no MQTT broker: pass --mqtt-url or set CAMPUS_TWIN_MQTT_URL "
                               "(campus-twin demo starts one for you)")
    return settings.mqtt_url


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (install first, so a signal at any time stops cleanly).

    A thread that dies (a service's own, paho's) sets it too, and the command then exits non-zero
    (:func:`_exit_if_a_thread_died`): no service runs on half-alive. Both are undone when the
    command's context closes (after that check), so a command run in-process leaves nothing behind.
    """
    from twin import services

    stop, restore = services.stop_on_signals()
    if (ctx := click.get_current_context(silent=True)) is not None:
        ctx.call_on_close(restore)
    return stop


# -- db ------------------------------------------------------------------------
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


# -- devices -------------------------------------------------------------------
@main.group()
def devices() -> None:
    """Devices of the twin."""


@devices.command("list")
@click.option("--site", help="Only this site.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@friendly
def devices_list(ctx: click.Context, site: str | None, as_json: bool) -> None:
    """Devices with kind, site, room and last seen.  Example: campus-twin devices list --site hq"""
    from twin.storage.devices import list_devices

    with connection(migrated_url(settings_of(ctx))) as conn:
        rows = list_devices(conn, site)
    if as_json:
        print_json([{k: getattr(r, k) for k in ("site_id", "device_id", "kind", "room", "mapping", "state", "last_seen")}
                    for r in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("site", "device", "kind", "room", "state", "last seen", box=None)
    for r in rows:
        seen = r.last_seen.strftime("%Y-%m-%d %H:%M:%S") if r.last_seen else "never"
        table.add_row(r.site_id, r.device_id, r.kind, r.room or "-", r.state, seen)
    Console().print(table)
    click.echo(f"{len(rows)} devices")


def _file_mode(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal mode such as 0600 or 0640") from None
    if not 0 <= mode <= 0o777 or mode & 0o007:
        raise click.BadParameter(f"{value!r}: the files hold password hashes; no access for others (0600, 0640)")
    return mode


@devices.command("credentials")
@click.option("--site", "site_id", required=True, help="Issue passwords for this site's devices and gateway.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for mosquitto.conf, dynamic-security.json, passwd, acl and credentials.csv (created).")
@click.option("--rotate-services", is_flag=True, help="Also issue new passwords for the ingest and dashboard accounts.")
@click.option("--owner", metavar="USER[:GROUP]",
              help="Give the broker's files to this user (the user Mosquitto runs as, e.g. mosquitto); needs root.")
@click.option("--mode", "mode", default="0600", show_default=True, callback=_file_mode,
              help="Mode of the broker's files (credentials.csv is always 0600 and yours).")
@click.option("--port", type=click.IntRange(1, 65535), default=1883, show_default=True,
              help="Listener port of the generated mosquitto.conf.")
@click.option("--bind", help="Listener address of the generated mosquitto.conf (default: every interface).")
@click.option("--persistence-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where Mosquitto keeps sessions and queued messages (default: OUT/data; Debian: /var/lib/mosquitto).")
@click.option("--dynsec-plugin", metavar="PATH",
              help="mosquitto_dynamic_security.so on the broker's host (default: found next to mosquitto).")
@click.option("--max-queued-messages", type=click.IntRange(1), default=MAX_QUEUED_MESSAGES, show_default=True,
              help="Messages Mosquitto keeps per client while it is away (ingest stopped).")
@click.pass_context
@friendly
def devices_credentials(ctx: click.Context, site_id: str, out: Path, rotate_services: bool, owner: str | None,
                        mode: int, port: int, bind: str | None, persistence_dir: Path | None,
                        dynsec_plugin: str | None, max_queued_messages: int) -> None:
    """Issue MQTT passwords per device; write a Mosquitto configuration, its accounts and ACLs, and credentials.csv.

    Every device of the site and its gateway get a new password (stored hashed); ``ingest`` and
    ``dashboard`` get one the first time (or with --rotate-services). mosquitto.conf (listener,
    persistence, queue limits, the dynamic security plugin), dynamic-security.json, passwd and acl
    cover every account of the twin; credentials.csv (username,password,role) holds this run's
    passwords, to hand to installers. See docs/security.md.

    Example: campus-twin devices credentials --site hq --out /etc/mosquitto/campus --owner mosquitto
    """
    import os

    from twin.messaging.broker import find_dynsec_plugin
    from twin.messaging.mqtt_auth import BrokerOptions, CredentialsError, FileOwner, issue, write_files

    file_owner = FileOwner.parse(owner) if owner else None
    if file_owner is not None and os.geteuid() != 0:
        raise CredentialsError("--owner needs root (files can only be given to another user by root)")
    options = BrokerOptions(port=port, bind=bind, persistence_dir=persistence_dir, dynsec_plugin=dynsec_plugin,
                            max_queued_messages=max_queued_messages)
    with connection(migrated_url(settings_of(ctx))) as conn:
        issued = issue(conn, site_id, rotate_services=rotate_services)
        paths = write_files(conn, out, issued, options=options, mode=mode, owner=file_owner)
    roles: dict[str, int] = {}
    for _, _, role in issued.rows:
        roles[role] = roles.get(role, 0) + 1
    click.echo(f"issued {len(issued.rows)} passwords (" + ", ".join(f"{v} {k}" for k, v in roles.items())
               + f"); wrote {', '.join(str(p) for p in paths)}")
    click.echo(f"start the broker: mosquitto -c {out.resolve() / 'mosquitto.conf'}")
    if dynsec_plugin is None and find_dynsec_plugin() is None:
        click.echo("  mosquitto_dynamic_security.so not found here: mosquitto.conf names it without a folder "
                   "(found so on Debian and Ubuntu); give the broker host's path with --dynsec-plugin", err=True)
    if file_owner is None and os.geteuid() == 0:
        click.echo("  the files are root's, mode 0600: a Mosquitto that runs as its own user cannot read them "
                   "(use --owner mosquitto)", err=True)
    for name, reason in issued.skipped:
        click.echo(f"  skipped device {name!r}: {reason}", err=True)


# -- users ---------------------------------------------------------------------
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
        audit.record(conn, "user_add", "ok", username=_operator(), target=username, detail={"role": role})
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
        audit.record(conn, "user_remove", "ok", username=_operator(), target=username)
    click.echo(f"removed {username}")


def _operator() -> str:
    """Who ran the command, for the audit log (the OS user)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _rules_option(fn: F) -> F:
    return click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
                        envvar="CAMPUS_TWIN_RULES", help="TOML file of per-site rule overrides (docs/monitoring.md).")(fn)


# -- bim -----------------------------------------------------------------------
@main.group()
def bim() -> None:
    """Generate and load BIM (IFC) models."""


@bim.command("generate")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site-id", default="school", show_default=True)
@click.option("--name", default="示范学校 Demo School", show_default=True)
@click.option("--buildings", type=click.IntRange(1, 24), default=1, show_default=True, help="Teaching buildings.")
@click.option("--storeys", type=click.IntRange(1, 30), default=2, show_default=True, help="Per building.")
@click.option("--classrooms", type=click.IntRange(0, 100), default=6, show_default=True, help="Per storey.")
@click.option("--labs", type=click.IntRange(0, 20), default=1, show_default=True, help="On the ground floor.")
@click.option("--orientation", type=click.FloatRange(-360, 360), default=0.0, show_default=True,
              help="Degrees the campus is turned, counter-clockwise from east.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--network", type=click.IntRange(0, 200), default=None,
              help="Write a headquarters and N member schools into the folder OUT instead.")
@friendly
def bim_generate(out: Path, site_id: str, name: str, buildings: int, storeys: int, classrooms: int, labs: int,
                 orientation: float, seed: int, network: int | None) -> None:
    """Write a synthetic IFC4 school (or a network of them).

    Example: campus-twin bim generate school.ifc --storeys 3 --classrooms 8 --labs 2 --orientation 15

    Example: campus-twin bim generate network/ --network 13 --buildings 3
    """
    from models_bim.generate import generate_network, generate_school

    if network is not None:
        for school in generate_network(out, members=network, seed=seed, buildings=buildings):
            click.echo(f"wrote {school.path} ({school.site_id}, {school.role})")
        return
    generate_school(out, site_id=site_id, name=name, storeys=storeys, classrooms_per_storey=classrooms, labs=labs,
                    buildings=buildings, orientation_deg=orientation, seed=seed)
    click.echo(f"wrote {out}")


def load_bim(url: str, path: Path, site_id: str, *, name: str | None = None, role: str = "member",
             progress: Callable[[str, int, int], None] | None = None, dry_run: bool = False,
             allow_removals: bool = False, max_removals: float | None = None, expect_plan: str | None = None,
             applied_by: str | None = None, remote_addr: str | None = None) -> dict[str, Any]:
    """Read an IFC file and plan or import it as ``site_id`` in one transaction; return the summary (with the
    diff, the plan and whether it was applied). A revision that removes too much without ``allow_removals``
    raises ``RevisionRefused`` (see :func:`models_bim.importer.import_file`)."""
    from models_bim.diff import MAX_REMOVALS
    from models_bim.importer import import_file

    return import_file(url, path, site_id, name=name, role=role, progress=progress,  # type: ignore[arg-type]
                       dry_run=dry_run, allow_removals=allow_removals,
                       max_removals=MAX_REMOVALS if max_removals is None else max_removals,
                       expect_plan=expect_plan, applied_by=applied_by, remote_addr=remote_addr)


def bim_loader_for(url: str) -> Callable[..., dict[str, Any]]:
    """:func:`load_bim` bound to ``url``: what the dashboard's IFC upload calls (``(path, site_id, *, name, role)``,
    plus ``dry_run`` to plan and ``allow_removals``, ``expect_plan``, ``applied_by``, ``remote_addr`` to apply)."""
    return functools.partial(load_bim, url)


@bim.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_id", required=True, help="Site id to load the model as (e.g. hq, m01).")
@click.option("--name", help="Site name; default: the IfcSite name.")
@click.option("--role", type=click.Choice(["headquarters", "member"]), default="member", show_default=True)
@click.option("--dry-run", is_flag=True, help="Show the plan (the diff against the stored twin); write nothing.")
@click.option("--allow-removals", is_flag=True,
              help="Apply even if the revision removes a building or storey, or more than --max-removals "
                   "of the site's rooms or devices.")
@click.option("--max-removals", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              envvar="CAMPUS_TWIN_BIM_MAX_REMOVALS", show_envvar=True, metavar="FRACTION",
              help="Share of the site's rooms, and of its devices, a revision may remove without --allow-removals.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@friendly
def bim_load(ctx: click.Context, file: Path, site_id: str, name: str | None, role: str, dry_run: bool,
             allow_removals: bool, max_removals: float, as_json: bool) -> None:
    """Load an IFC file (or a new revision of it) into the twin, or only show what it would change.

    Example: campus-twin bim load school.ifc --site hq

    Example: campus-twin bim load school-v2.ifc --site hq --dry-run
    """
    from twin.domain import SITE_ID

    if not SITE_ID.fullmatch(site_id):
        raise click.BadParameter("letters, digits, '_', '.', '-' only (it goes into MQTT topics)",
                                 param_hint="--site")
    url = migrated_url(settings_of(ctx))
    from rich.console import Console
    from rich.progress import Progress

    from models_bim.importer import RevisionRefused

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"loading {file.name}", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{file.name}: {stage}", completed=done, total=total or None)

        try:
            summary = load_bim(url, file, site_id, name=name, role=role, progress=progress, dry_run=dry_run,
                               allow_removals=allow_removals, max_removals=max_removals, applied_by=_operator())
            refused = None
        except RevisionRefused as exc:
            summary, refused = exc.summary, exc
    if as_json:
        print_json(summary)
    else:
        for line in _summary_lines(summary):
            click.echo(line)
    if refused is not None:
        raise click.ClickException(str(refused))


def _summary_lines(summary: dict[str, Any], limit: int = 20) -> list[str]:
    from models_bim.diff import diff_lines

    verb = "loaded" if summary["applied"] else "dry run of" if summary["dry_run"] else "refused"
    lines = [(f"{verb} {summary['file']} as site {summary['site']!r} ({summary['schema']}): "
              f"{summary['buildings']} buildings, {summary['storeys']} storeys, {summary['rooms']} rooms "
              f"({summary['rooms_without_geometry']} without geometry), {summary['devices']} devices")]
    if summary["devices_by_kind"]:
        lines.append("  devices by kind: " + ", ".join(f"{k} {v}" for k, v in summary["devices_by_kind"].items()))
        lines.append("  mapped by: " + ", ".join(f"{k} {v}" for k, v in summary["devices_by_mapping"].items()))
    if summary["derived_device_ids"]:
        lines.append(f"  device ids derived from the GlobalId: {summary['derived_device_ids']}")
    unmapped = summary["unmapped_device_details"]
    if unmapped:
        lines.append(f"  unmapped devices ({len(unmapped)}):")
        lines += [f"    {d['device_id']}  {d['kind']}  {d['name'] or '-'}  storey {d['storey'] or '-'}"
                  for d in unmapped[:limit]]
        if len(unmapped) > limit:
            lines.append(f"    ... and {len(unmapped) - limit} more (see --json)")
    # (stated count, gaps, label, what is stated, measured by, measured key, stated key, unit)
    for stated, gaps, label, what, source, measured, quantity, unit in (
            (summary["rooms_with_quantities"], summary["area_discrepancies"], "area", "floor area", "footprint",
             "footprint_m2", "quantity_m2", "m²"),
            (summary["rooms_with_stated_height"], summary["height_discrepancies"], "height", "height", "geometry",
             "geometry_m", "quantity_m", "m")):
        if stated:
            lines.append(f"  {label}: {stated} rooms state their {what}, {len(gaps)} differ from the {source} "
                         f"by more than 5%")
            lines += [f"    {g['room']}: {source} {g[measured]} {unit}, stated {g[quantity]} {unit} ({g['gap_pct']:+}%)"
                      for g in gaps[:limit]]
    lines += [f"  warning: {w}" for w in summary["warnings"]]
    lines.append(f"  changes (import #{summary['import_id']}):" if summary["applied"] else "  changes (not applied):")
    lines += [f"    {line}" for line in diff_lines(summary["diff"], limit)]
    removals = summary["plan"]["removals"]
    if removals:
        lines.append(("  applied with --allow-removals: " if summary["applied"] else "  needs --allow-removals: ")
                     + "; ".join(removals))
    if summary["dry_run"]:
        lines.append("  dry run: nothing was written")
    return lines


@bim.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the diff as one JSON object.")
@friendly
def bim_diff(old: Path, new: Path, as_json: bool) -> None:
    """Show what changed between two revisions of a model, offline (no database).

    Example: campus-twin bim diff school-v1.ifc school-v2.ifc --json
    """
    from models_bim.diff import diff_lines, diff_models
    from models_bim.load import read_model

    before = read_model(old, site_id="diff")
    after = read_model(new, site_id="diff")
    diff = diff_models(before, after)
    if as_json:
        print_json(diff.to_json())
        return
    for line in diff_lines(diff):
        click.echo(line)


# -- simulate / ingest / dashboard ------------------------------------------------
def _span(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from twin.durations import parse_duration

    try:
        return parse_duration(value, positive=True) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _start_time(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected an ISO date-time such as 2026-11-23T07:30, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo("Asia/Shanghai"))


def _fault_profile(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from simulators.faults import FaultProfileError, parse_profile

    try:
        return parse_profile(value)
    except FaultProfileError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option("--site", help="Only the devices of this site.")
@click.option("--interval", type=click.FloatRange(0.05, 3600),
              help="Seconds between messages of every device; default: per kind (sensors 30 s, others 60 s).")
@click.option("--speed", type=click.FloatRange(0.1, 10000), default=1.0, show_default=True,
              help="Simulated seconds per real second (60: a school day in about 10 minutes).")
@click.option("--start", callback=_start_time, metavar="DATETIME",
              help="Simulated start (school-local if no offset); default: now, or the last school day's "
                   "07:30 with --speed > 1.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option("--faults", callback=_fault_profile, metavar="PROFILE",
              help="Inject faults: none, light, chaos, all, or kind=rate,... (see docs/simulators.md).")
@click.option("--fault-log", type=click.Path(dir_okay=False, path_type=Path),
              help="Append every injected fault to this JSON-lines file.")
@click.option("--connections", type=click.Choice(["gateway", "device"]), default="gateway", show_default=True,
              help="One MQTT connection per site (gateway) or per device (small fleets).")
@click.option("--client-id", default="campus-sim", show_default=True, help="Prefix of the MQTT client ids.")
@click.option("--backfill", "backfill_span", callback=_span, metavar="SPAN",
              help="Instead of publishing, write SPAN of history (e.g. 30d) straight into the database.")
@click.option("--backfill-step", callback=_span, default="15m", show_default=True, metavar="SPAN",
              help="Sampling step of --backfill.")
@click.pass_context
@friendly
def simulate(ctx: click.Context, site: str | None, interval: float | None, speed: float, start: Any, seed: int,
             duration: float | None, faults: Any, fault_log: Path | None, connections: str, client_id: str,
             backfill_span: Any, backfill_step: Any) -> None:
    """Publish telemetry and status for every device of the twin, or backfill history.

    Example: campus-twin simulate --speed 60 --faults light --fault-log faults.jsonl
    Example: campus-twin simulate --backfill 30d
    """
    settings = settings_of(ctx)
    if backfill_span is not None:
        _backfill(migrated_url(settings), backfill_span, backfill_step, seed, site)
        return
    from twin.messaging.mqtt import detect_protocol

    mqtt_url = require_mqtt(settings)
    detect_protocol(mqtt_url)  # the broker answers before a database is started or migrated
    service = _simulator_service(migrated_url(settings), mqtt_url, interval_s=interval, seed=seed, speed=speed,
                                 site_id=site, start=start, faults=faults, fault_log=fault_log,
                                 connections=connections, client_id=client_id)
    run_services(stop_on_signals(), [service], duration)
    runner = service.subject
    injected = len(runner.fault_log.events)
    click.echo(f"published {runner.published} messages from {len(runner.fleet)} devices"
               + (f"; injected {injected} faults" if faults.active else ""))


def _backfill(url: str, span: Any, step: Any, seed: int, site: str | None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from simulators.backfill import backfill

    console = Console(stderr=True)
    with Progress(TextColumn("backfill"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("backfill", total=None)
        result = backfill(url, span, step=step, seed=seed, site_id=site,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    click.echo(f"backfilled {result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC for {result.devices} "
               f"devices: {result.samples} samples, {result.rows} readings in {result.seconds:.1f} s")


@main.command()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the MQTT 5 subscription (1 on an MQTT 3.1.1 broker). Mosquitto 2 "
                   "does not keep shared subscriptions across its restart: there, only one worker loses nothing "
                   "when the broker restarts (docs/mqtt.md).")
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option("--client-id", default="campus-ingest-1", show_default=True,
              help="Stable id: the broker keeps this worker's session across restarts (-1, -2, ... appended "
                   "with --workers > 1).")
@click.option("--share-group", default="auto", show_default=True,
              help="MQTT 5 shared subscription group; 'auto': a plain subscription with one worker (kept by "
                   "Mosquitto 2 across a restart), 'campus-ingest' with several; '' for plain (one worker only).")
@click.option("--stats-every", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds between throughput and lag log lines (shown with -v).")
@click.pass_context
@friendly
def ingest(ctx: click.Context, workers: int, duration: float | None, client_id: str, share_group: str,
           stats_every: float) -> None:
    """Subscribe to telemetry and store it.  Example: campus-twin -v ingest --workers 2 --mqtt-url mqtt://127.0.0.1:1883"""
    from ingest.pool import check_workers
    from twin.messaging.contract import share_group_for

    settings = settings_of(ctx)
    url, mqtt_url = migrated_url(settings), require_mqtt(settings)
    if workers > 1 and not share_group:
        raise click.BadParameter("several workers need a shared subscription group", param_hint="--share-group")
    share_group = share_group_for(share_group, workers)
    check_workers(mqtt_url, workers)
    service = _ingest_service(url, mqtt_url, client_id=client_id, workers=workers, share_group=share_group,
                              stats_every=stats_every)
    run_services(stop_on_signals(), [service], duration)
    note = ""
    if workers == 1:
        c = service.subject.counters
        totals = [(c.messages, c.rows, c.duplicates, c.dead_letters)]
    else:
        pool = service.subject[0]
        totals = [(t.messages, t.rows, t.duplicates, t.dead_letters) for t in pool.totals]
        note = f"; {pool.restarts} restart(s)" if pool.restarts else ""
        if pool.missing:
            note += (f"; totals of {len(pool.missing)} worker run(s) missing ({', '.join(pool.missing)}: killed "
                     f"before reporting; what they stored is in the database)")
    m, r, d, dl = (sum(col) for col in zip(*totals, strict=True)) if totals else (0, 0, 0, 0)
    click.echo(f"ingested {m} messages with {workers} worker(s): {r} rows, {d} duplicates, {dl} dead letters{note}")


def parse_time(value: str | None, param: str) -> datetime | None:
    """ISO 8601 (``2026-11-23``, ``2026-11-23T08:00:00+08:00``, ``...Z``); no zone means UTC."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=param) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@main.command()
@click.option("--site", required=True, help="Site id.")
@click.option("--device", help="Only this device.")
@click.option("--metric", help="Only this metric (catalogue name, e.g. co2).")
@click.option("--from", "start", help="From this time, inclusive (ISO 8601; no zone = UTC).")
@click.option("--to", "end", help="Up to this time, exclusive.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file; default: stdout.")
@click.pass_context
@friendly
def export(ctx: click.Context, site: str, device: str | None, metric: str | None, start: str | None,
           end: str | None, out: Path | None) -> None:
    """Stream readings as CSV (ts,site,device,room,metric,value,unit).  Example: campus-twin export --site hq --metric co2 --from 2026-11-01 --out co2.csv"""
    import sys

    from twin.metrics import BY_NAME
    from twin.storage.export import ExportFilter, export_csv
    from twin.storage.sites import site_exists

    if metric is not None and metric not in BY_NAME:
        raise click.BadParameter(f"unknown metric {metric!r} (one of {', '.join(BY_NAME)})", param_hint="--metric")
    f = ExportFilter(site, device, metric, parse_time(start, "--from"), parse_time(end, "--to"))
    with connection(migrated_url(settings_of(ctx))) as conn:
        if not site_exists(conn, site):
            raise click.ClickException(f"unknown site {site!r}")
        if out is None:
            export_csv(conn, sys.stdout.buffer, f)
            sys.stdout.buffer.flush()
            return
        from rich.console import Console
        from rich.progress import Progress

        console = Console(stderr=True)
        tmp = out.with_name(out.name + ".part")
        with tmp.open("wb") as fh, Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"exporting to {out.name}", total=None)
            rows = export_csv(conn, fh, f, progress=lambda n: bar.update(task, completed=n))
        tmp.replace(out)
    click.echo(f"wrote {rows} readings to {out}", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option("--secure-cookies", is_flag=True,
              help="Mark the login cookies Secure (behind an HTTPS proxy; automatic when served over HTTPS).")
@click.option("--trusted-proxies", type=click.IntRange(0, 10), default=0, show_default=True,
              envvar="CAMPUS_TWIN_TRUSTED_PROXIES",
              help="Reverse proxies in front of the dashboard: the client's address is taken from that many "
                   "X-Forwarded-For entries (0: the header is ignored).")
@_rules_option
@click.pass_context
@friendly
def dashboard(ctx: click.Context, host: str, port: int, duration: float | None, secure_cookies: bool,
              trusted_proxies: int, rules_file: Path | None) -> None:
    """Serve the Dash web app (a login is needed: campus-twin users add).  Example: campus-twin dashboard --port 8050"""
    from twin.monitoring.standards import load_config

    settings = settings_of(ctx)
    rules = load_config(rules_file)  # a bad file: one line, before anything starts
    url = migrated_url(settings)
    app = _dashboard_app(url, mqtt_url=settings.mqtt_url, secure_cookies=secure_cookies,
                         trusted_proxies=trusted_proxies, pending_dir=settings.data_dir / "bim-pending", rules=rules)
    stop = stop_on_signals()

    def serving() -> None:
        click.echo(f"dashboard on http://{host}:{port}/  (Ctrl-C to stop)")
        with connection(url) as conn:
            from twin.storage.users import list_users

            if not list_users(conn):
                click.echo("no users yet: add one with  campus-twin users add NAME --role admin", err=True)

    run_services(stop, [_dashboard_service(app, host, port)], duration, on_ready=serving)


# -- monitor / kpis / report -------------------------------------------------------
@main.command()
@click.option("--interval", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds between evaluation cycles.")
@_rules_option
@click.option("--webhook", envvar="CAMPUS_TWIN_ALARM_WEBHOOK", help="POST every alarm event as JSON to this URL.")
@click.option("--from", "start", help="Evaluate this past range once instead (ISO 8601; no zone = UTC) ...")
@click.option("--to", "end", help="... up to this time (default: now).")
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.pass_context
@friendly
def monitor(ctx: click.Context, interval: float, rules_file: Path | None, webhook: str | None, start: str | None,
            end: str | None, once: bool, duration: float | None) -> None:
    """Evaluate the standards and device health continuously; raise, clear and notify alarms; store daily KPIs.

    Alarm events go to campus/v1/{site}/alarms when a broker is configured, and to --webhook.

    Example: campus-twin monitor --interval 60 --rules rules.toml --webhook https://ops.example/alarms

    Example: campus-twin monitor --from 2026-11-01 --to 2026-11-08
    """
    from twin.monitoring.monitor import Monitor
    from twin.monitoring.notify import Notifier
    from twin.monitoring.standards import load_config
    from twin.storage.monitoring import sites

    config = load_config(rules_file)
    settings = settings_of(ctx)
    url = migrated_url(settings)
    notifier = Notifier(settings.mqtt_url, webhook) if settings.mqtt_url or webhook else None
    mon = Monitor(url, config=config, notifier=notifier)
    if start is not None:
        begin, until = parse_time(start, "--from"), parse_time(end, "--to") or datetime.now(UTC)
        assert begin is not None
        if begin >= until:
            raise click.BadParameter("must be before --to", param_hint="--from")
        with connection(url) as conn:
            for site_id, _zone in sites(conn):
                c = mon.evaluate(conn, site_id, begin, until)
                click.echo(f"{site_id}: raised {c.raised}, cleared {c.cleared}")
            if notifier is not None:
                notifier.send_pending(conn)
        if notifier is not None:
            notifier.close()
        return
    if once:  # the cycle records events; they are delivered (or given up) before the exit, from the outbox
        mon.notifier = None
        c = mon.run_once()
        if notifier is not None:
            with connection(url) as conn:
                notifier.send_pending(conn)
            notifier.close()
        click.echo(f"raised {c.raised}, cleared {c.cleared}, updated {c.updated}")
        return
    from twin.orchestrate import monitor_service

    stop = stop_on_signals()
    run_services(stop, [monitor_service(mon, interval)], duration,
                 on_ready=lambda: click.echo(f"monitoring every {interval:g} s (Ctrl-C to stop)"))
    t = mon.totals
    click.echo(f"stopped: raised {t.raised}, cleared {t.cleared} alarms")


@main.command()
@click.option("--site", help="Only this site (default: every site and the network).")
@click.option("--day", help="School-local day, YYYY-MM-DD (default: today).")
@click.option("--compute", is_flag=True, help="Compute the day now (else: show what is stored, computing if absent).")
@_rules_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
@friendly
def kpis(ctx: click.Context, site: str | None, day: str | None, compute: bool, rules_file: Path | None,
         as_json: bool) -> None:
    """Daily KPIs per school and for the network against the 100% targets.  Example: campus-twin kpis --day 2026-11-16"""
    from datetime import date

    from twin.monitoring.kpi_job import compute_day
    from twin.monitoring.report import KPI_LABELS, percent
    from twin.monitoring.standards import load_config
    from twin.storage import kpis as kpi_store
    from twin.storage.monitoring import rule_overrides
    from twin.storage.sites import site_exists
    from twin.timetable import SCHOOL_TZ

    config = load_config(rules_file)
    try:
        when = date.fromisoformat(day) if day else datetime.now(UTC).astimezone(SCHOOL_TZ).date()
    except ValueError:
        raise click.BadParameter(f"not a date: {day!r} (use YYYY-MM-DD)", param_hint="--day") from None
    with connection(migrated_url(settings_of(ctx))) as conn:
        if site is not None and not site_exists(conn, site):
            raise click.ClickException(f"unknown site {site!r}")
        if compute or not kpi_store.stored_days(conn, kpi_store.NETWORK, when, when):
            compute_day(conn, when, rules_for=lambda s: config.rules_for(s, rule_overrides(conn, s) if s else None))
        rows = conn.execute("SELECT scope, kpi, numerator, denominator, value FROM kpi_daily WHERE day = %s "
                            "AND (%s::text IS NULL OR scope = %s) ORDER BY scope = '*' DESC, scope, kpi",
                            (when, site, site)).fetchall()
    table: dict[str, dict[str, Any]] = {}
    for scope, kpi, num, den, value in rows:
        table.setdefault("network" if scope == kpi_store.NETWORK else scope, {})[kpi] = {
            "value": value, "numerator": num, "denominator": den}
    if as_json:
        print_json({"day": when.isoformat(), "target": 1.0, "scopes": table})
        return
    click.echo(f"KPIs of {when} (target 100%): coverage of IoT, smart lighting, panels; lighting compliance; "
               "data completeness")
    widths = (12, 12, 12, 12, 14)
    click.echo(f"{'scope':<16}" + "".join(f"{h:>{w}}" for h, w in zip(
        ("IoT", "lighting", "panels", "compliance", "completeness"), widths, strict=True)))
    for scope, values in table.items():
        click.echo(f"{scope:<16}" + "".join(f"{percent(values.get(k, {}).get('value')):>{w}}"
                                            for k, w in zip(KPI_LABELS, widths, strict=True)))


@main.command()
@click.option("--site", required=True, help="Site id.")
@click.option("--month", required=True, help="YYYY-MM.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HTML file to write.")
@_rules_option
@click.pass_context
@friendly
def report(ctx: click.Context, site: str, month: str, out: Path, rules_file: Path | None) -> None:
    """Write a school's monthly report (self-contained HTML; print it from a browser for a PDF).

    Example: campus-twin report --site hq --month 2026-11 --out hq-2026-11.html
    """
    from twin.monitoring.report import month_report, parse_month
    from twin.monitoring.standards import load_config

    year, mon = parse_month(month)
    config = load_config(rules_file)
    with connection(migrated_url(settings_of(ctx))) as conn:
        html = month_report(conn, site, year, mon, config=config)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(html, "utf-8")
    tmp.replace(out)
    click.echo(f"wrote {out} ({len(html) // 1024} KiB)")


# -- demo ----------------------------------------------------------------------
@main.command()
@click.option("--schools", type=click.IntRange(0, 50), default=2, show_default=True,
              help="Member schools besides the headquarters.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option("--interval", type=click.FloatRange(0.2, 600), default=5.0, show_default=True,
              help="Seconds between messages of one simulated device.")
@click.option("--duration", type=click.FloatRange(0), help="Exit 0 after this many seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
@friendly
def demo(ctx: click.Context, schools: int, host: str, port: int, interval: float, duration: float | None,
         seed: int) -> None:
    """Run the whole twin on embedded defaults: database, broker, simulators, ingest, monitor, dashboard.

    Uses --database-url / --mqtt-url when given. Data is kept in the data directory, so a
    second run continues where the first stopped.  Example: campus-twin demo --duration 90
    """
    from twin.orchestrate import DemoParts, run_demo

    stop = stop_on_signals()
    parts = DemoParts(
        network=lambda url, folder, members, seed: ensure_network(url, folder, members=members, seed=seed),
        # one worker on a plain persistent subscription: kept by Mosquitto 2 across a restart (docs/mqtt.md)
        ingest=lambda url, mqtt_url: _ingest_service(url, mqtt_url, client_id="campus-demo-ingest", workers=1),
        simulator=lambda url, mqtt_url, every, seed: _simulator_service(
            url, mqtt_url, interval_s=every, seed=seed, client_id="campus-demo-sim"),
        dashboard=lambda url, mqtt_url, host, port, pending: _dashboard_service(
            _dashboard_app(url, mqtt_url=mqtt_url, pending_dir=pending), host, port),
    )
    run_demo(settings_of(ctx), parts, stop, click.echo, schools=schools, host=host, port=port, interval=interval,
             duration=duration, seed=seed)
    click.echo("stopped; data kept for the next run")


def ensure_network(url: str, folder: Path, *, members: int, seed: int) -> list[dict[str, Any]]:
    """Generate the demo network (1 headquarters + ``members`` schools) and load the sites not yet loaded."""
    from models_bim.generate import generate_network
    from twin.storage.sites import list_sites

    with connection(url) as conn:
        present = {s.site_id for s in list_sites(conn)}
    folder.mkdir(parents=True, exist_ok=True)
    loaded = []
    for school in generate_network(folder, members=members, seed=seed):
        if school.site_id not in present:
            loaded.append(load_bim(url, school.path, school.site_id, name=school.name, role=school.role))
    return loaded


# -- services made of the other packages (the orchestration is twin/orchestrate.py) ----------
def _ingest_service(url: str, mqtt_url: str, *, client_id: str, workers: int, share_group: str = "",
                    stats_every: float = 30.0) -> ThreadService:
    """One ingest worker in a thread (ready once its subscriptions are acknowledged), or a pool of
    ``workers`` processes (ready once they are started; ``subject`` then holds the pool's result)."""
    if workers == 1:
        from ingest.worker import IngestWorker

        worker = IngestWorker(url, mqtt_url, client_id=client_id, share_group=share_group, stats_every_s=stats_every)
        return ThreadService("ingest", worker.run, ready=worker.connected, subject=worker)
    import logging

    from ingest.pool import WorkerConfig, run_workers

    configs = [WorkerConfig(url, mqtt_url, f"{client_id}-{i}", share_group, stats_every, logging.getLogger().level)
               for i in range(1, workers + 1)]
    ready, results = threading.Event(), []  # results: the pool's PoolResult, once it stopped
    return ThreadService("ingest-pool", lambda stop: results.append(run_workers(configs, stop, ready)), ready=ready,
                         subject=results)


def _simulator_service(url: str, mqtt_url: str, **options: Any) -> ThreadService:
    """The simulator fleet in a thread, ready once its connections are up and it publishes."""
    from simulators.fleet import FleetRunner

    runner = FleetRunner(url, mqtt_url, **options)
    return ThreadService("simulator", runner.run, ready=runner.started, subject=runner)


def _dashboard_app(url: str, **options: Any) -> Any:
    from dashboard.app import create_app

    return create_app(url, bim_loader=bim_loader_for(url), **options)


def _dashboard_service(app: Any, host: str, port: int) -> ThreadService:
    """The dashboard's server in a thread, ready when its port answers; the app is closed after it stopped."""
    from dashboard.app import close_app
    from dashboard.serve import bind, serve_until
    from twin.services import port_answers

    server = bind(app, host, port)
    return ThreadService("dashboard", lambda stop: serve_until(server, stop), ready=port_answers(host, port),
                         close=lambda: close_app(app))
