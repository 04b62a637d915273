"""The daily KPI job: compute one day's KPIs per school and for the network, and store them.

- IoT, smart-lighting and interactive-panel coverage: as ``twin.storage.kpis`` defines them,
  with *reporting* meaning: the device sent data that day.
- Lighting compliance: classrooms complying with GB 7793 in that day's occupied hours /
  classrooms measured (``twin.monitoring.lighting``); per-classroom results go to ``room_lighting_daily``.
- Data completeness: messages received / expected, over the devices that report telemetry
  (expected = the part of the day elapsed / the kind's reporting interval; a device's
  surplus does not make up for another's loss). A device first heard during the day, with
  nothing the day before (newly installed, or the twin just started), is expected from the
  minute it was first heard; one never heard is expected all day.

Numerators and denominators are stored, so the network's figure is the sum over schools.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta

import psycopg

from twin.monitoring.device_health import received_and_expected
from twin.monitoring.lighting import LIGHTING, room_lighting
from twin.monitoring.standards import Rule, season
from twin.storage import kpis, monitoring
from twin.timetable import SCHOOL_TZ, Timetable


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The school-local day as UTC instants."""
    start = datetime.combine(day, time(0), SCHOOL_TZ)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def compute_day(conn: psycopg.Connection, day: date, *, rules_for: Callable[[str], Mapping[str, Rule]],
                now: datetime | None = None, timetable: Timetable = Timetable()) -> dict[str, dict[str, float | None]]:
    """Compute and store the KPIs of ``day`` (up to ``now`` when it is today); return ``{scope: {kpi: value}}``."""
    now = now or datetime.now(UTC)
    start, end = day_bounds(day)
    until = min(end, max(start, now))
    counts = kpis.day_coverage(conn, start, end)
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for site_id, c in counts.items():
        for name, (num, den) in kpis.KPIS.items():
            totals[site_id][name] = [c[num], c[den]]
    heard = kpis.first_heard(conn, start - timedelta(days=1), end, exact_after=start)
    for site_id, device, kind, messages in kpis.messages_per_device(conn, start, end):
        counted = received_and_expected(kind, messages, start, until, heard.get(device))
        if counted is not None:
            pair = totals[site_id]["data_completeness"]
            pair[0] += counted[0]
            pair[1] += counted[1]
    lighting_metrics = sorted({rules_for("")[rid].metric for _, rid in LIGHTING})
    for site_id, zone in monitoring.sites(conn):
        rules = rules_for(site_id)
        season_name = season(day, zone)
        rows = []
        pair = totals[site_id]["lighting_compliance"]
        if timetable.school_day(day):
            hours = timetable.day_hours(day)
            minutes = monitoring.room_minutes(conn, site_id, lighting_metrics, hours[0], min(hours[1], until))
            for room in monitoring.rooms(conn, site_id):
                if room.use != "classroom" or room.room_id not in minutes:
                    continue
                result = room_lighting(rules, room, minutes[room.room_id], timetable=timetable,
                                       season_name=season_name)
                if result is None:
                    continue
                rows.append((room.room_id, site_id, result.occupied_minutes, result.desk_lux, result.desk_uniformity,
                             result.blackboard_lux, result.blackboard_uniformity, result.compliant))
                pair[0] += result.compliant
                pair[1] += 1
        kpis.store_room_lighting(conn, day, rows)
    out: dict[str, dict[str, float | None]] = {}
    network: dict[str, list[float]] = {k: [0.0, 0.0] for k in kpis.DAILY_KPIS}
    for site_id, values in totals.items():
        pairs = {k: (values[k][0], values[k][1]) for k in kpis.DAILY_KPIS}
        kpis.store_day(conn, day, site_id, pairs)
        out[site_id] = {k: (n / d if d else None) for k, (n, d) in pairs.items()}
        for k, (n, d) in pairs.items():
            network[k][0] += n
            network[k][1] += d
    kpis.store_day(conn, day, kpis.NETWORK, {k: (n, d) for k, (n, d) in network.items()})
    out[kpis.NETWORK] = {k: (n / d if d else None) for k, (n, d) in network.items()}
    return out
