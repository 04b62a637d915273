"""A file that is not a whole IFC model is refused before anything is written; ifcZIP and ifcXML.

The broken files are made here from the real files of ../shared/ifc: a file with no IfcProject,
a real file cut in half with a trailer appended, duplicate entity ids, two projects, no spatial
tree, a schema IfcOpenShell cannot read. Each is refused with one line and exit code 1, and
the site loaded before (from a real file) keeps every row as it was (row versions included).
"""

from __future__ import annotations

import io
import re
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import ifcopenshell
import psutil
import pytest
from click.testing import CliRunner

from dashboard.uploads import UploadError, check_ifc
from models_bim.archive import ArchiveLimits, ifc_spf
from models_bim.errors import IfcReadError
from models_bim.importer import import_file
from models_bim.load import read_model
from tests.test_bim_revisions import snapshot
from twin.cli import main
from twin.database import connection
from twin.storage.model import load_model

FZK = "ac20-fzk-haus_ifc4_archicad20.ifc"
OSH = "osh-flat_ifc4_revit2017_mm.ifc"
HEADER = ("ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('ViewDefinition [CoordinationView]'),'2;1');\n"
          "FILE_NAME('x.ifc','2026-01-01T00:00:00',(''),(''),'','','');\nFILE_SCHEMA(('{schema}'));\nENDSEC;\nDATA;\n")
TRAILER = b"ENDSEC;END-ISO-10303-21;\n"


def header(schema: str = "IFC4") -> bytes:
    return HEADER.format(schema=schema).encode()


def cut_mid_line(data: bytes) -> bytes:
    """The first half of a real file, as a copy interrupted mid-way leaves it, with a trailer appended."""
    return data[: len(data) // 2] + TRAILER


def cut_at_line(data: bytes) -> bytes:
    """The whole entity lines of the first half, with a trailer appended (no fragment gives it away)."""
    half = data[: len(data) // 2]
    return half[: half.rfind(b"\n") + 1] + TRAILER


def no_project(_: bytes) -> bytes:
    """The 10-line file of the issue: a valid header and one IFCCARTESIANPOINT."""
    made = header() + b"#1=IFCCARTESIANPOINT((0.,0.,0.));\nENDSEC;\nEND-ISO-10303-21;\n"
    assert made.count(b"\n") == 10
    return made


def duplicate_id(data: bytes) -> bytes:
    """An entity line written twice (a bad merge of two exports)."""
    line = re.search(rb"\n(#\d+\s*=\s*IFCCARTESIANPOINT[^\n]*\n)", data).group(1)
    return data.replace(line, line + line, 1)


def two_projects(data: bytes) -> bytes:
    """A second project (its own id and GlobalId) next to the first."""
    line = re.search(rb"\n(#\d+\s*=\s*IFCPROJECT\([^\n]*\n)", data).group(1)
    copy = re.sub(rb"'[^']*'", b"'0Hv6K1kNf8Vx1GcJcrbrZ4'", re.sub(rb"^#\d+", b"#999999", line), count=1)
    return data.replace(line, line + copy, 1)


def no_spatial_tree(_: bytes) -> bytes:
    """A project with units and a representation context, and nothing in it: no site, building or storey."""
    return header() + (
        b"#1=IFCPROJECT('2Z7jr$LJL1fPHyXTs5Oo3R',$,'Empty',$,$,$,$,(#4),#3);\n"
        b"#2=IFCSIUNIT(*,.LENGTHUNIT.,$,.METRE.);\n#3=IFCUNITASSIGNMENT((#2));\n"
        b"#4=IFCGEOMETRICREPRESENTATIONCONTEXT($,'Model',3,1.E-05,#6,$);\n"
        b"#5=IFCCARTESIANPOINT((0.,0.,0.));\n#6=IFCAXIS2PLACEMENT3D(#5,$,$);\n"
    ) + b"ENDSEC;\nEND-ISO-10303-21;\n"


def schema_rc4(data: bytes) -> bytes:
    return data.replace(b"FILE_SCHEMA(('IFC4'))", b"FILE_SCHEMA(('IFC4X3_RC4'))", 1)


MISSING_98 = "truncated or corrupt IFC: 98 references to missing entities, e.g. #"
#: case -> (how the file is made from FZK-Haus, how the one-line error starts)
BROKEN: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "no IfcProject (10 lines)": (no_project, "no IfcProject in the file"),
    "cut mid-line, trailer appended": (cut_mid_line, "truncated or corrupt IFC: "),
    "cut at a line end, trailer appended": (cut_at_line, MISSING_98),
    "duplicate entity id": (duplicate_id, "duplicate entity id #"),
    "two IfcProjects": (two_projects, "2 IfcProject in the file"),
    "no spatial tree": (no_spatial_tree, "no site, building or storey"),
    "unsupported schema": (schema_rc4, "unsupported schema IFC4X3_RC4"),
}


@pytest.fixture
def fzk_site(twin_db: str, shared_ifc: Path) -> str:
    """The twin database (site t1) with FZK-Haus loaded as site ``fzk`` from the real file (7 rooms)."""
    import_file(twin_db, shared_ifc / FZK, "fzk")
    return twin_db


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_file_is_one_line_exit_1_and_the_loaded_site_keeps_every_row(
        fzk_site: str, shared_ifc: Path, tmp_path: Path, case: str) -> None:
    make, message = BROKEN[case]
    bad = tmp_path / "revision.ifc"
    bad.write_bytes(make((shared_ifc / FZK).read_bytes()))
    before = snapshot(fzk_site)
    assert len(before["rooms"]) == 3 + 7
    result = CliRunner().invoke(main, ["--database-url", fzk_site, "bim", "load", str(bad), "--site", "fzk"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: " + message) and result.output.count("\n") == 1, result.output
    assert snapshot(fzk_site) == before
    with connection(fzk_site) as conn:
        assert conn.execute("SELECT count(*) FROM bim_imports").fetchone()[0] == 1


def test_the_missing_reference_named_is_one_the_file_uses_and_never_defines(shared_ifc: Path, tmp_path: Path) -> None:
    data = cut_at_line((shared_ifc / FZK).read_bytes())
    (tmp_path / "cut.ifc").write_bytes(data)
    with pytest.raises(IfcReadError) as info:
        read_model(tmp_path / "cut.ifc", site_id="s1")
    count, example = re.fullmatch(r"truncated or corrupt IFC: (\d+) references to missing entities, e\.g\. #(\d+)",
                                  str(info.value)).groups()
    assert int(count) > 0
    assert re.search(rb"#%s[,)]" % example.encode(), data) and not re.search(rb"\n#%s\s*=" % example.encode(), data)


@pytest.mark.parametrize("name", ["ac20-fzk-haus_ifc4_archicad20.ifc", "carwash-mini-project_ifc2x3_tekla2019_mm.ifc",
                                  "duplex-a-arch_ifc2x3_revit2011.ifc", "duplex-electrical_ifc2x3_revit2013_feet.ifc",
                                  "gva-primary-school-educativo_ifc2x3_revit2021.ifc",
                                  "haustechnik-elektro_ifc2x3_ddscad_lights-outlets-switches.ifc",
                                  "ifcopenhouse_ifc4_ifcopenshell05_unnamed.ifc",
                                  "office-a_ifc2x3_revit2011_99spaces.ifc", OSH,
                                  "simple-scene-building-architecture_ifc4_sketchup_nested-sites.ifc",
                                  "van-brienenoordbrug_ifc4x3add2_bricscad-bonsai_no-storeys.ifc"])
def test_every_shared_file_cut_in_half_with_a_trailer_is_refused(shared_ifc: Path, tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(cut_mid_line((shared_ifc / name).read_bytes()))
    with pytest.raises(IfcReadError, match="^truncated or corrupt IFC: "):
        read_model(tmp_path / name, site_id="s1")


def test_duplicate_ids_are_found_before_ifcopenshell_parses_the_file(shared_ifc: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = duplicate_id((shared_ifc / FZK).read_bytes())
    first = int(re.search(rb"\n#(\d+)\s*=\s*IFCCARTESIANPOINT", data).group(1))
    (tmp_path / "dup.ifc").write_bytes(data)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("ifcopenshell.open was called")

    monkeypatch.setattr(ifcopenshell, "open", never)
    with pytest.raises(IfcReadError) as info:
        read_model(tmp_path / "dup.ifc", site_id="s1")
    assert str(info.value) == f"duplicate entity id #{first}"


def test_hashes_in_strings_and_comments_and_packed_lines_are_no_references(shared_ifc: Path, tmp_path: Path) -> None:
    """The cheap scan must not refuse a good file: '#999999' inside a name, a comment with an apostrophe
    (OSH flat's header has one), and every entity on one line, as some writers pack them."""
    data = (shared_ifc / OSH).read_bytes()
    assert b"W3C's" in data  # in a /* comment */
    start = data.index(b"\nDATA;") + len(b"\nDATA;")
    named = data.replace(b"'Treppenhaus'", b"'Treppenhaus #999999 O''Brien'", 1)
    packed = named[:start] + named[start:].replace(b"\r\n", b"").replace(b"\n", b"")
    assert packed[start:].count(b"\n") == 0
    (tmp_path / "named.ifc").write_bytes(named)
    (tmp_path / "packed.ifc").write_bytes(packed)
    original = read_model(shared_ifc / OSH, site_id="s1")
    for path in (tmp_path / "named.ifc", tmp_path / "packed.ifc"):
        model = read_model(path, site_id="s1")
        assert [r.footprint.area for r in model.rooms] == [r.footprint.area for r in original.rooms]
        assert "Treppenhaus #999999 O'Brien" in {r.name for r in model.rooms} | {r.long_name for r in model.rooms}


@pytest.mark.parametrize("schema", ["IFC4X3_RC4", "IFC4X1", "IFC2X3_TC1", "IFC4X3"])
def test_a_schema_ifcopenshell_cannot_read_names_itself(shared_ifc: Path, tmp_path: Path, schema: str) -> None:
    data = (shared_ifc / FZK).read_bytes().replace(b"FILE_SCHEMA(('IFC4'))", b"FILE_SCHEMA(('%s'))" % schema.encode())
    (tmp_path / "s.ifc").write_bytes(data)
    with pytest.raises(IfcReadError) as info:
        read_model(tmp_path / "s.ifc", site_id="s1")
    assert str(info.value).startswith(f"unsupported schema {schema} (")
    assert "IFC4X3_ADD2" in str(info.value)  # what can be read instead


# --- ifcZIP and ifcXML -------------------------------------------------------------------------------


def zipped(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_an_ifczip_loads_to_the_same_twin_as_its_file(db_url: str, shared_ifc: Path, tmp_path: Path) -> None:
    real = shared_ifc / OSH
    archive = zipped(tmp_path / "osh-flat.ifczip", {real.name: real.read_bytes()})
    import_file(db_url, real, "plain")
    result = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(archive), "--site", "zipped"])
    assert result.exit_code == 0, result.output
    assert "osh-flat.ifczip" in result.output and "9 rooms" in result.output
    with connection(db_url) as conn:
        plain, from_zip = load_model(conn, "plain"), load_model(conn, "zipped")
    assert from_zip.rooms == plain.rooms and from_zip.devices == plain.devices
    assert from_zip.storeys == plain.storeys and from_zip.buildings == plain.buildings


def test_a_zip_bomb_is_refused_without_writing_what_it_expands_to(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zipped(tmp_path / "bomb.ifczip", {"bomb.ifc": header() + b"\0" * (200 * 2**20)})
    assert bomb.stat().st_size < 2**20
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    io_before = psutil.Process().io_counters()
    with pytest.raises(IfcReadError) as info:
        read_model(bomb, site_id="s1")
    written = psutil.Process().io_counters().write_chars - io_before.write_chars
    assert str(info.value).startswith("ifcZIP refused: bomb.ifc expands to more than 100 times its compressed size")
    assert written < 40 * 2**20
    assert list(scratch.iterdir()) == []  # nothing left behind


def _lie_about_size(archive: Path, size: int) -> None:
    """Write ``size`` as the member's uncompressed size in its local header and central directory."""
    data = bytearray(archive.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<I", data, central + 24, size)
    archive.write_bytes(bytes(data))


def test_an_ifczip_over_the_size_limit_or_lying_about_its_size_is_refused(shared_ifc: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = (shared_ifc / OSH).read_bytes()
    limits = ArchiveLimits(max_extracted_bytes=len(real))
    big = zipped(tmp_path / "big.ifczip", {OSH: real * 4})
    with pytest.raises(IfcReadError, match=rf"^ifcZIP refused: {OSH} is larger than 0.25 MB uncompressed"), \
            ifc_spf(big, limits):
        pass
    lying = zipped(tmp_path / "lying.ifczip", {OSH: real * 4})
    _lie_about_size(lying, 1000)  # says 1000 bytes, holds 1 MB: extraction stops at what it says, then the CRC fails
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(IfcReadError, match=rf"^ifcZIP refused: {OSH} is corrupt"), ifc_spf(lying, limits):
        pass
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(("members", "message"), [
    ({"a.ifc": b"x", "b.ifc": b"y"}, "ifcZIP refused: it must hold one file, it holds 2 (a.ifc, b.ifc)"),
    ({}, "ifcZIP refused: it holds no file"),
    ({"model.ifcXML": b"<?xml version='1.0'?><ifcXML/>"}, "ifcXML is not supported; export IFC-SPF"),
])
def test_an_ifczip_holds_exactly_one_ifc_spf_file(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    archive = zipped(tmp_path / "x.ifczip", members)
    with pytest.raises(IfcReadError) as info:
        read_model(archive, site_id="s1")
    assert str(info.value).startswith(message)


def test_ifcxml_is_refused_because_ifcopenshell_cannot_read_it(tmp_path: Path) -> None:
    xml = tmp_path / "model.ifcxml"
    xml.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n<ifcXML xmlns="http://www.buildingsmart-tech.org/'
                    b'ifcXML/IFC4/final"><IfcProject id="i1" GlobalId="0Hv6K1kNf8Vx1GcJcrbrZ4"/></ifcXML>\n')
    with pytest.raises(NotImplementedError):  # IfcOpenShell 0.9: "Reading .ifcXML files is not currently supported."
        ifcopenshell.open(str(xml))
    renamed = tmp_path / "model.ifc"
    renamed.write_bytes(xml.read_bytes())
    for path in (xml, renamed):  # by its content, whatever its name
        with pytest.raises(IfcReadError) as info:
            read_model(path, site_id="s1")
        assert str(info.value) == "ifcXML is not supported; export IFC-SPF (.ifc) from the authoring tool"


def test_the_dashboard_upload_takes_an_ifczip_and_refuses_what_the_loader_would(shared_ifc: Path) -> None:
    def blob(members: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return out.getvalue()

    assert check_ifc(blob({OSH: (shared_ifc / OSH).read_bytes()})) == "IFC4"
    with pytest.raises(UploadError, match=r"^ifcZIP refused: it must hold one file, it holds 2"):
        check_ifc(blob({"a.ifc": b"x", "b.ifc": b"y"}))
    with pytest.raises(UploadError, match=r"^ifcXML is not supported; export IFC-SPF"):
        check_ifc(b'<?xml version="1.0"?>\n<ifcXML/>')
    with pytest.raises(UploadError, match=r"^ifcXML is not supported; export IFC-SPF"):
        check_ifc(blob({"m.ifcxml": b"<?xml version='1.0'?><ifcXML/>"}))
    with pytest.raises(UploadError, match=r"^not an IFC file"):
        check_ifc(blob({"notes.ifc": b"plain text"}))
