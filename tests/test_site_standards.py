"""The one API that judges values (twin.monitoring.site_standards): the rule engine, the floor plan and the legends agree."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from twin.database import connection
from twin.domain import Building, Room, Site, Storey, TwinModel
from twin.monitoring.rule_engine import DeviceMinute, RoomContext, evaluate_rule
from twin.monitoring.site_standards import NO_STANDARD, OK, SiteStandards, standards_for
from twin.monitoring.standards import DEFAULT_RULES, SUMMER, WINTER, SiteConfig
from twin.storage.model import save_model
from twin.storage.monitoring import (
    SiteRules,
    climate_zone,
    rule_overrides,
    set_climate_zone,
    set_rule_override,
    site_rules,
)
from twin.timetable import SCHOOL_TZ

DECEMBER = date(2026, 12, 14)  # a Monday, winter in Shenzhen's zone
JULY = date(2026, 7, 6)  # a Monday, summer
CLASSROOM = RoomContext(1, "classroom", 60.0, "101")
TEMPERATURE = DEFAULT_RULES["temperature_out_of_range"]


def alarms_at(day: date, value: float, rules=DEFAULT_RULES, season_of=None) -> list:
    """Episodes of the temperature rule for a whole first lesson at ``value`` (what the monitor would raise)."""
    start = datetime(day.year, day.month, day.day, 8, 0, tzinfo=SCHOOL_TZ)
    minutes = {start + timedelta(minutes=m): [DeviceMinute(start + timedelta(minutes=m), 1, "env_sensor", value,
                                                           value, value)] for m in range(45)}
    std = SiteStandards("hq", day, rules=rules)
    return evaluate_rule(rules["temperature_out_of_range"], CLASSROOM, minutes, season_of=season_of or std.season_of,
                         now=start + timedelta(days=1))


def test_a_december_classroom_at_17_5_is_ok_and_raises_nothing() -> None:
    winter = SiteStandards("hq", DECEMBER)
    assert winter.season == WINTER
    low, high = TEMPERATURE.bounds(WINTER)
    assert low <= 17.5 <= high  # the premise, from the rule set
    assert winter.judge("temperature", 17.5, "classroom").status == OK
    assert winter.judge_room({"temperature": 17.5, "occupancy": 30}, "classroom").status == OK
    assert alarms_at(DECEMBER, 17.5) == []


def test_the_same_value_in_july_is_judged_by_the_summer_band_and_agrees_with_the_alarm() -> None:
    summer = SiteStandards("hq", JULY)
    assert summer.season == SUMMER
    verdict = summer.judge("temperature", 17.5, "classroom")
    assert 17.5 < TEMPERATURE.bounds(SUMMER)[0]
    assert verdict.status == TEMPERATURE.severity and verdict.broken == (TEMPERATURE.id,)
    assert summer.judge_room({"temperature": 17.5, "occupancy": 30}, "classroom").status == TEMPERATURE.severity
    [episode] = alarms_at(JULY, 17.5)
    assert episode.severity == verdict.status


def test_a_site_override_changes_the_plan_and_the_alarms_alike() -> None:
    rules = SiteConfig().rules_for("hq", {"temperature_out_of_range": {"seasonal": {"winter": [18, 24]},
                                                                     "severity": "critical"}})
    std = SiteStandards("hq", DECEMBER, rules=rules)
    assert std.judge("temperature", 17.5, "classroom").status == "critical"
    [episode] = alarms_at(DECEMBER, 17.5, rules=rules)
    assert episode.severity == "critical"


def test_only_rules_of_the_room_use_judge_and_others_have_no_standard() -> None:
    std = SiteStandards("hq", JULY)
    classroom_co2, indoor_co2 = DEFAULT_RULES["classroom_co2_high"], DEFAULT_RULES["indoor_co2_high"]
    between = (indoor_co2.max + classroom_co2.max) / 2
    assert std.judge("co2", between, "classroom").status == OK
    assert std.judge("co2", between, "lab").status == indoor_co2.severity
    assert std.judge("co2", classroom_co2.max + 1, "classroom").status == classroom_co2.severity
    assert std.judge("temperature", 35.0, "corridor").status == NO_STANDARD
    assert std.judge("occupancy", 3, "classroom").status == NO_STANDARD


def test_a_room_verdict_takes_the_worst_rule_in_its_hours() -> None:
    std = SiteStandards("hq", JULY)
    desk = DEFAULT_RULES["desk_illuminance_low"]
    dark = desk.min - 100
    assert std.judge_room({"illuminance": dark, "occupancy": 0}, "classroom").status == NO_STANDARD  # empty: lights may be off
    assert std.judge_room({"illuminance": dark, "occupancy": 30}, "classroom").status == desk.severity
    assert std.judge_room({"occupancy": 3}, "classroom").status == NO_STANDARD
    co2 = DEFAULT_RULES["classroom_co2_high"]
    both = std.judge_room({"illuminance": dark, "co2": co2.max + 100, "occupancy": 30}, "classroom")
    assert both.status == "critical" and set(both.broken) == {desk.id, co2.id}


def test_bands_describe_the_rules_for_legends_and_charts() -> None:
    winter, summer = SiteStandards("hq", DECEMBER), SiteStandards("hq", JULY)
    [band] = winter.bands("temperature", "classroom")
    assert (band.low, band.high) == TEMPERATURE.bounds(WINTER) and band.season == WINTER
    assert band.standard == TEMPERATURE.standard and band.severity == TEMPERATURE.severity
    assert (summer.bands("temperature")[0].low, summer.bands("temperature")[0].high) == TEMPERATURE.bounds(SUMMER)
    co2 = summer.bands("co2")
    assert {b.rule for b in co2} == {"classroom_co2_high", "indoor_co2_high"}
    assert [b.rule for b in summer.bands("co2", "classroom")] == ["classroom_co2_high"]
    assert summer.bands("illuminance", "classroom")[0].low == DEFAULT_RULES["desk_illuminance_low"].min
    assert summer.bands("occupancy") == ()


def test_switched_off_rules_judge_nothing() -> None:
    rules = SiteConfig().rules_for("hq", {"temperature_out_of_range": {"enabled": False}})
    assert SiteStandards("hq", JULY, rules=rules).judge("temperature", 5.0, "classroom").status == NO_STANDARD


def test_standards_for_a_stored_site_read_its_zone_and_overrides(db_url: str) -> None:
    model = TwinModel(site=Site("std", "Standards School"), buildings=(Building("B", "B"),),
                      storeys=(Storey("S", "B", "1F", 0.0),), rooms=(Room("R", "S", "101", use="classroom"),))
    with connection(db_url) as conn:
        save_model(conn, model)
        assert standards_for(conn, "std", date(2026, 11, 23)).season == SUMMER  # default zone: Shenzhen
        set_climate_zone(conn, "std", "cold")
        assert standards_for(conn, "std", date(2026, 11, 23)).season == WINTER
        set_rule_override(conn, "std", "temperature_out_of_range", {"seasonal": {"winter": [18, 24]}})
        std = standards_for(conn, "std", DECEMBER)
        assert std.judge("temperature", 17.5, "classroom").status == TEMPERATURE.severity
        zone_file = SiteConfig(sites={"std": {"climate_zone": "mild"}})
        assert standards_for(conn, "std", date(2026, 11, 23), config=zone_file).season == SUMMER
        # what it read, in one statement: the same as the two reads apart; nothing for an unknown site
        set_rule_override(conn, "std", "classroom_co2_high", {"max": 1200})
        assert site_rules(conn, "std") == SiteRules(climate_zone(conn, "std"), rule_overrides(conn, "std"))
        winter = {"seasonal": {"winter": [18, 24]}}
        assert site_rules(conn, "std") == SiteRules("cold", {"classroom_co2_high": {"max": 1200},
                                                             "temperature_out_of_range": winter})
        assert site_rules(conn, "nowhere") == SiteRules(None, {})


def test_the_report_states_the_sites_lighting_rules_not_the_defaults() -> None:
    from twin.monitoring.report import render

    rules = SiteConfig().rules_for("hq", {"desk_illuminance_low": {"min": 350}, "blackboard_uniformity_low": {"min": 0.85}})
    room = {"room": "101", "days": 1, "compliant_days": 1, "desk_lux": 400.0, "desk_uniformity": 0.8,
            "blackboard_lux": 600.0, "blackboard_uniformity": 0.9}
    html = render(site_id="hq", site_name="HQ", role="headquarters", year=2026, month=12, first=DECEMBER,
                  last=DECEMBER, days=[], rooms=[room], month_alarms=[], devices=[], device_names={},
                  generated=datetime(2026, 12, 15, tzinfo=SCHOOL_TZ), standards=SiteStandards("hq", DECEMBER, rules=rules))
    assert "desk ≥ 350 lx" in html and "uniformity ≥ 0.85" in html
    assert f"uniformity ≥ {DEFAULT_RULES['desk_uniformity_low'].min:g}" in html
