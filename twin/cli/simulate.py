"""``campus-twin simulate``: publish the fleet's telemetry to the broker, or backfill history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from twin.cli.base import friendly, main, require_mqtt, settings_of, stop_on_signals
from twin.cli.parts import simulator_service
from twin.orchestrate import migrated_url, run_services


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
    service = simulator_service(migrated_url(settings), mqtt_url, interval_s=interval, seed=seed, speed=speed,
                                site_id=site, start=start, faults=faults, fault_log=fault_log,
                                connections=connections, client_id=client_id)
    run_services(stop_on_signals(), [service], duration)
    runner = service.subject
    injected = len(runner.fault_log.events)
    click.echo(f"published {runner.published} messages from {len(runner.fleet)} devices"
               + (f"; injected {injected} faults" if faults.active else ""))


def backfill_with_progress(url: str, span: Any, step: Any, seed: int, site: str | None = None,
                           **options: Any) -> Any:
    """:func:`simulators.backfill.backfill` with a progress bar on the terminal (stderr); its result."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from simulators.backfill import backfill

    console = Console(stderr=True)
    with Progress(TextColumn("backfill"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("backfill", total=None)
        return backfill(url, span, step=step, seed=seed, site_id=site,
                        progress=lambda done, total: bar.update(task, completed=done, total=total), **options)


def _backfill(url: str, span: Any, step: Any, seed: int, site: str | None) -> None:
    result = backfill_with_progress(url, span, step, seed, site)
    click.echo(f"backfilled {result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC for {result.devices} "
               f"devices: {result.samples} samples, {result.rows} readings in {result.seconds:.1f} s")

