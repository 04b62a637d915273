"""The campus-twin CLI against a real database: status, device list, BIM loads, clean errors."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from tests.helpers import small_twin
from twin.cli import main
from twin.database import connection
from twin.metrics import CATALOGUE
from twin.storage.model import save_model


def run(db_url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", db_url, *args], catch_exceptions=False)


def test_db_init_is_idempotent_and_status_reports_backend_version_and_counts(db_url, server_backend):
    result = run(db_url, "db", "init")
    assert result.exit_code == 0 and "up to date" in result.output
    with connection(db_url) as conn:
        save_model(conn, small_twin("c1"))
    result = run(db_url, "db", "status", "--json")
    assert result.exit_code == 0
    info = orjson.loads(result.output)
    assert info["backend"] == server_backend
    assert info["schema_version"] == info["schema_latest"] >= 3
    assert info["tables"]["devices"] == 6 and info["tables"]["rooms"] == 3 and info["tables"]["metrics"] == len(CATALOGUE)
    assert info["tables"]["readings"] == 0


def test_devices_list_json_filters_by_site(db_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("c1", rooms=1))
        save_model(conn, small_twin("c2", rooms=2))
    result = run(db_url, "devices", "list", "--site", "c2", "--json")
    assert result.exit_code == 0
    rows = orjson.loads(result.output)
    assert sorted(r["device_id"] for r in rows) == ["ENV-0", "ENV-1", "LUM-0", "LUM-1"]
    assert {r["site_id"] for r in rows} == {"c2"}
    assert {r["room"] for r in rows} == {"Room 0", "Room 1"} and {r["state"] for r in rows} == {"unknown"}


def test_generate_then_load_json_summary(db_url, tmp_path):
    ifc = tmp_path / "school.ifc"
    result = CliRunner().invoke(main, ["bim", "generate", str(ifc), "--storeys", "2", "--classrooms", "2"])
    assert result.exit_code == 0, result.output
    result = run(db_url, "bim", "load", str(ifc), "--site", "g1", "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)
    assert summary["storeys"] == 2 and summary["schema"] == "IFC4"
    assert summary["devices_by_kind"]["env_sensor"] == 4 and summary["devices_by_kind"]["panel"] == 4
    assert summary["unmapped_devices"] == []
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bim_imports WHERE site_id = 'g1'").fetchone()[0] == 1


@pytest.mark.parametrize("content", [b"", b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION((''),'2;1');", b"hello world\n",
                                     bytes(range(256)) * 40])
def test_broken_files_fail_with_one_line_and_change_nothing(db_url, tmp_path, content):
    bad = tmp_path / "bad.ifc"
    bad.write_bytes(content)
    result = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(bad), "--site", "x"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM sites").fetchone()[0] == 0


def test_wrong_arguments_exit_2_with_a_usage_message(db_url, tmp_path):
    result = CliRunner().invoke(main, ["bim", "load", str(tmp_path / "missing.ifc"), "--site", "x"])
    assert result.exit_code == 2 and "does not exist" in result.output
    ifc = tmp_path / "a.ifc"
    ifc.write_text("x")
    result = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(ifc), "--site", "bad/site"])
    assert result.exit_code == 2 and "--site" in result.output
    result = CliRunner().invoke(main, ["simulate", "--duration", "1"], env={"CAMPUS_TWIN_MQTT_URL": ""})
    assert result.exit_code == 2 and "no MQTT broker" in result.output


def test_unreachable_database_is_one_line():
    result = CliRunner().invoke(main, ["--database-url", "postgresql://nobody@127.0.0.1:1/none", "db", "status"])
    assert result.exit_code == 1 and result.output.startswith("Error: cannot connect to the database")
    assert result.output.count("\n") == 1


def test_every_shared_ifc_file_loads_through_the_cli(db_url, shared_ifc):
    import ifcopenshell

    for path in sorted(shared_ifc.glob("*.ifc")):
        site = path.stem.split("_")[0][:60]
        result = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(path), "--site", site,
                                           "--json"])
        assert result.exit_code == 0, (path.name, result.output[-500:])
        summary = orjson.loads(result.output)
        assert summary["rooms"] == len(ifcopenshell.open(str(path)).by_type("IfcSpace")), path.name
