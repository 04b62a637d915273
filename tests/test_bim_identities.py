"""Hardware identities from the IFC: Pset_CampusTwin (HardwareId, IEEEAddress, DevEUI, MACAddress) and
Pset_ManufacturerOccurrence.SerialNumber read by the loader (a malformed value warned about and skipped), stored
by a BIM load, replaced by each revision while ids bound from a CSV stay; conflicts reported, never fatal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import ifcopenshell
import ifcopenshell.api.pset
import ifcopenshell.util.element
import orjson
from click.testing import CliRunner

from models_bim.generate import generate_school
from models_bim.importer import import_file
from models_bim.load import read_model
from tests.helpers import small_twin
from twin.cli import main
from twin.database import connection
from twin.storage import identities as ids
from twin.storage.model import load_model, save_model


def school(path: Path, hardware_ids: dict[str, str] | None = None) -> Path:
    generate_school(path, site_id="h1", name="硬件学校", storeys=1, classrooms_per_storey=3, labs=0,
                    hardware_ids=hardware_ids)
    return path


def run(db_url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", db_url, *args], catch_exceptions=False)


def by_tag(f: ifcopenshell.file) -> dict[str, ifcopenshell.entity_instance]:
    return {e.Tag: e for e in f.by_type("IfcProduct") if getattr(e, "Tag", None)}


def set_properties(f: ifcopenshell.file, element: ifcopenshell.entity_instance, pset_name: str,
                   properties: dict[str, object]) -> None:
    """Add ``properties`` to the element's property set ``pset_name`` (made when it has none)."""
    found = ifcopenshell.util.element.get_pset(element, pset_name)
    pset = f.by_id(found["id"]) if found else ifcopenshell.api.pset.add_pset(f, product=element, name=pset_name)
    ifcopenshell.api.pset.edit_pset(f, pset=pset, properties=properties)


def stored(db_url: str, site_id: str) -> set[tuple[str, str, str, str]]:
    with connection(db_url) as conn:
        return {(r.device_id, r.kind, r.hardware_id, r.source) for r in ids.identities(conn, site_id=site_id)}


def test_the_generator_writes_hardware_ids_only_when_asked(tmp_path):
    plain = school(tmp_path / "plain.ifc").read_bytes()
    assert school(tmp_path / "plain.ifc", {}).read_bytes() == plain  # the parameter's default: the same file
    assert b"HardwareId" not in plain
    with_ids = school(tmp_path / "ids.ifc", {"ENV-1F-01": "ieee:00158d0001a2b3c4"}).read_text()
    assert with_ids.count("'HardwareId'") == 1 and "IFCLABEL('ieee:00158d0001a2b3c4')" in with_ids
    assert len(with_ids.splitlines()) == len(plain.splitlines()) + 1  # one property more, GlobalIds the same


def test_identities_are_read_from_the_property_sets(tmp_path):
    path = school(tmp_path / "v1.ifc", {
        "ENV-1F-01": "ieee:0x00158D0001A2B3C4; URN:dev:ow:10e2073a01080063",
        "ENV-1F-02": "urn:dev:mac:0024befffe804ff1",  # a bare RFC 9039 URN
        "LUM-1F-01-1": "serial:SN-1, tasmota:lum-1f-01-1",
        "LUM-1F-01-2": "bogus",                         # no kind
        "LUM-1F-01-3": "ieee:0x123; serial:SN-3",       # one malformed, one fine
        "LUM-1F-01-4": "serial:SN-DUP", "LUM-1F-01-5": "serial:SN-dup;serial:SN-DUP",  # one id, two devices
    })
    f = ifcopenshell.open(str(path))
    tags = by_tag(f)
    set_properties(f, tags["PNL-1F-01"], "Pset_CampusTwin", {"IEEEAddress": "0x00158d0001a2b3c5"})
    set_properties(f, tags["PNL-1F-02"], "Pset_CampusTwin", {"DevEUI": "70-B3-D5-7E-D0-05-A1-B2",
                                                             "HardwareId": "deveui:70b3d57ed005a1b2"})
    set_properties(f, tags["PNL-1F-03"], "Pset_CampusTwin", {"MACAddress": "24:0A:C4:12:34:56"})
    set_properties(f, tags["PNL-1F-03"], "Pset_ManufacturerOccurrence", {"SerialNumber": "CT-2024-00017"})
    set_properties(f, tags["ENV-1F-03"], "Pset_ManufacturerOccurrence", {"SerialNumber": "N/A"})  # placeholder
    set_properties(f, tags["BBL-1F-01-1"], "Pset_CampusTwin", {"MACAddress": "24:0A:C4"})
    f.write(str(path))

    model = read_model(path, site_id="h1")
    found = {d.device_id: d.identities for d in model.devices if d.identities}
    assert found == {
        "ENV-1F-01": (("ieee", "00158d0001a2b3c4"), ("urn", "urn:dev:ow:10e2073a01080063")),
        "ENV-1F-02": (("urn", "urn:dev:mac:0024befffe804ff1"),),
        "LUM-1F-01-1": (("serial", "SN-1"), ("tasmota", "lum-1f-01-1")),
        "LUM-1F-01-3": (("serial", "SN-3"),),
        "LUM-1F-01-5": (("serial", "SN-dup"),),
        "PNL-1F-01": (("ieee", "00158d0001a2b3c5"),),
        "PNL-1F-02": (("deveui", "70b3d57ed005a1b2"),),  # twice in the file, once here
        "PNL-1F-03": (("mac", "240ac4123456"), ("serial", "CT-2024-00017")),
    }
    warnings = [w for w in model.warnings if "hardware id" in w]
    assert any(w.startswith("LUM-1F-01-2: Pset_CampusTwin.HardwareId 'bogus'") for w in warnings), warnings
    assert any(w.startswith("LUM-1F-01-3: Pset_CampusTwin.HardwareId") and "16 hex digits" in w for w in warnings)
    assert any(w.startswith("BBL-1F-01-1: Pset_CampusTwin.MACAddress") for w in warnings)
    assert any("serial:SN-DUP given for 2 devices (LUM-1F-01-4, LUM-1F-01-5): bound to none" in w for w in warnings)
    assert not any("ENV-1F-03" in w for w in warnings)  # N/A is no serial number, and no mistake either
    assert len(warnings) == 4


def test_a_load_stores_them_a_revision_replaces_them_and_bound_ones_stay(db_url, tmp_path):
    v1 = school(tmp_path / "v1.ifc", {"ENV-1F-01": "ieee:00158d0001a2b3c4", "LUM-1F-01-1": "serial:SN-1"})
    assert run(db_url, "bim", "load", str(v1), "--site", "h1").exit_code == 0
    assert stored(db_url, "h1") == {("ENV-1F-01", "ieee", "00158d0001a2b3c4", "ifc"),
                                    ("LUM-1F-01-1", "serial", "SN-1", "ifc")}
    csv = tmp_path / "bound.csv"
    csv.write_text("device_id,kind_of_id,hardware_id\nENV-1F-02,deveui,70b3d57ed005a1b2\n")
    assert run(db_url, "devices", "bind", "--site", "h1", str(csv)).exit_code == 0
    rows = orjson.loads(run(db_url, "devices", "list", "--site", "h1", "--json").output)
    assert {r["device_id"]: r["identities"] for r in rows if r["identities"]} == {
        "ENV-1F-01": ["ieee:00158d0001a2b3c4"], "ENV-1F-02": ["deveui:70b3d57ed005a1b2"],
        "LUM-1F-01-1": ["serial:SN-1"]}

    again = run(db_url, "bim", "load", str(v1), "--site", "h1")  # the same file: the stored twin has its ids
    assert "no changes" in again.output, again.output

    # SN-1 left the file; the id bound from the CSV is in it now, for the same device: no change, still bound.
    v2 = school(tmp_path / "v2.ifc", {"ENV-1F-01": "ieee:00158d0001a2b3c4", "ENV-1F-02": "deveui:70b3d57ed005a1b2"})
    result = run(db_url, "bim", "load", str(v2), "--site", "h1")
    assert result.exit_code == 0
    changes = result.output.split("changes (import #")[1].splitlines()[1:]
    assert changes == ["    changed device 教室灯 LUM-1F-01-1 (LUM-1F-01-1): identities ['serial:SN-1'] -> []"]
    assert stored(db_url, "h1") == {("ENV-1F-01", "ieee", "00158d0001a2b3c4", "ifc"),
                                    ("ENV-1F-02", "deveui", "70b3d57ed005a1b2", "bind")}
    assert "no changes" in run(db_url, "bim", "load", str(v2), "--site", "h1").output

    # A file giving another device the id bound from the CSV: loaded, the conflict said, the binding kept.
    v3 = school(tmp_path / "v3.ifc", {"ENV-1F-01": "ieee:00158d0001a2b3c4", "ENV-1F-03": "deveui:70B3D57ED005A1B2"})
    result = run(db_url, "bim", "load", str(v3), "--site", "h1", "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)
    assert summary["applied"] and ("ENV-1F-03: deveui:70b3d57ed005a1b2 is already bound to 'ENV-1F-02' at site "
                                   "'h1' (unbind it first)") in summary["warnings"]
    assert stored(db_url, "h1") == {("ENV-1F-01", "ieee", "00158d0001a2b3c4", "ifc"),
                                    ("ENV-1F-02", "deveui", "70b3d57ed005a1b2", "bind")}
    # Unbinding an id of the BIM is allowed; the next revision carrying it brings it back.
    result = run(db_url, "devices", "unbind", "--site", "h1", "ieee:00158d0001a2b3c4")
    assert result.exit_code == 0 and "the next revision that carries it binds it again" in result.stderr


def test_save_model_reports_conflicts_and_load_model_gives_the_ifc_ids_back(db_url):
    twin = small_twin("s1")
    with_ids = replace(twin, devices=tuple(
        replace(d, identities=(("serial", f"SN-{d.device_id}"),)) if d.device_id.startswith("ENV") else d
        for d in twin.devices))
    with connection(db_url) as conn:
        save_model(conn, small_twin("s2"))
        ids.bind(conn, "s2", [ids.Binding("ENV-1", "serial", "SN-ENV-1")])
        result = save_model(conn, with_ids)
        assert result.identity_problems == (
            "ENV-1: serial:SN-ENV-1 is already bound to 'ENV-1' at site 's2' (unbind it first)",)
        assert save_model(conn, small_twin("s2")).identity_problems == ()
        loaded = {d.device_id: d.identities for d in load_model(conn, "s1").devices}
        # The stored twin's ids are those of the file that it holds (a bound one is no part of the model).
        assert loaded == {"ENV-0": (("serial", "SN-ENV-0"),), "ENV-1": (), "ENV-2": (("serial", "SN-ENV-2"),),
                          "LUM-0": (), "LUM-1": (), "LUM-2": ()}
        ids.bind(conn, "s1", [ids.Binding("LUM-0", "mac", "240ac4123456")])
        assert {d.device_id: d.identities for d in load_model(conn, "s1").devices}["LUM-0"] == ()


def test_shared_revit_file_placeholders_are_no_identities_and_real_serials_are_read(db_url, shared_ifc, tmp_path):
    """The Revit Duplex MEP file (IFC2X3, feet) gives every device SerialNumber 'N/A' in its own 'Other' set:
    no identity. Given Pset_ManufacturerOccurrence.SerialNumber, as COBie hand-over files state it, they are read."""
    source = shared_ifc / "duplex-electrical_ifc2x3_revit2013_feet.ifc"
    model = read_model(source, site_id="dx")
    assert len(model.devices) == 85 and not any(d.identities for d in model.devices)
    assert not any("hardware id" in w for w in model.warnings)

    f = ifcopenshell.open(str(source))
    elements = {e.GlobalId: e for e in f.by_type("IfcProduct")}
    devices = sorted(model.devices, key=lambda d: d.device_id)[:3]
    for n, device in enumerate(devices[:2], start=1):
        set_properties(f, elements[device.global_id], "Pset_ManufacturerOccurrence", {"SerialNumber": f"DX-{n:04d}"})
    set_properties(f, elements[devices[2].global_id], "Pset_ManufacturerOccurrence", {"SerialNumber": "n/a"})
    path = tmp_path / "duplex-serials.ifc"
    f.write(str(path))
    summary = import_file(db_url, path, "dx")
    assert summary["applied"]
    assert stored(db_url, "dx") == {(devices[0].device_id, "serial", "DX-0001", "ifc"),
                                    (devices[1].device_id, "serial", "DX-0002", "ifc")}
