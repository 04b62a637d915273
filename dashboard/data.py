"""Data access for pages and callbacks: the app's connection pool and thin twin queries.

The pool is created by :func:`dashboard.app.create_app` and kept in the Flask server's
``extensions``; functions here find it through ``flask.current_app``, so they work in
any request (layout or callback) of any app, and in tests inside ``app.server.app_context()``.
No SQL here: every query is a function of ``twin.storage``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import psycopg
from psycopg_pool import ConnectionPool

from twin.storage import dashboard_queries, model, readings

POOL_KEY = "campus_twin.pool"
#: How far back the room chart looks.
SERIES_WINDOW = timedelta(hours=1)


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


def sites() -> list[dict[str, Any]]:
    """Every site with counts (:func:`twin.storage.model.list_sites`)."""
    with connection() as conn:
        return model.list_sites(conn)


def site(site_id: str) -> dict[str, Any] | None:
    with connection() as conn:
        return dashboard_queries.site(conn, site_id)


def storeys(site_id: str) -> list[dict[str, Any]]:
    with connection() as conn:
        return model.list_storeys(conn, site_id)


def floorplan(storey_id: int) -> tuple[list[dict[str, Any]], dict[int, dict[str, float]]]:
    """A storey's rooms (with shapely footprints) and their latest values per metric."""
    with connection() as conn:
        rooms = model.storey_rooms(conn, storey_id)
        return rooms, readings.room_latest(conn, [r["room_id"] for r in rooms])


def room(room_id: int) -> dict[str, Any] | None:
    with connection() as conn:
        return model.room(conn, room_id)


def room_live(room_id: int) -> list[dict[str, Any]]:
    """Latest value of every device and metric in the room."""
    with connection() as conn:
        return readings.room_latest_detail(conn, room_id)


def room_series(
    room_id: int, metric: str, *, window: timedelta = SERIES_WINDOW, now: datetime | None = None
) -> list[tuple[datetime, float, float, float]]:
    """``(bucket, mean, min, max)`` per minute over ``window`` up to ``now`` (from the 1-minute rollups)."""
    end = now or datetime.now(UTC)
    with connection() as conn:
        return readings.room_series(conn, room_id, metric, end - window, end)
