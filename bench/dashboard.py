"""Benchmark: server-side latency of the floor-plan and 30-day chart callbacks against bare SQL.

Builds a twin with one storey of ``--rooms`` classrooms (default 200; a sensor, a
luminaire and a panel each, with live values) and 30 days of history for one room
(10-minute readings written through the ingest path, so the rollups are the real ones;
the other rooms get hourly and minute rollups as filler). Then, on the same database:

- ``floorplan_callback_s``: the floor-plan callback drawing the storey (storey picked),
  through Dash's HTTP endpoint in-process (dispatch, queries, figure, JSON encoding; the
  response is not parsed, as the bare queries' results are not used), median.
- ``floorplan_refresh_s``: the same callback on a live tick (values read, diffed, a patch).
- ``floorplan_bare_query_s``: bare SQL for the same data (rooms with footprints, latest
  values per room, room device health, the storey's devices), fetched, median.
- ``chart_callback_s`` / ``chart_bare_query_s``: the room chart over 30 days (1-hour
  rollups) against the bare rollup query.

Prints one JSON object (progress on stderr); target: ratios <= 3 and callbacks < 0.1 s::

    python bench/dashboard.py                 # embedded PostgreSQL in a temporary folder
    python bench/dashboard.py --tiny          # smoke size
    CAMPUS_TWIN_DATABASE_URL=postgresql://... python bench/dashboard.py

The callbacks are called as a logged-in viewer (the bench makes the user ``bench-viewer`` and
logs in through the login form), so the session and CSRF checks are part of what is measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql
from shapely.geometry import box

# This script is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from dashboard.app import close_app, create_app
from twin.database import connect
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.metrics import BY_NAME
from twin.storage import users
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter
from twin.storage.schema import migrate

TARGET_RATIO = 3.0
TARGET_S = 0.1
METRICS = {m: BY_NAME[m].metric_id for m in ("co2", "temperature", "occupancy", "illuminance")}

BARE_FLOORPLAN = (
    """SELECT id, name, footprint FROM rooms WHERE storey_id = %(storey)s AND removed_at IS NULL ORDER BY name""",
    """SELECT d.room_id, l.metric_id, avg(l.value) FROM latest l JOIN devices d ON d.id = l.device_id
       WHERE d.room_id IN (SELECT id FROM rooms WHERE storey_id = %(storey)s) GROUP BY 1, 2""",
    """SELECT d.room_id, count(*) FILTER (WHERE st.state = 'online'), count(*) FROM devices d
       LEFT JOIN device_status st ON st.device_id = d.id
       WHERE d.room_id IN (SELECT id FROM rooms WHERE storey_id = %(storey)s) GROUP BY 1""",
    """SELECT d.device_id, d.kind, d.room_id, d.x, d.y, st.state FROM devices d JOIN rooms r ON r.id = d.room_id
       LEFT JOIN device_status st ON st.device_id = d.id WHERE r.storey_id = %(storey)s""",
)
BARE_CHART = """SELECT r.bucket, sum(r.sum) / sum(r.n), min(r.min), max(r.max) FROM rollup_1h r
    JOIN devices d ON d.id = r.device_id WHERE d.room_id = %(room)s AND r.metric_id = %(metric)s
    AND r.bucket >= %(start)s AND r.bucket < %(end)s GROUP BY r.bucket ORDER BY r.bucket"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def campus(rooms: int) -> TwinModel:
    """One storey of ``rooms`` classrooms on a grid of 8 x 6 m boxes, three devices each."""
    columns = max(1, math.ceil(math.sqrt(rooms * 2)))
    room_list, devices = [], []
    for i in range(rooms):
        x, y = (i % columns) * 9.0, (i // columns) * 7.0
        gid = f"R{i:04d}"
        room_list.append(Room(gid, "S1", f"{100 + i}", use="classroom", footprint=box(x, y, x + 8, y + 6),
                              area_m2=48.0, height_m=3.2))
        for kind, cls, dx in (("env_sensor", "IfcSensor", 1), ("luminaire", "IfcLightFixture", 4),
                              ("panel", "IfcAudioVisualAppliance", 7)):
            devices.append(Device(f"{kind[:3].upper()}-{i:04d}", f"G-{kind}-{i}", kind, cls, room_global_id=gid,
                                  storey_global_id="S1", mapping="containment", x=x + dx, y=y + 3, z=1.0))
    return TwinModel(Site("bench", "Bench school"), (Building("B1", "Main"),), (Storey("S1", "B1", "1F", 0.0),),
                     tuple(room_list), tuple(devices))


def populate(url: str, rooms: int, days: int) -> tuple[int, int]:
    """Save the campus, live values for every room, 30 days of history; return (storey id, chart room id)."""
    now = datetime.now(UTC)
    with connect(url) as conn:
        migrate(conn)
        conn.commit()
        save_model(conn, campus(rooms))
        conn.commit()
        keys = device_keys(conn)
        writer = ReadingWriter(conn)
        live = [(now - timedelta(seconds=5), keys["bench", f"ENV-{i:04d}"], metric, value)
                for i in range(rooms) for metric, value in ((METRICS["co2"], 600.0 + 5 * i),
                                                            (METRICS["temperature"], 21.0 + (i % 9)),
                                                            (METRICS["occupancy"], float(i % 40)),
                                                            (METRICS["illuminance"], 250.0 + i))]
        live += [(now - timedelta(seconds=5), keys["bench", f"LUM-{i:04d}"], BY_NAME["on"].metric_id, 1.0)
                 for i in range(rooms)]
        with conn.transaction():
            writer.write(live)
        sensor = keys["bench", "ENV-0000"]
        step = timedelta(minutes=10)
        start = now - timedelta(days=days)
        history = [(start + k * step, sensor, METRICS["co2"], 500.0 + (k % 144) * 5)
                   for k in range(int(timedelta(days=days) / step))]
        for chunk in range(0, len(history), 5000):
            with conn.transaction():
                writer.write(history[chunk:chunk + 5000])
        others = [keys["bench", f"ENV-{i:04d}"] for i in range(1, rooms)]
        with conn.transaction():  # filler: the other rooms' rollups, so the tables have a realistic size
            for table, unit, span in (("rollup_1h", "hour", f"{days} days"), ("rollup_1m", "minute", "1 day")):
                conn.execute(
                    sql.SQL("""INSERT INTO {} (device_id, metric_id, bucket, n, sum, min, max)
                        SELECT d, %s, b, 6, 6 * 700, 600, 800 FROM unnest(%s::int[]) AS d,
                        generate_series(date_trunc(%s, now() - %s::interval), now(), ('1 ' || %s)::interval) AS b
                        ON CONFLICT DO NOTHING""").format(sql.Identifier(table)),
                    (METRICS["co2"], others, unit, span, unit))
        conn.execute("ANALYZE")
        conn.commit()
        storey = conn.execute("SELECT id FROM storeys WHERE global_id = 'S1'").fetchone()[0]
        room = conn.execute("SELECT room_id FROM devices WHERE id = %s", (sensor,)).fetchone()[0]
    return storey, room


def timed(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (a, b, c, a, b, c, ...) after 3 warm-up turns,
    so that a busy spell on a shared machine hits a callback and its bare query alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for turn in range(repeat + 3):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if turn >= 3:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


BENCH_USER = "bench-viewer"


def login(client: Any, url: str) -> dict[str, str]:
    """Log in as a viewer through the real login form (made, or given a new password, here);
    the headers a browser sends on callback POSTs. Callbacks are measured with the session check."""
    password = secrets.token_urlsafe(16)
    with connect(url) as conn:
        if not users.set_password(conn, BENCH_USER, password):
            users.add_user(conn, BENCH_USER, "viewer", password)
        conn.commit()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"username": BENCH_USER, "password": password, "csrf_token": token})
    assert response.status_code == 302, f"login failed: HTTP {response.status_code}"
    return {"X-CSRFToken": client.get_cookie("_csrf_token").value}


def measure(url: str, storey: int, room: int, repeat: int) -> dict[str, Any]:
    app = create_app(url)
    client = app.server.test_client()
    headers = login(client, url)
    deps = client.get("/_dash-dependencies").get_json()
    floor_output = next(d["output"] for d in deps if d["output"].startswith("..site-floorplan.figure"))
    chart_output = next(d["output"] for d in deps if d["output"] == "room-series.figure")

    def floorplan_request(drawn: Any, trigger: str) -> dict[str, Any]:
        response = client.post("/_dash-update-component", json={
            "output": floor_output,
            "outputs": [{"id": "site-floorplan", "property": "figure"}, {"id": "site-drawn", "property": "data"}],
            "inputs": [{"id": "site-storey", "property": "value", "value": storey},
                       {"id": "site-metric", "property": "value", "value": "co2"},
                       {"id": "site-interval", "property": "n_intervals", "value": 1}],
            "state": [{"id": "site-drawn", "property": "data", "value": drawn}], "changedPropIds": [trigger]},
            headers=headers)
        assert response.status_code in (200, 204), response.status_code
        return response

    first = floorplan_request(None, "site-storey.value").get_json()
    drawn = first["response"]["site-drawn"]["data"]
    traces = len(first["response"]["site-floorplan"]["figure"]["data"])
    end = datetime.now(UTC)

    def chart_request() -> dict[str, Any]:
        response = client.post("/_dash-update-component", json={
            "output": chart_output, "outputs": {"id": "room-series", "property": "figure"},
            "inputs": [{"id": "room-metric", "property": "value", "value": "co2"},
                       {"id": "room-range", "property": "value", "value": "30d"},
                       {"id": "room-custom", "property": "start_date", "value": None},
                       {"id": "room-custom", "property": "end_date", "value": None},
                       {"id": "room-interval", "property": "n_intervals", "value": None}],
            "state": [{"id": "room-id", "property": "data", "value": room}], "changedPropIds": ["room-range.value"]},
            headers=headers)
        assert response.status_code == 200, response.status_code
        return response

    points = len(chart_request().get_json()["response"]["room-series"]["figure"]["data"][-1]["y"])
    with connect(url) as conn:
        def bare_floorplan() -> None:
            for query in BARE_FLOORPLAN:
                conn.execute(query, {"storey": storey}).fetchall()

        def bare_chart() -> None:
            conn.execute(BARE_CHART, {"room": room, "metric": METRICS["co2"], "start": end - timedelta(days=30),
                                      "end": datetime.now(UTC)}).fetchall()

        log("measuring callbacks and bare queries, in turns")
        times = timed({
            "floor_bare": bare_floorplan,
            "floor_cb": lambda: floorplan_request(None, "site-storey.value"),
            "refresh_cb": lambda: floorplan_request(drawn, "site-interval.n_intervals"),
            "chart_bare": bare_chart,
            "chart_cb": chart_request,
        }, repeat)
    floor_bare, floor_cb, refresh_cb = times["floor_bare"], times["floor_cb"], times["refresh_cb"]
    chart_bare, chart_cb = times["chart_bare"], times["chart_cb"]
    close_app(app)
    result = {
        "rooms": traces - 2, "chart_points": points, "repeat": repeat,
        "floorplan_callback_s": round(floor_cb, 5), "floorplan_refresh_s": round(refresh_cb, 5),
        "floorplan_bare_query_s": round(floor_bare, 5), "floorplan_ratio": round(floor_cb / floor_bare, 2),
        "floorplan_refresh_ratio": round(refresh_cb / floor_bare, 2),
        "chart_callback_s": round(chart_cb, 5), "chart_bare_query_s": round(chart_bare, 5),
        "chart_ratio": round(chart_cb / chart_bare, 2),
        "target_ratio": TARGET_RATIO, "target_s": TARGET_S,
    }
    result["meets_target"] = all(result[k] <= TARGET_RATIO for k in ("floorplan_ratio", "chart_ratio")) and all(
        result[k] < TARGET_S for k in ("floorplan_callback_s", "chart_callback_s"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--tiny", action="store_true", help="10 rooms, 2 days, 3 repeats (smoke test)")
    parser.add_argument("--database-url", default=os.environ.get("CAMPUS_TWIN_DATABASE_URL"))
    args = parser.parse_args()
    if args.tiny:
        args.rooms, args.days, args.repeat = 10, 2, 3
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        url = args.database_url
        if not url:
            from twin.embedded import start_embedded

            log("starting embedded PostgreSQL")
            url = start_embedded(Path(tmp) / "pgdata", database="bench_dashboard")
        log(f"populating: {args.rooms} rooms, {args.days} days of history")
        started = time.perf_counter()
        storey, room = populate(url, args.rooms, args.days)
        log(f"populated in {time.perf_counter() - started:.1f} s")
        result = measure(url, storey, room, args.repeat)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
