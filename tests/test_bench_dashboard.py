"""Smoke test of bench/dashboard.py at a tiny size: it runs the network path (2 schools) and prints the promised
JSON; the publish -> screen part too when headless Chromium is installed (as in CI)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Today's keys (the big storey's floor plan, the 30-day chart) and the network's.
SECONDS = {"floorplan_callback_s", "floorplan_bare_query_s", "floorplan_refresh_s", "chart_callback_s",
           "chart_bare_query_s", "overview_s", "overview_bare_query_s", "room_s", "room_bare_query_s", "devices_s",
           "devices_bare_query_s"}
RATIOS = {"floorplan_ratio", "floorplan_refresh_ratio", "chart_ratio", "overview_ratio", "room_ratio",
          "devices_ratio"}
BYTES = {"overview_refresh_bytes", "floorplan_refresh_bytes", "room_refresh_bytes", "devices_refresh_bytes"}


def test_dashboard_benchmark_prints_its_keys(db_url: str, mqtt_url: str) -> None:
    browser = bool(shutil.which("chromedriver") and (shutil.which("chromium") or Path("/usr/bin/chromium").exists()))
    out = subprocess.run([sys.executable, str(REPO / "bench" / "dashboard.py"), "--tiny", "--database-url", db_url,
                          "--mqtt-url", mqtt_url, "--browser", "yes" if browser else "no"],
                         check=False, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert SECONDS | RATIOS | BYTES | {"screen_latency_p95_s", "meets_target"} <= set(result)
    assert result["schools"] == 2 and result["rooms"] == 10 and result["devices"] == 2 * 2 * 13 + 10 * 3
    assert result["chart_points"] >= 20  # a day of hourly buckets
    assert all(result[k] > 0 for k in SECONDS | RATIOS)
    assert all(result[k] > 0 for k in BYTES - {"floorplan_refresh_bytes"})  # a tick with no change sends nothing
    assert result["devices_refresh_bytes"] < 1_000_000
    if browser:
        assert result["screen_latency_samples"] == 4 and result["screen_latency_missed"] == 0
        assert 0 < result["screen_latency_p50_s"] <= result["screen_latency_p95_s"] < 30
    else:
        assert result["screen_latency_p95_s"] is None
