"""``campus-twin devices``: list the twin's devices with their hardware ids; bind and unbind hardware ids;
issue MQTT credentials and the broker's files."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from twin.cli.base import friendly, main, operator_name, print_json, settings_of
from twin.database import connection
from twin.messaging.broker import MAX_QUEUED_MESSAGES
from twin.orchestrate import migrated_url

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from twin.storage.identities import Binding, IdentityRow

@main.group()
def devices() -> None:
    """Devices of the twin."""


@devices.command("list")
@click.option("--site", help="Only this site.")
@click.option("--identities", "by_identity", is_flag=True,
              help="One line per hardware id instead: device, id, from the BIM or bound, when and by whom.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@friendly
def devices_list(ctx: click.Context, site: str | None, by_identity: bool, as_json: bool) -> None:
    """Devices with kind, site, room, last seen and hardware ids.  Example: campus-twin devices list --site hq"""
    from twin.localtime import zone
    from twin.storage.devices import list_devices
    from twin.storage.identities import identities
    from twin.storage.sites import time_zones

    with connection(migrated_url(settings_of(ctx))) as conn:
        rows = [] if by_identity else list_devices(conn, site)
        bound = identities(conn, site_id=site)
        zones = {s: zone(z) for s, z in time_zones(conn).items() if site is None or s == site}
    if by_identity:
        _print_identities(bound, zones, as_json)
        return
    hardware = _hardware_ids(bound)
    if as_json:
        print_json([{**{k: getattr(r, k) for k in ("site_id", "device_id", "kind", "room", "mapping", "state",
                                                    "last_seen")},
                     "identities": hardware.get((r.site_id, r.device_id), [])} for r in rows])
        return
    from rich.console import Console
    from rich.table import Column, Table

    # Hardware ids fold onto further lines in a narrow terminal: never cut short with an ellipsis.
    from twin.localtime import fmt_time

    table = Table("site", "device", "kind", "room", "state", "last seen (local)",
                  Column("hardware ids", overflow="fold"), box=None)
    for r in rows:
        seen = fmt_time(r.last_seen, zones[r.site_id]) if r.last_seen else "never"
        table.add_row(r.site_id, r.device_id, r.kind, r.room or "-", r.state, seen,
                      ", ".join(hardware.get((r.site_id, r.device_id), [])) or "-")
    Console().print(table)
    click.echo(f"{len(rows)} devices")
    _echo_zones(zones, {r.site_id for r in rows})


def _echo_zones(zones: dict[str, ZoneInfo], shown: set[str]) -> None:
    """Which zone each site's times are in (people read local times; JSON stays UTC)."""
    from twin.localtime import zone_label

    if shown:
        click.echo("local times: " + ", ".join(f"{s} {zone_label(zones[s])}" for s in sorted(shown)))


def _print_identities(rows: list[IdentityRow], zones: dict[str, ZoneInfo], as_json: bool) -> None:
    from twin.identities import Identity
    from twin.localtime import fmt_time

    if as_json:
        print_json([{"site_id": r.site_id, "device_id": r.device_id, "kind": r.kind, "hardware_id": r.hardware_id,
                     "source": r.source, "bound_at": r.bound_at, "bound_by": r.bound_by} for r in rows])
        return
    from rich.console import Console
    from rich.table import Column, Table

    table = Table("site", "device", Column("hardware id", overflow="fold"), "from", "bound (local)", "by", box=None)
    for r in rows:
        table.add_row(r.site_id, r.device_id, str(Identity(r.kind, r.hardware_id)),
                      "BIM" if r.source == "ifc" else "bound", fmt_time(r.bound_at, zones[r.site_id], seconds=False),
                      r.bound_by or "-")
    Console().print(table)
    click.echo(f"{len(rows)} hardware ids")
    _echo_zones(zones, {r.site_id for r in rows})


def _hardware_ids(rows: list[IdentityRow]) -> dict[tuple[str, str], list[str]]:
    """``{(site_id, device_id): ["ieee:00158d0001a2b3c4", ...]}`` in the order of :data:`twin.identities.KINDS`."""
    from twin.identities import KINDS, Identity

    out: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    for r in rows:
        out.setdefault((r.site_id, r.device_id), []).append(
            (KINDS.index(r.kind), r.hardware_id, str(Identity(r.kind, r.hardware_id))))
    return {key: [text for *_, text in sorted(found)] for key, found in out.items()}


#: The columns a binding file must have (others are ignored).
BIND_COLUMNS = ("device_id", "kind_of_id", "hardware_id")
_LINE = re.compile(r"^line (\d+): ")


@dataclass(frozen=True, slots=True)
class BindFile:
    """The bindings of a CSV file, the file line of each, and its bad lines (``"line 4: ..."``)."""

    bindings: tuple[Binding, ...]
    lines: tuple[int, ...]
    problems: tuple[str, ...]


def read_bind_file(path: Path) -> BindFile:
    """Read ``device_id,kind_of_id,hardware_id`` rows (a header naming these columns first, in any order, other
    columns ignored; blank lines skipped; UTF-8 with or without a byte order mark), each id in its normal form."""
    from twin.identities import IdentityError, normalize
    from twin.storage.identities import Binding

    bindings: list[Binding] = []
    lines: list[int] = []
    problems: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        names = [h.strip().lower() for h in header or ()]
        if not set(BIND_COLUMNS) <= set(names):
            found = ",".join(header or ()) or "an empty file"
            raise click.ClickException(f"{path}: the first line must be the header {','.join(BIND_COLUMNS)} "
                                       f"(found {found[:80]!r})")
        at = [names.index(c) for c in BIND_COLUMNS]
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue
            if len(row) < len(names):
                problems.append(f"line {line}: {len(row)} field{'s' if len(row) != 1 else ''} where the header has "
                                f"{len(names)} fields")
                continue
            device_id, kind, raw = (row[i].strip() for i in at)
            if not device_id:
                problems.append(f"line {line}: no device_id")
                continue
            try:
                kind = kind.lower()
                bindings.append(Binding(device_id, kind, normalize(kind, raw)))
                lines.append(line)
            except IdentityError as exc:
                problems.append(f"line {line}: {exc}")
    return BindFile(tuple(bindings), tuple(lines), tuple(problems))


@devices.command("bind")
@click.option("--site", "site_id", required=True, help="The site whose devices the file names.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@friendly
def devices_bind(ctx: click.Context, site_id: str, file: Path) -> None:
    """Bind hardware ids to devices from a CSV file (device_id,kind_of_id,hardware_id), all or nothing.

    Kinds: ieee (Zigbee), deveui (LoRaWAN), mac, urn (RFC 9039 device URN), serial, tasmota (device topic).
    Ids are stored in their normal form (0x00158D0001A2B3C4 -> 00158d0001a2b3c4). A bad line, an id bound to
    another device or a device not of the site binds nothing; each problem is named by its line.

    Example: campus-twin devices bind --site hq hardware.csv
    """
    from twin.storage import audit
    from twin.storage.identities import BindError, bind
    from twin.storage.sites import site_exists

    read = read_bind_file(file)
    by = operator_name()
    with connection(migrated_url(settings_of(ctx))) as conn:
        if not site_exists(conn, site_id):
            raise click.ClickException(f"no site {site_id!r} (campus-twin sites list)")
        detail = {"file": file.name, "lines": len(read.bindings) + len(read.problems)}
        problems, what, new = read.problems, "bad lines", 0
        if not problems:
            try:
                new = bind(conn, site_id, read.bindings, by=by)
            except BindError as exc:
                problems, what = tuple(_file_line(p, read.lines) for p in exc.problems), "problems"
        if problems:
            audit.record(conn, "devices_bind", "failed", username=by, target=site_id,
                         detail={**detail, "problems": len(problems)})
        else:
            audit.record(conn, "devices_bind", "ok", username=by, target=site_id, detail={**detail, "bound": new})
    if problems:
        for p in problems:
            click.echo(f"  {p}", err=True)
        raise click.ClickException(f"nothing bound: {len(problems)} {what} in {file}")
    click.echo(f"{site_id}: bound {new} hardware ids ({len(read.bindings)} lines, "
               f"{len(read.bindings) - new} already bound)")


def _file_line(problem: str, lines: tuple[int, ...]) -> str:
    """A problem of :func:`twin.storage.identities.bind` (``"line 3: ..."``, its 3rd binding) with the file's line."""
    found = _LINE.match(problem)
    if found is None or not 0 < int(found.group(1)) <= len(lines):
        return problem
    return f"line {lines[int(found.group(1)) - 1]}: {problem[found.end():]}"


@devices.command("unbind")
@click.option("--site", "site_id", required=True, help="The site of the device the id is bound to.")
@click.argument("identity", metavar="KIND:ID")
@click.pass_context
@friendly
def devices_unbind(ctx: click.Context, site_id: str, identity: str) -> None:
    """Forget one hardware id of a device (KIND:ID, or a bare urn:dev:... URN).

    Example: campus-twin devices unbind --site hq ieee:00158d0001a2b3c4
    """
    from twin.identities import Identity, IdentityError, parse_identity
    from twin.storage import audit
    from twin.storage.identities import identities, unbind

    try:
        kind, hardware_id = parse_identity(identity)
    except IdentityError as exc:
        raise click.BadParameter(str(exc), param_hint="KIND:ID") from exc
    shown = str(Identity(kind, hardware_id))
    with connection(migrated_url(settings_of(ctx))) as conn:
        owner = next((r for r in identities(conn) if (r.kind, r.hardware_id) == (kind, hardware_id)), None)
        if owner is None:
            raise click.ClickException(f"{shown} is not bound to any device")
        if owner.site_id != site_id:
            raise click.ClickException(f"{shown} is bound to {owner.device_id!r} at site {owner.site_id!r}, "
                                       f"not at {site_id!r}")
        unbind(conn, kind, hardware_id)
        audit.record(conn, "devices_unbind", "ok", username=operator_name(), target=site_id,
                     detail={"identity": shown, "device": owner.device_id, "source": owner.source})
    click.echo(f"{site_id}: unbound {shown} from {owner.device_id}")
    if owner.source == "ifc":
        click.echo("  it came from the BIM: the next revision that carries it binds it again", err=True)


def _file_mode(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal mode such as 0600 or 0640") from None
    if not 0 <= mode <= 0o777 or mode & 0o007:
        raise click.BadParameter(f"{value!r}: the files hold password hashes; no access for others (0600, 0640)")
    return mode


@devices.command("credentials")
@click.option("--site", "site_id", required=True,
              help="Issue passwords for this site's devices, gateway and adapters.")
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

    Every device of the site, its gateway and the accounts of its enabled adapters (zigbee2mqtt,
    ChirpStack, a bridge from The Things Stack, each bound Tasmota topic) get a new password (stored
    hashed); ``ingest`` and ``dashboard`` get one the first time (or with --rotate-services).
    mosquitto.conf (listener, persistence, queue limits, the dynamic security plugin),
    dynamic-security.json, passwd and acl cover every account of the twin; credentials.csv
    (username,password,role) holds this run's passwords, to hand to installers. See docs/security.md.

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
        click.echo(f"  skipped {name!r}: {reason}", err=True)

