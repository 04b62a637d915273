"""Reading real IFC files made by others (../shared/ifc), odd device mappings and broken input."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import ifcopenshell
import ifcopenshell.api.spatial
import ifcopenshell.util.element
import ifcopenshell.util.unit
import pytest

from models_bim.errors import IfcReadError
from models_bim.generate import generate_school
from models_bim.load import read_model
from models_bim.summary import summarize
from twin.domain import DEVICE_KINDS, TwinModel

DUPLEX_ELECTRICAL = "duplex-electrical_ifc2x3_revit2013_feet.ifc"
HAUSTECHNIK = "haustechnik-elektro_ifc2x3_ddscad_lights-outlets-switches.ifc"
OFFICE = "office-a_ifc2x3_revit2011_99spaces.ifc"
SCHOOL = "gva-primary-school-educativo_ifc2x3_revit2021.ifc"
NESTED_SITES = "simple-scene-building-architecture_ifc4_sketchup_nested-sites.ifc"
NO_STOREYS = "van-brienenoordbrug_ifc4x3add2_bricscad-bonsai_no-storeys.ifc"
UNNAMED = "ifcopenhouse_ifc4_ifcopenshell05_unnamed.ifc"
FZK = "ac20-fzk-haus_ifc4_archicad20.ifc"
FEET_TO_M = 0.3048


@pytest.fixture(scope="module")
def shared_models(shared_ifc: Path) -> dict[str, tuple[TwinModel, float]]:
    """Every shared file read once: name -> (model, seconds). A file that fails fails here, with its name."""
    models = {}
    for path in sorted(shared_ifc.glob("*.ifc")):
        start = time.perf_counter()
        try:
            models[path.name] = (read_model(path, site_id="s1"), time.perf_counter() - start)
        except IfcReadError as exc:
            pytest.fail(f"{path.name}: {exc}")
    return models


def _model(shared_models: dict[str, tuple[TwinModel, float]], name: str) -> TwinModel:
    return shared_models[name][0]


def test_every_shared_file_reads_with_all_its_spaces_and_storeys(shared_ifc: Path, shared_models) -> None:
    assert len(shared_models) >= 10
    for name, (model, _) in shared_models.items():
        ifc = ifcopenshell.open(str(shared_ifc / name))
        assert len(model.rooms) == len(ifc.by_type("IfcSpace")), name
        if ifc.by_type("IfcBuildingStorey"):
            assert len(model.storeys) >= 1, name
        assert model.buildings, name
        assert model.schema.startswith(ifc.schema), name


#: Device classes and type objects of the issue, written out here independently of models_bim.devices.
DEVICE_CLASSES = {"IfcSensor", "IfcLightFixture", "IfcLamp", "IfcAudioVisualAppliance", "IfcCommunicationsAppliance",
                  "IfcElectricAppliance", "IfcOutlet", "IfcSwitchingDevice", "IfcUnitaryControlElement", "IfcController"}


def _independent_counts(ifc: ifcopenshell.file) -> tuple[int, int, int]:
    """(storeys, spaces, devices) straight from IfcOpenShell: storeys (or one per building when there are none),
    spaces, and elements of a device class or typed by a device type object."""
    storeys = len(ifc.by_type("IfcBuildingStorey")) or len(ifc.by_type("IfcBuilding"))
    devices = 0
    for element in ifc.by_type("IfcElement"):
        element_type = ifcopenshell.util.element.get_type(element)
        type_class = element_type.is_a()[: -len("Type")] if element_type is not None else None
        devices += element.is_a() in DEVICE_CLASSES or type_class in DEVICE_CLASSES
    return storeys, len(ifc.by_type("IfcSpace")), devices


def test_counts_of_every_shared_file_match_independent_ifcopenshell_queries(shared_ifc: Path, shared_models) -> None:
    for name, (model, _) in shared_models.items():
        expected = _independent_counts(ifcopenshell.open(str(shared_ifc / name)))
        assert (len(model.storeys), len(model.rooms), len(model.devices)) == expected, name


def test_two_files_checked_by_hand(shared_models) -> None:
    """Numbers found by reading the STEP text (``grep -cE '= ?IFCSPACE ?\\(' file`` and the like) and the types
    its IfcRelDefinesByType name, cross-checked with ../shared/ifc/MANIFEST.md."""
    # Office A: 99 IFCSPACE, 3 IFCBUILDINGSTOREY; 31 IFCFLOWTERMINAL, of which the 3 typed by the 2
    # IFCELECTRICAPPLIANCETYPE objects are devices (the other 28 are sanitary terminals), each in a space.
    office = _model(shared_models, OFFICE)
    assert (len(office.storeys), len(office.rooms), len(office.devices)) == (3, 99, 3)
    assert Counter(d.mapping for d in office.devices) == {"containment": 3}
    # Duplex electrical (feet): 1 IFCSPACE ('Roof'), 3 IFCBUILDINGSTOREY; 82 IFCFLOWTERMINAL + 3
    # IFCDISTRIBUTIONCONTROLELEMENT are devices (47 outlets, 28 lights, 7 appliances, 3 controllers);
    # the 8 IFCFLOWCONTROLLER are protective devices, not devices of the twin. All sit in storeys.
    duplex = _model(shared_models, DUPLEX_ELECTRICAL)
    assert (len(duplex.storeys), len(duplex.rooms), len(duplex.devices)) == (3, 1, 85)
    assert Counter(d.kind for d in duplex.devices) == {"outlet": 47, "luminaire": 28, "appliance": 7, "controller": 3}
    assert Counter(d.mapping for d in duplex.devices) == {"unmapped": 85}


def test_the_spatial_tree_is_consistent(shared_models) -> None:
    for name, (model, _) in shared_models.items():
        buildings = {b.global_id for b in model.buildings}
        storeys = {s.global_id for s in model.storeys}
        rooms = {r.global_id for r in model.rooms}
        assert all(s.building_global_id in buildings for s in model.storeys), name
        assert all(r.storey_global_id in storeys for r in model.rooms), name
        assert all(b.name and isinstance(b.name, str) for b in model.buildings), name
        assert all(s.name for s in model.storeys) and all(r.name for r in model.rooms), name
        for device in model.devices:
            assert device.room_global_id is None or device.room_global_id in rooms, name
            assert device.storey_global_id is None or device.storey_global_id in storeys, name


def test_device_ids_are_unique_and_topic_safe(shared_models) -> None:
    for name, (model, _) in shared_models.items():
        ids = [d.device_id for d in model.devices]
        assert len(ids) == len(set(ids)), name
        assert all(re.fullmatch(r"[^/+#\s]{1,128}", i) for i in ids), name
        assert all(d.kind in DEVICE_KINDS for d in model.devices), name


def test_rooms_with_geometry_get_footprints_in_metres(shared_models) -> None:
    for name, (model, _) in shared_models.items():
        for room in model.rooms:
            assert room.footprint is not None and room.footprint.is_valid, (name, room.name)
            assert room.footprint.geom_type in ("Polygon", "MultiPolygon")
            assert 0.3 < room.area_m2 < 5000, (name, room.name, room.area_m2)
            assert 0.1 < room.height_m < 30, (name, room.name, room.height_m)


def _quantity_height(space: ifcopenshell.entity_instance) -> float | None:
    for quantities in ifcopenshell.util.element.get_psets(space, qtos_only=True).values():
        if isinstance(quantities.get("Height"), float):
            return quantities["Height"]
    return None


def test_heights_agree_with_the_files_quantities_or_are_reported(shared_ifc: Path, shared_models) -> None:
    """Stated heights (read here with ifcopenshell.util) against the geometry's: within 5 %, except
    FZK-Haus's attic gallery under its sloping roof (4.0 m stated, 3.39 m of body geometry)."""
    checked = {}
    for name, (model, _) in shared_models.items():
        ifc = ifcopenshell.open(str(shared_ifc / name))
        scale = ifcopenshell.util.unit.calculate_unit_scale(ifc)
        rooms = {r.global_id: r for r in model.rooms}
        stated = {s.GlobalId: q * scale for s in ifc.by_type("IfcSpace") if (q := _quantity_height(s))}
        if not stated:
            continue
        assert {g: rooms[g].quantity_height_m for g in stated} == pytest.approx(stated, abs=1e-3), name
        far = {g for g, q in stated.items() if abs(rooms[g].height_m - q) > 0.05 * q}
        assert far == {d["global_id"] for d in summarize(model)["height_discrepancies"]}, name
        checked[name] = (len(stated), sorted(rooms[g].name for g in far))  # the LongName when Name is a number
    assert checked == {SCHOOL: (122, []), FZK: (7, ["Galerie"])}


def _quantity_area(space: ifcopenshell.entity_instance) -> float | None:
    for quantities in ifcopenshell.util.element.get_psets(space, qtos_only=True).values():
        for key in ("NetFloorArea", "GrossFloorArea"):
            if isinstance(quantities.get(key), float):
                return quantities[key]
    return None


def test_footprint_areas_agree_with_the_files_quantities(shared_ifc: Path, shared_models) -> None:
    """Every room that states its area is within 5 %, except FZK-Haus's attic gallery, which is reported."""
    checked = {}
    for name, (model, _) in shared_models.items():
        ifc = ifcopenshell.open(str(shared_ifc / name))
        rooms = {r.global_id: r for r in model.rooms}
        stated = {s.GlobalId: q for s in ifc.by_type("IfcSpace") if (q := _quantity_area(s))}
        if not stated:
            continue
        assert {g: rooms[g].quantity_area_m2 for g in stated} == pytest.approx(stated, abs=1e-4), name  # m² already
        far = {g for g, q in stated.items() if abs(rooms[g].area_m2 - q) > 0.05 * q}
        assert far == {d["global_id"] for d in summarize(model)["area_discrepancies"]}, name
        checked[name] = (len(stated), sorted(rooms[g].name for g in far))  # the LongName when Name is a number
    assert checked == {SCHOOL: (122, []), FZK: (7, ["Galerie"])}


def test_school_rooms_are_recognised_in_spanish(shared_models) -> None:
    uses = Counter(r.use for r in _model(shared_models, SCHOOL).rooms)
    assert uses["classroom"] >= 20  # AULA DE PRIMARIA, AULA SECUNDARIA, ...
    assert uses["lab"] == 4 and uses["toilet"] >= 5 and uses["stair"] >= 1  # 2 LABORATORIO, 2 TALLER (workshops)


def test_feet_file_gives_luminaires_outlets_and_controllers_in_metres(shared_ifc: Path, shared_models) -> None:
    model = _model(shared_models, DUPLEX_ELECTRICAL)
    kinds = Counter(d.kind for d in model.devices)
    assert kinds["luminaire"] == 28 and kinds["outlet"] == 47 and kinds["controller"] == 3
    assert kinds["appliance"] == 7
    assert all(d.ifc_class in ("IfcFlowTerminal", "IfcDistributionControlElement") for d in model.devices)
    # devices sit in storeys, not spaces; the one space is the roof: all unmapped, but on a storey
    assert all(d.mapping == "unmapped" and d.storey_global_id for d in model.devices)
    xs = [d.x for d in model.devices]
    ys = [d.y for d in model.devices]
    assert max(xs) - min(xs) < 30 and max(ys) - min(ys) < 30  # a duplex, in metres, not feet
    elevations = sorted(s.elevation_m for s in model.storeys)
    assert 2.0 < elevations[1] - elevations[0] < 4.5
    # the roof space: Revit's own area property is in square feet
    (roof,) = model.rooms
    ifc = ifcopenshell.open(str(shared_ifc / DUPLEX_ELECTRICAL))
    ifc_roof = ifc.by_guid(roof.global_id)
    revit_area_ft2 = ifcopenshell.util.element.get_psets(ifc_roof)["Dimensions"]["Area"]
    assert roof.area_m2 == pytest.approx(revit_area_ft2 * FEET_TO_M**2, rel=0.01)


def test_ifc2x3_type_objects_decide_what_is_a_device(shared_models) -> None:
    kinds = Counter(d.kind for d in _model(shared_models, HAUSTECHNIK).devices)
    assert kinds == {"luminaire": 123, "outlet": 105, "switch": 48}  # no protective devices
    office = _model(shared_models, OFFICE).devices  # 28 sanitary terminals are not devices
    assert [d.kind for d in office] == ["appliance"] * 3
    assert all(d.mapping == "containment" and d.room_global_id for d in office)


def test_invalid_georeference_is_ignored_not_fatal(shared_models) -> None:
    model = _model(shared_models, HAUSTECHNIK)
    assert model.site.latitude is None and model.site.longitude is None
    assert any("RefLatitude" in w for w in model.warnings)
    site = _model(shared_models, SCHOOL).site
    assert site.latitude == pytest.approx(42.41486, abs=1e-4) and site.longitude == pytest.approx(-71.25807, abs=1e-4)


def test_nested_sites_no_storeys_and_unnamed_elements(shared_models) -> None:
    nested = _model(shared_models, NESTED_SITES)
    assert nested.site.name == "environment - site" and len(nested.rooms) == 2
    bridge = _model(shared_models, NO_STOREYS)
    (building,) = bridge.buildings
    (storey,) = bridge.storeys
    assert storey.building_global_id == building.global_id and storey.name == building.name
    unnamed = _model(shared_models, UNNAMED)
    assert unnamed.site.name == "s1"
    assert all(b.name for b in unnamed.buildings) and all(s.name for s in unnamed.storeys)


def test_site_name_and_role_come_from_the_caller(shared_ifc: Path) -> None:
    model = read_model(shared_ifc / FZK, site_id="hq", site_name="Karlsruhe", role="headquarters")
    assert (model.site.site_id, model.site.name, model.site.role) == ("hq", "Karlsruhe", "headquarters")
    assert model.site.latitude == pytest.approx(49.1004, abs=1e-3)


def test_progress_is_reported_while_footprints_are_made(shared_ifc: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    read_model(shared_ifc / FZK, site_id="s1", progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls[0] == ("footprints", 0, 7) and calls[-1] == ("footprints", 7, 7)
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls)


@pytest.fixture
def odd_school(tmp_path: Path) -> Path:
    """A generated school where three devices left their classroom's containment."""
    path = tmp_path / "odd.ifc"
    generate_school(path, site_id="m01", name="学校", storeys=1, classrooms_per_storey=2, labs=0)
    f = ifcopenshell.open(str(path))
    by_id = {ifcopenshell.util.element.get_pset(e, "Pset_CampusTwin", "DeviceId"): e for e in f.by_type("IfcProduct")}
    (storey,) = f.by_type("IfcBuildingStorey")
    # contained in the storey only: found by its position
    ifcopenshell.api.spatial.assign_container(f, products=[by_id["ENV-1F-01"]], relating_structure=storey)
    # referenced by its classroom, contained nowhere
    panel = by_id["PNL-1F-02"]
    space = ifcopenshell.util.element.get_container(panel)
    ifcopenshell.api.spatial.unassign_container(f, products=[panel])
    ifcopenshell.api.spatial.reference_structure(f, products=[panel], relating_structure=space)
    # in the storey, but placed outside every room
    lamp = by_id["LUM-1F-01-1"]
    ifcopenshell.api.spatial.assign_container(f, products=[lamp], relating_structure=storey)
    lamp.ObjectPlacement.RelativePlacement.Location.Coordinates = (-50.0, -50.0, 3.0)
    f.write(str(path))
    return path


def test_devices_map_by_reference_geometry_or_not_at_all(odd_school: Path) -> None:
    model = read_model(odd_school, site_id="m01")
    rooms = {r.global_id: r.name for r in model.rooms}
    devices = {d.device_id: d for d in model.devices}
    sensor, panel, lamp = devices["ENV-1F-01"], devices["PNL-1F-02"], devices["LUM-1F-01-1"]
    assert (sensor.mapping, rooms[sensor.room_global_id]) == ("geometry", "初一(1)班")
    assert (panel.mapping, rooms[panel.room_global_id]) == ("reference", "初一(2)班")
    assert (lamp.mapping, lamp.room_global_id) == ("unmapped", None)
    assert lamp.storey_global_id == model.storeys[0].global_id
    assert Counter(d.mapping for d in model.devices)["containment"] == len(model.devices) - 3


def _broken_inputs(tmp_path: Path, shared_ifc: Path) -> dict[str, Path]:
    real = (shared_ifc / FZK).read_bytes()
    header = (b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');\nFILE_NAME('','',(''),(''),'','','');\n"
              b"FILE_SCHEMA(('%s'));\nENDSEC;\nDATA;\n")
    files = {
        "empty": b"",
        "truncated": real[: len(real) // 2],
        "text": "这不是IFC文件\nplain text, not a model\n".encode(),
        "junk": bytes((i * 37 + 11) % 256 for i in range(4096)),
        "schema": header % b"IFC5" + b"ENDSEC;\nEND-ISO-10303-21;\n",
        "corrupt": header % b"IFC4" + b"#1=IFCPROJECT('0fB_SPtnHRyHPsjfd8nCe$',$,'x',$,$,$,$,$,$);\n#2=IFCSITE((((;\n"
                   b"#3=@@@;\nENDSEC;\nEND-ISO-10303-21;\n",
    }
    for name, data in files.items():
        (tmp_path / f"{name}.ifc").write_bytes(data)
    return {name: tmp_path / f"{name}.ifc" for name in files}


@pytest.mark.parametrize(("case", "message"), [
    ("empty", "empty file"),
    ("truncated", "truncated or corrupt IFC: "),
    ("text", "not an IFC file"),
    ("junk", "not an IFC file"),
    ("schema", "unsupported schema IFC5"),
    ("corrupt", "truncated or corrupt IFC: "),
])
def test_broken_input_raises_ifc_read_error_with_a_one_line_message(tmp_path: Path, shared_ifc: Path, case: str,
                                                                     message: str) -> None:
    path = _broken_inputs(tmp_path, shared_ifc)[case]
    with pytest.raises(IfcReadError) as info:
        read_model(path, site_id="s1")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_raises_ifc_read_error(tmp_path: Path) -> None:
    with pytest.raises(IfcReadError, match="file not found"):
        read_model(tmp_path / "nothing.ifc", site_id="s1")
