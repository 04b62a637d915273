"""Connections: resolve the database from settings, open connections and pools."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from twin.settings import Settings

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The database named by the settings does not answer."""


class BackendUnusable(DatabaseUnavailable):
    """The server answers, but its TimescaleDB cannot be used as it is set up (not preloaded, too old,
    its files missing). The message is one line that says what to change; a service retries as for a
    server that does not answer, since the fix is made on the server."""


def database_url(settings: Settings) -> str:
    """The URL to use: the configured one, else the embedded server (started on demand)."""
    if settings.database_url:
        return settings.database_url
    from twin.embedded import start_embedded

    return start_embedded(settings.pgdata)


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """Open one connection, turning connection failures into :class:`DatabaseUnavailable`."""
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {first_line(exc)}") from exc


@contextmanager
def connection(url: str) -> Iterator[psycopg.Connection]:
    """A connection that commits on success and rolls back on error."""
    conn = connect(url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def open_pool(url: str, *, min_size: int = 1, max_size: int = 4, name: str = "twin") -> ConnectionPool:
    """A pool opened at once, so a missing database fails fast and loudly."""
    pool = ConnectionPool(url, min_size=min_size, max_size=max_size, open=False, name=name,
                          kwargs={"connect_timeout": 10})
    try:
        pool.open(wait=True, timeout=15)
    except Exception as exc:
        pool.close()
        raise DatabaseUnavailable(f"cannot connect to the database: {first_line(exc)}") from exc
    return pool


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
