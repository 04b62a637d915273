"""Small self-contained SVG charts for the monthly report, pure (strings in, an ``<svg>`` string out).

No scripts, fonts or links: the report opens offline and prints to PDF from any browser.

    >>> bar_chart([("Room 1", 0.5)], title="compliance").startswith("<svg")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 640
BAR_H, GAP = 18, 6
LABEL_W = 210
COLOURS = ("#2f6fb0", "#d9822b", "#3a9e5c", "#b03a48", "#7d5ba6")


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, scale: float = 1.0, target: float | None = None,
              fmt: str = "percent") -> str:
    """Horizontal bars, one per ``(label, value)``; ``scale`` is the value of a full bar; an optional target line."""
    height = 28 + len(items) * (BAR_H + GAP) + 10
    span = WIDTH - LABEL_W - 70
    out = [f'<svg width="{WIDTH}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
           f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 28 + i * (BAR_H + GAP)
        w = max(0.0, min(1.0, value / scale if scale else 0.0)) * span
        text = _pct(value) if fmt == "percent" else f"{value:g}"
        out += [f'<text x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>',
                f'<rect x="{LABEL_W}" y="{y}" width="{span}" height="{BAR_H}" fill="#eee"/>',
                f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{COLOURS[0]}"/>',
                f'<text x="{LABEL_W + span + 6}" y="{y + 13}">{escape(text)}</text>']
    if target is not None and scale:
        x = LABEL_W + min(1.0, target / scale) * span
        out.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{height - 6}" stroke="#b03a48" '
                   'stroke-dasharray="4 3"/>')
    out.append("</svg>")
    return "".join(out)


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str,
               target: float | None = 1.0) -> str:
    """Lines over days (fractions 0..1, ``None`` = gap), with a legend and the target as a dashed line."""
    height, left, top, plot_h = 260, 40, 30, 170
    plot_w = WIDTH - left - 20
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, v)))

    out = [f'<svg width="{WIDTH}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="0" y="16" font-weight="bold" font-size="12">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for frac in (0.0, 0.5, 1.0):
        out.append(f'<text x="{left - 4}" y="{y(frac) + 4:.1f}" text-anchor="end">{_pct(frac)}</text>')
    if target is not None:
        out.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{left + plot_w}" y2="{y(target):.1f}" '
                   'stroke="#b03a48" stroke-dasharray="4 3"/>')
    step = max(1, n // 8)
    for i in range(0, len(labels), step):
        out.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(labels[i])}</text>')
    for k, (name, values) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        path, pen = [], "M"
        for i, v in enumerate(values):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{x(i):.1f},{y(v):.1f}")
            pen = "L"
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        lx = left + (k % 3) * 200
        ly = top + plot_h + 30 + (k // 3) * 14
        out += [f'<rect x="{lx}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>',
                f'<text x="{lx + 14}" y="{ly + 1}">{escape(name)}</text>']
    out.append("</svg>")
    return "".join(out)
