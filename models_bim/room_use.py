"""Room use (classroom, lab, office, ...) from the words people put on IfcSpace.

Keywords are a plain table: Chinese as substrings, Latin-script words matched at the start
of a word (``lab`` matches "Laboratorio", not "collaboration"). The first category that
matches wins, in table order, so "班主任办公室" is an office and "物理实验室" a lab.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from twin.domain import RoomUse

#: (use, Chinese substrings, Latin-script word patterns), checked in this order.
ROOM_USE_KEYWORDS: tuple[tuple[RoomUse, tuple[str, ...], tuple[str, ...]], ...] = (
    ("toilet", ("卫生间", "厕所", "洗手间"), (r"toilet", r"wc\b", r"bath", r"bad(?:ezimmer)?\b", r"aseos?\b",
                                          r"restroom", r"rr\b", r"lavatory")),
    ("stair", ("楼梯",), (r"stair", r"escalera", r"treppe")),
    ("lab", ("实验室",), (r"lab",)),
    ("office", ("办公",), (r"office", r"oficina", r"despacho", r"b(?:ue|ü)ro\b")),
    ("classroom", ("教室", "班"), (r"classroom", r"aula\b", r"klassen")),
    ("corridor", ("走廊", "过道"), (r"corridor", r"hall", r"pasillo", r"flur\b", r"diele\b", r"distribuidor")),
)

_PATTERNS: tuple[tuple[RoomUse, tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (use, cjk, re.compile(r"\b(?:" + "|".join(latin) + ")", re.IGNORECASE)) for use, cjk, latin in ROOM_USE_KEYWORDS
)


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
