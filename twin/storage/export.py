"""Readings as CSV, streamed by the server (``COPY ... TO STDOUT``): memory stays flat.

Columns ``ts,site,device,room,metric,value,unit``; ``ts`` in ISO 8601 UTC with
microseconds (``2026-11-23T08:15:00.000000Z``), values as PostgreSQL prints doubles
(shortest exact form).

Text cells that a spreadsheet would run as a formula (they begin with ``=``, ``+``, ``-``, ``@``,
tab or carriage return: OWASP's "CSV injection" rule) get a single quote in front, in the query
itself so the export still streams; numbers are never touched (``-5`` stays a number).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

import psycopg

COLUMNS = ("ts", "site", "device", "room", "metric", "value", "unit")

#: Text cells go out as ``regexp_replace(x, '^([-=+@\t\r])', '''\1')``: a single quote in front of
#: a first character that makes a spreadsheet run the cell as a formula (OWASP). SQL text, no
#: formatting: the same expression for each text column.
_EXPORT = r"""COPY (
    SELECT to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts,
           regexp_replace(d.site_id, '^([-=+@\t\r])', '''\1') AS site,
           regexp_replace(d.device_id, '^([-=+@\t\r])', '''\1') AS device,
           regexp_replace(coalesce(rm.name, ''), '^([-=+@\t\r])', '''\1') AS room,
           regexp_replace(m.name, '^([-=+@\t\r])', '''\1') AS metric, r.value,
           regexp_replace(m.unit, '^([-=+@\t\r])', '''\1') AS unit
    FROM readings r
    JOIN devices d ON d.id = r.device_id
    JOIN metrics m ON m.metric_id = r.metric_id
    LEFT JOIN rooms rm ON rm.id = d.room_id
    WHERE d.site_id = %(site)s
      AND (%(device)s::text IS NULL OR d.device_id = %(device)s)
      AND (%(metric)s::text IS NULL OR m.name = %(metric)s)
      AND (%(start)s::timestamptz IS NULL OR r.ts >= %(start)s)
      AND (%(end)s::timestamptz IS NULL OR r.ts < %(end)s)
    ORDER BY r.ts, d.device_id, m.metric_id
) TO STDOUT WITH (FORMAT csv, HEADER)"""


@dataclass(frozen=True, slots=True)
class ExportFilter:
    site: str
    device: str | None = None
    metric: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive


def export_csv(conn: psycopg.Connection, out: BinaryIO, f: ExportFilter,
               progress: Callable[[int], None] | None = None) -> int:
    """Write the readings matching ``f`` to ``out`` as CSV with a header; return the rows written."""
    params = {"site": f.site, "device": f.device, "metric": f.metric, "start": f.start, "end": f.end}
    written = 0
    with conn.cursor() as cur:
        with cur.copy(_EXPORT, params) as copy:
            for chunk in copy:
                out.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written)
        rows = cur.rowcount
    return max(rows, 0)
