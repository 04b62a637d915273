"""The spatial twin in SQL: save a site's BIM model and load it back whole.

Reads of parts of it live by concern: :mod:`twin.storage.sites`, :mod:`twin.storage.plans`
(storeys, rooms, buildings, the floor-plan snapshot), :mod:`twin.storage.devices`.

A re-import never deletes: rows missing from the new model get ``removed_at`` set,
rows present again get it cleared. Identity is ``(site_id, global_id)`` for the spatial
tree and ``(site_id, device_id)`` for devices, so readings stay attached to devices.
Devices' hardware identities from the BIM are the model's: each save replaces the site's
(those bound from a CSV or the dashboard stay, :func:`twin.storage.identities.replace_ifc`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import shapely
from psycopg import sql

from twin.domain import Building, Device, MapConversion, Room, Site, Storey, TwinModel
from twin.storage.identities import BindError, Binding, bind, identities, replace_ifc

SITE_COLUMNS = ("name", "role", "latitude", "longitude", "elevation_m", "map_crs", "map_eastings", "map_northings",
                "map_orthogonal_height", "map_x_axis_abscissa", "map_x_axis_ordinate", "map_scale")
#: Site values a model may leave unstated (no georeference): the stored value is kept.
_KEPT_WHEN_NULL = SITE_COLUMNS[2:]


def _site_values(site: Site) -> tuple[Any, ...]:
    m = site.map_conversion
    conversion = ((m.crs, m.eastings, m.northings, m.orthogonal_height, m.x_axis_abscissa, m.x_axis_ordinate, m.scale)
                  if m is not None else (None,) * 7)
    return (site.name, site.role, site.latitude, site.longitude, site.elevation_m, *conversion)


def upsert_site(conn: psycopg.Connection, site: Site) -> None:
    """Insert or update a site; unstated georeference values keep what is stored; no-op when nothing differs."""
    columns = sql.SQL(", ").join(map(sql.Identifier, SITE_COLUMNS))
    values = sql.SQL(", ").join(
        sql.SQL("excluded.{}").format(sql.Identifier(c)) if c not in _KEPT_WHEN_NULL
        else sql.SQL("coalesce(excluded.{0}, sites.{0})").format(sql.Identifier(c)) for c in SITE_COLUMNS)
    conn.execute(
        sql.SQL("""INSERT INTO sites (site_id, {columns}) VALUES (%s, {params})
            ON CONFLICT (site_id) DO UPDATE SET ({columns}, updated_at) = ({values}, now())
            WHERE ({old}) IS DISTINCT FROM ({values})""").format(
            columns=columns, params=sql.SQL(", ").join([sql.Placeholder()] * len(SITE_COLUMNS)), values=values,
            old=sql.SQL(", ").join(sql.SQL("sites.{}").format(sql.Identifier(c)) for c in SITE_COLUMNS)),
        (site.site_id, *_site_values(site)),
    )


@dataclass(frozen=True, slots=True)
class SaveResult:
    buildings: int
    storeys: int
    rooms: int
    devices: int
    removed_rooms: int
    removed_devices: int
    #: Hardware ids of the model not stored: bound to another device (``"ENV-1: ieee:... is already bound ..."``).
    identity_problems: tuple[str, ...] = ()


_ROOM_COLUMNS = ("storey_id", "global_id", "name", "long_name", "use", "footprint", "area_m2", "height_m", "geometry",
                 "quantity_area_m2", "quantity_height_m")
_DEVICE_COLUMNS = ("device_id", "global_id", "kind", "ifc_class", "name", "room_id", "storey_id", "mapping", "x", "y",
                   "z", "id_source")
_STAGE_TYPES = {
    "storey_id": "integer", "room_id": "integer", "footprint": "bytea", "area_m2": "double precision",
    "height_m": "double precision", "quantity_area_m2": "double precision", "quantity_height_m": "double precision",
    "x": "double precision", "y": "double precision", "z": "double precision",
}


def _upsert_staged(cur: psycopg.Cursor[Any], table: str, key: str, columns: Sequence[str], site_id: str,
                   rows: Iterable[Sequence[Any]]) -> int:
    """COPY ``rows`` into a temporary table, mark the site's rows missing from it removed, then insert
    or update ``table`` (only rows that differ are touched); return how many rows were marked removed."""
    stage = sql.Identifier(f"stage_{table}")
    target = sql.Identifier(table)
    cols = [sql.Identifier(c) for c in columns]
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(stage))
    definitions = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_STAGE_TYPES.get(c, "text")))
                                     for c in columns)
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(stage, definitions))
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, sql.SQL(", ").join(cols))) as copy:
        for row in rows:
            copy.write_row(row)
    removed = 0
    names = sql.SQL(", ").join(cols)
    # A first import (no rows for the site yet; the import holds the site's lock) inserts
    # plainly: no speculative insertion for conflicts that cannot happen (about 10% of the
    # device INSERT; most of the rest is its three foreign-key checks, 7.6 us a row each).
    if not cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE site_id = %s)").format(target),
                       (site_id,)).fetchone()[0]:
        cur.execute(sql.SQL("INSERT INTO {table} (site_id, {names}) SELECT %s, {names} FROM {stage}").format(
            table=target, names=names, stage=stage), (site_id,))
        return removed
    # Rows of an earlier import missing from this one are removed first. The anti-join gets an
    # index and statistics on the stage: without them PostgreSQL 15 planned a nested loop over
    # the stage for every row, quadratic: 42 s for 21,840 devices instead of well under a second.
    cur.execute(sql.SQL("CREATE INDEX ON {} ({})").format(stage, sql.Identifier(key)))
    cur.execute(sql.SQL("ANALYZE {}").format(stage))
    removed = cur.execute(
        sql.SQL("""UPDATE {table} SET removed_at = now() WHERE site_id = %s AND removed_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.{key} = {table}.{key})""").format(
            table=target, stage=stage, key=sql.Identifier(key)),
        (site_id,),
    ).rowcount
    new_values = sql.SQL(", ").join(sql.SQL("excluded.{}").format(c) for c in cols)
    old_values = sql.SQL(", ").join(sql.SQL("{}.{}").format(target, c) for c in cols)
    cur.execute(
        sql.SQL("""INSERT INTO {table} (site_id, {names}) SELECT %s, {names} FROM {stage}
            ON CONFLICT (site_id, {key}) DO UPDATE SET ({names}, removed_at) = ({new_values}, NULL)
            WHERE {table}.removed_at IS NOT NULL OR ({old_values}) IS DISTINCT FROM ({new_values})""").format(
            table=target, names=names, stage=stage, key=sql.Identifier(key), new_values=new_values,
            old_values=old_values),
        (site_id,),
    )
    return removed


def save_model(conn: psycopg.Connection, model: TwinModel) -> SaveResult:
    """Write ``model`` for its site inside the caller's transaction.

    Rows are matched by GlobalId (buildings, storeys, rooms) and device id (devices); rows
    that did not change are not touched, rows missing from ``model`` get ``removed_at``.
    Rooms and devices go through COPY into temporary tables. The site's ``updated_at`` is
    set to the transaction's time: what was drawn from an older stamp is out of date.
    """
    site_id = model.site.site_id
    upsert_site(conn, model.site)
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO buildings (site_id, global_id, name) VALUES (%s, %s, %s)
               ON CONFLICT (site_id, global_id) DO UPDATE SET name = excluded.name, removed_at = NULL
               WHERE buildings.removed_at IS NOT NULL OR buildings.name IS DISTINCT FROM excluded.name""",
            [(site_id, b.global_id, b.name) for b in model.buildings],
        )
        building_ids = _ids(cur, "SELECT global_id, id FROM buildings WHERE site_id = %s", site_id,
                            {b.global_id for b in model.buildings})
        cur.executemany(
            """INSERT INTO storeys (building_id, global_id, name, elevation_m) VALUES (%s, %s, %s, %s)
               ON CONFLICT (building_id, global_id) DO UPDATE SET name = excluded.name,
                 elevation_m = excluded.elevation_m, removed_at = NULL
               WHERE storeys.removed_at IS NOT NULL
                  OR (storeys.name, storeys.elevation_m) IS DISTINCT FROM (excluded.name, excluded.elevation_m)""",
            [(building_ids[s.building_global_id], s.global_id, s.name, s.elevation_m) for s in model.storeys],
        )
        storey_rows = cur.execute(
            "SELECT building_id, global_id, id FROM storeys WHERE building_id = ANY(%s)", (list(building_ids.values()),)
        ).fetchall()
        by_key = {(b, g): i for b, g, i in storey_rows}
        storey_ids = {s.global_id: by_key[(building_ids[s.building_global_id], s.global_id)] for s in model.storeys}
        removed_rooms = _upsert_staged(cur, "rooms", "global_id", _ROOM_COLUMNS, site_id, (
            (storey_ids[r.storey_global_id], r.global_id, r.name, r.long_name, r.use,
             shapely.to_wkb(r.footprint) if r.footprint is not None else None, r.area_m2, r.height_m, r.geometry,
             r.quantity_area_m2, r.quantity_height_m)
            for r in model.rooms
        ))
        room_ids = _ids(cur, "SELECT global_id, id FROM rooms WHERE site_id = %s", site_id,
                        {r.global_id for r in model.rooms})
        removed_devices = _upsert_staged(cur, "devices", "device_id", _DEVICE_COLUMNS, site_id, (
            (d.device_id, d.global_id, d.kind, d.ifc_class, d.name,
             room_ids.get(d.room_global_id) if d.room_global_id else None,
             storey_ids.get(d.storey_global_id) if d.storey_global_id else None,
             d.mapping, d.x, d.y, d.z, d.id_source)
            for d in model.devices
        ))
        cur.execute(
            """INSERT INTO device_status (device_id) SELECT d.id FROM devices d
               WHERE d.site_id = %s AND NOT EXISTS (SELECT 1 FROM device_status s WHERE s.device_id = d.id)""",
            (site_id,),
        )
        cur.execute(
            """UPDATE storeys SET removed_at = now() WHERE removed_at IS NULL AND NOT id = ANY(%s)
               AND building_id IN (SELECT id FROM buildings WHERE site_id = %s)""",
            (list(storey_ids.values()), site_id),
        )
        cur.execute(
            "UPDATE buildings SET removed_at = now() WHERE site_id = %s AND removed_at IS NULL AND NOT id = ANY(%s)",
            (site_id, list(building_ids.values())),
        )
        # The site's stamp says its plan may have changed (the dashboard redraws cached floor plans).
        cur.execute("UPDATE sites SET updated_at = now() WHERE site_id = %s", (site_id,))
    problems = _replace_ifc_identities(conn, site_id, {d.device_id: d.identities for d in model.devices if d.identities})
    return SaveResult(len(building_ids), len(storey_ids), len(room_ids), len(model.devices),
                      removed_rooms, removed_devices, tuple(problems))


def _replace_ifc_identities(conn: psycopg.Connection, site_id: str,
                            found: dict[str, tuple[tuple[str, str], ...]]) -> list[str]:
    """:func:`twin.storage.identities.replace_ifc`, binding the whole set at once when nothing conflicts (a few
    statements, not a savepoint and three statements per id: the first load of a generated school of 1,950
    devices with ids took 0.8 s instead of 2.8 s, 0.4 s without ids); when something does, id by id, so that the
    rest is stored and each conflict named."""
    replace_ifc(conn, site_id, {})  # the site's ids from the previous revision go; bound ones stay
    bindings = [Binding(device_id, kind, hw) for device_id, stated in found.items() for kind, hw in stated]
    if not bindings:
        return []
    try:
        with conn.transaction():
            bind(conn, site_id, bindings, source="ifc", by="ifc")
    except BindError:
        return replace_ifc(conn, site_id, found)
    return []


def without_bound_identities(conn: psycopg.Connection, model: TwinModel) -> TwinModel:
    """``model`` less the hardware ids it states that are already bound to the same device from a CSV or the
    dashboard: those stay bound as they are (kept across revisions), so they are no change of the model, and
    loading such a file again is "no changes"."""
    if not any(d.identities for d in model.devices):
        return model
    bound = {(r.device_id, r.kind, r.hardware_id) for r in identities(conn, site_id=model.site.site_id)
             if r.source == "bind"}
    if not bound:
        return model
    return replace(model, devices=tuple(
        replace(d, identities=tuple(i for i in d.identities if (d.device_id, *i) not in bound)) if d.identities else d
        for d in model.devices))


def _ids(cur: psycopg.Cursor[Any], query: str, site_id: str, wanted: set[str]) -> dict[str, int]:
    return {g: i for g, i in cur.execute(query, (site_id,)).fetchall() if g in wanted}


def load_model(conn: psycopg.Connection, site_id: str) -> TwinModel | None:
    """The site's current twin (rows not removed) as a :class:`TwinModel`; None when the site is unknown.

    Devices carry the hardware identities stored from the BIM (not those bound afterwards)."""
    with conn.cursor() as cur:
        site_row = cur.execute(sql.SQL("SELECT {} FROM sites WHERE site_id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, SITE_COLUMNS))), (site_id,)).fetchone()
        if site_row is None:
            return None
        name, role, lat, lon, elevation, crs, e, n, h, xa, xo, scale = site_row
        conversion = MapConversion(crs, e, n, h if h is not None else 0.0, xa if xa is not None else 1.0,
                                   xo if xo is not None else 0.0, scale if scale is not None else 1.0) \
            if e is not None and n is not None else None
        site = Site(site_id, name, role, lat, lon, elevation, conversion)
        buildings = tuple(Building(g, nm) for g, nm in cur.execute(
            "SELECT global_id, name FROM buildings WHERE site_id = %s AND removed_at IS NULL ORDER BY id", (site_id,)))
        storey_rows = cur.execute(
            """SELECT s.id, s.global_id, b.global_id, s.name, s.elevation_m FROM storeys s
               JOIN buildings b ON b.id = s.building_id
               WHERE b.site_id = %s AND s.removed_at IS NULL AND b.removed_at IS NULL ORDER BY s.id""",
            (site_id,)).fetchall()
        storey_gid = {i: g for i, g, *_ in storey_rows}
        storeys = tuple(Storey(g, b, nm, el) for _, g, b, nm, el in storey_rows)
        room_rows = cur.execute(
            """SELECT id, storey_id, global_id, name, long_name, use, footprint, area_m2, height_m, geometry,
                      quantity_area_m2, quantity_height_m
               FROM rooms WHERE site_id = %s AND removed_at IS NULL ORDER BY id""", (site_id,)).fetchall()
        room_gid = {row[0]: row[2] for row in room_rows}
        rooms = tuple(
            Room(g, storey_gid.get(st, ""), nm, ln, use, shapely.from_wkb(fp) if fp is not None else None, area, height,
                 geometry, qa, qh)
            for _, st, g, nm, ln, use, fp, area, height, geometry, qa, qh in room_rows
        )
        found: dict[str, list[tuple[str, str]]] = {}
        for dev, kind, hw in cur.execute(
                """SELECT d.device_id, i.kind, i.hardware_id FROM device_identities i JOIN devices d ON d.id = i.device_id
                   WHERE d.site_id = %s AND d.removed_at IS NULL AND i.source = 'ifc'""", (site_id,)):
            found.setdefault(dev, []).append((kind, hw))
        devices = tuple(
            Device(dev, g, kind, cls, nm, room_gid.get(room) if room is not None else None,
                   storey_gid.get(st) if st is not None else None, mapping, x, y, z, src,
                   tuple(sorted(found.get(dev, ()))))
            for dev, g, kind, cls, nm, room, st, mapping, x, y, z, src in cur.execute(
                sql.SQL("SELECT {} FROM devices WHERE site_id = %s AND removed_at IS NULL ORDER BY id").format(
                    sql.SQL(", ").join(map(sql.Identifier, _DEVICE_COLUMNS))), (site_id,))
        )
    return TwinModel(site, buildings, storeys, rooms, devices)


def device_keys(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """``(site_id, device_id) -> devices.id`` for every device not removed (ingest's lookup)."""
    rows = conn.execute("SELECT site_id, device_id, id FROM devices WHERE removed_at IS NULL").fetchall()
    return {(s, d): i for s, d, i in rows}
