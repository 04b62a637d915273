"""Sites (schools) as the twin reads them: does one exist, one site's name and role, every site with counts.

Writing a site is part of saving its BIM model (:func:`twin.storage.model.upsert_site`).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, slots=True)
class SiteRef:
    """A site's id, name and role (``headquarters`` or ``member``)."""

    site_id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class SiteSummary:
    """A site with where it is and what it holds: buildings, rooms and devices (not removed), devices
    online, alarms not closed."""

    site_id: str
    name: str
    role: str
    latitude: float | None
    longitude: float | None
    buildings: int
    rooms: int
    devices: int
    online: int
    open_alarms: int


def site_exists(conn: psycopg.Connection, site_id: str) -> bool:
    """Whether the twin has the site ``site_id``."""
    return conn.execute("SELECT 1 FROM sites WHERE site_id = %s", (site_id,)).fetchone() is not None


def site(conn: psycopg.Connection, site_id: str) -> SiteRef | None:
    """One site's id, name and role, or ``None`` when unknown."""
    with conn.cursor(row_factory=class_row(SiteRef)) as cur:
        return cur.execute("SELECT site_id, name, role FROM sites WHERE site_id = %s", (site_id,)).fetchone()


def time_zones(conn: psycopg.Connection) -> dict[str, str]:
    """Every site's time zone (an IANA name such as ``Asia/Shanghai``), by site id."""
    return dict(conn.execute("SELECT site_id, time_zone FROM sites").fetchall())


def set_time_zone(conn: psycopg.Connection, site_id: str, zone: str) -> bool:
    """Store ``site_id``'s time zone (checked by the caller, :func:`twin.localtime.zone`); False: no such site."""
    return conn.execute("UPDATE sites SET time_zone = %s WHERE site_id = %s", (zone, site_id)).rowcount == 1


def list_sites(conn: psycopg.Connection) -> list[SiteSummary]:
    """Sites with room and device counts and devices online, headquarters first."""
    with conn.cursor(row_factory=class_row(SiteSummary)) as cur:
        return cur.execute(
            """SELECT s.site_id, s.name, s.role, s.latitude, s.longitude,
                 (SELECT count(*) FROM buildings b WHERE b.site_id = s.site_id AND b.removed_at IS NULL) AS buildings,
                 (SELECT count(*) FROM rooms r WHERE r.site_id = s.site_id AND r.removed_at IS NULL) AS rooms,
                 (SELECT count(*) FROM devices d WHERE d.site_id = s.site_id AND d.removed_at IS NULL) AS devices,
                 (SELECT count(*) FROM devices d JOIN device_status st ON st.device_id = d.id
                   WHERE d.site_id = s.site_id AND d.removed_at IS NULL AND st.state = 'online') AS online,
                 (SELECT count(*) FROM alarms a WHERE a.site_id = s.site_id AND a.state <> 'closed') AS open_alarms
               FROM sites s ORDER BY s.role = 'member', s.site_id"""
        ).fetchall()


@dataclass(frozen=True, slots=True)
class SiteAttention:
    """What asks for a look at a site now: its alarms not closed, by severity, and its devices (not removed)
    whose last status is offline."""

    site_id: str
    critical: int
    warning: int
    info: int
    offline: int


def attention(conn: psycopg.Connection) -> dict[str, SiteAttention]:
    """Every site's :class:`SiteAttention`, by site id (zeros for a site with nothing open)."""
    with conn.cursor(row_factory=class_row(SiteAttention)) as cur:
        rows = cur.execute(
            """SELECT s.site_id,
                 count(a.id) FILTER (WHERE a.severity = 'critical') AS critical,
                 count(a.id) FILTER (WHERE a.severity = 'warning') AS warning,
                 count(a.id) FILTER (WHERE a.severity = 'info') AS info,
                 (SELECT count(*) FROM devices d JOIN device_status st ON st.device_id = d.id
                   WHERE d.site_id = s.site_id AND d.removed_at IS NULL AND st.state = 'offline') AS offline
               FROM sites s LEFT JOIN alarms a ON a.site_id = s.site_id AND a.state <> 'closed'
               GROUP BY s.site_id ORDER BY s.site_id"""
        ).fetchall()
    return {r.site_id: r for r in rows}
