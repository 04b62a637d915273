"""The long-running services: ``ingest``, ``dashboard``, ``monitor`` and the whole ``demo``.

Each parses, builds its service from :mod:`twin.cli.parts` and runs it until stopped
(:func:`twin.orchestrate.run_services`); the demo's orchestration is :func:`twin.orchestrate.run_demo`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from twin.cli.base import friendly, main, parse_time, require_mqtt, rules_option, settings_of, stop_on_signals
from twin.cli.parts import dashboard_app, dashboard_service, ensure_network, ingest_service, simulator_service
from twin.database import connection
from twin.orchestrate import migrated_url, run_services


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
    service = ingest_service(url, mqtt_url, client_id=client_id, workers=workers, share_group=share_group,
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="gunicorn worker processes (stateless: logins live in the database, so more processes or "
                   "hosts behind a load balancer serve the same users).")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Threads per worker (gunicorn's gthread workers).")
@click.option("--debug", is_flag=True,
              help="Werkzeug's development server in this process instead of gunicorn (one process).")
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.option("--secure-cookies", is_flag=True,
              help="Mark the login cookies Secure (behind an HTTPS proxy; automatic when served over HTTPS).")
@click.option("--trusted-proxies", type=click.IntRange(0, 10), default=0, show_default=True,
              envvar="CAMPUS_TWIN_TRUSTED_PROXIES",
              help="Reverse proxies in front of the dashboard: the client's address is taken from that many "
                   "X-Forwarded-For entries (0: the header is ignored).")
@rules_option
@click.pass_context
@friendly
def dashboard(ctx: click.Context, host: str, port: int, workers: int, threads: int, debug: bool,
              duration: float | None, secure_cookies: bool, trusted_proxies: int, rules_file: Path | None) -> None:
    """Serve the Dash web app on gunicorn (a login is needed: campus-twin users add).  Example: campus-twin dashboard --port 8050"""
    from twin.cli import wsgi
    from twin.cli.parts import gunicorn_service
    from twin.monitoring.standards import load_config
    from twin.services import port_answers

    settings = settings_of(ctx)
    rules = load_config(rules_file)  # a bad file: one line, before anything starts
    url = migrated_url(settings)
    pending = settings.data_dir / "bim-pending"
    if debug:
        app = dashboard_app(url, mqtt_url=settings.mqtt_url, secure_cookies=secure_cookies,
                            trusted_proxies=trusted_proxies, pending_dir=pending, rules=rules)
        service = dashboard_service(app, host, port)
    else:
        if port_answers(host, port)():
            raise click.ClickException(f"cannot serve the dashboard on {host}:{port}: port in use "
                                       f"(choose another with --port)")
        service = gunicorn_service(
            wsgi.settings(url, mqtt_url=settings.mqtt_url, secure_cookies=secure_cookies,
                          trusted_proxies=trusted_proxies, pending_dir=pending, rules_file=rules_file),
            host, port, workers=workers, threads=threads)
    stop = stop_on_signals()

    def serving() -> None:
        server = "Werkzeug (--debug)" if debug else f"gunicorn, {workers} workers x {threads} threads"
        click.echo(f"dashboard on http://{host}:{port}/  ({server}; Ctrl-C to stop)")
        with connection(url) as conn:
            from twin.storage.users import list_users

            if not list_users(conn):
                click.echo("no users yet: add one with  campus-twin users add NAME --role admin", err=True)

    run_services(stop, [service], duration, on_ready=serving)


@main.command()
@click.option("--interval", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds between evaluation cycles.")
@rules_option
@click.option("--webhook", envvar="CAMPUS_TWIN_ALARM_WEBHOOK", help="POST every alarm event as JSON to this URL.")
@click.option("--notify", "notify_file", envvar="CAMPUS_TWIN_NOTIFY", type=click.Path(dir_okay=False, path_type=Path),
              help="Send alarm events to the WeCom, DingTalk, Feishu and e-mail channels of this TOML file.")
@click.option("--from", "start", help="Evaluate this past range once instead (ISO 8601; no zone = UTC) ...")
@click.option("--to", "end", help="... up to this time (default: now).")
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option("--clock", default="wall", show_default=True, metavar="wall|data|TIME",
              help="The monitor's present: the wall clock; 'data', the time the stored readings have reached "
                   "(beside simulate --speed, over a replay or a backfill); or a TIME (ISO 8601) it starts from.")
@click.option("--duration", type=click.FloatRange(0), help="Stop after this many seconds.")
@click.pass_context
@friendly
def monitor(ctx: click.Context, interval: float, rules_file: Path | None, webhook: str | None,
            notify_file: Path | None, start: str | None, end: str | None, once: bool, clock: str,
            duration: float | None) -> None:
    """Evaluate the standards and device health continuously; raise, clear and notify alarms; store daily KPIs.

    Alarm events go to campus/v1/{site}/alarms when a broker is configured, to --webhook, and to the
    channels of --notify (WeCom, DingTalk, Feishu robots, e-mail).

    Example: campus-twin monitor --interval 60 --rules rules.toml --webhook https://ops.example/alarms

    Example: campus-twin monitor --interval 60 --notify notify.toml

    Example: campus-twin monitor --from 2026-11-01 --to 2026-11-08

    Example: campus-twin monitor --clock data --interval 15   (beside simulate --speed 60)
    """
    from twin.monitoring.monitor import CLOCKS, Monitor
    from twin.monitoring.notify import Notifier
    from twin.monitoring.standards import load_config
    from twin.storage.monitoring import sites

    config = load_config(rules_file)
    settings = settings_of(ctx)
    url = migrated_url(settings)
    channels = None
    if notify_file is not None:
        from twin.monitoring.channels.config import load
        from twin.monitoring.channels.dispatch import Dispatcher

        channels = Dispatcher(load(notify_file))
    notifier = (Notifier(settings.mqtt_url, webhook, channels=channels)
                if settings.mqtt_url or webhook or channels else None)
    mon = Monitor(url, config=config, notifier=notifier,
                  clock=clock if clock in CLOCKS else parse_time(clock, "--clock"))  # type: ignore[arg-type]
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
@click.option("--schools", type=click.IntRange(0, 50), default=2, show_default=True,
              help="Member schools besides the headquarters.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8050, show_default=True)
@click.option("--interval", type=click.FloatRange(0.2, 600), default=5.0, show_default=True,
              help="Seconds between messages of one simulated device.")
@click.option("--duration", type=click.FloatRange(0), help="Exit 0 after this many seconds.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--history/--no-history", default=True, show_default=True,
              help="On a new database, backfill a week of history (with faults) and run the monitor over it.")
@click.option("--backfill-step", default="auto", show_default=True, metavar="SPAN",
              help="Sampling step of that week (its last 75 min to 3 h 15 min at 2 min, for device health); auto: "
                   "1 h up to 3 schools, coarser in proportion beyond (the 1 + 13 network: 5 h).")
@click.option("--faults", "fault_profile", default="light", show_default=True, metavar="PROFILE",
              help="Fault profile of the backfilled history (dropout and stuck are used; docs/simulators.md).")
@click.option("--now", "now_text", metavar="TIME",
              help="The demo's present (ISO 8601, not in the future; for tests and screenshots): the history ends, "
                   "the simulator publishes and the monitor judges from it. Default: the wall clock.")
@click.pass_context
@friendly
def demo(ctx: click.Context, schools: int, host: str, port: int, interval: float, duration: float | None,
         seed: int, history: bool, backfill_step: str, fault_profile: str, now_text: str | None) -> None:
    """Run the whole twin on embedded defaults: database, broker, simulators, ingest, monitor, dashboard.

    Uses --database-url / --mqtt-url when given. Data is kept in the data directory, so a
    second run continues where the first stopped. A new database starts with a week of history,
    its alarms and daily KPIs; the demo's timetable is shifted so that school is in session when
    it starts (every day a school day; docs/simulators.md).  Example: campus-twin demo --duration 90
    """
    from simulators.faults import FaultProfileError, parse_profile
    from twin.cli.simulate import backfill_with_progress
    from twin.durations import parse_duration
    from twin.orchestrate import DEMO_HISTORY, DemoParts, demo_backfill_grid, run_demo

    step, dense = demo_backfill_grid(schools + 1)
    try:
        step = step if backfill_step == "auto" else parse_duration(backfill_step, positive=True)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--backfill-step") from None
    try:
        faults = parse_profile(fault_profile)
    except FaultProfileError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    now = parse_time(now_text, "--now") if now_text else None
    if now is not None and now > datetime.now(UTC):
        raise click.BadParameter("must not be in the future (ingest refuses readings from the future)",
                                 param_hint="--now")

    stop = stop_on_signals()
    parts = DemoParts(
        network=lambda url, folder, members, seed: ensure_network(url, folder, members=members, seed=seed),
        # one worker on a plain persistent subscription: kept by Mosquitto 2 across a restart (docs/mqtt.md)
        ingest=lambda url, mqtt_url: ingest_service(url, mqtt_url, client_id="campus-demo-ingest", workers=1),
        simulator=lambda url, mqtt_url, every, seed, start: simulator_service(
            url, mqtt_url, interval_s=every, seed=seed, client_id="campus-demo-sim", start=start),
        dashboard=lambda url, mqtt_url, host, port, pending: dashboard_service(
            dashboard_app(url, mqtt_url=mqtt_url, pending_dir=pending), host, port),
        backfill=(lambda url, end, timetable: backfill_with_progress(
            url, DEMO_HISTORY, step, seed, end=end, timetable=timetable, dense=dense, faults=faults))
        if history else None,
    )
    run_demo(settings_of(ctx), parts, stop, click.echo, schools=schools, host=host, port=port, interval=interval,
             duration=duration, seed=seed, now=now)
    click.echo("stopped; data kept for the next run")

