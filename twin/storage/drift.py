"""What the drift check reads: each device's means per step, with its room and storey, from ``rollup_1m``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import class_row

from twin.monitoring.drift import STEP, DeviceMean

_QUERY = """
SELECT d.id AS device, d.room_id, coalesce(ro.storey_id, d.storey_id) AS storey_id, m.name AS metric,
       date_bin(%(step)s, r.bucket, %(start)s) AS bucket, sum(r.sum) / sum(r.n) AS mean, sum(r.n)::integer AS n
FROM rollup_1m r
JOIN devices d ON d.id = r.device_id
JOIN metrics m ON m.metric_id = r.metric_id
LEFT JOIN rooms ro ON ro.id = d.room_id AND ro.removed_at IS NULL
WHERE d.site_id = %(site)s AND d.removed_at IS NULL AND m.name = ANY(%(metrics)s)
  AND r.bucket >= %(start)s AND r.bucket < %(end)s AND r.n > 0
GROUP BY 1, 2, 3, 4, 5
ORDER BY 4, 1, 5
"""


def neighbour_means(conn: psycopg.Connection, site_id: str, metrics: Sequence[str], start: datetime,
                    end: datetime, step: timedelta = STEP) -> list[DeviceMean]:
    """Per device of the site, metric of ``metrics`` and ``step`` of ``[start, end)`` (from ``start``):
    the mean of its 1-minute rollups, with the device's room and storey (the room's, else its own)."""
    with conn.cursor(row_factory=class_row(DeviceMean)) as cur:
        return cur.execute(_QUERY, {"site": site_id, "metrics": list(metrics), "start": start, "end": end,
                                    "step": step}).fetchall()
