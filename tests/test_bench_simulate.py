"""Smoke test of bench/simulate.py at a tiny size: it runs and prints the promised JSON."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from tests.conftest import REPO, require_mosquitto


def test_simulate_benchmark_prints_its_keys(mqtt_url):
    require_mosquitto("mosquitto_pub")
    env = {**os.environ, "CAMPUS_TWIN_MQTT_URL": mqtt_url}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "simulate.py"), "--devices", "130", "--seconds", "1",
                          "--nominal-seconds", "1"], capture_output=True, text=True, timeout=120, env=env, check=True)
    result = orjson.loads(out.stdout)
    assert {"devices", "sim_msgs_per_s", "limit_msgs_per_s", "ratio", "nominal_msgs_per_s"} <= set(result)
    assert result["devices"] == 130 and result["sim_msgs_per_s"] > 0 and result["limit_msgs_per_s"] > 0
