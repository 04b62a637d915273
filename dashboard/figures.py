"""Pure figure builders: floor plans coloured against the national standards, time series.

Nothing here talks to the database or to Dash; every function takes plain values and
returns a plotly figure or a colour, so it tests fast.

Colour buckets (``SCALES``) follow the standards table of DESIGN.md. They colour the
*latest* value, a glance, not a compliance verdict (rules judge means over occupied
hours). Seasons are not modelled yet: temperature and humidity use the summer ranges.

==============  =====================  ======================  ==========================
metric          good                   warn                    bad
==============  =====================  ======================  ==========================
temperature     22–28 °C               otherwise               –        (GB/T 18883-2022)
humidity        40–80 %RH              otherwise               –        (GB/T 18883-2022)
co2             ≤ 1000 ppm             ≤ 1500 ppm              > 1500   (GB/T 18883 / 17226)
pm25            ≤ 50 µg/m³             –                       > 50     (GB/T 18883-2022)
illuminance     ≥ 300 lx               –                       < 300    (GB 7793-2010)
blackboard_ill. ≥ 500 lx               –                       < 500    (GB 7793-2010)
noise           ≤ 45 dB(A)             otherwise               –        (GB 50118-2010)
occupancy       no standard: "empty" (0) or "occupied" (> 0)
==============  =====================  ======================  ==========================

Other metrics get one neutral colour; rooms without a value are grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from twin.metrics import BY_NAME

GOOD = "#43a047"
WARN = "#fbc02d"
BAD = "#e53935"
NO_DATA = "#bdbdbd"
NEUTRAL = "#64b5f6"
EMPTY = "#e3f2fd"
OUTLINE = "#455a64"

#: The metrics offered on the floor plan, in the order of the dropdown.
FLOORPLAN_METRICS = ("temperature", "co2", "illuminance", "occupancy", "humidity", "noise")


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
        return next((b for b in self.bands if b.contains(value)), self.otherwise)

    @property
    def legend(self) -> tuple[Band, ...]:
        return (*self.bands, self.otherwise)


SCALES: dict[str, Scale] = {
    "temperature": Scale((Band("22–28 °C", GOOD, 22.0, 28.0),), Band("outside 22–28 °C", WARN),
                         "GB/T 18883-2022, summer"),
    "humidity": Scale((Band("40–80 %RH", GOOD, 40.0, 80.0),), Band("outside 40–80 %RH", WARN),
                      "GB/T 18883-2022, summer"),
    "co2": Scale((Band("≤ 1000 ppm", GOOD, high=1000.0), Band("≤ 1500 ppm", WARN, high=1500.0)),
                 Band("> 1500 ppm", BAD), "GB/T 18883-2022, GB/T 17226-2017"),
    "pm25": Scale((Band("≤ 50 µg/m³", GOOD, high=50.0),), Band("> 50 µg/m³", BAD), "GB/T 18883-2022"),
    "illuminance": Scale((Band("≥ 300 lx", GOOD, low=300.0),), Band("< 300 lx", BAD), "GB 7793-2010"),
    "blackboard_illuminance": Scale((Band("≥ 500 lx", GOOD, low=500.0),), Band("< 500 lx", BAD), "GB 7793-2010"),
    "noise": Scale((Band("≤ 45 dB(A)", GOOD, high=45.0),), Band("> 45 dB(A)", WARN), "GB 50118-2010"),
    "occupancy": Scale((Band("empty", EMPTY, high=0.0),), Band("occupied", NEUTRAL)),
}
_DEFAULT_SCALE = Scale((), Band("value", NEUTRAL))


def scale_for(metric: str) -> Scale:
    """The colour scale of ``metric`` (one neutral band for metrics without a standard)."""
    return SCALES.get(metric, _DEFAULT_SCALE)


def colour_for(metric: str, value: float | None) -> str:
    """Colour of a room whose latest ``metric`` is ``value``; grey when there is no value.

    >>> colour_for("co2", 800) == GOOD, colour_for("co2", 1200) == WARN, colour_for("co2", 1600) == BAD
    (True, True, True)
    """
    if value is None or math.isnan(value):
        return NO_DATA
    return scale_for(metric).band(value).colour


def unit_of(metric: str) -> str:
    m = BY_NAME.get(metric)
    return m.unit if m else ""


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def outline(geometry: BaseGeometry) -> tuple[list[float | None], list[float | None]]:
    """Exterior rings of a (multi)polygon as x and y lists, rings separated by ``None``.

    Holes are not drawn; other geometry types give empty lists.
    """
    if isinstance(geometry, Polygon):
        polygons: Sequence[Polygon] = [geometry]
    elif isinstance(geometry, MultiPolygon):
        polygons = list(geometry.geoms)
    else:
        polygons = [g for g in getattr(geometry, "geoms", ()) if isinstance(g, Polygon)]
    xs: list[float | None] = []
    ys: list[float | None] = []
    for polygon in polygons:
        if polygon.is_empty:
            continue
        if xs:
            xs.append(None)
            ys.append(None)
        x, y = polygon.exterior.coords.xy
        xs.extend(float(v) for v in x)
        ys.extend(float(v) for v in y)
    return xs, ys


def floorplan_figure(
    rooms: Sequence[Mapping[str, Any]],
    values: Mapping[int, Mapping[str, float]],
    metric: str,
    *,
    uirevision: str | int | None = None,
) -> go.Figure:
    """A storey's rooms as filled polygons coloured by their latest ``metric``.

    ``rooms`` are rows of :func:`twin.storage.model.storey_rooms` (``room_id``, ``name``,
    ``footprint``); ``values`` is :func:`twin.storage.readings.room_latest`. Exactly one
    trace per room with a footprint (rooms without one are skipped), carrying the room id
    in every ``customdata`` entry, so a click anywhere on it names the room
    (:func:`room_from_click`). The buckets are listed in an annotation above the plan.
    """
    unit = unit_of(metric)
    fig = go.Figure()
    labels = []
    for room in rooms:
        footprint = room.get("footprint")
        if footprint is None or footprint.is_empty:
            continue
        xs, ys = outline(footprint)
        if not xs:
            continue
        room_id = int(room["room_id"])
        value = values.get(room_id, {}).get(metric)
        hover = f"<b>{room['name']}</b><br>{metric}: {format_value(value, unit)}"
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", fill="toself", fillcolor=colour_for(metric, value),
            line={"color": OUTLINE, "width": 1}, name=str(room["name"]), text=hover,
            customdata=[room_id] * len(xs), hoveron="fills+points",
            hovertemplate=hover + "<extra></extra>", showlegend=False,
        ))
        point = footprint.representative_point()
        label = str(room["name"]) if value is None else f"{room['name']}<br><b>{format_value(value, unit)}</b>"
        labels.append({"x": point.x, "y": point.y, "text": label, "showarrow": False,
                       "font": {"size": 10, "color": "#263238"}})
    fig.update_layout(
        annotations=[*labels, legend_annotation(metric)] if labels else [
            legend_annotation(metric),
            {"text": "no room footprints on this storey", "showarrow": False, "xref": "paper", "yref": "paper",
             "x": 0.5, "y": 0.5},
        ],
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        plot_bgcolor="white",
        hovermode="closest",
        uirevision=uirevision,
    )
    return fig


def legend_annotation(metric: str) -> dict[str, Any]:
    """The colour buckets of ``metric`` (plus "no data") as one line of text above the plot."""
    scale = scale_for(metric)
    swatches = [f'<span style="color:{b.colour}">■</span> {b.label}' for b in scale.legend]
    swatches.append(f'<span style="color:{NO_DATA}">■</span> no data')
    source = f"  ({scale.source})" if scale.source else ""
    return {"text": f"<b>{metric}</b>  " + "   ".join(swatches) + source, "showarrow": False,
            "xref": "paper", "yref": "paper", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom"}


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
        return int(data) if data is not None else None
    except (TypeError, ValueError):
        return None


def series_figure(
    points: Sequence[tuple[datetime, float, float, float]], metric: str, unit: str
) -> go.Figure:
    """Mean line with a min–max band, from ``(bucket, mean, min, max)`` rollups, oldest first.

    The edges of the metric's colour bands are drawn as dotted reference lines.
    """
    fig = go.Figure()
    ts = [p[0] for p in points]
    fig.add_trace(go.Scatter(x=ts, y=[p[3] for p in points], mode="lines", line={"width": 0},
                             hoverinfo="skip", showlegend=False, name="max"))
    fig.add_trace(go.Scatter(x=ts, y=[p[2] for p in points], mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(100, 181, 246, 0.3)", hoverinfo="skip", name="min–max"))
    fig.add_trace(go.Scatter(x=ts, y=[p[1] for p in points], mode="lines+markers", name="mean",
                             line={"color": "#1565c0"},
                             hovertemplate=f"%{{x|%H:%M}}  %{{y:.1f}} {unit}<extra></extra>"))
    for edge in sorted({e for b in scale_for(metric).bands for e in (b.low, b.high) if math.isfinite(e)}):
        fig.add_hline(y=edge, line={"dash": "dot", "color": "#90a4ae", "width": 1})
    fig.update_layout(
        yaxis_title=f"{metric} ({unit})" if unit else metric,
        margin={"l": 50, "r": 10, "t": 20, "b": 40},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": 1.1},
    )
    if not points:
        fig.add_annotation(text="no data in this period", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    return fig
