"""The monthly report an education bureau receives: one self-contained HTML file per school and month.

Sections: the KPIs of the month against their 100 % targets (with the daily trend), lighting
compliance per classroom (GB 7793), alarm statistics, device availability. Monthly KPI
values are sums of the stored daily numerators over sums of denominators; days not yet
stored (or stored before they had ended) are computed first. Charts are inline SVG, there
are no scripts or links: the file opens offline, and a browser's "Print" gives a PDF. The page
is the Jinja2 template ``twin/monitoring/templates/report.html.j2`` (autoescaped).
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jinja2
import psycopg

from twin.monitoring.device_health import received_and_expected
from twin.monitoring.kpi_job import compute_day, day_bounds
from twin.monitoring.site_standards import SiteStandards, standards_for
from twin.monitoring.standards import SiteConfig
from twin.monitoring.svg_charts import bar_chart, line_chart
from twin.storage import alarms, kpis, monitoring, sites
from twin.storage import devices as device_store
from twin.storage.timetables import stored_timetable
from twin.timetable import SCHOOL_TZ

KPI_LABELS = {
    "iot_coverage": "IoT coverage", "lighting_coverage": "Smart-lighting coverage",
    "panel_coverage": "Interactive-panel coverage", "lighting_compliance": "Lighting compliance (GB 7793)",
    "data_completeness": "Data completeness",
}


class ReportError(ValueError):
    """A report that cannot be made (unknown site, month in the future)."""


def parse_month(text: str) -> tuple[int, int]:
    """``"2026-11"`` -> ``(2026, 11)``."""
    try:
        year, month = (int(x) for x in text.split("-"))
        date(year, month, 1)
    except ValueError:
        raise ReportError(f"not a month: {text!r} (use YYYY-MM, e.g. 2026-11)") from None
    if len(text) != 7:
        raise ReportError(f"not a month: {text!r} (use YYYY-MM, e.g. 2026-11)")
    return year, month


def percent(value: float | None) -> str:
    """``0.5`` -> ``"50.0%"``; small values keep two decimals; ``None`` -> ``"–"``."""
    if value is None:
        return "–"
    return f"{100 * value:.2f}%" if 0 < value < 0.01 else f"{100 * value:.1f}%"


def month_report(conn: psycopg.Connection, site_id: str, year: int, month: int, *, now: datetime | None = None,
                 config: SiteConfig | None = None) -> str:
    """Compute what is missing and return the report's HTML."""
    now = now or datetime.now(UTC)
    config = config or SiteConfig()
    site = sites.site(conn, site_id)
    if site is None:
        raise ReportError(f"unknown site {site_id!r}")
    first = date(year, month, 1)
    last = date(year, month, calendar.monthrange(year, month)[1])
    today = now.astimezone(SCHOOL_TZ).date()
    if first > today:
        raise ReportError(f"{year}-{month:02d} has not begun")
    last = min(last, today)
    final = kpis.days_complete(conn, kpis.NETWORK, first, last, lambda d: day_bounds(d)[1])
    day = first
    while day <= last:
        if day not in final:
            compute_day(conn, day, now=now, timetable=stored_timetable(conn),  # the demo's when it is stored
                        rules_for=lambda s: config.rules_for(s, monitoring.rule_overrides(conn, s) if s else None))
        day += timedelta(days=1)
    conn.commit()
    start, end = day_bounds(first)[0], min(day_bounds(last)[1], now)
    days = kpis.stored_days(conn, site_id, first, last)
    rooms = kpis.room_lighting(conn, site_id, first, last)
    month_alarms = alarms.month_alarms(conn, site_id, start, end)
    heard = kpis.first_heard(conn, start - timedelta(days=1), end, exact_after=start)
    devices = [(d, k, received_and_expected(k, n, start, end, heard.get(d)))
               for s, d, k, n in kpis.messages_per_device(conn, start, end) if s == site_id]
    names = device_store.device_ids(conn, site_id)
    return render(site_id=site_id, site_name=site.name, role=site.role, year=year, month=month, first=first, last=last,
                  days=days, rooms=rooms, month_alarms=month_alarms, devices=devices, device_names=names,
                  generated=now, standards=standards_for(conn, site_id, last, config=config))


def monthly_kpis(days: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float, float | None]]:
    """``kpi -> (numerator, denominator, value)`` summed over the month's days."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for d in days:
        sums[d["kpi"]][0] += d["numerator"]
        sums[d["kpi"]][1] += d["denominator"]
    return {k: (n, den, n / den if den else None) for k, (n, den) in sums.items()}


def availability(devices: Sequence[tuple[int, str, tuple[float, float] | None]]) -> list[dict[str, Any]]:
    """Per reporting device kind: devices, messages received / expected (``device_health.received_and_expected``)."""
    out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for _dev, kind, counted in devices:
        if counted is None:
            continue
        row = out[kind]
        row[0] += 1
        row[1] += counted[0]
        row[2] += counted[1]
    return [{"kind": k, "devices": int(v[0]), "received": v[1], "expected": v[2],
             "availability": v[1] / v[2] if v[2] else None} for k, v in sorted(out.items())]


def lighting_rules_text(standards: SiteStandards) -> str:
    """The site's GB 7793 lighting rules as a sentence: ``desk ≥ 300 lx, uniformity ≥ 0.7, blackboard ...``."""
    parts = []
    for name, rid, unit in (("desk", "desk_illuminance_low", " lx"), ("uniformity", "desk_uniformity_low", ""),
                            ("blackboard", "blackboard_illuminance_low", " lx"),
                            ("uniformity", "blackboard_uniformity_low", "")):
        rule = standards.rules.get(rid)
        if rule is None or not rule.enabled:
            continue
        low, high = rule.bounds(standards.season)
        parts += [f"{name} ≥ {low:g}{unit}"] if low is not None else []
        parts += [f"{name} ≤ {high:g}{unit}"] if high is not None else []
    return ", ".join(parts) or "no lighting rule (all switched off)"


def _count(value: float) -> str:
    """Whole numbers with thousands separators, fractions (expected messages) to one decimal."""
    return f"{value:,.0f}" if value == int(value) or value >= 1000 else f"{value:,.1f}"


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("twin.monitoring", "templates"), autoescape=True,
                                trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def render(*, site_id: str, site_name: str, role: str, year: int, month: int, first: date, last: date,
           days: Sequence[Mapping[str, Any]], rooms: Sequence[Mapping[str, Any]],
           month_alarms: Sequence[Mapping[str, Any]], devices: Sequence[tuple[int, str, tuple[float, float] | None]],
           device_names: Mapping[int, str], generated: datetime, standards: SiteStandards | None = None) -> str:
    """The report's HTML from the month's data (pure); ``standards``: the site's, whose lighting rules it states.

    The page is ``twin/monitoring/templates/report.html.j2``, autoescaped: names from the database are text there,
    only the inline SVG charts (escaped by :mod:`twin.monitoring.svg_charts`) are marked ``safe``."""
    standards = standards or SiteStandards(site_id, last)
    return _TEMPLATES.get_template("report.html.j2").render(
        site_id=site_id, site_name=site_name, role=role, period=f"{year}-{month:02d}", first=f"{first:%Y-%m-%d}",
        last=f"{last:%Y-%m-%d}", generated=f"{generated.astimezone(UTC):%Y-%m-%d %H:%M}",
        **_kpi_section(days), lighting=_lighting_section(rooms, standards), alarms=_alarm_section(month_alarms),
        devices=_device_section(devices, month_alarms, device_names))


def _kpi_section(days: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The month's KPIs against their 100 % targets, their bar chart and the daily trend."""
    month_kpis = monthly_kpis(days)
    rows = []
    for key, label in KPI_LABELS.items():
        num, den, value = month_kpis.get(key, (0.0, 0.0, None))
        rows.append({"label": label, "value": percent(value), "met": None if value is None else value >= 1.0 - 1e-9,
                     "counts": f"{_count(num)} / {_count(den)}"})
    by_day: dict[date, dict[str, float | None]] = defaultdict(dict)
    for d in days:
        by_day[d["day"]][d["kpi"]] = d["value"]
    labels = sorted(by_day)
    return {"kpis": rows,
            "kpi_chart": bar_chart([(KPI_LABELS[k], month_kpis.get(k, (0, 0, None))[2] or 0.0)
                                           for k in KPI_LABELS],
                                          title="KPIs of the month (dashed line: target 100%)", target=1.0),
            "daily_chart": line_chart([f"{d:%d}" for d in labels],
                                             [(KPI_LABELS[k], [by_day[d].get(k) for d in labels]) for k in KPI_LABELS],
                                             title="Daily KPIs")}


def _lighting_section(rooms: Sequence[Mapping[str, Any]], standards: SiteStandards) -> dict[str, Any] | None:
    """Lighting compliance per classroom (``None``: no classroom measured)."""
    if not rooms:
        return None
    rows = [[r["room"], r["days"], r["compliant_days"], percent(r["compliant_days"] / r["days"]),
             _fmt(r["desk_lux"], "lx"), _fmt(r["desk_uniformity"], "", 2), _fmt(r["blackboard_lux"], "lx"),
             _fmt(r["blackboard_uniformity"], "", 2)] for r in rooms]
    chart = bar_chart([(r["room"], r["compliant_days"] / r["days"]) for r in rooms],
                      title="Share of measured days compliant, per classroom", target=1.0)
    return {"rules": lighting_rules_text(standards), "rows": rows, "chart": chart}


def _alarm_section(month_alarms: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Alarm statistics per rule and the rooms with most alarms (``None``: no alarms)."""
    if not month_alarms:
        return None
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    minutes: dict[str, float] = defaultdict(float)
    for a in month_alarms:
        s = stats[a["rule"]]
        s["total"] += 1
        s[a["severity"]] += 1
        s["acknowledged"] += a["acked_at"] is not None
        s["cleared"] += a["cleared_at"] is not None
        if a["cleared_at"] is not None:
            minutes[a["rule"]] += (a["cleared_at"] - a["raised_at"]).total_seconds() / 60
    standard = {}
    for a in month_alarms:
        standard.setdefault(a["rule"], a["standard"] or "device health")
    rows = [[rule, standard[rule], s["total"], s["critical"], s["warning"], s["info"], s["acknowledged"],
             s["cleared"], _fmt(minutes[rule] / s["cleared"], "min") if s["cleared"] else "–"]
            for rule, s in sorted(stats.items())]
    top = max(s["total"] for s in stats.values())
    chart = bar_chart([(rule, s["total"]) for rule, s in sorted(stats.items())], title="Alarms per rule", scale=top,
                      fmt="count")
    return {"total": sum(s["total"] for s in stats.values()), "rows": rows, "chart": chart,
            "rooms": Counter(a["room"] for a in month_alarms if a["room"]).most_common(5)}


def _device_section(devices: Sequence[tuple[int, str, tuple[float, float] | None]],
                    month_alarms: Sequence[Mapping[str, Any]], device_names: Mapping[int, str]) -> dict[str, Any] | None:
    """Availability per device kind and the devices most often offline (``None``: no reporting devices)."""
    avail = availability(devices)
    if not avail:
        return None
    rows = [[a["kind"], a["devices"], f"{a['received']:.0f}", f"{a['expected']:.0f}", percent(a["availability"])]
            for a in avail]
    chart = bar_chart([(a["kind"], a["availability"] or 0.0) for a in avail], title="Availability per device kind",
                      target=1.0)
    offline = Counter(device_names.get(a.get("device_id"), a["device_id"]) for a in month_alarms
                      if a["rule"] == "device_offline" and a["device_id"])
    return {"rows": rows, "chart": chart, "offline": offline.most_common(10)}
