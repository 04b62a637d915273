"""The 3D building: rooms extruded from their footprints, coloured by a metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import shapely

from dashboard.figures.floorplan import RoomShape, polygons_of
from dashboard.figures.judging import FONT, OUTLINE, Figure, colour_for, metric_text
from dashboard.i18n import t
from twin.monitoring.site_standards import SiteStandards


class BuildingRoomShape(RoomShape, Protocol):
    """A room of a building for the 3D view (:class:`twin.storage.plans.BuildingRoom`)."""

    @property
    def storey(self) -> str: ...
    @property
    def elevation_m(self) -> float: ...
    @property
    def height_m(self) -> float | None: ...


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
