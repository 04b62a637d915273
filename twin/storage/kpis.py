"""The seed plans' coverage KPIs per school, computed simply (a fuller KPI engine may replace this).

- IoT coverage: teaching rooms (classrooms and labs) with a reporting environment sensor / teaching rooms.
- Smart-lighting coverage: classrooms whose luminaires all report (at least one) / classrooms.
- Interactive-panel coverage: classrooms with a reporting panel / classrooms.

A device *reports* when its latest reading is younger than ``REPORTING_WINDOW``. Each KPI
is a fraction against a 100 % target; ``None`` when the school has nothing to count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

#: A device whose newest reading is older than this does not count as reporting.
REPORTING_WINDOW = timedelta(minutes=15)
TARGET = 1.0
#: KPI name -> (numerator column, denominator column).
KPIS: dict[str, tuple[str, str]] = {
    "iot_coverage": ("iot_rooms", "teaching_rooms"),
    "lighting_coverage": ("lit_classrooms", "classrooms"),
    "panel_coverage": ("panel_classrooms", "classrooms"),
}
LUMINAIRES = ("luminaire", "blackboard_luminaire")

_QUERY = """
WITH rep AS (
    SELECT d.id, d.room_id, d.kind,
           coalesce((SELECT max(l.ts) FROM latest l WHERE l.device_id = d.id) >= %(since)s, false) AS reporting
    FROM devices d WHERE d.removed_at IS NULL AND d.room_id IS NOT NULL
), teaching AS (
    SELECT r.site_id, r.id, r.use,
           coalesce(bool_or(rep.kind = 'env_sensor' AND rep.reporting), false) AS env,
           count(rep.id) FILTER (WHERE rep.kind = ANY(%(lum)s)) AS lum,
           count(rep.id) FILTER (WHERE rep.kind = ANY(%(lum)s) AND rep.reporting) AS lum_reporting,
           coalesce(bool_or(rep.kind = 'panel' AND rep.reporting), false) AS panel
    FROM rooms r LEFT JOIN rep ON rep.room_id = r.id
    WHERE r.removed_at IS NULL AND r.use IN ('classroom', 'lab')
    GROUP BY r.site_id, r.id, r.use
)
SELECT s.site_id,
       count(t.id) AS teaching_rooms,
       count(t.id) FILTER (WHERE t.env) AS iot_rooms,
       count(t.id) FILTER (WHERE t.use = 'classroom') AS classrooms,
       count(t.id) FILTER (WHERE t.use = 'classroom' AND t.lum > 0 AND t.lum = t.lum_reporting) AS lit_classrooms,
       count(t.id) FILTER (WHERE t.use = 'classroom' AND t.panel) AS panel_classrooms
FROM sites s LEFT JOIN teaching t ON t.site_id = s.site_id
GROUP BY s.site_id ORDER BY s.site_id
"""


def coverage_counts(conn: psycopg.Connection, *, window: timedelta = REPORTING_WINDOW,
                    now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Per site: ``teaching_rooms``, ``iot_rooms``, ``classrooms``, ``lit_classrooms``, ``panel_classrooms``."""
    since = (now or datetime.now(UTC)) - window
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_QUERY, {"since": since, "lum": list(LUMINAIRES)}).fetchall()
    return {r.pop("site_id"): {k: int(v) for k, v in r.items()} for r in rows}


def ratios(counts: Mapping[str, int]) -> dict[str, float | None]:
    """The KPIs of one set of counts as fractions (None where the denominator is 0).

    >>> ratios({"iot_rooms": 3, "teaching_rooms": 4, "lit_classrooms": 0, "classrooms": 0, "panel_classrooms": 0})
    {'iot_coverage': 0.75, 'lighting_coverage': None, 'panel_coverage': None}
    """
    return {name: (counts[num] / counts[den] if counts[den] else None) for name, (num, den) in KPIS.items()}


def network_counts(per_site: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The counts of the whole network (1+N): sums over the schools."""
    total: dict[str, int] = {c: 0 for pair in KPIS.values() for c in pair}
    for counts in per_site:
        for column in total:
            total[column] += counts.get(column, 0)
    return total


def site_kpis(conn: psycopg.Connection, *, window: timedelta = REPORTING_WINDOW,
              now: datetime | None = None) -> dict[str, Any]:
    """``{"sites": {site_id: {counts..., kpi: fraction}}, "network": {...}}`` against the 100 % target."""
    counts = coverage_counts(conn, window=window, now=now)
    sites = {s: {**c, **ratios(c)} for s, c in counts.items()}
    network = network_counts(counts.values())
    return {"sites": sites, "network": {**network, **ratios(network)}, "target": TARGET}
