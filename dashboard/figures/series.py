"""A room's time series: mean line, min–max band and the rules' bands behind; the same series as CSV.

The chart's time axis is in the site's zone (wall-clock time, the zone named in the axis title);
the CSV stays UTC (ISO 8601). A gap in the data (more than 2 buckets missing) is a break in the
lines, not a straight line across it.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from dashboard.figures.judging import FONT, GOOD, STATUS_COLOURS, Figure
from dashboard.i18n import t
from dashboard.localtime import date_axis, local, time_header
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


#: A break is drawn where more than this many buckets in a row are missing.
GAP_BUCKETS = 2


def axis_time(value: datetime, zone: ZoneInfo | None) -> datetime:
    """``value`` as the chart's x axis draws it: naive wall-clock time in ``zone`` (naive UTC when None)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (local(aware, zone) if zone is not None else aware.astimezone(UTC)).replace(tzinfo=None)


def with_breaks(points: Sequence[tuple[datetime, float, float, float]], interval: timedelta | None
                ) -> list[tuple[datetime, float | None, float | None, float | None]]:
    r"""``points`` with a ``(time, None, None, None)`` break after each gap of more than
    :data:`GAP_BUCKETS` ``interval``\ s (no breaks without an interval).

    >>> t0 = datetime(2026, 11, 23, tzinfo=UTC)
    >>> [p[1] for p in with_breaks([(t0, 1, 1, 1), (t0 + timedelta(minutes=5), 2, 2, 2)], timedelta(minutes=1))]
    [1, None, 2]
    """
    out: list[tuple[datetime, float | None, float | None, float | None]] = []
    for point in points:
        if interval and out and point[0] - out[-1][0] > GAP_BUCKETS * interval:
            out.append((out[-1][0] + interval, None, None, None))
        out.append(point)
    return out


def series_figure(points: Sequence[tuple[datetime, float, float, float]], metric: str, unit: str, *,
                  lang: str = "en", source: str = "", bands: Sequence[RuleBand] = (),
                  interval: timedelta | None = None, zone: ZoneInfo | None = None) -> Figure:
    """Mean line with a min–max band from ``(bucket, mean, min, max)`` rollups, oldest first.

    The room's rules (``bands``: :meth:`twin.monitoring.site_standards.SiteStandards.bands` of its use)
    are drawn behind as translucent bands (green met, yellow or red broken, by severity)
    over the shown value range; ``source`` names the rollup read. ``interval``: the rollup's bucket,
    to break the lines where buckets are missing; ``zone``: the site's zone, for the time axis.
    """
    shown = with_breaks(points, interval)
    # Contiguous numpy arrays: the figure is plain JSON for orjson (Dash's fast path), no per-point work
    ts = np.array([axis_time(p[0], zone) for p in shown], dtype="datetime64[s]")
    mean, low, high = np.array([[np.nan if v is None else v for v in p[1:]] for p in shown],
                               dtype=float).reshape(-1, 3).T.copy()
    data = [
        {"type": "scatter", "x": ts, "y": high, "mode": "lines", "line": {"width": 0}, "connectgaps": False,
         "hoverinfo": "skip", "showlegend": False, "name": "max"},
        {"type": "scatter", "x": ts, "y": low, "mode": "lines", "line": {"width": 0}, "connectgaps": False,
         "fill": "tonexty", "fillcolor": "rgba(100, 181, 246, 0.35)", "hoverinfo": "skip", "name": t("min–max", lang)},
        {"type": "scatter", "x": ts, "y": mean, "mode": "lines", "name": t("mean", lang), "connectgaps": False,
         "line": {"color": "#1565c0", "width": 2},
         "hovertemplate": f"%{{x|%Y-%m-%d %H:%M}}  %{{y:.1f}} {unit}<extra></extra>"},
    ]
    edges = [e for b in bands for e in (b.low, b.high) if e is not None]
    values = [float(np.nanmin(low)), float(np.nanmax(high))] if points else []
    values += edges
    layout: dict[str, Any] = {
        "yaxis": {"title": {"text": f"{t(metric, lang)} ({unit})" if unit else t(metric, lang)}, "gridcolor": "#eceff1"},
        "xaxis": {"gridcolor": "#eceff1", "title": {"text": time_header(zone, lang) if zone else t("time", lang) + " (UTC)"},
                  **date_axis(lang)},
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
        layout["annotations"].append({"text": t("no data in this range", lang), "showarrow": False, "xref": "paper",
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
