"""What changed between two revisions of a site's BIM model: a pure function over two TwinModels.

Buildings, storeys and rooms are matched by GlobalId, devices by device id (the id their
telemetry carries, so history stays attached to them). ``campus-twin bim load`` diffs the
twin in the database against the new file, ``campus-twin bim diff`` two files::

    diff = diff_models(old_model, new_model)
    diff.empty                      # True: "no changes"
    diff.to_json()["devices"]["changed"][0]
    # {"device_id": "ENV-1F-01", "name": "...", "changes": {"room": ["初一(1)班", "初一(2)班"], ...}}

Small numeric noise is not a change: positions within ``POSITION_TOLERANCE_M``, footprints
whose symmetric difference is under ``FOOTPRINT_TOLERANCE_M2``, lengths within
``LENGTH_TOLERANCE_M``. A site value the new file does not state (no georeference) keeps the
old one and is not a change.

A diff that removes much of a site is applied only when a planner confirms it;
:func:`removal_check` says why one needs that::

    removal_check(diff, {"buildings": 1, "storeys": 3, "rooms": 99, "devices": 3})
    # ["removes 50 of 99 rooms (51%, more than 20%)"]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from twin.domain import Building, Device, Room, Storey, TwinModel
from twin.identities import Identity

#: A device that moved less than this (m) did not move.
POSITION_TOLERANCE_M = 0.01
#: Lengths (heights, elevations) closer than this (m) are equal.
LENGTH_TOLERANCE_M = 0.001
#: Footprints whose symmetric difference is smaller than this (m²) are the same footprint.
FOOTPRINT_TOLERANCE_M2 = 0.01
#: Relative tolerance for stated quantities and coordinates of the site.
RELATIVE_TOLERANCE = 1e-6
#: A revision may remove up to this share of a site's rooms, and of its devices, without a confirmation.
MAX_REMOVALS = 0.2
#: Any removal of these needs a confirmation.
ALWAYS_CONFIRMED = ("buildings", "storeys")
#: Removals of these need one beyond ``max_removals`` of what is stored.
SHARE_CONFIRMED = ("rooms", "devices")

Changes = dict[str, list[Any]]  # field -> [old, new]


@dataclass(frozen=True, slots=True)
class Changed:
    """One matched element whose fields differ."""

    key: str
    name: str
    changes: Changes


@dataclass(frozen=True, slots=True)
class Section:
    """Added, removed and changed elements of one kind (rows are plain dicts, ready for JSON)."""

    added: tuple[dict[str, Any], ...] = ()
    removed: tuple[dict[str, Any], ...] = ()
    changed: tuple[Changed, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}


@dataclass(frozen=True, slots=True)
class ModelDiff:
    """The diff of two models of one site; ``first_import`` when there was no old model."""

    site: Changes = field(default_factory=dict)
    buildings: Section = Section()
    storeys: Section = Section()
    rooms: Section = Section()
    devices: Section = Section()
    first_import: bool = False

    SECTIONS = ("buildings", "storeys", "rooms", "devices")

    @property
    def empty(self) -> bool:
        return not self.first_import and not self.site and all(getattr(self, s).empty for s in self.SECTIONS)

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: getattr(self, s).counts() for s in self.SECTIONS}

    def to_json(self, *, lists: bool = True) -> dict[str, Any]:
        """The diff as JSON: ``no_changes``, counts, and (``lists``) the elements with their changes."""
        out: dict[str, Any] = {"no_changes": self.empty, "first_import": self.first_import, "counts": self.counts()}
        if lists and not self.first_import:
            out["site"] = self.site
            for name in self.SECTIONS:
                section: Section = getattr(self, name)
                key = "device_id" if name == "devices" else "global_id"
                out[name] = {
                    "added": list(section.added),
                    "removed": list(section.removed),
                    "changed": [{key: c.key, "name": c.name, "changes": c.changes} for c in section.changed],
                }
        return out


def diff_models(old: TwinModel | None, new: TwinModel) -> ModelDiff:
    """What changed from ``old`` (None: nothing loaded yet) to ``new``."""
    if old is None:
        rooms = _names(new.rooms)
        return ModelDiff(
            buildings=Section(added=tuple(_building_row(b) for b in new.buildings)),
            storeys=Section(added=tuple(_storey_row(s) for s in new.storeys)),
            rooms=Section(added=tuple(_room_row(r) for r in new.rooms)),
            devices=Section(added=tuple(_device_row(d, rooms) for d in new.devices)),
            first_import=True,
        )
    old_rooms, new_rooms = _names(old.rooms), _names(new.rooms)
    old_storeys, new_storeys = _names(old.storeys), _names(new.storeys)
    old_buildings, new_buildings = _names(old.buildings), _names(new.buildings)
    return ModelDiff(
        site=_site_changes(old, new),
        buildings=_section(old.buildings, new.buildings, lambda b: b.global_id, _building_row,
                           lambda a, b: _building_changes(a, b)),
        storeys=_section(old.storeys, new.storeys, lambda s: s.global_id, _storey_row,
                         lambda a, b: _storey_changes(a, b, old_buildings, new_buildings)),
        rooms=_section(old.rooms, new.rooms, lambda r: r.global_id, _room_row,
                       lambda a, b: _room_changes(a, b, old_storeys, new_storeys)),
        devices=_section(old.devices, new.devices, lambda d: d.device_id,
                         lambda d: _device_row(d, new_rooms), lambda a, b: _device_changes(a, b, old_rooms, new_rooms),
                         removed_row=lambda d: _device_row(d, old_rooms)),
    )


def _section(old: Sequence[Any], new: Sequence[Any], key: Callable[[Any], str], row: Callable[[Any], dict[str, Any]],
             changes: Callable[[Any, Any], Changes], removed_row: Callable[[Any], dict[str, Any]] | None = None
             ) -> Section:
    before = {key(x): x for x in old}
    after = {key(x): x for x in new}
    changed = []
    for k, x in after.items():
        if k in before and (found := changes(before[k], x)):
            changed.append(Changed(k, x.name, found))
    return Section(
        added=tuple(row(x) for k, x in after.items() if k not in before),
        removed=tuple((removed_row or row)(x) for k, x in before.items() if k not in after),
        changed=tuple(changed),
    )


def _names(items: Iterable[Any]) -> dict[str, str]:
    return {x.global_id: x.name for x in items}


def _building_row(b: Building) -> dict[str, Any]:
    return {"global_id": b.global_id, "name": b.name}


def _storey_row(s: Storey) -> dict[str, Any]:
    return {"global_id": s.global_id, "name": s.name, "elevation_m": s.elevation_m}


def _room_row(r: Room) -> dict[str, Any]:
    return {"global_id": r.global_id, "name": r.name, "use": r.use, "area_m2": r.area_m2}


def _device_row(d: Device, rooms: dict[str, str]) -> dict[str, Any]:
    return {"device_id": d.device_id, "name": d.name, "kind": d.kind,
            "room": rooms.get(d.room_global_id) if d.room_global_id else None}


def _put(changes: Changes, name: str, old: Any, new: Any, same: bool | None = None) -> None:
    if not (old == new if same is None else same):
        changes[name] = [old, new]


def _close(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance + RELATIVE_TOLERANCE * max(abs(a), abs(b))


def _site_changes(old: TwinModel, new: TwinModel) -> Changes:
    changes: Changes = {}
    a, b = old.site, new.site
    _put(changes, "name", a.name, b.name)
    _put(changes, "role", a.role, b.role)
    for name in ("latitude", "longitude", "elevation_m"):
        value = getattr(b, name)
        if value is not None:
            _put(changes, name, getattr(a, name), value, _close(getattr(a, name), value, 1e-9))
    if b.map_conversion is not None and a.map_conversion != b.map_conversion:
        changes["map_conversion"] = [_as_dict(a.map_conversion), _as_dict(b.map_conversion)]
    return changes


def _as_dict(value: Any) -> dict[str, Any] | None:
    return None if value is None else {k: getattr(value, k) for k in value.__slots__}


def _building_changes(a: Building, b: Building) -> Changes:
    changes: Changes = {}
    _put(changes, "name", a.name, b.name)
    return changes


def _storey_changes(a: Storey, b: Storey, old_buildings: dict[str, str], new_buildings: dict[str, str]) -> Changes:
    changes: Changes = {}
    _put(changes, "name", a.name, b.name)
    _put(changes, "elevation_m", a.elevation_m, b.elevation_m, _close(a.elevation_m, b.elevation_m, LENGTH_TOLERANCE_M))
    if a.building_global_id != b.building_global_id:
        changes["building"] = [old_buildings.get(a.building_global_id), new_buildings.get(b.building_global_id)]
    return changes


def _room_changes(a: Room, b: Room, old_storeys: dict[str, str], new_storeys: dict[str, str]) -> Changes:
    changes: Changes = {}
    _put(changes, "name", a.name, b.name)
    _put(changes, "long_name", a.long_name, b.long_name)
    _put(changes, "use", a.use, b.use)
    if a.storey_global_id != b.storey_global_id:
        changes["storey"] = [old_storeys.get(a.storey_global_id), new_storeys.get(b.storey_global_id)]
    if not same_footprint(a.footprint, b.footprint):
        changes["footprint"] = [a.area_m2, b.area_m2]
    _put(changes, "geometry", a.geometry, b.geometry)
    _put(changes, "height_m", a.height_m, b.height_m, _close(a.height_m, b.height_m, LENGTH_TOLERANCE_M))
    _put(changes, "quantity_area_m2", a.quantity_area_m2, b.quantity_area_m2,
         _close(a.quantity_area_m2, b.quantity_area_m2, 1e-4))
    _put(changes, "quantity_height_m", a.quantity_height_m, b.quantity_height_m,
         _close(a.quantity_height_m, b.quantity_height_m, LENGTH_TOLERANCE_M))
    return changes


def same_footprint(a: BaseGeometry | None, b: BaseGeometry | None) -> bool:
    """True when both are missing, or their symmetric difference is under ``FOOTPRINT_TOLERANCE_M2``."""
    if a is None or b is None:
        return a is None and b is None
    if shapely.equals_exact(a, b, tolerance=1e-9):
        return True
    try:
        return float(shapely.symmetric_difference(a, b).area) < FOOTPRINT_TOLERANCE_M2
    except shapely.errors.GEOSException:  # invalid geometry: compare exactly
        return bool(shapely.to_wkb(a) == shapely.to_wkb(b))


def _device_changes(a: Device, b: Device, old_rooms: dict[str, str], new_rooms: dict[str, str]) -> Changes:
    changes: Changes = {}
    if a.room_global_id != b.room_global_id:  # moved to another room
        changes["room"] = [old_rooms.get(a.room_global_id) if a.room_global_id else None,
                           new_rooms.get(b.room_global_id) if b.room_global_id else None]
    _put(changes, "name", a.name, b.name)
    _put(changes, "kind", a.kind, b.kind)
    _put(changes, "mapping", a.mapping, b.mapping)
    _put(changes, "global_id", a.global_id, b.global_id)
    _put(changes, "ifc_class", a.ifc_class, b.ifc_class)
    _put(changes, "id_source", a.id_source, b.id_source)
    _put(changes, "identities", [str(Identity(*i)) for i in a.identities], [str(Identity(*i)) for i in b.identities])
    if a.storey_global_id != b.storey_global_id:
        changes["storey_global_id"] = [a.storey_global_id, b.storey_global_id]
    old_point, new_point = (a.x, a.y, a.z), (b.x, b.y, b.z)
    if (None in old_point) != (None in new_point) or (
            None not in old_point and math.dist(old_point, new_point) > POSITION_TOLERANCE_M):  # type: ignore[arg-type]
        changes["position"] = [_rounded(old_point), _rounded(new_point)]
    return changes


def _rounded(point: tuple[float | None, ...]) -> list[float] | None:
    return None if None in point else [round(c, 3) for c in point]  # type: ignore[arg-type]


def diff_lines(diff: ModelDiff | dict[str, Any], limit: int = 20) -> list[str]:
    """The diff (or its JSON form) for people: one line per element, at most ``limit`` per section and verb."""
    data = diff.to_json() if isinstance(diff, ModelDiff) else diff
    counts = data["counts"]
    if data["first_import"]:
        return ["first import of this site: " + ", ".join(f"{c['added']} {s}" for s, c in counts.items())]
    if data["no_changes"]:
        return ["no changes"]
    lines = [f"site {name}: {old!r} -> {new!r}" for name, (old, new) in data["site"].items()]
    for section in ModelDiff.SECTIONS:
        key = "device_id" if section == "devices" else "global_id"
        singular = section[:-1] if section != "storeys" else "storey"
        for verb in ("added", "removed"):
            rows = data[section][verb]
            lines += [f"{verb} {singular} {r['name'] or r[key]} ({r[key]})" for r in rows[:limit]]
            if len(rows) > limit:
                lines.append(f"... and {len(rows) - limit} more {section} {verb}")
        changed = data[section]["changed"]
        for c in changed[:limit]:
            what = "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in c["changes"].items())
            lines.append(f"changed {singular} {c['name'] or c[key]} ({c[key]}): {what}")
        if len(changed) > limit:
            lines.append(f"... and {len(changed) - limit} more {section} changed")
    return lines


def removal_check(diff: ModelDiff, stored: Mapping[str, int], max_removals: float = MAX_REMOVALS) -> list[str]:
    """Why applying ``diff`` needs a planner's confirmation (``--allow-removals``); empty when it does not.

    ``stored`` counts the site's twin before the revision (``{"buildings": 1, "storeys": 3, "rooms": 99,
    "devices": 3}``). Removing any building or storey needs one; so does removing more than
    ``max_removals`` (a fraction) of the rooms or of the devices. A first import removes nothing.
    """
    reasons = []
    for section in ALWAYS_CONFIRMED:
        if removed := len(getattr(diff, section).removed):
            reasons.append(f"removes {removed} of {stored.get(section, removed)} {section}")
    for section in SHARE_CONFIRMED:
        removed = len(getattr(diff, section).removed)
        total = max(stored.get(section, 0), removed)
        if removed and removed > max_removals * total:
            reasons.append(f"removes {removed} of {total} {section} ({removed / total:.0%}, "
                           f"more than {max_removals:.0%})")
    return reasons


def diff_fingerprint(diff: ModelDiff | dict[str, Any]) -> str:
    """SHA-256 of the diff's JSON form (keys sorted): equal for the same file against the same twin.

    A plan shown to a planner is applied only if the diff at apply time has the same fingerprint.
    """
    data = diff.to_json() if isinstance(diff, ModelDiff) else diff
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)).hexdigest()
