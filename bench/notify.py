"""Benchmark: alarm raised in the database -> message received by a robot (issue 20).

A scratch database (an embedded PostgreSQL of its own, or one on the server of ``--database-url``) holds
a small school; the notifier's worker runs as the monitor runs it (woken after each alarm is recorded),
with a Feishu channel (signed, the documented 5 messages a second and 100 a minute) whose endpoint is a
local stand-in on 127.0.0.1 that checks the signature and notes when each message arrives.

- **latency**: ``--alarms`` alarms raised one at a time, ``--gap`` seconds apart (a steady stream within
  the robot's limits); latency = arrival at the robot - the event's ``recorded_at``; p50, p99, max.
  Target: p99 <= 5 s.
- **burst**: ``--burst`` alarms raised in one transaction on a second channel (another robot, same
  limits); all must arrive (``lost`` = 0) no faster than the limits (``max_in_any_second`` <= 5, at
  most 100 in any minute); the time to deliver them all and the throughput (messages a second).

Prints one JSON object (progress on stderr)::

    python bench/notify.py [--alarms 30] [--gap 0.5] [--burst 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers: the small twin the tests use

from bench._common import say, setup_database
from twin.monitoring.channels.config import parse
from twin.monitoring.channels.dispatch import Dispatcher
from twin.monitoring.notify import Notifier
from twin.storage import alarms

SECRET = "bench-secret"
SITE = "bench-notify"
TARGET_P99_S = 5.0


class Robot:
    """A Feishu bot stand-in: checks the signature, notes (path, arrival time, card title)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float, str]] = []  # (path, arrival, device id)
        self.bad = 0
        self.lock = threading.Lock()
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                at = time.time()
                digest = hmac.new(f"{body['timestamp']}\n{SECRET}".encode(), b"", hashlib.sha256).digest()
                ok = body.get("sign") == base64.b64encode(digest).decode()
                with robot.lock:
                    if ok:
                        content = body["card"]["elements"][0]["text"]["content"]
                        device = re.search(r"\*\*设备\*\*: (\S+)", content)
                        robot.arrivals.append((self.path, at, device.group(1) if device else ""))
                    else:
                        robot.bad += 1
                data = b'{"code":0,"msg":"success"}' if ok else b'{"code":19021,"msg":"sign match fail"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _, _ in self.arrivals if p == path)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=30, help="alarms of the latency phase")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two alarms of the latency phase")
    parser.add_argument("--burst", type=int, default=100, help="alarms raised at once")
    parser.add_argument("--database-url", help="a PostgreSQL server (a scratch database is made and dropped)")
    args = parser.parse_args()
    rooms = (args.alarms + args.burst + 1) // 2 + 1
    robot = Robot()
    base = f"http://127.0.0.1:{robot.server.server_port}"
    cfg = parse({"language": "zh", "base_url": "https://twin.example", "channels": [
        {"name": "latency", "kind": "feishu", "url": f"{base}/latency", "secret": SECRET,
         "rules": ["device_low_battery"]},
        {"name": "burst", "kind": "feishu", "url": f"{base}/burst", "secret": SECRET, "rules": ["device_offline"]},
    ]})
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        url, drop = setup_database(Path(tmp), SITE, rooms, args.database_url, database="bench_notify")
        notifier = Notifier(None, None, channels=Dispatcher(cfg))
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                keys = [r[0] for r in conn.execute("SELECT id FROM devices WHERE site_id = %s ORDER BY id",
                                                   (SITE,)).fetchall()]
                notifier.start(url)
                say(f"latency: {args.alarms} alarms, one every {args.gap:g} s")
                for i in range(args.alarms):
                    alarms.raise_alarm(conn, SITE, "device_low_battery", "warning", f"battery at {i}%",
                                       device_key=keys[i])
                    notifier.wake()  # as the monitor does once its cycle has recorded events
                    time.sleep(args.gap)
                wait_until(lambda: robot.count("/latency") >= args.alarms, 60 + args.alarms)
                say(f"burst: {args.burst} alarms at once")
                burst_keys = keys[args.alarms:args.alarms + args.burst]
                with conn.transaction():
                    for k in burst_keys:
                        alarms.raise_alarm(conn, SITE, "device_offline", "critical", "no data", device_key=k)
                t0 = time.time()
                notifier.wake()
                wait_until(lambda: robot.count("/burst") >= args.burst, 120 + args.burst)
                recorded = {
                    (rule, device): ts.timestamp() for rule, device, ts in conn.execute(
                        """SELECT a.rule, d.device_id, e.recorded_at FROM alarm_events e
                           JOIN alarms a ON a.id = e.alarm_id JOIN devices d ON d.id = a.device_id
                           WHERE a.site_id = %s""", (SITE,)).fetchall()}
        finally:
            notifier.close(drain_s=0)
            drop()

    def latencies(path: str) -> list[float]:
        rule = {"/latency": "device_low_battery", "/burst": "device_offline"}[path]
        return [at - recorded[rule, device] for p, at, device in robot.arrivals if p == path]

    lat = latencies("/latency")
    burst_times = sorted(at for p, at, _ in robot.arrivals if p == "/burst")
    per_second = max((sum(1 for x in burst_times if s <= x < s + 1.0) for s in burst_times), default=0)
    received = len(burst_times)
    duration = (burst_times[-1] - t0) if burst_times else None
    result = {
        "channel": "feishu (signed, 5/s and 100/min)",
        "latency": {"alarms": args.alarms, "received": len(lat), "p50_s": round(statistics.median(lat), 3) if lat
                    else None, "p99_s": round(percentile(lat, 0.99), 3) if lat else None,
                    "max_s": round(max(lat), 3) if lat else None},
        "burst": {"alarms": args.burst, "received": received, "lost": args.burst - received,
                  "duration_s": round(duration, 2) if duration else None,
                  "throughput_per_s": round(received / duration, 2) if duration else None,
                  "max_in_any_second": per_second, "limit_per_second": 5, "limit_per_minute": 100,
                  "latency_p99_s": round(percentile(latencies("/burst"), 0.99), 2) if received else None},
        "bad_signatures": robot.bad,
        "target_p99_s": TARGET_P99_S,
    }
    result["target_met"] = bool(lat) and len(lat) == args.alarms and result["latency"]["p99_s"] <= TARGET_P99_S
    robot.server.shutdown()
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
