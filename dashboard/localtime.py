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

__all__ = ["SCHOOL_TZ", "fmt_time", "local", "time_header", "zone_label"]


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
