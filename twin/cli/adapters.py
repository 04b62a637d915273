"""``campus-twin adapters``: which device adapters (zigbee2mqtt, ChirpStack, The Things Stack, Tasmota) each site
has enabled, under which topic prefix; ``campus-twin ingest`` reads them from the database."""

from __future__ import annotations

from typing import Any

import click
import orjson

from twin.cli.base import friendly, main, operator_name, print_json, settings_of
from twin.database import connection
from twin.identities import ADAPTERS
from twin.orchestrate import migrated_url


@main.group()
def adapters() -> None:
    """Device adapters enabled per site: zigbee2mqtt, chirpstack, tts, tasmota."""


def _shown(prefix: str) -> str:
    return repr(prefix) if prefix else "the topic root (tele/..., stat/..., cmnd/...)"


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else orjson.dumps(v).decode()}" for k, v in sorted(options.items()))


def _parse_options(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as a JSON number, true, false or null is stored as one."""
    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: write key=value", param=param)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
        options[key.strip()] = value if isinstance(value, int | float | bool) or value is None else raw
    return options


@adapters.command("list")
@click.option("--site", "site_id", help="Only this site.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@friendly
def adapters_list(ctx: click.Context, site_id: str | None, as_json: bool) -> None:
    """Adapters enabled, by site, with prefix and options.  Example: campus-twin adapters list --site hq"""
    from twin.storage.identities import adapters as enabled

    with connection(migrated_url(settings_of(ctx))) as conn:
        rows = enabled(conn, site_id=site_id)
    if as_json:
        print_json([{"site_id": a.site_id, "adapter": a.adapter, "prefix": a.prefix, "options": a.options}
                    for a in rows])
        return
    for a in rows:
        click.echo(f"{a.site_id:<12} {a.adapter:<12} {a.prefix or '(topic root)':<23} {_options_text(a.options)}"
                   .rstrip())
    click.echo(f"{len(rows)} adapters enabled")


@adapters.command("enable")
@click.option("--site", "site_id", required=True, help="The site whose devices speak through it.")
@click.argument("adapter", type=click.Choice(list(ADAPTERS)))
@click.option("--prefix", help="Topic prefix ('+' for a whole level); default: the adapter's own "
                               "(zigbee2mqtt, application/+, v3/+, none for tasmota).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", callback=_parse_options,
              help="An adapter option (repeatable); enabling again replaces them all.")
@click.pass_context
@friendly
def adapters_enable(ctx: click.Context, site_id: str, adapter: str, prefix: str | None,
                    options: dict[str, Any]) -> None:
    """Enable an adapter for a site under a topic prefix (a prefix belongs to one site).

    Example: campus-twin adapters enable --site hq chirpstack --prefix application/3 --option fport=10
    """
    from twin.identities import IdentityError, check_prefix
    from twin.storage import audit
    from twin.storage.identities import BindError, enable_adapter
    from twin.storage.sites import site_exists

    prefix = ADAPTERS[adapter] if prefix is None else prefix
    try:
        prefix = check_prefix(adapter, prefix)
    except IdentityError as exc:
        raise click.BadParameter(str(exc), param_hint="--prefix") from exc
    detail = {"adapter": adapter, "prefix": prefix, "options": options}
    with connection(migrated_url(settings_of(ctx))) as conn:
        if not site_exists(conn, site_id):
            raise click.ClickException(f"no site {site_id!r} (campus-twin sites list)")
        try:
            enable_adapter(conn, site_id, adapter, prefix, options)
            refused = None
        except BindError as exc:
            refused = str(exc)
            detail["error"] = refused
        audit.record(conn, "adapter_enable", "failed" if refused else "ok", username=operator_name(),
                     target=site_id, detail=detail)
    if refused:
        raise click.ClickException(refused)
    where = f"under {_shown(prefix)}" if prefix else f"at {_shown(prefix)}"
    click.echo(f"{site_id}: {adapter} enabled {where}" + (f" (options: {_options_text(options)})" if options else ""))


@adapters.command("disable")
@click.option("--site", "site_id", required=True)
@click.argument("adapter", type=click.Choice(list(ADAPTERS)))
@click.option("--prefix", help="The prefix it was enabled under; default: the adapter's own.")
@click.pass_context
@friendly
def adapters_disable(ctx: click.Context, site_id: str, adapter: str, prefix: str | None) -> None:
    """Disable an adapter of a site (its hardware ids and what it saw are kept).

    Example: campus-twin adapters disable --site hq zigbee2mqtt
    """
    from twin.storage import audit
    from twin.storage.identities import disable_adapter

    prefix = ADAPTERS[adapter] if prefix is None else prefix
    where = f"under {_shown(prefix)}" if prefix else f"at {_shown(prefix)}"
    with connection(migrated_url(settings_of(ctx))) as conn:
        if not disable_adapter(conn, site_id, adapter, prefix):
            raise click.ClickException(f"{adapter} is not enabled {where} at site {site_id!r} "
                                       "(campus-twin adapters list)")
        audit.record(conn, "adapter_disable", "ok", username=operator_name(), target=site_id,
                     detail={"adapter": adapter, "prefix": prefix})
    click.echo(f"{site_id}: {adapter} disabled {where}")
