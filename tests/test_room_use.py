"""Room use from names, long names, object types and classifications (pure), and on a real file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from models_bim.load import read_model
from models_bim.room_use import classify_room, use_of_text


@pytest.mark.parametrize(("text", "use"), [
    ("初一(3)班", "classroom"), ("多媒体教室", "classroom"), ("物理实验室", "lab"), ("教师办公室", "office"),
    ("班主任办公室", "office"), ("走廊", "corridor"), ("男卫生间", "toilet"), ("楼梯间", "stair"),
    ("Classroom 2.04", "classroom"), ("CHEMISTRY LAB", "lab"), ("Science Laboratory", "lab"),
    ("Head teacher's office", "office"), ("CORRIDOR", "corridor"), ("Hallway 2", "corridor"),
    ("WOMENS RR", "toilet"), ("WC", "toilet"), ("Stair B", "stair"), ("Aula 3", "classroom"),
    ("Büro", "office"), ("Klassenzimmer", "classroom"), ("Flur", "corridor"),
    ("Collaboration space", "other"), ("Boiler room", "other"), ("", "other"), (None, "other"),
])
def test_use_of_one_text(text: str | None, use: str) -> None:
    assert use_of_text(text) == use


def test_the_first_text_that_names_a_use_wins() -> None:
    # long name, name, object type, classification texts: the order load.py passes them in
    assert classify_room(["Room 101", None, "Classroom", "Uniclass SL_25_10_14: Laboratories"]) == "classroom"
    assert classify_room([None, "R-12", None, "OmniClass 13-11 17 11: Laboratory"]) == "lab"
    assert classify_room(["Storage", "S-1"]) == "other"


def test_an_english_office_building_by_hand(shared_ifc: Path) -> None:
    """office-a (Revit): counts found by listing every IfcSpace's LongName with IfcOpenShell:
    OPEN OFFICE 7 + SCIF OPEN OFFICE + CMDR OFFICE = 9 offices; CORRIDOR 6; STAIR 4;
    MENS RR 2 + WOMENS RR 2 + CMD RR = 5 toilets; the other 75 (TEAM RM, MECH RM, ...) are other."""
    model = read_model(shared_ifc / "office-a_ifc2x3_revit2011_99spaces.ifc", site_id="oa")
    assert Counter(r.use for r in model.rooms) == {"office": 9, "corridor": 6, "stair": 4, "toilet": 5, "other": 75}
