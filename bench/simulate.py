"""Benchmark: how many messages/s the simulator sustains for 10,000 devices, against mosquitto_pub.

Prints one JSON object on stdout (progress on stderr):

- ``sim_msgs_per_s``: telemetry messages/s acknowledged by the broker (QoS 1 PUBACKs) while
  every one of the devices is always due (the simulator flat out: scheduling, physics,
  JSON, publishing);
- ``limit_msgs_per_s``: ``mosquitto_pub -l -q 1 -V mqttv311 -M 1000`` (C, libmosquitto) pushing the same
  payloads, captured from the same models, through the same broker on the same machine;
- ``ratio`` = sim / limit;
- ``paho_msgs_per_s``: the same payloads through one bare client (``twin.messaging.mqtt``, paho
  underneath; no simulation), so ``sim_vs_paho`` shows how much of the gap is the Python MQTT
  client rather than the models;
- ``nominal_msgs_per_s``: what the devices need at their nominal intervals (sensors 30 s,
  luminaires and panels 60 s), and ``nominal_max_lag_s``: how late the scheduler got
  while running them in real time for ``--nominal-seconds`` (it keeps up if this stays
  well under a second); ``headroom`` = sim / nominal.

The devices are an in-memory synthetic network (``simulators.fleet.synthetic_spec``:
14 schools, classrooms of 1 sensor, 9 luminaires, 2 blackboard luminaires, 1 panel),
not a database. A private Mosquitto is started unless ``CAMPUS_TWIN_MQTT_URL`` is set.

    python bench/simulate.py [--devices 10000] [--seconds 20] [--nominal-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulators.fleet import FleetRunner, build_fleet, synthetic_spec
from simulators.models import SCHOOL_TZ
from twin.messaging import contract
from twin.messaging.broker import MosquittoBroker, parse_mqtt_url


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_for(runner: FleetRunner, seconds: float, warmup: float) -> tuple[float, float]:
    """Run the fleet; return (acked msgs/s, published msgs/s) over the window after ``warmup``."""
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    if not runner.started.wait(60):
        raise SystemExit("simulator did not start")
    time.sleep(warmup)
    a0, p0, t0 = runner.acked, runner.published, time.monotonic()
    time.sleep(seconds)
    a1, p1, t1 = runner.acked, runner.published, time.monotonic()
    stop.set()
    thread.join(60)
    return (a1 - a0) / (t1 - t0), (p1 - p0) / (t1 - t0)


def sample_payloads(devices: int, count: int, seed: int) -> list[bytes]:
    """``count`` telemetry payloads from the same models, one sweep of the fleet after another."""
    fleet = build_fleet(synthetic_spec(devices), seed=seed)
    out: list[bytes] = []
    t = datetime(2026, 11, 23, 9, 0, tzinfo=SCHOOL_TZ).timestamp()
    while len(out) < count:
        for dev in fleet:
            dev.seq += 1
            ts = datetime.fromtimestamp(t, UTC)
            out.append(contract.telemetry_payload(ts, dev.seq, dev.model.step(dev.interval_s, ts.astimezone(SCHOOL_TZ))))
            if len(out) >= count:
                break
        t += 30
    return out


def mosquitto_pub_rate(url: str, payloads: list[bytes], workdir: Path) -> float:
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        raise SystemExit("mosquitto_pub is not on PATH (Debian: apt-get install mosquitto-clients)")
    addr = parse_mqtt_url(url)
    lines = workdir / "payloads.txt"
    lines.write_bytes(b"\n".join(payloads) + b"\n")
    cmd = [exe, "-h", addr.host, "-p", str(addr.port), "-q", "1", "-M", "1000", "-V", "mqttv311",
           "-t", contract.topic("bench", "mosquitto-pub", contract.TELEMETRY), "-l", "-i", f"bench-pub-{os.getpid()}"]
    if addr.username:
        cmd += ["-u", addr.username] + (["-P", addr.password] if addr.password else [])
    with lines.open("rb") as stdin:
        t0 = time.monotonic()
        subprocess.run(cmd, stdin=stdin, check=True, timeout=240)
        return len(payloads) / (time.monotonic() - t0)


def paho_rate(url: str, payloads: list[bytes]) -> float:
    """The same payloads through one bare client of the MQTT wrapper (MQTT 3.1.1, QoS 1, same window, the
    simulator's external-loop mode): the Python client's own cost."""
    from simulators.fleet import WINDOW
    from twin.messaging.mqtt import MqttClient

    acked = [0]
    c = MqttClient(url, f"bench-paho-{os.getpid()}", persistent=False, protocol=4, max_inflight=WINDOW,
                   on_published=lambda mid, reason: acked.__setitem__(0, acked[0] + 1))
    c.open()
    while not c.is_connected():
        c.loop(0.05)
    name = contract.topic("bench", "paho", contract.TELEMETRY)
    t0 = time.monotonic()
    for n, payload in enumerate(payloads, 1):
        while n - acked[0] > WINDOW:
            c.loop(0.01)
        c.send(name, payload, qos=1)
        if n % 64 == 0:
            c.loop(0)
    while acked[0] < len(payloads) and time.monotonic() - t0 < 120:
        c.loop(0.01)
    rate = acked[0] / (time.monotonic() - t0)
    c.disconnect()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=20.0, help="Measuring window flat out.")
    ap.add_argument("--nominal-seconds", type=float, default=30.0, help="Real-time run at nominal rates.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        broker = None
        url = os.environ.get("CAMPUS_TWIN_MQTT_URL")
        if not url:
            broker = MosquittoBroker(Path(tmp) / "mosquitto", persist=False)
            url = broker.url
        try:
            spec = synthetic_spec(args.devices)
            say(f"nominal rates: {args.devices} devices in real time for {args.nominal_seconds:.0f} s")
            nominal = FleetRunner(None, url, seed=args.seed, spec=spec, client_id=f"bench-nominal-{os.getpid()}")
            run_for(nominal, args.nominal_seconds, 0.0)
            nominal_rate = sum(1.0 / d.interval_s for d in nominal.fleet)
            say(f"flat out: every device always due, {args.seconds:.0f} s")
            flat = FleetRunner(None, url, seed=args.seed, spec=spec, interval_s=1e-3, client_id=f"bench-flat-{os.getpid()}")
            sim_rate, published_rate = run_for(flat, args.seconds, min(3.0, args.seconds / 4))
            count = int(min(300_000, max(20_000, sim_rate * 5)))
            say(f"limit: mosquitto_pub -l -q 1 with {count} of the same payloads")
            payloads = sample_payloads(args.devices, count, args.seed)
            limit_rate = mosquitto_pub_rate(url, payloads, Path(tmp))
            say("context: the same payloads through one bare paho client")
            bare_rate = paho_rate(url, payloads)
        finally:
            if broker is not None:
                broker.stop()
    result = {
        "devices": len(flat.fleet),
        "device_source": "in-memory synthetic network (simulators.fleet.synthetic_spec), 14 sites",
        "connections": len(flat._conns),
        "qos": 1,
        "sim_msgs_per_s": round(sim_rate, 1),
        "sim_published_per_s": round(published_rate, 1),
        "limit_msgs_per_s": round(limit_rate, 1),
        "ratio": round(sim_rate / limit_rate, 3) if limit_rate else None,
        "paho_msgs_per_s": round(bare_rate, 1),
        "sim_vs_paho": round(sim_rate / bare_rate, 3) if bare_rate else None,
        "nominal_msgs_per_s": round(nominal_rate, 1),
        "nominal_published": nominal.published,
        "nominal_max_lag_s": round(nominal.max_lag_s, 3),
        "nominal_lag_p99_s": round(sorted(nominal.lag_samples)[int(0.99 * (len(nominal.lag_samples) - 1))], 4)
        if nominal.lag_samples else None,
        "headroom": round(sim_rate / nominal_rate, 1) if nominal_rate else None,
        "payload_bytes_mean": round(sum(map(len, payloads)) / len(payloads), 1),
        "broker": "external" if broker is None else "mosquitto (private)",
        "seconds": round(time.monotonic() - t_start, 1),
    }
    import orjson

    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
