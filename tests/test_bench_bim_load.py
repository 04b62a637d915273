"""Smoke test of bench/bim_load.py at a tiny size: it runs and prints the promised JSON."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.conftest import REPO


def test_bim_load_benchmark_prints_its_keys(db_url):
    env = {**os.environ, "CAMPUS_TWIN_DATABASE_URL": db_url}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bim_load.py"), "--tiny"], capture_output=True,
                         text=True, timeout=120, env=env, check=True)
    result = orjson.loads(out.stdout)
    memory_keys = {"peak_rss_mb", "bare_peak_rss_mb", "rss_ratio", "peak_rss_self_mb", "peak_rss_child_mb"}
    assert {"import_s", "bare_iteration_s", "ratio", "spaces", "devices", "reimport_s", *memory_keys} <= set(result)
    assert memory_keys <= set(result["largest_shared_file"])
    for measured in (result, result["largest_shared_file"]):
        _check_memory(measured)
    assert result["peak_rss_child_mb"] == 0  # the tiny campus is read in one process
    assert (result["target_ratio"], result["target_rss_ratio"]) == (3.3, 1.5)
    assert (result["spaces"], result["devices"]) == (13, 52)  # 1 building, 2 storeys x 2 classrooms, 1 lab
    assert result["import_s"] > 0 and result["bare_iteration_s"] > 0 and result["peak_rss_mb"] > 0
    # the times are printed rounded to 1 ms, the ratio from the unrounded ones: allow for the rounding
    imp, bare, ratio = result["import_s"], result["bare_iteration_s"], result["ratio"]
    assert abs(ratio - imp / bare) <= ratio * (0.0005 / imp + 0.0005 / bare) * 1.01 + 0.002
    assert result["largest_shared_file"]["file"] == "office-a_ifc2x3_revit2011_99spaces.ifc"


def _check_memory(measured: dict) -> None:
    """Peak RSS of the import (its process plus its footprint process) and of the bare iteration, each fresh."""
    assert measured["bare_peak_rss_mb"] > 0 and measured["peak_rss_self_mb"] > 0
    assert measured["peak_rss_mb"] == pytest.approx(measured["peak_rss_self_mb"] + measured["peak_rss_child_mb"], abs=0.11)
    assert measured["rss_ratio"] == pytest.approx(measured["peak_rss_mb"] / measured["bare_peak_rss_mb"], abs=0.002)
