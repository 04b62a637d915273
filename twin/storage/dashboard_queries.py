"""Reads the dashboard needs that the other storage modules do not offer.

Each is one query shaped for one view: device markers and health of a storey, a building's
rooms for the 3D view, device vitals, unmapped devices, cloud-class sessions in progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
import shapely
from psycopg.rows import dict_row

from twin.metrics import BY_NAME


def site(conn: psycopg.Connection, site_id: str) -> dict[str, Any] | None:
    """One site's ``site_id``, ``name`` and ``role``, or ``None`` when unknown."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT site_id, name, role FROM sites WHERE site_id = %s", (site_id,)).fetchone()


def storey_plan(conn: psycopg.Connection, storey_id: int) -> list[dict[str, Any]]:
    """Rooms of a storey for a floor plan: ``room_id``, ``name``, ``use``, ``footprint`` (shapely or None).

    Like :func:`twin.storage.model.storey_rooms` with fewer columns and the footprints
    parsed in one vectorised call (a 200-room storey is redrawn every few seconds).
    """
    rows = conn.execute(
        """SELECT id, name, use, footprint FROM rooms WHERE storey_id = %s AND removed_at IS NULL ORDER BY name""",
        (storey_id,),
    ).fetchall()
    shapes = shapely.from_wkb([r[3] for r in rows]) if rows else []
    return [{"room_id": r[0], "name": r[1], "use": r[2], "footprint": shape} for r, shape in zip(rows, shapes,
                                                                                                    strict=True)]


_DEVICE_MARKER = ("device_id", "kind", "room_id", "x", "y")


def storey_devices(conn: psycopg.Connection, storey_id: int) -> list[dict[str, Any]]:
    """Devices on a storey (in its rooms, or on it without a room) with kind, room and position (may be None).

    Their state changes all the time and is read apart (:func:`storey_devices_not_online`).
    """
    rows = conn.execute(
        """SELECT d.device_id, d.kind, d.room_id, d.x, d.y FROM devices d
           WHERE d.removed_at IS NULL
             AND (d.room_id IN (SELECT id FROM rooms WHERE storey_id = %(storey)s)
                  OR (d.room_id IS NULL AND d.storey_id = %(storey)s))
           ORDER BY d.device_id""",
        {"storey": storey_id},
    ).fetchall()
    return [dict(zip(_DEVICE_MARKER, r, strict=True)) for r in rows]


def storey_stamp(conn: psycopg.Connection, storey_id: int) -> datetime | None:
    """When a BIM import last wrote the storey's site (None: no such storey).

    Only an import moves rooms or devices, and every import that changes something
    stamps its site, so a plan drawn for this stamp is still the plan.
    """
    row = conn.execute(
        """SELECT s.updated_at FROM storeys st JOIN buildings b ON b.id = st.building_id
           JOIN sites s ON s.site_id = b.site_id WHERE st.id = %s""",
        (storey_id,),
    ).fetchone()
    return row[0] if row else None


def storey_devices_not_online(conn: psycopg.Connection, storey_id: int) -> dict[str, str]:
    """Device id -> state of the devices on a storey that are not online (``offline``, ``unknown``).

    A healthy storey returns (almost) nothing: the floor plan refreshes with this every few seconds.
    """
    rows = conn.execute(
        """SELECT d.device_id, coalesce(st.state, 'unknown')
           FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
           WHERE d.removed_at IS NULL AND st.state IS DISTINCT FROM 'online'
             AND (d.room_id IN (SELECT id FROM rooms WHERE storey_id = %(storey)s)
                  OR (d.room_id IS NULL AND d.storey_id = %(storey)s))""",
        {"storey": storey_id},
    ).fetchall()
    return dict(rows)


def room_health(conn: psycopg.Connection, room_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Per room ``(devices online, devices)``; rooms without devices are absent."""
    rows = conn.execute(
        """SELECT d.room_id, count(*) FILTER (WHERE st.state = 'online'), count(*)
           FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
           WHERE d.room_id = ANY(%s) AND d.removed_at IS NULL GROUP BY d.room_id""",
        (list(room_ids),),
    ).fetchall()
    return {room: (int(online), int(total)) for room, online, total in rows}


def room_devices(conn: psycopg.Connection, room_id: int) -> list[dict[str, Any]]:
    """The devices of a room with their status and vitals."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT d.id, d.site_id, d.device_id, d.kind, d.name, coalesce(st.state, 'unknown') AS state,
                      st.last_seen, st.battery_pct, st.rssi_dbm, st.firmware
               FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
               WHERE d.room_id = %s AND d.removed_at IS NULL ORDER BY d.kind, d.device_id""",
            (room_id,),
        ).fetchall()


def device(conn: psycopg.Connection, site_id: str, device_id: str) -> dict[str, Any] | None:
    """One device (not removed) by its site and id: ``id`` (the key), ``kind``, ``room_id``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT id, site_id, device_id, kind, room_id FROM devices
               WHERE site_id = %s AND device_id = %s AND removed_at IS NULL""",
            (site_id, device_id),
        ).fetchone()


def device_vitals(conn: psycopg.Connection, *, site_id: str | None = None, state: str | None = None,
                  limit: int = 500) -> list[dict[str, Any]]:
    """Devices with state, last seen, battery and signal; offline first, then by site and id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT d.site_id, d.device_id, d.kind, r.name AS room, d.room_id, d.mapping,
                      coalesce(st.state, 'unknown') AS state, st.last_seen, st.battery_pct, st.rssi_dbm, st.firmware
               FROM devices d LEFT JOIN rooms r ON r.id = d.room_id
               LEFT JOIN device_status st ON st.device_id = d.id
               WHERE d.removed_at IS NULL AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
                 AND (%(state)s::text IS NULL OR coalesce(st.state, 'unknown') = %(state)s)
               ORDER BY coalesce(st.state, 'unknown') = 'online', d.site_id, d.device_id LIMIT %(limit)s""",
            {"site": site_id, "state": state, "limit": limit},
        ).fetchall()


def device_state_counts(conn: psycopg.Connection, site_id: str | None = None) -> dict[str, int]:
    """Devices (not removed) per state: online, offline, unknown."""
    rows = conn.execute(
        """SELECT coalesce(st.state, 'unknown'), count(*) FROM devices d
           LEFT JOIN device_status st ON st.device_id = d.id
           WHERE d.removed_at IS NULL AND (%(site)s::text IS NULL OR d.site_id = %(site)s) GROUP BY 1""",
        {"site": site_id},
    ).fetchall()
    return {state: int(n) for state, n in rows}


def unknown_publishers(conn: psycopg.Connection, *, site_id: str | None = None,
                       limit: int = 200) -> list[dict[str, Any]]:
    """Devices publishing but not in the BIM: dead letters with reason "unknown device", per topic's device."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT split_part(topic, '/', 3) AS site_id, split_part(topic, '/', 4) AS device_id,
                      count(*) AS messages, min(received_at) AS first_seen, max(received_at) AS last_seen
               FROM dead_letters WHERE reason LIKE 'unknown device%%'
                 AND (%(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s)
               GROUP BY 1, 2 ORDER BY max(received_at) DESC LIMIT %(limit)s""",
            {"site": site_id, "limit": limit},
        ).fetchall()


def never_heard(conn: psycopg.Connection, *, site_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Devices in the BIM that never sent anything (no reading, never seen)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT d.site_id, d.device_id, d.kind, r.name AS room, d.mapping
               FROM devices d LEFT JOIN rooms r ON r.id = d.room_id
               LEFT JOIN device_status st ON st.device_id = d.id
               WHERE d.removed_at IS NULL AND st.last_seen IS NULL
                 AND NOT EXISTS (SELECT 1 FROM latest l WHERE l.device_id = d.id)
                 AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
               ORDER BY d.site_id, d.device_id LIMIT %(limit)s""",
            {"site": site_id, "limit": limit},
        ).fetchall()


def unmapped_in_bim(conn: psycopg.Connection, *, site_id: str | None = None,
                    limit: int = 500) -> list[dict[str, Any]]:
    """Devices in the BIM that could not be placed in a room."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT d.site_id, d.device_id, d.kind, d.name, d.ifc_class FROM devices d
               WHERE d.removed_at IS NULL AND d.mapping = 'unmapped'
                 AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
               ORDER BY d.site_id, d.device_id LIMIT %(limit)s""",
            {"site": site_id, "limit": limit},
        ).fetchall()


def building(conn: psycopg.Connection, building_id: int) -> dict[str, Any] | None:
    """One building with its site, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT b.id AS building_id, b.name, b.site_id, s.name AS site_name FROM buildings b
               JOIN sites s ON s.site_id = b.site_id WHERE b.id = %s AND b.removed_at IS NULL""",
            (building_id,),
        ).fetchone()


def building_rooms(conn: psycopg.Connection, building_id: int) -> list[dict[str, Any]]:
    """Rooms of a building with footprints (shapely), storey name and elevation, and height."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT r.id AS room_id, r.name, r.use, r.footprint, r.height_m, s.id AS storey_id, s.name AS storey,
                      s.elevation_m
               FROM rooms r JOIN storeys s ON s.id = r.storey_id
               WHERE s.building_id = %s AND r.removed_at IS NULL AND s.removed_at IS NULL
               ORDER BY s.elevation_m, r.name""",
            (building_id,),
        ).fetchall()
    blobs = [r["footprint"] for r in rows]
    shapes = shapely.from_wkb([b if b is not None else None for b in blobs]) if rows else []
    for row, shape in zip(rows, shapes, strict=True):
        row["footprint"] = shape
    return rows


_SESSION_METRICS = ("cloud_session", "cloud_role", "panel_state", "input_source", "screen_on")


def cloud_panels(conn: psycopg.Connection, since: datetime) -> list[dict[str, Any]]:
    """Panels taking part in a cloud-class session (``cloud_session`` > 0, reported since ``since``).

    One row per panel: site, room, ``session``, ``role`` (1 main classroom, 2 auxiliary) and
    the panel's latest ``panel_state``, ``input_source`` and ``screen_on`` (None if unknown).
    """
    ids = [BY_NAME[m].metric_id for m in _SESSION_METRICS]
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT d.site_id, s.name AS site_name, s.role AS site_role, d.device_id, d.room_id,
                      r.name AS room, sess.value AS session,
                      max(l.value) FILTER (WHERE l.metric_id = %(role)s) AS role,
                      max(l.value) FILTER (WHERE l.metric_id = %(state)s) AS panel_state,
                      max(l.value) FILTER (WHERE l.metric_id = %(input)s) AS input_source,
                      max(l.value) FILTER (WHERE l.metric_id = %(screen)s) AS screen_on
               FROM latest sess JOIN devices d ON d.id = sess.device_id
               JOIN sites s ON s.site_id = d.site_id LEFT JOIN rooms r ON r.id = d.room_id
               LEFT JOIN latest l ON l.device_id = d.id AND l.metric_id = ANY(%(ids)s)
               WHERE sess.metric_id = %(session)s AND sess.value > 0 AND sess.ts >= %(since)s
                 AND d.removed_at IS NULL
               GROUP BY d.site_id, s.name, s.role, d.device_id, d.room_id, r.name, sess.value
               ORDER BY sess.value, d.site_id, r.name""",
            {"session": ids[0], "role": ids[1], "state": ids[2], "input": ids[3], "screen": ids[4], "ids": ids[1:],
             "since": since},
        ).fetchall()
