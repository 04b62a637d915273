"""Footprints from the child process: the same as in-process, failures said in one line, no child left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import ifcopenshell
import psutil
import pytest

from models_bim import footprint_process
from models_bim.errors import IfcReadError
from models_bim.footprint_process import FootprintProcess
from models_bim.footprints import space_footprints
from models_bim.generate import generate_school
from models_bim.load import read_model
from models_bim.memory import children_peak_rss_bytes

FILES = ["office-a_ifc2x3_revit2011_99spaces.ifc", "ac20-fzk-haus_ifc4_archicad20.ifc",
         "duplex-electrical_ifc2x3_revit2013_feet.ifc"]
#: Every file of ../shared/ifc with spaces: the child reads only what their geometry needs.
FILES_WITH_SPACES = [*FILES, "gva-primary-school-educativo_ifc2x3_revit2021.ifc", "duplex-a-arch_ifc2x3_revit2011.ifc",
                     "osh-flat_ifc4_revit2017_mm.ifc", "simple-scene-building-architecture_ifc4_sketchup_nested-sites.ifc"]


def _children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "footprint_process" in " ".join(p.cmdline())]


@pytest.mark.parametrize("name", FILES_WITH_SPACES)
def test_child_process_gives_the_same_footprints_as_the_import_process(shared_ifc: Path, name: str) -> None:
    path = shared_ifc / name
    f = ifcopenshell.open(str(path))
    here = space_footprints(f, f.by_type("IfcSpace"))
    seen: list[tuple[int, int]] = []
    process = FootprintProcess(path)
    there = process.collect(lambda stage, done, total: seen.append((done, total)))
    assert process.peak_rss_bytes and process.peak_rss_bytes <= children_peak_rss_bytes()
    assert here, "the file has spaces with body geometry"
    assert there.keys() == here.keys()
    for gid, fp in here.items():
        assert there[gid].polygon.equals_exact(fp.polygon, 0), gid  # WKB keeps every coordinate bit for bit
        assert (there[gid].area_m2, there[gid].z_min, there[gid].z_max) == (fp.area_m2, fp.z_min, fp.z_max)
    assert seen and seen[-1][0] == seen[-1][1] == len(f.by_type("IfcSpace"))
    assert _children() == []


def test_the_child_reads_only_what_the_geometry_of_spaces_needs(shared_ifc: Path) -> None:
    path = shared_ifc / FILES[0]
    whole = ifcopenshell.open(str(path))
    read = footprint_process.open_for_geometry(str(path))
    assert len(read.by_type("IfcSpace")) == len(whole.by_type("IfcSpace")) == 99
    assert whole.by_type("IfcRelDefinesByProperties") and whole.by_type("IfcElement")
    assert read.by_type("IfcRelationship") == read.by_type("IfcPropertySet") == read.by_type("IfcElement") == ()
    assert len(read.entity_names()) < 0.8 * len(whole.entity_names())


def test_read_model_through_the_child_process_equals_the_single_process_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "school.ifc"
    generate_school(path, site_id="fp", name="足迹学校", storeys=2, classrooms_per_storey=4, labs=1)
    alone = read_model(path, site_id="fp")
    monkeypatch.setattr(footprint_process, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(footprint_process, "THREADS", 2)
    started: list[FootprintProcess] = []
    real = footprint_process.FootprintProcess
    monkeypatch.setattr(footprint_process, "FootprintProcess", lambda p: started.append(real(p)) or started[-1])
    together = read_model(path, site_id="fp")
    assert len(started) == 1, "the child process was used"
    assert together.rooms == alone.rooms and together.devices == alone.devices
    assert all(r.footprint is not None for r in together.rooms)


def test_a_child_that_dies_is_a_one_line_error(shared_ifc: Path) -> None:
    process = FootprintProcess(shared_ifc / FILES[0])
    process._child.kill()  # as if the geometry kernel had crashed
    with pytest.raises(IfcReadError, match=r"^the geometry kernel failed on this file: footprint process exit code -9"):
        process.collect()
    assert _children() == []


def test_a_file_the_child_cannot_read_is_a_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ifc"
    junk.write_bytes(b"not an ifc file at all\n" * 10)
    with pytest.raises(IfcReadError, match=r"^footprints: .*Error"):
        FootprintProcess(junk).collect()
    assert _children() == []


def test_a_broken_file_stops_the_child_and_says_what_is_wrong(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header looks right, so the child starts; the parent's own check fails and stops it."""
    path = tmp_path / "unreadable.ifc"
    generate_school(path, site_id="fp", name="坏文件", storeys=1, classrooms_per_storey=2, labs=0)
    text = path.read_text()
    head, _, rest = text.partition("DATA;")
    lines = rest.splitlines()
    path.write_text(head + "DATA;" + "\n".join(line.replace("=", "= garbage(", 1) if i % 2 else line
                                               for i, line in enumerate(lines)))
    monkeypatch.setattr(footprint_process, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(footprint_process, "THREADS", 2)
    with pytest.raises(IfcReadError, match="truncated or corrupt IFC"):
        read_model(path, site_id="fp")
    assert _children() == []


def test_the_child_dies_with_an_import_killed_outright(tmp_path: Path) -> None:
    """The dashboard kills an upload's import at its time limit: its footprint process must go too
    (it is told by Linux when its parent dies, and by the broken pipe when it next reports)."""
    path = tmp_path / "big.ifc"
    generate_school(path, site_id="fp", name="大学校", buildings=3, storeys=6, classrooms_per_storey=20, labs=3)
    importer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from models_bim.footprint_process import FootprintProcess\n"
        "FootprintProcess(Path(sys.argv[1]))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert importer.stdout is not None and importer.stdout.readline().strip() == "started"
        child = next(p for p in psutil.Process(importer.pid).children() if "footprint_process" in " ".join(p.cmdline()))
        os.kill(importer.pid, signal.SIGKILL)
        importer.wait(10)
        _gone, alive = psutil.wait_procs([child], timeout=10)
        assert not alive, "the footprint process outlived its parent"
    finally:
        if importer.poll() is None:
            importer.kill()
