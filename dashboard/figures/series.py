"""A room's time series: mean line, min–max band and the rules' bands behind; the same series as CSV."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from dashboard.figures.judging import FONT, GOOD, STATUS_COLOURS, Figure
from dashboard.i18n import t
from twin.monitoring.site_standards import STATUSES
from twin.monitoring.site_standards import Band as RuleBand
from twin.monitoring.standards import outside


def band_intervals(bands: Sequence[RuleBand], low: float, high: float) -> list[tuple[float, float, str]]:
    """The view ``[low, high]`` split at the rules' bounds: ``(from, to, colour)``, each piece coloured as
    the rules judge its values (worst broken rule's severity, else green).

    >>> from datetime import date
    >>> from dashboard.figures.judging import WARN
    >>> from twin.monitoring.site_standards import SiteStandards
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
