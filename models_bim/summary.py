"""What a planner wants to know after loading a model: counts, gaps and doubts (a pure function).

::

    summary = summarize(model)
    summary["devices_by_mapping"]     # {"containment": 310, "reference": 2, "geometry": 5, "unmapped": 1}
    summary["area_discrepancies"]     # rooms whose footprint and stated area differ by more than 5 %
    summary["height_discrepancies"]   # rooms whose geometry and stated height differ by more than 5 %
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twin.domain import DEVICE_KINDS, TwinModel

#: A footprint area or a height further than this (relative) from the file's own quantity is reported.
AREA_GAP = HEIGHT_GAP = 0.05
MAPPINGS = ("containment", "reference", "geometry", "unmapped")
GEOMETRY_SOURCES = ("body", "footprint", "bounding_box", "none")


def summarize(model: TwinModel) -> dict[str, Any]:
    """Storeys, rooms (and which lack geometry), devices by kind and mapping, unmapped devices,
    area discrepancies, georeference and warnings of ``model``; JSON-ready."""
    storeys = {s.global_id: s.name for s in model.storeys}
    kinds = Counter(d.kind for d in model.devices)
    mapping = Counter(d.mapping for d in model.devices)
    geometry = Counter(r.geometry for r in model.rooms)
    site = model.site
    conversion = site.map_conversion
    return {
        "site": site.site_id,
        "schema": model.schema,
        "ifc_project": model.ifc_project,
        "ifc_site": model.ifc_site,
        "buildings": len(model.buildings),
        "storeys": len(model.storeys),
        "rooms": len(model.rooms),
        "rooms_without_geometry": geometry["none"],
        "rooms_without_geometry_list": [r.name for r in model.rooms if r.geometry == "none"],
        "rooms_by_geometry": {g: geometry[g] for g in GEOMETRY_SOURCES},
        "rooms_by_use": dict(sorted(Counter(r.use for r in model.rooms).items())),
        "devices": len(model.devices),
        "devices_by_kind": {k: kinds[k] for k in DEVICE_KINDS if kinds[k]},
        "devices_by_mapping": {m: mapping[m] for m in MAPPINGS},
        "unmapped_devices": [d.device_id for d in model.devices if d.mapping == "unmapped"],
        "unmapped_device_details": [
            {"device_id": d.device_id, "name": d.name, "kind": d.kind, "ifc_class": d.ifc_class,
             "storey": storeys.get(d.storey_global_id) if d.storey_global_id else None}
            for d in model.devices if d.mapping == "unmapped"
        ],
        "derived_device_ids": sum(d.id_source == "derived" for d in model.devices),
        "rooms_with_quantities": sum(r.quantity_area_m2 is not None for r in model.rooms),
        "area_discrepancies": area_discrepancies(model),
        "rooms_with_stated_height": sum(r.quantity_height_m is not None for r in model.rooms),
        "height_discrepancies": height_discrepancies(model),
        "georeference": {
            "latitude": site.latitude, "longitude": site.longitude, "elevation_m": site.elevation_m,
            "map_conversion": None if conversion is None else {k: getattr(conversion, k) for k in conversion.__slots__},
        },
        "warnings": list(model.warnings),
    }


def area_discrepancies(model: TwinModel, gap: float = AREA_GAP) -> list[dict[str, Any]]:
    """Rooms whose footprint area is more than ``gap`` (relative) away from the file's stated floor area."""
    found = []
    for room in model.rooms:
        stated, measured = room.quantity_area_m2, room.area_m2
        if stated and measured is not None and abs(measured - stated) > gap * stated:
            found.append({"room": room.name, "global_id": room.global_id, "footprint_m2": round(measured, 2),
                          "quantity_m2": round(stated, 2), "gap_pct": round(100 * (measured - stated) / stated, 1)})
    return found


def height_discrepancies(model: TwinModel, gap: float = HEIGHT_GAP) -> list[dict[str, Any]]:
    """Rooms whose height from the geometry is more than ``gap`` (relative) away from the file's stated height."""
    found = []
    for room in model.rooms:
        stated, measured = room.quantity_height_m, room.height_m
        if stated and measured is not None and room.geometry != "none" and abs(measured - stated) > gap * stated:
            found.append({"room": room.name, "global_id": room.global_id, "geometry_m": round(measured, 3),
                          "quantity_m": round(stated, 3), "gap_pct": round(100 * (measured - stated) / stated, 1)})
    return found
