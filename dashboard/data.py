"""Data access for pages and callbacks: the app's pool, command bridge, BIM loader, thin twin queries.

The pool is created by :func:`dashboard.app.create_app` and kept in the Flask server's
``extensions``; functions here find it through ``flask.current_app``, so they work in
any request (layout or callback) of any app, and in tests inside ``app.server.app_context()``.
No SQL here: every query is a function of ``twin.storage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import psycopg
from psycopg_pool import ConnectionPool

from dashboard.figures import with_derived
from twin.storage import alarms, bim_imports, commands, dashboard_queries, kpis, model, readings

POOL_KEY = "campus_twin.pool"
BRIDGE_KEY = "campus_twin.commands"
LOADER_KEY = "campus_twin.bim_loader"
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


def bim_loader() -> BimLoader | None:
    """The injected BIM loader ``(path, site_id, *, name, role) -> summary``, or None."""
    return flask.current_app.extensions.get(LOADER_KEY)


# -- network ----------------------------------------------------------------------------------------------


def sites() -> list[dict[str, Any]]:
    """Every site with counts (:func:`twin.storage.model.list_sites`)."""
    with connection() as conn:
        return model.list_sites(conn)


def network() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sites with counts and coverage KPIs, and the network's KPIs (``twin.storage.kpis``)."""
    with connection() as conn:
        rows = model.list_sites(conn)
        k = kpis.site_kpis(conn)
    for row in rows:
        row.update(k["sites"].get(row["site_id"], {}))
    net = dict(k["network"])
    net["devices"] = sum(r["devices"] for r in rows)
    net["online"] = sum(r["online"] for r in rows)
    net["open_alarms"] = sum(r["open_alarms"] for r in rows)
    net["schools"] = len(rows)
    return rows, net


def cloud_panels(now: datetime | None = None) -> list[dict[str, Any]]:
    with connection() as conn:
        return dashboard_queries.cloud_panels(conn, (now or datetime.now(UTC)) - SESSION_FRESH)


# -- site, floor plan, building ---------------------------------------------------------------------------


def site(site_id: str) -> dict[str, Any] | None:
    with connection() as conn:
        return dashboard_queries.site(conn, site_id)


def storeys(site_id: str) -> list[dict[str, Any]]:
    with connection() as conn:
        return model.list_storeys(conn, site_id)


def _values(conn: psycopg.Connection, room_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    latest = readings.room_latest(conn, room_ids)
    health = dashboard_queries.room_health(conn, room_ids)
    return {r: with_derived(latest.get(r, {}), health.get(r)) for r in room_ids}


def floorplan(storey_id: int) -> tuple[list[dict[str, Any]], dict[int, dict[str, float]], list[dict[str, Any]]]:
    """A storey's rooms (shapely footprints), their values (with derived metrics) and its devices."""
    with connection() as conn:
        rooms = dashboard_queries.storey_plan(conn, storey_id)
        values = _values(conn, [r["room_id"] for r in rooms])
        devices = dashboard_queries.storey_devices(conn, storey_id)
    return rooms, values, devices


def room_values(room_ids: Sequence[int], storey_id: int | None = None
                ) -> tuple[dict[int, dict[str, float]], list[dict[str, Any]]]:
    """Fresh values of rooms already drawn, and the storey's devices (for a live refresh)."""
    with connection() as conn:
        values = _values(conn, room_ids)
        devices = dashboard_queries.storey_devices(conn, storey_id) if storey_id is not None else []
    return values, devices


def building(building_id: int) -> dict[str, Any] | None:
    with connection() as conn:
        return dashboard_queries.building(conn, building_id)


def building_plan(building_id: int) -> tuple[list[dict[str, Any]], dict[int, dict[str, float]]]:
    with connection() as conn:
        rooms = dashboard_queries.building_rooms(conn, building_id)
        return rooms, _values(conn, [r["room_id"] for r in rooms])


# -- room -------------------------------------------------------------------------------------------------


def room(room_id: int) -> dict[str, Any] | None:
    with connection() as conn:
        return model.room(conn, room_id)


def room_live(room_id: int) -> list[dict[str, Any]]:
    """Latest value of every device and metric in the room."""
    with connection() as conn:
        return readings.room_latest_detail(conn, room_id)


def room_devices(room_id: int) -> list[dict[str, Any]]:
    with connection() as conn:
        return dashboard_queries.room_devices(conn, room_id)


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


def room_commands(room_id: int) -> list[dict[str, Any]]:
    with connection() as conn:
        return commands.room_commands(conn, room_id)


def device(site_id: str, device_id: str) -> dict[str, Any] | None:
    with connection() as conn:
        return dashboard_queries.device(conn, site_id, device_id)


# -- alarms, devices, BIM ---------------------------------------------------------------------------------


def alarm_list(site_id: str | None, severity: str | None, state: str | None) -> list[dict[str, Any]]:
    with connection() as conn:
        return alarms.list_alarms(conn, site_id=site_id, severity=severity, state=state)


def acknowledge_alarm(alarm_id: int, by: str, note: str) -> bool:
    with connection() as conn:
        return alarms.acknowledge(conn, alarm_id, by=by, note=note)


def devices_view(site_id: str | None, state: str | None) -> dict[str, Any]:
    """Everything the devices page shows: counts, vitals, and the three kinds of unmapped devices."""
    with connection() as conn:
        return {
            "counts": dashboard_queries.device_state_counts(conn, site_id),
            "devices": dashboard_queries.device_vitals(conn, site_id=site_id, state=state),
            "unknown": dashboard_queries.unknown_publishers(conn, site_id=site_id),
            "never_heard": dashboard_queries.never_heard(conn, site_id=site_id),
            "no_room": dashboard_queries.unmapped_in_bim(conn, site_id=site_id),
        }


def bim_import_log(limit: int = 10) -> list[dict[str, Any]]:
    with connection() as conn:
        return bim_imports.list_imports(conn, limit=limit)
