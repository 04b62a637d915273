"""Device health checks, pure: offline, stuck, out of range, battery hysteresis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.monitoring.device_health import (
    MetricMinute,
    battery_low,
    clock_message,
    clock_off,
    merge_spells,
    offline_episodes,
    out_of_range_episodes,
    per_device,
    stuck_episodes,
)

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


def test_silence_while_the_twin_was_not_listening_is_not_offline():
    """Luminaires (60 s): the twin listens 0-30 and from 40 (down 10 minutes); offline counts from 43."""
    spells = [(minute(0), minute(30)), (minute(40), minute(90))]
    every_minute_but_the_downtime = [minute(i) for i in range(60) if not 29 <= i < 41]
    assert offline_episodes(5, "luminaire", every_minute_but_the_downtime, before=None, after=None, now=minute(60),
                            listening=spells) == []
    # without the spells (always listening) the same data is a 12-minute outage of the device
    [wrong] = offline_episodes(5, "luminaire", every_minute_but_the_downtime, before=None, after=None,
                               now=minute(60))
    assert (wrong.start, wrong.end) == (minute(32), minute(41))
    # still silent after the twin resumed: offline from 3 intervals after the resume, and it stays open
    [late] = offline_episodes(5, "luminaire", [minute(i) for i in range(29)], before=None, after=None,
                              now=minute(60), listening=spells)
    assert (late.start, late.end) == (minute(43), None)
    # back within the grace: nothing; back after it: closed at its next minute
    assert offline_episodes(5, "luminaire", [minute(28), minute(42)], before=None, after=None, now=minute(43),
                            listening=spells) == []
    [closed] = offline_episodes(5, "luminaire", [minute(28), minute(50)], before=None, after=None, now=minute(51),
                                listening=spells)
    assert (closed.start, closed.end) == (minute(43), minute(50))


def test_a_device_silent_while_the_twin_listens_is_offline_and_stays_so_across_downtime():
    spells = [(minute(0), minute(30)), (minute(40), minute(90))]
    # silent from 10 while listening: offline from 14 (10 + 1 min + 3 intervals) ...
    [ep] = offline_episodes(5, "luminaire", [minute(9), minute(20)], before=None, after=None, now=minute(21),
                            listening=spells)
    assert (ep.start, ep.end) == (minute(13), minute(20))
    # ... and one alarm through the twin's downtime, not two, when it is silent on both sides
    [through] = offline_episodes(5, "luminaire", [minute(9), minute(55)], before=None, after=None, now=minute(56),
                                 listening=spells)
    assert (through.start, through.end) == (minute(13), minute(55))
    # the twin is down now (its last spell ended at 30): an alarm open before stays open, nothing new is raised
    assert [(e.start, e.end) for e in offline_episodes(5, "luminaire", [minute(9)], before=None, after=None,
                                                       now=minute(38), listening=spells[:1])] == [(minute(13), None)]
    assert offline_episodes(5, "luminaire", [minute(27)], before=None, after=None, now=minute(38),
                            listening=spells[:1]) == []


def test_before_the_twin_ever_listened_nothing_is_offline():
    """No heartbeat history at all (the very first start, or data written before it): no alarm."""
    old = [minute(0), minute(30)]
    assert offline_episodes(5, "env_sensor", old, before=None, after=None, now=minute(60), listening=[]) == []
    # first listening from 45: judged from 46:30 (3 x 30 s), silent since 31 -> offline from then
    [ep] = offline_episodes(5, "env_sensor", old, before=None, after=None, now=minute(60),
                            listening=[(minute(45), minute(61))])
    assert (ep.start, ep.end) == (minute(46) + timedelta(seconds=30), None)


def test_an_alarm_open_since_before_the_spells_were_recorded_goes_on():
    """Raised at 13 by a monitor that knew no spells (an upgrade): the same silence is the same alarm."""
    [ep] = offline_episodes(5, "luminaire", [minute(9)], before=None, after=minute(50), now=minute(60),
                            listening=[(minute(30), minute(61))], open_since=minute(13))
    assert (ep.start, ep.end) == (minute(13), minute(50))
    # without it, judged from 3 intervals after the first spell began
    [fresh] = offline_episodes(5, "luminaire", [minute(9)], before=None, after=minute(50), now=minute(60),
                               listening=[(minute(30), minute(61))])
    assert fresh.start == minute(33)
    # it ends at the device's next minute; the silence after that is judged afresh
    eps = offline_episodes(5, "luminaire", [minute(9), minute(40)], before=None, after=None, now=minute(60),
                           listening=[(minute(30), minute(61))], open_since=minute(13))
    assert [(e.start, e.end) for e in eps] == [(minute(13), minute(40)), (minute(44), None)]
    # an alarm from before the device's last report does not stretch a later silence
    eps = offline_episodes(5, "luminaire", [minute(20), minute(40)], before=None, after=None, now=minute(60),
                           listening=[(minute(30), minute(61))], open_since=minute(13))
    assert [(e.start, e.end) for e in eps] == [(minute(33), minute(40)), (minute(44), None)]


def test_several_workers_listen_as_one():
    """The twin listens while any worker does: spells merge whatever their order and overlap."""
    a = [(minute(0), minute(10)), (minute(20), minute(30))]
    b = [(minute(8), minute(22)), (minute(40), minute(41))]
    assert merge_spells(a + b) == [(minute(0), minute(30)), (minute(40), minute(41))]
    assert merge_spells(reversed(b + a)) == merge_spells(a + b)
    # worker a alone has a 10-minute hole at 10-20 that b covers: no grace restarts at 20
    [ep] = offline_episodes(5, "luminaire", [minute(9)], before=None, after=minute(25), now=minute(30),
                            listening=a + b)
    assert (ep.start, ep.end) == (minute(13), minute(25))


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


def _flat(value: float, n: int, *, every: int = 1) -> list[MetricMinute]:
    return [MetricMinute(minute(i), 2, value, value) for i in range(0, n, every)]


def test_stuck_covers_every_metric_where_a_constant_is_implausible():
    """A lit luminaire's power and a daylight lux sensor stuck for 35 min are stuck (30 min rules); the same
    meter at 0 W (the light off) or the sensor in the dark for hours is not; panel temperature needs 60 min."""
    [power] = stuck_episodes(5, "power", _flat(400.0, 35), kind="luminaire")
    assert (power.rule, power.start, power.end) == ("device_stuck", minute(0), None)
    assert stuck_episodes(5, "power", _flat(0.0, 180), kind="luminaire") == []
    assert stuck_episodes(5, "illuminance", _flat(0.0, 180), kind="luminaire") == []
    assert len(stuck_episodes(5, "illuminance", _flat(520.0, 35), kind="luminaire")) == 1
    assert stuck_episodes(5, "panel_temperature", _flat(41.0, 45), kind="panel") == []
    assert len(stuck_episodes(5, "panel_temperature", _flat(41.0, 65), kind="panel")) == 1


def test_one_stuck_episode_per_device_however_many_metrics():
    """Power and illuminance of one luminaire stuck together: one alarm (one open alarm per device and rule)."""
    both = [*stuck_episodes(5, "power", _flat(400.0, 40), kind="luminaire"),
            *stuck_episodes(5, "illuminance", [MetricMinute(minute(i), 2, 520.0, 520.0) for i in range(5, 45)],
                            kind="luminaire")]
    [one] = per_device(both)
    assert (one.device, one.start, one.end) == (5, minute(0), None)
    assert "power" in one.message and "illuminance" in one.message


def test_a_silent_device_is_offline_three_intervals_after_its_last_report_not_its_minute():
    """Last report at 00:10 past minute 5: an env sensor (30 s) is offline from minute 6:40, not 7:30."""
    last = minute(5) + timedelta(seconds=10)
    [ep] = offline_episodes(5, "env_sensor", [minute(i) for i in range(6)], before=None, after=None,
                            now=minute(30), last=last)
    assert ep.start == last + timedelta(seconds=90)


def test_clock_offsets_raise_past_two_minutes_and_clear_under_one():
    assert clock_off(None, alarm_open=False) is None
    assert clock_off(-119.0, alarm_open=False) is False
    assert clock_off(-1260.0, alarm_open=False) is True
    assert clock_off(90.0, alarm_open=True) is True and clock_off(30.0, alarm_open=True) is False
    assert clock_message(-1262.0) == "clock off by 21 min (behind)"
    assert clock_message(3 * 86400.0) == "clock off by 3.0 days (ahead)"


def test_a_silence_between_two_minutes_is_known_to_the_second():
    """Last report at 5:05, next at 7:20 (a 135 s silence): offline from 6:35 to 7:20. On whole minutes the
    same silence looked like minutes 5 and 7 (offline from 7:30: never), so it was missed."""
    spans = {minute(i): (minute(i), minute(i) + timedelta(seconds=35)) for i in range(5)}
    spans[minute(5)] = (minute(5), minute(5) + timedelta(seconds=5))
    spans[minute(7)] = (minute(7) + timedelta(seconds=20), minute(7) + timedelta(seconds=50))
    buckets = [*range(6), 7]
    [ep] = offline_episodes(5, "env_sensor", [minute(i) for i in buckets], before=None, after=None, now=minute(8),
                            spans=spans)
    assert (ep.start, ep.end) == (minute(5) + timedelta(seconds=95), minute(7) + timedelta(seconds=20))
    assert offline_episodes(5, "env_sensor", [minute(i) for i in buckets], before=None, after=None,
                            now=minute(8)) == []
