"""The rule engine and the standards table, pure: series in, episodes out (no services)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from twin.monitoring.rule_engine import DeviceMinute, RoomContext, evaluate_room, evaluate_rule
from twin.monitoring.standards import DEFAULT_RULES, RulesError, load_config, season
from twin.timetable import SCHOOL_TZ

DAY = date(2026, 11, 23)  # a Monday, a school day
ROOM = RoomContext(7, "classroom", 60.0, "Room 7")
NOW = datetime(2026, 11, 24, tzinfo=SCHOOL_TZ)


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 11, 23, hh, mm, tzinfo=SCHOOL_TZ)


def minutes(values: dict[datetime, float], kind: str = "env_sensor", device: int = 1):
    return {b: [DeviceMinute(b, device, kind, v, v, v)] for b, v in values.items()}


def lesson_one(value_at) -> dict[datetime, float]:
    """08:00-08:44, one value a minute."""
    return {at(8, m): value_at(m) for m in range(45)}


def summer(_: date) -> str:
    return "summer"


def test_a_single_spike_raises_nothing():
    series = lesson_one(lambda m: 2500.0 if m == 20 else 800.0)
    rule = DEFAULT_RULES["temperature_out_of_range"]
    assert evaluate_rule(DEFAULT_RULES["classroom_co2_high"], ROOM, minutes(series), season_of=summer, now=NOW) == []
    temps = lesson_one(lambda m: 40.0 if m == 20 else 25.0)
    assert evaluate_rule(rule, ROOM, minutes(temps), season_of=summer, now=NOW) == []


def test_a_violation_lasting_the_minimum_duration_raises_and_clears_back_in_range_with_hysteresis():
    # 08:10-08:24 at 29.5 °C (15 min > 10), 08:25-08:29 at 27.8 (inside but within the 0.5 hysteresis), then 26
    temps = lesson_one(lambda m: 29.5 if 10 <= m < 25 else 27.8 if 25 <= m < 30 else 26.0)
    [ep] = evaluate_rule(DEFAULT_RULES["temperature_out_of_range"], ROOM, minutes(temps), season_of=summer, now=NOW)
    assert (ep.rule, ep.room_id, ep.start, ep.end, ep.severity) == (
        "temperature_out_of_range", 7, at(8, 10), at(8, 30), "warning")
    assert "29.5 °C above 28" in ep.message


def test_nine_minutes_are_not_enough_and_a_compliant_minute_restarts_the_count():
    temps = lesson_one(lambda m: 29.0 if (10 <= m < 19 or 20 <= m < 29) else 25.0)
    assert evaluate_rule(DEFAULT_RULES["temperature_out_of_range"], ROOM, minutes(temps), season_of=summer,
                         now=NOW) == []


def test_winter_bounds_come_from_the_season():
    temps = lesson_one(lambda m: 20.0)  # fine in winter (16-24), too cold in summer (22-28)
    rule = DEFAULT_RULES["temperature_out_of_range"]
    assert evaluate_rule(rule, ROOM, minutes(temps), season_of=lambda d: "winter", now=NOW) == []
    [ep] = evaluate_rule(rule, ROOM, minutes(temps), season_of=summer, now=NOW)
    assert (ep.start, ep.end) == (at(8, 0), at(16, 35))  # still violating when the lessons end
    assert season(date(2026, 1, 10), "cold") == "winter" and season(date(2026, 4, 10), "severe_cold") == "winter"
    assert season(date(2026, 4, 10), "hot_summer_warm_winter") == "summer"


def test_an_episode_still_violating_before_the_day_ends_stays_open():
    temps = lesson_one(lambda m: 30.0)
    [ep] = evaluate_rule(DEFAULT_RULES["temperature_out_of_range"], ROOM, minutes(temps), season_of=summer,
                         now=at(9, 0))
    assert ep.end is None


def test_minutes_outside_lessons_do_not_count():
    temps = {at(7, m): 35.0 for m in range(59)} | {at(12, m): 35.0 for m in range(59)}
    assert evaluate_rule(DEFAULT_RULES["temperature_out_of_range"], ROOM, minutes(temps), season_of=summer,
                         now=NOW) == []


def test_daily_mean_co2_and_uniformity_and_room_uses():
    co2 = lesson_one(lambda m: 1200.0 if m < 15 else 2000.0)
    [ep] = evaluate_rule(DEFAULT_RULES["classroom_co2_high"], ROOM, minutes(co2), season_of=summer, now=NOW)
    # the day's mean after minute m (m >= 15): (15*1200 + (m-14)*2000)/(m+1) > 1500 <=> 500 m > 11500 <=> m > 23
    assert (ep.start, ep.end, ep.severity) == (at(8, 24), at(16, 35), "critical")
    office = RoomContext(8, "office")
    assert evaluate_rule(DEFAULT_RULES["classroom_co2_high"], office, minutes(co2), season_of=summer, now=NOW) == []
    # two luminaires, 200 and 400 lx: mean 300 (just compliant), uniformity 0.67 < 0.7
    lux = {at(8, m): [DeviceMinute(at(8, m), 1, "luminaire", 200, 200, 200),
                      DeviceMinute(at(8, m), 2, "luminaire", 400, 400, 400)] for m in range(45)}
    eps = evaluate_room(DEFAULT_RULES.values(), ROOM, {"illuminance": lux}, season_of=summer, now=NOW)
    assert [(e.rule, e.start, e.end) for e in eps] == [("desk_uniformity_low", at(8, 0), at(16, 35))]


def test_rules_file_overrides_and_clear_errors(tmp_path: Path):
    good = tmp_path / "rules.toml"
    good.write_text('[rules.classroom_co2_high]\nmax = 1200\nmin_duration = "15m"\n'
                    '[sites.hq]\nclimate_zone = "cold"\n[sites.hq.rules.noise_background_high]\nenabled = false\n'
                    '[sites.hq.rules.tvoc_high]\nmetric = "tvoc"\nmax = 0.6\nstandard = "GB/T 18883-2022"\n')
    config = load_config(good)
    hq = config.rules_for("hq")
    assert hq["classroom_co2_high"].bounds("summer") == (None, 1200.0)
    assert hq["classroom_co2_high"].min_duration == timedelta(minutes=15)
    assert not hq["noise_background_high"].enabled and config.rules_for("m01")["noise_background_high"].enabled
    assert hq["tvoc_high"].max == 0.6 and "tvoc_high" not in config.rules_for("m01")
    assert config.climate_zone("hq") == "cold" and config.climate_zone("m01") == "hot_summer_warm_winter"
    for text, error in [("[rules.x]\nmax = 1\n", "unknown metric"),
                        ("[rules.classroom_co2_high]\nseverity = 'loud'\n", "severity"),
                        ("[rules.classroom_co2_high]\nmin_duration = 'soon'\n", "not a duration"),
                        ("[sites.hq]\nclimate_zone = 'arctic'\n", "unknown climate zone"),
                        ("[rulez]\n", "unknown section"), ("[rules\n", "rules file")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(RulesError, match=error):
            load_config(bad)
