"""Smoke test of bench/dashboard.py at a tiny size: it runs and prints the promised JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYS = {"floorplan_callback_s", "floorplan_bare_query_s", "floorplan_ratio", "chart_callback_s",
        "chart_bare_query_s", "chart_ratio"}


def test_dashboard_benchmark_prints_its_keys(db_url: str) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "dashboard.py"), "--tiny", "--database-url", db_url],
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    assert KEYS <= set(result)
    assert result["rooms"] == 10 and result["chart_points"] > 24  # two days of hourly buckets
    assert all(result[k] > 0 for k in KEYS)
