"""The seed plans' KPIs per school: live coverage, and the daily KPIs stored for trends.

- IoT coverage: teaching rooms (classrooms and labs) with a reporting environment sensor / teaching rooms.
- Smart-lighting coverage: classrooms whose luminaires all report (at least one) / classrooms.
- Interactive-panel coverage: classrooms with a reporting panel / classrooms.

A device *reports* when its latest reading is younger than ``REPORTING_WINDOW``. Each KPI
is a fraction against a 100 % target; ``None`` when the school has nothing to count.

The daily KPIs (``kpi_daily``; computed by ``twin.monitoring.kpi_job``, docs/monitoring.md) add
lighting compliance and data completeness, with numerator and denominator kept so that
network and monthly figures are sums, not means of ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

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


@dataclass(frozen=True, slots=True)
class CoverageKpis:
    """Live coverage per site and for the network: counts (``teaching_rooms``, ``iot_rooms``, ``classrooms``,
    ``lit_classrooms``, ``panel_classrooms``) and each KPI as a fraction (None: nothing to count), against
    ``target``."""

    sites: dict[str, dict[str, float | None]]
    network: dict[str, float | None]
    target: float


def site_kpis(conn: psycopg.Connection, *, window: timedelta = REPORTING_WINDOW,
              now: datetime | None = None) -> CoverageKpis:
    """Coverage KPIs now, per site and for the network, against the 100 % target."""
    counts = coverage_counts(conn, window=window, now=now)
    sites = {s: {**c, **ratios(c)} for s, c in counts.items()}
    network = network_counts(counts.values())
    return CoverageKpis(sites, {**network, **ratios(network)}, TARGET)


# -- daily KPIs (stored for trends and the monthly report) -----------------------------------------------

NETWORK = "*"
#: Stored daily, per site and for the network (``scope = '*'``), in this order.
DAILY_KPIS = ("iot_coverage", "lighting_coverage", "panel_coverage", "lighting_compliance", "data_completeness")

_DAY_COVERAGE = _QUERY.replace(
    "coalesce((SELECT max(l.ts) FROM latest l WHERE l.device_id = d.id) >= %(since)s, false) AS reporting",
    "EXISTS (SELECT 1 FROM rollup_1h h WHERE h.device_id = d.id AND h.bucket >= %(since)s AND h.bucket < %(until)s)"
    " AS reporting")


def day_coverage(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """Coverage counts per site where *reporting* means: sent data in ``[start, end)`` (hour-aligned)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_DAY_COVERAGE, {"since": start, "until": end, "lum": list(LUMINAIRES)}).fetchall()
    return {r.pop("site_id"): {k: int(v) for k, v in r.items()} for r in rows}


def messages_per_device(conn: psycopg.Connection, start: datetime, end: datetime) -> list[tuple[str, int, str, int]]:
    """``(site, device, kind, messages)`` for every device: messages = the most readings of any one metric."""
    return [(s, d, k, int(n)) for s, d, k, n in conn.execute(
        """SELECT d.site_id, d.id, d.kind, coalesce(max(t.n), 0) FROM devices d
           LEFT JOIN (SELECT device_id, metric_id, sum(n) AS n FROM rollup_1h WHERE bucket >= %s AND bucket < %s
                      GROUP BY 1, 2) t ON t.device_id = d.id
           WHERE d.removed_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2""", (start, end)).fetchall()]


def first_heard(conn: psycopg.Connection, start: datetime, end: datetime, *,
                exact_after: datetime | None = None) -> dict[int, datetime]:
    """Device key -> when it first sent anything in ``[start, end)`` (devices silent there are absent).

    The hour comes from the hourly rollups; where that hour is after ``exact_after``, the
    minute rollups of that one hour give the minute.
    """
    return dict(conn.execute(
        """WITH h AS (SELECT device_id, min(bucket) AS hour FROM rollup_1h
                      WHERE bucket >= %(start)s AND bucket < %(end)s GROUP BY 1)
           SELECT h.device_id, CASE WHEN %(exact)s::timestamptz IS NOT NULL AND h.hour >= %(exact)s
             THEN coalesce((SELECT min(m.bucket) FROM rollup_1m m WHERE m.device_id = h.device_id
                            AND m.bucket >= h.hour AND m.bucket < h.hour + interval '1 hour'), h.hour)
             ELSE h.hour END
           FROM h""",
        {"start": start, "end": end, "exact": exact_after}).fetchall())


def store_day(conn: psycopg.Connection, day: date, scope: str, values: Mapping[str, tuple[float, float]],
              targets: Mapping[str, float] | None = None) -> None:
    """Store ``kpi -> (numerator, denominator)`` of one day and scope (replacing what was there)."""
    targets = targets or {}
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO kpi_daily (day, scope, kpi, numerator, denominator, value, target)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (day, scope, kpi) DO UPDATE SET numerator = excluded.numerator,
                 denominator = excluded.denominator, value = excluded.value, target = excluded.target,
                 computed_at = now()""",
            [(day, scope, k, num, den, (num / den if den else None), targets.get(k, TARGET))
             for k, (num, den) in values.items()])


def store_room_lighting(conn: psycopg.Connection, day: date, rows: Iterable[tuple[Any, ...]]) -> None:
    """``(room_id, site_id, occupied_minutes, desk_lux, desk_uniformity, blackboard_lux, blackboard_uniformity,
    compliant)`` of classrooms measured on ``day``."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO room_lighting_daily (day, room_id, site_id, occupied_minutes, desk_lux, desk_uniformity,
                 blackboard_lux, blackboard_uniformity, compliant) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (day, room_id) DO UPDATE SET occupied_minutes = excluded.occupied_minutes,
                 desk_lux = excluded.desk_lux, desk_uniformity = excluded.desk_uniformity,
                 blackboard_lux = excluded.blackboard_lux, blackboard_uniformity = excluded.blackboard_uniformity,
                 compliant = excluded.compliant""",
            [(day, *r) for r in rows])


def stored_days(conn: psycopg.Connection, scope: str, first: date, last: date) -> list[dict[str, Any]]:
    """Stored daily KPIs of a scope in ``[first, last]``, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT day, kpi, numerator, denominator, value, target FROM kpi_daily
               WHERE scope = %s AND day >= %s AND day <= %s ORDER BY day, kpi""", (scope, first, last)).fetchall()


@dataclass(frozen=True, slots=True)
class DayKpi:
    """One stored KPI of one day: its scope (a site id, or :data:`NETWORK`), numerator, denominator and
    value (``numerator / denominator``; None when there was nothing to count)."""

    scope: str
    kpi: str
    numerator: float
    denominator: float
    value: float | None


def day_kpis(conn: psycopg.Connection, day: date, *, site: str | None = None) -> list[DayKpi]:
    """The KPIs stored for ``day``, of every scope or of ``site`` only: the network first, then by site and KPI."""
    with conn.cursor(row_factory=class_row(DayKpi)) as cur:
        return cur.execute(
            """SELECT scope, kpi, numerator, denominator, value FROM kpi_daily
               WHERE day = %s AND (%s::text IS NULL OR scope = %s) ORDER BY scope = %s DESC, scope, kpi""",
            (day, site, site, NETWORK)).fetchall()


def latest_stored(conn: psycopg.Connection) -> dict[str, dict[str, float | None]]:
    """The newest stored day's KPIs per scope: ``{scope: {kpi: value}}``."""
    rows = conn.execute(
        """SELECT k.scope, k.kpi, k.value FROM kpi_daily k
           JOIN (SELECT scope, max(day) AS day FROM kpi_daily GROUP BY scope) m ON m.scope = k.scope AND m.day = k.day
        """).fetchall()
    out: dict[str, dict[str, float | None]] = {}
    for scope, kpi, value in rows:
        out.setdefault(scope, {})[kpi] = value
    return out


@dataclass(frozen=True, slots=True)
class StoredKpi:
    """A KPI of the newest day stored for its scope: the day, numerator, denominator and value
    (``numerator / denominator``; None when the day had nothing to count, e.g. no classroom measured in a lesson)."""

    day: date
    numerator: float
    denominator: float
    value: float | None


def latest_days(conn: psycopg.Connection) -> dict[str, dict[str, StoredKpi]]:
    """The newest stored day's KPIs per scope, with their counts: ``{scope: {kpi: StoredKpi}}``; a scope
    the KPI job has never computed is absent."""
    rows = conn.execute(
        """SELECT k.scope, k.kpi, k.day, k.numerator, k.denominator, k.value FROM kpi_daily k
           JOIN (SELECT scope, max(day) AS day FROM kpi_daily GROUP BY scope) m ON m.scope = k.scope AND m.day = k.day
        """).fetchall()
    out: dict[str, dict[str, StoredKpi]] = {}
    for scope, kpi, day, numerator, denominator, value in rows:
        out.setdefault(scope, {})[kpi] = StoredKpi(day, numerator, denominator, value)
    return out


def days_complete(conn: psycopg.Connection, scope: str, first: date, last: date,
                  day_end: Callable[[date], datetime]) -> set[date]:
    """Days in ``[first, last]`` whose KPIs were computed after the day had ended (so are final)."""
    rows = conn.execute("SELECT day, min(computed_at) FROM kpi_daily WHERE scope = %s AND day >= %s AND day <= %s "
                        "GROUP BY day", (scope, first, last)).fetchall()
    return {day for day, at in rows if at >= day_end(day)}


def room_lighting(conn: psycopg.Connection, site_id: str, first: date, last: date) -> list[dict[str, Any]]:
    """Per classroom over ``[first, last]``: days measured, days compliant, mean desk/blackboard lux and uniformity."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT r.name AS room, count(*) AS days, count(*) FILTER (WHERE l.compliant) AS compliant_days,
                      avg(l.desk_lux) AS desk_lux, avg(l.desk_uniformity) AS desk_uniformity,
                      avg(l.blackboard_lux) AS blackboard_lux, avg(l.blackboard_uniformity) AS blackboard_uniformity
               FROM room_lighting_daily l JOIN rooms r ON r.id = l.room_id
               WHERE l.site_id = %s AND l.day >= %s AND l.day <= %s GROUP BY r.id, r.name ORDER BY r.name, r.id""",
            (site_id, first, last)).fetchall()
