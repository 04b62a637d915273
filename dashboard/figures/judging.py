"""What every figure shares: the palette and font, and a room's value as the site's standards judge it.

A room's colour for a measured metric is the verdict's status (:func:`status_of`) drawn by
``STATUS_COLOURS``; the glances without a standard keep their buckets in ``GLANCES``. The text
of a value for people is :func:`metric_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.i18n import t
from twin.metrics import BY_NAME
from twin.monitoring.site_standards import NO_STANDARD, OK, STATUSES, SiteStandards

Figure = dict[str, Any]

GOOD = "#43a047"
WARN = "#fbc02d"
BAD = "#e53935"
NO_DATA = "#bdbdbd"
NEUTRAL = "#64b5f6"
EMPTY = "#e3f2fd"
OUTLINE = "#455a64"
FONT = 'system-ui, "Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", sans-serif'

#: Derived per-room metrics (not in the catalogue): computed from a room's latest values and device states.
COMPLIANCE = "compliance"
DEVICE_HEALTH = "device_health"
#: The metrics offered on the floor plan and the 3D view, in the order of the dropdown.
FLOORPLAN_METRICS = ("co2", "temperature", "illuminance", "occupancy", COMPLIANCE, DEVICE_HEALTH, "humidity", "noise")
#: Metrics offered on a room's chart.
CHART_METRICS = ("co2", "temperature", "humidity", "illuminance", "blackboard_illuminance", "occupancy", "noise",
                 "pm25", "power", "dimming")
#: A verdict's status (:mod:`twin.monitoring.site_standards`) as a colour.
STATUS_COLOURS = {NO_STANDARD: NEUTRAL, OK: GOOD, "info": WARN, "warning": WARN, "critical": BAD}
#: How ``compliance`` reads for people, per status.
COMPLIANCE_LABELS = {OK: "meets the standards", "info": "outside a standard", "warning": "outside a standard",
                     "critical": "fails a standard"}


@dataclass(frozen=True, slots=True)
class Band:
    """A closed interval ``low <= value <= high`` drawn in ``colour``."""

    label: str
    colour: str
    low: float = -math.inf
    high: float = math.inf

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Scale:
    """Bands tried in order (first match wins), else ``otherwise``."""

    bands: tuple[Band, ...]
    otherwise: Band
    source: str = ""

    def band(self, value: float) -> Band:
        for b in self.bands:
            if b.low <= value <= b.high:
                return b
        return self.otherwise

    @property
    def legend(self) -> tuple[Band, ...]:
        return (*self.bands, self.otherwise)


#: The glances without a standard (not judgements: the standards' colours come from ``twin``).
GLANCES: dict[str, Scale] = {
    "occupancy": Scale((Band("empty", EMPTY, high=0.0),), Band("occupied", NEUTRAL)),
    DEVICE_HEALTH: Scale((Band("all online", GOOD, low=100.0), Band("some offline", WARN, low=50.0)),
                         Band("mostly offline", BAD)),
}
_DEFAULT_SCALE = Scale((), Band("value", NEUTRAL))


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def status_of(metric: str, value: float | None, use: str, standards: SiteStandards | None) -> str | None:
    """The verdict's status of a room's ``metric`` (None: no value); ``compliance`` holds its status's index."""
    if _missing(value):
        return None
    if metric == COMPLIANCE:
        return STATUSES[int(value)]  # type: ignore[arg-type]
    if standards is None or metric in GLANCES:
        return NO_STANDARD
    return standards.judge(metric, value, use).status  # type: ignore[arg-type]


def colour_for(metric: str, value: float | None, *, use: str = "", standards: SiteStandards | None = None) -> str:
    """Colour of a room of ``use`` whose latest ``metric`` is ``value``, as ``standards`` judge it; grey: no value.

    >>> from datetime import date
    >>> december, july = SiteStandards("hq", date(2026, 12, 14)), SiteStandards("hq", date(2026, 7, 6))
    >>> colour_for("temperature", 17.5, use="classroom", standards=december) == GOOD
    True
    >>> colour_for("temperature", 17.5, use="classroom", standards=july) == WARN
    True
    """
    if _missing(value):
        return NO_DATA
    if metric in GLANCES:
        return GLANCES[metric].band(value).colour  # type: ignore[arg-type]
    return STATUS_COLOURS[status_of(metric, value, use, standards) or NO_STANDARD]


def with_derived(latest: Mapping[str, float], health: tuple[int, int] | None, *, use: str = "",
                 standards: SiteStandards | None = None) -> dict[str, float]:
    """A room's latest values plus ``compliance`` (the index in ``STATUSES`` of
    :meth:`~twin.monitoring.site_standards.SiteStandards.judge_room`; absent when no rule judges) and
    ``device_health`` (% online; counts kept alongside)."""
    values = dict(latest)
    if standards is not None:
        status = standards.judge_room(latest, use).status
        if status != NO_STANDARD:
            values[COMPLIANCE] = float(STATUSES.index(status))
    if health and health[1]:
        values[DEVICE_HEALTH] = 100.0 * health[0] / health[1]
        values["devices_online"], values["devices"] = float(health[0]), float(health[1])
    return values


def unit_of(metric: str) -> str:
    if metric == DEVICE_HEALTH:
        return "%"
    m = BY_NAME.get(metric)
    return m.unit if m else ""


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def metric_text(metric: str, values: Mapping[str, float], lang: str = "en") -> str:
    """A room's value of ``metric`` for people: number and unit, or the band of a derived metric."""
    value = values.get(metric)
    if value is None:
        return t("no data", lang)
    if metric == COMPLIANCE:
        return t(COMPLIANCE_LABELS.get(STATUSES[int(value)], "no standard"), lang)
    if metric == DEVICE_HEALTH:
        return f"{values.get('devices_online', 0):.0f}/{values.get('devices', 0):.0f} {t('online', lang)}"
    return format_value(value, unit_of(metric))
