"""What the long-running commands run, and in which order: the demo (database, broker, network, ingest,
monitor, simulator, dashboard) and the single services of ``ingest``, ``monitor``, ``dashboard`` and
``simulate``, all through :class:`twin.services.Supervisor`.

This module is part of the core: it imports nothing of ``ingest``, ``models_bim``, ``simulators`` or
``dashboard``. What it needs of them is made by the composition root (``twin/cli/``, :mod:`twin.cli.parts`),
which imports them lazily and hands the services (or factories of them) over: :class:`DemoParts`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twin.database import connection, database_url
from twin.services import STOP_S, Launched, Service, Supervisor, ThreadService
from twin.settings import Settings

Echo = Callable[..., None]

#: Seconds between the demo's monitor cycles (rules, device health, notifications; the KPIs of today too).
DEMO_MONITOR_INTERVAL_S = 30.0
DEMO_ADMIN = "admin"
#: History a demo on a new database starts with (backfilled, :func:`demo_history`).
DEMO_HISTORY = timedelta(days=7)
#: Its last part stepped at 2 minutes: the monitor's device-health window (3 h) and a margin.
DEMO_DENSE = timedelta(hours=3, minutes=15)
#: The shortest dense part: the longest stuck window (60 min) and a margin.
DEMO_DENSE_MIN = timedelta(minutes=75)
#: Schools whose week the backfill samples hourly with the whole dense part (the default demo: 1 + 2).
DEMO_HOURLY_SCHOOLS = 3


def demo_backfill_grid(schools: int) -> tuple[timedelta, timedelta]:
    """``(step, dense)`` of the demo's week for ``schools`` schools (headquarters included): hourly with
    :data:`DEMO_DENSE` up to :data:`DEMO_HOURLY_SCHOOLS`; beyond, coarser and shorter in proportion, so that a
    bigger network backfills about as many rows (the 1 + 13 network: 5 h steps, 75 min dense).

    >>> demo_backfill_grid(3), demo_backfill_grid(14)
    ((datetime.timedelta(seconds=3600), datetime.timedelta(seconds=11700)), (datetime.timedelta(seconds=18000), datetime.timedelta(seconds=4500)))
    """
    scale = max(1, -(-schools // DEMO_HOURLY_SCHOOLS))
    return timedelta(hours=scale), max(DEMO_DENSE_MIN, DEMO_DENSE / scale)


def demo_history(url: str, backfill: Callable[[datetime, Any], Any], now: datetime, echo: Echo) -> None:
    """A new database (no readings yet) gets :data:`DEMO_HISTORY` of history ending at ``now`` (with faults), then
    one pass of the monitor over it: the standards' alarms of the week, device health over the dense end of the
    backfill, the daily KPIs (lighting compliance too). ``backfill(now, timetable)`` writes and returns the result."""
    from twin.monitoring.monitor import Monitor
    from twin.storage.monitoring import sites

    with connection(url) as conn:
        if conn.execute("SELECT EXISTS (SELECT 1 FROM readings)").fetchone()[0]:
            return
    result = backfill(now, None)
    echo(f"backfilled {DEMO_HISTORY.days} days for {result.devices} devices: {result.rows} readings, "
         f"{result.faults} faults injected, in {result.seconds:.1f} s")
    monitor = Monitor(url)
    with connection(url) as conn:
        for site_id, _zone in sites(conn):
            monitor.evaluate_rules(conn, site_id, now - DEMO_HISTORY, now, now=now)
        conn.commit()
    monitor.run_once(now)  # device health over the last hours, vitals, the KPIs of the week
    with connection(url) as conn:
        standards, health = conn.execute(
            "SELECT count(*) FILTER (WHERE rule NOT LIKE 'device%%'), count(*) FILTER (WHERE rule LIKE 'device%%')"
            " FROM alarms").fetchone()
    echo(f"history: {standards} standards alarms, {health} device-health alarms, daily KPIs of the week")


def demo_clock_line(now: datetime, timetable: Any) -> str:
    """What the demo says of the schools' time: local time, in session or not, the demo's shift."""
    from twin.localtime import fmt_shift, fmt_time
    from twin.timetable import SCHOOL_TZ

    phase = timetable.phase(now.astimezone(SCHOOL_TZ))
    return (f"schools:  {fmt_time(now, SCHOOL_TZ, seconds=False)} Asia/Shanghai, "
            f"{'in session' if phase == 'lesson' else 'not in session'} "
            f"(demo timetable shifted by {fmt_shift(timetable.shift)}, every day a school day)")


def migrated_url(settings: Settings) -> str:
    """The database URL (the embedded server started if none is configured) with the schema up to date."""
    from twin.storage.schema import migrate

    url = database_url(settings)
    with connection(url) as conn:
        migrate(conn)
    return url


def run_services(stop: threading.Event, services: Sequence[Service], duration: float | None, *,
                 on_ready: Callable[[], None] | None = None) -> list[str]:
    """Start ``services`` in order (each ready first; then ``on_ready``), run until ``stop`` or ``duration``,
    stop them in reverse within :data:`twin.services.STOP_S`; the names of those that did not stop in
    time. A service that died is raised here, after the others stopped."""
    with Supervisor(stop) as sup:
        for service in services:
            sup.start(service)
        if on_ready is not None and not stop.is_set():
            on_ready()
        sup.wait(duration)
        return sup.stop()


def monitor_service(monitor: Any, interval_s: float) -> ThreadService:
    """The monitor (:class:`twin.monitoring.monitor.Monitor`) as a service: ready once it cycles."""
    return ThreadService("monitor", lambda stop: monitor.run(stop, interval_s), ready=monitor.started,
                         subject=monitor)


def database_service(settings: Settings) -> Launched[str]:
    """The database as a service: the configured one, else the embedded server (left when the demo stops;
    stopped if no other command uses it). Its value is the migrated URL."""

    def halt(url: str) -> None:
        if not settings.database_url:
            from twin.embedded import stop_embedded

            stop_embedded(settings.pgdata)

    return Launched("database", launch=lambda: migrated_url(settings), halt=halt)


def broker_service(settings: Settings) -> Launched[Any]:
    """The broker as a service: the configured one (value None), else one started for this run
    (Mosquitto when installed, else the in-process amqtt broker), stopped with the run."""

    def launch() -> Any:
        if settings.mqtt_url:
            return None
        from twin.messaging.broker import start_local_broker

        return start_local_broker(settings.data_dir / "mosquitto")

    return Launched("broker", launch=launch, halt=lambda broker: broker.stop() if broker is not None else None)


def ensure_demo_admin(url: str) -> str:
    """Create the demo's first admin with a random password (shown once); how to log in, as text."""
    from twin import security
    from twin.storage import audit
    from twin.storage.users import add_user, user

    with connection(url) as conn:
        if user(conn, DEMO_ADMIN) is not None:
            return (f"log in as {DEMO_ADMIN!r} with the password printed by the first demo run "
                    f"(forgotten? campus-twin users remove {DEMO_ADMIN}, then run the demo again)")
        password = security.random_password(12)
        add_user(conn, DEMO_ADMIN, "admin", password)
        audit.record(conn, "user_add", "ok", username="demo", target=DEMO_ADMIN, detail={"role": "admin"})
    return f"log in as {DEMO_ADMIN!r} with password {password}  (shown once; more users: campus-twin users add)"


@dataclass(frozen=True)
class DemoParts:
    """What the demo needs of the other packages, made by the composition root."""

    #: ``(url, folder, members, seed)``: generate the network and load the sites not loaded yet; their summaries.
    network: Callable[[str, Path, int, int], list[dict[str, Any]]]
    #: ``(url, mqtt_url)``: the ingest worker as a service (``subject.counters``).
    ingest: Callable[[str, str], ThreadService]
    #: ``(url, mqtt_url, interval_s, seed, start)``: the simulator fleet as a service (``subject.published``),
    #: publishing from ``start`` (None: now).
    simulator: Callable[[str, str, float, int, datetime | None], ThreadService]
    #: ``(url, mqtt_url, host, port, pending_dir)``: the dashboard's server as a service.
    dashboard: Callable[[str, str, str, int, Path], ThreadService]
    #: ``(url, end, timetable)``: backfill :data:`DEMO_HISTORY` ending at ``end`` (with faults); its result. None: no history.
    backfill: Callable[[str, datetime, Any], Any] | None = None


def _clear_timetable_when(stop: threading.Event, url: str) -> None:
    from twin.storage.timetables import clear_demo_timetable

    stop.wait()
    with connection(url) as conn:
        clear_demo_timetable(conn)


def run_demo(settings: Settings, parts: DemoParts, stop: threading.Event, echo: Echo, *, schools: int, host: str,
             port: int, interval: float, duration: float | None, seed: int, now: datetime | None = None) -> None:
    """The whole twin: database, broker, the generated network, a week of history on a new database, ingest,
    monitor, simulator, dashboard; until ``stop`` or ``duration``; then everything stopped in reverse order
    (data kept). The demo's timetable is shifted so that school is in session at the start
    (:func:`twin.timetable.demo_timetable`). ``now``: the demo's present (tests: the clock injected; the
    simulator publishes and the monitor judges from it), default the wall clock."""
    from twin.monitoring.monitor import Monitor
    from twin.monitoring.notify import Notifier
    from twin.storage.timetables import store_demo_timetable
    from twin.timetable import demo_timetable

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    echo(f"database: {settings.database_url or f'embedded PostgreSQL in {settings.pgdata}'}")
    with Supervisor(stop, stop_within_s=STOP_S) as sup:
        url = sup.start(database_service(settings)).value
        broker = sup.start(broker_service(settings)).value
        mqtt_url = settings.mqtt_url or broker.url
        echo(f"broker:   {mqtt_url}" + (f" ({broker.kind}, started for this demo)" if broker else ""))
        for s in parts.network(url, settings.data_dir / "ifc", schools, seed):
            echo(f"loaded {s['site']}: {s['rooms']} rooms, {s['devices']} devices")
        login = ensure_demo_admin(url)
        start = now or datetime.now(UTC)
        timetable = demo_timetable(start)
        with connection(url) as conn:
            store_demo_timetable(conn, timetable)
        # Stopped after every part that reads it and before the database: the shift is the demo's alone, so
        # a later `monitor`, `simulate` or `dashboard` on this database follows the real timetable.
        sup.start(ThreadService("demo-timetable", lambda stop: _clear_timetable_when(stop, url)))
        if parts.backfill is not None and not stop.is_set():
            backfill = parts.backfill
            demo_history(url, lambda end, _tt: backfill(url, end, timetable), start, echo)
        if stop.is_set():
            return
        ingest = sup.start(parts.ingest(url, mqtt_url))
        monitor = Monitor(url, notifier=Notifier(mqtt_url, client_id="campus-demo-monitor"),
                          kpi_every=timedelta(seconds=DEMO_MONITOR_INTERVAL_S), clock=now or "wall")
        sup.start(monitor_service(monitor, DEMO_MONITOR_INTERVAL_S))
        simulator = sup.start(parts.simulator(url, mqtt_url, interval, seed, now))
        echo(demo_clock_line(start, timetable))
        sup.start(parts.dashboard(url, mqtt_url, host, port, settings.data_dir / "bim-pending"))
        echo(f"dashboard: http://{host}:{port}/  (Ctrl-C to stop)")
        echo(f"login:     {login}")
        sup.wait(duration)
        if sup.stop():  # unacknowledged telemetry stays with the broker: nothing is lost
            echo(f"some parts did not stop within {STOP_S:.0f} s (stack traces on stderr); exiting anyway", err=True)
        c = ingest.subject.counters
        echo(f"published {simulator.subject.published} messages; stored {c.rows} readings, {c.dead_letters} "
             f"dead letters; raised {monitor.totals.raised} alarms")
