"""Room footprints: IfcSpace body geometry projected to the floor plane and merged.

The IfcOpenShell geometry iterator triangulates every space in world coordinates (metres,
whatever the file's length unit); each triangle is dropped onto the XY plane and the
triangles are unioned with shapely. Vertical faces project to nothing and are skipped::

    footprints = space_footprints(ifc_file, ifc_file.by_type("IfcSpace"))
    footprints[space.GlobalId].area_m2
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ifcopenshell
import ifcopenshell.geom
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

Progress = Callable[[str, int, int], None]

#: Triangles whose projected area is below this (m²) are vertical faces or slivers.
MIN_TRIANGLE_AREA_M2 = 1e-8
#: Snapping grid for the union (m): removes hairline gaps between neighbouring triangles.
UNION_GRID_M = 1e-6


@dataclass(frozen=True, slots=True)
class Footprint:
    """A space's shape on the floor plane and its vertical extent, in metres."""

    polygon: BaseGeometry
    area_m2: float
    z_min: float
    z_max: float

    @property
    def height_m(self) -> float:
        return self.z_max - self.z_min


def footprint_of_mesh(verts: np.ndarray, faces: np.ndarray) -> BaseGeometry | None:
    """The union of the XY projections of a triangle mesh (``verts`` n x 3, ``faces`` m x 3), or None."""
    if len(faces) == 0:
        return None
    tri = verts[faces][:, :, :2]  # m x 3 x 2
    (x0, y0), (x1, y1), (x2, y2) = tri[:, 0].T, tri[:, 1].T, tri[:, 2].T
    doubled_area = np.abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
    tri = tri[doubled_area > 2 * MIN_TRIANGLE_AREA_M2]
    if len(tri) == 0:
        return None
    rings = np.concatenate([tri, tri[:, :1]], axis=1)  # close each ring
    merged = shapely.union_all(shapely.polygons(rings), grid_size=UNION_GRID_M)
    return _polygonal(merged)


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    """Keep only the polygonal part of a (possibly invalid) geometry; None when nothing is left."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    if not parts:
        return None
    merged = shapely.union_all(parts).buffer(0)
    return None if merged.is_empty or merged.area <= 0 else merged


def space_footprints(ifc_file: ifcopenshell.file, spaces: Sequence[ifcopenshell.entity_instance],
                     progress: Progress | None = None) -> dict[str, Footprint]:
    """Footprints of ``spaces`` by GlobalId; spaces without usable geometry are left out."""
    total = len(spaces)
    if progress:
        progress("footprints", 0, total)
    if not spaces:
        return {}
    settings = ifcopenshell.geom.settings()
    settings.set(settings.USE_WORLD_COORDS, True)
    iterator = ifcopenshell.geom.iterator(settings, ifc_file, multiprocessing.cpu_count(), include=list(spaces))
    result: dict[str, Footprint] = {}
    if not iterator.initialize():
        if progress:
            progress("footprints", total, total)
        return result
    done = 0
    while True:
        shape = iterator.get()
        done += 1
        verts = np.asarray(shape.geometry.verts, dtype=float).reshape(-1, 3)
        faces = np.asarray(shape.geometry.faces, dtype=np.int64).reshape(-1, 3)
        polygon = footprint_of_mesh(verts, faces) if len(verts) else None
        if polygon is not None:
            result[shape.guid] = Footprint(polygon, float(polygon.area), float(verts[:, 2].min()),
                                           float(verts[:, 2].max()))
        if progress:
            progress("footprints", min(done, total), total)
        if not iterator.next():
            break
    if progress and done < total:
        progress("footprints", total, total)
    return result
