"""``campus-twin sites``: the schools' settings people set by hand (a site's time zone)."""

from __future__ import annotations

import click

from twin.cli.base import friendly, main, operator_name, settings_of
from twin.database import connection
from twin.orchestrate import migrated_url


@main.group()
def sites() -> None:
    """Schools: their settings (time zone)."""


@sites.command("list")
@click.pass_context
@friendly
def sites_list(ctx: click.Context) -> None:
    """Schools with role and time zone.  Example: campus-twin sites list"""
    from twin.storage.sites import list_sites, time_zones

    with connection(migrated_url(settings_of(ctx))) as conn:
        rows, zones = list_sites(conn), time_zones(conn)
    for r in rows:
        click.echo(f"{r.site_id:<12} {r.role:<12} {zones.get(r.site_id, ''):<20} {r.name}")
    click.echo(f"{len(rows)} sites")


@sites.command("set")
@click.argument("site_id")
@click.option("--time-zone", "zone_name", required=True,
              help="The IANA zone its people read times in, e.g. Asia/Shanghai (storage stays UTC).")
@click.pass_context
@friendly
def sites_set(ctx: click.Context, site_id: str, zone_name: str) -> None:
    """Set a school's time zone.  Example: campus-twin sites set hq --time-zone Asia/Shanghai"""
    from twin import localtime
    from twin.storage import audit
    from twin.storage.sites import set_time_zone

    try:
        tz = localtime.zone(zone_name)
    except localtime.ZoneError as exc:
        raise click.BadParameter(str(exc), param_hint="--time-zone") from exc
    with connection(migrated_url(settings_of(ctx))) as conn:
        if not set_time_zone(conn, site_id, tz.key):
            raise click.ClickException(f"no site {site_id!r} (campus-twin sites list)")
        audit.record(conn, "site_time_zone", "ok", username=operator_name(), target=site_id,
                     detail={"time_zone": tz.key})
    click.echo(f"{site_id}: times shown in {localtime.zone_label(tz)}")
