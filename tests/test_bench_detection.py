"""Smoke test of bench/detection.py: two simulated hours of a morning with faults, at high speed, on its own
Mosquitto and a scratch database of the test server; it prints one JSON object with the promised keys, and
the alarm invariants hold. No recall or timing is asserted: a short run says little about them."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.conftest import REPO

DETECTION = [sys.executable, str(REPO / "bench" / "detection.py")]
KEYS = {"recall", "injected", "detectable", "detected", "false_positives", "false_positive_alarms", "delay_p50_s",
        "delay_max_s", "invariant_violations", "invariant_violation_list", "excluded", "targets", "targets_met",
        "profile", "seed", "speed", "start", "end", "elapsed_s"}


@pytest.mark.usefixtures("mosquitto_installed")
def test_detection_benchmark_prints_one_json_object(pg_admin_url: str, tmp_path) -> None:
    logs = tmp_path / "logs"
    out = subprocess.run([*DETECTION, "--start", "2026-11-23T07:30", "--until", "09:30", "--speed", "400",
                          "--seed", "3", "--database-url", pg_admin_url, "--keep-logs", str(logs)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-5000:]
    assert len(out.stdout.strip().splitlines()) == 1, out.stdout[-2000:]
    result = orjson.loads(out.stdout)
    assert KEYS <= set(result), sorted(KEYS - set(result))
    assert result["excluded"] == ["clock_skew"]
    assert {"dropout", "stuck", "drift", "out_of_range", "low_battery"} <= set(result["recall"])
    assert sum(result["injected"].values()) > 0, result["injected"]
    assert result["invariant_violations"] == 0, result["invariant_violation_list"]
    assert isinstance(result["false_positives"], int)
    assert (logs / "faults.jsonl").exists() and (logs / "monitor.log").exists()
