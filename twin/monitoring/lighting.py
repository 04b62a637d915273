"""Lighting compliance of a classroom over one day's occupied hours (GB 7793-2010), pure.

The room's desk and blackboard illuminance and their uniformity are averaged over the
occupied minutes with data (each minute's value is the rule's aggregate over the room's
devices, as the rule engine computes it). A classroom complies on a day when every
average it has meets the bound of its rule: desk >= 300 lx, desk uniformity >= 0.7,
blackboard >= 500 lx, blackboard uniformity >= 0.8 by default (each average judged by
:meth:`twin.monitoring.standards.Rule.broken_by`, the comparison every judgement makes). It counts as measured
when it has desk illuminance in occupied hours. Uniformity needs two devices; a room
with one is judged on what it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from twin.monitoring.rule_engine import DeviceMinute, RoomContext, room_value
from twin.monitoring.standards import SUMMER, Rule
from twin.timetable import SCHOOL_TZ, Timetable

#: (field, rule id) in the order stored.
LIGHTING = (("desk_lux", "desk_illuminance_low"), ("desk_uniformity", "desk_uniformity_low"),
            ("blackboard_lux", "blackboard_illuminance_low"), ("blackboard_uniformity", "blackboard_uniformity_low"))


@dataclass(frozen=True, slots=True)
class RoomLighting:
    room_id: int
    occupied_minutes: int
    desk_lux: float | None
    desk_uniformity: float | None
    blackboard_lux: float | None
    blackboard_uniformity: float | None
    compliant: bool


def room_lighting(rules: Mapping[str, Rule], room: RoomContext,
                  metrics: Mapping[str, Mapping[datetime, Sequence[DeviceMinute]]], *,
                  timetable: Timetable = Timetable(), tz: ZoneInfo = SCHOOL_TZ,
                  season_name: str = SUMMER) -> RoomLighting | None:
    """The day's averages and verdict (bounds of ``season_name``); ``None`` when the classroom was not measured."""
    values: dict[str, float | None] = {}
    minutes = 0
    compliant = True
    for name, rule_id in LIGHTING:
        rule = rules.get(rule_id)
        if rule is None or not rule.enabled:
            values[name] = None
            continue
        series = [v for b, samples in metrics.get(rule.metric, {}).items()
                  if timetable.occupied(b.astimezone(tz)) and (v := room_value(rule, samples, room.area_m2)) is not None]
        values[name] = sum(series) / len(series) if series else None
        if name == "desk_lux":
            minutes = len(series)
        value = values[name]
        if value is not None and rule.broken_by(value, season_name):
            compliant = False
    if values["desk_lux"] is None:
        return None
    return RoomLighting(room.room_id, minutes, values["desk_lux"], values["desk_uniformity"], values["blackboard_lux"],
                        values["blackboard_uniformity"], compliant)
