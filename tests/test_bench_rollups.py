"""Smoke test of bench/rollups.py at a tiny size on a TimescaleDB server: it runs, prints the promised
JSON, and both ways of keeping rollups give the chart the same answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KEYS = {"ingest_rows_per_s_on_write", "ingest_rows_per_s_caggs", "ingest_rows_per_s_caggs_with_refresh",
        "ingest_ratio", "ingest_ratio_with_refresh", "chart_day_1m_ratio", "chart_span_1h_ratio"}


def test_rollups_benchmark_prints_its_ratios_and_same_answers(timescaledb_admin_url: str) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "rollups.py"), "--tiny",
                          "--database-url", timescaledb_admin_url],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert KEYS <= set(result) and all(result[k] > 0 for k in KEYS)
    assert result["same_answers"] is True
    assert result["rows"] == 3 * 4 * 24 * 60 and result["chart_day_1m_points"] == 24 * 60


def test_rollups_benchmark_refuses_a_server_without_timescaledb_in_one_line(db_url: str, server_backend: str) -> None:
    if server_backend == "timescaledb":
        pytest.skip("needs a plain PostgreSQL test server")
    out = subprocess.run([sys.executable, str(REPO / "bench" / "rollups.py"), "--tiny", "--database-url", db_url],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["bench/rollups.py needs a TimescaleDB server: this one has none"]
