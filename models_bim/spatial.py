"""The spatial tree of an IFC file: sites, buildings, storeys and spaces.

Walks from the project down through IfcRelAggregates and IfcRelContainedInSpatialStructure
(spaces may hang from a storey either way). Every space ends on a storey: files without
storeys get one storey per building named after it, files without buildings one building
per site, and spaces outside the tree a storey of the first building.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ifcopenshell
import ifcopenshell.util.placement

from twin.domain import Building, Storey

SYNTHETIC_STOREY = ":storey"  # suffix of a synthetic storey's global id (building global id + suffix)
SYNTHETIC_BUILDING = ":building"  # suffix of a synthetic building's global id (site global id + suffix)


@dataclass
class SpatialTree:
    """What :func:`spatial_tree` finds; look up a container's storey with :meth:`storey_for`."""

    sites: list[ifcopenshell.entity_instance] = field(default_factory=list)
    buildings: dict[str, Building] = field(default_factory=dict)
    storeys: dict[str, Storey] = field(default_factory=dict)
    spaces: dict[str, tuple[ifcopenshell.entity_instance, str]] = field(default_factory=dict)  # gid -> (space, storey)
    storey_of: dict[str, str] = field(default_factory=dict)  # spatial element GlobalId -> storey GlobalId
    building_of: dict[str, str] = field(default_factory=dict)  # building or site GlobalId -> building GlobalId
    warnings: list[str] = field(default_factory=list)

    @property
    def spatial_elements(self) -> int:
        """How many sites, buildings and storeys the file itself has (the synthetic ones not counted)."""
        return (len(self.sites) + sum(not gid.endswith(SYNTHETIC_BUILDING) for gid in self.buildings)
                + sum(not gid.endswith(SYNTHETIC_STOREY) for gid in self.storeys))

    def storey_for(self, global_id: str) -> str | None:
        """The storey of a spatial element; for a building (or site) only its synthetic storey, if it has one."""
        if global_id in self.storey_of:
            return self.storey_of[global_id]
        home = self.building_of.get(global_id, "") + SYNTHETIC_STOREY
        return home if home in self.storeys else None


def _is_building(element: ifcopenshell.entity_instance) -> bool:
    return element.is_a("IfcBuilding") or element.is_a("IfcFacility")


def _is_storey(element: ifcopenshell.entity_instance) -> bool:
    return element.is_a("IfcBuildingStorey") or element.is_a("IfcFacilityPart")


def _children(element: ifcopenshell.entity_instance) -> list[ifcopenshell.entity_instance]:
    """Spatial children: aggregated parts and contained spatial elements (spaces contained in storeys)."""
    children = [o for rel in getattr(element, "IsDecomposedBy", ()) or () for o in rel.RelatedObjects]
    children += [e for rel in getattr(element, "ContainsElements", ()) or () for e in rel.RelatedElements
                 if e.is_a("IfcSpatialStructureElement")]
    return [c for c in children if c.is_a("IfcSpatialStructureElement") or c.is_a("IfcSite")]


def _label(element: ifcopenshell.entity_instance, fallback: str) -> str:
    for text in (element.Name, getattr(element, "LongName", None)):
        if isinstance(text, str) and text.strip():
            return text.strip()
    return fallback


class _Walker:
    def __init__(self, ifc_file: ifcopenshell.file, scale: float) -> None:
        self.file = ifc_file
        self.scale = scale
        self.tree = SpatialTree()
        self.seen: set[int] = set()

    def building(self, element: ifcopenshell.entity_instance) -> str:
        gid = element.GlobalId
        self.tree.buildings.setdefault(gid, Building(gid, _label(element, "Building")))
        return gid

    def synthetic_building(self, site: ifcopenshell.entity_instance | None) -> str:
        gid = (site.GlobalId if site is not None else "model") + SYNTHETIC_BUILDING
        if gid not in self.tree.buildings:
            name = _label(site, "Site") if site is not None else "Building"
            self.tree.buildings[gid] = Building(gid, name)
            self.tree.warnings.append(f"no building under site {name!r}: made one named after it")
        return gid

    def home_storey(self, building_gid: str) -> str:
        """The synthetic storey of a building, for things that hang from the building itself."""
        gid = building_gid + SYNTHETIC_STOREY
        if gid not in self.tree.storeys:
            name = self.tree.buildings[building_gid].name
            self.tree.storeys[gid] = Storey(gid, building_gid, name, 0.0)
        return gid

    def storey(self, element: ifcopenshell.entity_instance, building_gid: str) -> str:
        gid = element.GlobalId
        if gid not in self.tree.storeys:
            elevation = getattr(element, "Elevation", None)
            if elevation is None:
                elevation = self.placement_z(element)
            self.tree.storeys[gid] = Storey(gid, building_gid, _label(element, f"Storey {len(self.tree.storeys) + 1}"),
                                            float(elevation or 0.0) * self.scale)
        self.tree.storey_of[gid] = gid
        return gid

    def placement_z(self, element: ifcopenshell.entity_instance) -> float:
        try:
            return float(ifcopenshell.util.placement.get_local_placement(element.ObjectPlacement)[2][3])
        except Exception:  # noqa: BLE001 - no or odd placement: elevation unknown
            return 0.0

    def walk(self, element: ifcopenshell.entity_instance, site: ifcopenshell.entity_instance | None,
             building_gid: str | None, storey_gid: str | None) -> None:
        if element.id() in self.seen:
            return
        self.seen.add(element.id())
        if element.is_a("IfcSite"):
            site = element
            self.tree.sites.append(element)
        elif _is_building(element):
            building_gid = self.building(element)
            storey_gid = None
        elif _is_storey(element):
            if building_gid is None:
                building_gid = self.synthetic_building(site)
            storey_gid = self.storey(element, building_gid)
        elif element.is_a("IfcSpace"):
            if storey_gid is None:
                building_gid = building_gid or self.synthetic_building(site)
                storey_gid = self.home_storey(building_gid)
            self.tree.spaces.setdefault(element.GlobalId, (element, storey_gid))
        if storey_gid is not None:
            self.tree.storey_of[element.GlobalId] = storey_gid
        elif building_gid is not None:
            self.tree.building_of[element.GlobalId] = building_gid
        for child in _children(element):
            self.walk(child, site, building_gid, storey_gid)


def spatial_tree(ifc_file: ifcopenshell.file, scale: float) -> SpatialTree:
    """Sites, buildings, storeys and spaces of ``ifc_file`` (``scale``: file length unit to metres)."""
    walker = _Walker(ifc_file, scale)
    roots = [*ifc_file.by_type("IfcProject")]
    # Elements not reached from a project (orphans) are walked as roots of their own, outermost first.
    for ifc_class in ("IfcSite", "IfcBuilding", "IfcBuildingStorey", "IfcSpace"):
        roots += ifc_file.by_type(ifc_class)
    for root in roots:
        if root.id() in walker.seen:
            continue
        if root.is_a("IfcSpace") or root.is_a("IfcBuildingStorey"):
            walker.tree.warnings.append(f"{root.is_a()} {root.GlobalId} is outside the spatial tree")
            building_gid = next(iter(walker.tree.buildings), None) or walker.synthetic_building(None)
            storey_gid = walker.home_storey(building_gid) if root.is_a("IfcSpace") else None
            walker.walk(root, None, building_gid, storey_gid)
        else:
            walker.walk(root, None, None, None)
    tree = walker.tree
    if not tree.buildings:
        for site in tree.sites or [None]:
            building_gid = walker.synthetic_building(site)
            if site is not None:
                tree.building_of[site.GlobalId] = building_gid
    for building_gid in list(tree.buildings):
        if not any(s.building_global_id == building_gid for s in tree.storeys.values()):
            walker.home_storey(building_gid)
    return tree
