"""Data access for pages and callbacks: the app's pool, command bridge, BIM loader, thin twin queries.

The pool is created by :func:`dashboard.app.create_app` and kept in the Flask server's
``extensions``; functions here find it through ``flask.current_app``, so they work in
any request (layout or callback) of any app, and in tests inside ``app.server.app_context()``.
No SQL here: every query is a function of ``twin.storage``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import flask
import psycopg
from psycopg_pool import ConnectionPool

from dashboard.figures import PlanGeometry, plan_geometry, with_derived
from twin import localtime
from twin.identities import Identity
from twin.monitoring.site_standards import Band, SiteStandards, standards_for, today
from twin.monitoring.standards import RulesError
from twin.storage import alarms, audit, bim_imports, commands, deliveries, devices, identities, kpis, plans, readings
from twin.storage import sites as sites_store
from twin.storage.alarms import AlarmRow
from twin.storage.bim_imports import ImportRow
from twin.storage.commands import CommandRow
from twin.storage.deliveries import DeliveryFailure
from twin.storage.devices import (
    CloudPanel,
    DeviceFilter,
    DeviceRef,
    DeviceRow,
    NeverHeard,
    RoomDevice,
    UnknownPublisher,
    UnmappedCounts,
    UnmappedDevice,
)
from twin.storage.identities import BindCandidate, BindError, Binding, IdentityRow, SeenRow
from twin.storage.kpis import StoredKpi
from twin.storage.plans import BuildingRef, BuildingRoom, PlanRoom, RoomRow, StoreyRow
from twin.storage.readings import LatestValue
from twin.storage.sites import SiteRef, SiteSummary
from twin.storage.timetables import stored_timetable
from twin.timetable import SCHOOL_TZ, Timetable

log = logging.getLogger(__name__)

POOL_KEY = "campus_twin.pool"
BRIDGE_KEY = "campus_twin.commands"
LOADER_KEY = "campus_twin.bim_loader"
LIMITS_KEY = "campus_twin.upload_limits"
PLANS_KEY = "campus_twin.plans"
RULES_KEY = "campus_twin.rules"  # a twin.monitoring.standards.SiteConfig (the rules file) for the site standards
#: Storey plans kept per app (a plan is a few hundred kB for a 200-room storey).
PLANS_KEPT = 64
STANDARDS_KEY = "campus_twin.standards"  # the last SiteStandards of each site, reused while equal (its verdicts)
#: How far back the room chart looks by default.
SERIES_WINDOW = timedelta(hours=1)
#: A cloud-class panel whose session value is older than this is not "in progress".
SESSION_FRESH = timedelta(minutes=10)

BimLoader = Callable[..., dict[str, Any]]


def attach_pool(server: flask.Flask, pool: ConnectionPool) -> None:
    """Keep ``pool`` on ``server`` for the data functions below."""
    server.extensions[POOL_KEY] = pool


def close_pool(server: flask.Flask) -> None:
    """Close and forget the pool kept on ``server`` (no-op when there is none)."""
    pool = server.extensions.pop(POOL_KEY, None)
    if pool is not None:
        pool.close()


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection of the current app (commits or rolls back on exit)."""
    pool: ConnectionPool = flask.current_app.extensions[POOL_KEY]
    with pool.connection() as conn:
        yield conn


def bridge() -> Any:
    """The app's :class:`dashboard.commands.CommandBridge`, or None without a broker."""
    return flask.current_app.extensions.get(BRIDGE_KEY)


def upload_limits() -> Any:
    """The app's :class:`dashboard.uploads.UploadLimits`."""
    return flask.current_app.extensions[LIMITS_KEY]


def bim_loader() -> BimLoader | None:
    """The injected BIM loader ``(path, site_id, *, name, role) -> summary``, or None."""
    return flask.current_app.extensions.get(LOADER_KEY)


# -- network ----------------------------------------------------------------------------------------------


#: Daily KPIs the overview takes from what the monitor stored.
STORED_DAILY = ("lighting_compliance", "data_completeness")
#: Alarm severities, most urgent first.
SEVERITIES = ("critical", "warning", "info")


def sites() -> list[SiteSummary]:
    """Every site with counts (:func:`twin.storage.sites.list_sites`)."""
    with connection() as conn:
        return sites_store.list_sites(conn)


@dataclass(frozen=True, slots=True)
class SiteView:
    """A school on the overview: its counts, its KPIs by name (coverage live with its counts, the daily ones
    as stored), its alarms not closed by severity, its devices offline, and the newest stored day of its
    daily KPIs with their counts (to say why a KPI has no value)."""

    site: SiteSummary
    kpis: Mapping[str, float | None]
    alarms: Mapping[str, int] = field(default_factory=dict)
    offline: int = 0
    daily: Mapping[str, StoredKpi] = field(default_factory=dict)


def network() -> tuple[list[SiteView], dict[str, Any]]:
    """Sites with counts and KPIs, and the network's KPIs (``twin.storage.kpis``).

    Coverage is live (devices reporting now); lighting compliance and data completeness
    are the newest day the monitor stored (``kpi_daily``). The network's figures count only
    schools, i.e. sites with devices; ``without_devices`` lists the others.
    """
    with connection() as conn:
        rows = sites_store.list_sites(conn)
        k = kpis.site_kpis(conn)
        daily = kpis.latest_days(conn)
        attention = sites_store.attention(conn)
    views = []
    for row in rows:
        stored = daily.get(row.site_id, {})
        seen = attention.get(row.site_id)
        views.append(SiteView(
            row, {**k.sites.get(row.site_id, {}), **{name: _stored(stored, name) for name in STORED_DAILY}},
            {sev: getattr(seen, sev, 0) for sev in SEVERITIES}, seen.offline if seen else 0, stored))
    schools = [v for v in views if v.site.devices]
    stored_net = daily.get(kpis.NETWORK, {})
    net: dict[str, Any] = dict(k.network)
    net.update({name: _stored(stored_net, name) for name in STORED_DAILY})
    net["daily"] = stored_net
    net["devices"] = sum(v.site.devices for v in schools)
    net["online"] = sum(v.site.online for v in schools)
    net["offline"] = sum(v.offline for v in schools)
    net["open_alarms"] = sum(r.open_alarms for r in rows)
    net["alarms"] = {sev: sum(v.alarms.get(sev, 0) for v in views) for sev in SEVERITIES}
    net["schools"] = len(schools)
    net["without_devices"] = [v.site for v in views if not v.site.devices]
    return views, net


def _stored(stored: Mapping[str, StoredKpi], name: str) -> float | None:
    found = stored.get(name)
    return None if found is None else found.value


def cloud_panels(now: datetime | None = None) -> list[CloudPanel]:
    with connection() as conn:
        return devices.cloud_panels(conn, (now or datetime.now(UTC)) - SESSION_FRESH)


# -- site, floor plan, building ---------------------------------------------------------------------------


def site(site_id: str) -> SiteRef | None:
    with connection() as conn:
        return sites_store.site(conn, site_id)


def site_zone(site_id: str | None) -> ZoneInfo:
    """The time zone ``site_id``'s people read times in (``sites.time_zone``); the schools' default for
    ``None`` (network-wide pages) or an unknown site."""
    return zones().get(site_id or "", SCHOOL_TZ)


def zones() -> dict[str, ZoneInfo]:
    """Every site's time zone, by site id (a stored name that is not a zone is logged and read as the default)."""
    with connection() as conn:
        stored = sites_store.time_zones(conn)
    return {site_id: _zone(site_id, name) for site_id, name in stored.items()}


def _zone(site_id: str, name: str | None) -> ZoneInfo:
    """A site's stored zone name as a zone (one that is not a zone is logged and read as the default)."""
    try:
        return localtime.zone(name)
    except localtime.ZoneError as exc:
        log.error("dashboard: site %s: %s; showing %s", site_id, exc, SCHOOL_TZ.key)
        return SCHOOL_TZ


def storeys(site_id: str) -> list[StoreyRow]:
    with connection() as conn:
        return plans.list_storeys(conn, site_id)


def _standards(conn: psycopg.Connection, site_id: str | None, day: date | None = None) -> SiteStandards:
    """The site's standards (:func:`twin.monitoring.site_standards.standards_for`); the defaults when its stored
    overrides cannot be used (logged; the monitor skips that school until they are fixed)."""
    if site_id is None:
        return SiteStandards("", day or today())
    config = flask.current_app.extensions.get(RULES_KEY) if flask.has_app_context() else None
    try:
        fresh = standards_for(conn, site_id, day, config=config)
    except RulesError as exc:
        log.error("dashboard: site %s: stored rule overrides ignored: %s", site_id, exc)
        return SiteStandards(site_id, day or today())
    if not flask.has_app_context():
        return fresh
    # The same rules, day and zone as last time: the same object, with the verdicts it has already given.
    kept: dict[str, SiteStandards] = flask.current_app.extensions.setdefault(STANDARDS_KEY, {})
    last = kept.get(site_id)
    if last == fresh:
        return last
    kept[site_id] = fresh
    return fresh


def _values(conn: psycopg.Connection, rooms: Sequence[BuildingRoom], standards: SiteStandards
            ) -> dict[int, dict[str, float]]:
    room_ids = [r.room_id for r in rooms]
    latest = readings.room_latest(conn, room_ids)
    health = devices.room_health(conn, room_ids)
    return {r.room_id: with_derived(latest.get(r.room_id, {}), health.get(r.room_id), use=r.use or "",
                                    standards=standards) for r in rooms}


@dataclass(frozen=True)
class StoreyPlan:
    """What only a BIM import changes on a storey: its site, rooms, devices per room, drawn geometry
    (see ``plan_geometry``)."""

    stamp: datetime
    rooms: tuple[PlanRoom, ...]
    devices: dict[int, list[str]]  # room id -> its devices' ids
    geometry: PlanGeometry
    site_id: str | None = None


def _snapshot(conn: psycopg.Connection, storey_id: int) -> tuple[StoreyPlan, plans.StoreySnapshot] | None:
    """The storey's plan (from the app's cache while the site's BIM stamp is unchanged) and its live state,
    read in one statement (:func:`twin.storage.plans.storey_snapshot`); None: no such storey."""
    cache: dict[int, StoreyPlan] = flask.current_app.extensions.setdefault(PLANS_KEY, {})
    cached = cache.get(storey_id)
    snap = plans.storey_snapshot(conn, storey_id, known=cached.stamp if cached else None)
    if snap is None:
        return None
    if cached is not None and snap.rooms is None:
        return cached, snap
    assert snap.rooms is not None and snap.devices is not None
    by_room: dict[int, list[str]] = {}
    for d in snap.devices:
        if d.room_id is not None:
            by_room.setdefault(d.room_id, []).append(d.device_id)
    plan = StoreyPlan(snap.stamp, snap.rooms, by_room, plan_geometry(snap.rooms, snap.devices), snap.site_id)
    cache.pop(storey_id, None)
    if len(cache) >= PLANS_KEPT:
        cache.pop(next(iter(cache)))
    cache[storey_id] = plan
    return plan, snap


def _live(plan: StoreyPlan, snap: plans.StoreySnapshot, standards: SiteStandards
          ) -> tuple[dict[int, dict[str, float]], list[str]]:
    """Values of the plan's rooms (with compliance and device health), and the states of its placed devices."""
    not_online, latest = snap.not_online, snap.latest
    values = {}
    for room in plan.rooms:
        room_id = room.room_id
        devices_here = plan.devices.get(room_id, ())
        online = len(devices_here) - sum(d in not_online for d in devices_here) if not_online else len(devices_here)
        values[room_id] = with_derived(latest.get(room_id, {}), (online, len(devices_here)) if devices_here else None,
                                       use=room.use or "", standards=standards)
    return values, [not_online.get(d, "online") for d in plan.geometry.device_ids]


def floorplan(storey_id: int, day: date | None = None
              ) -> tuple[StoreyPlan | None, dict[int, dict[str, float]], list[str], SiteStandards]:
    """A storey's plan (None: no such storey), its rooms' values (with derived metrics), its devices' states,
    and the standards that judge them (its site's, on ``day``: today when None)."""
    with connection() as conn:
        found = _snapshot(conn, storey_id)
        if found is None:
            return None, {}, [], _standards(conn, None, day)
        plan, snap = found
        standards = _standards(conn, plan.site_id, day)
    values, states = _live(plan, snap, standards)
    return plan, values, states, standards


def storey_standards(storey_id: int, day: date | None = None) -> SiteStandards:
    """The standards of the storey's site on ``day`` (today when None); the defaults for an unknown storey."""
    with connection() as conn:
        found = _snapshot(conn, storey_id)
        return _standards(conn, found[0].site_id if found else None, day)


def building(building_id: int) -> BuildingRef | None:
    with connection() as conn:
        return plans.building(conn, building_id)


def building_plan(building_id: int, day: date | None = None
                  ) -> tuple[list[BuildingRoom], dict[int, dict[str, float]], SiteStandards]:
    """A building's rooms, their values (with derived metrics) and the standards that judge them."""
    with connection() as conn:
        found = plans.building(conn, building_id)
        standards = _standards(conn, found.site_id if found else None, day)
        rooms = plans.building_rooms(conn, building_id)
        return rooms, _values(conn, rooms, standards), standards


# -- room -------------------------------------------------------------------------------------------------


def room(room_id: int) -> RoomRow | None:
    with connection() as conn:
        return plans.room(conn, room_id)


def room_standards(room: RoomRow, day: date | None = None) -> SiteStandards:
    """The standards judging ``room`` (a :func:`room` row) on ``day`` (today when None)."""
    with connection() as conn:
        return _standards(conn, room.site_id, day)


def room_live(room_id: int) -> list[LatestValue]:
    """Latest value of every device and metric in the room."""
    with connection() as conn:
        return readings.room_latest_detail(conn, room_id)


def room_devices(room_id: int) -> list[RoomDevice]:
    with connection() as conn:
        return devices.room_devices(conn, room_id)


def room_series(room_id: int, metric: str, *, start: datetime | None = None, end: datetime | None = None,
                hourly: bool = False, window: timedelta = SERIES_WINDOW,
                now: datetime | None = None) -> list[tuple[datetime, float, float, float]]:
    """``(bucket, mean, min, max)`` from the 1-minute (or, ``hourly``, the 1-hour) rollups, oldest first.

    Without ``start``/``end``: the ``window`` up to ``now``.
    """
    end = end or now or datetime.now(UTC)
    start = start or end - window
    with connection() as conn:
        return readings.room_series(conn, room_id, metric, start, end, hourly=hourly)


def room_chart(room_id: int, metric: str, start: datetime, end: datetime, *, hourly: bool = False
               ) -> tuple[list[tuple[datetime, float, float, float]], tuple[Band, ...]]:
    """A room's chart in one connection: its :func:`room_series` and the bounds of its rules for ``metric``
    on the range's last day (none for an unknown room)."""
    with connection() as conn:
        points = readings.room_series(conn, room_id, metric, start, end, hourly=hourly)
        found = plans.room(conn, room_id)
        if found is None:
            return points, ()
        return points, _standards(conn, found.site_id, today(end)).bands(metric, found.use or "")


@dataclass(frozen=True, slots=True)
class RoomSeries:
    """A room's chart: ``(bucket, mean, min, max)`` points, the bounds of its rules for the metric on the range's
    last day, and its site's zone."""

    points: list[tuple[datetime, float, float, float]]
    bands: tuple[Band, ...]
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class RoomView:
    """What a refresh of a room's page shows: the room, its site's zone and standards (today), its devices with
    status, their latest values, its recent commands, and its chart when asked for."""

    room: RoomRow
    zone: ZoneInfo
    standards: SiteStandards
    devices: tuple[RoomDevice, ...]
    latest: tuple[LatestValue, ...]
    commands: list[CommandRow]
    series: RoomSeries | None = None
    #: The timetable the monitor follows (the demo's shifted one when stored): when the standards judge.
    timetable: Timetable = field(default_factory=Timetable)


def _series(conn: psycopg.Connection, found: RoomRow, zone: ZoneInfo, metric: str, start: datetime, end: datetime,
            hourly: bool, standards: SiteStandards | None = None) -> RoomSeries:
    """The chart's points and the bounds of the rules on its last day (``standards`` when of that day)."""
    points = readings.room_series(conn, found.room_id, metric, start, end, hourly=hourly)
    if standards is None or standards.day != today(end):
        standards = _standards(conn, found.site_id, today(end))
    return RoomSeries(points, standards.bands(metric, found.use or ""), zone)


def room_view(room_id: int, chart: tuple[str, datetime, datetime, bool] | None = None) -> RoomView | None:
    """A refresh of a room's page in one connection (None: no such room): the room, its devices and their latest
    values in one statement (:func:`twin.storage.plans.room_live`), its site's rules, its commands, and with
    ``chart`` = ``(metric, start, end, hourly)`` its :func:`room_series_view`."""
    with connection() as conn:
        live = plans.room_live(conn, room_id)
        if live is None:
            return None
        found = live.room
        zone = _zone(found.site_id, found.time_zone)
        standards = _standards(conn, found.site_id)
        series = _series(conn, found, zone, *chart, standards=standards) if chart else None
        return RoomView(found, zone, standards, live.devices, live.latest, commands.room_commands(conn, room_id),
                        series, timetable=stored_timetable(conn))


def room_series_view(room_id: int, metric: str, start: datetime, end: datetime, *, hourly: bool = False
                     ) -> RoomSeries:
    """A room's chart in one connection: :func:`room_chart` and its site's zone (the default for an unknown room)."""
    with connection() as conn:
        found = plans.room(conn, room_id)
        if found is None:
            return RoomSeries(readings.room_series(conn, room_id, metric, start, end, hourly=hourly), (), SCHOOL_TZ)
        return _series(conn, found, _zone(found.site_id, found.time_zone), metric, start, end, hourly)


def room_commands(room_id: int) -> list[CommandRow]:
    with connection() as conn:
        return commands.room_commands(conn, room_id)


def device(site_id: str, device_id: str) -> DeviceRef | None:
    with connection() as conn:
        return devices.device(conn, site_id, device_id)


# -- alarms, devices, BIM ---------------------------------------------------------------------------------


def alarm_list(site_id: str | None, severity: str | None, state: str | None) -> list[AlarmRow]:
    with connection() as conn:
        return alarms.list_alarms(conn, site_id=site_id, severity=severity, state=state)


def notification_failures(site_id: str | None) -> list[DeliveryFailure]:
    """Alarm notifications a channel has not taken yet, with the last reason (secrets redacted)."""
    with connection() as conn:
        return deliveries.failures(conn, site_id)


def acknowledge_alarm(alarm_id: int, by: str, note: str, remote_addr: str | None = None) -> bool:
    """Acknowledge an open alarm and write the audit entry in the same transaction."""
    with connection() as conn:
        done = alarms.acknowledge(conn, alarm_id, by=by, note=note)
        audit.record(conn, "acknowledge", "ok" if done else "failed", username=by, target=f"alarm {alarm_id}",
                     detail={"note": note} if done else {"reason": "not open"}, remote_addr=remote_addr)
        return done


@dataclass(frozen=True, slots=True)
class DevicesView:
    """Everything the devices page shows: one page of the devices the filter selects (``page`` of ``pages``,
    1-based), how many it selects in each state, the kinds to filter by, each school's time zone, and the
    first ``unmapped_limit`` of each kind of unmapped device with how many there are."""

    counts: dict[str, int]
    total: int
    devices: list[DeviceRow]
    page: int
    pages: int
    page_size: int
    kinds: list[str]
    zones: dict[str, ZoneInfo]
    unknown: list[UnknownPublisher]
    never_heard: list[NeverHeard]
    no_room: list[UnmappedDevice]
    unmapped: UnmappedCounts
    #: The hardware identities of the devices shown, by ``(site_id, device_id)``.
    hardware_ids: dict[tuple[str, str], list[IdentityRow]] = field(default_factory=dict)


def devices_view(where: DeviceFilter, *, sort: str = "state", descending: bool = False, page: int = 1,
                 page_size: int = 50, unmapped_limit: int = 20) -> DevicesView:
    """One page of the devices list (``page`` kept within the pages there are), filtered, sorted and cut in the
    database, and the unmapped devices of the same school and search."""
    site_zones = zones()
    with connection() as conn:
        counts = devices.device_list_counts(conn, where)
        total = counts.get(where.state, 0) if where.state else sum(counts.values())
        pages = max(1, -(-total // page_size))
        page = min(max(page, 1), pages)
        shown = devices.device_page(conn, where, sort=sort, descending=descending, limit=page_size,
                                    offset=(page - 1) * page_size)
        near = {"site_id": where.site_id, "search": where.search, "limit": unmapped_limit}
        return DevicesView(
            counts=counts, total=total, devices=shown, page=page, pages=pages, page_size=page_size,
            kinds=devices.device_kinds(conn, where.site_id),
            zones=site_zones,
            unknown=devices.unknown_publishers(conn, **near),
            never_heard=devices.never_heard(conn, **near),
            no_room=devices.unmapped_in_bim(conn, **near),
            unmapped=devices.unmapped_counts(conn, site_id=where.site_id, search=where.search),
            hardware_ids=identities.identities_of(conn, [(d.site_id, d.device_id) for d in shown]),
        )


@contextmanager
def import_slot() -> Iterator[bool]:
    """The one IFC import that may run at a time across every dashboard process and host: yields whether it is
    this caller's (a PostgreSQL advisory lock, held on one pooled connection while the import runs)."""
    with connection() as conn:
        taken = bim_imports.try_lock_running(conn)
        try:
            yield taken
        finally:
            if taken:
                bim_imports.unlock_running(conn)


def bim_import_log(limit: int = 10) -> list[ImportRow]:
    with connection() as conn:
        return bim_imports.list_imports(conn, limit=limit)


# -- hardware adapters saw that no device carries (devices page) -------------------------------------------


@dataclass(frozen=True, slots=True)
class HardwareView:
    """A page of the hardware adapters saw that no device of the twin carries ("publishing but not in the
    twin"; ``page`` of ``pages``, 1-based), how many there are, and each school's zone."""

    rows: list[SeenRow]
    total: int
    page: int
    pages: int
    page_size: int
    zones: dict[str, ZoneInfo]


def hardware_view(site_id: str | None, *, page: int = 1, page_size: int = 10) -> HardwareView:
    """One page of :func:`twin.storage.identities.unmapped_hardware` (kept within the pages there are)."""
    site_zones = zones()
    with connection() as conn:
        total = identities.count_unmapped_hardware(conn, site_id=site_id)
        pages = max(1, -(-total // page_size))
        page = min(max(page, 1), pages)
        rows = identities.unmapped_hardware(conn, site_id=site_id, limit=page_size, offset=(page - 1) * page_size)
    return HardwareView(rows, total, page, pages, page_size, site_zones)


def bind_offers(rows: Sequence[SeenRow], limit: int = 20) -> dict[tuple[str, str, str], list[BindCandidate]]:
    """The devices offered to bind each row to, by ``(site_id, kind, hardware_id)``, the suggestion first
    (:func:`twin.storage.identities.bind_candidates`)."""
    with connection() as conn:
        return {(r.site_id, r.kind, r.hardware_id): identities.bind_candidates(conn, r.site_id, r.kind, r.address,
                                                                               limit=limit) for r in rows}


def bind_choices(site_id: str, kind: str, search: str, limit: int = 20) -> list[BindCandidate]:
    """Devices of ``site_id`` whose id or name contains ``search``, to bind hardware of ``kind`` to."""
    with connection() as conn:
        return identities.bind_candidates(conn, site_id, kind, search=search, limit=limit)


def device_identities(devices: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[IdentityRow]]:
    """The hardware identities of each ``(site_id, device_id)``."""
    with connection() as conn:
        return identities.identities_of(conn, devices)


def bind_hardware(site_id: str, kind: str, hardware_id: str, device_id: str, *, by: str,
                  remote_addr: str | None = None) -> int:
    """Bind one identity to a device of ``site_id`` in ``by``'s name (:func:`twin.storage.identities.bind`) and
    audit it (``bind``, ``ok`` or ``failed``) in the same transaction; how many identities are new (0: it was
    already this device's). :class:`~twin.storage.identities.BindError` (audited) when refused, its problems
    without the CSV's "line 1: "."""
    target = str(Identity(kind, hardware_id))
    refused: BindError | None = None
    with connection() as conn:
        try:
            new = identities.bind(conn, site_id, [Binding(device_id, kind, hardware_id)], by=by)
        except BindError as exc:
            refused = BindError([p.removeprefix("line 1: ") for p in exc.problems])
            audit.record(conn, "bind", "failed", username=by, target=target,
                         detail={"site": site_id, "device": device_id, "problems": list(refused.problems)},
                         remote_addr=remote_addr)
        else:
            audit.record(conn, "bind", "ok", username=by, target=target,
                         detail={"site": site_id, "device": device_id, "new": new}, remote_addr=remote_addr)
    if refused is not None:
        raise refused
    return new
