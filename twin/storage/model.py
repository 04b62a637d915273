"""The spatial twin in SQL: save a site's BIM model, read sites, storeys, rooms and devices.

A re-import never deletes: rows missing from the new model get ``removed_at`` set,
rows present again get it cleared. Identity is ``(site_id, global_id)`` for the spatial
tree and ``(site_id, device_id)`` for devices, so readings stay attached to devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import shapely
from psycopg.rows import dict_row

from twin.domain import Site, TwinModel


def upsert_site(conn: psycopg.Connection, site: Site) -> None:
    conn.execute(
        """INSERT INTO sites (site_id, name, role, latitude, longitude, elevation_m)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (site_id) DO UPDATE SET name = excluded.name, role = excluded.role,
             latitude = coalesce(excluded.latitude, sites.latitude),
             longitude = coalesce(excluded.longitude, sites.longitude),
             elevation_m = coalesce(excluded.elevation_m, sites.elevation_m), updated_at = now()""",
        (site.site_id, site.name, site.role, site.latitude, site.longitude, site.elevation_m),
    )


@dataclass(frozen=True, slots=True)
class SaveResult:
    buildings: int
    storeys: int
    rooms: int
    devices: int
    removed_rooms: int
    removed_devices: int


def save_model(conn: psycopg.Connection, model: TwinModel) -> SaveResult:
    """Write ``model`` for its site inside the caller's transaction."""
    site_id = model.site.site_id
    upsert_site(conn, model.site)
    with conn.cursor() as cur:
        building_ids: dict[str, int] = {}
        for b in model.buildings:
            cur.execute(
                """INSERT INTO buildings (site_id, global_id, name) VALUES (%s, %s, %s)
                   ON CONFLICT (site_id, global_id) DO UPDATE SET name = excluded.name, removed_at = NULL
                   RETURNING id""",
                (site_id, b.global_id, b.name),
            )
            building_ids[b.global_id] = cur.fetchone()[0]  # type: ignore[index]
        storey_ids: dict[str, int] = {}
        for s in model.storeys:
            cur.execute(
                """INSERT INTO storeys (building_id, global_id, name, elevation_m) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (building_id, global_id) DO UPDATE SET name = excluded.name,
                     elevation_m = excluded.elevation_m, removed_at = NULL
                   RETURNING id""",
                (building_ids[s.building_global_id], s.global_id, s.name, s.elevation_m),
            )
            storey_ids[s.global_id] = cur.fetchone()[0]  # type: ignore[index]
        room_ids: dict[str, int] = {}
        for r in model.rooms:
            cur.execute(
                """INSERT INTO rooms (site_id, storey_id, global_id, name, long_name, use, footprint, area_m2, height_m)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (site_id, global_id) DO UPDATE SET storey_id = excluded.storey_id,
                     name = excluded.name, long_name = excluded.long_name, use = excluded.use,
                     footprint = excluded.footprint, area_m2 = excluded.area_m2,
                     height_m = excluded.height_m, removed_at = NULL
                   RETURNING id""",
                (site_id, storey_ids[r.storey_global_id], r.global_id, r.name, r.long_name, r.use,
                 shapely.to_wkb(r.footprint) if r.footprint is not None else None, r.area_m2, r.height_m),
            )
            room_ids[r.global_id] = cur.fetchone()[0]  # type: ignore[index]
        cur.executemany(
            """INSERT INTO devices (site_id, device_id, global_id, kind, ifc_class, name, room_id, storey_id,
                                    mapping, x, y, z)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (site_id, device_id) DO UPDATE SET global_id = excluded.global_id,
                 kind = excluded.kind, ifc_class = excluded.ifc_class, name = excluded.name,
                 room_id = excluded.room_id, storey_id = excluded.storey_id, mapping = excluded.mapping,
                 x = excluded.x, y = excluded.y, z = excluded.z, removed_at = NULL""",
            [
                (site_id, d.device_id, d.global_id, d.kind, d.ifc_class, d.name,
                 room_ids.get(d.room_global_id) if d.room_global_id else None,
                 storey_ids.get(d.storey_global_id) if d.storey_global_id else None,
                 d.mapping, d.x, d.y, d.z)
                for d in model.devices
            ],
        )
        cur.execute(
            """INSERT INTO device_status (device_id) SELECT id FROM devices WHERE site_id = %s
               ON CONFLICT DO NOTHING""",
            (site_id,),
        )
        removed_rooms = cur.execute(
            "UPDATE rooms SET removed_at = now() WHERE site_id = %s AND removed_at IS NULL AND NOT global_id = ANY(%s)",
            (site_id, list(room_ids)),
        ).rowcount
        removed_devices = cur.execute(
            "UPDATE devices SET removed_at = now() WHERE site_id = %s AND removed_at IS NULL AND NOT device_id = ANY(%s)",
            (site_id, [d.device_id for d in model.devices]),
        ).rowcount
        cur.execute(
            "UPDATE buildings SET removed_at = now() WHERE site_id = %s AND removed_at IS NULL AND NOT global_id = ANY(%s)",
            (site_id, list(building_ids)),
        )
    return SaveResult(len(building_ids), len(storey_ids), len(room_ids), len(model.devices),
                      removed_rooms, removed_devices)


def list_sites(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Sites with room and device counts and devices online, headquarters first."""
    with conn.cursor(row_factory=dict_row) as cur:
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


def list_storeys(conn: psycopg.Connection, site_id: str) -> list[dict[str, Any]]:
    """Storeys of a site's buildings, ordered by building and elevation."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT s.id AS storey_id, s.name AS storey, s.elevation_m, b.id AS building_id, b.name AS building,
                 (SELECT count(*) FROM rooms r WHERE r.storey_id = s.id AND r.removed_at IS NULL) AS rooms
               FROM storeys s JOIN buildings b ON b.id = s.building_id
               WHERE b.site_id = %s AND s.removed_at IS NULL AND b.removed_at IS NULL
               ORDER BY b.name, s.elevation_m, s.name""",
            (site_id,),
        ).fetchall()


def storey_rooms(conn: psycopg.Connection, storey_id: int) -> list[dict[str, Any]]:
    """Rooms of a storey with footprints (shapely geometries, or None)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT id AS room_id, global_id, name, long_name, use, footprint, area_m2, height_m
               FROM rooms WHERE storey_id = %s AND removed_at IS NULL ORDER BY name""",
            (storey_id,),
        ).fetchall()
    for row in rows:
        row["footprint"] = shapely.from_wkb(row["footprint"]) if row["footprint"] is not None else None
    return rows


def room(conn: psycopg.Connection, room_id: int) -> dict[str, Any] | None:
    """One room with its storey, building and site."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT r.id AS room_id, r.name, r.long_name, r.use, r.area_m2, r.height_m, r.site_id,
                      s.id AS storey_id, s.name AS storey, b.name AS building, si.name AS site_name
               FROM rooms r JOIN storeys s ON s.id = r.storey_id JOIN buildings b ON b.id = s.building_id
               JOIN sites si ON si.site_id = r.site_id WHERE r.id = %s""",
            (room_id,),
        ).fetchone()


def list_devices(conn: psycopg.Connection, site_id: str | None = None) -> list[dict[str, Any]]:
    """Devices (not removed) with kind, site, room, status and last seen."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT d.id, d.site_id, d.device_id, d.kind, d.ifc_class, d.name, d.mapping,
                      d.room_id, r.name AS room, r.use AS room_use, d.x, d.y, d.z,
                      coalesce(st.state, 'unknown') AS state, st.last_seen
               FROM devices d LEFT JOIN rooms r ON r.id = d.room_id
               LEFT JOIN device_status st ON st.device_id = d.id
               WHERE d.removed_at IS NULL AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
               ORDER BY d.site_id, r.name NULLS LAST, d.device_id""",
            {"site": site_id},
        ).fetchall()


def device_keys(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """``(site_id, device_id) -> devices.id`` for every device not removed (ingest's lookup)."""
    rows = conn.execute("SELECT site_id, device_id, id FROM devices WHERE removed_at IS NULL").fetchall()
    return {(s, d): i for s, d, i in rows}


def record_import(conn: psycopg.Connection, site_id: str, file_name: str, file_sha256: str, ifc_schema: str,
                  summary: dict[str, Any]) -> int:
    """Log one BIM import; return its id."""
    from psycopg.types.json import Jsonb

    row = conn.execute(
        """INSERT INTO bim_imports (site_id, file_name, file_sha256, ifc_schema, summary)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (site_id, file_name, file_sha256, ifc_schema, Jsonb(summary)),
    ).fetchone()
    return int(row[0])  # type: ignore[index]
