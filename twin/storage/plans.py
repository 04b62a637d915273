"""The building model as it is read and drawn: storeys, rooms with footprints, buildings, and a storey's
live snapshot for its floor plan.

The model is written by a BIM import (:mod:`twin.storage.model`). Footprints come back as shapely
geometries (None when the room has none), parsed in one vectorised call per query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import orjson
import psycopg
import shapely
from psycopg.rows import class_row
from psycopg.types.json import set_json_loads
from shapely.geometry.base import BaseGeometry

from twin.storage.devices import RoomDevice
from twin.storage.readings import LatestValue, means_by_room


@dataclass(frozen=True, slots=True)
class StoreyRow:
    """A storey of a site's building with its number of rooms (not removed)."""

    storey_id: int
    storey: str
    elevation_m: float
    building_id: int
    building: str
    rooms: int


@dataclass(frozen=True, slots=True)
class RoomFootprint:
    """A room of a storey with its footprint (metres, the model's floor plane)."""

    room_id: int
    global_id: str
    name: str
    long_name: str | None
    use: str | None
    footprint: BaseGeometry | None
    area_m2: float | None
    height_m: float | None


@dataclass(frozen=True, slots=True)
class RoomRow:
    """One room with its storey, building and site."""

    room_id: int
    name: str
    long_name: str | None
    use: str | None
    area_m2: float | None
    height_m: float | None
    site_id: str
    storey_id: int
    storey: str
    building: str
    site_name: str
    time_zone: str | None = None  # the site's (``sites.time_zone``)


@dataclass(frozen=True, slots=True)
class RoomLive:
    """What a room's page shows live: the room, its devices with status (by kind, then id; as
    :func:`twin.storage.devices.room_devices`) and their latest values (by device, then metric; as
    :func:`twin.storage.readings.room_latest_detail`)."""

    room: RoomRow
    devices: tuple[RoomDevice, ...]
    latest: tuple[LatestValue, ...]


@dataclass(frozen=True, slots=True)
class BuildingRef:
    """One building with its site."""

    building_id: int
    name: str
    site_id: str
    site_name: str


@dataclass(frozen=True, slots=True)
class BuildingRoom:
    """A room of a building for the 3D view: footprint, height, and its storey's name and elevation."""

    room_id: int
    name: str
    use: str | None
    footprint: BaseGeometry | None
    height_m: float | None
    storey_id: int
    storey: str
    elevation_m: float


@dataclass(frozen=True, slots=True)
class PlanRoom:
    """A room as the floor plan draws it."""

    room_id: int
    name: str
    use: str | None
    footprint: BaseGeometry | None


@dataclass(frozen=True, slots=True)
class PlanDevice:
    """A device of a storey (in one of its rooms, or on it without a room) with its position (may be None)."""

    device_id: str
    kind: str
    room_id: int | None
    x: float | None
    y: float | None


@dataclass(frozen=True, slots=True)
class StoreySnapshot:
    """Everything a floor plan shows of a storey, read in one statement.

    ``stamp`` is when a BIM import last wrote the storey's site: only an import moves rooms or
    devices, so ``rooms`` and ``devices`` are None when the caller already has them for this stamp
    (see :func:`storey_snapshot`). ``not_online`` maps the storey's devices that are not online to
    their state (``offline``, ``unknown``); ``latest`` is the latest value per room and metric (mean
    over the room's devices reporting it).
    """

    storey_id: int
    site_id: str
    stamp: datetime
    rooms: tuple[PlanRoom, ...] | None
    devices: tuple[PlanDevice, ...] | None
    not_online: Mapping[str, str]
    latest: Mapping[int, Mapping[str, float]]


_Row = TypeVar("_Row")


def _with_footprints(rows: list[_Row]) -> list[_Row]:
    """``rows`` with their WKB ``footprint`` parsed (one vectorised call)."""
    if not rows:
        return rows
    shapes = shapely.from_wkb([r.footprint for r in rows])  # type: ignore[attr-defined]
    return [replace(r, footprint=s) for r, s in zip(rows, shapes, strict=True)]  # type: ignore[type-var]


def list_storeys(conn: psycopg.Connection, site_id: str) -> list[StoreyRow]:
    """Storeys of a site's buildings, ordered by building and elevation."""
    with conn.cursor(row_factory=class_row(StoreyRow)) as cur:
        return cur.execute(
            """SELECT s.id AS storey_id, s.name AS storey, s.elevation_m, b.id AS building_id, b.name AS building,
                 (SELECT count(*) FROM rooms r WHERE r.storey_id = s.id AND r.removed_at IS NULL) AS rooms
               FROM storeys s JOIN buildings b ON b.id = s.building_id
               WHERE b.site_id = %s AND s.removed_at IS NULL AND b.removed_at IS NULL
               ORDER BY b.name, s.elevation_m, s.name""",
            (site_id,),
        ).fetchall()


def storey_rooms(conn: psycopg.Connection, storey_id: int) -> list[RoomFootprint]:
    """Rooms of a storey with footprints (shapely geometries, or None)."""
    with conn.cursor(row_factory=class_row(RoomFootprint)) as cur:
        rows = cur.execute(
            """SELECT id AS room_id, global_id, name, long_name, use, footprint, area_m2, height_m
               FROM rooms WHERE storey_id = %s AND removed_at IS NULL ORDER BY name""",
            (storey_id,),
        ).fetchall()
    return _with_footprints(rows)


def room(conn: psycopg.Connection, room_id: int) -> RoomRow | None:
    """One room with its storey, building and site."""
    with conn.cursor(row_factory=class_row(RoomRow)) as cur:
        return cur.execute(
            """SELECT r.id AS room_id, r.name, r.long_name, r.use, r.area_m2, r.height_m, r.site_id,
                      s.id AS storey_id, s.name AS storey, b.name AS building, si.name AS site_name, si.time_zone
               FROM rooms r JOIN storeys s ON s.id = r.storey_id JOIN buildings b ON b.id = s.building_id
               JOIN sites si ON si.site_id = r.site_id WHERE r.id = %s""",
            (room_id,),
        ).fetchone()


def room_live(conn: psycopg.Connection, room_id: int) -> RoomLive | None:
    """A room (:func:`room`), its devices with status and their latest values, in one statement (the room page
    reads them on every refresh); None: no such room."""
    rows = conn.execute(
        """SELECT r.id, r.name, r.long_name, r.use, r.area_m2, r.height_m, r.site_id, s.id, s.name, b.name, si.name,
                  si.time_zone,
                  d.id, d.site_id, d.device_id, d.kind, d.name, coalesce(st.state, 'unknown'), st.last_seen,
                  st.battery_pct, st.rssi_dbm, st.firmware,
                  l.metric_id, m.name, m.unit, l.ts, l.value, row_number() OVER (ORDER BY d.device_id, l.metric_id)
           FROM rooms r JOIN storeys s ON s.id = r.storey_id JOIN buildings b ON b.id = s.building_id
           JOIN sites si ON si.site_id = r.site_id
           LEFT JOIN devices d ON d.room_id = r.id AND d.removed_at IS NULL
           LEFT JOIN device_status st ON st.device_id = d.id
           LEFT JOIN (latest l JOIN metrics m ON m.metric_id = l.metric_id) ON l.device_id = d.id
           WHERE r.id = %s ORDER BY d.kind, d.device_id, l.metric_id""",
        (room_id,),
    ).fetchall()
    if not rows:
        return None
    devices: list[RoomDevice] = []
    latest: list[tuple[int, LatestValue]] = []
    for row in rows:
        if row[12] is None:
            continue
        if not devices or devices[-1].id != row[12]:
            devices.append(RoomDevice(*row[12:22]))
        if row[22] is not None:
            latest.append((row[27], LatestValue(row[14], row[15], *row[23:27])))
    latest.sort(key=lambda x: x[0])  # by device, then metric, as the database orders them
    return RoomLive(RoomRow(*rows[0][:12]), tuple(devices), tuple(v for _, v in latest))


def building(conn: psycopg.Connection, building_id: int) -> BuildingRef | None:
    """One building (not removed) with its site, or None."""
    with conn.cursor(row_factory=class_row(BuildingRef)) as cur:
        return cur.execute(
            """SELECT b.id AS building_id, b.name, b.site_id, s.name AS site_name FROM buildings b
               JOIN sites s ON s.site_id = b.site_id WHERE b.id = %s AND b.removed_at IS NULL""",
            (building_id,),
        ).fetchone()


def building_rooms(conn: psycopg.Connection, building_id: int) -> list[BuildingRoom]:
    """Rooms of a building with footprints (shapely), storey name and elevation, and height."""
    with conn.cursor(row_factory=class_row(BuildingRoom)) as cur:
        rows = cur.execute(
            """SELECT r.id AS room_id, r.name, r.use, r.footprint, r.height_m, s.id AS storey_id, s.name AS storey,
                      s.elevation_m
               FROM rooms r JOIN storeys s ON s.id = r.storey_id
               WHERE s.building_id = %s AND r.removed_at IS NULL AND s.removed_at IS NULL
               ORDER BY s.elevation_m, r.name""",
            (building_id,),
        ).fetchall()
    return _with_footprints(rows)


# The storey's devices: in its rooms, or on it without a room (a device of a removed room still counts);
# NOT MATERIALIZED: each use is planned with the index lookups of its join (latest, device_status).
_SNAPSHOT = """
WITH st AS (
  SELECT st.id, b.site_id, s.updated_at AS stamp
  FROM storeys st JOIN buildings b ON b.id = st.building_id JOIN sites s ON s.site_id = b.site_id
  WHERE st.id = %(storey)s
), devs AS NOT MATERIALIZED (
  SELECT d.id, d.device_id, d.kind, d.room_id, d.x, d.y FROM devices d
  WHERE d.removed_at IS NULL
    AND (d.room_id IN (SELECT id FROM rooms WHERE storey_id = %(storey)s)
         OR (d.room_id IS NULL AND d.storey_id = %(storey)s))
)
SELECT st.site_id, st.stamp,
  CASE WHEN st.stamp IS DISTINCT FROM %(known)s::timestamptz THEN (
    SELECT coalesce(json_agg(json_build_array(r.id, r.name, r.use, encode(r.footprint, 'hex')) ORDER BY r.name), '[]')
    FROM rooms r WHERE r.storey_id = %(storey)s AND r.removed_at IS NULL) END AS rooms,
  CASE WHEN st.stamp IS DISTINCT FROM %(known)s::timestamptz THEN (
    SELECT coalesce(json_agg(json_build_array(d.device_id, d.kind, d.room_id, d.x, d.y) ORDER BY d.device_id), '[]')
    FROM devs d) END AS devices,
  (SELECT coalesce(json_agg(json_build_array(d.device_id, coalesce(ds.state, 'unknown'))), '[]')
   FROM devs d LEFT JOIN device_status ds ON ds.device_id = d.id
   WHERE ds.state IS DISTINCT FROM 'online') AS not_online,
  (SELECT coalesce(json_agg(json_build_array(v.room_id, v.metric_id, v.value)), '[]')
   FROM (SELECT d.room_id, l.metric_id, avg(l.value) AS value FROM latest l JOIN devs d ON d.id = l.device_id
         WHERE d.room_id IS NOT NULL GROUP BY 1, 2) v) AS latest
FROM st"""


def storey_snapshot(conn: psycopg.Connection, storey_id: int, *, known: datetime | None = None
                    ) -> StoreySnapshot | None:
    """The storey's floor plan and its live state in one statement (one round trip); None: no such storey.

    With ``known``, the stamp of rooms and devices the caller already holds, they are not read again
    while the site's stamp is still ``known`` (``rooms`` and ``devices`` are then None): a plan
    refreshed every few seconds reads only what changes, the device states and the latest values.
    """
    with conn.cursor() as cur:
        set_json_loads(orjson.loads, cur)  # its JSON columns are most of the work of reading it
        row = cur.execute(_SNAPSHOT, {"storey": storey_id, "known": known}).fetchone()
    if row is None or row[1] is None:
        return None
    site_id, stamp, rooms, devices, not_online, latest = row
    return StoreySnapshot(storey_id, site_id, stamp, _plan_rooms(rooms), _plan_devices(devices),
                          dict(not_online), means_by_room(latest))


def _plan_rooms(rows: Sequence[Sequence[Any]] | None) -> tuple[PlanRoom, ...] | None:
    if rows is None:
        return None
    shapes = shapely.from_wkb([r[3] for r in rows]) if rows else []
    return tuple(PlanRoom(r[0], r[1], r[2], s) for r, s in zip(rows, shapes, strict=True))


def _plan_devices(rows: Sequence[Sequence[Any]] | None) -> tuple[PlanDevice, ...] | None:
    return None if rows is None else tuple(PlanDevice(*r) for r in rows)

