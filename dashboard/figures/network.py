"""The network overview's pure parts: which school needs attention, what a missing KPI means, and the map.

- :func:`rank` orders the schools (sites with devices) by what needs a look: critical alarms, then
  devices offline, then warnings, then how far KPIs are below target, then devices without a status, then
  info alarms; each with its reasons (:func:`reason_line`: "3 critical alarms · 12 devices offline").
- :func:`why_missing` says what a "–" means for a KPI (no classroom to count, not computed yet, no
  classroom measured in a lesson that day...), as ``twin.storage.kpis`` and ``twin.monitoring.kpi_job`` define it.
- :func:`network_map` draws the schools near each other (:func:`split_far`: a site more than
  :data:`FAR_KM` from the network is listed apart, not drawn), fitted to them (:func:`map_ranges`),
  numbered by rank, names only where they fit (:func:`place_labels`), every name on hover.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from dashboard.figures.judging import BAD, FONT, GOOD, OUTLINE, WARN, Figure
from dashboard.i18n import t


class SiteCounts(Protocol):
    """A site on the network map (:class:`twin.storage.sites.SiteSummary`)."""

    @property
    def site_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def latitude(self) -> float | None: ...
    @property
    def longitude(self) -> float | None: ...
    @property
    def devices(self) -> int: ...
    @property
    def online(self) -> int: ...
    @property
    def open_alarms(self) -> int: ...


def online_share(site: SiteCounts) -> float | None:
    devices = site.devices or 0
    return 100.0 * (site.online or 0) / devices if devices else None


#: The fraction KPIs of a school, in the order shown, with their English names (keys of ``dashboard.i18n``).
KPI_NAMES: dict[str, str] = {
    "iot_coverage": "IoT coverage", "lighting_coverage": "smart-lighting coverage",
    "panel_coverage": "interactive-panel coverage", "lighting_compliance": "lighting compliance",
    "data_completeness": "data completeness",
}
#: KPIs the monitor stores per day (``kpi_daily``); the others are live.
DAILY = ("lighting_compliance", "data_completeness")
#: Every KPI's target (the seed plans' 100 %; ``twin.storage.kpis.TARGET``).
TARGET = 1.0
#: A value this close below its target is "near" (amber), further below "bad" (red).
NEAR = 0.10
LEVEL_COLOURS = {"critical": BAD, "warning": "#fb8c00", "info": WARN, "ok": GOOD}


class StoredDay(Protocol):
    """A stored daily KPI (:class:`twin.storage.kpis.StoredKpi`)."""

    @property
    def day(self) -> date: ...
    @property
    def denominator(self) -> float: ...


class SchoolState(Protocol):
    """A school as the overview reads it (:class:`dashboard.data.SiteView`)."""

    @property
    def site(self) -> SiteCounts: ...
    @property
    def kpis(self) -> Mapping[str, Any]: ...
    @property
    def alarms(self) -> Mapping[str, int]: ...
    @property
    def offline(self) -> int: ...
    @property
    def daily(self) -> Mapping[str, StoredDay]: ...


@dataclass(frozen=True, slots=True)
class Reason:
    """One thing that needs a look: ``kind`` is ``critical``, ``offline``, ``warning``, ``kpi``, ``never_heard``
    or ``info``; ``count`` for alarms and devices, ``kpi``/``value``/``target`` for a KPI below target."""

    kind: str
    count: int = 0
    kpi: str = ""
    value: float = 0.0
    target: float = TARGET


@dataclass(frozen=True, slots=True)
class Ranked:
    """A school with its reasons, most urgent first, and its level (``critical``, ``warning``, ``info``, ``ok``)."""

    view: Any  # a SchoolState
    reasons: tuple[Reason, ...]
    level: str


def never_heard(view: SchoolState) -> int:
    """Devices neither online nor offline (no status yet, or ``unknown``)."""
    return max(0, (view.site.devices or 0) - (view.site.online or 0) - view.offline)


def reasons(view: SchoolState) -> tuple[Reason, ...]:
    """What needs a look at ``view``, in the order of :func:`rank`."""
    alarms = view.alarms
    below = sorted(((name, value) for name in KPI_NAMES if (value := view.kpis.get(name)) is not None
                    and value < TARGET), key=lambda kv: kv[1])
    out = [Reason("critical", alarms.get("critical", 0)), Reason("offline", view.offline),
           Reason("warning", alarms.get("warning", 0))]
    out += [Reason("kpi", kpi=name, value=value) for name, value in below]
    out += [Reason("never_heard", never_heard(view)), Reason("info", alarms.get("info", 0))]
    return tuple(r for r in out if r.kind == "kpi" or r.count > 0)


def level(found: Sequence[Reason]) -> str:
    kinds = {r.kind for r in found}
    if "critical" in kinds:
        return "critical"
    if kinds - {"info"}:
        return "warning"
    return "info" if kinds else "ok"


def _key(view: SchoolState) -> tuple[Any, ...]:
    a = view.alarms
    gap = sum(TARGET - v for name in KPI_NAMES if (v := view.kpis.get(name)) is not None and v < TARGET)
    return (-a.get("critical", 0), -view.offline, -a.get("warning", 0), -round(gap, 6), -never_heard(view),
            -a.get("info", 0), view.site.role != "headquarters", view.site.name)


def rank(views: Sequence[SchoolState]) -> tuple[list[Ranked], list[SchoolState]]:
    """Schools (sites with devices) ordered by what needs attention, and the sites without devices apart.

    The order is lexicographic, so it can be said in one sentence: critical alarms, then devices
    offline, then warnings, then the sum of the KPIs' gaps below target, then devices without a status,
    then info alarms; ties go to the headquarters, then by name.
    """
    schools = sorted((v for v in views if v.site.devices), key=_key)
    ranked = []
    for v in schools:
        found = reasons(v)
        ranked.append(Ranked(v, found, level(found)))
    return ranked, [v for v in views if not v.site.devices]


def percent(value: float | None) -> str:
    """A fraction as "75%", "–" for None; never "100%" short of it (0.996 is "99.6%", so no school reads
    "100% < 100%").

    >>> percent(0.75), percent(0.996), percent(1.0), percent(None)
    ('75%', '99.6%', '100%', '–')
    """
    if value is None:
        return "–"
    if value < 1 and round(100 * value) >= 100:
        return f"{min(99.9, 100 * value):.1f}%"
    return f"{100 * value:.0f}%"


_COUNTED = {"critical": ("{n} critical alarm", "{n} critical alarms"),
            "offline": ("{n} device offline", "{n} devices offline"),
            "warning": ("{n} warning", "{n} warnings"),
            "never_heard": ("{n} device without status", "{n} devices without status"),
            "info": ("{n} info alarm", "{n} info alarms")}


def reason_text(reason: Reason, lang: str) -> str:
    """``3 critical alarms``, ``lighting compliance 62% < 100%``, in ``lang``."""
    if reason.kind == "kpi":
        return f"{t(KPI_NAMES[reason.kpi], lang)} {percent(reason.value)} < {percent(reason.target)}"
    one, many = _COUNTED[reason.kind]
    return t(one if reason.count == 1 else many, lang).format(n=reason.count)


def reason_line(found: Sequence[Reason], lang: str, limit: int = 3) -> str:
    """The reasons in one line (the first ``limit``, then how many more); "all fine" without any."""
    if not found:
        return t("all fine", lang)
    shown = [reason_text(r, lang) for r in found[:limit]]
    if len(found) > limit:
        shown.append(t("{n} more", lang).format(n=len(found) - limit))
    return " · ".join(shown)


def kpi_status(value: float | None, target: float = TARGET) -> str:
    """``good`` (at target), ``near`` (within :data:`NEAR` below), ``bad`` (further below), ``none`` (no value)."""
    if value is None:
        return "none"
    if value >= target:
        return "good"
    return "near" if value >= target - NEAR else "bad"


# -- what "–" means ----------------------------------------------------------------------------------------

#: Why a KPI has no value: code -> (short text, full text; ``{day}`` is the stored day).
MISSING: dict[str, tuple[str, str]] = {
    "no_devices": ("no devices", "no devices in this site's BIM model"),
    "no_teaching_rooms": ("no classrooms or labs", "no classroom or lab in the BIM model: nothing to cover"),
    "no_classrooms": ("no classrooms", "no classroom in the BIM model: nothing to cover"),
    "not_computed": ("not computed yet", ("not computed yet: the monitor (campus-twin monitor) computes it "
                                          "every cycle and stores it per day")),
    "no_lesson": ("no lesson measured", ("no classroom measured during a lesson on {day}: needs desk illuminance "
                                         "readings from a classroom during a lesson of a school day")),
    "no_telemetry": ("no device expected", "no device that sends telemetry was expected on {day}"),
    "no_data": ("no data", "no data"),
}
#: The count a live KPI's denominator is (``twin.storage.kpis.KPIS``), and the code when it is 0.
_DENOMINATORS = {"iot_coverage": ("teaching_rooms", "no_teaching_rooms"),
                 "lighting_coverage": ("classrooms", "no_classrooms"),
                 "panel_coverage": ("classrooms", "no_classrooms")}


def missing_code(kpi: str, values: Mapping[str, Any], daily: Mapping[str, StoredDay], devices: int | None = None
                 ) -> tuple[str, date | None] | None:
    """Why ``kpi`` has no value in ``values`` (None: it has one), and the stored day it is about."""
    if kpi == "devices_online":
        return ("no_devices", None) if not devices else None
    if values.get(kpi) is not None:
        return None
    if kpi in _DENOMINATORS:
        column, code = _DENOMINATORS[kpi]
        return (code, None) if not values.get(column) else ("no_data", None)
    if kpi in DAILY:
        stored = daily.get(kpi)
        if stored is None:
            return "not_computed", None
        if not stored.denominator:
            return ("no_lesson" if kpi == "lighting_compliance" else "no_telemetry"), stored.day
    return "no_data", None


def missing_text(found: tuple[str, date | None] | None, lang: str, *, short: bool = False) -> str:
    if found is None:
        return ""
    code, day = found
    text = t(MISSING[code][0 if short else 1], lang)
    return text.format(day=day.isoformat() if day else "")


def why_missing(kpi: str, view: SchoolState, lang: str, *, short: bool = False) -> str:
    """What "–" means for ``kpi`` of ``view`` ("" when it has a value)."""
    return missing_text(missing_code(kpi, view.kpis, view.daily, view.site.devices), lang, short=short)


# -- the map -----------------------------------------------------------------------------------------------

#: A site further than this from the network's median is listed apart, not drawn (it would stretch the map).
FAR_KM = 500.0
#: The plot area the labels are placed for (px; the map is at least this big on a laptop screen).
PLOT_PX = (640.0, 330.0)
MARKER_PX = {"headquarters": 26.0, "member": 20.0}
LABEL_FONT_PX = 11.0
EARTH_KM = 6371.0


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two ``(latitude, longitude)`` points in km (haversine)."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(h))


def split_far(sites: Sequence[SiteCounts], far_km: float = FAR_KM
              ) -> tuple[list[SiteCounts], list[tuple[SiteCounts, float]]]:
    """Placed sites near the network (drawn) and those more than ``far_km`` from it, with the distance.

    The network's centre is the median latitude and longitude; when no site is near it (two sites
    far apart), the headquarters (or the first site) is the centre.
    """
    placed = [s for s in sites if s.latitude is not None and s.longitude is not None]
    if not placed:
        return [], []
    centre = (statistics.median(s.latitude for s in placed), statistics.median(s.longitude for s in placed))
    if all(km(centre, (s.latitude, s.longitude)) > far_km for s in placed):
        hq = next((s for s in placed if s.role == "headquarters"), placed[0])
        centre = (hq.latitude, hq.longitude)
    distance = [km(centre, (s.latitude, s.longitude)) for s in placed]
    return ([s for s, d in zip(placed, distance, strict=True) if d <= far_km],
            [(s, d) for s, d in zip(placed, distance, strict=True) if d > far_km])


def _ratio(latitude: float) -> float:
    """Degrees of latitude per degree of longitude on screen (true proportions at ``latitude``)."""
    return 1.0 / max(math.cos(math.radians(latitude)), 0.1)


def map_ranges(sites: Sequence[SiteCounts], plot: tuple[float, float] = PLOT_PX, pad: float = 0.12,
               min_span: float = 0.05) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((lon0, lon1), (lat0, lat1))`` around ``sites`` with a margin, shaped like ``plot`` at true proportions."""
    if not sites:
        return (0.0, 1.0), (0.0, 1.0)
    lons, lats = [s.longitude for s in sites], [s.latitude for s in sites]
    xs, ys = max(max(lons) - min(lons), min_span), max(max(lats) - min(lats), min_span)
    xs, ys = xs * (1 + 2 * pad), ys * (1 + 2 * pad)
    cx, cy = (max(lons) + min(lons)) / 2, (max(lats) + min(lats)) / 2
    r = _ratio(cy)
    width, height = plot
    if ys * r * width / xs > height:
        xs = ys * r * width / height
    else:
        ys = xs * height / (r * width)
    return (cx - xs / 2, cx + xs / 2), (cy - ys / 2, cy + ys / 2)


@dataclass(frozen=True, slots=True)
class LabelBox:
    """A label's box in plot pixels (y up) and its plotly ``textposition``."""

    x0: float
    y0: float
    x1: float
    y1: float
    position: str

    def overlaps(self, other: LabelBox) -> bool:
        return not (self.x1 <= other.x0 or other.x1 <= self.x0 or self.y1 <= other.y0 or other.y1 <= self.y0)


def text_px(text: str, font: float = LABEL_FONT_PX) -> float:
    """A label's width in px: CJK characters a full em, others about 0.6 em."""
    return sum(font if ord(c) >= 0x2E80 else 0.6 * font for c in text)


#: The corner of the plot kept for the scale bar (px from the lower left).
SCALE_BAR_PX = (150.0, 30.0)


def place_labels(sites: Sequence[SiteCounts], ranges: tuple[tuple[float, float], tuple[float, float]],
                 plot: tuple[float, float] = PLOT_PX) -> list[LabelBox | None]:
    """Where each site's name goes (None: only on hover), in the order given (the first get a place first).

    Tries above, below, right and left of the marker; a place is taken when it stays inside the plot and
    overlaps no other label, no marker and not the scale bar's corner.
    """
    (x0, x1), (y0, y1) = ranges
    width, height = plot
    centres = [((s.longitude - x0) / (x1 - x0) * width, (s.latitude - y0) / (y1 - y0) * height) for s in sites]
    radii = [MARKER_PX.get(s.role, MARKER_PX["member"]) / 2 for s in sites]
    markers = [LabelBox(x - r, y - r, x + r, y + r, "") for (x, y), r in zip(centres, radii, strict=True)]
    placed: list[LabelBox] = [LabelBox(0.0, 0.0, *SCALE_BAR_PX, "")]
    out: list[LabelBox | None] = []
    h = LABEL_FONT_PX + 3
    for s, (x, y), r in zip(sites, centres, radii, strict=True):
        w = text_px(s.name) + 4
        candidates = (LabelBox(x - w / 2, y + r, x + w / 2, y + r + h, "top center"),
                      LabelBox(x - w / 2, y - r - h, x + w / 2, y - r, "bottom center"),
                      LabelBox(x + r, y - h / 2, x + r + w, y + h / 2, "middle right"),
                      LabelBox(x - r - w, y - h / 2, x - r, y + h / 2, "middle left"))
        chosen = None
        for box in candidates:
            inside = box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
            if inside and not any(box.overlaps(o) for o in placed) and not any(
                    box.overlaps(m) for m in markers):
                chosen = box
                break
        out.append(chosen)
        if chosen is not None:
            placed.append(chosen)
    return out


def _nice_km(span_km: float) -> float:
    """A round scale-bar length near a fifth of ``span_km``."""
    target = span_km / 5
    for step in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500):
        if step >= target:
            return float(step)
    return 1000.0


def network_map(ranked: Sequence[Ranked], lang: str = "en") -> Figure:
    """The ranked schools near each other on plain axes at true proportions (no tiles: offline).

    A marker is coloured by its school's level and numbered by its rank; the headquarters is a star
    linked to every member school drawn. Names are drawn where they fit (:func:`place_labels`) and are on
    every marker's hover. ``customdata`` of a marker (the last trace) is its site id; the label trace
    before it has no hover, so a click always lands on a marker.
    """
    number = {r.view.site.site_id: i + 1 for i, r in enumerate(ranked)}
    levels = {r.view.site.site_id: r for r in ranked}
    near, _ = split_far([r.view.site for r in ranked])
    ranges = map_ranges(near)
    labels = place_labels(near, ranges)
    data: list[dict[str, Any]] = []
    hq = next((s for s in near if s.role == "headquarters"), None)
    if hq is not None:
        lx: list[float | None] = []
        ly: list[float | None] = []
        for s in near:
            if s is not hq:
                lx += [hq.longitude, s.longitude, None]
                ly += [hq.latitude, s.latitude, None]
        data.append({"type": "scatter", "mode": "lines", "x": lx, "y": ly, "hoverinfo": "skip", "showlegend": False,
                     "line": {"color": "#b0bec5", "width": 1, "dash": "dot"}, "name": "links"})
    sizes = [MARKER_PX.get(s.role, MARKER_PX["member"]) for s in near]
    data.append({
        "type": "scatter", "mode": "markers+text", "name": "labels", "showlegend": False, "hoverinfo": "skip",
        "x": [s.longitude for s in near], "y": [s.latitude for s in near],
        "text": [s.name if b else "" for s, b in zip(near, labels, strict=True)],
        "textposition": [b.position if b else "top center" for b in labels],
        "textfont": {"size": LABEL_FONT_PX, "color": "#37474f"}, "marker": {"size": sizes, "opacity": 0},
    })
    hover = []
    for s in near:
        r = levels[s.site_id]
        share = online_share(s)
        hover.append(f"<b>{number[s.site_id]}. {s.name}</b><br>{t(s.role, lang)}<br>{reason_line(r.reasons, lang)}"
                     f"<br>{t('devices online', lang)}: " + ("–" if share is None else f"{share:.0f}%"))
    data.append({
        "type": "scatter", "mode": "markers+text", "name": "schools", "showlegend": False,
        "x": [s.longitude for s in near], "y": [s.latitude for s in near],
        "text": [str(number[s.site_id]) for s in near], "textposition": "middle center",
        "textfont": {"size": 10, "color": "white"},
        "customdata": [s.site_id for s in near], "hovertext": hover, "hovertemplate": "%{hovertext}<extra></extra>",
        "marker": {"size": sizes, "symbol": ["star" if s.role == "headquarters" else "circle" for s in near],
                   "color": [LEVEL_COLOURS[levels[s.site_id].level] for s in near],
                   "line": {"width": 1, "color": OUTLINE}},
    })
    (x0, x1), (y0, y1) = ranges
    cy = (y0 + y1) / 2
    span = km((cy, x0), (cy, x1))
    bar = _nice_km(span)
    width, height = PLOT_PX
    bx0, by = x0 + 10 / width * (x1 - x0), y0 + 8 / height * (y1 - y0)
    bx1 = bx0 + (x1 - x0) * bar / span if span else bx0
    return {"data": data, "layout": {
        "xaxis": {"range": [x0, x1], "showgrid": True, "gridcolor": "#e3eaee", "zeroline": False,
                  "ticksuffix": "°E", "tickfont": {"size": 10, "color": "#90a4ae"}},
        "yaxis": {"range": [y0, y1], "scaleanchor": "x", "scaleratio": _ratio(cy), "showgrid": True,
                  "gridcolor": "#e3eaee", "zeroline": False, "ticksuffix": "°N",
                  "tickfont": {"size": 10, "color": "#90a4ae"}},
        "shapes": [{"type": "line", "x0": bx0, "x1": bx1, "y0": by, "y1": by, "line": {"color": "#546e7a", "width": 3}}],
        "annotations": [{"x": (bx0 + bx1) / 2, "y": by, "yshift": 10, "showarrow": False,
                         "text": f"{bar:g} km", "font": {"size": 10, "color": "#546e7a"}}],
        "margin": {"l": 50, "r": 10, "t": 10, "b": 30}, "plot_bgcolor": "#f4f8fa", "paper_bgcolor": "white",
        "hovermode": "closest", "font": {"family": FONT}, "dragmode": "pan",
    }}
