"""Smoke test of bench/bim_load.py at a tiny size: it runs and prints the promised JSON."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from tests.conftest import REPO


def test_bim_load_benchmark_prints_its_keys(db_url):
    env = {**os.environ, "CAMPUS_TWIN_DATABASE_URL": db_url}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bim_load.py"), "--tiny"], capture_output=True,
                         text=True, timeout=120, env=env, check=True)
    result = orjson.loads(out.stdout)
    assert {"import_s", "bare_iteration_s", "ratio", "spaces", "devices", "peak_rss_mb", "reimport_s"} <= set(result)
    assert (result["spaces"], result["devices"]) == (13, 52)  # 1 building, 2 storeys x 2 classrooms, 1 lab
    assert result["import_s"] > 0 and result["bare_iteration_s"] > 0 and result["peak_rss_mb"] > 0
    # the times are printed rounded to 1 ms, the ratio from the unrounded ones: allow for the rounding
    imp, bare, ratio = result["import_s"], result["bare_iteration_s"], result["ratio"]
    assert abs(ratio - imp / bare) <= ratio * (0.0005 / imp + 0.0005 / bare) * 1.01 + 0.002
    assert result["largest_shared_file"]["file"] == "office-a_ifc2x3_revit2011_99spaces.ifc"
