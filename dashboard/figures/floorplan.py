"""A storey's floor plan: room outlines coloured by a metric, their labels and hovers, devices on top.

The geometry that only a BIM import changes is :class:`PlanGeometry` (:func:`plan_geometry`); the
per-tick styles are :func:`floorplan_styles` and :func:`device_styles`. The legend is
:mod:`dashboard.figures.legend`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from dashboard.figures.judging import (
    COMPLIANCE,
    DEVICE_HEALTH,
    FLOORPLAN_METRICS,
    FONT,
    NO_DATA,
    OUTLINE,
    Figure,
    colour_for,
    format_value,
    metric_text,
    unit_of,
)
from dashboard.i18n import t
from twin.monitoring.site_standards import SiteStandards


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
