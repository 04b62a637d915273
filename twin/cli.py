"""The ``campus-twin`` command: a thin adapter over the packages (the composition root).

Only this module imports ``ingest``, ``models_bim``, ``simulators`` and ``dashboard``,
lazily, inside the subcommand that needs them. Library errors become one-line
messages and exit status 1; wrong arguments exit 2 (click's convention).
"""

from __future__ import annotations

import functools
import hashlib
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from twin.broker import BrokerError
from twin.database import DatabaseUnavailable, connection, database_url
from twin.embedded import EmbeddedDatabaseError
from twin.logs import setup_logging
from twin.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    from dashboard.serve import PortInUse
    from models_bim.errors import IfcReadError

    return (DatabaseUnavailable, EmbeddedDatabaseError, BrokerError, IfcReadError, PortInUse)


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


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings)  # type: ignore[return-value]


def migrated_url(settings: Settings) -> str:
    """The database URL with the schema brought up to date."""
    from twin.storage.schema import migrate

    url = database_url(settings)
    with connection(url) as conn:
        migrate(conn)
    return url


def require_mqtt(settings: Settings) -> str:
    if not settings.mqtt_url:
        raise click.UsageError("no MQTT broker: pass --mqtt-url or set CAMPUS_TWIN_MQTT_URL "
                               "(campus-twin demo starts one for you)")
    return settings.mqtt_url


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (install first, so a signal at any time stops cleanly)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def run_until_stopped(stop: threading.Event, duration: float | None) -> None:
    """Block until ``stop`` is set (by a signal) or ``duration`` seconds pass; then set it."""
    stop.wait(duration)
    stop.set()


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
    click.echo(f"schema: version {info['schema_version']} of {info['schema_latest']}")
    for table, count in info["tables"].items():
        click.echo(f"  {table:<14} {'-' if count is None else count:>10}")


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
    from twin.storage.model import list_devices

    with connection(migrated_url(settings_of(ctx))) as conn:
        rows = list_devices(conn, site)
    if as_json:
        print_json([{k: r[k] for k in ("site_id", "device_id", "kind", "room", "mapping", "state", "last_seen")}
                    for r in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("site", "device", "kind", "room", "state", "last seen", box=None)
    for r in rows:
        seen = r["last_seen"].strftime("%Y-%m-%d %H:%M:%S") if r["last_seen"] else "never"
        table.add_row(r["site_id"], r["device_id"], r["kind"], r["room"] or "-", r["state"], seen)
    Console().print(table)
    click.echo(f"{len(rows)} devices")


# -- bim -----------------------------------------------------------------------
@main.group()
def bim() -> None:
    """Generate and load BIM (IFC) models."""


@bim.command("generate")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site-id", default="school", show_default=True)
@click.option("--name", default="示范学校 Demo School", show_default=True)
@click.option("--storeys", type=click.IntRange(1, 30), default=2, show_default=True)
@click.option("--classrooms", type=click.IntRange(1, 100), default=6, show_default=True, help="Per storey.")
@click.option("--seed", type=int, default=0, show_default=True)
@friendly
def bim_generate(out: Path, site_id: str, name: str, storeys: int, classrooms: int, seed: int) -> None:
    """Write a synthetic IFC4 school.  Example: campus-twin bim generate school.ifc --storeys 3"""
    from models_bim.generate import generate_school

    generate_school(out, site_id=site_id, name=name, storeys=storeys, classrooms_per_storey=classrooms, seed=seed)
    click.echo(f"wrote {out}")


def load_bim(url: str, path: Path, site_id: str, *, name: str | None = None, role: str = "member",
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Read an IFC file and save it as ``site_id`` in one transaction; return the summary."""
    from models_bim.load import read_model
    from twin.storage.model import record_import, save_model

    model = read_model(path, site_id=site_id, site_name=name, role=role, progress=progress)
    kinds: dict[str, int] = {}
    mapping: dict[str, int] = {}
    for d in model.devices:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
        mapping[d.mapping] = mapping.get(d.mapping, 0) + 1
    summary = {
        "site": site_id, "file": path.name, "schema": model.schema, "buildings": len(model.buildings),
        "storeys": len(model.storeys), "rooms": len(model.rooms),
        "rooms_without_geometry": sum(1 for r in model.rooms if r.footprint is None),
        "devices": len(model.devices), "devices_by_kind": kinds, "devices_by_mapping": mapping,
        "unmapped_devices": [d.device_id for d in model.devices if d.mapping == "unmapped"],
        "warnings": list(model.warnings),
    }
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with connection(url) as conn:
        result = save_model(conn, model)
        summary["removed_rooms"], summary["removed_devices"] = result.removed_rooms, result.removed_devices
        summary["import_id"] = record_import(conn, site_id, path.name, sha, model.schema, summary)
    return summary


@bim.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_id", required=True, help="Site id to load the model as (e.g. hq, m01).")
@click.option("--name", help="Site name; default: the IfcSite name.")
@click.option("--role", type=click.Choice(["headquarters", "member"]), default="member", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@friendly
def bim_load(ctx: click.Context, file: Path, site_id: str, name: str | None, role: str, as_json: bool) -> None:
    """Load an IFC file into the twin.  Example: campus-twin bim load school.ifc --site hq"""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", site_id):
        raise click.BadParameter("letters, digits, '_', '.', '-' only (it goes into MQTT topics)",
                                 param_hint="--site")
    url = migrated_url(settings_of(ctx))
    if as_json:
        print_json(load_bim(url, file, site_id, name=name, role=role))
        return
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"loading {file.name}", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{file.name}: {stage}", completed=done, total=total or None)

        summary = load_bim(url, file, site_id, name=name, role=role, progress=progress)
    click.echo(f"loaded {file.name} as site {site_id!r} ({summary['schema']}): {summary['buildings']} buildings, "
               f"{summary['storeys']} storeys, {summary['rooms']} rooms "
               f"({summary['rooms_without_geometry']} without geometry), {summary['devices']} devices")
    if summary["devices_by_kind"]:
        click.echo("  devices by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["devices_by_kind"].items())))
        click.echo("  mapped by: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["devices_by_mapping"].items())))
    if summary["unmapped_devices"]:
        click.echo(f"  unmapped: {', '.join(summary['unmapped_devices'][:20])}"
                   + (" ..." if len(summary["unmapped_devices"]) > 20 else ""))
    for warning in summary["warnings"]:
        click.echo(f"  warning: {warning}")


# -- simulate / ingest / dashboard ------------------------------------------------
@main.command()
@click.option("--site", help="Only the devices of this site.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=5.0, show_default=True,
              help="Seconds between messages of one device.")
@click.option("--speed", type=click.FloatRange(0.1, 10000), default=1.0, show_default=True,
              help="Simulated seconds per real second.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.pass_context
@friendly
def simulate(ctx: click.Context, site: str | None, interval: float, speed: float, seed: int,
             duration: float | None) -> None:
    """Publish telemetry and status for every device of the twin.  Example: campus-twin simulate --interval 2"""
    from simulators.fleet import FleetRunner

    settings = settings_of(ctx)
    runner = FleetRunner(migrated_url(settings), require_mqtt(settings), interval_s=interval, seed=seed,
                         speed=speed, site_id=site)
    stop = stop_on_signals()
    thread = threading.Thread(target=runner.run, args=(stop,), name="simulator")
    thread.start()
    run_until_stopped(stop, duration)
    thread.join()
    click.echo(f"published {runner.published} messages from {len(runner.fleet)} devices")


@main.command()
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option("--client-id", default="campus-ingest-1", show_default=True,
              help="Stable id: the broker keeps this worker's session across restarts.")
@click.pass_context
@friendly
def ingest(ctx: click.Context, duration: float | None, client_id: str) -> None:
    """Subscribe to telemetry and store it.  Example: campus-twin ingest --mqtt-url mqtt://127.0.0.1:1883"""
    from ingest.worker import IngestWorker

    settings = settings_of(ctx)
    worker = IngestWorker(migrated_url(settings), require_mqtt(settings), client_id=client_id)
    stop = stop_on_signals()
    thread = threading.Thread(target=worker.run, args=(stop,), name="ingest")
    thread.start()
    run_until_stopped(stop, duration)
    thread.join()
    c = worker.counters
    click.echo(f"ingested {c.messages} messages: {c.rows} rows, {c.duplicates} duplicates, "
               f"{c.dead_letters} dead letters")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.pass_context
@friendly
def dashboard(ctx: click.Context, host: str, port: int, duration: float | None) -> None:
    """Serve the Dash web app.  Example: campus-twin dashboard --port 8050"""
    from dashboard.app import close_app, create_app
    from dashboard.serve import bind, serve_until

    app = create_app(migrated_url(settings_of(ctx)))
    server = bind(app, host, port)
    stop = stop_on_signals()
    thread = threading.Thread(target=serve_until, args=(server, stop), name="dashboard")
    thread.start()
    click.echo(f"dashboard on http://{host}:{port}/  (Ctrl-C to stop)")
    run_until_stopped(stop, duration)
    thread.join()
    close_app(app)


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
    """Run the whole twin on embedded defaults: database, broker, simulators, ingest, dashboard.

    Uses --database-url / --mqtt-url when given. Data is kept in the data directory, so a
    second run continues where the first stopped.  Example: campus-twin demo --duration 90
    """
    stop = stop_on_signals()
    settings = settings_of(ctx)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"database: {settings.database_url or f'embedded PostgreSQL in {settings.pgdata}'}")
    url = migrated_url(settings)
    broker = None
    mqtt_url = settings.mqtt_url
    if not mqtt_url:
        from twin.broker import start_local_broker

        broker = start_local_broker(settings.data_dir / "mosquitto")
        mqtt_url = broker.url
    click.echo(f"broker:   {mqtt_url}" + (f" ({broker.kind}, started for this demo)" if broker else ""))
    try:
        for s in ensure_network(url, settings.data_dir / "ifc", members=schools, seed=seed):
            click.echo(f"loaded {s['site']}: {s['rooms']} rooms, {s['devices']} devices")
        if not stop.is_set():
            _run_demo(stop, url, mqtt_url, host, port, interval, duration, seed)
    finally:
        if broker is not None:
            broker.stop()
    click.echo("stopped; data kept for the next run")


def ensure_network(url: str, folder: Path, *, members: int, seed: int) -> list[dict[str, Any]]:
    """Generate the demo network (1 headquarters + ``members`` schools) and load the sites not yet loaded."""
    from models_bim.generate import generate_network
    from twin.storage.model import list_sites

    with connection(url) as conn:
        present = {s["site_id"] for s in list_sites(conn)}
    folder.mkdir(parents=True, exist_ok=True)
    loaded = []
    for school in generate_network(folder, members=members, seed=seed):
        if school.site_id not in present:
            loaded.append(load_bim(url, school.path, school.site_id, name=school.name, role=school.role))
    return loaded


def _run_demo(stop: threading.Event, url: str, mqtt_url: str, host: str, port: int, interval: float, duration: float | None,
              seed: int) -> None:
    from dashboard.app import close_app, create_app
    from dashboard.serve import bind, serve_until
    from ingest.worker import IngestWorker
    from simulators.fleet import FleetRunner

    worker = IngestWorker(url, mqtt_url, client_id="campus-demo-ingest")
    runner = FleetRunner(url, mqtt_url, interval_s=interval, seed=seed, client_id="campus-demo-sim")
    app = create_app(url)
    server = bind(app, host, port)
    threads = [
        threading.Thread(target=worker.run, args=(stop,), name="ingest"),
        threading.Thread(target=runner.run, args=(stop,), name="simulator"),
        threading.Thread(target=serve_until, args=(server, stop), name="dashboard"),
    ]
    for t in threads:
        t.start()
    click.echo(f"dashboard: http://{host}:{port}/  (Ctrl-C to stop)")
    run_until_stopped(stop, duration)
    for t in threads:
        t.join(15)
    close_app(app)
    c = worker.counters
    click.echo(f"published {runner.published} messages; stored {c.rows} readings, {c.dead_letters} dead letters")


if __name__ == "__main__":  # pragma: no cover
    main()
