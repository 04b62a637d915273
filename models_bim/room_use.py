"""Room use (classroom, lab, office, ...) and the name shown, from the words people put on IfcSpace.

Keywords are a plain table: Chinese as substrings, other scripts (Latin, Cyrillic) as word
patterns matched at the start of a word (``lab`` matches "Laboratorio", not "collaboration");
a pattern starting with ``\\w*`` also matches inside a word, for German compounds
("Chemielabor", "Schülertoiletten"). The first category that matches wins, in table order,
so "班主任办公室" is an office, "物理实验室" a lab, "Кабинет директора" an office and
"Кабинет физики" (a school's subject room) a classroom.

Names: tools write a room's number in IfcSpace.Name and what it is in LongName (ArchiCAD
"5" / "Wohnen", Revit "A102" / "Living Room"). :func:`room_names` shows the LongName then,
and keeps the number as the other name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from twin.domain import RoomUse

#: (use, Chinese substrings, word patterns), checked in this order.
ROOM_USE_KEYWORDS: tuple[tuple[RoomUse, tuple[str, ...], tuple[str, ...]], ...] = (
    ("toilet", ("卫生间", "厕所", "洗手间", "盥洗"),
     (r"toilet", r"\w*toilette", r"wcs?(?![a-z])", r"bath", r"bad(?:ezimmer)?\b", r"dusch", r"aseos?\b",
      r"ba[ñn]os?\b", r"restroom", r"rr\b", r"lavatory", r"туалет", r"санузел", r"уборн", r"душев")),
    ("stair", ("楼梯",), (r"stair", r"escalera", r"\w*treppe", r"лестниц")),
    ("lab", ("实验室",), (r"lab", r"\w*labor\b", r"taller\b", r"workshop", r"werkraum", r"лаборатор")),
    ("office", ("办公", "教研", "值班"),
     (r"office", r"oficina", r"despacho", r"b(?:ue|ü)ro\b", r"secretar", r"sekretar", r"sala\s+de\s+profesores",
      r"lehrerzimmer", r"staff\s*room", r"офис", r"директор", r"завуч", r"учительск", r"канцеляр", r"секретар",
      r"бухгалтер")),
    ("classroom", ("教室", "课室", "班"),
     (r"classroom", r"aula\b", r"\w*klassen", r"seminar", r"unterricht", r"h(?:ö|oe)rsaal", r"lecture",
      r"класс", r"аудитори", r"кабинет")),
    ("corridor", ("走廊", "过道", "门厅", "大厅"),
     (r"corridor", r"hall", r"pasillo", r"flur\b", r"diele\b", r"gang\b", r"korridor", r"distribuidor",
      r"коридор", r"холл", r"вестибюл")),
)

_PATTERNS: tuple[tuple[RoomUse, tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (use, cjk, re.compile(r"\b(?:" + "|".join(words) + ")", re.IGNORECASE)) for use, cjk, words in ROOM_USE_KEYWORDS
)
#: A room number or short code, not a name: "5", "A102", "143A", "EG.01", "B2-014" (a digit, at most 4 letters).
ROOM_CODE = re.compile(r"(?=.*\d)(?!(?:.*[A-Za-z]){5})[A-Za-z0-9][A-Za-z0-9._/-]{0,11}")


def use_of_text(text: str | None) -> RoomUse:
    """The use one text names, or ``"other"``: ``use_of_text("初一(3)班") == "classroom"``."""
    if not text:
        return "other"
    for use, cjk, pattern in _PATTERNS:
        if any(word in text for word in cjk) or pattern.search(text):
            return use
    return "other"


def classify_room(texts: Iterable[str | None]) -> RoomUse:
    """The use named by the first text that names one (pass the most telling text first)."""
    for text in texts:
        use = use_of_text(text)
        if use != "other":
            return use
    return "other"


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def room_names(name: object, long_name: object) -> tuple[str | None, str | None]:
    """(name shown, other name kept) of an IfcSpace from its Name and LongName.

    The LongName is shown when the Name is only a number or code; the number is kept as the
    other name: ``room_names("5", "Wohnen") == ("Wohnen", "5")``. Otherwise the Name is shown
    (the LongName when there is no Name) and the LongName kept.
    """
    name, long_name = _text(name), _text(long_name)
    if name is not None and long_name is not None and long_name != name and ROOM_CODE.fullmatch(name):
        return long_name, name
    return name or long_name, long_name
