"""Helpers of ``bench/dashboard.py``: the 1 + 13 network built in the database, a generic Dash callback caller,
and the publish -> screen latency in headless Chromium.

The network is built as :class:`twin.domain.TwinModel` objects (no IFC), saved with
:func:`twin.storage.model.save_model`, then given live values (through the ingest path's writer), device
status, open alarms, a week of daily KPIs and rollups, so every page has what it shows in a real network.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from psycopg import sql
from shapely.geometry import box

from twin.database import connect
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.metrics import BY_NAME
from twin.storage import alarms, kpis
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter
from twin.storage.schema import migrate

HQ = "hq"
#: (kind, IFC class, how many per classroom): 13 devices in a classroom.
CLASSROOM_DEVICES = (("env_sensor", "IfcSensor", 1), ("luminaire", "IfcLightFixture", 9),
                     ("blackboard_luminaire", "IfcLightFixture", 2), ("panel", "IfcAudioVisualAppliance", 1))
PREFIX = {"env_sensor": "ENV", "luminaire": "LUM", "blackboard_luminaire": "BBL", "panel": "PNL"}
#: Each device kind's live metrics and values (a room's index varies the sensors').
LIVE = {"env_sensor": {"co2": 650.0, "temperature": 22.0, "humidity": 50.0, "occupancy": 30.0, "illuminance": 400.0},
        "luminaire": {"on": 1.0, "dimming": 80.0}, "blackboard_luminaire": {"on": 1.0}, "panel": {"screen_on": 1.0}}
DAILY_KPIS = (*kpis.KPIS, "lighting_compliance", "data_completeness")
METRIC = {name: m.metric_id for name, m in BY_NAME.items()}
#: The big storey (today's floor-plan benchmark) is this building of the headquarters.
BIG = "BIG"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Size:
    schools: int = 14  # the headquarters and the members
    buildings: int = 2
    storeys: int = 5
    classrooms: int = 5  # per storey, besides an office, a corridor and a toilet
    big_rooms: int = 200  # the headquarters' big storey: classrooms with a sensor, a luminaire and a panel each
    days: int = 7


def site_ids(n: int) -> list[str]:
    return [HQ] + [f"m{i:02d}" for i in range(1, n)]


def school(site_id: str, index: int, size: Size) -> TwinModel:
    """One school: ``size.buildings`` x ``size.storeys`` storeys of classrooms (13 devices each), an office, a
    corridor and a toilet; the headquarters also has the big storey (building ``BIG``)."""
    lat = 22.52 + 0.2 * ((index * 0.37) % 1.0)  # spread over Shenzhen
    lon = 113.85 + 0.45 * ((index * 0.61) % 1.0)
    site = Site(site_id, "Futian HQ School" if site_id == HQ else f"Member School {index}",
                "headquarters" if site_id == HQ else "member", latitude=round(lat, 4), longitude=round(lon, 4))
    buildings, storeys, rooms, devices = [], [], [], []
    for b in range(1, size.buildings + 1):
        bid = f"{site_id}-B{b}"
        buildings.append(Building(bid, f"Building {b}"))
        for s in range(1, size.storeys + 1):
            sid = f"{bid}-S{s}"
            storeys.append(Storey(sid, bid, f"{s}F", 3.6 * (s - 1)))
            for k in range(size.classrooms):
                gid, x = f"{sid}-C{k}", k * 9.0
                rooms.append(Room(gid, sid, f"{b}{s}{k + 1:02d}", use="classroom", footprint=box(x, 0, x + 8, 6),
                                  area_m2=48.0, height_m=3.2))
                n = 0
                for kind, cls, count in CLASSROOM_DEVICES:
                    for j in range(count):
                        dx, dy = 1 + 3 * (j % 3), 1 + 2 * (j // 3) if kind == "luminaire" else 3
                        devices.append(Device(f"{PREFIX[kind]}-{b}{s}{k:02d}-{j}", f"{gid}-{n}", kind, cls,
                                              room_global_id=gid, storey_global_id=sid, mapping="containment",
                                              x=x + min(dx, 7), y=dy, z=1.0))
                        n += 1
            end = size.classrooms * 9.0
            for use, name, shape in (("office", "Office", box(end, 0, end + 8, 6)),
                                     ("toilet", "Toilet", box(end + 9, 0, end + 13, 6)),
                                     ("corridor", "Corridor", box(0, 6.5, end + 13, 9))):
                rooms.append(Room(f"{sid}-{use}", sid, f"{name} {b}{s}", use=use, footprint=shape,
                                  area_m2=shape.area, height_m=3.2))
    if site_id == HQ and size.big_rooms:
        buildings.append(Building(BIG, "Annex"))
        storeys.append(Storey(f"{BIG}-S1", BIG, "1F", 0.0))
        columns = max(1, math.ceil(math.sqrt(size.big_rooms * 2)))
        for i in range(size.big_rooms):
            x, y = (i % columns) * 9.0, (i // columns) * 7.0
            gid = f"{BIG}-R{i:04d}"
            rooms.append(Room(gid, f"{BIG}-S1", f"A{100 + i}", use="classroom", footprint=box(x, y, x + 8, y + 6),
                              area_m2=48.0, height_m=3.2))
            for kind, cls, dx in (("env_sensor", "IfcSensor", 1), ("luminaire", "IfcLightFixture", 4),
                                  ("panel", "IfcAudioVisualAppliance", 7)):
                devices.append(Device(f"{BIG}-{PREFIX[kind]}-{i:04d}", f"{gid}-{kind}", kind, cls, room_global_id=gid,
                                      storey_global_id=f"{BIG}-S1", mapping="containment", x=x + dx, y=y + 3, z=1.0))
    return TwinModel(site, tuple(buildings), tuple(storeys), tuple(rooms), tuple(devices))


@dataclass(frozen=True, slots=True)
class Network:
    """What the measurements need to know of the populated network (database ids)."""

    sites: int
    devices: int
    big_storey: int  # the headquarters' big storey (today's floor plan)
    big_rooms: int  # its rooms
    chart_room: int  # its first room: the week of real readings (today's 30-day chart)
    storey: int  # hq Building 1, 1F: the browser's storey
    room: int  # its first classroom: the room page, and the room the browser watches
    sensor: str  # that room's environment sensor (device id, in the headquarters)
    sensor_seq: int  # the last seq it has sent
    background: list[tuple[str, str]]  # (site, device id) of sensors elsewhere, for background telemetry
    populate_s: float


def populate(url: str, size: Size) -> Network:
    """Build the network in the (migrated here) database at ``url``; progress on stderr."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    sites = site_ids(size.schools)
    with connect(url) as conn:
        migrate(conn)
        conn.commit()
        for index, site_id in enumerate(sites):
            save_model(conn, school(site_id, index, size))
            conn.commit()
        log(f"  {len(sites)} schools saved ({time.perf_counter() - started:.1f} s)")
        kinds = {(s, d): k for s, d, k in conn.execute(
            "SELECT site_id, device_id, kind FROM devices WHERE removed_at IS NULL").fetchall()}
        keys = device_keys(conn)
        writer = ReadingWriter(conn)
        live = []
        for n, ((site_id, device_id), kind) in enumerate(sorted(kinds.items())):
            for metric, value in LIVE[kind].items():
                if kind == "env_sensor" and metric != "humidity":
                    value += (n % 9) * (25.0 if metric == "co2" else 1.0)
                live.append((now - timedelta(seconds=5), keys[site_id, device_id], METRIC[metric], value))
        for chunk in range(0, len(live), 20_000):
            with conn.transaction():
                writer.write(live[chunk:chunk + 20_000])
        with conn.transaction():  # a few devices offline, batteries for the devices page
            conn.execute("UPDATE device_status SET state = 'offline', last_seen = now() - interval '2 hours' "
                         "WHERE device_id % 97 = 0")
            conn.execute("UPDATE device_status SET battery_pct = 20 + device_id % 80")
        log(f"  live values of {len(kinds)} devices ({time.perf_counter() - started:.1f} s)")
        rooms = conn.execute("""SELECT r.site_id, min(r.id) FILTER (WHERE r.use = 'classroom'),
                                       min(r.id) FILTER (WHERE r.use = 'office') FROM rooms r GROUP BY 1""").fetchall()
        with conn.transaction():  # open alarms, two per school
            for site_id, classroom, office in rooms:
                alarms.raise_alarm(conn, site_id, "co2", "warning", "CO2 above the limit", room_id=classroom,
                                   at=now - timedelta(minutes=40), value=1650.0)
                alarms.raise_alarm(conn, site_id, "device_offline", "critical", "device offline", room_id=office,
                                   at=now - timedelta(hours=2))
            for day_back in range(size.days):  # the week of daily KPIs, each school and the network
                day = (now - timedelta(days=day_back + 1)).date()
                for scope in [*sites, kpis.NETWORK]:
                    den = 50.0 * (len(sites) if scope == kpis.NETWORK else 1)
                    kpis.store_day(conn, day, scope, {k: (den * (0.8 + 0.02 * (day_back % 5)), den)
                                                      for k in DAILY_KPIS})
        chart_sensor = keys[HQ, f"{BIG}-ENV-0000"] if size.big_rooms else keys[HQ, "ENV-1100-0"]
        history_rows(writer, conn, chart_sensor, now, size.days)
        log(f"  alarms, daily KPIs, {size.days} days of readings of one room ({time.perf_counter() - started:.1f} s)")
        sensors = [keys[k] for k, kind in kinds.items() if kind == "env_sensor" and keys[k] != chart_sensor]
        filler(conn, sensors, size.days)
        log(f"  rollups: {size.days} days hourly, a day by the minute, {len(sensors)} sensors "
            f"({time.perf_counter() - started:.1f} s)")
        conn.execute("ANALYZE")
        conn.commit()
        one = lambda q, *a: conn.execute(q, a).fetchone()[0]
        big = one("SELECT id FROM storeys WHERE global_id = %s", f"{BIG}-S1") if size.big_rooms else None
        storey = one("SELECT id FROM storeys WHERE global_id = %s", f"{HQ}-B1-S1")
        room = one("SELECT id FROM rooms WHERE global_id = %s", f"{HQ}-B1-S1-C0")
        chart_room = one("SELECT room_id FROM devices WHERE id = %s", chart_sensor)
        seq = one("SELECT coalesce(last_seq, 0) FROM device_status WHERE device_id = %s", keys[HQ, "ENV-1100-0"])
    background = [k for k, kind in sorted(kinds.items()) if kind == "env_sensor" and k[0] != HQ]
    return Network(len(sites), len(kinds), big or storey, size.big_rooms, chart_room, storey, room, "ENV-1100-0", int(seq),
                   background, time.perf_counter() - started)


def history_rows(writer: ReadingWriter, conn: Any, sensor: int, now: datetime, days: int) -> None:
    """``days`` of 10-minute readings of one sensor through the ingest path's writer (real rollups)."""
    step, start = timedelta(minutes=10), now - timedelta(days=days)
    rows = [(start + k * step, sensor, METRIC[name], value + (k % 144) * scale)
            for k in range(int(timedelta(days=days) / step))
            for name, value, scale in (("co2", 500.0, 5.0), ("temperature", 20.0, 0.03), ("occupancy", 0.0, 0.2),
                                       ("illuminance", 200.0, 2.0))]
    for chunk in range(0, len(rows), 10_000):
        with conn.transaction():
            writer.write(rows[chunk:chunk + 10_000])


def filler(conn: Any, sensors: list[int], days: int) -> None:
    """The other sensors' rollups, so the tables have a realistic size: ``days`` of hourly buckets of four
    metrics, a day of minute buckets of CO2."""
    with conn.transaction():
        for table, unit, span, metrics in (
                ("rollup_1h", "hour", f"{days} days", ("co2", "temperature", "occupancy", "illuminance")),
                ("rollup_1m", "minute", "1 day", ("co2",))):
            conn.execute(
                sql.SQL("""INSERT INTO {} (device_id, metric_id, bucket, n, sum, min, max)
                    SELECT d, m, b, 6, 6 * 700, 600, 800 FROM unnest(%s::int[]) AS d, unnest(%s::smallint[]) AS m,
                    generate_series(date_trunc(%s, now() - %s::interval), now(), ('1 ' || %s)::interval) AS b
                    ON CONFLICT DO NOTHING""").format(sql.Identifier(table)),
                (sensors, [METRIC[m] for m in metrics], unit, span, unit))


# -- a generic caller of Dash callbacks ----------------------------------------------------------------------

Props = dict[tuple[str, str], Any]


def outputs_of(dep: dict[str, Any]) -> list[str]:
    """``"id.property"`` of each output of a ``/_dash-dependencies`` entry (``..a.b...c.d..`` when several)."""
    text = dep["output"]
    return text[2:-2].split("...") if text.startswith("..") and text.endswith("..") else [text]


def _spec(item: dict[str, Any], props: Props) -> dict[str, Any]:
    if str(item["id"]).startswith("{"):  # a pattern-matching id (ALL, MATCH): none of those on the page
        return {"id": json.loads(item["id"]), "property": item["property"], "value": []}
    return {"id": item["id"], "property": item["property"], "value": props.get((item["id"], item["property"]))}


class DashCaller:
    """Calls a page's callbacks over Dash's HTTP endpoint as the browser does: the callback is found in
    ``/_dash-dependencies`` by one of its outputs, its inputs and state are filled from ``props``
    (``{(component id, property): value}``, None for the rest), so the signatures may change freely."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers
        self.deps: list[dict[str, Any]] = client.get("/_dash-dependencies").get_json()

    def find(self, output: str) -> dict[str, Any]:
        for dep in self.deps:
            if output in outputs_of(dep):
                return dep
        raise LookupError(f"no callback has the output {output!r}")

    def triggered_by(self, component: str, prop: str) -> list[dict[str, Any]]:
        return [d for d in self.deps if any(i["id"] == component and i["property"] == prop for i in d["inputs"])]

    def call(self, dep: dict[str, Any] | str, props: Props, trigger: str | None = None) -> Any:
        """POST one callback; the response (status 200 with JSON, or 204 when nothing changed)."""
        dep = self.find(dep) if isinstance(dep, str) else dep
        outs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in outputs_of(dep)]
        body = {"output": dep["output"], "outputs": outs if len(outs) > 1 or dep["output"].startswith("..")
                else outs[0],
                "inputs": [_spec(i, props) for i in dep["inputs"]], "state": [_spec(s, props) for s in dep["state"]],
                "changedPropIds": [trigger or f"{dep['inputs'][0]['id']}.{dep['inputs'][0]['property']}"]}
        response = self.client.post("/_dash-update-component", json=body, headers=self.headers)
        assert response.status_code in (200, 204), (dep["output"], response.status_code,
                                                    response.get_data(as_text=True)[:500])
        return response

    @staticmethod
    def remember(response: Any, props: Props) -> None:
        """Keep a response's outputs in ``props`` (as the browser's store does; patches are not kept)."""
        if response.status_code != 200:
            return
        for component, values in response.get_json().get("response", {}).items():
            for prop, value in values.items():
                if not (isinstance(value, dict) and "__dash_patch_update" in value):
                    props[component, prop] = value

    def page(self, pathname: str, search: str = "") -> tuple[Props, list[str]]:
        """A page's layout as the router callback renders it: every component's properties by id, and the ids
        of its ``dcc.Interval``s; its ``dcc.Location``s get the path and search the browser would give them."""
        dep = next(d for d in self.deps if "_pages_content.children" in outputs_of(d))
        response = self.call(dep, {("_pages_location", "pathname"): pathname, ("_pages_location", "search"): search},
                             "_pages_location.pathname")
        props: Props = {}
        intervals: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, list):
                for child in node:
                    walk(child)
            elif isinstance(node, dict) and "props" in node:
                p = node["props"]
                if isinstance(p.get("id"), str):
                    props.update({(p["id"], k): v for k, v in p.items() if k not in ("id", "children")})
                    if node.get("type") == "Interval":
                        intervals.append(p["id"])
                    if node.get("type") == "Location":
                        props[p["id"], "pathname"], props[p["id"], "search"] = pathname, search
                for value in p.values():
                    walk(value)

        walk(response.get_json()["response"]["_pages_content"]["children"])
        return props, intervals

    def refresh(self, props: Props, intervals: list[str], tick: int) -> int:
        """One live refresh of a page: every callback its intervals fire; the bytes of the responses."""
        sent = 0
        for interval in intervals:
            props[interval, "n_intervals"] = tick
            for dep in self.triggered_by(interval, "n_intervals"):
                response = self.call(dep, props, f"{interval}.n_intervals")
                sent += len(response.get_data())
                self.remember(response, props)
        return sent


# -- publish -> screen latency ---------------------------------------------------------------------------------

#: The fills of the floor plan's shapes, one string (a room's colour change changes it).
FILLS_JS = ("return Array.from(document.querySelectorAll('#site-floorplan path'))"
            ".map(p => getComputedStyle(p).fill).join('|');")
#: Polls every 20 ms until the fills differ from arguments[0]; the browser's clock then (ms since the epoch).
WAIT_CHANGE_JS = """const [before, done] = [arguments[0], arguments[arguments.length - 1]];
const fills = () => Array.from(document.querySelectorAll('#site-floorplan path'))
    .map(p => getComputedStyle(p).fill).join('|');
const poll = () => { if (fills() !== before) { done(Date.now()); } else { setTimeout(poll, 20); } };
poll();"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(url: str, mqtt_url: str, workers: int, tmp: Path) -> Iterator[str]:
    """``campus-twin dashboard --workers N`` (gunicorn) as a child process; its base URL once it answers."""
    from bench._common import stop_group

    port = free_port()
    logfile = (tmp / "dashboard.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "--database-url", url, "--mqtt-url", mqtt_url,
                             "--data-dir", str(tmp / "data"), "dashboard", "--workers", str(workers),
                             "--port", str(port)], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[1])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the dashboard did not start: " + (tmp / "dashboard.log").read_text()[-2000:])
                time.sleep(0.2)
        yield base
    finally:
        stop_group(proc, 10)
        logfile.close()


def chrome(tmp: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp / 'chrome-profile'}"):
        options.add_argument(arg)
    import shutil

    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)


class Background(threading.Thread):
    """Telemetry at ``rate`` messages a second (QoS 1, 5 metrics each), round-robin over ``devices``."""

    def __init__(self, mqtt_url: str, devices: list[tuple[str, str]], rate: float) -> None:
        super().__init__(daemon=True)
        self.mqtt_url, self.devices, self.rate = mqtt_url, devices, rate
        self.stop, self.sent = threading.Event(), 0

    def run(self) -> None:
        from bench._common import client
        from twin.messaging import contract

        c = client(self.mqtt_url, f"bench-bg-{uuid.uuid4().hex[:6]}", persistent=False)
        c.connect()
        seq: dict[tuple[str, str], int] = {}
        t0 = time.monotonic()
        while not self.stop.is_set():
            site, device = self.devices[self.sent % len(self.devices)]
            seq[site, device] = seq.get((site, device), 1000) + 1
            c.publish(contract.topic(site, device, "telemetry"), orjson.dumps({
                "ts": int(time.time() * 1000), "seq": seq[site, device],
                "metrics": {"co2": 600.0 + self.sent % 300, "temperature": 22.5, "humidity": 50.0,
                            "occupancy": 30.0, "illuminance": 400.0}}), qos=1)
            self.sent += 1
            ahead = self.sent / self.rate - (time.monotonic() - t0)
            if ahead > 0.002:
                time.sleep(ahead)
        self.achieved = self.sent / (time.monotonic() - t0)
        c.close()


def screen_latency(url: str, mqtt_url: str, net: Network, *, samples: int, rate: float, workers: int,
                   tmp: Path, login: Callable[[], tuple[str, str]]) -> dict[str, Any]:
    """Publish -> screen: the room's sensor alternates between a green and a red CO2 value; each sample is the
    time from the publish to the floor plan's fills changing in the browser (polled every 20 ms), with the
    production server, an ingest worker and background telemetry at ``rate`` msgs/s to the other schools."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from bench._common import client
    from ingest.worker import IngestWorker
    from twin.messaging import contract

    tag = uuid.uuid4().hex[:8]
    worker = IngestWorker(url, mqtt_url, client_id=f"bench-dash-{tag}", share_group=f"bench-dash-{tag}")
    stop = threading.Event()
    ingest = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    ingest.start()
    background = Background(mqtt_url, net.background, rate)
    driver = None
    try:
        if not worker.connected.wait(20):
            raise SystemExit("the ingest worker did not connect to " + mqtt_url)
        with gunicorn(url, mqtt_url, workers, tmp) as base:
            driver = chrome(tmp)
            wait = WebDriverWait(driver, 60)
            user, password = login()
            driver.get(base + "/login")
            wait.until(lambda d: d.find_elements(By.ID, "login-username"))
            driver.find_element(By.ID, "login-username").send_keys(user)
            driver.find_element(By.ID, "login-password").send_keys(password)
            driver.find_element(By.ID, "login-submit").click()
            wait.until(lambda d: "/login" not in d.current_url)
            driver.get(f"{base}/site/{HQ}?storey={net.storey}&metric=co2")
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#site-floorplan .scatterlayer .trace"))
            driver.set_script_timeout(10)  # a sample not shown by then is counted as missed
            background.start()
            publisher = client(mqtt_url, f"bench-probe-{tag}", persistent=False)
            publisher.connect()
            seq, taken, missed = net.sensor_seq + 1000, [], 0
            for i in range(samples + 1):
                value = 2200.0 if i % 2 == 0 else 600.0  # red, then green, in a classroom
                before = stable_fills(driver)
                seq += 1
                sent = time.time()
                publisher.publish(contract.topic(HQ, net.sensor, "telemetry"), orjson.dumps(
                    {"ts": int(sent * 1000), "seq": seq, "metrics": {"co2": value}}), qos=1).wait_for_publish(10)
                try:
                    seen_ms = driver.execute_async_script(WAIT_CHANGE_JS, before)
                except Exception:  # noqa: BLE001 - a sample that never showed: counted, not fatal
                    missed += 1
                    continue
                if i > 0:  # the first brings the room to red from its populated value: a warm-up
                    taken.append(seen_ms / 1000 - sent)
            publisher.close()
    finally:
        background.stop.set()
        if background.is_alive():
            background.join(10)
        if driver is not None:
            driver.quit()
        stop.set()
        ingest.join(20)
    taken.sort()
    return {"screen_latency_p50_s": round(statistics.median(taken), 3) if taken else None,
            "screen_latency_p95_s": round(taken[min(len(taken) - 1, math.ceil(0.95 * len(taken)) - 1)], 3)
            if taken else None,
            "screen_latency_samples": len(taken), "screen_latency_missed": missed,
            "screen_background_msgs_per_s": round(getattr(background, "achieved", 0.0), 1),
            "dashboard_workers": workers}


def stable_fills(driver: Any, settle_s: float = 0.4) -> str:
    """The floor plan's fills once they have not changed for ``settle_s`` (a refresh may be under way)."""
    fills, since = driver.execute_script(FILLS_JS), time.monotonic()
    while time.monotonic() - since < settle_s:
        time.sleep(0.05)
        now = driver.execute_script(FILLS_JS)
        if now != fills:
            fills, since = now, time.monotonic()
    return fills
