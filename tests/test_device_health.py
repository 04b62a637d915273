"""Device health checks, pure: offline, stuck, out of range, battery hysteresis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.device_health import MetricMinute, battery_low, offline_episodes, out_of_range_episodes, stuck_episodes

T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)


def minute(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def test_offline_after_three_intervals_and_back_with_the_next_minute():
    buckets = [minute(i) for i in (0, 1, 2, 10, 11)]
    [ep] = offline_episodes(5, "luminaire", buckets, before=None, after=minute(12), now=minute(60))
    assert (ep.rule, ep.device, ep.start, ep.end) == ("device_offline", 5, minute(6), minute(10))
    # a gap of exactly 3 intervals is not offline yet; silence until now is, and stays open
    assert offline_episodes(5, "luminaire", [minute(0), minute(4)], before=None, after=minute(5), now=minute(9)) == []
    [open_ep] = offline_episodes(5, "env_sensor", [minute(0)], before=None, after=None, now=minute(9))
    assert (open_ep.start, open_ep.end) == (minute(2) + timedelta(seconds=30), None)
    assert offline_episodes(5, "panel", [], before=None, after=None, now=minute(60)) == []  # never reported


def test_stuck_needs_the_duration_and_ends_at_a_new_value():
    frozen = [MetricMinute(minute(i), 2, 612.0, 612.0) for i in range(25)]
    moving = [MetricMinute(minute(25), 2, 612.0, 640.0)]
    [ep] = stuck_episodes(3, "co2", frozen + moving, kind="env_sensor")
    assert (ep.rule, ep.start, ep.end) == ("device_stuck", minute(0), minute(25))
    assert stuck_episodes(3, "co2", frozen[:19] + moving, kind="env_sensor") == []  # 19 min < 20
    assert stuck_episodes(3, "illuminance", frozen, kind="luminaire") == []  # not a checked metric
    [still] = stuck_episodes(3, "co2", frozen, kind="env_sensor")
    assert still.end is None


def test_out_of_range_groups_refusals_and_battery_has_hysteresis():
    eps = out_of_range_episodes(4, [minute(0), minute(5), minute(40)], now=minute(50))
    assert [(e.start, e.end) for e in eps] == [(minute(0), minute(20)), (minute(40), None)]
    assert battery_low(19.0, alarm_open=False) is True and battery_low(22.0, alarm_open=False) is False
    assert battery_low(22.0, alarm_open=True) is True and battery_low(26.0, alarm_open=True) is False
    assert battery_low(None, alarm_open=True) is None
