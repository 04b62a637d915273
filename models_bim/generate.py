"""Synthetic IFC4 schools for demos and tests, written with ``ifcopenshell.api``.

Layout of every storey (metres, world frame): a corridor along x at ``CORRIDOR_Y``, rooms
``ROOM_DEPTH`` deep on both sides (south row below, north row above), classrooms
``CLASSROOM_WIDTH`` x ``ROOM_DEPTH``. Each classroom holds an environment sensor, 9 classroom
luminaires in 3 rows, 2 blackboard luminaires and an interactive panel, each contained in
its IfcSpace with its device id in ``Pset_CampusTwin.DeviceId``::

    generate_school(Path("demo.ifc"), site_id="hq", name="深圳示范学校")

The same arguments give the same file: GlobalIds come from a generator seeded with
``site_id`` and ``seed``, and the header time stamp is fixed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.context
import ifcopenshell.api.project
import ifcopenshell.api.pset
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.api.unit
import ifcopenshell.guid
import ifcopenshell.util.geolocation

STOREY_HEIGHT_M = 3.6
SPACE_HEIGHT_M = 3.2
CLASSROOM_WIDTH = 9.0
ROOM_DEPTH = 7.0
CORRIDOR_WIDTH = 3.0
LAB_WIDTH = 12.0
OFFICE_WIDTH = 6.0
CORRIDOR_Y = ROOM_DEPTH  # corridor spans y in [ROOM_DEPTH, ROOM_DEPTH + CORRIDOR_WIDTH]
Entity = ifcopenshell.entity_instance
PSET = "Pset_CampusTwin"
FIXED_TIME_STAMP = "2024-09-01T08:00:00"

#: Grade names per storey, ground floor first; further storeys get "N年级".
GRADES = ("初一", "初二", "初三", "高一", "高二", "高三")

#: Where Shenzhen is, and how far (degrees) member schools spread around it.
SHENZHEN = (22.5431, 114.0579)
NETWORK_SPREAD_DEG = 0.12


@dataclass(frozen=True, slots=True)
class NetworkSchool:
    """One school file of a generated network."""

    site_id: str
    name: str
    role: Literal["headquarters", "member"]
    path: Path


@dataclass(frozen=True, slots=True)
class _RoomPlan:
    name: str
    long_name: str
    object_type: str
    x0: float
    y0: float
    width: float
    depth: float
    number: int = 0  # classroom number on its storey, 0 for other rooms


class _Writer:
    """Holds the file and the seeded random generator while a school is written."""

    def __init__(self, site_id: str, seed: int) -> None:
        self.rng = random.Random(f"{site_id}:{seed}")
        self.f = ifcopenshell.api.project.create_file(version="IFC4")
        self.origin = self.f.createIfcCartesianPoint((0.0, 0.0, 0.0))
        self.z_axis = self.f.createIfcDirection((0.0, 0.0, 1.0))

    def guid(self) -> str:
        return ifcopenshell.guid.compress(uuid.UUID(int=self.rng.getrandbits(128)).hex)

    def entity(self, ifc_class: str, name: str, predefined_type: str | None = None) -> Entity:
        return ifcopenshell.api.root.create_entity(self.f, ifc_class=ifc_class, name=name,
                                                   predefined_type=predefined_type)

    def placement(self, relative_to: Entity | None, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Entity:
        point = self.origin if (x, y, z) == (0.0, 0.0, 0.0) else self.f.createIfcCartesianPoint((x, y, z))
        return self.f.createIfcLocalPlacement(relative_to, self.f.createIfcAxis2Placement3D(point, None, None))

    def box(self, body_context: Entity, width: float, depth: float, height: float) -> Entity:
        """A Body representation: a ``width`` x ``depth`` rectangle from the local origin, extruded up."""
        centre = self.f.createIfcAxis2Placement2D(self.f.createIfcCartesianPoint((width / 2, depth / 2)), None)
        profile = self.f.createIfcRectangleProfileDef("AREA", None, centre, width, depth)
        solid = self.f.createIfcExtrudedAreaSolid(profile, self.f.createIfcAxis2Placement3D(self.origin, None, None),
                                                  self.z_axis, height)
        shape = self.f.createIfcShapeRepresentation(body_context, "Body", "SweptSolid", [solid])
        return self.f.createIfcProductDefinitionShape(None, None, [shape])

    def set_pset(self, element: Entity, properties: dict[str, object]) -> None:
        pset = ifcopenshell.api.pset.add_pset(self.f, product=element, name=PSET)
        ifcopenshell.api.pset.edit_pset(self.f, pset=pset, properties=properties)


def _grade(storey_index: int) -> str:
    return GRADES[storey_index] if storey_index < len(GRADES) else f"{storey_index + 1}年级"


def _storey_plan(storey_index: int, classrooms: int, labs: int) -> tuple[list[_RoomPlan], _RoomPlan]:
    """Rooms of one storey on both sides of the corridor, and the corridor itself."""
    rows: list[list[tuple[str, str, str, float, int]]] = [[], []]  # (name, long name, type, width, number)
    extra: list[tuple[str, str, str, float, int]] = []
    if storey_index == 0:
        lab_names = ("物理实验室", "化学实验室", "生物实验室")
        for i in range(labs):
            lab = lab_names[i] if i < len(lab_names) else f"实验室{i + 1}"
            extra.append((lab, "Laboratory", "Lab", LAB_WIDTH, 0))
        extra.append(("教师办公室", "Teachers' Office", "Office", OFFICE_WIDTH, 0))
    grade = _grade(storey_index)
    items = [(f"{grade}({n})班", "Classroom", "Classroom", CLASSROOM_WIDTH, n) for n in range(1, classrooms + 1)]
    for i, item in enumerate(items + extra):
        rows[i % 2].append(item)
    plans: list[_RoomPlan] = []
    for side, row in enumerate(rows):
        y0 = 0.0 if side == 0 else CORRIDOR_Y + CORRIDOR_WIDTH
        x = 0.0
        for name, long_name, object_type, width, number in row:
            plans.append(_RoomPlan(name, long_name, object_type, x, y0, width, ROOM_DEPTH, number))
            x += width
    length = max((p.x0 + p.width for p in plans), default=CLASSROOM_WIDTH)
    corridor = _RoomPlan("走廊", "Corridor", "Corridor", 0.0, CORRIDOR_Y, length, CORRIDOR_WIDTH)
    return plans, corridor


_DevicePlan = tuple[str, str, str, str, tuple[float, float, float]]


def _classroom_devices(floor: str, number: int, rng: random.Random) -> list[_DevicePlan]:
    """(ifc class, predefined type, object type, device id, local x/y/z) of one classroom's devices."""
    room = f"{floor}-{number:02d}"
    jitter = rng.uniform(-0.3, 0.3)
    devices: list[_DevicePlan] = [
        ("IfcSensor", "USERDEFINED", "EnvironmentSensor", f"ENV-{room}",
         (CLASSROOM_WIDTH - 0.2, ROOM_DEPTH / 2 + jitter, 1.5)),
    ]
    k = 0
    for row in range(3):  # rows parallel to the blackboard, front to back
        for col in range(3):
            k += 1
            devices.append(("IfcLightFixture", "POINTSOURCE", "ClassroomLuminaire", f"LUM-{room}-{k}",
                            (CLASSROOM_WIDTH * (row + 0.5) / 3, ROOM_DEPTH * (col + 0.5) / 3, 3.0)))
    for k, y in enumerate((ROOM_DEPTH / 2 - 1.5, ROOM_DEPTH / 2 + 1.5), start=1):
        devices.append(("IfcLightFixture", "USERDEFINED", "BlackboardLuminaire", f"BBL-{room}-{k}", (0.8, y, 2.9)))
    devices.append(("IfcAudioVisualAppliance", "DISPLAY", "InteractivePanel", f"PNL-{room}",
                    (0.1, ROOM_DEPTH / 2, 1.2)))
    return devices


_DEVICE_NAMES = {
    "EnvironmentSensor": "环境传感器",
    "ClassroomLuminaire": "教室灯",
    "BlackboardLuminaire": "黑板灯",
    "InteractivePanel": "交互式一体机",
}


def generate_school(path: Path, *, site_id: str, name: str, storeys: int = 2, classrooms_per_storey: int = 6,
                    labs: int = 1, latitude: float = 22.5431, longitude: float = 114.0579, seed: int = 0) -> None:
    """Write a synthetic IFC4 school to ``path`` (metres; see the module docstring for the layout)."""
    if storeys < 1 or classrooms_per_storey < 0 or labs < 0:
        raise ValueError("need storeys >= 1, classrooms_per_storey >= 0 and labs >= 0")
    w = _Writer(site_id, seed)
    f = w.f
    project = w.entity("IfcProject", name)
    units = [ifcopenshell.api.unit.add_si_unit(f, unit_type=t) for t in ("LENGTHUNIT", "AREAUNIT", "VOLUMEUNIT")]
    ifcopenshell.api.unit.assign_unit(f, units=units)  # metres, square metres, cubic metres
    model_context = ifcopenshell.api.context.add_context(f, context_type="Model")
    body = ifcopenshell.api.context.add_context(f, context_type="Model", context_identifier="Body",
                                                target_view="MODEL_VIEW", parent=model_context)

    site = w.entity("IfcSite", name)
    site.RefLatitude = ifcopenshell.util.geolocation.dd2dms(latitude, use_us=True)
    site.RefLongitude = ifcopenshell.util.geolocation.dd2dms(longitude, use_us=True)
    site.RefElevation = 0.0
    w.set_pset(site, {"SiteId": site_id})
    building = w.entity("IfcBuilding", f"{name} 教学楼")
    # Aggregate and contain before placing: the api re-bases existing placements on assignment.
    ifcopenshell.api.aggregate.assign_object(f, products=[site], relating_object=project)
    ifcopenshell.api.aggregate.assign_object(f, products=[building], relating_object=site)
    site.ObjectPlacement = w.placement(None)
    building.ObjectPlacement = w.placement(site.ObjectPlacement)

    for s in range(storeys):
        floor = f"{s + 1}F"
        elevation = s * STOREY_HEIGHT_M
        storey = w.entity("IfcBuildingStorey", floor)
        storey.Elevation = elevation
        ifcopenshell.api.aggregate.assign_object(f, products=[storey], relating_object=building)
        storey.ObjectPlacement = w.placement(building.ObjectPlacement, z=elevation)
        rooms, corridor = _storey_plan(s, classrooms_per_storey, labs)
        plans = [*rooms, corridor]
        spaces = [w.entity("IfcSpace", plan.name, predefined_type="INTERNAL") for plan in plans]
        ifcopenshell.api.aggregate.assign_object(f, products=spaces, relating_object=storey)
        for plan, space in zip(plans, spaces, strict=True):
            space.LongName = plan.long_name
            space.ObjectType = plan.object_type
            space.ObjectPlacement = w.placement(storey.ObjectPlacement, plan.x0, plan.y0)
            space.Representation = w.box(body, plan.width, plan.depth, SPACE_HEIGHT_M)
            if plan.number:
                _add_classroom_devices(w, space, floor, plan.number)

    _make_deterministic(w)
    f.header.file_name.name = Path(path).name
    f.header.file_name.time_stamp = FIXED_TIME_STAMP
    f.write(str(path))


def _make_deterministic(w: _Writer) -> None:
    """Seeded GlobalIds for everything (the api draws random ones) and sets written in id order."""
    for element in sorted(w.f.by_type("IfcRoot"), key=lambda e: e.id()):
        element.GlobalId = w.guid()
    for element in [*w.f.by_type("IfcRelationship"), *w.f.by_type("IfcUnitAssignment")]:
        for i, value in enumerate(element):
            if isinstance(value, tuple) and value and all(isinstance(v, ifcopenshell.entity_instance) for v in value):
                element[i] = sorted(value, key=lambda e: e.id())


def _add_classroom_devices(w: _Writer, space: Entity, floor: str, number: int) -> None:
    plans = _classroom_devices(floor, number, w.rng)
    elements = [w.entity(ifc_class, f"{_DEVICE_NAMES[object_type]} {device_id}", predefined_type=predefined)
                for ifc_class, predefined, object_type, device_id, _ in plans]
    ifcopenshell.api.spatial.assign_container(w.f, products=elements, relating_structure=space)
    for element, (_, _, object_type, device_id, (x, y, z)) in zip(elements, plans, strict=True):
        element.ObjectType = object_type
        element.Tag = device_id
        element.ObjectPlacement = w.placement(space.ObjectPlacement, x, y, z)
        w.set_pset(element, {"DeviceId": device_id})


def generate_network(folder: Path, members: int = 2, seed: int = 0) -> list[NetworkSchool]:
    """Write a headquarters school and ``members`` member schools (``hq.ifc``, ``m01.ifc``, ...) to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"network:{seed}")
    schools: list[NetworkSchool] = []
    hq_path = folder / "hq.ifc"
    generate_school(hq_path, site_id="hq", name="深圳明德教育集团总校", storeys=3, classrooms_per_storey=8,
                    labs=2, latitude=SHENZHEN[0], longitude=SHENZHEN[1], seed=seed)
    schools.append(NetworkSchool("hq", "深圳明德教育集团总校", "headquarters", hq_path))
    for i in range(1, members + 1):
        site_id = f"m{i:02d}"
        name = f"深圳明德教育集团第{i}分校"
        lat = SHENZHEN[0] + rng.uniform(-NETWORK_SPREAD_DEG, NETWORK_SPREAD_DEG)
        lon = SHENZHEN[1] + rng.uniform(-NETWORK_SPREAD_DEG, NETWORK_SPREAD_DEG) * 2
        path = folder / f"{site_id}.ifc"
        generate_school(path, site_id=site_id, name=name, storeys=2, classrooms_per_storey=6, labs=1,
                        latitude=lat, longitude=lon, seed=seed + i)
        schools.append(NetworkSchool(site_id, name, "member", path))
    return schools
