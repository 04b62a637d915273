"""Footprints when the body is missing or holed, placements, and georeferences of real files."""

from __future__ import annotations

from pathlib import Path

import ifcopenshell
import ifcopenshell.util.placement
import numpy as np
import pytest
import shapely

from models_bim.devices import device_elements
from models_bim.footprints import _tiled_outline, footprint_of_mesh
from models_bim.generate import CLASSROOM_WIDTH, ROOM_DEPTH, SPACE_HEIGHT_M, generate_school
from models_bim.index import Placements
from models_bim.load import read_model
from models_bim.summary import summarize

NESTED_SITES = "simple-scene-building-architecture_ifc4_sketchup_nested-sites.ifc"
NO_STOREYS = "van-brienenoordbrug_ifc4x3add2_bricscad-bonsai_no-storeys.ifc"
FZK = "ac20-fzk-haus_ifc4_archicad20.ifc"


def _rooms(f: ifcopenshell.file) -> dict[str, ifcopenshell.entity_instance]:
    return {s.Name: s for s in f.by_type("IfcSpace")}


def _body_context(f: ifcopenshell.file) -> ifcopenshell.entity_instance:
    return next(c for c in f.by_type("IfcGeometricRepresentationSubContext") if c.ContextIdentifier == "Body")


@pytest.fixture
def odd_geometry(tmp_path: Path) -> Path:
    """A school whose rooms have a footprint curve only, a bounding box only, nothing, and a courtyard."""
    path = tmp_path / "geometry.ifc"
    generate_school(path, site_id="g1", name="几何学校", storeys=1, classrooms_per_storey=4, labs=1)
    f = ifcopenshell.open(str(path))
    rooms = _rooms(f)
    context = _body_context(f)
    plan = f.by_type("IfcGeometricRepresentationContext")[0]
    # 1: only a 2D FootPrint outline (an L shape: the 9 x 7 room minus a 3 x 2 corner)
    outline = [(0.0, 0.0), (9.0, 0.0), (9.0, 5.0), (6.0, 5.0), (6.0, 7.0), (0.0, 7.0), (0.0, 0.0)]
    curve = f.createIfcPolyline([f.createIfcCartesianPoint(p) for p in outline])
    rooms["初一(1)班"].Representation = f.createIfcProductDefinitionShape(
        None, None, [f.createIfcShapeRepresentation(plan, "FootPrint", "Curve2D", [curve])])
    # 2: only a bounding box
    box = f.createIfcBoundingBox(f.createIfcCartesianPoint((0.0, 0.0, 0.0)), 9.0, 7.0, 3.0)
    rooms["初一(2)班"].Representation = f.createIfcProductDefinitionShape(
        None, None, [f.createIfcShapeRepresentation(plan, "Box", "BoundingBox", [box])])
    # 3: no representation at all
    rooms["初一(3)班"].Representation = None
    # 4: a 12 x 7 lab around a 4 x 3 light well (a hole through the whole height)
    outer = f.createIfcPolyline([f.createIfcCartesianPoint(p) for p in
                                 [(0.0, 0.0), (12.0, 0.0), (12.0, 7.0), (0.0, 7.0), (0.0, 0.0)]])
    inner = f.createIfcPolyline([f.createIfcCartesianPoint(p) for p in
                                 [(4.0, 2.0), (8.0, 2.0), (8.0, 5.0), (4.0, 5.0), (4.0, 2.0)]])
    profile = f.createIfcArbitraryProfileDefWithVoids("AREA", None, outer, [inner])
    solid = f.createIfcExtrudedAreaSolid(profile, f.createIfcAxis2Placement3D(f.createIfcCartesianPoint((0., 0., 0.)),
                                                                                None, None),
                                         f.createIfcDirection((0.0, 0.0, 1.0)), SPACE_HEIGHT_M)
    rooms["物理实验室"].Representation = f.createIfcProductDefinitionShape(
        None, None, [f.createIfcShapeRepresentation(context, "Body", "SweptSolid", [solid])])
    f.write(str(path))
    return path


def test_rooms_without_body_fall_back_to_footprint_then_bounding_box_else_no_geometry(odd_geometry: Path) -> None:
    model = read_model(odd_geometry, site_id="g1")
    rooms = {r.name: r for r in model.rooms}
    curve, box, nothing = rooms["初一(1)班"], rooms["初一(2)班"], rooms["初一(3)班"]
    assert (curve.geometry, curve.area_m2) == ("footprint", pytest.approx(9 * 7 - 3 * 2))
    assert curve.height_m == pytest.approx(SPACE_HEIGHT_M)  # from the stated quantity, the curve has none
    assert (box.geometry, box.area_m2, box.height_m) == ("bounding_box", pytest.approx(63.0), pytest.approx(3.0))
    assert (nothing.geometry, nothing.footprint, nothing.area_m2) == ("none", None, None)
    assert rooms["初一(4)班"].geometry == "body"
    # the outlines sit where the rooms are: the devices of each room are inside its fallback footprint
    for room in (curve, box):
        inside = [d for d in model.devices if d.room_global_id == room.global_id]
        assert inside and all(room.footprint.buffer(1e-6).covers(_point(d)) for d in inside
                              if d.device_id.startswith(("PNL", "BBL")))
    summary = summarize(model)
    assert summary["rooms_without_geometry"] == 1 and summary["rooms_without_geometry_list"] == ["初一(3)班"]
    assert summary["rooms_by_geometry"] == {"body": len(model.rooms) - 3, "footprint": 1, "bounding_box": 1,
                                            "none": 1}
    assert any("1 of" in w and "no geometry" in w for w in model.warnings)


def _point(device):
    from shapely.geometry import Point

    return Point(device.x, device.y)


def test_holes_are_kept_and_area_gaps_reported(odd_geometry: Path) -> None:
    model = read_model(odd_geometry, site_id="g1")
    lab = next(r for r in model.rooms if r.name == "物理实验室")
    assert lab.footprint.geom_type == "Polygon" and len(lab.footprint.interiors) == 1
    assert lab.area_m2 == pytest.approx(12 * 7 - 4 * 3)
    gaps = {g["room"]: g for g in summarize(model)["area_discrepancies"]}
    # the file still states 84 m² for the lab and 63 m² for the L-shaped classroom
    assert gaps["物理实验室"]["gap_pct"] == pytest.approx(-14.3, abs=0.1)
    assert gaps["初一(1)班"]["gap_pct"] == pytest.approx(-9.5, abs=0.1)
    assert set(gaps) == {"物理实验室", "初一(1)班"}


def test_footprints_are_in_world_coordinates(tmp_path: Path) -> None:
    """Two buildings turned by 30°: every classroom footprint is a 9 x 7 rectangle around its own devices."""
    path = tmp_path / "turned.ifc"
    generate_school(path, site_id="t1", name="转向", buildings=2, storeys=2, classrooms_per_storey=2, labs=0,
                    orientation_deg=30.0)
    model = read_model(path, site_id="t1")
    for room in (r for r in model.rooms if r.use == "classroom"):
        assert room.area_m2 == pytest.approx(CLASSROOM_WIDTH * ROOM_DEPTH)
        devices = [d for d in model.devices if d.room_global_id == room.global_id]
        assert len(devices) == 13
        assert all(room.footprint.buffer(1e-6).covers(_point(d)) for d in devices)


def test_our_placements_match_ifcopenshell(shared_ifc: Path) -> None:
    for path in sorted(shared_ifc.glob("*.ifc")):
        f = ifcopenshell.open(str(path))
        placements = Placements()
        elements = [e for e, _ in device_elements(f)] + [*f.by_type("IfcSpace"), *f.by_type("IfcBuildingStorey")]
        for element in elements:
            if element.ObjectPlacement is None:
                continue
            expected = ifcopenshell.util.placement.get_local_placement(element.ObjectPlacement)[:3, 3]
            assert np.allclose(placements.point(element, 1.0), expected, atol=1e-9), (path.name, element)


def test_map_conversions_are_kept_for_the_map(shared_ifc: Path) -> None:
    nested = read_model(shared_ifc / NESTED_SITES, site_id="s1").site
    assert nested.latitude is None  # no RefLatitude: the map conversion is all there is
    conversion = nested.map_conversion
    assert conversion is not None and conversion.crs == "EPSG:32760"
    assert conversion.eastings == pytest.approx(729013.35, abs=0.01)
    assert conversion.northings == pytest.approx(9063992.68, abs=0.01)
    assert (conversion.x_axis_abscissa, conversion.x_axis_ordinate) == pytest.approx((0.5, 0.8660254))
    bridge = read_model(shared_ifc / NO_STOREYS, site_id="s1").site
    # both as stated, even though they contradict each other (Rotterdam grid, San Francisco latitude)
    assert bridge.map_conversion.crs == "EPSG:28992" and bridge.map_conversion.eastings == pytest.approx(96400.0)
    assert bridge.latitude == pytest.approx(37.795, abs=1e-3)
    fzk = read_model(shared_ifc / FZK, site_id="s1").site
    assert fzk.map_conversion is None and fzk.elevation_m is not None


def _square_with_hole_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A 4 x 4 slab (z 0..1) with a 2 x 2 courtyard: 8 bottom triangles, 8 top, as a mesh."""
    outer = [(0, 0), (4, 0), (4, 4), (0, 4)]
    inner = [(1, 1), (3, 1), (3, 3), (1, 3)]
    pts = outer + inner
    verts = np.array([(x, y, z) for z in (0.0, 1.0) for x, y in pts], dtype=float)
    ring = [(0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]  # quads between outer and inner rings
    faces = []
    for a, b, c, d in ring:
        faces += [(a, c, b), (a, d, c)]  # bottom: clockwise seen from above
        faces += [(a + 8, b + 8, c + 8), (a + 8, c + 8, d + 8)]  # top: counter-clockwise
    return verts, np.array(faces)


def test_outline_from_tiled_triangles_equals_their_union() -> None:
    verts, faces = _square_with_hole_mesh()
    fast = footprint_of_mesh(verts, faces)
    tri = verts[faces][:, :, :2]
    union = shapely.union_all(shapely.polygons(np.concatenate([tri, tri[:, :1]], axis=1)))
    assert fast is not None and fast.area == pytest.approx(12.0) and len(fast.interiors) == 1
    assert fast.symmetric_difference(union).area < 1e-9
    bottom = verts[faces[0::4].tolist() + faces[1::4].tolist()][:, :, :2]
    outline = _tiled_outline(bottom, 12.0)  # the fast path itself, not the union behind it
    assert outline is not None and outline.symmetric_difference(union).area < 1e-9


def test_overlapping_triangles_fall_back_to_the_union() -> None:
    tri = np.array([[(0, 0), (0, 2), (2, 0)], [(1, 0), (1, 2), (3, 0)]], dtype=float)  # clockwise, overlapping
    assert _tiled_outline(tri, 4.0) is None  # the union (area 3.5) is not their area sum
    verts = np.array([(x, y, 0.0) for x, y in tri.reshape(-1, 2)] + [(x, y, 1.0) for x, y in tri.reshape(-1, 2)])
    faces = np.array([(0, 1, 2), (3, 4, 5), (8, 7, 6), (11, 10, 9)])
    assert footprint_of_mesh(verts, faces).area == pytest.approx(3.5)
