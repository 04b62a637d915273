"""Times on the dashboard: in the site's zone (:mod:`twin.localtime`), "never" in the reader's language.

    >>> from datetime import UTC, datetime
    >>> fmt_time(datetime(2026, 12, 4, 0, 50, 5, tzinfo=UTC), "zh")
    '2026-12-04 08:50:05'
    >>> fmt_time(None, "zh")
    '从未'
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dashboard.i18n import t
from twin import localtime
from twin.localtime import SCHOOL_TZ, local

__all__ = ["SCHOOL_TZ", "date_axis", "fmt_time", "local", "time_header", "zone_label"]


def fmt_time(value: datetime | None, lang: str, zone: ZoneInfo = SCHOOL_TZ, *, seconds: bool = True,
             none: str = "never") -> str:
    """``value`` in ``zone`` (``YYYY-MM-DD HH:MM:SS``), or ``none`` translated when there is no time."""
    return t(none, lang) if value is None else localtime.fmt_time(value, zone, seconds=seconds)


def zone_label(zone: ZoneInfo, lang: str = "en", when: datetime | None = None) -> str:
    """``Asia/Shanghai (UTC+8)`` (the same in both languages: an IANA name is what an operator looks up)."""
    return localtime.zone_label(zone, when)


def time_header(zone: ZoneInfo, lang: str, word: str = "time") -> str:
    """A column or axis title that says the zone: ``time (Asia/Shanghai, UTC+8)``."""
    return f"{t(word, lang)} ({zone.key}, {localtime.utc_offset(zone)})"


_DAY_MS = 24 * 3600 * 1000


def date_axis(lang: str) -> dict[str, object]:
    """A Plotly date axis's tick and hover formats in the reader's language: numbers only, so no English
    month name is left in Chinese (Plotly's own labels say "Dec 4"): ``12月04日`` / ``Dec 04``, times as
    ``14:05``, hovers as ``2026-12-04 14:05``."""
    day = "%m月%d日" if lang == "zh" else "%b %d"
    return {
        "tickformatstops": [
            {"dtickrange": [None, _DAY_MS], "value": f"%H:%M<br>{day}"},
            {"dtickrange": [_DAY_MS, None], "value": day},
        ],
        "hoverformat": "%Y-%m-%d %H:%M",
    }
