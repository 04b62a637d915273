"""Times as people read them: in a site's own time zone, with the zone said; machines keep UTC.

Storage, exports and APIs use UTC (ISO 8601). Every time shown to a person goes through
:func:`fmt_time` (tables, banners) or :func:`local` (chart axes) with the site's zone
(``sites.time_zone``, an IANA name; default ``Asia/Shanghai``, :data:`twin.timetable.SCHOOL_TZ`).

    >>> from datetime import UTC, datetime, timedelta
    >>> fmt_time(datetime(2026, 12, 4, 0, 50, tzinfo=UTC))
    '2026-12-04 08:50:00'
    >>> zone_label(zone("Asia/Shanghai"))
    'Asia/Shanghai (UTC+8)'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twin.timetable import SCHOOL_TZ

__all__ = ["SCHOOL_TZ", "ZoneError", "fmt_shift", "fmt_time", "local", "utc_offset", "zone", "zone_label"]


class ZoneError(ValueError):
    """Not an IANA time-zone name."""


@lru_cache(maxsize=64)
def zone(name: str | None) -> ZoneInfo:
    """The zone named ``name`` (None or empty: :data:`SCHOOL_TZ`); :class:`ZoneError` for an unknown name."""
    if not name:
        return SCHOOL_TZ
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ZoneError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from exc


def local(value: datetime, tz: ZoneInfo = SCHOOL_TZ) -> datetime:
    """``value`` (aware; naive is taken as UTC) in ``tz``."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz)


def fmt_time(value: datetime, tz: ZoneInfo = SCHOOL_TZ, *, seconds: bool = True) -> str:
    """``value`` as ``YYYY-MM-DD HH:MM[:SS]`` in ``tz`` (the same digits in both languages, as Chinese
    interfaces write them)."""
    return local(value, tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def fmt_shift(delta: timedelta) -> str:
    """A shift of the clock as people read it: ``+7 h 53 min``, ``-2 h``, ``+45 min`` (to the minute).

    >>> fmt_shift(timedelta(hours=7, minutes=52, seconds=48)), fmt_shift(timedelta(hours=-2))
    ('+7 h 53 min', '-2 h')
    """
    minutes = round(delta.total_seconds() / 60)
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    hours, minutes = divmod(minutes, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes or not hours else [])
    return sign + " ".join(parts)


def utc_offset(tz: ZoneInfo, when: datetime | None = None) -> str:
    """``UTC+8``, ``UTC+5:30``, ``UTC-3``, ``UTC`` for ``tz`` at ``when`` (default now)."""
    delta = local(when or datetime.now(UTC), tz).utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta else 0
    if minutes == 0:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def zone_label(tz: ZoneInfo, when: datetime | None = None) -> str:
    """The zone as a person reads it: ``Asia/Shanghai (UTC+8)``."""
    return f"{tz.key} ({utc_offset(tz, when)})"
