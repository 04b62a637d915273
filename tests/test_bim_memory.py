"""Peak memory of an import: this process's high-water mark plus the one its footprint process reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from models_bim import memory
from models_bim.generate import generate_school
from models_bim.importer import import_file


def test_the_peak_is_at_least_what_the_process_holds_now() -> None:
    held = bytearray(64 * 2**20)
    held[::4096] = b"\1" * len(held[::4096])  # touch every page
    assert memory.peak_rss_bytes() >= psutil.Process().memory_info().rss >= 64 * 2**20


def test_a_child_started_from_a_big_process_does_not_count_its_parent() -> None:
    """ru_maxrss would: the kernel carries the parent's high-water mark over exec."""
    held = bytearray(256 * 2**20)
    held[::4096] = b"\1" * len(held[::4096])
    out = subprocess.run([sys.executable, "-c", "from models_bim.memory import peak_rss_bytes; print(peak_rss_bytes())"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) < 128 * 2**20


def test_the_import_peak_adds_the_largest_child_peak(monkeypatch) -> None:
    monkeypatch.setattr(memory, "_children_peak", 0)
    alone = memory.peak_rss_bytes()
    memory.note_child_peak(300 * 2**20)
    memory.note_child_peak(100 * 2**20)
    assert memory.children_peak_rss_bytes() == 300 * 2**20
    assert memory.peak_rss_mb() >= round((alone + 300 * 2**20) / 2**20, 1)


def test_the_load_summary_reports_the_file_size_and_the_peak_memory(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "school.ifc"
    generate_school(path, site_id="mem", name="内存学校", storeys=1, classrooms_per_storey=2, labs=0)
    summary = import_file(db_url, path, "mem")
    assert summary["file_mb"] == round(path.stat().st_size / 1e6, 2)
    assert summary["peak_rss_mb"] >= psutil.Process().memory_info().rss / 2**20 - 1
