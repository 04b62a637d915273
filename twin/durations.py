"""Durations as people write them: ``"30s"``, ``"10m"``, ``"1h"``, ``"30d"``, ``"2w"``, or seconds.

The one parser of the project: rule windows and minimum durations (:mod:`twin.monitoring.standards`), the
simulator's backfill span and step, the CLI's options.

>>> parse_duration("90m"), parse_duration("2w"), parse_duration(30)
(datetime.timedelta(seconds=5400), datetime.timedelta(days=14), datetime.timedelta(seconds=30))
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_SPAN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class DurationError(ValueError):
    """Not a duration (or not a positive one where one is needed)."""


def parse_duration(value: Any, *, positive: bool = False) -> timedelta:
    """A ``timedelta`` from ``"<number><s|m|h|d|w>"``, a number of seconds or a ``timedelta``.

    ``positive``: zero is refused too (a span of history, a step). Raises :class:`DurationError`.
    """
    if isinstance(value, timedelta):
        span = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        span = timedelta(seconds=float(value))
    else:
        m = _SPAN.fullmatch(str(value)) if value is not None else None
        if m is None:
            raise DurationError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h, 30d, 2w)")
        span = timedelta(seconds=float(m.group(1)) * UNITS_S[m.group(2)])
    if span < timedelta(0) or (positive and span == timedelta(0)):
        raise DurationError(f"not a {'positive' if positive else 'non-negative'} duration: {value!r}")
    return span
