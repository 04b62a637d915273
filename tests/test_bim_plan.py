"""Plan, then apply: ``bim load --dry-run`` writes nothing, a load that removes much of a site is refused
without ``--allow-removals``, and ``--json`` says what was planned and whether it was applied."""

from __future__ import annotations

from pathlib import Path

import ifcopenshell
import ifcopenshell.api.root
import orjson
import pytest
from click.testing import CliRunner

from models_bim.diff import MAX_REMOVALS, diff_models, removal_check
from tests.helpers import small_twin
from tests.test_bim_revisions import snapshot
from twin.cli import main
from twin.database import connection
from twin.domain import TwinModel
from twin.storage import audit

OFFICE = "office-a_ifc2x3_revit2011_99spaces.ifc"


def _without(model: TwinModel, *, rooms: int = 0, devices: int = 0, storeys: int = 0) -> TwinModel:
    """``model`` with its last ``rooms`` rooms, ``devices`` devices and ``storeys`` storeys left out."""
    from dataclasses import replace

    return replace(model, rooms=model.rooms[:len(model.rooms) - rooms],
                   devices=model.devices[:len(model.devices) - devices],
                   storeys=model.storeys[:len(model.storeys) - storeys])


def _stored(model: TwinModel) -> dict[str, int]:
    return {"buildings": len(model.buildings), "storeys": len(model.storeys), "rooms": len(model.rooms),
            "devices": len(model.devices)}


# --- the rule, as a pure function ---------------------------------------------------------------------


def test_removing_up_to_the_threshold_of_rooms_or_devices_needs_no_confirmation() -> None:
    old = small_twin(rooms=5)  # 5 rooms, 10 devices
    assert MAX_REMOVALS == 0.2
    assert removal_check(diff_models(old, _without(old, rooms=1)), _stored(old)) == []  # 1 of 5 = 20 %
    assert removal_check(diff_models(old, _without(old, devices=2)), _stored(old)) == []  # 2 of 10 = 20 %
    assert removal_check(diff_models(old, old), _stored(old)) == []


def test_removing_more_than_the_threshold_needs_confirmation_and_says_why() -> None:
    old = small_twin(rooms=5)
    assert removal_check(diff_models(old, _without(old, rooms=2)), _stored(old)) == [
        "removes 2 of 5 rooms (40%, more than 20%)"]
    assert removal_check(diff_models(old, _without(old, devices=3)), _stored(old)) == [
        "removes 3 of 10 devices (30%, more than 20%)"]
    assert removal_check(diff_models(old, _without(old, rooms=2)), _stored(old), max_removals=0.5) == []
    assert removal_check(diff_models(old, _without(old, rooms=1)), _stored(old), max_removals=0.0) == [
        "removes 1 of 5 rooms (20%, more than 0%)"]


def test_removing_any_building_or_storey_needs_confirmation() -> None:
    old = small_twin(rooms=2)
    assert removal_check(diff_models(old, _without(old, storeys=1)), _stored(old), max_removals=1.0) == [
        "removes 1 of 1 storeys"]


def test_a_first_import_never_needs_confirmation() -> None:
    new = small_twin(rooms=5)
    zero = {"buildings": 0, "storeys": 0, "rooms": 0, "devices": 0}
    assert removal_check(diff_models(None, new), zero, max_removals=0.0) == []


# --- the command ---------------------------------------------------------------------------------------


def _load(db_url: str, path: Path, site: str, *extra: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(path), "--site", site, *extra],
                              env=env)


def _imports(db_url: str) -> int:
    with connection(db_url) as conn:
        return conn.execute("SELECT count(*) FROM bim_imports").fetchone()[0]


@pytest.fixture(scope="module")
def half_office(shared_ifc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """office-a (99 spaces) with every other IfcSpace removed: a revision that loses 50 of its 99 rooms."""
    f = ifcopenshell.open(str(shared_ifc / OFFICE))
    for space in sorted(f.by_type("IfcSpace"), key=lambda s: s.GlobalId)[::2]:
        ifcopenshell.api.root.remove_product(f, product=space)
    path = tmp_path_factory.mktemp("half") / "office-a-half.ifc"
    f.write(str(path))
    return path


def test_dry_run_prints_the_diff_and_writes_nothing(db_url: str, shared_ifc: Path, half_office: Path) -> None:
    first = _load(db_url, shared_ifc / OFFICE, "o1")
    assert first.exit_code == 0, first.output
    before, imports = snapshot(db_url), _imports(db_url)
    dry = _load(db_url, half_office, "o1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("dry run of office-a-half.ifc as site 'o1' (IFC2X3): 1 buildings, 3 storeys, 49 rooms")
    assert "removed room " in dry.output and "... and 30 more rooms removed" in dry.output
    assert "needs --allow-removals: removes 50 of 99 rooms (51%, more than 20%)" in dry.output
    assert dry.output.rstrip().endswith("dry run: nothing was written")
    as_json = _load(db_url, half_office, "o1", "--dry-run", "--json")
    assert as_json.exit_code == 0, as_json.output
    summary = orjson.loads(as_json.stdout)
    assert summary["applied"] is False and summary["dry_run"] is True and summary["import_id"] is None
    assert summary["plan"]["counts"]["rooms"] == {"added": 0, "removed": 50, "changed": 0}
    assert summary["plan"]["stored"] == {"buildings": 1, "storeys": 3, "rooms": 99, "devices": 3}
    assert summary["plan"]["removals"] == ["removes 50 of 99 rooms (51%, more than 20%)"]
    assert summary["plan"]["needs_confirmation"] is True
    assert snapshot(db_url) == before  # every row of every twin table, with xmin and updated_at
    assert _imports(db_url) == imports


def test_dry_run_of_a_new_site_creates_nothing(db_url: str, shared_ifc: Path) -> None:
    dry = _load(db_url, shared_ifc / OFFICE, "new1", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    summary = orjson.loads(dry.stdout)
    assert summary["diff"]["first_import"] is True and summary["applied"] is False
    assert summary["plan"]["needs_confirmation"] is False
    with connection(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM sites").fetchone()[0] == 0
    assert _imports(db_url) == 0


def test_a_revision_removing_half_the_rooms_is_refused_without_allow_removals(
        db_url: str, shared_ifc: Path, half_office: Path) -> None:
    assert _load(db_url, shared_ifc / OFFICE, "o2").exit_code == 0
    before, imports = snapshot(db_url), _imports(db_url)
    refused = _load(db_url, half_office, "o2")
    assert refused.exit_code == 1, refused.output
    assert "removed room " in refused.stdout  # the diff summary is shown
    assert refused.stderr.strip() == (
        "Error: refused: removes 50 of 99 rooms (51%, more than 20%); nothing was written "
        "(check the diff, then load again with --allow-removals)")
    assert snapshot(db_url) == before and _imports(db_url) == imports
    as_json = _load(db_url, half_office, "o2", "--json")
    assert as_json.exit_code == 1
    summary = orjson.loads(as_json.stdout)
    assert summary["applied"] is False and summary["refused"] is True and summary["dry_run"] is False
    assert summary["peak_rss_mb"] > 0 and summary["file_mb"] > 0
    assert snapshot(db_url) == before
    applied = _load(db_url, half_office, "o2", "--allow-removals", "--json")
    assert applied.exit_code == 0, applied.output
    summary = orjson.loads(applied.stdout)
    assert summary["applied"] is True and summary["refused"] is False and summary["import_id"] is not None
    assert summary["plan"]["removals"] == ["removes 50 of 99 rooms (51%, more than 20%)"]
    assert summary["plan"]["allow_removals"] is True
    with connection(db_url) as conn:
        live, gone = conn.execute("""SELECT count(*) FILTER (WHERE removed_at IS NULL),
                                            count(*) FILTER (WHERE removed_at IS NOT NULL)
                                     FROM rooms WHERE site_id = 'o2'""").fetchone()
        entry = audit.recent(conn, 1, action="bim_apply")[0]
    assert (live, gone) == (49, 50)
    assert entry["outcome"] == "ok" and entry["target"] == "o2" and entry["username"].startswith("cli")
    assert entry["detail"]["file"] == "office-a-half.ifc" and len(entry["detail"]["sha256"]) == 64
    assert entry["detail"]["counts"]["rooms"]["removed"] == 50
    assert entry["detail"]["removals_confirmed"] == ["removes 50 of 99 rooms (51%, more than 20%)"]


def test_the_threshold_is_an_option_and_a_setting(db_url: str, shared_ifc: Path, half_office: Path) -> None:
    assert _load(db_url, shared_ifc / OFFICE, "o3").exit_code == 0
    before = snapshot(db_url)
    strict = _load(db_url, half_office, "o3", "--max-removals", "0.5")
    assert strict.exit_code == 1 and "more than 50%" in strict.stderr
    from_env = _load(db_url, half_office, "o3", env={"CAMPUS_TWIN_BIM_MAX_REMOVALS": "0.5"})
    assert from_env.exit_code == 1 and "more than 50%" in from_env.stderr
    assert snapshot(db_url) == before
    bad = _load(db_url, half_office, "o3", "--max-removals", "1.5")
    assert bad.exit_code == 2
    loose = _load(db_url, half_office, "o3", "--max-removals", "0.6", "--json")
    assert loose.exit_code == 0, loose.output
    assert orjson.loads(loose.stdout)["applied"] is True


def test_a_first_load_is_never_refused(db_url: str, half_office: Path) -> None:
    result = _load(db_url, half_office, "o4", "--max-removals", "0", "--json")
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["applied"] is True and summary["plan"]["removals"] == []
