"""The network map: the schools at their coordinates, linked to the headquarters, coloured by devices online."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from dashboard.figures.judging import DEVICE_HEALTH, FONT, OUTLINE, Figure, colour_for
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
