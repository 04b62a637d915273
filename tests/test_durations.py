"""One duration parser (twin.durations) behind rules, backfill and the CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulators.backfill import parse_span
from twin.durations import DurationError, parse_duration
from twin.monitoring.standards import RulesError
from twin.monitoring.standards import parse_duration as rule_duration


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)), ("10m", timedelta(minutes=10)), (" 1.5h ", timedelta(minutes=90)),
    ("30d", timedelta(days=30)), ("2w", timedelta(days=14)), (45, timedelta(seconds=45)),
    (timedelta(hours=2), timedelta(hours=2)), ("0s", timedelta(0)),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["30 days", "soon", "", None, "10", "-5m", True, -1])
def test_not_durations(bad):
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_rules_and_backfill_read_durations_alike():
    for text in ("30s", "10m", "1h", "30d", "2w"):
        assert rule_duration(text) == parse_span(text) == parse_duration(text)
    with pytest.raises(RulesError, match="not a duration"):
        rule_duration("soon")
    with pytest.raises(ValueError):
        parse_span("0m")  # a span of history must be positive
