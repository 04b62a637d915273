"""The synthetic school generator: what it writes, and how the reader sees it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import ifcopenshell
import ifcopenshell.util.element
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import pytest
from shapely.geometry import Point

from models_bim.generate import (
    CLASSROOM_WIDTH,
    DEVICES_PER_CLASSROOM,
    ROOM_DEPTH,
    STOREY_HEIGHT_M,
    NetworkSchool,
    generate_network,
    generate_school,
)
from models_bim.load import read_model
from twin.domain import DEVICE_KINDS, TwinModel

STOREYS, CLASSROOMS, LABS = 2, 6, 1
#: Every storey: an office, a toilet, a stairwell and a corridor besides its classrooms.
EXTRA_ROOMS_PER_STOREY = 4


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("school") / "school.ifc"
    generate_school(path, site_id="m01", name="深圳测试学校", storeys=STOREYS, classrooms_per_storey=CLASSROOMS,
                    labs=LABS, latitude=22.6, longitude=114.1)
    return path


@pytest.fixture(scope="module")
def model(school: Path) -> TwinModel:
    return read_model(school, site_id="m01", role="member")


def test_writes_an_ifc4_file_in_metres_with_a_georeferenced_site(school: Path) -> None:
    f = ifcopenshell.open(str(school))
    assert f.schema == "IFC4"
    assert ifcopenshell.util.unit.calculate_unit_scale(f) == 1.0
    (site,) = f.by_type("IfcSite")
    assert site.RefLatitude[:2] == (22, 36) and site.RefLongitude[:2] == (114, 6)
    assert len(f.by_type("IfcBuilding")) == 1


def test_counts_of_storeys_spaces_and_devices(school: Path) -> None:
    f = ifcopenshell.open(str(school))
    classrooms = STOREYS * CLASSROOMS
    storeys = sorted(f.by_type("IfcBuildingStorey"), key=lambda s: s.Elevation)
    assert [s.Elevation for s in storeys] == pytest.approx([i * STOREY_HEIGHT_M for i in range(STOREYS)])
    assert len(f.by_type("IfcSpace")) == classrooms + LABS + EXTRA_ROOMS_PER_STOREY * STOREYS
    assert DEVICES_PER_CLASSROOM == 13  # 1 sensor, 9 classroom luminaires, 2 blackboard luminaires, 1 panel
    assert len(f.by_type("IfcSensor")) == classrooms
    assert len(f.by_type("IfcLightFixture")) == classrooms * 11
    assert sum(x.ObjectType == "BlackboardLuminaire" for x in f.by_type("IfcLightFixture")) == classrooms * 2
    assert len(f.by_type("IfcAudioVisualAppliance")) == classrooms
    names = Counter(s.Name for s in f.by_type("IfcSpace"))
    assert names["物理实验室"] == 1 and names["教师办公室"] == names["走廊"] == names["卫生间"] == STOREYS
    assert names["初一(3)班"] == 1 and names["初二(6)班"] == 1


def test_every_device_has_a_unique_topic_safe_device_id_in_its_classroom(school: Path) -> None:
    f = ifcopenshell.open(str(school))
    devices = [*f.by_type("IfcSensor"), *f.by_type("IfcLightFixture"), *f.by_type("IfcAudioVisualAppliance")]
    ids = [ifcopenshell.util.element.get_pset(d, "Pset_CampusTwin", "DeviceId") for d in devices]
    assert all(isinstance(i, str) and re.fullmatch(r"[A-Z0-9-]+", i) for i in ids)
    assert len(set(ids)) == len(ids) == STOREYS * CLASSROOMS * DEVICES_PER_CLASSROOM
    assert {"ENV-1F-01", "LUM-1F-01-3", "BBL-1F-01-1", "PNL-1F-01", "PNL-2F-06"} <= set(ids)
    for device in devices:
        space = ifcopenshell.util.element.get_container(device)
        assert space.is_a("IfcSpace") and "班" in space.Name
        assert device.ObjectPlacement.PlacementRelTo == space.ObjectPlacement


def test_same_seed_same_file_other_seed_other_ids(tmp_path: Path) -> None:
    for name, seed in (("a.ifc", 0), ("b.ifc", 0), ("c.ifc", 1)):
        generate_school(tmp_path / name, site_id="m01", name="学校", seed=seed)
    body = [(tmp_path / n).read_text().split("ENDSEC;", 1)[1] for n in ("a.ifc", "b.ifc", "c.ifc")]
    assert body[0] == body[1]
    assert body[0] != body[2]


def test_classroom_luminaires_run_in_rows_perpendicular_to_the_blackboard(school: Path) -> None:
    """Blackboard on the front wall (local x = 0): rows of luminaires run along x, their long axis too."""
    f = ifcopenshell.open(str(school))
    (space,) = [s for s in f.by_type("IfcSpace") if s.Name == "初一(1)班"]
    devices = {d.Tag: d for rel in space.ContainsElements for d in rel.RelatedElements}
    lums = [devices[f"LUM-1F-01-{k}"] for k in range(1, 10)]
    local = [ifcopenshell.util.placement.get_axis2placement(d.ObjectPlacement.RelativePlacement) for d in lums]
    rows: dict[float, list[float]] = {}
    for m in local:
        assert tuple(m[:3, 0]) == pytest.approx((1, 0, 0))  # long axis perpendicular to the board (the y-z plane)
        rows.setdefault(round(m[1, 3], 3), []).append(m[0, 3])
    assert len(rows) == 3 and all(len(xs) == 3 for xs in rows.values())
    assert all(1.5 < min(xs) and max(xs) < CLASSROOM_WIDTH for xs in rows.values())  # clear of the board
    for k in (1, 2):
        board = ifcopenshell.util.placement.get_axis2placement(devices[f"BBL-1F-01-{k}"].ObjectPlacement.RelativePlacement)
        assert tuple(board[:3, 0]) == pytest.approx((0, 1, 0)) and board[0, 3] < 1.0  # along the board, in front
    panel = ifcopenshell.util.placement.get_axis2placement(devices["PNL-1F-01"].ObjectPlacement.RelativePlacement)
    sensor = ifcopenshell.util.placement.get_axis2placement(devices["ENV-1F-01"].ObjectPlacement.RelativePlacement)
    assert panel[0, 3] < 0.5 < CLASSROOM_WIDTH - 0.5 < sensor[0, 3]


def test_buildings_and_orientation(tmp_path: Path) -> None:
    path = tmp_path / "campus.ifc"
    generate_school(path, site_id="c1", name="校园", buildings=3, storeys=2, classrooms_per_storey=2, labs=0,
                    orientation_deg=90.0)
    f = ifcopenshell.open(str(path))
    assert [b.Name for b in f.by_type("IfcBuilding")] == ["校园 A栋教学楼", "校园 B栋教学楼", "校园 C栋教学楼"]
    ids = {ifcopenshell.util.element.get_pset(d, "Pset_CampusTwin", "DeviceId") for d in f.by_type("IfcSensor")}
    assert ids == {f"ENV-{b}{s}F-0{n}" for b in "ABC" for s in (1, 2) for n in (1, 2)}
    model = read_model(path, site_id="c1")
    assert len(model.buildings) == 3 and len(model.storeys) == 6
    # turned by 90°: the corridor (along local x) runs north-south in the world
    corridor = next(r for r in model.rooms if r.name == "走廊")
    minx, miny, maxx, maxy = corridor.footprint.bounds
    assert maxy - miny > maxx - minx
    assert all(d.mapping == "containment" and rooms_contain(model, d) for d in model.devices)


def rooms_contain(model: TwinModel, device) -> bool:
    room = next(r for r in model.rooms if r.global_id == device.room_global_id)
    return room.footprint.buffer(1e-6).contains(Point(device.x, device.y))


def test_spaces_state_their_area_and_height(model: TwinModel) -> None:
    for room in model.rooms:
        assert room.quantity_area_m2 == pytest.approx(room.area_m2, rel=1e-6)
        assert room.quantity_height_m == pytest.approx(3.2)


def test_reader_gives_classrooms_a_9_by_7_footprint(model: TwinModel) -> None:
    classrooms = [r for r in model.rooms if r.use == "classroom"]
    assert len(classrooms) == STOREYS * CLASSROOMS
    for room in classrooms:
        assert room.footprint is not None and room.footprint.geom_type == "Polygon"
        assert room.area_m2 == pytest.approx(CLASSROOM_WIDTH * ROOM_DEPTH, rel=0.02)
        assert room.height_m == pytest.approx(3.2, abs=0.01)
    uses = Counter(r.use for r in model.rooms)
    assert uses == {"classroom": 12, "lab": 1, "office": STOREYS, "corridor": STOREYS, "toilet": STOREYS,
                    "stair": STOREYS}
    assert model.site.latitude == pytest.approx(22.6, abs=1e-6)
    assert model.site.longitude == pytest.approx(114.1, abs=1e-6)
    assert model.site.name == "深圳测试学校"
    assert len(model.storeys) == STOREYS


def test_reader_maps_every_device_by_containment_to_its_classroom(model: TwinModel) -> None:
    rooms = {r.global_id: r for r in model.rooms}
    storeys = {s.global_id: s for s in model.storeys}
    assert len(model.devices) == STOREYS * CLASSROOMS * DEVICES_PER_CLASSROOM
    for device in model.devices:
        assert device.mapping == "containment"
        room = rooms[device.room_global_id]
        floor, number = re.match(r"[A-Z]+-(\d)F-(\d\d)", device.device_id).groups()
        grade = "初一" if floor == "1" else "初二"
        assert room.name == f"{grade}({int(number)})班"
        storey = storeys[device.storey_global_id]
        assert storey.name == f"{floor}F"
        assert room.footprint.contains(Point(device.x, device.y))
        assert storey.elevation_m < device.z < storey.elevation_m + 3.2


def test_reader_tells_the_device_kinds_apart(model: TwinModel) -> None:
    kinds = Counter(d.kind for d in model.devices)
    classrooms = STOREYS * CLASSROOMS
    assert kinds == {"env_sensor": classrooms, "luminaire": 9 * classrooms, "blackboard_luminaire": 2 * classrooms,
                     "panel": classrooms}
    prefix = {"ENV": "env_sensor", "LUM": "luminaire", "BBL": "blackboard_luminaire", "PNL": "panel"}
    for device in model.devices:
        assert device.kind in DEVICE_KINDS
        assert device.kind == prefix[device.device_id.split("-")[0]]


def test_network_has_a_headquarters_and_members_around_shenzhen(tmp_path: Path) -> None:
    schools = generate_network(tmp_path, members=2)
    assert all(len(ifcopenshell.open(str(s.path)).by_type("IfcBuilding")) == 2 for s in schools)
    assert [s.site_id for s in schools] == ["hq", "m01", "m02"]
    assert [s.role for s in schools] == ["headquarters", "member", "member"]
    assert all(isinstance(s, NetworkSchool) and s.path.is_file() for s in schools)
    with pytest.raises(AttributeError):
        schools[0].name = "x"  # type: ignore[misc]
    sites = [read_model(s.path, site_id=s.site_id, role=s.role).site for s in schools]
    assert len({(s.latitude, s.longitude) for s in sites}) == 3
    for site in sites:
        assert 22.3 < site.latitude < 22.8 and 113.7 < site.longitude < 114.4
