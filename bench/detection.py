"""Benchmark: does the twin notice the faults a simulated school day injects, and only those (issue 17)?

Prints one JSON object on stdout (progress on stderr). The benchmark's own Mosquitto (or ``--mqtt-url``)
and a scratch database (an embedded PostgreSQL of its own, or one on the server of ``--database-url``)
holding a small school (``tests.helpers.small_twin``: one storey, ``--rooms`` classrooms, a sensor and a
luminaire in each); then, as users run them, ``campus-twin ingest``, ``campus-twin simulate --speed S
--start <07:00 of a school day, Asia/Shanghai> --faults PROFILE --fault-log FILE --seed N`` and, once data
is stored, ``campus-twin monitor --clock data --interval 1`` (the monitor judges the data's time). The
simulation runs until ``--until`` (default 23:30 of the start's day: the drift detector judges only quiet
hours, from 3 h after school ends); then ingest drains, the monitor runs 3 more cycles, everything stops and
the alarms stored are scored against the fault log.

The default profile (:data:`PROFILE`) gives each kind several faults in one run; ``clock_skew`` is left out
(``"excluded"``): device clocks are judged only on the wall clock, and a skewed clock ahead would move the
data's clock itself. ``disconnect`` (a gateway's whole school at once) is not in it either.

Scoring, from the ``alarms`` table (rule, device, raised_at, known_at, cleared_at; data time) and the
fault log (kind, site, device, ts, until, ...):

- **intended rule** per kind: dropout -> ``device_offline``; stuck -> ``device_stuck``; drift ->
  ``device_drift``; out_of_range -> ``device_out_of_range``; low_battery -> ``device_low_battery``.
- **detectable** (what the twin's rules can see at all):
  dropout: lasts (``until`` - ``ts``) more than ``OFFLINE_INTERVALS`` + 1 intervals of the device's kind
  (the simulator's nominal interval, ``simulators.fleet.NOMINAL_INTERVAL_S``);
  stuck: its metric has a rule in ``STUCK_AFTER``, the stuck value is above ``STUCK_ONLY_ABOVE`` (when
  the metric has a floor), it lasts (up to the run's end) at least ``STUCK_AFTER`` + 2 min, and no drift
  of the same device and metric began before it ended (the simulator adds the drift to the frozen value);
  drift: began at least ``drift.WINDOW`` + 1 h before the run's end, ``|per_hour|`` x 3 h exceeds
  ``drift.BOUNDS[metric]``, and in the run's last ``drift.WINDOW`` at least half the expected readings
  of the metric were stored (not: its value left the physical range, its messages are dead letters)
  and none was 0 (the simulator clamps at 0: a negative drift of a light's lux or power, or of CO2,
  ends as a flat 0); out_of_range, low_battery: always. ``not_detectable``: the others, by reason.
- **detected**: an alarm of the intended rule on the fault's device raised within [start - 2 min,
  end + slack] (end: ``until`` when logged, else the run's end), or one already open at the fault's start
  (several out-of-range values within 15 min are one alarm; counted, but left out of the delays).
  ``recall`` = detected / detectable per kind (null when nothing was detectable).
- **delay** = known_at - fault start (seconds of simulated time) of each detection: p50 and max per kind
  and overall (``delay_p50_s``, ``delay_max_s``).
- **false positives**: device alarms (``device_id`` set, rule ``device_*``) that no injected fault on that
  device explains: a fault of an explaining kind whose [start - slack, end + slack] overlaps the alarm's
  [raised_at, cleared_at or the run's end] (end: ``until``; drift and low_battery last to the run's end;
  other kinds are instants). Explanations: offline <- dropout, disconnect; seq_gaps <- dropout,
  malformed, out_of_range, disconnect, reboot; stuck <- stuck; drift <- drift; out_of_range <-
  out_of_range; low_battery <- low_battery; clock_skew <- clock_skew; and a drift explains what its
  value does at the ends of the range: "<metric> stuck at 0" (a negative drift clamped at 0) and
  out_of_range (a drift past the physical range). ``false_positive_alarms``: the first 20 (rule, device,
  raised_at, message). ``slack`` is 5 min, or 1.25 x the longest spell between monitor cycles in
  simulated time when that is longer (``monitor_cycle_sim_s``, the data's time seen at each new cycle:
  battery and sequence gaps are raised at the cycle's time, and a cycle takes seconds of wall time);
  ``false_positives_at_5_min`` counts them with a slack of 5 min.
- **invariant_violations**: ``twin.storage.alarms.integrity_violations`` (count; the list beside it).

Targets (``targets``, ``targets_met``): dropout (offline) recall >= 0.99, stuck recall >= 0.9, drift
recall >= 0.8, false positives 0, invariant violations 0; a recall with nothing detectable is not met.

    python bench/detection.py [--speed 240] [--seed 1] [--start 2026-11-23T07:00] [--until 23:30 |
                              --duration-hours 16.5] [--rooms 15] [--profile kind=rate,...]
                              [--database-url URL] [--mqtt-url URL] [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson
import psycopg

from bench._common import say, setup_database, stop_group
from simulators.fleet import NOMINAL_INTERVAL_S
from twin.monitoring import device_health as health
from twin.monitoring import drift
from twin.process import die_with_parent
from twin.timetable import Timetable

SITE = "detect"
ROOMS = 15  # 30 devices: 15 sensors, 15 luminaires on one storey (each other's drift neighbours)
TZ = ZoneInfo("Asia/Shanghai")
#: Per message (low_battery: per message of a battery device); about 44,000 messages in 07:00-23:30.
PROFILE = ("dropout=5e-4,stuck=3e-4,drift=5e-4,spike=3e-4,duplicate=5e-4,out_of_order=5e-4,malformed=3e-4,"
           "reboot=1e-4,out_of_range=2e-4,low_battery=2e-4")
EXCLUDED = ["clock_skew"]
INTENDED = {"dropout": "device_offline", "stuck": "device_stuck", "drift": "device_drift",
            "out_of_range": "device_out_of_range", "low_battery": "device_low_battery"}
EXPLAINS = {
    "device_offline": {"dropout", "disconnect"},
    "device_seq_gaps": {"dropout", "malformed", "out_of_range", "disconnect", "reboot"},
    "device_stuck": {"stuck"}, "device_drift": {"drift"}, "device_out_of_range": {"out_of_range"},
    "device_low_battery": {"low_battery"}, "device_clock_skew": {"clock_skew"},
}
#: Faults that last until the run ends (no ``until`` logged).
PERSISTENT = {"drift", "low_battery"}
#: How early an alarm may be raised before its fault's logged start, and how late after its end.
EARLY = timedelta(minutes=2)
SLACK = timedelta(minutes=5)
STUCK_MARGIN = timedelta(minutes=2)
TARGETS = {"dropout": 0.99, "stuck": 0.9, "drift": 0.8}
MONITOR_INTERVAL_S = 1.0
AFTER_CYCLES = 3
START_WAIT_S = 120.0
DRAIN_IDLE_S = 3.0
DRAIN_LIMIT_S = 120.0
TICK_S = 0.5
PROGRESS_EVERY_S = 20.0
SIGTERM_WAIT_S = 20.0


# -- the services -------------------------------------------------------------------
class Service:
    """A ``campus-twin`` subcommand as users run it, in a process group of its own, logging to a file."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        exe = Path(sys.executable).with_name("campus-twin")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "twin.cli"]
        self.name, self.log_path = name, workdir / f"{name}.log"
        self.sigterm_stop_s: float | None = None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([*cmd, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                         start_new_session=True,
                                         preexec_fn=die_with_parent)  # noqa: PLW1509 - async-signal-safe

    def exited(self) -> int | None:
        return self.proc.poll()

    def tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGTERM, as a service manager sends it; then SIGKILL of the whole group, whatever is left."""
        took = stop_group(self.proc, SIGTERM_WAIT_S)
        if took is not None:
            self.sigterm_stop_s = took


class Db:
    """Short queries of the benchmark's database (autocommit)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def one(self, query: str, params: tuple = ()) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None

    def data_time(self) -> datetime | None:
        from twin.storage.monitoring import data_time

        return data_time(self.conn)

    def readings(self) -> int:
        return int(self.one("SELECT count(*) FROM readings"))

    def close(self) -> None:
        self.conn.close()


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, *services: Service) -> Any:
    """Poll ``predicate`` every tick until truthy; stop the benchmark when a service exits or on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for s in services:
            if s.exited() is not None:
                raise SystemExit(f"{s.name} exited with code {s.exited()} while waiting for {what}:\n{s.tail()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {timeout:.0f} s")
        time.sleep(TICK_S)


def cycles(monitor: Service) -> int:
    """Monitor cycles done so far (its ``-v`` log line per cycle)."""
    return monitor.log_path.read_text(errors="replace").count("monitor cycle raised=")


# -- the run --------------------------------------------------------------------------
def run(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> dict:
    start, end = args.start, args.end
    if args.mqtt_url:
        mqtt_url = args.mqtt_url
    else:
        from twin.messaging.broker import MosquittoBroker

        broker = MosquittoBroker(tmp / "mosquitto")
        stack.callback(broker.stop)
        mqtt_url = broker.url
    db_url, drop = setup_database(tmp, SITE, args.rooms, args.database_url, database="detection")
    stack.callback(drop)
    db = Db(db_url)
    stack.callback(db.close)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUS_TWIN_")}
    env["CAMPUS_TWIN_DATA_DIR"] = str(tmp / "data")
    common = ["--database-url", db_url, "--mqtt-url", mqtt_url]
    tag = os.getpid()
    span_s = (end - start).total_seconds()
    say(f"detection: {2 * args.rooms} devices, {start.astimezone(TZ):%Y-%m-%d %H:%M}-{end.astimezone(TZ):%H:%M} "
        f"local at speed {args.speed:g} (~{span_s / args.speed:.0f} s), seed {args.seed}, mqtt {mqtt_url}")

    ingest = Service("ingest", [*common, "ingest", "--client-id", f"campus-detect-ingest-{tag}"], tmp, env)
    stack.callback(ingest.stop)
    from twin.storage.listening import last_heard

    wait_until("ingest listening", lambda: last_heard(db.conn), START_WAIT_S, ingest)
    fault_log = tmp / "faults.jsonl"
    t0 = time.monotonic()
    sim = Service("simulate", [*common, "simulate", "--speed", f"{args.speed:g}", "--start", start.isoformat(),
                               "--faults", args.profile, "--fault-log", str(fault_log), "--seed", str(args.seed),
                               "--duration", f"{span_s / args.speed * 2 + 120:.0f}",
                               "--client-id", f"campus-detect-sim-{tag}"], tmp, env)
    stack.callback(sim.stop)
    wait_until("readings stored", db.data_time, START_WAIT_S, ingest, sim)
    monitor = Service("monitor", ["-v", *common, "monitor", "--clock", "data", "--interval", f"{MONITOR_INTERVAL_S:g}"],
                      tmp, env)
    stack.callback(monitor.stop)
    say("ingest, simulate and monitor --clock data running")

    shown, seen, at = time.monotonic(), 0, []  # at: the data's time when each new monitor cycle was seen
    while True:
        now = db.data_time()
        if cycles(monitor) > seen and now is not None:
            seen = cycles(monitor)
            at.append(now)
        if now is not None and now >= end:
            break
        for s in (ingest, sim, monitor):
            if s.exited() is not None:
                raise SystemExit(f"{s.name} exited with code {s.exited()} mid-run:\n{s.tail()}")
        if time.monotonic() - shown >= PROGRESS_EVERY_S:
            shown = time.monotonic()
            say(f"    sim {now.astimezone(TZ):%H:%M} local: {count_lines(fault_log)} faults, "
                f"{db.one('SELECT count(*) FROM alarms WHERE device_id IS NOT NULL')} device alarms, "
                f"{cycles(monitor)} monitor cycles")
        time.sleep(TICK_S)
    sim.stop()
    sim_wall_s = round(time.monotonic() - t0, 1)
    say(f"simulation reached {end.astimezone(TZ):%H:%M} local in {sim_wall_s:.0f} s; draining ingest")
    drain(db)
    done = cycles(monitor) + AFTER_CYCLES
    wait_until("the monitor's last cycles", lambda: cycles(monitor) >= done, 60 + 10 * AFTER_CYCLES, monitor)
    monitor.stop()
    ingest.stop()
    run_end = db.data_time() or end
    faults = [orjson.loads(line) for line in fault_log.read_bytes().splitlines() if line.strip()]
    alarms = read_alarms(db.conn)
    kinds = dict(db.conn.execute("SELECT device_id, kind FROM devices WHERE site_id = %s", (SITE,)).fetchall())
    from twin.storage.alarms import integrity_violations

    violations = integrity_violations(db.conn)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(at)]
    slack = max(SLACK, timedelta(seconds=1.25 * max(gaps, default=MONITOR_INTERVAL_S * args.speed)))
    result = score(faults, alarms, kinds, run_end=run_end, slack=slack,
                   drift_seen=lambda f: drift_seen(db.conn, f, kinds, run_end))
    result |= {"invariant_violations": len(violations), "invariant_violation_list": violations[:20],
               "excluded": EXCLUDED, "profile": args.profile, "seed": args.seed, "speed": args.speed,
               "devices": len(kinds), "start": start.astimezone(TZ).isoformat(),
               "end": run_end.astimezone(TZ).isoformat(timespec="seconds"), "sim_wall_s": sim_wall_s,
               "monitor_cycles": cycles(monitor), "readings": db.readings(),
               "monitor_cycle_sim_s": {"p50": percentile(gaps, 0.5), "max": percentile(gaps, 1.0)},
               "dead_letters": int(db.one("SELECT count(*) FROM dead_letters"))}
    result |= targets(result)
    return result


def drain(db: Db) -> None:
    """Until ingest has stored nothing new for a few seconds (or a bound): the simulator is stopped."""
    last, changed, t = -1, time.monotonic(), time.monotonic()
    while time.monotonic() - t < DRAIN_LIMIT_S:
        rows = db.readings()
        if rows != last:
            last, changed = rows, time.monotonic()
        elif time.monotonic() - changed >= DRAIN_IDLE_S:
            return
        time.sleep(TICK_S)


def count_lines(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.read_bytes().count(b"\n")
    return 0


# -- scoring ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Alarm:
    rule: str
    device: str
    raised_at: datetime
    known_at: datetime
    cleared_at: datetime | None
    message: str


def read_alarms(conn: psycopg.Connection) -> list[Alarm]:
    rows = conn.execute(
        """SELECT a.rule, d.device_id, a.raised_at, a.known_at, a.cleared_at, a.message FROM alarms a
           JOIN devices d ON d.id = a.device_id WHERE a.rule LIKE 'device\\_%%' ORDER BY a.raised_at, a.id""").fetchall()
    return [Alarm(*r) for r in rows]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def fault_end(f: dict, run_end: datetime) -> datetime:
    """``until`` when logged; the run's end for faults that last (drift, low battery); else the instant."""
    if f.get("until"):
        return min(when(f["until"]), run_end) if f["kind"] != "dropout" else when(f["until"])
    return run_end if f["kind"] in PERSISTENT else when(f["ts"])


def drift_seen(conn: psycopg.Connection, f: dict, kinds: dict[str, str], run_end: datetime) -> str | None:
    """Why the drift rule cannot see a drift in the run's last drift window, from what was stored: its
    metric read 0 there (the simulator's clamp: a flat 0 has no trend), or fewer than half the expected
    readings of it were stored (its value left the physical range: the messages are dead letters)."""
    n, low = conn.execute(
        """SELECT count(*), min(r.value) FROM readings r JOIN devices d ON d.id = r.device_id JOIN metrics m
           ON m.metric_id = r.metric_id WHERE d.device_id = %s AND m.name = %s AND r.ts >= %s AND r.ts <= %s""",
        (f["device"], f["metric"], run_end - drift.WINDOW, run_end)).fetchone()
    expected = drift.WINDOW.total_seconds() / NOMINAL_INTERVAL_S.get(kinds.get(f["device"], ""), 60.0)
    if n < expected / 2:
        return "left_physical_range"
    if low is not None and low <= 0:
        return "clamped_at_0"
    return None


def why_not(f: dict, faults: list[dict], kinds: dict[str, str], run_end: datetime,
            drift_seen: Callable[[dict], str | None]) -> str | None:
    """None when the intended rule can see the fault, else why not (module notes, "detectable")."""
    kind, start = f["kind"], when(f["ts"])
    if kind == "dropout":
        interval = timedelta(seconds=NOMINAL_INTERVAL_S.get(kinds.get(f["device"], ""), 60.0))
        return None if when(f["until"]) - start > (health.OFFLINE_INTERVALS + 1) * interval else "too_short"
    if kind == "stuck":
        metric, end = f["metric"], min(when(f["until"]), run_end)
        after = health.STUCK_AFTER.get(metric)
        floor = health.STUCK_ONLY_ABOVE.get(metric)
        if after is None:
            return "no_stuck_rule"
        if floor is not None and f["value"] <= floor:
            return "below_floor"
        if end - start < after + STUCK_MARGIN:
            return "too_short"
        if any(g["kind"] == "drift" and g["device"] == f["device"] and g["metric"] == metric
               and when(g["ts"]) < end for g in faults):
            return "masked_by_drift"
        return None
    if kind == "drift":
        bound = drift.BOUNDS.get(f["metric"])
        if bound is None:
            return "no_bound"
        if start > run_end - drift.WINDOW - timedelta(hours=1):
            return "too_late"
        if abs(f["per_hour"]) * (drift.WINDOW / timedelta(hours=1)) <= bound:
            return "too_slow"
        return drift_seen(f)
    return None if kind in INTENDED else "no_rule"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1], 1) if q < 1 \
        else round(max(values), 1)


def score(faults: list[dict], alarms: list[Alarm], kinds: dict[str, str], *, run_end: datetime,
          slack: timedelta, drift_seen: Callable[[dict], str | None]) -> dict:
    """Recall, delays and false positives of the alarms against the fault log (module notes)."""
    faults = [f for f in faults if when(f["ts"]) <= run_end]
    by_rule_device: dict[tuple[str, str], list[Alarm]] = defaultdict(list)
    for a in alarms:
        by_rule_device[(a.rule, a.device)].append(a)
    injected = Counter(f["kind"] for f in faults)
    can, got, covered = Counter(), Counter(), Counter()
    unseen: dict[str, Counter] = defaultdict(Counter)
    delays: dict[str, list[float]] = defaultdict(list)
    missed: dict[str, list[dict]] = defaultdict(list)
    for f in faults:
        rule = INTENDED.get(f["kind"])
        if rule is None:
            continue
        reason = why_not(f, faults, kinds, run_end, drift_seen)
        if reason is not None:
            unseen[f["kind"]][reason] += 1
            continue
        kind, start, end = f["kind"], when(f["ts"]), fault_end(f, run_end)
        can[kind] += 1
        mine = by_rule_device.get((rule, f["device"]), [])
        hit = next((a for a in mine if start - EARLY <= a.raised_at <= end + slack), None)
        if hit is not None:
            got[kind] += 1
            delays[kind].append((hit.known_at - start).total_seconds())
        elif any(a.raised_at < start and (a.cleared_at is None or a.cleared_at >= start) for a in mine):
            got[kind] += 1
            covered[kind] += 1
        else:
            missed[kind].append({k: v for k, v in f.items() if k != "site"})
    unexplained = []
    for a in alarms:
        if not any(explains(f, a, run_end, slack) for f in faults):
            unexplained.append(a)
    every = [d for kind in INTENDED for d in delays[kind]]
    return {
        "recall": {k: round(got[k] / can[k], 3) if can[k] else None for k in INTENDED},
        "injected": dict(sorted(injected.items())),
        "detectable": {k: can[k] for k in INTENDED},
        "detected": {k: got[k] for k in INTENDED},
        "not_detectable": {k: dict(unseen[k]) for k in INTENDED if unseen[k]},
        "covered_by_open_alarm": {k: covered[k] for k in INTENDED if covered[k]},
        "missed": {k: v[:10] for k, v in missed.items()},
        "delay_p50_s": percentile(every, 0.5),
        "delay_max_s": percentile(every, 1.0),
        "delay_by_kind_s": {k: {"p50": percentile(delays[k], 0.5), "max": percentile(delays[k], 1.0)}
                            for k in INTENDED},
        "alarms_by_rule": dict(sorted(Counter(a.rule for a in alarms).items())),
        "false_positives": len(unexplained),
        "false_positives_at_5_min": sum(1 for a in alarms if not any(explains(f, a, run_end, SLACK) for f in faults)),
        "false_positives_by_rule": dict(sorted(Counter(a.rule for a in unexplained).items())),
        "false_positive_alarms": [{"rule": a.rule, "device": a.device, "raised_at": a.raised_at.isoformat(),
                                   "message": a.message} for a in unexplained[:20]],
        "slack_s": slack.total_seconds(),
    }


def explains(f: dict, a: Alarm, run_end: datetime, slack: timedelta) -> bool:
    """Whether fault ``f`` explains alarm ``a``: an explaining kind on its device, overlapping it (± slack).
    Besides :data:`EXPLAINS`, a drift explains what its value does at the ends of the range: a negative
    drift clamped at 0 is its metric "stuck at 0", and a drift past the physical range makes its messages
    dead letters (``device_out_of_range``)."""
    if f["device"] != a.device or not (when(f["ts"]) - slack <= (a.cleared_at or run_end)
                                       and a.raised_at <= fault_end(f, run_end) + slack):
        return False
    if f["kind"] in EXPLAINS.get(a.rule, set()):
        return True
    if f["kind"] != "drift":
        return False
    if a.rule == "device_stuck":
        return f["per_hour"] < 0 and f"{f['metric']} stuck at 0 " in a.message
    return a.rule == "device_out_of_range"


def targets(result: dict) -> dict:
    out: dict[str, dict] = {}
    for kind, goal in TARGETS.items():
        value = result["recall"][kind]
        out[f"{kind}_recall"] = {"target": f">= {goal}", "value": value,
                                 "met": value is not None and value >= goal}
    out["false_positives"] = {"target": "== 0", "value": result["false_positives"],
                              "met": result["false_positives"] == 0}
    out["invariant_violations"] = {"target": "== 0", "value": result["invariant_violations"],
                                   "met": result["invariant_violations"] == 0}
    return {"targets": out, "targets_met": all(t["met"] for t in out.values())}


# -- options ------------------------------------------------------------------------------
def default_day(now: datetime, tt: Timetable) -> date:
    """The latest school day whose 07:00 to the next day's 01:00 (local) is wholly past."""
    day = (now.astimezone(TZ) - timedelta(hours=2)).date() - timedelta(days=1)
    while not tt.school_day(day):
        day -= timedelta(days=1)
    return day


def parse_start(text: str | None) -> datetime:
    if text is None:
        return datetime.combine(default_day(datetime.now(UTC), Timetable()), datetime.min.time(), TZ) \
            + timedelta(hours=7)
    value = datetime.fromisoformat(text)
    if len(text) <= 10:  # a date
        value += timedelta(hours=7)
    return value if value.tzinfo else value.replace(tzinfo=TZ)


def parse_until(text: str, start: datetime) -> datetime:
    """``HH:MM`` (local, on the start's day; the next day when not after the start) or an ISO date-time."""
    if len(text) <= 5 and ":" in text:
        h, m = (int(x) for x in text.split(":"))
        local = start.astimezone(TZ)
        end = local.replace(hour=h, minute=m, second=0, microsecond=0)
        return end if end > local else end + timedelta(days=1)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=TZ)


def keep_logs(tmp: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for src, name in ((tmp / "ingest.log", "ingest.log"), (tmp / "simulate.log", "simulate.log"),
                      (tmp / "monitor.log", "monitor.log"), (tmp / "faults.jsonl", "faults.jsonl"),
                      (tmp / "mosquitto" / "mosquitto.log", "mosquitto.log"), (tmp / "pgdata" / "log", "postgresql.log")):
        with contextlib.suppress(OSError):
            shutil.copyfile(src, to / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=240.0, help="simulated seconds per real second")
    ap.add_argument("--seed", type=int, default=1, help="the simulation's and the faults' seed")
    ap.add_argument("--start", help="simulated start, local (Asia/Shanghai) unless an offset is given; a date means "
                                    "its 07:00; default: 07:00 of the latest school day wholly past")
    until = ap.add_mutually_exclusive_group()
    until.add_argument("--until", default="23:30", help="simulated end: HH:MM local or an ISO date-time")
    until.add_argument("--duration-hours", type=float, help="simulated hours from the start, instead of --until")
    ap.add_argument("--rooms", type=int, default=ROOMS, help="classrooms (a sensor and a luminaire each)")
    ap.add_argument("--profile", default=PROFILE, help="the fault profile (kind=rate,...; docs/simulators.md)")
    ap.add_argument("--database-url", help="a PostgreSQL server for a scratch database; default: an embedded "
                                           "PostgreSQL of the benchmark's own")
    ap.add_argument("--mqtt-url", help="a broker to use; default: a Mosquitto of the benchmark's own")
    ap.add_argument("--keep-logs", type=Path, help="copy the services' logs and the fault log here")
    args = ap.parse_args()
    args.start = parse_start(args.start)
    args.end = (args.start + timedelta(hours=args.duration_hours) if args.duration_hours
                else parse_until(args.until, args.start))
    if args.end <= args.start or args.end > datetime.now(UTC) - timedelta(minutes=10):
        ap.error("the simulated span must end after its start and in the past")
    if "clock_skew" in args.profile:
        say("note: clock_skew is judged only on the wall clock; its alarms are not scored")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as for Ctrl-C
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="campus-detect-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            with contextlib.ExitStack() as stack:
                out = run(args, tmp, stack)
        finally:
            if args.keep_logs:
                keep_logs(tmp, args.keep_logs)
    out["elapsed_s"] = round(time.monotonic() - t, 1)
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
