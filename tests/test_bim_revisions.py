"""Revisions: a new file for a site is matched by GlobalId and device id, diffed, logged; history stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.util.element
import orjson
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from models_bim.diff import diff_models
from models_bim.generate import generate_school
from models_bim.importer import import_file, import_model
from models_bim.load import read_model
from tests.helpers import small_twin
from twin.cli import main
from twin.database import connection
from twin.domain import Device
from twin.storage.model import load_model

TABLES = ("sites", "buildings", "storeys", "rooms", "devices", "device_status")


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of the twin's tables (with the system column xmin, which changes when a row is rewritten)."""
    with connection(url) as conn:
        return {t: conn.execute(f"SELECT xmin::text, * FROM {t} ORDER BY 2").fetchall() for t in TABLES}


def by_tag(f: ifcopenshell.file) -> dict[str, ifcopenshell.entity_instance]:
    return {e.Tag: e for e in f.by_type("IfcProduct") if getattr(e, "Tag", None)}


@pytest.fixture
def school(tmp_path: Path) -> Path:
    path = tmp_path / "v1.ifc"
    generate_school(path, site_id="r1", name="修订学校", storeys=2, classrooms_per_storey=2, labs=1)
    return path


def revise(v1: Path, v2: Path) -> dict[str, str]:
    """Move a sensor to the next classroom, delete the physics lab, add a storey with a corridor.

    Returns the GlobalIds the expected diff needs.
    """
    f = ifcopenshell.open(str(v1))
    spaces = {s.Name: s for s in f.by_type("IfcSpace")}
    sensor = by_tag(f)["ENV-1F-01"]
    target = spaces["初一(2)班"]
    local = sensor.ObjectPlacement.RelativePlacement.Location.Coordinates
    ifcopenshell.api.spatial.assign_container(f, products=[sensor], relating_structure=target)
    # the same spot in the other classroom (the api keeps the world position; we move it)
    sensor.ObjectPlacement = f.createIfcLocalPlacement(target.ObjectPlacement, f.createIfcAxis2Placement3D(
        f.createIfcCartesianPoint(local), None, None))
    lab = spaces["物理实验室"]
    lab_gid = lab.GlobalId
    ifcopenshell.api.root.remove_product(f, product=lab)
    (building,) = f.by_type("IfcBuilding")
    storey = ifcopenshell.api.root.create_entity(f, ifc_class="IfcBuildingStorey", name="3F")
    storey.Elevation = 7.2
    ifcopenshell.api.aggregate.assign_object(f, products=[storey], relating_object=building)
    corridor = ifcopenshell.api.root.create_entity(f, ifc_class="IfcSpace", name="三楼走廊")
    ifcopenshell.api.aggregate.assign_object(f, products=[corridor], relating_object=storey)
    corridor.ObjectPlacement = f.createIfcLocalPlacement(
        building.ObjectPlacement, f.createIfcAxis2Placement3D(f.createIfcCartesianPoint((0.0, 7.0, 7.2)), None, None))
    body = next(c for c in f.by_type("IfcGeometricRepresentationSubContext") if c.ContextIdentifier == "Body")
    profile = f.createIfcRectangleProfileDef("AREA", None, f.createIfcAxis2Placement2D(
        f.createIfcCartesianPoint((10.0, 1.5)), None), 20.0, 3.0)
    solid = f.createIfcExtrudedAreaSolid(profile, f.createIfcAxis2Placement3D(f.createIfcCartesianPoint((0., 0., 0.)),
                                                                                None, None),
                                         f.createIfcDirection((0.0, 0.0, 1.0)), 3.2)
    corridor.Representation = f.createIfcProductDefinitionShape(
        None, None, [f.createIfcShapeRepresentation(body, "Body", "SweptSolid", [solid])])
    f.write(str(v2))
    return {"lab": lab_gid, "storey": storey.GlobalId, "corridor": corridor.GlobalId}


def add_readings(url: str, device_id: str, n: int = 5) -> int:
    """``n`` co2 readings of a device, written as ingest does (readings + latest); returns devices.id."""
    start = datetime.now(UTC) - timedelta(minutes=n)
    with connection(url) as conn:
        dev = conn.execute("SELECT id FROM devices WHERE device_id = %s", (device_id,)).fetchone()[0]
        metric = conn.execute("SELECT metric_id FROM metrics WHERE name = 'co2'").fetchone()[0]
        for i in range(n):
            conn.execute("INSERT INTO readings (ts, device_id, metric_id, value) VALUES (%s, %s, %s, %s)",
                         (start + timedelta(minutes=i), dev, metric, 600.0 + i))
    return dev


def test_a_revision_is_diffed_exactly_and_the_moved_devices_history_stays(db_url: str, school: Path,
                                                                          tmp_path: Path) -> None:
    first = import_file(db_url, school, "r1")
    assert first["diff"]["first_import"] and first["diff"]["counts"]["devices"]["added"] == 4 * 13
    sensor_id = add_readings(db_url, "ENV-1F-01")
    gids = revise(school, tmp_path / "v2.ifc")

    second = import_file(db_url, tmp_path / "v2.ifc", "r1")
    diff = second["diff"]
    assert diff["no_changes"] is False and diff["first_import"] is False
    assert diff["counts"] == {
        "buildings": {"added": 0, "removed": 0, "changed": 0},
        "storeys": {"added": 1, "removed": 0, "changed": 0},
        "rooms": {"added": 1, "removed": 1, "changed": 0},
        "devices": {"added": 0, "removed": 0, "changed": 1},
    }
    assert diff["storeys"]["added"] == [{"global_id": gids["storey"], "name": "3F", "elevation_m": 7.2}]
    assert diff["rooms"]["added"] == [{"global_id": gids["corridor"], "name": "三楼走廊", "use": "corridor",
                                       "area_m2": 60.0}]
    assert diff["rooms"]["removed"] == [{"global_id": gids["lab"], "name": "物理实验室", "use": "lab", "area_m2": 84.0}]
    (moved,) = diff["devices"]["changed"]
    assert moved["device_id"] == "ENV-1F-01"
    assert moved["changes"]["room"] == ["初一(1)班", "初一(2)班"]
    assert set(moved["changes"]) == {"room", "position"}
    (x0, y0, z0), (x1, y1, z1) = moved["changes"]["position"]
    assert (x1 - x0, y1 - y0, z1 - z0) == pytest.approx((0.0, 10.0, 0.0))  # north row: 7 m room + 3 m corridor further
    assert diff["site"] == {} and diff["buildings"] == {"added": [], "removed": [], "changed": []}

    with connection(db_url) as conn:
        dev_id, room = conn.execute(
            """SELECT d.id, r.name FROM devices d JOIN rooms r ON r.id = d.room_id
               WHERE d.device_id = 'ENV-1F-01' AND d.removed_at IS NULL""").fetchone()
        assert (dev_id, room) == (sensor_id, "初一(2)班")  # same row: same history
        assert conn.execute("SELECT count(*) FROM readings WHERE device_id = %s", (dev_id,)).fetchone()[0] == 5
        assert conn.execute("SELECT removed_at IS NOT NULL FROM rooms WHERE global_id = %s",
                            (gids["lab"],)).fetchone()[0]
        logged = conn.execute("SELECT changed, diff FROM bim_imports ORDER BY id").fetchall()
    assert [c for c, _ in logged] == [True, True] and logged[1][1] == diff


def test_loading_the_same_file_twice_reports_no_changes_and_changes_nothing(db_url: str, school: Path) -> None:
    import_file(db_url, school, "r1")
    before = snapshot(db_url)
    again = import_file(db_url, school, "r1")
    assert again["diff"]["no_changes"] is True
    assert again["diff"]["counts"]["devices"] == {"added": 0, "removed": 0, "changed": 0}
    assert snapshot(db_url) == before  # not one row rewritten (xmin unchanged)
    with connection(db_url) as conn:
        assert conn.execute("SELECT changed FROM bim_imports ORDER BY id").fetchall() == [(True,), (False,)]


def test_the_stored_twin_reads_back_equal_to_the_model(db_url: str, school: Path) -> None:
    model = read_model(school, site_id="r1")
    import_file(db_url, school, "r1")
    with connection(db_url) as conn:
        stored = load_model(conn, "r1")
    assert stored is not None and diff_models(stored, model).empty
    assert {d.device_id for d in stored.devices} == {d.device_id for d in model.devices}


def test_a_device_removed_then_back_keeps_its_row(db_url: str, school: Path, tmp_path: Path) -> None:
    import_file(db_url, school, "r1")
    dev = add_readings(db_url, "PNL-1F-02", n=2)
    f = ifcopenshell.open(str(school))
    ifcopenshell.api.root.remove_product(f, product=by_tag(f)["PNL-1F-02"])
    f.write(str(tmp_path / "without.ifc"))
    removed = import_file(db_url, tmp_path / "without.ifc", "r1")["diff"]
    assert [d["device_id"] for d in removed["devices"]["removed"]] == ["PNL-1F-02"]
    back = import_file(db_url, school, "r1")["diff"]
    assert [d["device_id"] for d in back["devices"]["added"]] == ["PNL-1F-02"]
    with connection(db_url) as conn:
        assert conn.execute("SELECT id, removed_at FROM devices WHERE device_id = 'PNL-1F-02'").fetchall() == [
            (dev, None)]


def test_a_failure_in_the_middle_of_an_import_leaves_the_previous_twin(db_url: str) -> None:
    """Rooms are written before devices; a device the database refuses rolls the rooms back too."""
    good = small_twin("f1", rooms=2)
    with connection(db_url) as conn:
        import_model(conn, good, file_name="v1.ifc", file_sha256="0" * 64)
    before = snapshot(db_url)
    renamed = tuple(r.__class__(r.global_id, r.storey_global_id, f"New {r.name}", footprint=box(0, 0, 5, 5),
                                area_m2=25.0) for r in good.rooms)
    bad_device = Device("bad/id", "G-BAD", "env_sensor", "IfcSensor")  # '/' breaks the devices CHECK constraint
    bad = good.__class__(good.site, good.buildings, good.storeys, renamed, (*good.devices, bad_device), "IFC4")
    with pytest.raises(Exception, match="devices_device_id_check"), connection(db_url) as conn:
        import_model(conn, bad, file_name="v2.ifc", file_sha256="1" * 64)
    assert snapshot(db_url) == before
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bim_imports").fetchone()[0] == 1


def test_bim_diff_shows_the_same_diff_offline(db_url: str, school: Path, tmp_path: Path) -> None:
    revise(school, tmp_path / "v2.ifc")
    offline = CliRunner().invoke(main, ["bim", "diff", str(school), str(tmp_path / "v2.ifc"), "--json"])
    assert offline.exit_code == 0, offline.output
    import_file(db_url, school, "r1")
    online = import_file(db_url, tmp_path / "v2.ifc", "r1")["diff"]
    assert orjson.loads(offline.output) == orjson.loads(orjson.dumps(online))
    text = CliRunner().invoke(main, ["bim", "diff", str(school), str(tmp_path / "v2.ifc")])
    assert text.exit_code == 0
    assert "changed device 环境传感器 ENV-1F-01 (ENV-1F-01): room '初一(1)班' -> '初一(2)班'" in text.output
    assert "removed room 物理实验室" in text.output and "added storey 3F" in text.output
    same = CliRunner().invoke(main, ["bim", "diff", str(school), str(school)])
    assert same.output == "no changes\n"


def test_load_json_is_one_object_with_summary_and_diff(db_url: str, school: Path) -> None:
    args = ["--database-url", db_url, "bim", "load", str(school), "--site", "r1", "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    summary = orjson.loads(first.stdout)  # exactly one JSON object: parsing fails on anything else
    assert summary["diff"]["first_import"] is True
    assert summary["devices_by_mapping"] == {"containment": 52, "reference": 0, "geometry": 0, "unmapped": 0}
    assert summary["rooms_with_quantities"] == summary["rooms"] and summary["area_discrepancies"] == []
    assert summary["georeference"]["latitude"] == pytest.approx(22.5431)
    second = CliRunner().invoke(main, args)
    assert orjson.loads(second.stdout)["diff"]["no_changes"] is True
    text = CliRunner().invoke(main, args[:-1])
    assert "no changes" in text.output and "devices by kind: env_sensor 4, luminaire 36" in text.output


@pytest.mark.parametrize("case", ["empty", "truncated", "text", "junk", "schema", "corrupt"])
def test_a_broken_revision_is_one_line_and_leaves_the_twin_and_the_log_unchanged(db_url: str, school: Path,
                                                                                  tmp_path: Path, shared_ifc: Path,
                                                                                  case: str) -> None:
    from tests.test_bim_load import _broken_inputs

    import_file(db_url, school, "r1")
    before = snapshot(db_url)
    bad = _broken_inputs(tmp_path, shared_ifc)[case]
    result = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(bad), "--site", "r1", "--json"])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert snapshot(db_url) == before
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bim_imports").fetchone()[0] == 1


def test_an_ifc_without_spaces_loads_with_no_rooms_and_says_so(db_url: str, shared_ifc: Path) -> None:
    """Decision: a model without IfcSpace is valid (structural, MEP-only files): 0 rooms, a warning, devices unmapped."""
    path = shared_ifc / "haustechnik-elektro_ifc2x3_ddscad_lights-outlets-switches.ifc"
    result = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(path), "--site", "h1", "--json"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert (summary["rooms"], summary["storeys"], summary["devices"]) == (0, 4, 276)
    assert summary["devices_by_mapping"]["unmapped"] == 276 and len(summary["unmapped_devices"]) == 276
    assert any("no IfcSpace" in w for w in summary["warnings"])
    assert any("RefLatitude" in w for w in summary["warnings"])  # invalid georeference skipped, not fatal
    text = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(path), "--site", "h1"])
    assert "unmapped devices (276):" in text.output and "... and 256 more (see --json)" in text.output
