"""Versioned, idempotent migrations and backend detection.

``migrate()`` applies every migration not yet recorded in ``schema_migrations``, each
in its own transaction, under an advisory lock so that concurrent starts are safe.
Running it again changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

import psycopg

from twin.database import BackendUnusable
from twin.metrics import CATALOGUE
from twin.storage.partitions import ensure_partitions

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x43414D50  # "CAMP"
#: Readings older than this are dropped by the retention policy.
RETENTION = timedelta(days=400)
#: TimescaleDB compresses chunks older than this.
COMPRESS_AFTER = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[psycopg.Connection], None]


#: The oldest TimescaleDB that migration 3 works with (``create_hypertable(... by_range(...))`` came in 2.13).
MIN_TIMESCALEDB = "2.13.0"
#: Settings that only TimescaleDB's loader defines. ``pg_settings`` lists them, to any user, only when the
#: server preloads the library (``shared_preload_libraries`` itself is readable by superusers only).
_LOADER_SETTINGS = ["timescaledb.disable_load", "timescaledb.max_background_workers"]


@dataclass(frozen=True, slots=True)
class Backend:
    """How this database keeps readings, found from the catalogue (:func:`inspect_backend`)."""

    name: str  # "timescaledb" or "postgresql": what readings is, or what migration 3 will make of it
    partitioned: bool  # readings is range-partitioned by month: its writer makes the months it needs
    timescaledb: str | None  # TimescaleDB's version: created in this database, else of the server's files
    problem: str | None  # why TimescaleDB cannot be used as the server is set up (one line), None when fine


def inspect_backend(conn: psycopg.Connection) -> Backend:
    """Which backend this database uses, or will use once migrated, and what keeps it from working.

    Reads catalogues only, so it answers even where TimescaleDB cannot be loaded: ``CREATE EXTENSION``
    on a server that does not preload it ends the session (FATAL), and rows written into a hypertable
    whose library is not loaded go to its root table, where TimescaleDB never shows them.
    """
    row = conn.execute(
        """SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
                  (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
                  EXISTS (SELECT 1 FROM pg_settings WHERE name = ANY(%s)),
                  (SELECT relkind::text FROM pg_class WHERE oid = to_regclass('readings'))""",
        (_LOADER_SETTINGS,),
    ).fetchone()
    available, installed, loaded, relkind = row if row else (None, None, False, None)
    readings = None if relkind is None else "partitioned" if relkind == "p" else "hypertable" if installed else "table"
    if readings is None:
        name = "timescaledb" if available or installed else "postgresql"
    else:
        name = "timescaledb" if readings == "hypertable" else "postgresql"
    problem = timescaledb_problem(available=available, installed=installed, loaded=bool(loaded), readings=readings)
    return Backend(name, readings == "partitioned", installed or available, problem)


def timescaledb_problem(*, available: str | None, installed: str | None, loaded: bool,
                        readings: str | None) -> str | None:
    """One line saying what to change on the server, or None when the database can go on.

    ``available``: version of the server's TimescaleDB files; ``installed``: version created in this
    database; ``loaded``: the server preloads the library; ``readings``: ``"partitioned"``,
    ``"hypertable"``, ``"table"`` or None (not made yet). Readings already on plain PostgreSQL never
    need TimescaleDB. A server that has TimescaleDB but cannot use it fails instead of falling back:
    migration 3 picks the layout of readings once and for good (docs/storage.md).
    """
    if readings in ("partitioned", "table") or (available is None and installed is None):
        return None
    preload = ("shared_preload_libraries = 'timescaledb' in postgresql.conf (or run timescaledb-tune) "
               "and restart PostgreSQL")
    if available is None:
        return (f"this database keeps readings in TimescaleDB {installed}, but the server has no TimescaleDB files: "
                f"install TimescaleDB {installed} for this PostgreSQL, set {preload}")
    version = installed or available
    if _version(version) < _version(MIN_TIMESCALEDB):
        fix = ("install a newer TimescaleDB and run ALTER EXTENSION timescaledb UPDATE in this database" if installed
               else "install a newer TimescaleDB, or use a PostgreSQL server without TimescaleDB")
        return f"TimescaleDB {version} on this server is older than {MIN_TIMESCALEDB}, which Campus Twin needs: {fix}"
    if not loaded:
        return f"TimescaleDB {version} is installed on this server but not preloaded: set {preload}"
    return None


def _version(text: str) -> tuple[int, ...]:
    """``"2.28.3"`` -> (2, 28, 3); a suffix such as ``-dev`` is ignored."""
    return tuple(int(re.match(r"\d*", part).group() or 0) for part in text.split(".")[:3])  # type: ignore[union-attr]


def require_usable(conn: psycopg.Connection) -> Backend:
    """:func:`inspect_backend`, raising :class:`BackendUnusable` with its one-line problem."""
    found = inspect_backend(conn)
    if found.problem:
        raise BackendUnusable(found.problem)
    return found


def backend(conn: psycopg.Connection) -> str:
    """``"timescaledb"`` when readings is (or will be made) a hypertable, else ``"postgresql"``."""
    return inspect_backend(conn).name


def _core(conn: psycopg.Connection) -> None:
    conn.execute(resources.files("twin.sql").joinpath("0001_core.sql").read_text("utf-8"))


def _metrics(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO metrics (metric_id, name, unit, min_value, max_value, description)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (metric_id) DO UPDATE SET unit = excluded.unit,
                 min_value = excluded.min_value, max_value = excluded.max_value,
                 description = excluded.description""",
            [(m.metric_id, m.name, m.unit, m.min_value, m.max_value, m.description) for m in CATALOGUE],
        )


READINGS_COLUMNS = """
    ts         timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    value      double precision NOT NULL
"""


def _readings(conn: psycopg.Connection) -> None:
    if require_usable(conn).name == "timescaledb":
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute(f"CREATE TABLE IF NOT EXISTS readings ({READINGS_COLUMNS})")
        conn.execute("SELECT create_hypertable('readings', by_range('ts', INTERVAL '1 day'), if_not_exists => TRUE)")
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS readings_key ON readings (device_id, metric_id, ts)")
        conn.execute(
            "ALTER TABLE readings SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'device_id, metric_id',"
            " timescaledb.compress_orderby = 'ts DESC')"
        )
        conn.execute("SELECT add_compression_policy('readings', %s::interval, if_not_exists => TRUE)", (COMPRESS_AFTER,))
        conn.execute("SELECT add_retention_policy('readings', %s::interval, if_not_exists => TRUE)", (RETENTION,))
    else:
        conn.execute(f"CREATE TABLE IF NOT EXISTS readings ({READINGS_COLUMNS}) PARTITION BY RANGE (ts)")
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS readings_key ON readings (device_id, metric_id, ts)")
        now = datetime.now(UTC)
        ensure_partitions(conn, now - timedelta(days=62), now + timedelta(days=62))


def _sql_file(name: str) -> Callable[[psycopg.Connection], None]:
    """A migration that runs ``twin/sql/{name}``."""
    def apply(conn: psycopg.Connection) -> None:
        conn.execute(resources.files("twin.sql").joinpath(name).read_text("utf-8"))
    return apply


def _hardware(conn: psycopg.Connection) -> None:
    _sql_file("0016_hardware.sql")(conn)
    _metrics(conn)  # the catalogue's new metrics


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core twin tables", _core),
    Migration(2, "metric catalogue", _metrics),
    Migration(3, "readings (hypertable or partitioned)", _readings),
    Migration(4, "BIM revisions: georeference, room geometry source and quantities, device id source",
              _sql_file("0004_bim_revisions.sql")),
    Migration(7, "commands to devices and their acknowledgements", _sql_file("0007_commands.sql")),
    Migration(8, "monitoring: climate zones, alarm lifecycle and outbox, rule overrides, daily KPIs",
              _sql_file("0008_monitoring.sql")),
    Migration(9, "security: users, sessions, audit log, MQTT accounts", _sql_file("0009_security.sql")),
    Migration(10, "sequence windows: suspected loss that tolerates reordering across workers",
              _sql_file("0010_seq_window.sql")),
    Migration(11, "ingest listening spells: silence while the twin was not listening is not a device fault",
              _sql_file("0011_ingest_listening.sql")),
    Migration(12, "alarm integrity: when the twin knew, cleared after raised, minutes heard, clock offsets",
              _sql_file("0012_alarm_integrity.sql")),
    Migration(13, "sequence restarts told from reordering by device time", _sql_file("0013_seq_restart.sql")),
    Migration(14, "a site's time zone, for the times people read", _sql_file("0014_site_time_zone.sql")),
    Migration(15, "the demo's timetable shift (demo only)", _sql_file("0015_demo_timetable.sql")),
    Migration(16, "hardware identities, site adapters, hardware seen; presence and link quality metrics",
              _hardware),
    Migration(17, "MQTT accounts of the sites' adapters (integration role)",
              _sql_file("0017_integration_accounts.sql")),
    Migration(18, "alarm notifications per channel: deduplicated, retried, failures kept",
              _sql_file("0018_notification_channels.sql")),
)
LATEST_VERSION = MIGRATIONS[-1].version


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied (empty when up to date).

    A server whose TimescaleDB cannot be used raises :class:`BackendUnusable` before anything is made.
    """
    require_usable(conn)
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY, name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    conn.commit()
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        for mig in MIGRATIONS:
            if mig.version in done:
                continue
            with conn.transaction():
                mig.apply(conn)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (mig.version, mig.name))
            log.info("migration applied version=%d name=%r", mig.version, mig.name)
            applied.append(mig.version)
    # The catalogue may grow between releases: keep it in step on every start.
    with conn.transaction():
        _metrics(conn)
    return applied


def schema_version(conn: psycopg.Connection) -> int:
    """Highest applied migration, 0 for an empty database."""
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0
