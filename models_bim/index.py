"""Look-ups the reader needs, built once per file by walking the relationships.

``ifcopenshell.util.element`` answers one element at a time through inverse attributes
(``get_container``, ``get_type``, ``get_pset``); on a campus with 20,000 devices that is
most of the import. :class:`FileIndex` walks each relationship class once instead::

    index = FileIndex(ifc_file, pset_names={"Pset_CampusTwin"})
    index.container_gid.get(device.id())      # GlobalId of the IfcSpace / IfcBuildingStorey holding it
    index.pset_value(device, "Pset_CampusTwin", "DeviceId")

It keeps what the reader asks for, not the relationships: ids, GlobalIds and values, and entity
wrappers only where the reader needs the entity (references, type objects). A wrapper costs
about 180 bytes of RSS; a campus has 24,000 property-set relationships.

:class:`Placements` turns IfcLocalPlacement chains into world coordinates (file units),
caching every placement it has resolved, so devices placed relative to their room share
the room's work.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import ifcopenshell

Entity = ifcopenshell.entity_instance
#: An affine transform as 12 floats: rows (r00, r01, r02, tx), (r10, r11, r12, ty), (r20, r21, r22, tz).
Affine = tuple[float, ...]
IDENTITY: Affine = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0)

#: Quantity names that state a space's floor area, best first.
AREA_QUANTITIES = ("NetFloorArea", "GrossFloorArea")
#: Quantity names that state a space's height, best first.
HEIGHT_QUANTITIES = ("Height", "FinishCeilingHeight", "NetHeight", "GrossHeight")


class FileIndex:
    """Containment, references, type objects, chosen property sets and space quantities of one file."""

    def __init__(self, ifc_file: ifcopenshell.file, *, pset_names: Collection[str] = (),
                 quantities_for: Collection[int] = ()) -> None:
        self.container_gid: dict[int, str] = {}  # element id -> GlobalId of its spatial structure
        self.references: dict[int, list[Entity]] = {}
        self.type_of: dict[int, Entity] = {}
        self.psets: dict[str, dict[int, dict[str, Any]]] = {}  # pset name -> element id -> {property: value}
        self.quantities: dict[int, dict[str, float]] = {}
        wanted_quantities = set(quantities_for)
        # Attributes by position (IfcRelationship: RelatedX at 4, RelatingX at 5): by name is slow.
        for rel in _all(ifc_file, "IfcRelContainedInSpatialStructure"):
            structure_gid = rel[5][0]  # RelatingStructure.GlobalId
            for element in rel[4] or ():  # RelatedElements
                self.container_gid.setdefault(element.id(), structure_gid)
        for rel in _all(ifc_file, "IfcRelReferencedInSpatialStructure"):
            for element in rel[4] or ():
                self.references.setdefault(element.id(), []).append(rel[5])
        for rel in _all(ifc_file, "IfcRelDefinesByType"):
            for element in rel[4] or ():
                self.type_of[element.id()] = rel[5]
        names = set(pset_names)
        for name in names:
            self.psets[name] = {}
        for rel in _all(ifc_file, "IfcRelDefinesByProperties"):
            definitions = rel[5]  # RelatingPropertyDefinition (a set of them in IFC4)
            for definition in definitions if isinstance(definitions, tuple) else (definitions,):
                ifc_class = definition.is_a()
                if ifc_class == "IfcElementQuantity":
                    targets = [o for o in rel[4] or () if o.id() in wanted_quantities]
                    if targets:
                        values = _quantity_values(definition)
                        for target in targets:
                            merged = self.quantities.setdefault(target.id(), {})
                            for key, value in values.items():
                                merged.setdefault(key, value)
                elif ifc_class == "IfcPropertySet" and definition[2] in names:
                    values = _property_values(definition)
                    found = self.psets[definition[2]]
                    for target in rel[4] or ():
                        found[target.id()] = values

    def pset_value(self, element: Entity, pset: str, prop: str) -> Any:
        return self.psets.get(pset, {}).get(element.id(), {}).get(prop)

    def floor_area(self, element: Entity) -> float | None:
        """The element's stated floor area in the file's area unit, or None."""
        found = self.quantities.get(element.id(), {})
        return next((found[k] for k in AREA_QUANTITIES if found.get(k)), None)

    def height(self, element: Entity) -> float | None:
        """The element's stated height in the file's length unit, or None."""
        found = self.quantities.get(element.id(), {})
        return next((found[k] for k in HEIGHT_QUANTITIES if found.get(k)), None)


def _all(ifc_file: ifcopenshell.file, ifc_class: str) -> tuple[Entity, ...]:
    try:
        return ifc_file.by_type(ifc_class)
    except RuntimeError:  # class not in this schema
        return ()


def _property_values(pset: Entity) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for prop in pset[4] or ():  # HasProperties
        if prop.is_a() == "IfcPropertySingleValue":
            nominal = prop[2]  # NominalValue
            values[prop[0]] = nominal[0] if nominal is not None else None  # wrappedValue
    return values


def _quantity_values(qto: Entity) -> dict[str, float]:
    values: dict[str, float] = {}
    for quantity in qto[5] or ():  # Quantities
        value = quantity[3] if len(quantity) > 3 else None  # AreaValue, LengthValue, VolumeValue, ...
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.setdefault(quantity[0], float(value))  # Name
    return values


def compose(a: Affine, b: Affine) -> Affine:
    """The transform ``a @ b`` (apply ``b`` first)."""
    return (
        a[0] * b[0] + a[1] * b[4] + a[2] * b[8], a[0] * b[1] + a[1] * b[5] + a[2] * b[9],
        a[0] * b[2] + a[1] * b[6] + a[2] * b[10], a[0] * b[3] + a[1] * b[7] + a[2] * b[11] + a[3],
        a[4] * b[0] + a[5] * b[4] + a[6] * b[8], a[4] * b[1] + a[5] * b[5] + a[6] * b[9],
        a[4] * b[2] + a[5] * b[6] + a[6] * b[10], a[4] * b[3] + a[5] * b[7] + a[6] * b[11] + a[7],
        a[8] * b[0] + a[9] * b[4] + a[10] * b[8], a[8] * b[1] + a[9] * b[5] + a[10] * b[9],
        a[8] * b[2] + a[9] * b[6] + a[10] * b[10], a[8] * b[3] + a[9] * b[7] + a[10] * b[11] + a[11],
    )


def apply(m: Affine, x: float, y: float, z: float) -> tuple[float, float, float]:
    return (m[0] * x + m[1] * y + m[2] * z + m[3], m[4] * x + m[5] * y + m[6] * z + m[7],
            m[8] * x + m[9] * y + m[10] * z + m[11])


def _unit(v: tuple[float, ...]) -> tuple[float, float, float]:
    x, y, z = (tuple(float(c) for c in v) + (0.0, 0.0, 0.0))[:3]
    n = math.sqrt(x * x + y * y + z * z)
    if n == 0:
        raise ValueError("zero-length direction")
    return x / n, y / n, z / n


def axis2placement(placement: Entity) -> Affine:
    """IfcAxis2Placement3D / 2D as a transform: z from Axis, x from RefDirection made orthogonal to z."""
    location = placement[0]
    coords = tuple(float(c) for c in location[0]) + (0.0, 0.0)
    tx, ty, tz = coords[:3]
    if len(placement) == 2:  # IfcAxis2Placement2D (Location, RefDirection)
        ref = placement[1]
        xx, xy, _ = _unit(ref[0]) if ref is not None else (1.0, 0.0, 0.0)
        return (xx, -xy, 0.0, tx, xy, xx, 0.0, ty, 0.0, 0.0, 1.0, 0.0)
    axis, ref = placement[1], placement[2]
    if axis is None and ref is None:
        return (1.0, 0.0, 0.0, tx, 0.0, 1.0, 0.0, ty, 0.0, 0.0, 1.0, tz)
    zx, zy, zz = _unit(axis[0]) if axis is not None else (0.0, 0.0, 1.0)
    rx, ry, rz = _unit(ref[0]) if ref is not None else ((1.0, 0.0, 0.0) if abs(zx) < 0.9 else (0.0, 1.0, 0.0))
    d = rx * zx + ry * zy + rz * zz
    xx, xy, xz = _unit((rx - d * zx, ry - d * zy, rz - d * zz))
    yx, yy, yz = zy * xz - zz * xy, zz * xx - zx * xz, zx * xy - zy * xx
    return (xx, yx, zx, tx, xy, yy, zy, ty, xz, yz, zz, tz)


class Placements:
    """World transforms of IfcLocalPlacements (file units), each resolved once."""

    def __init__(self) -> None:
        self._cache: dict[int, Affine | None] = {}

    def of(self, placement: Entity | None) -> Affine | None:
        """The world transform of ``placement``, or None for grid, linear or broken placements."""
        if placement is None:
            return IDENTITY
        key = placement.id()
        if key in self._cache:
            return self._cache[key]
        result: Affine | None = None
        if placement.is_a() == "IfcLocalPlacement":
            parent = self.of(placement[0])
            relative = placement[1]
            try:
                local = axis2placement(relative) if relative is not None else IDENTITY
            except (ValueError, TypeError, IndexError):
                local = None
            if parent is not None and local is not None:
                result = compose(parent, local)
        self._cache[key] = result
        return result

    def point(self, element: Entity, scale: float) -> tuple[float, float, float] | None:
        """The element's placement origin in world coordinates, metres (``scale``: file unit to metres).

        Only the parent chain is composed (and cached): the element's own rotation does not move
        its origin, and its placement is rarely shared, so it is not cached.
        """
        placement = element[5]  # IfcProduct.ObjectPlacement
        if placement is None:
            return None
        key = placement.id()
        if key in self._cache:
            m = self._cache[key]
            return None if m is None else (m[3] * scale, m[7] * scale, m[11] * scale)
        if placement.is_a() != "IfcLocalPlacement":
            return None
        parent = self.of(placement[0])
        relative = placement[1]
        if parent is None:
            return None
        x = y = z = 0.0
        if relative is not None:
            try:
                coords = relative[0][0]  # Location.Coordinates
                x, y = float(coords[0]), float(coords[1])
                z = float(coords[2]) if len(coords) > 2 else 0.0
            except (TypeError, IndexError):
                return None
        px, py, pz = apply(parent, x, y, z)
        return (px * scale, py * scale, pz * scale)
