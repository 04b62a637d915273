"""Chart ranges of a room's history: which span, and which rollup (1-minute or 1-hour) to read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

#: Chart ranges offered, and how far back each looks.
RANGES: dict[str, timedelta] = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
                                "30d": timedelta(days=30)}
RANGE_LABELS = {"1h": "1 h", "24h": "24 h", "7d": "7 d", "30d": "30 d", "custom": "custom"}
#: Spans longer than this read the 1-hour rollups (a day of 1-minute buckets is 1,440 points).
HOURLY_FROM = timedelta(hours=26)
#: Ranges whose chart follows the live refresh (longer ones are redrawn on demand only).
LIVE_RANGES = ("1h", "24h")


def chart_window(range_key: str, start_date: str | None = None, end_date: str | None = None, *,
                 now: datetime | None = None) -> tuple[datetime, datetime, bool]:
    """``(start, end, hourly)`` of a chart range; custom dates are whole UTC days, end day included.

    >>> chart_window("30d", now=datetime(2026, 3, 31, tzinfo=UTC))[2], chart_window("24h")[2]
    (True, False)
    """
    end = now or datetime.now(UTC)
    if range_key == "custom" and start_date and end_date:
        start = datetime.combine(date.fromisoformat(start_date[:10]), datetime.min.time(), UTC)
        end = datetime.combine(date.fromisoformat(end_date[:10]), datetime.min.time(), UTC) + timedelta(days=1)
        if end <= start:
            start, end = end - timedelta(days=1), start + timedelta(days=1)
    else:
        start = end - RANGES.get(range_key, RANGES["1h"])
    return start, end, end - start > HOURLY_FROM
