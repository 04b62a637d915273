"""Benchmark: the dashboard's pages on the 1 + 13 network, against bare SQL, bytes per refresh, publish -> screen.

Builds the network in the database as twin models (no IFC): 14 schools (``hq`` and ``m01``..``m13``), each
2 buildings x 5 storeys x (5 classrooms of 13 devices, an office, a toilet, a corridor), and in ``hq`` a
big storey of ``--rooms`` classrooms (default 200; a sensor, a luminaire and a panel each): 9,700
devices. Live values and status for every device (1 in 97 offline), two open alarms per school, a week of
daily KPIs, a week of hourly and a day of 1-minute rollups for every sensor, and a week of 10-minute
readings for one room of the big storey written through the ingest path (its rollups are the real ones).

Measured in-process (Flask test client, logged in as a viewer through the login form, so the session and
CSRF checks count), each against bare SQL fetching the same data, in turns, medians:

- ``overview_s`` / ``overview_ratio``: a refresh of the network page (every callback its interval fires).
- ``floorplan_callback_s`` / ``floorplan_ratio``: the floor plan drawing the big storey (storey picked);
  ``floorplan_refresh_s`` / ``floorplan_refresh_ratio``: the same on a live tick (a patch, or nothing).
- ``room_s`` / ``room_ratio``: a refresh of a classroom's page (summary, raw values, devices, commands and
  the 1-hour chart); ``chart_callback_s`` / ``chart_ratio``: the 30-day chart (1-hour rollups).
- ``devices_s`` / ``devices_ratio``: a refresh of the devices page (one page of results, all schools).
- ``*_refresh_bytes``: the bytes of one refresh of each page (the floor plan's after every room of the
  storey has a new value).
- ``screen_latency_p50_s`` / ``..._p95_s``: publish -> screen in headless Chromium, against the production
  server (``campus-twin dashboard --workers 2``, gunicorn) and an ingest worker: the watched room's sensor
  alternates between a red and a green CO2 value, and each sample is the time from the publish to the
  floor plan's fills changing (polled every 20 ms), while a publisher sends ``--rate`` messages a second
  of background telemetry to the other schools' sensors.

The callbacks are found in ``/_dash-dependencies`` by their outputs and their inputs filled from the page's
layout as the router renders it, so the pages may change their callbacks' signatures freely.

Prints one JSON object (progress on stderr). Targets: ratios <= 3, pages <= 0.3 s, a devices refresh
under 100 KB, screen latency p95 <= 2 s::

    python bench/dashboard.py                 # embedded PostgreSQL in a temporary folder, a private broker
    python bench/dashboard.py --tiny          # smoke size: 2 schools, 1 day
    CAMPUS_TWIN_DATABASE_URL=postgresql://... CAMPUS_TWIN_MQTT_URL=mqtt://... python bench/dashboard.py

The browser part runs when Chromium and chromedriver are installed (``--browser no`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# This script is named like the package it measures: keep its own folder off the import path, the project on it.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench._dashboard_network import HQ, METRIC, DashCaller, Network, Size, log, populate, screen_latency
from dashboard import ids
from dashboard.app import close_app, create_app
from twin.database import connect
from twin.storage import users
from twin.storage.model import device_keys
from twin.storage.readings import ReadingWriter

TARGET_RATIO = 3.0
TARGET_S = 0.3
TARGET_DEVICES_BYTES = 100_000
TARGET_SCREEN_P95_S = 2.0
METRICS = {m: METRIC[m] for m in ("co2", "temperature", "occupancy", "illuminance")}

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
#: The network page: schools with counts, live coverage, the newest daily KPIs, alarms and devices offline.
BARE_OVERVIEW = (
    """SELECT s.site_id, s.name, s.role, s.latitude, s.longitude,
              (SELECT count(*) FROM rooms r WHERE r.site_id = s.site_id AND r.removed_at IS NULL),
              count(d.id), count(d.id) FILTER (WHERE st.state = 'online')
       FROM sites s LEFT JOIN devices d ON d.site_id = s.site_id AND d.removed_at IS NULL
       LEFT JOIN device_status st ON st.device_id = d.id GROUP BY s.site_id ORDER BY s.site_id""",
    """SELECT r.site_id, count(DISTINCT r.id) FILTER (WHERE d.kind = 'env_sensor' AND l.ts >= now() - interval '15 min'),
              count(DISTINCT r.id) FILTER (WHERE d.kind = 'panel' AND l.ts >= now() - interval '15 min'),
              count(DISTINCT r.id)
       FROM rooms r LEFT JOIN devices d ON d.room_id = r.id
       LEFT JOIN LATERAL (SELECT max(ts) AS ts FROM latest WHERE device_id = d.id) l ON true
       WHERE r.use IN ('classroom', 'lab') AND r.removed_at IS NULL GROUP BY r.site_id""",
    """SELECT DISTINCT ON (scope, kpi) scope, kpi, day, numerator, denominator, value FROM kpi_daily
       ORDER BY scope, kpi, day DESC""",
    """SELECT site_id, severity, count(*) FROM alarms WHERE state <> 'closed' GROUP BY 1, 2""",
)
#: A classroom's page: the room, its latest values, its devices with status, commands, the last hour by the minute.
BARE_ROOM = (
    """SELECT r.id, r.name, r.use, r.area_m2, s.name, st.name, b.name FROM rooms r JOIN sites s USING (site_id)
       JOIN storeys st ON st.id = r.storey_id JOIN buildings b ON b.id = st.building_id WHERE r.id = %(room)s""",
    """SELECT d.device_id, d.kind, m.name, l.ts, l.value FROM latest l JOIN devices d ON d.id = l.device_id
       JOIN metrics m USING (metric_id) WHERE d.room_id = %(room)s ORDER BY d.device_id, m.name""",
    """SELECT d.device_id, d.kind, st.state, st.last_seen, st.battery_pct FROM devices d
       LEFT JOIN device_status st ON st.device_id = d.id WHERE d.room_id = %(room)s ORDER BY d.kind, d.device_id""",
    """SELECT c.id, d.device_id, c.action, c.sent_at, c.ok FROM commands c JOIN devices d ON d.id = c.device_id
       WHERE d.room_id = %(room)s ORDER BY c.sent_at DESC LIMIT 10""",
    """SELECT r.bucket, sum(r.sum) / sum(r.n), min(r.min), max(r.max) FROM rollup_1m r
       JOIN devices d ON d.id = r.device_id WHERE d.room_id = %(room)s AND r.metric_id = %(metric)s
       AND r.bucket >= now() - interval '1 hour' GROUP BY r.bucket ORDER BY r.bucket""",
)
#: The devices page: counts by state, one page of 50 sorted by state, the kinds, the unmapped lists and counts.
BARE_DEVICES = (
    """SELECT coalesce(st.state, 'unknown'), count(*) FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
       WHERE d.removed_at IS NULL GROUP BY 1""",
    """SELECT s.name, d.device_id, d.kind, r.name, b.name, coalesce(st.state, 'unknown') AS state, st.last_seen,
              st.battery_pct FROM devices d JOIN sites s USING (site_id) LEFT JOIN rooms r ON r.id = d.room_id
       LEFT JOIN storeys sy ON sy.id = r.storey_id LEFT JOIN buildings b ON b.id = sy.building_id
       LEFT JOIN device_status st ON st.device_id = d.id WHERE d.removed_at IS NULL
       ORDER BY state, d.site_id, d.device_id LIMIT 50""",
    """SELECT DISTINCT kind FROM devices WHERE removed_at IS NULL ORDER BY kind""",
    # the unmapped lists below the table (20 of each) and their counts, as the page shows them
    """SELECT split_part(topic, '/', 3), split_part(topic, '/', 4), count(*), min(received_at), max(received_at)
       FROM dead_letters WHERE reason LIKE 'unknown device%%' GROUP BY 1, 2 ORDER BY max(received_at) DESC LIMIT 20""",
    """SELECT d.site_id, d.device_id, d.kind, r.name FROM devices d LEFT JOIN rooms r ON r.id = d.room_id
       LEFT JOIN device_status st ON st.device_id = d.id WHERE d.removed_at IS NULL AND st.last_seen IS NULL
       AND NOT EXISTS (SELECT 1 FROM latest l WHERE l.device_id = d.id) ORDER BY 1, 2 LIMIT 20""",
    """SELECT site_id, device_id, kind, name, ifc_class FROM devices WHERE removed_at IS NULL
       AND mapping = 'unmapped' ORDER BY 1, 2 LIMIT 20""",
    """SELECT (SELECT count(DISTINCT topic) FROM dead_letters WHERE reason LIKE 'unknown device%%'),
              (SELECT count(*) FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
                WHERE d.removed_at IS NULL AND st.last_seen IS NULL
                  AND NOT EXISTS (SELECT 1 FROM latest l WHERE l.device_id = d.id)),
              (SELECT count(*) FROM devices WHERE removed_at IS NULL AND mapping = 'unmapped')""",
)


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


def bench_user(url: str) -> tuple[str, str]:
    """The viewer the bench logs in as (made, or given a new password, here): (name, password)."""
    password = secrets.token_urlsafe(16)
    with connect(url) as conn:
        if not users.set_password(conn, BENCH_USER, password):
            users.add_user(conn, BENCH_USER, "viewer", password)
        conn.commit()
    return BENCH_USER, password


def login(client: Any, url: str) -> dict[str, str]:
    """Log in as the viewer through the real login form; the headers a browser sends on callback POSTs.
    Callbacks are measured with the session check."""
    user, password = bench_user(url)
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    response = client.post("/login", data={"username": user, "password": password, "csrf_token": token})
    assert response.status_code == 302, f"login failed: HTTP {response.status_code}"
    return {"X-CSRFToken": client.get_cookie("_csrf_token").value}


def bare(conn: Any, queries: tuple[str, ...], **params: Any) -> Callable[[], None]:
    def run() -> None:
        for query in queries:
            conn.execute(query, params).fetchall()
    return run


def measure(url: str, net: Network, repeat: int) -> dict[str, Any]:
    """Every page's server-side time against its bare SQL, and the bytes of a refresh of each."""
    app = create_app(url)
    client = app.server.test_client()
    dash = DashCaller(client, login(client, url))
    floorplan = f"{ids.SITE_FLOORPLAN}.figure"
    chart = f"{ids.ROOM_SERIES}.figure"

    overview, overview_ticks = dash.page("/")
    site, site_ticks = dash.page(f"/site/{HQ}", f"?storey={net.big_storey}&metric=co2")
    site.update({(ids.SITE_STOREY, "value"): net.big_storey, (ids.SITE_METRIC, "value"): "co2",
                 (ids.SITE_DRAWN, "data"): None})
    room, room_ticks = dash.page(f"/room/{net.room}")
    chart_room, _ = dash.page(f"/room/{net.chart_room}")
    chart_room.update({(ids.ROOM_METRIC, "value"): "co2", (ids.ROOM_RANGE, "value"): "30d"})
    devices, devices_ticks = dash.page("/devices")

    first = dash.call(floorplan, site, f"{ids.SITE_STOREY}.value")
    drawn = first.get_json()["response"][ids.SITE_DRAWN]["data"]
    ticked = {**site, (ids.SITE_DRAWN, "data"): drawn}
    for page, ticks in ((overview, overview_ticks), (room, room_ticks), (devices, devices_ticks)):
        dash.refresh(page, ticks, 1)  # as the page's first tick: its stores filled
    points = len(dash.call(chart, chart_room, f"{ids.ROOM_RANGE}.value").get_json()["response"][
        ids.ROOM_SERIES]["figure"]["data"][-1]["y"])
    end = datetime.now(UTC)
    tick = iter(range(2, 10**6))
    with connect(url) as conn:
        log("measuring callbacks and bare queries, in turns")
        times = timed({
            "overview_bare": bare(conn, BARE_OVERVIEW),
            "overview": lambda: dash.refresh(overview, overview_ticks, next(tick)),
            "floor_bare": bare(conn, BARE_FLOORPLAN, storey=net.big_storey),
            "floor_cb": lambda: dash.call(floorplan, site, f"{ids.SITE_STOREY}.value"),
            "refresh_cb": lambda: dash.call(floorplan, ticked, f"{ids.SITE_INTERVAL}.n_intervals"),
            "room_bare": bare(conn, BARE_ROOM, room=net.room, metric=METRICS["co2"]),
            "room": lambda: dash.refresh(room, room_ticks, next(tick)),
            "chart_bare": lambda: conn.execute(BARE_CHART, {
                "room": net.chart_room, "metric": METRICS["co2"], "start": end - timedelta(days=30),
                "end": datetime.now(UTC)}).fetchall(),
            "chart_cb": lambda: dash.call(chart, chart_room, f"{ids.ROOM_RANGE}.value"),
            "devices_bare": bare(conn, BARE_DEVICES),
            "devices": lambda: dash.refresh(devices, devices_ticks, next(tick)),
        }, repeat)
    sent = {name: dash.refresh(page, ticks, next(tick)) for name, page, ticks in (
        ("overview", overview, overview_ticks), ("room", room, room_ticks), ("devices", devices, devices_ticks))}
    sent["floorplan"] = floorplan_refresh_bytes(url, net, dash, ticked, site_ticks)
    close_app(app)
    r = {"schools": net.sites, "devices": net.devices, "rooms": net.big_rooms, "chart_points": points,
         "repeat": repeat, "populate_s": round(net.populate_s, 1)}
    for key, cb, base in (("overview", "overview", "overview_bare"), ("floorplan", "floor_cb", "floor_bare"),
                          ("floorplan_refresh", "refresh_cb", "floor_bare"), ("room", "room", "room_bare"),
                          ("chart", "chart_cb", "chart_bare"), ("devices", "devices", "devices_bare")):
        name = {"floorplan": "floorplan_callback", "floorplan_refresh": "floorplan_refresh",
                "chart": "chart_callback"}.get(key, key)
        r[f"{name}_s"] = round(times[cb], 5)
        r[f"{key.replace('_refresh', '')}_bare_query_s"] = round(times[base], 5)
        r[f"{key}_ratio"] = round(times[cb] / times[base], 2)
    r.update({f"{name}_refresh_bytes": n for name, n in sent.items()})
    return r


def floorplan_refresh_bytes(url: str, net: Network, dash: DashCaller, props: dict[Any, Any],
                            ticks: list[str]) -> int:
    """The bytes of the floor plan's refresh after every room of the big storey has a new CO2 value."""
    with connect(url) as conn:
        keys = device_keys(conn)
        sensors = [v for (site, device), v in keys.items() if site == HQ and device.startswith("BIG-ENV-")]
        writer = ReadingWriter(conn)
        with conn.transaction():
            writer.write([(datetime.now(UTC), key, METRICS["co2"], 1400.0 + i % 7) for i, key in enumerate(sensors)])
    return dash.refresh(dict(props), ticks, 10**6)


def verdict(r: dict[str, Any]) -> dict[str, Any]:
    pages = ("overview", "floorplan", "room", "devices")
    seconds = ("overview_s", "floorplan_callback_s", "room_s", "devices_s")
    checks = [r[f"{p}_ratio"] <= TARGET_RATIO for p in pages] + [r[k] <= TARGET_S for k in seconds]
    checks.append(r["devices_refresh_bytes"] < TARGET_DEVICES_BYTES)
    if r.get("screen_latency_p95_s") is not None:
        checks.append(r["screen_latency_p95_s"] <= TARGET_SCREEN_P95_S)
    return {"target_ratio": TARGET_RATIO, "target_s": TARGET_S, "target_devices_refresh_bytes": TARGET_DEVICES_BYTES,
            "target_screen_latency_p95_s": TARGET_SCREEN_P95_S, "meets_target": all(checks)}


def has_browser() -> bool:
    return bool(shutil.which("chromedriver") and (shutil.which("chromium") or Path("/usr/bin/chromium").exists()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=14, help="the headquarters and the members")
    parser.add_argument("--rooms", type=int, default=200, help="classrooms of the headquarters' big storey")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--browser", choices=("auto", "yes", "no"), default="auto",
                        help="the publish -> screen latency (auto: when Chromium and chromedriver are installed)")
    parser.add_argument("--samples", type=int, default=20, help="screen latency samples")
    parser.add_argument("--rate", type=float, default=300.0, help="background telemetry, messages a second")
    parser.add_argument("--workers", type=int, default=2, help="the dashboard's gunicorn workers")
    parser.add_argument("--tiny", action="store_true",
                        help="2 schools of 2 classrooms, a 10-room big storey, 1 day, 3 repeats, 4 samples at 20 msg/s")
    parser.add_argument("--database-url", default=os.environ.get("CAMPUS_TWIN_DATABASE_URL"))
    parser.add_argument("--mqtt-url", default=os.environ.get("CAMPUS_TWIN_MQTT_URL"))
    args = parser.parse_args()
    size = Size(schools=args.schools, big_rooms=args.rooms, days=args.days)
    if args.tiny:
        size = Size(schools=2, buildings=1, storeys=1, classrooms=2, big_rooms=10, days=1)
        args.repeat, args.samples, args.rate = 3, 4, 20.0
    browser = args.browser == "yes" or (args.browser == "auto" and has_browser())
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        url = args.database_url
        if not url:
            from twin.embedded import start_embedded

            log("starting embedded PostgreSQL")
            url = start_embedded(Path(tmp) / "pgdata", database="bench_dashboard")
        log(f"populating: {size}")
        net = populate(url, size)
        log(f"populated in {net.populate_s:.1f} s: {net.sites} schools, {net.devices} devices")
        result = measure(url, net, args.repeat)
        if browser:
            log(f"publish -> screen: {args.samples} samples, background {args.rate:g} msgs/s")
            result.update(with_broker(args.mqtt_url, Path(tmp), lambda mqtt: screen_latency(
                url, mqtt, net, samples=args.samples, rate=args.rate, workers=args.workers, tmp=Path(tmp),
                login=lambda: bench_user(url))))
        else:
            result.update({"screen_latency_p50_s": None, "screen_latency_p95_s": None})
    result.update(verdict(result))
    print(json.dumps(result))


def with_broker(given: str | None, tmp: Path, fn: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``fn(broker URL)`` on the given broker, else a private one (Mosquitto when installed, else amqtt)."""
    if given:
        return fn(given)
    from twin.messaging.broker import start_local_broker

    with start_local_broker(tmp / "mosquitto", persist=False) as broker:
        return fn(broker.url)


if __name__ == "__main__":
    main()
