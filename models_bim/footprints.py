"""Room footprints: IfcSpace body geometry projected to the floor plane and merged.

The IfcOpenShell geometry iterator triangulates every space in world coordinates (metres,
whatever the file's length unit), on one thread per CPU; each triangle is dropped onto
the XY plane and the triangles are unioned with shapely, so courtyards and shafts stay
holes. Vertical faces project to nothing and are skipped::

    footprints = space_footprints(ifc_file, ifc_file.by_type("IfcSpace"))
    footprints[space.GlobalId].area_m2

Spaces without body geometry fall back to their ``FootPrint`` curve, else their bounding
box (:func:`fallback_footprint`); the rest have no footprint ("no geometry").
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

from models_bim.index import Placements, apply
from twin.domain import GeometrySource

Progress = Callable[[str, int, int], None]

#: Triangles whose projected area is below this (m²) are vertical faces or slivers.
MIN_TRIANGLE_AREA_M2 = 1e-8
#: Snapping grid for the union (m): removes hairline gaps between neighbouring triangles.
UNION_GRID_M = 1e-6
#: Geometry iterator threads: one per CPU (the benchmark's bare iteration).
THREADS = multiprocessing.cpu_count()
#: Geometry iterator threads during an import: one per CPU but one, which the import's own
#: Python work (devices, relationships) keeps busy meanwhile. IfcOpenShell 0.9's iterator
#: threads competing with it for the cores burnt twice the CPU and finished later: on 2 CPUs
#: the import reads the campus in 2.3-2.5 s with one thread, 2.9-3.0 s with two (docs/bim.md).
#: With one thread the iterator works inside ``collect``.
IMPORT_THREADS = max(1, THREADS - 1)
#: IfcOpenShell's geometry kernel: CGAL's simple kernel for what it handles (extrusions,
#: polyhedra: nearly every space), Open CASCADE for the rest. On the benchmark campus 4x
#: faster than Open CASCADE alone (IfcOpenShell 0.9's default), with the same footprints
#: on every file of ../shared/ifc (docs/bim.md).
GEOMETRY_LIBRARY = "hybrid-cgal-simple-opencascade"


def iterator_settings() -> ifcopenshell.geom.settings:
    """What the import (and the benchmark's bare iteration) asks of IfcOpenShell: world coordinates, metres."""
    settings = ifcopenshell.geom.settings()
    settings.set(settings.USE_WORLD_COORDS, True)
    return settings


@dataclass(frozen=True, slots=True)
class Footprint:
    """A space's shape on the floor plane and its vertical extent, in metres."""

    polygon: BaseGeometry
    area_m2: float
    z_min: float
    z_max: float
    source: GeometrySource = "body"

    @property
    def height_m(self) -> float:
        return self.z_max - self.z_min


def footprint_of_mesh(verts: np.ndarray, faces: np.ndarray) -> BaseGeometry | None:
    """The union of the XY projections of a triangle mesh (``verts`` n x 3, ``faces`` m x 3), or None.

    A closed, consistently oriented mesh casts the same shadow with its downward faces alone
    (their projected areas then balance the upward ones exactly), so only those are merged;
    other meshes merge every non-vertical triangle.
    """
    if len(faces) == 0:
        return None
    tri = verts[faces][:, :, :2]  # m x 3 x 2
    (x0, y0), (x1, y1), (x2, y2) = tri[:, 0].T, tri[:, 1].T, tri[:, 2].T
    signed = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)  # twice the signed projected area
    up, down = signed > 2 * MIN_TRIANGLE_AREA_M2, signed < -2 * MIN_TRIANGLE_AREA_M2
    up_area, down_area = float(signed[up].sum()), float(-signed[down].sum())
    closed = down_area > 0 and abs(up_area - down_area) <= 1e-6 * max(up_area, down_area)
    tri = tri[down] if closed else tri[up | down]
    if len(tri) == 0:
        return None
    if closed and (outline := _tiled_outline(tri, down_area / 2)) is not None:
        return outline
    rings = np.concatenate([tri, tri[:, :1]], axis=1)  # close each ring
    merged = shapely.union_all(shapely.polygons(rings), grid_size=UNION_GRID_M)
    return _polygonal(merged)


def _tiled_outline(tri: np.ndarray, area: float) -> Polygon | None:
    """The outline of clockwise triangles (k x 3 x 2) that tile one region edge to edge, holes kept.

    The edges used once, chained, are the region's rings: the same polygon as the union of
    the triangles (on the union's grid) for a fraction of its cost. None when the triangles
    do not tile a single polygon (overlaps, T-junctions, several parts): then the caller unions them.
    """
    edges: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for a, b, c in np.rint(tri * (1 / UNION_GRID_M)).astype(np.int64).tolist():
        a, b, c = tuple(a), tuple(b), tuple(c)
        edges += ((a, b), (b, c), (c, a))
    unique = set(edges)
    if len(unique) != len(edges):
        return None  # an edge twice in one direction: overlapping triangles
    following: dict[tuple[int, int], tuple[int, int]] = {}
    for a, b in edges:
        if a == b:
            return None
        if (b, a) not in unique:
            if a in following:
                return None  # two boundary edges leave one point: let the union decide
            following[a] = b
    outer: list[tuple[float, float]] | None = None
    holes: list[list[tuple[float, float]]] = []
    while following:
        start, point = following.popitem()
        ring = [start]
        while point != start:
            ring.append(point)
            point = following.pop(point, None)
            if point is None:
                return None
        twice_area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True))
        coords = [(x * UNION_GRID_M, y * UNION_GRID_M) for x, y in ring]
        if twice_area < 0:  # clockwise like the triangles: an outer ring
            if outer is not None:
                return None
            outer = coords
        else:
            holes.append(coords)
    if outer is None:
        return None
    polygon = Polygon(outer, holes)
    if not polygon.is_valid or abs(polygon.area - area) > 1e-6 * area + 1e-9:
        return None
    return polygon


def _polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    """Keep only the polygonal part of a (possibly invalid) geometry; None when nothing is left."""
    if isinstance(geometry, Polygon | MultiPolygon) and not geometry.is_empty and geometry.is_valid:
        return geometry if geometry.area > 0 else None
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    if not parts:
        return None
    merged = shapely.union_all(parts).buffer(0)
    return None if merged.is_empty or merged.area <= 0 else merged


class FootprintJob:
    """The geometry iterator started over ``spaces``: it computes on its own threads until :meth:`collect`.

    Start it first, do other work, then collect: ``FootprintJob(f, spaces).collect()``.
    """

    def __init__(self, ifc_file: ifcopenshell.file, spaces: Sequence[ifcopenshell.entity_instance]) -> None:
        self.total = len(spaces)
        self.iterator = None
        if spaces:
            iterator = ifcopenshell.geom.iterator(iterator_settings(), ifc_file, IMPORT_THREADS, include=list(spaces),
                                                  geometry_library=GEOMETRY_LIBRARY)
            if iterator.initialize():
                self.iterator = iterator

    def collect(self, progress: Progress | None = None) -> dict[str, Footprint]:
        """Footprints by GlobalId; spaces without usable body geometry are left out."""
        total = self.total
        if progress:
            progress("footprints", 0, total)
        result: dict[str, Footprint] = {}
        done = 0
        while self.iterator is not None:
            shape = self.iterator.get()
            done += 1
            verts = np.asarray(shape.geometry.verts, dtype=float).reshape(-1, 3)
            faces = np.asarray(shape.geometry.faces, dtype=np.int64).reshape(-1, 3)
            polygon = footprint_of_mesh(verts, faces) if len(verts) else None
            if polygon is not None:
                result[shape.guid] = Footprint(polygon, float(polygon.area), float(verts[:, 2].min()),
                                               float(verts[:, 2].max()))
            if progress:
                progress("footprints", min(done, total), total)
            if not self.iterator.next():
                break
        self.iterator = None
        if progress and done < total:
            progress("footprints", total, total)
        return result


def space_footprints(ifc_file: ifcopenshell.file, spaces: Sequence[ifcopenshell.entity_instance],
                     progress: Progress | None = None) -> dict[str, Footprint]:
    """Footprints of ``spaces`` by GlobalId; spaces without usable body geometry are left out."""
    return FootprintJob(ifc_file, spaces).collect(progress)


#: Representation identifiers of a space's 2D outline and of its box, as IFC names them.
FOOTPRINT_IDS = ("FootPrint", "Footprint")
BOX_IDS = ("Box",)


def fallback_footprint(space: ifcopenshell.entity_instance, placements: Placements, scale: float,
                       height_m: float | None = None) -> Footprint | None:
    """A space's footprint from its FootPrint curve, else its bounding box; None when it has neither.

    ``height_m`` (e.g. the file's stated height) gives the curve a vertical extent; a box has its own.
    """
    shape = getattr(space, "Representation", None)
    placement = placements.of(getattr(space, "ObjectPlacement", None))
    if shape is None or placement is None:
        return None
    representations = list(shape.Representations or ())
    for rep in representations:
        if rep.RepresentationIdentifier in FOOTPRINT_IDS or rep.RepresentationType in ("Curve2D",):
            rings = [ring for item in rep.Items or () for ring in _curve_rings(item)]
            polygon = _rings_polygon([[apply(placement, x, y, 0.0)[:2] for x, y in ring] for ring in rings], scale)
            if polygon is not None:
                z = placement[11] * scale
                return Footprint(polygon, float(polygon.area), z, z + (height_m or 0.0), "footprint")
    for rep in representations:
        if rep.RepresentationIdentifier in BOX_IDS or rep.RepresentationType == "BoundingBox":
            for item in rep.Items or ():
                if item.is_a("IfcBoundingBox"):
                    x, y, z = (tuple(float(c) for c in item.Corner.Coordinates) + (0.0, 0.0))[:3]
                    corners = [(x, y), (x + item.XDim, y), (x + item.XDim, y + item.YDim), (x, y + item.YDim)]
                    polygon = _rings_polygon([[apply(placement, cx, cy, z)[:2] for cx, cy in corners]], scale)
                    if polygon is not None:
                        z0 = apply(placement, x, y, z)[2] * scale
                        return Footprint(polygon, float(polygon.area), z0, z0 + float(item.ZDim) * scale,
                                         "bounding_box")
    return None


def _curve_rings(item: ifcopenshell.entity_instance) -> list[list[tuple[float, float]]]:
    """Point rings (file units) of a 2D curve item: polylines, indexed poly curves, composite curves, curve sets."""
    if item.is_a("IfcPolyline"):
        return [[tuple(float(c) for c in p.Coordinates[:2]) for p in item.Points]]
    if item.is_a("IfcIndexedPolyCurve"):
        coords = [tuple(float(c) for c in p[:2]) for p in item.Points.CoordList]
        return [coords]
    if item.is_a("IfcCompositeCurve"):
        points: list[tuple[float, float]] = []
        for segment in item.Segments or ():
            for ring in _curve_rings(segment.ParentCurve):
                points += ring if not points or ring[0] != points[-1] else ring[1:]
        return [points] if points else []
    if item.is_a("IfcGeometricSet"):
        return [ring for element in item.Elements or () for ring in _curve_rings(element)]
    return []


def _rings_polygon(rings: list[list[tuple[float, float]]], scale: float) -> BaseGeometry | None:
    """A polygon from rings (outer and holes, any order) in file units, scaled to metres."""
    polygons = sorted((Polygon([(x * scale, y * scale) for x, y in ring]) for ring in rings if len(ring) >= 3),
                      key=lambda p: -abs(p.area))
    polygons = [p if p.is_valid else shapely.make_valid(p) for p in polygons if abs(p.area) > 0]
    if not polygons:
        return None
    result: BaseGeometry = polygons[0]
    for other in polygons[1:]:
        result = result.difference(other) if result.contains(other) else result.union(other)
    return _polygonal(result)
