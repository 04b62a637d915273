"""What comes out of the twin: readings as CSV (``export``), daily KPIs (``kpis``), the monthly
report (``report``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from twin.cli.base import friendly, main, parse_time, print_json, rules_option, settings_of
from twin.database import connection
from twin.orchestrate import migrated_url


@main.command()
@click.argument("fmt", metavar="[csv|brick]", type=click.Choice(["csv", "brick"]), default="csv", required=False)
@click.option("--site", help="Site id (required, except for brick --network).")
@click.option("--network", is_flag=True, help="brick: every site in one graph.")
@click.option("--device", help="csv: only this device.")
@click.option("--metric", help="csv: only this metric (catalogue name, e.g. co2).")
@click.option("--from", "start", help="csv: from this time, inclusive (ISO 8601; no zone = UTC).")
@click.option("--to", "end", help="csv: up to this time, exclusive.")
@click.option("--validate", "check", is_flag=True, help="brick: check the graph against Brick's SHACL shapes.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="File to write; default: stdout.")
@click.pass_context
@friendly
def export(ctx: click.Context, fmt: str, site: str | None, network: bool, device: str | None, metric: str | None,
           start: str | None, end: str | None, check: bool, out: Path | None) -> None:
    """Stream readings as CSV (ts,site,device,room,metric,value,unit), or write the twin as Brick (Turtle).

    Example: campus-twin export --site hq --metric co2 --from 2026-11-01 --out co2.csv

    Example: campus-twin export brick --site hq --validate --out hq.ttl
    """
    if fmt == "brick":
        if device or metric or start or end:
            raise click.UsageError("--device, --metric, --from and --to are for csv")
        _export_brick(ctx, site, network, check, out)
        return
    if site is None or network or check:
        raise click.UsageError("csv needs --site (--network and --validate are for brick)")
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


def _export_brick(ctx: click.Context, site: str | None, network: bool, check: bool, out: Path | None) -> None:
    """``export brick``: the twin of one site, or of every site, as Brick Turtle; counts on stderr."""
    import sys

    from rich.console import Console
    from rich.progress import Progress

    from twin.brick import brick_graph, database_name, stored_sites, validate
    from twin.storage.sites import list_sites, site_exists

    if (site is None) == (not network):
        raise click.UsageError("brick needs --site ID or --network")
    url = migrated_url(settings_of(ctx))
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        with connection(url) as conn:
            if site is not None and not site_exists(conn, site):
                raise click.ClickException(f"unknown site {site!r}")
            ids = [site] if site is not None else [s.site_id for s in list_sites(conn)]
            task = bar.add_task("reading the twin", total=len(ids))
            sites = []
            for site_id in ids:
                sites.extend(stored_sites(conn, [site_id]))
                bar.advance(task)
        bar.update(task, description="building the graph", total=None)
        graph, counts = brick_graph(sites, database=database_name(url))
        if check:  # about 1 s per 100 devices
            bar.update(task, description=f"validating {len(graph)} triples against Brick's shapes")
            result = validate(graph)
            if not result.conforms:
                click.echo(result.report, err=True)
                raise click.ClickException("the graph does not conform to Brick's SHACL shapes (report above)")
        bar.update(task, description="writing Turtle")
        data = graph.serialize(format="turtle", encoding="utf-8")
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        tmp = out.with_name(out.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(out)
    click.echo(f"{'wrote ' + str(out) if out else 'brick'}: {counts.sites} site(s), {counts.buildings} buildings, "
               f"{counts.storeys} storeys, {counts.rooms} rooms, {counts.devices} devices, {counts.points} points, "
               f"{len(graph)} triples" + ("; conforms to Brick's shapes" if check else ""), err=True)


@main.command()
@click.option("--site", help="Only this site (default: every site and the network).")
@click.option("--day", help="School-local day, YYYY-MM-DD (default: today).")
@click.option("--compute", is_flag=True, help="Compute the day now (else: show what is stored, computing if absent).")
@rules_option
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
    from twin.storage.timetables import stored_timetable
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
            compute_day(conn, when, timetable=stored_timetable(conn),  # the demo's when it is stored
                        rules_for=lambda s: config.rules_for(s, rule_overrides(conn, s) if s else None))
        rows = kpi_store.day_kpis(conn, when, site=site)
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        table.setdefault("network" if r.scope == kpi_store.NETWORK else r.scope, {})[r.kpi] = {
            "value": r.value, "numerator": r.numerator, "denominator": r.denominator}
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
@rules_option
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

