"""``campus-twin devices``: list the twin's devices; issue their MQTT credentials and the broker's files."""

from __future__ import annotations

from pathlib import Path

import click

from twin.cli.base import friendly, main, print_json, settings_of
from twin.database import connection
from twin.messaging.broker import MAX_QUEUED_MESSAGES
from twin.orchestrate import migrated_url


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

