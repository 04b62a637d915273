"""Synthetic IFC4 schools for demos, tests and benchmarks.

A campus is ``buildings`` teaching buildings in a row, turned by ``orientation_deg``
(counter-clockwise from east). Every storey of a building: a corridor along local x,
rooms ``ROOM_DEPTH`` deep on both sides of it (classrooms ``CLASSROOM_WIDTH`` wide), a
teachers' office, a toilet and a stairwell; the ground floor of the first building also
holds the labs. Room names are Chinese, as the schools write them: 初一(3)班, 物理实验室,
教师办公室, 卫生间, 楼梯间, 走廊.

Every classroom, with its blackboard on the front wall (local x = 0), holds::

    ENV-1F-03        environment sensor on the back wall
    LUM-1F-03-1..9   classroom luminaires in 3 rows perpendicular to the blackboard
                     (long axis along local x, as GB 7793 asks, to keep glare off the board)
    BBL-1F-03-1..2   blackboard luminaires, parallel to the board
    PNL-1F-03        interactive panel at the board

each contained in its IfcSpace with its id in ``Pset_CampusTwin.DeviceId`` and its Tag.
``hardware_ids`` (device id -> text) adds ``Pset_CampusTwin.HardwareId`` to those devices
(``"ieee:00158d0001a2b3c4; serial:SN-1"``, written as given); without it the file is as before.
With several buildings the room code carries the building letter (``ENV-B2F-03``).
Spaces carry ``Qto_SpaceBaseQuantities`` (NetFloorArea, Height)::

    generate_school(Path("demo.ifc"), site_id="hq", name="深圳示范学校", buildings=2, storeys=3)

The same arguments give the same file: GlobalIds come from a generator seeded with
``site_id`` and ``seed``, and the header time stamp is fixed.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ifcopenshell
import ifcopenshell.api.context
import ifcopenshell.api.project
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
TOILET_WIDTH = 4.0
STAIR_WIDTH = 4.0
#: Gap between neighbouring buildings of a campus (m).
BUILDING_GAP_M = 18.0
BUILDING_DEPTH_M = 2 * ROOM_DEPTH + CORRIDOR_WIDTH
CORRIDOR_Y = ROOM_DEPTH  # corridor spans y in [ROOM_DEPTH, ROOM_DEPTH + CORRIDOR_WIDTH]
#: Classroom luminaires: rows (lines perpendicular to the blackboard) x luminaires per row.
LUMINAIRE_ROWS, LUMINAIRES_PER_ROW = 3, 3
#: Distance (m) of the first and last luminaire of a row from the front and back walls.
LUMINAIRE_FRONT_M, LUMINAIRE_BACK_M = 2.2, 1.4
LUMINAIRE_HEIGHT_M = 3.0
BLACKBOARD_LUMINAIRE_X_M = 0.8
#: Devices per classroom: sensor, classroom luminaires, 2 blackboard luminaires, panel.
DEVICES_PER_CLASSROOM = 1 + LUMINAIRE_ROWS * LUMINAIRES_PER_ROW + 2 + 1
Entity = ifcopenshell.entity_instance
PSET = "Pset_CampusTwin"
FIXED_TIME_STAMP = "2024-09-01T08:00:00"

#: Grade names per storey, ground floor first; further storeys get "N年级".
GRADES = ("初一", "初二", "初三", "高一", "高二", "高三")
LAB_NAMES = ("物理实验室", "化学实验室", "生物实验室")
BUILDING_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

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


_DevicePlan = tuple[str, str, str, str, tuple[float, float, float], tuple[float, float]]

_DEVICE_NAMES = {
    "EnvironmentSensor": "环境传感器",
    "ClassroomLuminaire": "教室灯",
    "BlackboardLuminaire": "黑板灯",
    "InteractivePanel": "交互式一体机",
}


class _Writer:
    """Holds the file and the seeded random generator while a school is written."""

    def __init__(self, site_id: str, seed: int) -> None:
        self.rng = random.Random(f"{site_id}:{seed}")
        self.f = ifcopenshell.api.project.create_file(version="IFC4")
        self.origin = self.f.createIfcCartesianPoint((0.0, 0.0, 0.0))
        self.z_axis = self.f.createIfcDirection((0.0, 0.0, 1.0))
        self.x_axis = self.f.createIfcDirection((1.0, 0.0, 0.0))
        self.y_axis = self.f.createIfcDirection((0.0, 1.0, 0.0))
        self.identity = self.f.createIfcAxis2Placement3D(self.origin, None, None)

    def guid(self) -> str:
        return ifcopenshell.guid.compress(uuid.UUID(int=self.rng.getrandbits(128)).hex)

    def root(self, ifc_class: str, **attributes: object) -> Entity:
        return self.f.create_entity(ifc_class, GlobalId=self.guid(), **attributes)

    def placement(self, relative_to: Entity | None, x: float = 0.0, y: float = 0.0, z: float = 0.0,
                  direction: tuple[float, float] | None = None) -> Entity:
        """A local placement at (x, y, z); ``direction`` turns local x towards that (x, y) vector."""
        point = self.origin if (x, y, z) == (0.0, 0.0, 0.0) else self.f.createIfcCartesianPoint((x, y, z))
        if direction is None:
            axes = self.identity if point is self.origin else self.f.createIfcAxis2Placement3D(point, None, None)
        else:
            ref = {(1.0, 0.0): self.x_axis, (0.0, 1.0): self.y_axis}.get(direction) or self.f.createIfcDirection(
                (*direction, 0.0))
            axes = self.f.createIfcAxis2Placement3D(point, self.z_axis, ref)
        return self.f.createIfcLocalPlacement(relative_to, axes)

    def box(self, body_context: Entity, width: float, depth: float, height: float) -> Entity:
        """A Body representation: a ``width`` x ``depth`` rectangle from the local origin, extruded up."""
        centre = self.f.createIfcAxis2Placement2D(self.f.createIfcCartesianPoint((width / 2, depth / 2)), None)
        profile = self.f.createIfcRectangleProfileDef("AREA", None, centre, width, depth)
        solid = self.f.createIfcExtrudedAreaSolid(profile, self.identity, self.z_axis, height)
        shape = self.f.createIfcShapeRepresentation(body_context, "Body", "SweptSolid", [solid])
        return self.f.createIfcProductDefinitionShape(None, None, [shape])

    def pset(self, elements: list[Entity], name: str, properties: dict[str, object]) -> None:
        values = [self.f.createIfcPropertySingleValue(key, None, _ifc_value(self.f, value), None)
                  for key, value in properties.items()]
        pset = self.root("IfcPropertySet", Name=name, HasProperties=values)
        self.root("IfcRelDefinesByProperties", RelatedObjects=elements, RelatingPropertyDefinition=pset)

    def quantities(self, element: Entity, area_m2: float, height_m: float) -> None:
        qto = self.root("IfcElementQuantity", Name="Qto_SpaceBaseQuantities", Quantities=[
            self.f.createIfcQuantityArea("NetFloorArea", None, None, area_m2, None),
            self.f.createIfcQuantityLength("Height", None, None, height_m, None),
        ])
        self.root("IfcRelDefinesByProperties", RelatedObjects=[element], RelatingPropertyDefinition=qto)

    def aggregate(self, whole: Entity, parts: list[Entity]) -> None:
        self.root("IfcRelAggregates", RelatingObject=whole, RelatedObjects=parts)

    def contain(self, structure: Entity, elements: list[Entity]) -> None:
        self.root("IfcRelContainedInSpatialStructure", RelatingStructure=structure, RelatedElements=elements)


def _ifc_value(f: ifcopenshell.file, value: object) -> Entity:
    if isinstance(value, bool):
        return f.create_entity("IfcBoolean", value)
    if isinstance(value, int):
        return f.create_entity("IfcInteger", value)
    if isinstance(value, float):
        return f.create_entity("IfcReal", value)
    return f.create_entity("IfcLabel", str(value))


def _grade(storey_index: int) -> str:
    return GRADES[storey_index] if storey_index < len(GRADES) else f"{storey_index + 1}年级"


def _storey_plan(storey_index: int, classrooms: int, labs: int) -> tuple[list[_RoomPlan], _RoomPlan]:
    """Rooms of one storey on both sides of the corridor (``labs`` of them labs), and the corridor itself."""
    grade = _grade(storey_index)
    items = [(f"{grade}({n})班", "Classroom", "Classroom", CLASSROOM_WIDTH, n) for n in range(1, classrooms + 1)]
    items += [(LAB_NAMES[i] if i < len(LAB_NAMES) else f"实验室{i + 1}", "Laboratory", "Lab", LAB_WIDTH, 0)
              for i in range(labs)]
    items += [("教师办公室", "Teachers' Office", "Office", OFFICE_WIDTH, 0),
              ("卫生间", "Toilet", "Toilet", TOILET_WIDTH, 0),
              ("楼梯间", "Stairwell", "Stair", STAIR_WIDTH, 0)]
    rows: list[list[tuple[str, str, str, float, int]]] = [[], []]
    for i, item in enumerate(items):
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


def _classroom_devices(room: str, rng: random.Random) -> list[_DevicePlan]:
    """(ifc class, predefined type, object type, device id, local x/y/z, local x direction) of a classroom's devices.

    The blackboard is on the front wall (x = 0); students look towards -x.
    """
    jitter = rng.uniform(-0.3, 0.3)
    along_rows = (1.0, 0.0)  # classroom luminaires: long axis perpendicular to the blackboard
    along_board = (0.0, 1.0)  # blackboard luminaires: long axis parallel to it
    devices: list[_DevicePlan] = [
        ("IfcSensor", "USERDEFINED", "EnvironmentSensor", f"ENV-{room}",
         (CLASSROOM_WIDTH - 0.2, ROOM_DEPTH / 2 + jitter, 1.5), along_rows),
    ]
    span = CLASSROOM_WIDTH - LUMINAIRE_FRONT_M - LUMINAIRE_BACK_M
    k = 0
    for row in range(LUMINAIRE_ROWS):  # rows side by side across the room, each running front to back
        y = ROOM_DEPTH * (row + 0.5) / LUMINAIRE_ROWS
        for i in range(LUMINAIRES_PER_ROW):
            k += 1
            x = LUMINAIRE_FRONT_M + span * i / max(1, LUMINAIRES_PER_ROW - 1)
            devices.append(("IfcLightFixture", "POINTSOURCE", "ClassroomLuminaire", f"LUM-{room}-{k}",
                            (x, y, LUMINAIRE_HEIGHT_M), along_rows))
    for k, y in enumerate((ROOM_DEPTH / 2 - 1.5, ROOM_DEPTH / 2 + 1.5), start=1):
        devices.append(("IfcLightFixture", "USERDEFINED", "BlackboardLuminaire", f"BBL-{room}-{k}",
                        (BLACKBOARD_LUMINAIRE_X_M, y, LUMINAIRE_HEIGHT_M - 0.1), along_board))
    devices.append(("IfcAudioVisualAppliance", "DISPLAY", "InteractivePanel", f"PNL-{room}",
                    (0.1, ROOM_DEPTH / 2, 1.2), along_board))
    return devices


def generate_school(path: Path, *, site_id: str, name: str, storeys: int = 2, classrooms_per_storey: int = 6,
                    labs: int = 1, buildings: int = 1, orientation_deg: float = 0.0,
                    latitude: float = SHENZHEN[0], longitude: float = SHENZHEN[1], seed: int = 0,
                    hardware_ids: Mapping[str, str] | None = None) -> None:
    """Write a synthetic IFC4 school to ``path`` (metres; see the module docstring for the layout).

    ``hardware_ids`` gives devices a ``Pset_CampusTwin.HardwareId`` (device id -> its text, as given)."""
    if storeys < 1 or classrooms_per_storey < 0 or labs < 0 or not 1 <= buildings <= len(BUILDING_LETTERS):
        raise ValueError(f"need storeys >= 1, classrooms_per_storey >= 0, labs >= 0 and "
                         f"1 <= buildings <= {len(BUILDING_LETTERS)}")
    w = _Writer(site_id, seed)
    f = w.f
    project = w.root("IfcProject", Name=name)
    units = [ifcopenshell.api.unit.add_si_unit(f, unit_type=t) for t in ("LENGTHUNIT", "AREAUNIT", "VOLUMEUNIT")]
    ifcopenshell.api.unit.assign_unit(f, units=units)  # metres, square metres, cubic metres
    model_context = ifcopenshell.api.context.add_context(f, context_type="Model")
    body = ifcopenshell.api.context.add_context(f, context_type="Model", context_identifier="Body",
                                                target_view="MODEL_VIEW", parent=model_context)

    site = w.root("IfcSite", Name=name, CompositionType="ELEMENT",
                  RefLatitude=ifcopenshell.util.geolocation.dd2dms(latitude, use_us=True),
                  RefLongitude=ifcopenshell.util.geolocation.dd2dms(longitude, use_us=True), RefElevation=0.0)
    site.ObjectPlacement = w.placement(None)
    w.aggregate(project, [site])
    w.pset([site], PSET, {"SiteId": site_id})
    angle = math.radians(orientation_deg)
    facing = (round(math.cos(angle), 12), round(math.sin(angle), 12))
    building_list = []
    for b in range(buildings):
        letter = BUILDING_LETTERS[b]
        label = f"{name} 教学楼" if buildings == 1 else f"{name} {letter}栋教学楼"
        building = w.root("IfcBuilding", Name=label, CompositionType="ELEMENT")
        offset = b * (BUILDING_DEPTH_M + BUILDING_GAP_M)  # buildings in a row along the campus y axis
        building.ObjectPlacement = w.placement(site.ObjectPlacement, -offset * facing[1], offset * facing[0], 0.0,
                                               facing if orientation_deg else None)
        building_list.append(building)
        storey_list = []
        for s in range(storeys):
            storey = _write_storey(w, body, building, s, classrooms_per_storey, labs if b == 0 and s == 0 else 0,
                                   room_prefix=letter if buildings > 1 else "", hardware_ids=hardware_ids or {})
            storey_list.append(storey)
        w.aggregate(building, storey_list)
    w.aggregate(site, building_list)
    f.header.file_name.name = Path(path).name
    f.header.file_name.time_stamp = FIXED_TIME_STAMP
    _make_deterministic(w)
    f.write(str(path))


def _write_storey(w: _Writer, body: Entity, building: Entity, index: int, classrooms: int, labs: int,
                  room_prefix: str, hardware_ids: Mapping[str, str]) -> Entity:
    floor = f"{index + 1}F"
    elevation = index * STOREY_HEIGHT_M
    storey = w.root("IfcBuildingStorey", Name=floor, Elevation=elevation, CompositionType="ELEMENT")
    storey.ObjectPlacement = w.placement(building.ObjectPlacement, z=elevation)
    rooms, corridor = _storey_plan(index, classrooms, labs)
    spaces = []
    for plan in [*rooms, corridor]:
        space = w.root("IfcSpace", Name=plan.name, LongName=plan.long_name, ObjectType=plan.object_type,
                       CompositionType="ELEMENT", PredefinedType="INTERNAL")
        space.ObjectPlacement = w.placement(storey.ObjectPlacement, plan.x0, plan.y0)
        space.Representation = w.box(body, plan.width, plan.depth, SPACE_HEIGHT_M)
        w.quantities(space, plan.width * plan.depth, SPACE_HEIGHT_M)
        spaces.append(space)
        if plan.number:
            _add_classroom_devices(w, space, f"{room_prefix}{floor}-{plan.number:02d}", hardware_ids)
    w.aggregate(storey, spaces)
    return storey


def _add_classroom_devices(w: _Writer, space: Entity, room: str, hardware_ids: Mapping[str, str]) -> None:
    elements = []
    for ifc_class, predefined, object_type, device_id, (x, y, z), direction in _classroom_devices(room, w.rng):
        element = w.root(ifc_class, Name=f"{_DEVICE_NAMES[object_type]} {device_id}", ObjectType=object_type,
                         Tag=device_id, PredefinedType=predefined)
        element.ObjectPlacement = w.placement(space.ObjectPlacement, x, y, z,
                                              direction if direction != (1.0, 0.0) else None)
        properties = {"DeviceId": device_id}
        if device_id in hardware_ids:  # in the same set: no entity (nor GlobalId) more than without it
            properties["HardwareId"] = hardware_ids[device_id]
        w.pset([element], PSET, properties)
        elements.append(element)
    w.contain(space, elements)


def _make_deterministic(w: _Writer) -> None:
    """Sets the api wrote (units) in id order: the api keeps them in a set, whose order varies per run."""
    for assignment in w.f.by_type("IfcUnitAssignment"):
        assignment.Units = sorted(assignment.Units, key=lambda e: e.id())


def generate_network(folder: Path, members: int = 2, seed: int = 0, *, buildings: int = 2) -> list[NetworkSchool]:
    """Write a headquarters and ``members`` member schools (``hq.ifc``, ``m01.ifc``, ...) to ``folder``.

    Every campus has ``buildings`` teaching buildings; the headquarters has 3 storeys of 4
    classrooms and 3 labs, a member 2 storeys of 3 classrooms and 1 lab (per building),
    small enough that the demo loads the network in a few seconds.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"network:{seed}")
    schools: list[NetworkSchool] = []
    hq_path = folder / "hq.ifc"
    generate_school(hq_path, site_id="hq", name="深圳明德教育集团总校", storeys=3, classrooms_per_storey=4,
                    labs=3, buildings=buildings, latitude=SHENZHEN[0], longitude=SHENZHEN[1], seed=seed)
    schools.append(NetworkSchool("hq", "深圳明德教育集团总校", "headquarters", hq_path))
    for i in range(1, members + 1):
        site_id = f"m{i:02d}"
        name = f"深圳明德教育集团第{i}分校"
        lat = SHENZHEN[0] + rng.uniform(-NETWORK_SPREAD_DEG, NETWORK_SPREAD_DEG)
        lon = SHENZHEN[1] + rng.uniform(-NETWORK_SPREAD_DEG, NETWORK_SPREAD_DEG) * 2
        orientation = rng.choice((0.0, 0.0, 15.0, -20.0, 90.0))
        path = folder / f"{site_id}.ifc"
        generate_school(path, site_id=site_id, name=name, storeys=2, classrooms_per_storey=3, labs=1,
                        buildings=buildings, orientation_deg=orientation, latitude=lat, longitude=lon, seed=seed + i)
        schools.append(NetworkSchool(site_id, name, "member", path))
    return schools
