"""A storey's floor plan: room outlines coloured by a metric, their labels and hovers, devices on top.

The geometry that only a BIM import changes is :class:`PlanGeometry` (:func:`plan_geometry`); the
per-tick styles are :func:`floorplan_styles` and :func:`device_styles`. The legend is
:mod:`dashboard.figures.legend`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

from dashboard.figures.judging import (
    COMPLIANCE,
    COMPLIANCE_LABELS,
    DEVICE_HEALTH,
    FLOORPLAN_METRICS,
    FONT,
    NO_DATA,
    OUTLINE,
    Figure,
    colour_for,
    format_value,
    metric_text,
    status_of,
    unit_of,
)
from dashboard.i18n import t
from dashboard.metrics import metric_label
from twin.monitoring.site_standards import NO_STANDARD, OK, SiteStandards


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


#: Device marker colour per state, and symbol per kind.
STATE_COLOURS = {"online": "#1b5e20", "offline": "#b71c1c", "unknown": "#78909c"}
KIND_SYMBOLS = {"env_sensor": "circle", "luminaire": "diamond", "blackboard_luminaire": "diamond-wide",
                "panel": "square"}
#: Device kinds for people (translated by :func:`dashboard.i18n.t`).
KIND_NAMES = {"env_sensor": "sensor", "luminaire": "luminaire", "blackboard_luminaire": "blackboard luminaire",
              "panel": "interactive panel"}


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


_FLOORPLAN_UNITS = {m: unit_of(m) for m in FLOORPLAN_METRICS}
_DERIVED = (COMPLIANCE, DEVICE_HEALTH)


@functools.cache
def _status_words(status: str | None, lang: str) -> str:
    """How a verdict's status reads after a value: "meets the standards", "outside a standard (warning)"..."""
    if status is None or status == NO_STANDARD:
        return ""
    if status == OK:
        return t(COMPLIANCE_LABELS[OK], lang)
    return f"{t(COMPLIANCE_LABELS.get(status, 'outside a standard'), lang)} ({t(status, lang)})"


def _value_line(metric: str, value: float | None, text: str, use: str, standards: SiteStandards | None,
                lang: str) -> str:
    """``"CO₂: 1200 ppm · meets the standards"``: a value and, for a measured one, its verdict."""
    words = "" if metric in _DERIVED else _status_words(status_of(metric, value, use, standards), lang)
    return f"{metric_label(metric, lang)}: {text}" + (f" · {words}" if words else "")


def room_style(name: str, values: Mapping[str, float], metric: str, lang: str = "en", *, use: str = "",
               standards: SiteStandards | None = None, label_name: str | None = None) -> tuple[str, str, str]:
    """``(fill colour, label, hover)`` of one room of ``use``: the chosen metric as ``standards`` judge it.

    The hover names the room in full and lists the chosen metric, then the room's other values, each
    followed by its verdict (the same judgement that colours the plan). The label is ``label_name``
    (the name as it fits the room, :func:`plan_geometry`; "" hides it) over the chosen value.
    """
    value = values.get(metric)
    shown = metric_text(metric, values, lang)
    label_name = name if label_name is None else label_name
    label = "" if not label_name else (label_name if value is None else f"{label_name}<br><b>{shown}</b>")
    lines = [f"<b>{name}</b>", _value_line(metric, value, shown, use, standards, lang)]
    for m in FLOORPLAN_METRICS:  # the room's other values
        if m != metric and (v := values.get(m)) is not None:
            text = metric_text(m, values, lang) if m in _DERIVED else format_value(v, _FLOORPLAN_UNITS[m])
            lines.append(_value_line(m, v, text, use, standards, lang))
    return colour_for(metric, value, use=use, standards=standards), label, "<br>".join(lines)


def floorplan_styles(rooms: Sequence[RoomShape], values: Mapping[int, Mapping[str, float]], metric: str,
                     lang: str = "en", *, geometry: PlanGeometry | None = None,
                     standards: SiteStandards | None = None) -> list[tuple[str, str, str]]:
    """:func:`room_style` of every drawable room (those of ``geometry``, with its label names), in order."""
    geometry = geometry if geometry is not None else plan_geometry(rooms)
    label_names = geometry.label_names or geometry.names
    return [room_style(name, values.get(room_id, {}), metric, lang, use=use, standards=standards, label_name=shown)
            for room_id, name, use, shown in zip(geometry.room_ids, geometry.names, geometry.uses, label_names,
                                                 strict=True)]


@dataclass(frozen=True)
class PlanGeometry:
    """What a floor plan draws that only a BIM import changes, ready to send (see :func:`plan_geometry`).

    ``outlines[i]`` is room ``i``'s ``(x, y, customdata)`` as contiguous arrays (plotly's JSON
    encoder passes those through whole); ``labels`` the label points, shape ``(rooms, 2)``.
    The placed devices (those with ``x`` and ``y``), in order: ``device_ids``, ``device_kinds``
    and ``device_xy`` (positions, with their room id, NaN for none, as a third column).
    ``hits[i]`` are room ``i``'s hit points (shape ``(k, 2)``), ``outside`` the guard points around the
    rooms (:func:`hit_points`); ``label_names`` and ``label_sizes`` each room's label as it fits the room
    at the first view ("" hidden; :func:`fit_labels`).
    """

    room_ids: tuple[int, ...]
    names: tuple[str, ...]
    outlines: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    labels: np.ndarray
    device_ids: tuple[str, ...] = ()
    device_kinds: tuple[str, ...] = ()
    device_xy: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    uses: tuple[str, ...] = ()  # each room's use (what the standards judge it as)
    hits: tuple[np.ndarray, ...] = ()
    outside: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    label_names: tuple[str, ...] = ()
    label_sizes: tuple[int, ...] = ()


def placed(devices: Sequence[DeviceMark]) -> list[DeviceMark]:
    """The devices a floor plan shows (those with a position), in order."""
    return [d for d in devices if d.x is not None and d.y is not None]


# -- clicks anywhere in a room ------------------------------------------------------------------------------
#
# Plotly reports no hover or click inside a filled polygon ('toself'), and shapes are not clickable
# either. So every room also gets invisible markers ("hit points") spread over it, carrying its id and
# its hover, and the layout's ``hoverdistance`` is -1: plotly hovers (and a click opens) the closest
# point however far the cursor is from it, at any zoom. A room's points are a lattice of spacing ``h``
# inside it plus a ring ``h/2`` in from its walls every ``h``; a point of a room at distance ``d`` from
# its wall is closer to the room's ring than to the neighbour's whenever ``d > h/8`` (a strip of a few
# centimetres along the wall is the only ambiguity). Guard points ``h/2`` outside the rooms, every ``h``,
# open nothing (id -1, no tooltip), so a click beside the building does not open its closest room.

#: About how many hit points a storey gets (lattice and rings together); the spacing follows.
HIT_POINTS = 3000
#: The spacing of hit points is never finer than this (m).
MIN_SPACING_M = 0.3


def hit_spacing(footprints: Sequence[BaseGeometry]) -> float:
    """The spacing ``h`` giving about ``HIT_POINTS`` points: ``area / h² + perimeter / h = HIT_POINTS``."""
    area = sum(f.area for f in footprints)
    perimeter = sum(f.length for f in footprints)
    if area <= 0:
        return MIN_SPACING_M
    h = (perimeter + math.sqrt(perimeter**2 + 4 * HIT_POINTS * area)) / (2 * HIT_POINTS)
    return max(MIN_SPACING_M, h)


def _ring_points(geometry: BaseGeometry, h: float) -> list[np.ndarray]:
    """Points every ``h`` (at least 4 per ring) along every ring of ``geometry``'s polygons."""
    found = []
    for polygon in polygons_of(geometry):
        for ring in (polygon.exterior, *polygon.interiors):
            count = max(4, math.ceil(ring.length / h))
            found.append(shapely.get_coordinates(
                shapely.line_interpolate_point(ring, np.linspace(0.0, ring.length, count, endpoint=False))))
    return found


def room_hits(footprint: BaseGeometry, h: float) -> np.ndarray:
    """A room's hit points: its pole of inaccessibility, a lattice of spacing ``h`` (anchored at 0, 0, so that
    neighbours' lattices align) inside it and a ring ``h/2`` in from its walls (less in a room thinner than ``h``)."""
    found = []
    for polygon in polygons_of(footprint):
        centre = polylabel(polygon, tolerance=h / 4)
        found.append(shapely.get_coordinates(centre))
        inset = min(h / 2, polygon.exterior.distance(centre) / 2)
        inner = polygon.buffer(-inset) if inset > 0 else polygon
        if inner.is_empty:
            continue
        found += _ring_points(inner, h)
        xmin, ymin, xmax, ymax = inner.bounds
        xs = np.arange(math.ceil(xmin / h), math.floor(xmax / h) + 1) * h
        ys = np.arange(math.ceil(ymin / h), math.floor(ymax / h) + 1) * h
        if len(xs) and len(ys):
            gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
            inside = shapely.contains_xy(inner, gx, gy)
            found.append(np.column_stack([gx[inside], gy[inside]]))
    return np.round(np.concatenate(found), 2) if found else np.empty((0, 2))


def hit_points(footprints: Sequence[BaseGeometry]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Each room's hit points (:func:`room_hits`) and the guard points around all rooms."""
    if not footprints:
        return (), np.empty((0, 2))
    h = hit_spacing(footprints)
    guard = _ring_points(shapely.union_all(footprints).buffer(h / 2), h)
    return (tuple(room_hits(f, h) for f in footprints),
            np.round(np.concatenate(guard), 2) if guard else np.empty((0, 2)))


# -- labels that fit ------------------------------------------------------------------------------------------

#: The plot area a storey first fills on the site page (px; the graph is 70 % of the window's height).
VIEW_PX = (1150.0, 620.0)
#: Label font sizes (px): the largest, and the smallest drawn (a room too small for it has no label).
LABEL_MAX_PX = 14
LABEL_MIN_PX = 7
#: How far a label keeps from a device marker (m), so hovering the label is not hovering the marker.
LABEL_CLEARANCE_M = 0.6


def _text_width(text: str) -> float:
    """A text's width in font sizes (about 0.6 per Latin letter, 1 per CJK character)."""
    return sum(1.0 if ord(c) > 0x2E80 else 0.6 for c in text)


def _truncate(name: str, width_em: float) -> str:
    """``name`` as it fits ``width_em`` font sizes: whole, cut with "…", or "" when not even 2 characters do."""
    if _text_width(name) <= width_em:
        return name
    cut = name
    while cut and _text_width(cut) + 0.6 > width_em:
        cut = cut[:-1]
    return f"{cut.rstrip()}…" if len(cut) >= 2 else ""


def fit_labels(footprints: Sequence[BaseGeometry], names: Sequence[str], anchors: np.ndarray
               ) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Each room's label name and font size at the first view (the storey fitted in ``VIEW_PX``).

    The size follows the room: the height free around its label point takes two lines (name and value),
    up to ``LABEL_MAX_PX``; the name is cut to the width free on its line. Below ``LABEL_MIN_PX``, or when
    not two characters fit, the room has no label ("") and its name is only in its hover.
    """
    if not footprints:
        return (), ()
    xmin, ymin, xmax, ymax = shapely.union_all(footprints).bounds
    scale = min(VIEW_PX[0] / max(xmax - xmin, 1e-6), VIEW_PX[1] / max(ymax - ymin, 1e-6))  # px per metre
    shown, sizes = [], []
    for footprint, name, (x, y) in zip(footprints, names, anchors, strict=True):
        point = shapely.Point(x, y)
        free_m = 2 * footprint.boundary.distance(point)
        row = footprint.intersection(shapely.LineString([(xmin - 1, y), (xmax + 1, y)]))
        width_m = next((part.length for part in getattr(row, "geoms", [row]) if part.distance(point) < 1e-6),
                       free_m)
        size = int(min(LABEL_MAX_PX, free_m * scale / 2.6, math.sqrt(footprint.area) * scale / 4))
        text = _truncate(name, 0.9 * width_m * scale / size) if size >= LABEL_MIN_PX else ""
        shown.append(text)
        sizes.append(size if text else LABEL_MIN_PX)
    return tuple(shown), tuple(sizes)


def label_points(footprints: Sequence[BaseGeometry], devices: np.ndarray) -> np.ndarray:
    """Where each room's label goes: the pole of inaccessibility of its largest part, kept clear of devices."""
    points = []
    marks = shapely.points(devices[:, :2]) if len(devices) else None
    for footprint in footprints:
        polygon = max(polygons_of(footprint), key=lambda p: p.area)
        free = polygon
        if marks is not None:
            near = marks[shapely.intersects(polygon, marks)]
            if len(near):
                clear = polygon.difference(shapely.union_all(shapely.buffer(near, LABEL_CLEARANCE_M)))
                free = max(polygons_of(clear), key=lambda p: p.area, default=polygon)
        tolerance = max(0.05, math.sqrt(polygon.area) / 50)
        points.append(shapely.get_coordinates(polylabel(free, tolerance=tolerance))[0])
    return np.array(points, dtype=float).reshape(-1, 2)


def plan_geometry(rooms: Sequence[RoomShape], devices: Sequence[DeviceMark] = ()) -> PlanGeometry:
    """The geometry of the :func:`drawable` rooms and the :func:`placed` devices, in order."""
    shown = drawable(rooms)
    outlines = []
    for room in shown:
        xs, ys = outline(room.footprint)  # type: ignore[arg-type]
        outlines.append((np.ascontiguousarray(xs), np.ascontiguousarray(ys), np.full(len(xs), int(room.room_id))))
    marks = placed(devices)
    xy = np.array([(d.x, d.y, d.room_id if d.room_id is not None else np.nan) for d in marks],
                  dtype=float).reshape(-1, 3)
    footprints = [r.footprint for r in shown]
    names = tuple(str(r.name) for r in shown)
    labels = label_points(footprints, xy)  # type: ignore[arg-type]
    hits, outside = hit_points(footprints)  # type: ignore[arg-type]
    label_names, label_sizes = fit_labels(footprints, names, labels)  # type: ignore[arg-type]
    return PlanGeometry(tuple(int(r.room_id) for r in shown), names,
                        tuple(outlines), labels, tuple(str(d.device_id) for d in marks),
                        tuple(str(d.kind) for d in marks), xy, tuple(str(r.use or "") for r in shown),
                        hits, outside, label_names, label_sizes)


def device_styles(geometry: PlanGeometry, states: Sequence[str | None], lang: str = "en"
                  ) -> tuple[list[str], list[str]]:
    """Marker colours and hover texts of the geometry's devices in ``states`` (same order)."""
    colours = [STATE_COLOURS.get(s or "unknown", NO_DATA) for s in states]
    words = {s: t(s or "unknown", lang) for s in set(states)}
    kinds = {k: t(KIND_NAMES.get(k, k), lang) for k in set(geometry.device_kinds)}
    hovers = [f"<b>{d}</b><br>{kinds[k]}<br>{words[s]}" for d, k, s in zip(geometry.device_ids,
                                                                           geometry.device_kinds, states, strict=True)]
    return colours, hovers


def hit_offset(geometry: PlanGeometry) -> int:
    """The index of room 0's hit trace in :func:`floorplan_figure` (after the rooms, labels and devices)."""
    return len(geometry.room_ids) + 1 + (1 if geometry.device_ids else 0)


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
    The traces, in order: one outline per room with a footprint (rooms without one are skipped), in
    the order of ``rooms``, carrying the room id in every ``customdata`` entry; one text trace named
    ``labels`` (room ``i``'s label is its ``text[i]``, its size ``textfont.size[i]``, "" when the room is too
    small); the placed devices (``device_id``, ``kind``, ``x``, ``y``, ``room_id``, ``state``) as one trace
    named ``devices`` (colour by state, symbol by kind, ``customdata`` their room, their own tooltips);
    then, from :func:`hit_offset`, one invisible trace of hit points per room (``meta`` "hit",
    ``customdata`` its id, ``text`` its hover) and one of guard points around the rooms (``meta``
    "outside", id -1, no tooltip). With ``hoverdistance`` -1 a click anywhere names the room of the closest
    point (:func:`room_from_click`).

    A caller that keeps what does not change may pass ``geometry`` (:func:`plan_geometry`
    of ``rooms`` and ``devices``) with the devices' ``states``, and ``styles``
    (:func:`floorplan_styles`). ``standards`` judge the rooms' values (none: every room neutral).
    """
    if geometry is None:
        geometry = plan_geometry(rooms, devices)
        states = [getattr(d, "state", None) for d in placed(devices)]
    if styles is None:
        styles = floorplan_styles(rooms, values, metric, lang, geometry=geometry, standards=standards)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": xs, "y": ys, "fillcolor": colour, "name": name, "customdata": ids}
        for name, (xs, ys, ids), (colour, _, _) in zip(geometry.names, geometry.outlines, styles, strict=True)
    ]
    notes: list[dict[str, Any]] = []
    if geometry.names:
        sizes = list(geometry.label_sizes) or [10] * len(geometry.names)
        data.append({"type": "scatter", "mode": "text", "name": "labels", "x": geometry.labels[:, 0].copy(),
                     "y": geometry.labels[:, 1].copy(), "text": [label for _, label, _ in styles],
                     "hoverinfo": "skip", "fill": "none", "textfont": {"size": sizes, "color": "#263238"}})
    else:
        notes.append({"text": t("no room footprints on this storey", lang), "showarrow": False, "xref": "paper",
                      "yref": "paper", "x": 0.5, "y": 0.5})
    if geometry.device_ids:
        data.append(devices_trace(geometry, states or [None] * len(geometry.device_ids), lang))
    data += [{"type": "scatter", "mode": "markers", "fill": "none", "hoveron": "points", "hoverinfo": "text",
              "meta": "hit", "name": name, "x": points[:, 0].copy(), "y": points[:, 1].copy(),
              "customdata": np.full(len(points), room_id), "text": hover, "marker": HIT_MARKER}
             for room_id, name, points, (_, _, hover) in zip(geometry.room_ids, geometry.names, geometry.hits,
                                                           styles, strict=True)]
    if geometry.names:
        data.append({"type": "scatter", "mode": "markers", "fill": "none", "hoveron": "points", "hoverinfo": "none",
                     "meta": "outside", "name": "outside", "x": geometry.outside[:, 0].copy(),
                     "y": geometry.outside[:, 1].copy(), "customdata": np.full(len(geometry.outside), -1),
                     "marker": HIT_MARKER})
    return {"data": data, "layout": {
        "annotations": notes,
        "xaxis": {"visible": False},
        "yaxis": {"visible": False, "scaleanchor": "x", "scaleratio": 1},
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "plot_bgcolor": "white", "paper_bgcolor": "white",
        "hovermode": "closest", "hoverdistance": -1, "font": {"family": FONT},
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


#: Hit and guard points are there to be hovered and clicked, not seen.
HIT_MARKER: dict[str, Any] = {"size": 4, "opacity": 0}

#: What every room trace of a floor plan shares, sent once in the layout's template: a filled
#: outline that takes no hover (its room's hit points do: plotly reports none inside a fill).
ROOM_TEMPLATE: dict[str, Any] = {
    "data": {"scatter": [{"mode": "lines", "fill": "toself", "line": {"color": OUTLINE, "width": 1},
                          "hoverinfo": "skip", "showlegend": False}]},
}


def room_from_click(click_data: Mapping[str, Any] | None) -> int | None:
    """The room id of a floor-plan click, or ``None`` (outside every room: id -1).

    A click on a room's hit point or a vertex gives the point's ``customdata`` (the id), a click on a
    device its room; a whole trace's ``customdata`` list (the id repeated) is read too.
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
