"""The floor plan's legend: each rule's bounds as the site's standards give them, or a glance's buckets;
and what the device markers' shapes and colours mean."""

from __future__ import annotations

from dashboard.figures.floorplan import KIND_NAMES, KIND_SYMBOLS, STATE_COLOURS
from dashboard.figures.judging import (
    BAD,
    COMPLIANCE,
    COMPLIANCE_LABELS,
    GLANCES,
    GOOD,
    NEUTRAL,
    NO_DATA,
    STATUS_COLOURS,
    WARN,
    unit_of,
)
from dashboard.i18n import t
from twin.monitoring.site_standards import OK, SiteStandards
from twin.monitoring.site_standards import Band as RuleBand


def _number(value: float, unit: str) -> str:
    return f"{value:g} {unit}".strip()


def bounds_text(band: RuleBand, unit: str) -> tuple[str, str]:
    """``("16–24 °C", "outside 16–24 °C")``, ``("≥ 300 lx", "< 300 lx")`` or ``("≤ 1500 ppm", "> 1500 ppm")``."""
    if band.low is not None and band.high is not None:
        inside = f"{band.low:g}–{_number(band.high, unit)}"
        return inside, f"outside {inside}"
    if band.low is not None:
        return f"≥ {_number(band.low, unit)}", f"< {_number(band.low, unit)}"
    return f"≤ {_number(band.high, unit)}", f"> {_number(band.high, unit)}"  # type: ignore[arg-type]


def legend_items(metric: str, lang: str = "en", standards: SiteStandards | None = None
                 ) -> tuple[list[tuple[str, str]], str]:
    """``([(colour, label), ...], source)`` of ``metric`` for the legend, plus "no data".

    A measured metric lists each rule's bounds as ``standards`` give them (per room use,
    in the day's season); ``compliance`` its statuses; the glances their buckets.
    """
    if metric in GLANCES:
        items = [(b.colour, t(b.label, lang)) for b in GLANCES[metric].legend]
        return [*items, (NO_DATA, t("no data", lang))], ""
    if metric == COMPLIANCE:
        items = [(GOOD, t(COMPLIANCE_LABELS[OK], lang)), (WARN, t("outside a standard", lang)),
                 (BAD, t("fails a standard", lang))]
        bands: tuple[RuleBand, ...] = ()
        if standards is not None:
            bands = tuple(b for m in {r.metric for r in standards.active()} for b in standards.bands(m))
    else:
        bands = standards.bands(metric) if standards is not None else ()
        items = []
        for band in bands:
            inside, out = bounds_text(band, unit_of(metric))
            uses = ", ".join(t(u, lang) for u in band.uses)
            broken = f"{t('outside', lang)}: {out} ({t(band.severity, lang)})"
            items += [(GOOD, f"{inside} ({uses})"), (STATUS_COLOURS[band.severity], broken)]
        items.append((NEUTRAL, t("no standard", lang)))
    items.append((NO_DATA, t("no data", lang)))
    seasons = {t(b.season, lang) for b in bands if b.season} if metric != COMPLIANCE else set()
    return items, ", ".join([*sorted({b.standard for b in bands}), *sorted(seasons)])


def device_legend_items(lang: str = "en") -> list[tuple[str, str]]:
    """``[(plotly marker symbol, device kind for people), ...]``: what each device marker's shape means."""
    return [(symbol, t(KIND_NAMES.get(kind, kind), lang)) for kind, symbol in KIND_SYMBOLS.items()]


def device_state_items(lang: str = "en") -> list[tuple[str, str]]:
    """``[(colour, state), ...]``: what each device marker's colour means."""
    return [(colour, t(state, lang)) for state, colour in STATE_COLOURS.items()]
