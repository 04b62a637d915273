"""Read an IFC file into the twin's spatial model (pure reading: no database).

::

    model = read_model(Path("school.ifc"), site_id="m01")
    [(r.name, r.use, r.area_m2) for r in model.rooms]

An ifcZIP is read through its one member (:mod:`models_bim.archive`). Nothing is read from a
file that is not a whole model (:mod:`models_bim.checks`): duplicate entity ids, references
to missing entities, not exactly one IfcProject, no site, building or storey.

Lengths become metres (``ifc_length * calculate_unit_scale(file) = metres``); stated areas
become m² with the file's area unit, else its length unit squared (:mod:`models_bim.units`).
Devices map to rooms by containment in an IfcSpace, else by IfcRelReferencedInSpatialStructure,
else by their placement point inside a room footprint of their storey, else stay unmapped.
Their hardware identities come from their property sets (:func:`models_bim.devices.device_identities`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import ifcopenshell
import ifcopenshell.ifcopenshell_wrapper
import shapely
from shapely.geometry import Point

from models_bim.archive import ifc_spf
from models_bim.checks import EXACT, check_entities, check_project, check_spatial_tree, scan_entities
from models_bim.devices import (
    IDENTITY_PSETS,
    declared_device_id_and_source,
    device_elements,
    device_identities,
    global_id_device_id,
)
from models_bim.errors import IfcReadError
from models_bim.footprint_process import FootprintProcess, footprint_source
from models_bim.footprints import Footprint, FootprintJob, fallback_footprint
from models_bim.georef import map_conversion, site_location
from models_bim.index import FileIndex, Placements
from models_bim.room_use import classify_room, room_names
from models_bim.spatial import SpatialTree, spatial_tree
from models_bim.units import file_units
from twin.domain import Device, Mapping, Room, Site, SiteRole, TwinModel
from twin.ifc_header import HEADER_BYTES, NotIfcSpf, spf_schema

Progress = Callable[[str, int, int], None]

#: Schema families read; of IFC4X3, the releases IfcOpenShell has (IFC4X3_ADD2 in 0.9), see :func:`readable_schemas`.
SUPPORTED_SCHEMA = re.compile(r"^(IFC2X3|IFC4|IFC4X3(_[A-Z0-9]+)?)$")
_TRAILER_BYTES = 4096
_COMMENT = re.compile(rb"/\*.*?\*/", re.DOTALL)
_LAST_ENTITY = re.compile(rb"#(\d+)\s*=(?!.*#\d+\s*=)", re.DOTALL)
#: Share of entity lines ifcopenshell may skip (unknown classes, bad lines) before a file counts as corrupt.
MAX_UNREADABLE_SHARE = 0.01
#: How far (m) below a room's floor or above its top a device point still counts as in the room.
Z_TOLERANCE_M = 0.5


def readable_schemas() -> tuple[str, ...]:
    """The schemas this IfcOpenShell reads, of the supported families (``("IFC2X3", "IFC4", "IFC4X3_ADD2")``)."""
    return tuple(s for s in ifcopenshell.ifcopenshell_wrapper.schema_names() if SUPPORTED_SCHEMA.match(s))


def open_ifc(path: Path) -> ifcopenshell.file:
    """Open an IFC-SPF file, or raise :class:`IfcReadError` saying in one line what is wrong with it.

    Checks the header and the entities first (:func:`check_header`, :func:`models_bim.checks.check_entities`).
    """
    path = Path(path)
    check_header(path)
    return _open_checked(path, check_entities(path))


def _open_checked(path: Path, declared: int) -> ifcopenshell.file:
    """:func:`open_ifc` after the header and entity checks have passed (``declared``: entities the text defines)."""
    try:
        ifc_file = ifcopenshell.open(str(path))
    except Exception as exc:  # noqa: BLE001 - ifcopenshell raises several types for bad input
        raise IfcReadError(f"truncated or corrupt IFC: {exc}") from None
    _check_entities(path, ifc_file, declared)
    return ifc_file


def check_header(path: Path) -> None:
    """Raise :class:`IfcReadError` unless ``path`` starts and ends like an IFC-SPF file of a supported schema."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(HEADER_BYTES)
            fh.seek(max(0, size - _TRAILER_BYTES))
            tail = fh.read()
    except FileNotFoundError:
        raise IfcReadError(f"file not found: {path}") from None
    except OSError as exc:
        raise IfcReadError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0 or not head.strip():
        raise IfcReadError("empty file")
    try:
        schema = spf_schema(head)
    except NotIfcSpf as exc:
        raise IfcReadError(str(exc)) from None
    readable = readable_schemas()
    if schema not in readable:
        raise IfcReadError(f"unsupported schema {schema or '(none)'} (IfcOpenShell {ifcopenshell.version} reads "
                           f"{', '.join(readable)})")
    if b"END-ISO-10303-21" not in tail.upper():
        raise IfcReadError("truncated or corrupt IFC: no END-ISO-10303-21 trailer")
    _check_last_entity(tail)


def _check_last_entity(tail: bytes) -> None:
    """Raise if the data section does not end with a whole entity: a file cut short with a trailer appended."""
    upper = tail.upper()
    end = upper.rfind(b"ENDSEC", 0, upper.rfind(b"END-ISO-10303-21"))
    if end <= 0:
        return  # the last entity is longer than the tail: nothing to tell
    before = _COMMENT.sub(b"", tail[:end]).rstrip()
    if before and not before.endswith(b";"):
        last = _LAST_ENTITY.search(before)
        which = f"entity #{last.group(1).decode()}" if last else "last entity"
        raise IfcReadError(f"truncated or corrupt IFC: the {which} before ENDSEC is cut short")


def _check_entities(path: Path, ifc_file: ifcopenshell.file, declared: int) -> None:
    """Raise if ifcopenshell skipped many entity lines, or if a rooted entity has no GlobalId.

    The parser drops lines it cannot read without saying so; comparing with the ``#n=`` the text
    defines (``declared``, counted at line starts) tells. When that count looks wrong, the exact
    one (definitions anywhere, outside strings and comments) decides.
    """
    parsed = len(ifc_file.entity_names())
    if declared - parsed > MAX_UNREADABLE_SHARE * declared or declared < parsed:
        declared = scan_entities(path, EXACT).declared
    if declared and declared - parsed > MAX_UNREADABLE_SHARE * declared:
        raise IfcReadError(f"truncated or corrupt IFC: {declared - parsed} of {declared} entities unreadable")
    for element in ifc_file.by_type("IfcRoot"):
        if not element[0]:  # GlobalId
            raise IfcReadError(f"truncated or corrupt IFC: #{element.id()} {element.is_a()} has no GlobalId")


def read_model(path: Path, *, site_id: str, site_name: str | None = None, role: SiteRole = "member",
               progress: Progress | None = None) -> TwinModel:
    """The site, buildings, storeys, rooms (with footprints) and devices of the IFC file at ``path``.

    ``path`` is an IFC-SPF file or an ifcZIP. ``progress(stage, done, total)`` is called while
    footprints are computed. Raises :class:`IfcReadError` (and no other exception) when the file
    cannot be read or is not a whole model.
    """
    with ifc_spf(Path(path)) as spf:
        return _read_spf(spf, site_id=site_id, site_name=site_name, role=role, progress=progress)


def _read_spf(path: Path, *, site_id: str, site_name: str | None, role: SiteRole,
              progress: Progress | None) -> TwinModel:
    check_header(path)
    declared = check_entities(path)  # before IfcOpenShell spends time and memory on a broken file
    # A big file's footprints come from a child process that starts now and opens the file
    # alongside us; else the geometry iterator starts on its own threads once the file is open.
    process = footprint_source(path)
    try:
        ifc_file = _open_checked(path, declared)
        return _read(ifc_file, site_id=site_id, site_name=site_name, role=role, progress=progress,
                     footprint_process=process)
    except IfcReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file that opens but cannot be walked is corrupt
        raise IfcReadError(f"truncated or corrupt IFC: {type(exc).__name__}: {exc}") from None
    finally:
        if process is not None:
            process.close()


def _read(ifc_file: ifcopenshell.file, *, site_id: str, site_name: str | None, role: SiteRole,
          progress: Progress | None, footprint_process: FootprintProcess | None = None) -> TwinModel:
    check_project(ifc_file)
    job = footprint_process or FootprintJob(ifc_file, ifc_file.by_type("IfcSpace"))
    units = file_units(ifc_file)
    scale = units.length
    tree = spatial_tree(ifc_file, scale)
    check_spatial_tree(tree)
    warnings = list(tree.warnings)
    spaces = [space for space, _ in tree.spaces.values()]
    index = FileIndex(ifc_file, pset_names=set(IDENTITY_PSETS), quantities_for={s.id() for s in spaces})
    placements = Placements()
    devices = _devices(ifc_file, index, placements, tree, scale, warnings)
    latitude, longitude, elevation = site_location(tree.sites, scale, warnings)
    conversion = map_conversion(ifc_file, scale, warnings)
    footprints = job.collect(progress)
    rooms = []
    for gid, (space, storey_gid) in tree.spaces.items():
        stated_area = index.floor_area(space)
        stated_height = index.height(space)
        quantity_area = round(stated_area * units.area, 4) if stated_area else None
        quantity_height = round(stated_height * scale, 4) if stated_height else None
        footprint = footprints.get(gid)
        if footprint is None:
            footprint = fallback_footprint(space, placements, scale, quantity_height)
            if footprint is not None:
                footprints[gid] = footprint
        rooms.append(_room(space, storey_gid, footprint, quantity_area, quantity_height))
    if not rooms:
        warnings.append("no IfcSpace in the file: no rooms; devices stay unmapped")
    if missing := sum(r.footprint is None for r in rooms):
        warnings.append(f"{missing} of {len(rooms)} rooms have no geometry")
    devices = _map_by_geometry(devices, tree, footprints)
    if unmapped := sum(d.mapping == "unmapped" for d in devices):
        warnings.append(f"{unmapped} of {len(devices)} devices are not in a room")
    first = tree.sites[0] if tree.sites else None
    name = site_name or (first.Name.strip() if first is not None and isinstance(first.Name, str)
                         and first.Name.strip() else None) or site_id
    site = Site(site_id=site_id, name=name, role=role, latitude=latitude, longitude=longitude,
                elevation_m=elevation, map_conversion=conversion)
    return TwinModel(
        site=site,
        buildings=tuple(tree.buildings.values()),
        storeys=tuple(tree.storeys.values()),
        rooms=tuple(rooms),
        devices=devices,
        schema=getattr(ifc_file, "schema_identifier", None) or ifc_file.schema,
        warnings=tuple(warnings),
        ifc_project=next((p.GlobalId or "" for p in ifc_file.by_type("IfcProject")), ""),
        ifc_site=(first.GlobalId or "") if first is not None else "",
    )


def _room(space: ifcopenshell.entity_instance, storey_gid: str, footprint: Footprint | None,
          quantity_area_m2: float | None, quantity_height_m: float | None) -> Room:
    ifc_name, ifc_long_name = space.Name, space.LongName
    name, other_name = room_names(ifc_name, ifc_long_name)
    texts = [ifc_long_name, ifc_name, getattr(space, "ObjectType", None), *_classification_texts(space)]
    height = footprint.height_m if footprint is not None and footprint.height_m > 0 else quantity_height_m
    return Room(
        global_id=space.GlobalId,
        storey_global_id=storey_gid,
        name=name or space.GlobalId,
        long_name=other_name,
        use=classify_room(t.strip() if isinstance(t, str) else None for t in texts),
        footprint=footprint.polygon if footprint else None,
        area_m2=round(footprint.area_m2, 4) if footprint else None,
        height_m=round(height, 4) if height is not None else None,
        geometry=footprint.source if footprint else "none",
        quantity_area_m2=quantity_area_m2,
        quantity_height_m=quantity_height_m,
    )


def _classification_texts(element: ifcopenshell.entity_instance) -> list[str]:
    texts: list[str] = []
    for rel in getattr(element, "HasAssociations", ()) or ():
        if rel.is_a("IfcRelAssociatesClassification"):
            ref = rel.RelatingClassification
            for attr in ("Name", "Identification", "ItemReference", "Description"):
                value = getattr(ref, attr, None)
                if isinstance(value, str):
                    texts.append(value)
    return texts


class _RoomLocator:
    """Finds the room whose footprint holds a point: among a storey's rooms, or by height when the storey is unknown."""

    def __init__(self, tree: SpatialTree, footprints: dict[str, Footprint]) -> None:
        self.entries = [(gid, storey_gid, footprints[gid]) for gid, (_, storey_gid) in tree.spaces.items()
                        if gid in footprints]
        self.index = shapely.STRtree([fp.polygon for _, _, fp in self.entries]) if self.entries else None

    def room_at(self, x: float, y: float, z: float, storey_gid: str | None) -> tuple[str, str] | None:
        if self.index is None:
            return None
        point = Point(x, y)
        best: tuple[float, str, str] | None = None
        for i in self.index.query(point):
            gid, room_storey, fp = self.entries[int(i)]
            if storey_gid is not None and room_storey != storey_gid:
                continue
            if storey_gid is None and not fp.z_min - Z_TOLERANCE_M <= z <= fp.z_max + Z_TOLERANCE_M:
                continue
            if fp.polygon.covers(point) and (best is None or fp.area_m2 < best[0]):
                best = (fp.area_m2, gid, room_storey)
        return (best[1], best[2]) if best else None


def _devices(ifc_file: ifcopenshell.file, index: FileIndex, placements: Placements, tree: SpatialTree,
             scale: float, warnings: list[str]) -> tuple[Device, ...]:
    """Every device with its kind, id, position and room by containment or reference (geometry comes later)."""
    elements = device_elements(ifc_file, index)
    declared = [declared_device_id_and_source(element, index) for element, _ in elements]
    counts = Counter(found[0] for found in declared if found)
    devices: list[Device] = []
    for (element, kind), found in zip(elements, declared, strict=True):
        gid = element[0]  # GlobalId
        if found is None or counts[found[0]] > 1:
            if found is not None:
                warnings.append(f"device id {found[0]!r} used {counts[found[0]]} times: {gid} gets its "
                                f"GlobalId-based id")
            device_id, id_source = global_id_device_id(gid), "derived"
        else:
            device_id, id_source = found
        point = placements.point(element, scale)
        room_gid, storey_gid, mapping = _place(element, index, tree)
        devices.append(Device(
            device_id=device_id,
            global_id=gid,
            kind=kind,
            ifc_class=element.is_a(),
            name=(element[2] or "").strip(),
            room_global_id=room_gid,
            storey_global_id=storey_gid,
            mapping=mapping,
            x=point[0] if point else None,
            y=point[1] if point else None,
            z=point[2] if point else None,
            id_source=id_source,
        ))
    if derived := sum(d.id_source == "derived" for d in devices):
        warnings.append(f"{derived} of {len(devices)} device ids derived from the GlobalId (no DeviceId, no Tag)")
    found, problems = device_identities([(d.device_id, e) for d, (e, _) in zip(devices, elements, strict=True)], index)
    warnings.extend(problems)
    return tuple(replace(d, identities=found[d.device_id]) if d.device_id in found else d for d in devices)


def _place(element: ifcopenshell.entity_instance, index: FileIndex,
           tree: SpatialTree) -> tuple[str | None, str | None, Mapping]:
    """(room GlobalId, storey GlobalId, mapping) of a device by containment or reference, else ``"unmapped"``."""
    key = element.id()
    container_gid = index.container_gid.get(key)
    if container_gid is not None and container_gid in tree.spaces:
        return container_gid, tree.spaces[container_gid][1], "containment"
    for structure in index.references.get(key, ()):
        if structure.GlobalId in tree.spaces:
            return structure.GlobalId, tree.spaces[structure.GlobalId][1], "reference"
    storey_gid = tree.storey_for(container_gid) if container_gid is not None else None
    return None, storey_gid, "unmapped"


def _map_by_geometry(devices: tuple[Device, ...], tree: SpatialTree,
                     footprints: dict[str, Footprint]) -> tuple[Device, ...]:
    """Devices in no room by containment or reference: the room whose footprint holds their placement point."""
    if not any(d.mapping == "unmapped" and d.x is not None for d in devices):
        return devices
    locator = _RoomLocator(tree, footprints)
    out = []
    for d in devices:
        if d.mapping == "unmapped" and d.x is not None and d.y is not None and d.z is not None:
            found = locator.room_at(d.x, d.y, d.z, d.storey_global_id)
            if found is not None:
                d = replace(d, room_global_id=found[0], storey_global_id=found[1], mapping="geometry")
        out.append(d)
    return tuple(out)
