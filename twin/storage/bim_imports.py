"""The BIM import log: one row per ``bim load``, with its summary and its diff against the twin before it.

An import that changed nothing is logged too (``changed = false``), so the log says who
loaded what and when; the twin's tables are not touched by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

#: Advisory lock namespace of BIM imports (``pg_advisory_xact_lock(key, hashtext(site_id))``).
IMPORT_LOCK = 0x4249  # "BI"


#: Advisory lock of "an IFC import is running" (``pg_try_advisory_lock(RUNNING_LOCK, 0)``), across every
#: dashboard process and host: each import may take minutes and gigabytes.
RUNNING_LOCK = 0x4250  # "BP"


def try_lock_running(conn: psycopg.Connection) -> bool:
    """Take the one "import running" slot for ``conn``'s session (committed at once, so no transaction stays
    open meanwhile); False when another session holds it. Release with :func:`unlock_running`."""
    taken = bool(conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (RUNNING_LOCK,)).fetchone()[0])
    conn.commit()
    return taken


def unlock_running(conn: psycopg.Connection) -> None:
    """Give the slot of :func:`try_lock_running` back (a session that ends gives it back too)."""
    conn.execute("SELECT pg_advisory_unlock(%s, 0)", (RUNNING_LOCK,))
    conn.commit()


def lock_site_for_import(conn: psycopg.Connection, site_id: str) -> None:
    """Hold the site's import lock until the caller's transaction ends (concurrent loads queue up)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (IMPORT_LOCK, site_id))


def record_import(conn: psycopg.Connection, site_id: str, file_name: str, file_sha256: str, ifc_schema: str,
                  summary: dict[str, Any], diff: dict[str, Any] | None = None, *, changed: bool = True) -> int:
    """Log one BIM import; return its id."""
    row = conn.execute(
        """INSERT INTO bim_imports (site_id, file_name, file_sha256, ifc_schema, summary, diff, changed)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (site_id, file_name, file_sha256, ifc_schema, Jsonb(summary), Jsonb(diff or {}), changed),
    ).fetchone()
    return int(row[0])  # type: ignore[index]


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A logged import: its file, schema and time, whether it changed anything, and its diff's counts
    (``{"rooms": {"added": n, "removed": n, "changed": n}, ...}``; None when it had no diff)."""

    id: int
    site_id: str
    file_name: str
    file_sha256: str
    ifc_schema: str
    imported_at: datetime
    changed: bool
    counts: dict[str, Any] | None


def list_imports(conn: psycopg.Connection, site_id: str | None = None, limit: int = 50) -> list[ImportRow]:
    """Latest imports first: id, site, file, schema, time, whether it changed anything, and the diff counts."""
    with conn.cursor(row_factory=class_row(ImportRow)) as cur:
        return cur.execute(
            """SELECT id, site_id, file_name, file_sha256, ifc_schema, imported_at, changed, diff -> 'counts' AS counts
               FROM bim_imports WHERE (%(site)s::text IS NULL OR site_id = %(site)s)
               ORDER BY imported_at DESC, id DESC LIMIT %(limit)s""",
            {"site": site_id, "limit": limit},
        ).fetchall()


@dataclass(frozen=True, slots=True)
class ImportSource:
    """The file a site's twin was last loaded from: name, SHA-256, IfcProject and IfcSite GlobalIds ("" when
    the import predates recording them)."""

    file_name: str
    file_sha256: str
    ifc_project: str
    ifc_site: str


def last_source(conn: psycopg.Connection, site_id: str) -> ImportSource | None:
    """The site's last logged import's file, or None when it has none."""
    with conn.cursor(row_factory=class_row(ImportSource)) as cur:
        return cur.execute(
            """SELECT file_name, file_sha256, coalesce(summary ->> 'ifc_project', '') AS ifc_project,
                      coalesce(summary ->> 'ifc_site', '') AS ifc_site
               FROM bim_imports WHERE site_id = %s ORDER BY imported_at DESC, id DESC LIMIT 1""",
            (site_id,),
        ).fetchone()


def import_diff(conn: psycopg.Connection, import_id: int) -> dict[str, Any] | None:
    """The full diff an import recorded, or None for an unknown id."""
    row = conn.execute("SELECT diff FROM bim_imports WHERE id = %s", (import_id,)).fetchone()
    return row[0] if row else None
