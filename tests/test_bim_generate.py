"""The synthetic school generator: what it writes, and how the reader sees it."""

from __future__ import annotations

import re
import time
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
    ROOM_DEPTH,
    STOREY_HEIGHT_M,
    NetworkSchool,
    generate_network,
    generate_school,
)
from models_bim.load import read_model
from twin.domain import DEVICE_KINDS, TwinModel

STOREYS, CLASSROOMS, LABS = 2, 6, 1
#: Per classroom: 1 sensor, 9 classroom luminaires, 2 blackboard luminaires, 1 panel.
DEVICES_PER_CLASSROOM = 13


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
    assert len(f.by_type("IfcSpace")) == classrooms + LABS + 1 + STOREYS  # + office + one corridor per storey
    assert len(f.by_type("IfcSensor")) == classrooms
    assert len(f.by_type("IfcLightFixture")) == classrooms * 11
    assert sum(x.ObjectType == "BlackboardLuminaire" for x in f.by_type("IfcLightFixture")) == classrooms * 2
    assert len(f.by_type("IfcAudioVisualAppliance")) == classrooms
    names = Counter(s.Name for s in f.by_type("IfcSpace"))
    assert names["物理实验室"] == 1 and names["教师办公室"] == 1 and names["走廊"] == STOREYS
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


def test_a_two_storey_school_is_written_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate_school(tmp_path / "fast.ifc", site_id="m01", name="学校")
    assert time.perf_counter() - start < 2.0


def test_reader_gives_classrooms_a_9_by_7_footprint(model: TwinModel) -> None:
    classrooms = [r for r in model.rooms if r.use == "classroom"]
    assert len(classrooms) == STOREYS * CLASSROOMS
    for room in classrooms:
        assert room.footprint is not None and room.footprint.geom_type == "Polygon"
        assert room.area_m2 == pytest.approx(CLASSROOM_WIDTH * ROOM_DEPTH, rel=0.02)
        assert room.height_m == pytest.approx(3.2, abs=0.01)
    uses = Counter(r.use for r in model.rooms)
    assert uses == {"classroom": 12, "lab": 1, "office": 1, "corridor": STOREYS}
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
    assert [s.site_id for s in schools] == ["hq", "m01", "m02"]
    assert [s.role for s in schools] == ["headquarters", "member", "member"]
    assert all(isinstance(s, NetworkSchool) and s.path.is_file() for s in schools)
    with pytest.raises(AttributeError):
        schools[0].name = "x"  # type: ignore[misc]
    sites = [read_model(s.path, site_id=s.site_id, role=s.role).site for s in schools]
    assert len({(s.latitude, s.longitude) for s in sites}) == 3
    for site in sites:
        assert 22.3 < site.latitude < 22.8 and 113.7 < site.longitude < 114.4
