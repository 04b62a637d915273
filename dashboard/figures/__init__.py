"""Pure figure builders: floor plans, the 3D building, the network map, time series.

Nothing here talks to the database or to Dash; every function takes plain values and
returns a plotly figure as a plain ``{"data": [...], "layout": {...}}`` dict (cheap to
build and to patch: no validation pass over hundreds of traces), a colour or text.

Nothing here knows a threshold of a standard. A room's colour for a measured metric is the
verdict of :class:`twin.monitoring.site_standards.SiteStandards` (the site's rules on the day, for the
room's use, in the season, with its overrides: what the rule engine judges by), drawn by
``STATUS_COLOURS``: green when every rule judging the value is met, yellow when it breaks an
``info`` or ``warning`` rule, red for a ``critical`` one, blue when no rule judges that metric
for that room use. The latest value is a glance, not an alarm (alarms need a duration).
``compliance`` is the room's worst verdict over its latest values, each rule in its hours
(desk illuminance only while occupied). Legends and chart bands are the API's ``bands``.
Only two glances without a standard keep their own buckets here (``GLANCES``): occupancy
(empty / occupied) and device health (all online / ≥ 50 % / less). Rooms without a value are grey.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from dashboard.i18n import t
from twin.metrics import BY_NAME
from twin.monitoring.site_standards import NO_STANDARD, OK, STATUSES, SiteStandards
from twin.monitoring.site_standards import Band as RuleBand
from twin.monitoring.standards import outside

Figure = dict[str, Any]


class RoomShape(Protocol):
    """A room as a plan draws it (:class:`twin.storage.plans.PlanRoom`, ``RoomFootprint``, ``BuildingRoom``)."""

    @property
    def room_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def use(self) -> str | None: ...
    @property
    def footprint(self) -> BaseGeometry | None: ...


class BuildingRoomShape(RoomShape, Protocol):
    """A room of a building for the 3D view (:class:`twin.storage.plans.BuildingRoom`)."""

    @property
    def storey(self) -> str: ...
    @property
    def elevation_m(self) -> float: ...
    @property
    def height_m(self) -> float | None: ...


class DeviceMark(Protocol):
    """A device as a plan marks it (:class:`twin.storage.plans.PlanDevice`)."""

    @property
    def device_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def room_id(self) -> int | None: ...
    @property
    def x(self) -> float | None: ...
    @property
    def y(self) -> float | None: ...


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

GOOD = "#43a047"
WARN = "#fbc02d"
BAD = "#e53935"
NO_DATA = "#bdbdbd"
NEUTRAL = "#64b5f6"
EMPTY = "#e3f2fd"
OUTLINE = "#455a64"
FONT = 'system-ui, "Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", sans-serif'
#: Device marker colour per state, and symbol per kind.
STATE_COLOURS = {"online": "#1b5e20", "offline": "#b71c1c", "unknown": "#78909c"}
KIND_SYMBOLS = {"env_sensor": "circle", "luminaire": "diamond", "blackboard_luminaire": "diamond-wide",
                "panel": "square"}

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


def outline(geometry: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Exterior rings of a (multi)polygon as x and y arrays, rings separated by NaN (a gap in plotly).

    Arrays, not lists: plotly's JSON encoder passes numpy arrays through whole (NaN becomes
    ``null``) instead of visiting every number, which matters for a 200-room storey.
    Holes are not drawn; other geometry types give empty arrays.
    """
    rings = [shapely.get_coordinates(p.exterior) for p in polygons_of(geometry)]
    if not rings:
        return np.empty(0), np.empty(0)
    gap = np.full((1, 2), np.nan)
    coords = np.concatenate([part for ring in rings for part in (gap, ring)][1:])
    return coords[:, 0], coords[:, 1]


def polygons_of(geometry: BaseGeometry | None) -> list[Polygon]:
    if geometry is None:
        return []
    if isinstance(geometry, Polygon):
        found: Sequence[Any] = [geometry]
    elif isinstance(geometry, MultiPolygon):
        found = list(geometry.geoms)
    else:
        found = [g for g in getattr(geometry, "geoms", ()) if isinstance(g, Polygon)]
    return [p for p in found if not p.is_empty]


# -- floor plan ---------------------------------------------------------------------------------------------


def drawable(rooms: Sequence[RoomShape]) -> list[RoomShape]:
    """The rooms a floor plan draws (those with a non-empty footprint), in order."""
    return [r for r in rooms if polygons_of(r.footprint)]


@functools.cache
def _metric_words(lang: str) -> dict[str, str]:
    """The floor-plan metrics' names in ``lang`` (looked up once, not once per room)."""
    return {m: t(m, lang) for m in FLOORPLAN_METRICS}


_FLOORPLAN_UNITS = {m: unit_of(m) for m in FLOORPLAN_METRICS}
_DERIVED = (COMPLIANCE, DEVICE_HEALTH)


def room_style(name: str, values: Mapping[str, float], metric: str, lang: str = "en", *, use: str = "",
               standards: SiteStandards | None = None) -> tuple[str, str, str]:
    """``(fill colour, label, hover)`` of one room of ``use``: the chosen metric as ``standards`` judge it,
    then the room's other live values."""
    words = _metric_words(lang)
    value = values.get(metric)
    shown = metric_text(metric, values, lang)
    label = name if value is None else f"{name}<br><b>{shown}</b>"
    lines = [f"<b>{name}</b>", f"{words.get(metric) or t(metric, lang)}: {shown}"]
    for m in FLOORPLAN_METRICS:  # the room's other values
        if m == metric or (v := values.get(m)) is None:
            continue
        if m in _DERIVED:
            lines.append(f"{words[m]}: {metric_text(m, values, lang)}")
        else:
            lines.append(f"{words[m]}: {format_value(v, _FLOORPLAN_UNITS[m])}")
    return colour_for(metric, value, use=use, standards=standards), label, "<br>".join(lines)


def floorplan_styles(rooms: Sequence[RoomShape], values: Mapping[int, Mapping[str, float]], metric: str,
                     lang: str = "en", *, geometry: PlanGeometry | None = None,
                     standards: SiteStandards | None = None) -> list[tuple[str, str, str]]:
    """:func:`room_style` of every drawable room (those of ``geometry`` when given), in order."""
    if geometry is not None:
        return [room_style(name, values.get(room_id, {}), metric, lang, use=use, standards=standards)
                for room_id, name, use in zip(geometry.room_ids, geometry.names, geometry.uses, strict=True)]
    return [room_style(str(r.name), values.get(int(r.room_id), {}), metric, lang, use=str(r.use or ""),
                       standards=standards) for r in drawable(rooms)]


@dataclass(frozen=True)
class PlanGeometry:
    """What a floor plan draws that only a BIM import changes, ready to send (see :func:`plan_geometry`).

    ``outlines[i]`` is room ``i``'s ``(x, y, customdata)`` as contiguous arrays (plotly's JSON
    encoder passes those through whole); ``labels`` the label points, shape ``(rooms, 2)``.
    The placed devices (those with ``x`` and ``y``), in order: ``device_ids``, ``device_kinds``
    and ``device_xy`` (positions, with their room id, NaN for none, as a third column).
    """

    room_ids: tuple[int, ...]
    names: tuple[str, ...]
    outlines: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    labels: np.ndarray
    device_ids: tuple[str, ...] = ()
    device_kinds: tuple[str, ...] = ()
    device_xy: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    uses: tuple[str, ...] = ()  # each room's use (what the standards judge it as)


def placed(devices: Sequence[DeviceMark]) -> list[DeviceMark]:
    """The devices a floor plan shows (those with a position), in order."""
    return [d for d in devices if d.x is not None and d.y is not None]


def plan_geometry(rooms: Sequence[RoomShape], devices: Sequence[DeviceMark] = ()) -> PlanGeometry:
    """The geometry of the :func:`drawable` rooms and the :func:`placed` devices, in order."""
    shown = drawable(rooms)
    outlines = []
    for room in shown:
        xs, ys = outline(room.footprint)  # type: ignore[arg-type]
        outlines.append((np.ascontiguousarray(xs), np.ascontiguousarray(ys), np.full(len(xs), int(room.room_id))))
    labels = (shapely.get_coordinates(shapely.point_on_surface([r.footprint for r in shown])) if shown
              else np.empty((0, 2)))
    marks = placed(devices)
    xy = np.array([(d.x, d.y, d.room_id if d.room_id is not None else np.nan) for d in marks],
                  dtype=float).reshape(-1, 3)
    return PlanGeometry(tuple(int(r.room_id) for r in shown), tuple(str(r.name) for r in shown),
                        tuple(outlines), labels, tuple(str(d.device_id) for d in marks),
                        tuple(str(d.kind) for d in marks), xy, tuple(str(r.use or "") for r in shown))


def device_styles(geometry: PlanGeometry, states: Sequence[str | None], lang: str = "en"
                  ) -> tuple[list[str], list[str]]:
    """Marker colours and hover texts of the geometry's devices in ``states`` (same order)."""
    colours = [STATE_COLOURS.get(s or "unknown", NO_DATA) for s in states]
    words = {s: t(s or "unknown", lang) for s in set(states)}
    hovers = [f"<b>{d}</b><br>{k}<br>{words[s]}" for d, k, s in zip(geometry.device_ids, geometry.device_kinds, states,
                                                                     strict=True)]
    return colours, hovers


def floorplan_figure(
    rooms: Sequence[RoomShape],
    values: Mapping[int, Mapping[str, float]],
    metric: str,
    *,
    devices: Sequence[DeviceMark] = (),
    lang: str = "en",
    uirevision: str | int | None = None,
    styles: Sequence[tuple[str, str, str]] | None = None,
    geometry: PlanGeometry | None = None,
    states: Sequence[str | None] | None = None,
    standards: SiteStandards | None = None,
) -> Figure:
    """A storey's rooms as filled polygons coloured by ``metric``, devices as markers on top.

    ``rooms`` are rows of :func:`twin.storage.plans.storey_rooms` or a snapshot's (``room_id``, ``name``,
    ``footprint``); ``values`` maps room ids to their values (:func:`with_derived`).
    Exactly one trace per room with a footprint (rooms without one are skipped), in the
    order of ``rooms``, carrying the room id in every ``customdata`` entry, so a click
    anywhere on it names the room (:func:`room_from_click`). Then one text trace named
    ``labels`` (room ``i``'s name and value is its ``text[i]``), then the placed devices
    (``device_id``, ``kind``, ``x``, ``y``, ``room_id``, ``state``) as one trace named
    ``devices``: colour by state, symbol by kind, ``customdata`` their room.

    A caller that keeps what does not change may pass ``geometry`` (:func:`plan_geometry`
    of ``rooms`` and ``devices``) with the devices' ``states``, and ``styles``
    (:func:`floorplan_styles`). ``standards`` judge the rooms' values (none: every room neutral).
    """
    if geometry is None:
        geometry = plan_geometry(rooms, devices)
        states = [getattr(d, "state", None) for d in placed(devices)]
    styles = styles if styles is not None else floorplan_styles(rooms, values, metric, lang, standards=standards)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": xs, "y": ys, "fillcolor": colour, "name": name, "text": hover, "customdata": ids}
        for name, (xs, ys, ids), (colour, _, hover) in zip(geometry.names, geometry.outlines, styles, strict=True)
    ]
    notes: list[dict[str, Any]] = []
    if geometry.names:
        data.append({"type": "scatter", "mode": "text", "name": "labels", "x": geometry.labels[:, 0].copy(),
                     "y": geometry.labels[:, 1].copy(), "text": [label for _, label, _ in styles],
                     "hoverinfo": "skip", "fill": "none", "textfont": {"size": 10, "color": "#263238"}})
    else:
        notes.append({"text": t("no room footprints on this storey", lang), "showarrow": False, "xref": "paper",
                      "yref": "paper", "x": 0.5, "y": 0.5})
    if geometry.device_ids:
        data.append(devices_trace(geometry, states or [None] * len(geometry.device_ids), lang))
    return {"data": data, "layout": {
        "annotations": notes,
        "xaxis": {"visible": False},
        "yaxis": {"visible": False, "scaleanchor": "x", "scaleratio": 1},
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "plot_bgcolor": "white", "paper_bgcolor": "white",
        "hovermode": "closest", "font": {"family": FONT},
        "uirevision": uirevision, "template": ROOM_TEMPLATE,
    }}


def devices_trace(geometry: PlanGeometry, states: Sequence[str | None], lang: str = "en") -> dict[str, Any]:
    """Device markers: colour by state, symbol by kind; ``customdata`` is the device's room (NaN: none)."""
    colours, hovers = device_styles(geometry, states, lang)
    return {
        "type": "scatter", "mode": "markers", "name": "devices", "showlegend": False,
        "x": geometry.device_xy[:, 0].copy(), "y": geometry.device_xy[:, 1].copy(),
        "customdata": geometry.device_xy[:, 2].copy(),
        "text": hovers, "hoverinfo": "text", "fill": "none", "hoveron": "points",
        "marker": {"size": 7, "line": {"width": 1, "color": "white"}, "color": colours,
                   "symbol": [KIND_SYMBOLS.get(k, "circle-open") for k in geometry.device_kinds]},
    }


#: What every room trace of a floor plan shares, sent once in the layout's template:
#: a filled outline whose ``text`` is the hover, on the fill (a string ``text`` is what
#: plotly shows there) and on the vertices.
ROOM_TEMPLATE: dict[str, Any] = {
    "data": {"scatter": [{"mode": "lines", "fill": "toself", "line": {"color": OUTLINE, "width": 1},
                          "hoveron": "fills+points", "hoverinfo": "text", "showlegend": False}]},
}


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


def room_from_click(click_data: Mapping[str, Any] | None) -> int | None:
    """The room id of a floor-plan click, or ``None``.

    A click on a vertex gives the point's ``customdata`` (the id); a click on the fill
    gives the whole trace's ``customdata`` list (the id repeated).
    """
    if not click_data or not click_data.get("points"):
        return None
    data = click_data["points"][0].get("customdata")
    if isinstance(data, list):
        data = next((d for d in data if d is not None), None)
    try:
        room = int(data) if data is not None else None
    except (TypeError, ValueError):
        return None
    return room if room is not None and room >= 0 else None


# -- 3D building -------------------------------------------------------------------------------------------


def building_figure(rooms: Sequence[BuildingRoomShape], values: Mapping[int, Mapping[str, float]], metric: str, *,
                    lang: str = "en", uirevision: str | int | None = None, default_height_m: float = 3.2,
                    standards: SiteStandards | None = None) -> Figure:
    """Rooms extruded from their footprints at their storey's elevation, coloured by ``metric`` (one Mesh3d).

    Each room's top is triangulated (constrained Delaunay, so L-shaped rooms stay L-shaped)
    and its walls are quads along the exterior ring; rooms are 90 % of their height so that
    storeys read apart. Outlines of the tops form a second trace.
    """
    xs: list[float] = []
    ys: list[float] = []
    zs: list[float] = []
    ii: list[int] = []
    jj: list[int] = []
    kk: list[int] = []
    face_colours: list[str] = []
    hover: list[str] = []
    edges: tuple[list[float | None], list[float | None], list[float | None]] = ([], [], [])

    def vertex(x: float, y: float, z: float, text: str) -> int:
        xs.append(x)
        ys.append(y)
        zs.append(z)
        hover.append(text)
        return len(xs) - 1

    for room in rooms:
        polygons = polygons_of(room.footprint)
        if not polygons:
            continue
        room_values = values.get(int(room.room_id), {})
        colour = colour_for(metric, room_values.get(metric), use=str(room.use or ""), standards=standards)
        text = (f"<b>{room.name}</b> ({room.storey or ''})<br>"
                f"{t(metric, lang)}: {metric_text(metric, room_values, lang)}")
        z0 = float(room.elevation_m or 0.0)
        z1 = z0 + 0.9 * float(room.height_m or default_height_m)
        for polygon in polygons:
            for triangle in shapely.constrained_delaunay_triangles(polygon).geoms:
                a, b, c = shapely.get_coordinates(triangle)[:3]
                ii.append(vertex(a[0], a[1], z1, text))
                jj.append(vertex(b[0], b[1], z1, text))
                kk.append(vertex(c[0], c[1], z1, text))
                face_colours.append(colour)
            ring = shapely.get_coordinates(polygon.exterior)
            for (x0, y0), (x1, y1) in zip(ring[:-1], ring[1:], strict=True):
                p = [vertex(x0, y0, z0, text), vertex(x1, y1, z0, text), vertex(x1, y1, z1, text),
                     vertex(x0, y0, z1, text)]
                ii += [p[0], p[0]]
                jj += [p[1], p[2]]
                kk += [p[2], p[3]]
                face_colours += [colour, colour]
            for axis, column in zip(edges, (ring[:, 0].tolist(), ring[:, 1].tolist(), [z1] * len(ring)), strict=True):
                axis.extend([*column, None])
    data: list[dict[str, Any]] = [{
        "type": "mesh3d", "name": "rooms", "x": np.array(xs), "y": np.array(ys), "z": np.array(zs),
        "i": np.array(ii, dtype=np.int32), "j": np.array(jj, dtype=np.int32), "k": np.array(kk, dtype=np.int32),
        "facecolor": face_colours, "flatshading": True, "text": hover, "hovertemplate": "%{text}<extra></extra>",
        "lighting": {"ambient": 0.75, "diffuse": 0.5, "specular": 0.05}, "showscale": False,
    }]
    if edges[0]:
        data.append({"type": "scatter3d", "mode": "lines", "name": "outlines", "x": edges[0], "y": edges[1],
                     "z": edges[2], "line": {"color": OUTLINE, "width": 2}, "hoverinfo": "skip",
                     "showlegend": False})
    hidden = {"visible": False, "showgrid": False, "zeroline": False}
    return {"data": data, "layout": {
        "scene": {"xaxis": hidden, "yaxis": hidden, "zaxis": hidden, "aspectmode": "data",
                  "camera": {"eye": {"x": 1.6, "y": -1.9, "z": 1.5}}},
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "paper_bgcolor": "white", "font": {"family": FONT},
        "uirevision": uirevision,
    }}


# -- network map -------------------------------------------------------------------------------------------


def online_share(site: SiteCounts) -> float | None:
    devices = site.devices or 0
    return 100.0 * (site.online or 0) / devices if devices else None


def site_map_figure(sites: Sequence[SiteCounts], lang: str = "en") -> Figure:
    """The schools at their latitude and longitude on plain axes (no map tiles: works offline).

    Markers are coloured by devices online (``device_health`` buckets), the headquarters is
    a star, and a line links it to every member school (the 1+N network). Axes keep true
    proportions at the network's latitude. ``customdata`` of a marker is its site id.
    """
    placed = [s for s in sites if s.latitude is not None and s.longitude is not None]
    data: list[dict[str, Any]] = []
    hq = next((s for s in placed if s.role == "headquarters"), None)
    if hq is not None:
        lx: list[float | None] = []
        ly: list[float | None] = []
        for s in placed:
            if s is not hq:
                lx += [hq.longitude, s.longitude, None]
                ly += [hq.latitude, s.latitude, None]
        data.append({"type": "scatter", "mode": "lines", "x": lx, "y": ly, "hoverinfo": "skip", "showlegend": False,
                     "line": {"color": "#b0bec5", "width": 1, "dash": "dot"}, "name": "links"})
    shares = [online_share(s) for s in placed]
    data.append({
        "type": "scatter", "mode": "markers+text", "name": "schools", "showlegend": False,
        "x": [s.longitude for s in placed], "y": [s.latitude for s in placed],
        "text": [s.name for s in placed], "textposition": "top center",
        "customdata": [s.site_id for s in placed],
        "hovertext": [f"<b>{s.name}</b><br>{t(s.role, lang)}<br>{t('devices online', lang)}: "
                      + (f"{v:.0f}%" if v is not None else "–") + f"<br>{t('open alarms', lang)}: {s.open_alarms}"
                      for s, v in zip(placed, shares, strict=True)],
        "hovertemplate": "%{hovertext}<extra></extra>",
        "marker": {"size": [22 if s.role == "headquarters" else 15 for s in placed],
                   "symbol": ["star" if s.role == "headquarters" else "circle" for s in placed],
                   "color": [colour_for(DEVICE_HEALTH, v) for v in shares], "line": {"width": 1, "color": OUTLINE}},
    })
    mean_lat = sum(s.latitude for s in placed) / len(placed) if placed else 0.0
    ratio = 1.0 / max(math.cos(math.radians(mean_lat)), 0.1)
    return {"data": data, "layout": {
        "xaxis": {"title": {"text": t("longitude °E", lang)}, "showgrid": True, "gridcolor": "#eceff1", "zeroline": False},
        "yaxis": {"title": {"text": t("latitude °N", lang)}, "scaleanchor": "x", "scaleratio": ratio, "showgrid": True,
                  "gridcolor": "#eceff1", "zeroline": False},
        "margin": {"l": 60, "r": 20, "t": 20, "b": 50}, "plot_bgcolor": "white", "paper_bgcolor": "white",
        "hovermode": "closest", "font": {"family": FONT}, "dragmode": "pan",
    }}


# -- time series -------------------------------------------------------------------------------------------


def band_intervals(bands: Sequence[RuleBand], low: float, high: float) -> list[tuple[float, float, str]]:
    """The view ``[low, high]`` split at the rules' bounds: ``(from, to, colour)``, each piece coloured as
    the rules judge its values (worst broken rule's severity, else green).

    >>> from datetime import date
    >>> july = SiteStandards("hq", date(2026, 7, 6))
    >>> band_intervals(july.bands("temperature", "classroom"), 10, 35) == [(10, 22.0, WARN), (22.0, 28.0, GOOD),
    ...                                                                   (28.0, 35, WARN)]
    True
    """
    edges = sorted({low, high, *(e for b in bands for e in (b.low, b.high) if e is not None and low < e < high)})
    out: list[tuple[float, float, str]] = []
    for a, b in itertools.pairwise(edges):
        mid = (a + b) / 2
        broken = [band.severity for band in bands if outside(mid, band.low, band.high)]
        colour = STATUS_COLOURS[max(broken, key=STATUSES.index)] if broken else GOOD
        if out and out[-1][2] == colour:
            out[-1] = (out[-1][0], b, colour)
        else:
            out.append((a, b, colour))
    return out


def _translucent(colour: str, alpha: float = 0.12) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def series_figure(points: Sequence[tuple[datetime, float, float, float]], metric: str, unit: str, *,
                  lang: str = "en", source: str = "", bands: Sequence[RuleBand] = ()) -> Figure:
    """Mean line with a min–max band from ``(bucket, mean, min, max)`` rollups, oldest first.

    The room's rules (``bands``: :meth:`twin.monitoring.site_standards.SiteStandards.bands` of its use)
    are drawn behind as translucent bands (green met, yellow or red broken, by severity)
    over the shown value range; ``source`` names the rollup read.
    """
    # Contiguous numpy arrays: the figure is plain JSON for orjson (Dash's fast path), no per-point work
    ts = np.array([p[0].timestamp() for p in points], dtype=np.int64).astype("datetime64[s]")  # UTC
    mean, low, high = np.array([p[1:] for p in points], dtype=float).reshape(-1, 3).T.copy()
    data = [
        {"type": "scatter", "x": ts, "y": high, "mode": "lines", "line": {"width": 0},
         "hoverinfo": "skip", "showlegend": False, "name": "max"},
        {"type": "scatter", "x": ts, "y": low, "mode": "lines", "line": {"width": 0},
         "fill": "tonexty", "fillcolor": "rgba(100, 181, 246, 0.35)", "hoverinfo": "skip", "name": t("min–max", lang)},
        {"type": "scatter", "x": ts, "y": mean, "mode": "lines", "name": t("mean", lang),
         "line": {"color": "#1565c0", "width": 2},
         "hovertemplate": f"%{{x|%Y-%m-%d %H:%M}}  %{{y:.1f}} {unit}<extra></extra>"},
    ]
    edges = [e for b in bands for e in (b.low, b.high) if e is not None]
    values = [float(low.min()), float(high.max())] if points else []
    values += edges
    layout: dict[str, Any] = {
        "yaxis": {"title": {"text": f"{t(metric, lang)} ({unit})" if unit else t(metric, lang)}, "gridcolor": "#eceff1"},
        "xaxis": {"gridcolor": "#eceff1"},
        "margin": {"l": 60, "r": 10, "t": 30, "b": 40}, "plot_bgcolor": "white", "paper_bgcolor": "white",
        "legend": {"orientation": "h", "y": 1.12}, "font": {"family": FONT}, "shapes": [], "annotations": [],
    }
    if values:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1.0)
        lo, hi = lo - pad, hi + pad
        layout["yaxis"]["range"] = [lo, hi]
        if bands:
            layout["shapes"] = [
                {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": a, "y1": b, "layer": "below",
                 "line": {"width": 0}, "fillcolor": _translucent(colour)}
                for a, b, colour in band_intervals(bands, lo, hi)
            ]
            named = [*sorted({b.standard for b in bands}), *sorted({t(b.season, lang) for b in bands if b.season})]
            layout["annotations"].append({"text": ", ".join(named), "showarrow": False, "xref": "paper", "yref": "paper",
                                          "x": 1, "y": 1.0, "xanchor": "right", "yanchor": "bottom",
                                          "font": {"size": 10, "color": "#607d8b"}})
    if source:
        layout["annotations"].append({"text": source, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0,
                                      "y": 1.0, "xanchor": "left", "yanchor": "bottom",
                                      "font": {"size": 10, "color": "#607d8b"}})
    if not points:
        layout["annotations"].append({"text": t("no data in this period", lang), "showarrow": False, "xref": "paper",
                                      "yref": "paper", "x": 0.5, "y": 0.5})
    return {"data": data, "layout": layout}


def series_csv(points: Sequence[tuple[datetime, float, float, float]], metric: str, unit: str) -> str:
    """The shown series as CSV: one row per bucket (UTC, ISO 8601), mean, min and max."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["bucket_utc", "metric", "unit", "mean", "min", "max"])
    for bucket, mean, lo, hi in points:
        writer.writerow([bucket.isoformat(), metric, unit, f"{mean:.4g}", f"{lo:.4g}", f"{hi:.4g}"])
    return out.getvalue()
