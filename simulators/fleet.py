"""The fleet runner: every device of the twin publishes telemetry and status over MQTT.

Devices come from the database (after a BIM load), or from an in-memory
:class:`FleetSpec` (benchmarks). Each device publishes at its own interval (nominal per
kind, ±10 % per device) with ±5 % jitter per message. Samples are taken on a schedule
in *simulated* time, and a message's ``ts`` is its scheduled time, so for a given
``seed`` and ``start`` the payloads do not depend on how busy the machine is.

Connections (docs/simulators.md, "Connections and last wills"):

- ``gateway`` (default): one MQTT connection per site, as a school's IoT gateway would
  hold; its last will is ``offline`` on ``campus/v1/{site}/_gateway/{id}/status``. Fit
  for 10,000 devices and more in one process.
- ``device``: one connection per device with a last will on the device's own status
  topic, as in DESIGN.md; one socket and one network thread each, so for small fleets
  (at most :data:`MAX_DEVICE_CONNECTIONS`).

Commands on ``cmd`` (luminaire ``on``/``off``/``dim``/``auto``, panel
``standby``/``on``/``off``) are applied in the scheduler thread, acknowledged on
``cmd/ack``, and followed at once by a telemetry message showing the new state.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import random
import select
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from simulators.climate import DEFAULT_LATITUDE, DEFAULT_LONGITUDE
from simulators.cloud_class import CloudSeat
from simulators.faults import FaultInjector, FaultLog, FaultProfile, parse_profile
from simulators.models import SCHOOL_TZ, DeviceModel, Luminaire, Panel, model_for
from simulators.rooms import RoomContext
from simulators.siting import class_size, position_factor, window_azimuth
from simulators.timetable import Timetable
from twin.messaging import contract
from twin.messaging.broker import BrokerError
from twin.messaging.mqtt import MqttClient, Received, Subscription, Will

log = logging.getLogger(__name__)

FIRMWARE = "sim-1.0"
#: Device kinds that run on batteries (the rest are on the mains) and report ``battery`` (%) in their status.
BATTERY_KINDS = frozenset({"env_sensor"})
#: A battery's charge when the run starts is drawn from this range, %, and falls by this much a day
#: (a sensor sending every 30 s lasts about two years on its cells).
BATTERY_START_PCT = (35.0, 100.0)
BATTERY_PCT_PER_DAY = 0.14
#: The status with the battery is republished every this many telemetry messages (hourly for a 30 s sensor).
BATTERY_EVERY = 120
#: Reporting interval of each kind, seconds (simulated time).
NOMINAL_INTERVAL_S = {"env_sensor": 30.0, "luminaire": 60.0, "blackboard_luminaire": 60.0, "panel": 60.0}
MAX_DEVICE_CONNECTIONS = 500
CONNECT_TIMEOUT_S = 10.0
RECONNECT_S = 1.0
#: Unacknowledged QoS 1 messages per connection before the scheduler waits for PUBACKs.
WINDOW = 1000
Connections = Literal["gateway", "device"]


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What to simulate: device rows (as :func:`twin.storage.devices.list_devices` returns them, as dicts),
    rooms by id (footprint, area, height, use, storey), room footprints per storey, sites by id."""

    devices: list[dict[str, Any]]
    rooms: dict[int, dict[str, Any]] = field(default_factory=dict)
    storeys: dict[int, list[Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_spec(database_url: str, site_id: str | None = None) -> FleetSpec:
    """Devices, rooms and sites of the twin from the database."""
    from twin.database import connection
    from twin.storage.devices import list_devices
    from twin.storage.model import load_model
    from twin.storage.plans import list_storeys, storey_rooms
    from twin.storage.sites import list_sites

    with connection(database_url) as conn:
        devices = [asdict(d) for d in list_devices(conn, site_id)]  # the fleet keeps plain dicts
        sites = {s.site_id: asdict(s) for s in list_sites(conn)}
        rooms: dict[int, dict[str, Any]] = {}
        storeys: dict[int, list[Any]] = {}
        for site in {d["site_id"] for d in devices}:
            model = load_model(conn, site)
            conversion = model.site.map_conversion if model is not None else None
            if conversion is not None and site in sites:  # IfcMapConversion: the model's x axis from map east
                sites[site] = {**sites[site], "x_axis_deg": math.degrees(
                    math.atan2(conversion.x_axis_ordinate, conversion.x_axis_abscissa))}
            for st in list_storeys(conn, site):
                rows = storey_rooms(conn, st.storey_id)
                storeys[st.storey_id] = [r.footprint for r in rows]
                for r in rows:
                    rooms[r.room_id] = {**asdict(r), "storey_id": st.storey_id}
    return FleetSpec(devices, rooms, storeys, sites)


def load_timetable(database_url: str | None) -> Timetable:
    """The timetable the twin follows (:func:`twin.storage.timetables.stored_timetable`; the real one without
    a database)."""
    if not database_url:
        return Timetable()
    from twin.database import connection
    from twin.storage.timetables import stored_timetable

    with connection(database_url) as conn:
        return stored_timetable(conn)


def synthetic_spec(devices: int, sites: int = 14) -> FleetSpec:
    """An in-memory network of ``devices`` devices in classrooms of 13 (1 sensor, 9 luminaires,
    2 blackboard luminaires, 1 panel), spread over ``sites`` schools (the first the headquarters)."""
    kinds = ["env_sensor"] + ["luminaire"] * 9 + ["blackboard_luminaire"] * 2 + ["panel"]
    rows = []
    site_ids = ["hq"] + [f"m{i:02d}" for i in range(1, sites)]
    classrooms = -(-devices // len(kinds))
    for n in range(devices):
        room, k = divmod(n, len(kinds))
        site = site_ids[room * len(site_ids) // classrooms]
        rows.append({"id": n + 1, "site_id": site, "device_id": f"{kinds[k][:3].upper()}-{room:04d}-{k:02d}",
                     "kind": kinds[k], "room_id": None, "room_use": "classroom", "x": None, "y": None})
    site_rows = {s: {"site_id": s, "role": "headquarters" if s == "hq" else "member", "latitude": None,
                     "longitude": None} for s in site_ids}
    return FleetSpec(rows, {}, {}, site_rows)


@dataclass(slots=True)
class SimDevice:
    site_id: str
    device_id: str
    kind: str
    model: DeviceModel
    interval_s: float
    key: int | None = None  # devices.id in the twin
    seq: int = 0
    last_ts: float | None = None  # simulated epoch seconds of the last sample
    conn: int = 0
    topic: str = ""
    battery: float | None = None  # charge, %, of a battery-powered device
    samples: int = 0  # telemetry messages sampled (the battery report counts them; ``seq`` restarts on reboots)


def _room_context(d: dict[str, Any], spec: FleetSpec, seed: int, rng: random.Random) -> RoomContext:
    room = spec.rooms.get(d.get("room_id")) if d.get("room_id") is not None else None
    site = spec.sites.get(d["site_id"], {})
    use = (room or {}).get("use") or d.get("room_use") or "classroom"
    footprint = (room or {}).get("footprint")
    azimuth = window_azimuth(footprint, spec.storeys.get((room or {}).get("storey_id"), []))
    if azimuth is not None:  # model north to true north (the model's +y is x_axis_deg anticlockwise of north)
        azimuth = (azimuth - site.get("x_axis_deg", 0.0)) % 360.0
    key = f"{seed}/{d['site_id']}/{d.get('room_id') if d.get('room_id') is not None else d.get('room') or d['device_id']}"
    room_rng = random.Random(f"room/{key}")
    return RoomContext(
        key=key, use=use, class_size=class_size((room or {}).get("area_m2"), use),
        area_m2=(room or {}).get("area_m2") or 63.0, height_m=(room or {}).get("height_m") or 3.2,
        window_azimuth=azimuth if azimuth is not None else 180.0,
        latitude=site.get("latitude") or DEFAULT_LATITUDE, longitude=site.get("longitude") or DEFAULT_LONGITUDE,
        weather_seed=seed, fresh_air_ach=2.0 if room_rng.random() < 0.4 else 0.0,
        opens_windows=room_rng.random() < 0.8, airs_at_ppm=room_rng.uniform(2000.0, 3000.0),
    )


def _cloud_seats(spec: FleetSpec) -> dict[tuple[str, str], CloudSeat]:
    """A seat for every classroom panel: numbered by device id within its site."""
    panels: dict[str, list[str]] = {}
    for d in spec.devices:
        if d["kind"] == "panel" and (d.get("room_use") or "classroom") == "classroom":
            panels.setdefault(d["site_id"], []).append(d["device_id"])
    roles = {s: spec.sites.get(s, {}).get("role", "member") for s in panels}
    hq = next((s for s, role in roles.items() if role == "headquarters"), None)
    hq_panels = len(panels.get(hq, [])) if hq else 0
    seats = {}
    for site, ids in panels.items():
        for i, device_id in enumerate(sorted(ids)):
            seats[(site, device_id)] = CloudSeat("headquarters" if site == hq else "member", i, len(ids), hq_panels)
    return seats


def build_fleet(devices: list[dict[str, Any]] | FleetSpec, *, seed: int, interval_s: float | None = None,
                timetable: Timetable | None = None) -> list[SimDevice]:
    """One simulated device per twin device that publishes telemetry, reproducible for ``seed``."""
    spec = devices if isinstance(devices, FleetSpec) else FleetSpec(list(devices))
    tt = timetable or Timetable()
    seats = _cloud_seats(spec)
    contexts: dict[str, RoomContext] = {}
    fleet = []
    for d in spec.devices:
        if d["kind"] not in NOMINAL_INTERVAL_S:
            continue
        rng = random.Random(f"{seed}/{d['site_id']}/{d['device_id']}")
        ctx_key = f"{d['site_id']}/{d.get('room_id')}" if d.get("room_id") is not None else None
        ctx = contexts.get(ctx_key) if ctx_key else None
        if ctx is None:
            ctx = _room_context(d, spec, seed, rng)
            if ctx_key:
                contexts[ctx_key] = ctx
        room = spec.rooms.get(d.get("room_id")) if d.get("room_id") is not None else None
        pf = position_factor(d.get("x"), d.get("y"), (room or {}).get("footprint"),
                             ctx.window_azimuth if room else None)
        model = model_for(d["kind"], rng, tt, ctx, seat=seats.get((d["site_id"], d["device_id"])),
                          position_factor=pf)
        if model is None:
            continue
        nominal = interval_s if interval_s is not None else NOMINAL_INTERVAL_S[d["kind"]]
        battery = (random.Random(f"battery/{seed}/{d['site_id']}/{d['device_id']}").uniform(*BATTERY_START_PCT)
                   if d["kind"] in BATTERY_KINDS else None)
        fleet.append(SimDevice(d["site_id"], d["device_id"], d["kind"], model, nominal * rng.uniform(0.9, 1.1),
                               key=d.get("id"), topic=contract.topic(d["site_id"], d["device_id"], contract.TELEMETRY),
                               battery=battery))
    return fleet


def apply_command(dev: SimDevice, payload: bytes, local: datetime) -> dict[str, Any]:
    """Apply a ``cmd`` payload to a device; return the acknowledgement body."""
    try:
        cmd = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {"ok": False, "error": "bad JSON"}
    if not isinstance(cmd, dict):
        return {"ok": False, "error": "command must be an object"}
    cid, action = cmd.get("id"), cmd.get("action")
    try:
        if isinstance(dev.model, Luminaire):
            dev.model.command(str(action), cmd.get("level", 100), day=local.date())
        elif isinstance(dev.model, Panel):
            dev.model.command(str(action), local)
        else:
            raise ValueError(f"unsupported action {action!r} for {dev.kind}")  # noqa: TRY004 - acked as refused
    except ValueError as exc:
        return {"id": cid, "ok": False, "error": str(exc)}
    return {"id": cid, "ok": True, "action": action}


def default_start(now: datetime, tt: Timetable) -> datetime:
    """For accelerated runs: 07:30 of the latest school day whose school hours lie wholly in the past."""
    local = now.astimezone(SCHOOL_TZ)
    day = local.date() if local.hour >= 18 else local.date() - timedelta(days=1)
    day = tt.last_school_day(day)
    return datetime(day.year, day.month, day.day, 7, 30, tzinfo=SCHOOL_TZ)


class _Connection:
    """One MQTT connection carrying some devices: a school's gateway, or a single device.

    Driven from the scheduler thread (paho's external-loop mode: no network thread per
    connection), so publishing costs no thread switch and 10,000 devices fit one process.
    At most :data:`WINDOW` messages are unacknowledged per connection (backpressure).
    """

    def __init__(self, runner: FleetRunner, name: str, client_id: str, will: Will,
                 online: list[tuple[str, bytes]], cmd_filter: str) -> None:
        self.runner, self.name, self.online, self.cmd_filter = runner, name, online, cmd_filter
        self.sent = self.acked = 0
        self.connected = False
        self.retry_at = 0.0
        # MQTT 3.1.1, as most device firmware speaks it (and cheaper per message than 5 in paho).
        self.mqtt = MqttClient(runner.mqtt_url, client_id, persistent=False, will=will, protocol=4,
                               max_inflight=WINDOW, on_connect=self._on_connect, on_disconnect=self._on_disconnect,
                               on_published=self._on_publish)
        self.mqtt.declare([Subscription(cmd_filter, self._on_message, qos=1)])

    def start(self) -> None:
        self.retry_at = 0.0
        self.ensure()

    def ensure(self) -> None:
        """(Re)connect when down and the back-off has passed."""
        if self.mqtt.socket() is not None or time.monotonic() < self.retry_at:
            return
        try:
            self.mqtt.open()  # the first time a connect, then a reconnect
        except OSError as exc:
            log.warning("simulator connection failed name=%s error=%s (retrying)", self.name, exc)
        self.retry_at = time.monotonic() + RECONNECT_S

    def _on_connect(self, session_present: bool) -> None:
        # The wrapper has asked for the command subscription (``cmd_filter``) already.
        self.connected = True
        for t, p in self.online:
            self.publish(t, p, retain=True)

    def _on_disconnect(self, reason: str) -> None:
        if self.connected:
            log.info("simulator connection lost name=%s reason=%s", self.name, reason)
        self.connected = False
        self.sent = self.acked  # unacknowledged messages are resent by paho, not counted twice

    def _on_message(self, msg: Received) -> None:
        self.runner._commands.put((self, msg.topic, bytes(msg.payload)))

    def _on_publish(self, mid: int, reason: int) -> None:
        self.acked += 1
        self.runner._acked += 1

    @property
    def outstanding(self) -> int:
        return self.sent - self.acked

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.mqtt.send(topic, payload, qos=1, retain=retain)
        self.sent += 1

    def drop(self) -> None:
        """Break the socket without DISCONNECT: the broker publishes the last will; we reconnect."""
        self.mqtt.drop()
        self.retry_at = time.monotonic() + RECONNECT_S


def pump(conns: list[_Connection], timeout: float) -> None:
    """One round of network work for every connection: read acks and commands, flush writes, keep alive."""
    socks = {}
    for c in conns:
        c.ensure()
        sock = c.mqtt.socket()
        if sock is not None:
            socks[sock] = c
    if not socks:
        time.sleep(timeout)
        return
    writers = [s for s, c in socks.items() if c.mqtt.want_write()]
    try:
        readable, writable, _ = select.select(list(socks), writers, [], timeout)
    except (OSError, ValueError):  # a socket closed under us: paho notices on the next read
        readable, writable = list(socks), []
    for sock in readable:
        socks[sock].mqtt.loop_read()
    for sock in writable:
        socks[sock].mqtt.loop_write()
    for c in socks.values():
        c.mqtt.loop_misc()


class FleetRunner:
    """Publishes for a fleet until stopped.

    ``speed`` > 1 runs simulated time faster (from ``start``, by default the morning of
    the latest complete school day) until it reaches the present, then in real time.
    ``interval_s`` overrides the nominal interval of every kind. ``faults`` is a fault
    profile (:mod:`simulators.faults`); ``fault_log`` a JSON-lines file of injected faults.
    """

    def __init__(self, database_url: str | None, mqtt_url: str, *, interval_s: float | None = None, seed: int = 0,
                 speed: float = 1.0, client_id: str = "campus-sim", site_id: str | None = None,
                 start: datetime | None = None, faults: str | FaultProfile | None = None,
                 fault_log: Path | None = None, connections: Connections = "gateway",
                 spec: FleetSpec | None = None, timetable: Timetable | None = None) -> None:
        self.database_url, self.mqtt_url = database_url, mqtt_url
        self.interval_s, self.seed, self.speed = interval_s, seed, speed
        self.client_id, self.site_id, self.start = client_id, site_id, start
        self.profile = faults if isinstance(faults, FaultProfile) else parse_profile(faults)
        self.fault_log = FaultLog(fault_log)
        self.connections: Connections = connections
        #: None until :meth:`run`: then the database's (the demo's shifted one, if stored) when none was given.
        self.spec, self.timetable = spec, timetable
        self.published = 0
        self.commands = 0
        self.max_lag_s = 0.0
        #: How late (real seconds) every 64th message went out relative to its schedule.
        self.lag_samples: list[float] = []
        self.started = threading.Event()
        self.fleet: list[SimDevice] = []
        self.status_topics: list[str] = []
        self._conns: list[_Connection] = []
        self._by_cmd_topic: dict[str, SimDevice] = {}
        self._commands: queue.SimpleQueue[tuple[_Connection, str, bytes]] = queue.SimpleQueue()
        self._acked = 0
        self._since_pump = 0
        self._sim0 = time.time()
        self._mono0 = time.monotonic()
        self._capped = False

    @property
    def acked(self) -> int:
        """Telemetry and status messages the broker has acknowledged (PUBACK)."""
        return self._acked

    # -- simulated time -----------------------------------------------------------
    def _elapsed_sim(self) -> float:
        return (time.monotonic() - self._mono0) * self.speed

    def sim_time(self) -> float:
        """Simulated now, epoch seconds; accelerated time stops at the present and goes on in real time."""
        t = self._sim0 + self._elapsed_sim()
        return min(t, time.time()) if self._capped else t

    def sim_now(self) -> datetime:
        return datetime.fromtimestamp(self.sim_time(), tz=UTC)

    def _real_wait(self, due: float) -> float:
        ahead = due - self.sim_time()
        if ahead <= 0:
            return 0.0
        caught_up = self._capped and self._sim0 + self._elapsed_sim() >= time.time()
        return ahead / (1.0 if caught_up else self.speed)

    # -- set-up -----------------------------------------------------------------------
    def _connect(self, devices: list[dict[str, Any]]) -> None:
        if self.connections == "device":
            if len(self.fleet) > MAX_DEVICE_CONNECTIONS:
                raise BrokerError(f"{len(self.fleet)} devices is too many for one connection each "
                                  f"(at most {MAX_DEVICE_CONNECTIONS}); use gateway connections")
            for dev in self.fleet:
                status = contract.topic(dev.site_id, dev.device_id, contract.STATUS)
                dev.conn = len(self._conns)
                self._conns.append(_Connection(
                    self, f"{dev.site_id}/{dev.device_id}", f"{self.client_id}-{dev.site_id}-{dev.device_id}",
                    Will(status, contract.status_payload("offline", reason="connection lost")),
                    [(status, self._online_status(dev.site_id, dev.battery))],
                    contract.topic(dev.site_id, dev.device_id, contract.CMD)))
            return
        by_site: dict[str, list[str]] = {}
        for d in devices:
            by_site.setdefault(d["site_id"], []).append(d["device_id"])
        index: dict[str, int] = {}
        for site, ids in sorted(by_site.items()):
            gateway = f"{self.client_id}-{site}"
            topic = contract.gateway_status_topic(site, gateway)
            index[site] = len(self._conns)
            self._conns.append(_Connection(
                self, f"{site}/{gateway}", gateway,
                Will(topic, contract.status_payload("offline", gateway=gateway, devices=ids)),
                [(topic, contract.status_payload("online", gateway=gateway, firmware=FIRMWARE, devices=ids))],
                f"{contract.PREFIX}/{site}/+/{contract.CMD}"))
        for dev in self.fleet:
            dev.conn = index[dev.site_id]

    def run(self, stop: threading.Event) -> None:
        spec = self.spec or load_spec(self.database_url or "", self.site_id)
        if self.timetable is None:
            self.timetable = load_timetable(self.database_url)
        self.fleet = build_fleet(spec, seed=self.seed, interval_s=self.interval_s, timetable=self.timetable)
        self.status_topics = [contract.topic(d["site_id"], d["device_id"], contract.STATUS) for d in spec.devices]
        self._by_cmd_topic = {contract.topic(d.site_id, d.device_id, contract.CMD): d for d in self.fleet}
        injector = FaultInjector(self.profile, self.seed, self.fault_log) if self.profile.active else None
        self._connect(spec.devices)
        try:
            self._loop(stop, spec, injector)
        finally:
            self._shutdown(spec.devices)

    def _loop(self, stop: threading.Event, spec: FleetSpec, injector: FaultInjector | None) -> None:
        for c in self._conns:
            c.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not all(c.connected for c in self._conns) and time.monotonic() < deadline and not stop.is_set():
            pump(self._conns, 0.05)
        for c in self._conns:
            if not c.connected:
                log.warning("simulator connection not up yet name=%s (retrying in the background)", c.name)
        if self.connections == "gateway":  # the devices' own retained status
            site_conn = {c.name.split("/")[0]: c for c in self._conns}
            batteries = {(d.site_id, d.device_id): d.battery for d in self.fleet}
            for d, status in zip(spec.devices, self.status_topics, strict=True):
                self._send(site_conn[d["site_id"]], status, self._online_status(
                    d["site_id"], batteries.get((d["site_id"], d["device_id"]))), retain=True)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S  # statuses acknowledged before the clock starts
        while (any(c.connected and c.outstanding for c in self._conns) and time.monotonic() < deadline
               and not stop.is_set()):
            pump(self._conns, 0.05)
        start = self.start
        if start is None and self.speed > 1:
            start = default_start(datetime.now(UTC), self.timetable)
        self._sim0 = (start or datetime.now(UTC)).timestamp()
        self._mono0 = time.monotonic()
        # Accelerated time from the past stops at the present (ingest refuses future timestamps).
        self._capped = self.speed > 1 and self._sim0 <= time.time()
        rng = random.Random(self.seed)
        spread = min(2.0 + len(self.fleet) / 1000.0, max((d.interval_s for d in self.fleet), default=1.0))
        heap = [(self._sim0 + rng.uniform(0, min(dev.interval_s, spread)), i) for i, dev in enumerate(self.fleet)]
        heapq.heapify(heap)
        log.info("simulator started devices=%d connections=%d (%s) speed=%g start=%s faults=%s", len(self.fleet),
                 len(self._conns), self.connections, self.speed, datetime.fromtimestamp(self._sim0, UTC).isoformat(),
                 self.profile.name)
        self.started.set()
        while heap and not stop.is_set():
            if self._since_pump >= 64:
                pump(self._conns, 0.0)
                self._since_pump = 0
            if not self._commands.empty():
                self._handle_commands(injector)
            due, i = heap[0]
            wait = self._real_wait(due)
            if wait > 0:
                pump(self._conns, min(wait, 0.25))
                self._since_pump = 0
                continue
            dev = self.fleet[i]
            heapq.heapreplace(heap, (due + dev.interval_s * dev.model.rng.uniform(0.95, 1.05), i))
            self._publish(dev, due, injector)
            if self.published % 64 == 0:
                lag = (self.sim_time() - due) / self.speed
                self.max_lag_s = max(self.max_lag_s, lag)
                if len(self.lag_samples) < 100_000:
                    self.lag_samples.append(lag)

    def _send(self, conn: _Connection, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish, first waiting (a little) for PUBACKs when the connection's window is full."""
        if conn.connected and conn.outstanding >= WINDOW:
            deadline = time.monotonic() + 5.0
            while conn.connected and conn.outstanding >= WINDOW // 2 and time.monotonic() < deadline:
                pump(self._conns, 0.01)
            self._since_pump = 0
        conn.publish(topic, payload, retain=retain)
        self._since_pump += 1

    def _shutdown(self, devices: list[dict[str, Any]]) -> None:
        try:
            if self.connections == "gateway":
                site_conn = {c.name.split("/")[0]: c for c in self._conns}
                for d, status in zip(devices, self.status_topics, strict=True):
                    self._send(site_conn[d["site_id"]], status, contract.status_payload("offline"), retain=True)
                for c in self._conns:
                    t, _ = c.online[0]
                    self._send(c, t, contract.status_payload("offline", gateway=c.name.split("/")[1]), retain=True)
            else:
                for c in self._conns:
                    t, _ = c.online[0]
                    self._send(c, t, contract.status_payload("offline"), retain=True)
            deadline = time.monotonic() + 5.0
            while any(c.connected and c.outstanding > 0 for c in self._conns) and time.monotonic() < deadline:
                pump(self._conns, 0.05)
            for c in self._conns:
                c.retry_at = float("inf")  # no reconnecting from here on
                c.mqtt.disconnect()
            pump(self._conns, 0.05)
        finally:
            for c in self._conns:
                sock = c.mqtt.socket()
                if sock is not None:
                    sock.close()
            self.fault_log.close()

    # -- publishing ------------------------------------------------------------------------
    def _online_status(self, site_id: str, battery: float | None, **extra: Any) -> bytes:
        """A device's retained ``online`` status: firmware, its gateway, its battery when it has one."""
        if self.connections == "gateway":
            extra["gateway"] = f"{self.client_id}-{site_id}"
        if battery is not None:
            extra["battery"] = round(battery, 1)
        return contract.status_payload("online", firmware=FIRMWARE, **extra)

    def _publish(self, dev: SimDevice, due: float, injector: FaultInjector | None) -> None:
        ts = datetime.fromtimestamp(due, tz=UTC)
        dt = dev.interval_s if dev.last_ts is None else max(0.0, due - dev.last_ts)
        dev.last_ts = due
        metrics = dev.model.step(dt, ts.astimezone(SCHOOL_TZ))
        dev.seq += 1
        dev.samples += 1
        if dev.battery is not None:
            dev.battery = max(0.0, dev.battery - BATTERY_PCT_PER_DAY * dt / 86400.0)
        conn = self._conns[dev.conn]
        status = contract.topic(dev.site_id, dev.device_id, contract.STATUS)
        if injector is None:
            self._send(conn, dev.topic, contract.telemetry_payload(ts, dev.seq, metrics))
            self.published += 1
            if dev.battery is not None and dev.samples % BATTERY_EVERY == 0:
                self._send(conn, status, self._online_status(dev.site_id, dev.battery), retain=True)
            return
        outcome = injector.telemetry(dev.site_id, dev.device_id, ts, dev.seq, metrics, dev.interval_s,
                                     battery=dev.battery)
        dev.seq = outcome.seq
        if outcome.rebooted:
            self._send(conn, status, self._online_status(dev.site_id, outcome.battery, reboot=True), retain=True)
        elif outcome.battery is not None and (outcome.battery_fault or dev.samples % BATTERY_EVERY == 0):
            self._send(conn, status, self._online_status(dev.site_id, outcome.battery), retain=True)
        for payload in outcome.payloads:
            self._send(conn, dev.topic, payload)
            self.published += 1
        if injector.disconnect(conn.name, ts):
            conn.drop()

    def _handle_commands(self, injector: FaultInjector | None) -> None:
        while not self._commands.empty():
            conn, topic, payload = self._commands.get()
            dev = self._by_cmd_topic.get(topic)
            if dev is None:
                continue
            now = self.sim_time()
            ack = apply_command(dev, payload, datetime.fromtimestamp(now, UTC).astimezone(SCHOOL_TZ))
            self._send(conn, contract.topic(dev.site_id, dev.device_id, contract.CMD_ACK), orjson.dumps(ack))
            self.commands += 1
            log.info("command site=%s device=%s ok=%s", dev.site_id, dev.device_id, ack.get("ok"))
            if ack.get("ok"):
                self._publish(dev, max(now, dev.last_ts or now), injector)
