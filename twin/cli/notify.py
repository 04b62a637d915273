"""``campus-twin notify``: try the alarm notification channels, see what they have delivered."""

from __future__ import annotations

from pathlib import Path

import click

from twin.cli.base import friendly, main, print_json, settings_of
from twin.database import connection
from twin.orchestrate import migrated_url

notify_option = click.option("--notify", "notify_file", envvar="CAMPUS_TWIN_NOTIFY", required=True,
                             type=click.Path(dir_okay=False, path_type=Path),
                             help="The channels' TOML file (as given to monitor --notify).")


@main.group()
def notify() -> None:
    """Alarm notification channels: WeCom, DingTalk, Feishu robots and e-mail (docs/monitoring.md)."""


@notify.command("test")
@click.option("--site", "site_id", required=True, help="Send to the channels of this site.")
@notify_option
@click.pass_context
@friendly
def test_channels(ctx: click.Context, site_id: str, notify_file: Path) -> None:
    """Send a test message to every channel configured for a site; exit 1 if one failed.

    Example: campus-twin notify test --site hq --notify notify.toml
    """
    from twin.monitoring.channels.config import load
    from twin.monitoring.channels.dispatch import Dispatcher
    from twin.storage.sites import site

    cfg = load(notify_file)
    with connection(migrated_url(settings_of(ctx))) as conn:
        ref = site(conn, site_id)
    if ref is None:
        raise click.ClickException(f"no site {site_id!r}")
    results = Dispatcher(cfg).test(site_id, ref.name)
    if not results:
        raise click.ClickException(f"no channel configured for site {site_id!r}")
    kinds = {c.name: c.kind for c in cfg.channels}
    for name, reason in results.items():
        click.echo(f"{name} ({kinds[name]}): {'sent' if reason is None else 'failed: ' + reason}")
    if any(r is not None for r in results.values()):
        ctx.exit(1)


@notify.command("status")
@click.option("--site", "site_id", help="Only this site's failures.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@friendly
def status(ctx: click.Context, site_id: str | None, as_json: bool) -> None:
    """Deliveries sent and pending per channel, and those failing with their last reason.

    Example: campus-twin notify status --site hq
    """
    from dataclasses import asdict

    from twin.storage import deliveries

    with connection(migrated_url(settings_of(ctx))) as conn:
        counts = deliveries.counts(conn)
        failing = deliveries.failures(conn, site_id)
    if as_json:
        print_json({"channels": counts, "failing": [asdict(f) for f in failing]})
        return
    for name, c in counts.items():
        click.echo(f"{name}: sent {c['sent']}, pending {c['pending']}")
    for f in failing:
        click.echo(f"failing: {f.channel} alarm {f.alarm_id} {f.event} after {f.attempts} attempts: {f.last_error}")
