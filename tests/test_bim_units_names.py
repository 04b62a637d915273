"""Units of stated quantities, room display names and room uses, on made and on real files."""

from __future__ import annotations

from pathlib import Path

import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.context
import ifcopenshell.api.geometry
import ifcopenshell.api.project
import ifcopenshell.api.pset
import ifcopenshell.api.root
import ifcopenshell.api.unit
import pytest

from models_bim.load import read_model
from models_bim.room_use import room_names, use_of_text
from models_bim.summary import summarize
from models_bim.units import file_units

# --- units ----------------------------------------------------------------------------------------


def millimetre_flat(path: Path, *, area_unit: bool, net_floor_area: float) -> Path:
    """An IFC4 file in millimetres with one 8 x 5 m space, 3 m high, stating ``net_floor_area``
    (in the file's area unit) in Qto_SpaceBaseQuantities; with or without an AREAUNIT."""
    f = ifcopenshell.api.project.create_file(version="IFC4")
    project = ifcopenshell.api.root.create_entity(f, ifc_class="IfcProject", name="mm")
    units = [ifcopenshell.api.unit.add_si_unit(f, unit_type="LENGTHUNIT", prefix="MILLI")]
    if area_unit:
        units.append(ifcopenshell.api.unit.add_si_unit(f, unit_type="AREAUNIT"))
    ifcopenshell.api.unit.assign_unit(f, units=units)
    model = ifcopenshell.api.context.add_context(f, context_type="Model")
    body = ifcopenshell.api.context.add_context(f, context_type="Model", context_identifier="Body",
                                                target_view="MODEL_VIEW", parent=model)
    site = ifcopenshell.api.root.create_entity(f, ifc_class="IfcSite", name="Site")
    building = ifcopenshell.api.root.create_entity(f, ifc_class="IfcBuilding", name="Haus")
    storey = ifcopenshell.api.root.create_entity(f, ifc_class="IfcBuildingStorey", name="EG")
    space = ifcopenshell.api.root.create_entity(f, ifc_class="IfcSpace", name="0.01")
    space.LongName = "Seminarraum"
    for parent, child in ((project, site), (site, building), (building, storey), (storey, space)):
        ifcopenshell.api.aggregate.assign_object(f, products=[child], relating_object=parent)
    for element in (site, building, storey, space):
        ifcopenshell.api.geometry.edit_object_placement(f, product=element)
    origin = f.createIfcAxis2Placement3D(f.createIfcCartesianPoint((0.0, 0.0, 0.0)), None, None)
    profile = f.createIfcRectangleProfileDef("AREA", None, f.createIfcAxis2Placement2D(
        f.createIfcCartesianPoint((4000.0, 2500.0)), None), 8000.0, 5000.0)
    solid = f.createIfcExtrudedAreaSolid(profile, origin, f.createIfcDirection((0.0, 0.0, 1.0)), 3000.0)
    space.Representation = f.createIfcProductDefinitionShape(
        None, None, [f.createIfcShapeRepresentation(body, "Body", "SweptSolid", [solid])])
    qto = ifcopenshell.api.pset.add_qto(f, product=space, name="Qto_SpaceBaseQuantities")
    ifcopenshell.api.pset.edit_qto(f, qto=qto, properties={"NetFloorArea": net_floor_area, "Height": 3000.0})
    f.write(str(path))
    return path


def test_areas_follow_the_length_unit_when_the_file_declares_no_area_unit(tmp_path: Path) -> None:
    """A Renga-like file: millimetres only, areas stated in mm² (40 m² = 40,000,000 mm²)."""
    path = millimetre_flat(tmp_path / "mm.ifc", area_unit=False, net_floor_area=40_000_000.0)
    units = file_units(ifcopenshell.open(str(path)))
    assert (units.length, units.area, units.volume) == pytest.approx((1e-3, 1e-6, 1e-9))
    assert (units.area_declared, units.volume_declared) == (False, False)
    (room,) = read_model(path, site_id="mm").rooms
    assert room.quantity_area_m2 == pytest.approx(40.0)
    assert room.quantity_height_m == pytest.approx(3.0)
    assert room.area_m2 == pytest.approx(40.0)
    model = read_model(path, site_id="mm")
    assert summarize(model)["area_discrepancies"] == []


def test_a_declared_area_unit_is_used_as_declared(tmp_path: Path) -> None:
    """Revit's millimetre files (OSH flat) declare m² for areas: 40 stays 40."""
    path = millimetre_flat(tmp_path / "mm-m2.ifc", area_unit=True, net_floor_area=40.0)
    units = file_units(ifcopenshell.open(str(path)))
    assert (units.length, units.area, units.area_declared) == (pytest.approx(1e-3), 1.0, True)
    (room,) = read_model(path, site_id="mm").rooms
    assert room.quantity_area_m2 == pytest.approx(40.0) and room.area_m2 == pytest.approx(40.0)


def test_units_of_the_shared_files(shared_ifc: Path) -> None:
    """Every shared file with spaces declares its area unit; IfcOpenHouse declares millimetres only."""
    feet = file_units(ifcopenshell.open(str(shared_ifc / "duplex-electrical_ifc2x3_revit2013_feet.ifc")))
    assert (feet.length, feet.area, feet.area_declared) == (pytest.approx(0.3048), pytest.approx(0.09290304), True)
    house = file_units(ifcopenshell.open(str(shared_ifc / "ifcopenhouse_ifc4_ifcopenshell05_unnamed.ifc")))
    assert (house.length, house.area, house.volume, house.area_declared) == (
        pytest.approx(1e-3), pytest.approx(1e-6), pytest.approx(1e-9), False)


# --- display names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "long_name", "shown"), [
    ("5", "Wohnen", ("Wohnen", "5")),             # ArchiCAD zone number
    ("A102", "Living Room", ("Living Room", "A102")),  # Revit room number
    ("143A", "VEST/ENTRY", ("VEST/ENTRY", "143A")),
    ("EG.01", "Seminarraum", ("Seminarraum", "EG.01")),
    ("B2-014", "教室", ("教室", "B2-014")),
    ("5", None, ("5", None)),                      # nothing better to show
    ("AULA DE PRIMARIA:13128408", "AULA DE PRIMARIA", ("AULA DE PRIMARIA:13128408", "AULA DE PRIMARIA")),
    ("初一(3)班", "智慧教室", ("初一(3)班", "智慧教室")),
    ("Raum 1", "Wohnen", ("Raum 1", "Wohnen")),     # a name, not a code
    ("Küche", "6", ("Küche", "6")),
    (None, "Flur", ("Flur", "Flur")),
    ("7", "7", ("7", "7")),
])
def test_the_long_name_is_shown_when_the_name_is_a_number_or_code(name: str | None, long_name: str | None,
                                                                   shown: tuple[str, str | None]) -> None:
    assert room_names(name, long_name) == shown


# --- room uses in five languages -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "use"), [
    # German
    ("Seminarraum", "classroom"), ("Klassenraum 5b", "classroom"), ("Unterrichtsraum", "classroom"),
    ("Hörsaal 1", "classroom"), ("Lehrerzimmer", "office"), ("Sekretariat", "office"), ("Buero", "office"),
    ("Chemielabor", "lab"), ("Labor Chemie", "lab"), ("Collaboration space", "other"), ("Werkraum", "lab"), ("WC4", "toilet"),
    ("WCs Damen", "toilet"), ("Bad", "toilet"), ("Duschen", "toilet"), ("Toiletten", "toilet"), ("Schülertoiletten", "toilet"), ("Herren-WC", "toilet"),
    ("Flur", "corridor"), ("Gang", "corridor"), ("Korridor", "corridor"), ("Eingang", "other"),
    ("Treppenhaus", "stair"), ("Küche", "other"), ("Wohnen", "other"), ("Schlafzimmer", "other"),
    ("Galerie", "other"),
    # Spanish
    ("AULA DE PRIMARIA", "classroom"), ("AULA DE INFORMATICA", "classroom"), ("LABORATORIO", "lab"),
    ("TALLER", "lab"), ("DESPACHO DOCENTES", "office"), ("SALA DE PROFESORES", "office"),
    ("SECRETARÍA", "office"), ("DISTRIBUIDOR", "corridor"), ("PASILLO", "corridor"), ("ASEO PMR", "toilet"),
    ("Baño", "toilet"), ("ESCALERA", "stair"), ("GIMNASIO", "other"), ("COCINA", "other"),
    ("SALA DE REUNIONES", "other"),
    # Russian
    ("Коридор", "corridor"), ("Холл 2 этажа", "corridor"), ("Класс 5А", "classroom"),
    ("Учебный класс", "classroom"), ("Кабинет физики", "classroom"), ("Кабинет директора", "office"),
    ("Учительская", "office"), ("Лаборатория химии", "lab"), ("Туалет", "toilet"), ("Санузел", "toilet"),
    ("Лестница", "stair"), ("Актовый зал", "other"), ("Столовая", "other"),
    # Chinese
    ("教室", "classroom"), ("课室", "classroom"), ("音乐教室", "classroom"), ("走廊", "corridor"),
    ("门厅", "corridor"), ("卫生间", "toilet"), ("盥洗室", "toilet"), ("教研室", "office"), ("值班室", "office"),
    ("化学实验室", "lab"), ("食堂", "other"), ("图书馆", "other"),
    # English
    ("Seminar room", "classroom"), ("Lecture hall", "classroom"), ("Staff room", "office"),
    ("Workshop", "lab"), ("Restroom", "toilet"), ("Bathroom 1", "toilet"), ("Hallway", "corridor"),
    ("Kitchen", "other"), ("Bedroom 2", "other"), ("Living Room", "other"), ("Foyer", "other"),
])
def test_room_use_in_five_languages(text: str, use: str) -> None:
    assert use_of_text(text) == use


#: file -> {IFC Name of a space: (name shown, other name kept, use)}; every shared file, also those without spaces.
SHARED_ROOMS: dict[str, dict[str, tuple[str, str | None, str]]] = {
    "ac20-fzk-haus_ifc4_archicad20.ifc": {
        "1": ("Flur", "1", "corridor"), "2": ("Buero", "2", "office"), "3": ("Bad", "3", "toilet"),
        "4": ("Schlafzimmer", "4", "other"), "5": ("Wohnen", "5", "other"), "6": ("Küche", "6", "other"),
        "7": ("Galerie", "7", "other")},
    "duplex-a-arch_ifc2x3_revit2011.ifc": {
        "A101": ("Foyer", "A101", "other"), "A102": ("Living Room", "A102", "other"),
        "A103": ("Kitchen", "A103", "other"), "A104": ("Bathroom 1", "A104", "toilet"),
        "A105": ("Stair", "A105", "stair"), "A201": ("Hallway", "A201", "corridor"),
        "B203": ("Bedroom 2", "B203", "other"), "R301": ("Roof", "R301", "other")},
    "duplex-electrical_ifc2x3_revit2013_feet.ifc": {"R301": ("Roof", "R301", "other")},
    "gva-primary-school-educativo_ifc2x3_revit2021.ifc": {
        "AULA DE PRIMARIA:13128408": ("AULA DE PRIMARIA:13128408", "AULA DE PRIMARIA", "classroom"),
        "AULA DE INFANTIL:13128489": ("AULA DE INFANTIL:13128489", "AULA DE INFANTIL", "classroom"),
        "LABORATORIO:13129483": ("LABORATORIO:13129483", "LABORATORIO", "lab"),
        "TALLER:13129475": ("TALLER:13129475", "TALLER", "lab"),
        "DESPACHO DOCENTES:13128853": ("DESPACHO DOCENTES:13128853", "DESPACHO DOCENTES", "office"),
        "SALA DE PROFESORES:13129055": ("SALA DE PROFESORES:13129055", "SALA DE PROFESORES", "office"),
        "ASEOS INFANTIL:13128750": ("ASEOS INFANTIL:13128750", "ASEOS INFANTIL", "toilet"),
        "DISTRIBUIDOR:13129409": ("DISTRIBUIDOR:13129409", "DISTRIBUIDOR", "corridor"),
        "60": ("GIMNASIO", "60", "other"), "68": ("COCINA", "68", "other"), "140": ("ESCALERA", "140", "stair"),
        "409": ("AULA DE INFORMATICA", "409", "classroom"), "411": ("ASEO PMR", "411", "toilet")},
    "office-a_ifc2x3_revit2011_99spaces.ifc": {
        "203": ("OPEN OFFICE", "203", "office"), "121": ("CORRIDOR", "121", "corridor"),
        "S102": ("STAIR", "S102", "stair"), "135": ("MENS RR", "135", "toilet"),
        "110": ("CMD CONFERENCE RM", "110", "other"), "143A": ("VEST/ENTRY", "143A", "other")},
    "osh-flat_ifc4_revit2017_mm.ifc": {
        "1": ("Raum 1", "1", "other"), "3": ("Bad", "3", "toilet"), "4": ("Treppenhaus", "4", "stair"),
        "5": ("Küche", "5", "other"), "6": ("Room", "6", "other"), "9": ("Diele", "9", "corridor")},
    "simple-scene-building-architecture_ifc4_sketchup_nested-sites.ifc": {
        "living room": ("living room", "living room", "other"), "entry hall": ("entry hall", "entry hall", "corridor")},
    "carwash-mini-project_ifc2x3_tekla2019_mm.ifc": {},
    "haustechnik-elektro_ifc2x3_ddscad_lights-outlets-switches.ifc": {},
    "ifcopenhouse_ifc4_ifcopenshell05_unnamed.ifc": {},
    "van-brienenoordbrug_ifc4x3add2_bricscad-bonsai_no-storeys.ifc": {},
}


def test_the_table_covers_every_shared_file(shared_ifc: Path) -> None:
    assert sorted(SHARED_ROOMS) == sorted(p.name for p in shared_ifc.glob("*.ifc"))


@pytest.mark.parametrize("file", sorted(SHARED_ROOMS))
def test_names_and_uses_of_rooms_in_every_shared_file(shared_ifc: Path, file: str) -> None:
    f = ifcopenshell.open(str(shared_ifc / file))
    ifc_name = {s.GlobalId: s.Name for s in f.by_type("IfcSpace")}
    model = read_model(shared_ifc / file, site_id="s1")
    assert len(model.rooms) == len(ifc_name)
    found = {ifc_name[r.global_id]: (r.name, r.long_name, r.use) for r in model.rooms}
    assert {name: found[name] for name in SHARED_ROOMS[file]} == SHARED_ROOMS[file]
