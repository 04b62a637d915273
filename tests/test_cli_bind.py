"""Hardware identities and site adapters through the CLI, on a real database: ``devices bind`` / ``unbind``
(a CSV, all or nothing, bad lines named by their line), ``devices list`` with the hardware ids, and
``adapters list`` / ``enable`` / ``disable``; every change in the audit log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from click.testing import CliRunner

from tests.helpers import small_twin
from twin.cli import main
from twin.database import connection
from twin.storage import audit
from twin.storage import identities as ids
from twin.storage.model import save_model

HEADER = "device_id,kind_of_id,hardware_id\n"


def run(db_url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", db_url, *args], catch_exceptions=False)


def csv_file(tmp_path: Path, text: str, name: str = "ids.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def bound(db_url: str, site_id: str | None = None) -> set[tuple[str, str, str, str]]:
    with connection(db_url) as conn:
        return {(r.device_id, r.kind, r.hardware_id, r.source) for r in ids.identities(conn, site_id=site_id)}


def audited(db_url: str, action: str) -> list[dict]:
    with connection(db_url) as conn:
        return audit.recent(conn, action=action)


def test_bind_a_csv_normalizes_binds_all_and_is_audited(twin_db, tmp_path):
    # Excel writes a byte order mark; ids as people copy them from labels and gateways.
    path = csv_file(tmp_path, "\ufeff" + HEADER + "ENV-0,ieee,0x00158D0001A2B3C4\n"
                    "ENV-0, serial , SN-1\n"
                    "\n"
                    "LUM-0,DEVEUI,70-B3-D5-7E-D0-05-A1-B2\n"
                    'ENV-1,urn,"URN:dev:ow:10e2073a01080063"\n')
    result = run(twin_db, "devices", "bind", "--site", "t1", path)
    assert result.exit_code == 0, result.output
    assert result.output == "t1: bound 4 hardware ids (4 lines, 0 already bound)\n"
    assert bound(twin_db) == {("ENV-0", "ieee", "00158d0001a2b3c4", "bind"), ("ENV-0", "serial", "SN-1", "bind"),
                              ("LUM-0", "deveui", "70b3d57ed005a1b2", "bind"),
                              ("ENV-1", "urn", "urn:dev:ow:10e2073a01080063", "bind")}
    with connection(twin_db) as conn:
        assert {r.bound_by for r in ids.identities(conn)} == {audited(twin_db, "devices_bind")[0]["username"]}
    [entry] = audited(twin_db, "devices_bind")
    assert entry["outcome"] == "ok" and entry["target"] == "t1" and entry["username"].startswith("cli")
    assert entry["detail"] == {"file": "ids.csv", "lines": 4, "bound": 4}

    again = run(twin_db, "devices", "bind", "--site", "t1", path)  # the same file again: nothing new
    assert again.exit_code == 0 and again.output == "t1: bound 0 hardware ids (4 lines, 4 already bound)\n"


def test_devices_list_shows_the_hardware_ids(twin_db, tmp_path):
    run(twin_db, "devices", "bind", "--site", "t1",
        csv_file(tmp_path, HEADER + "ENV-0,ieee,00158d0001a2b3c4\nENV-0,serial,SN-1\n"
                 "ENV-1,urn,urn:dev:ow:10e2073a01080063\n"))
    rows = orjson.loads(run(twin_db, "devices", "list", "--site", "t1", "--json").output)
    by_id = {r["device_id"]: r["identities"] for r in rows}
    assert by_id == {"ENV-0": ["ieee:00158d0001a2b3c4", "serial:SN-1"], "ENV-1": ["urn:dev:ow:10e2073a01080063"],
                     "ENV-2": [], "LUM-0": [], "LUM-1": [], "LUM-2": []}
    table = CliRunner().invoke(main, ["--database-url", twin_db, "devices", "list", "--site", "t1"],
                               env={"COLUMNS": "160"}, catch_exceptions=False).output
    lines = table.splitlines()
    assert "hardware ids" in lines[0]
    [env0] = [line for line in lines if " ENV-0 " in line]
    assert env0.rstrip().endswith("ieee:00158d0001a2b3c4, serial:SN-1")
    [env1] = [line for line in lines if " ENV-1 " in line]
    assert env1.rstrip().endswith("urn:dev:ow:10e2073a01080063")
    [lum0] = [line for line in lines if " LUM-0 " in line]
    assert lum0.rstrip().endswith("-")
    assert lines[-2] == "6 devices" and lines[-1] == "local times: t1 Asia/Shanghai (UTC+8)"

    # One line per hardware id: where it came from, when and by whom.
    rows = orjson.loads(run(twin_db, "devices", "list", "--identities", "--json").output)
    assert [(r["device_id"], r["kind"], r["hardware_id"], r["source"]) for r in rows] == [
        ("ENV-0", "ieee", "00158d0001a2b3c4", "bind"), ("ENV-0", "serial", "SN-1", "bind"),
        ("ENV-1", "urn", "urn:dev:ow:10e2073a01080063", "bind")]
    by = rows[0]["bound_by"]
    assert by.startswith("cli")
    lines = run(twin_db, "devices", "list", "--identities", "--site", "t1").output.splitlines()
    assert lines[0].split() == ["site", "device", "hardware", "id", "from", "bound", "(local)", "by"]
    assert lines[1].split()[:4] == ["t1", "ENV-0", "ieee:00158d0001a2b3c4", "bound"]
    # when, in the school's time (the JSON above says it in UTC)
    at = datetime.fromisoformat(rows[0]["bound_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert " ".join(lines[1].split()[4:6]) == at.strftime("%Y-%m-%d %H:%M")
    assert lines[1].split()[-1] == by and lines[-2:] == ["3 hardware ids", "local times: t1 Asia/Shanghai (UTC+8)"]


def test_bad_lines_are_named_by_their_line_and_nothing_is_bound(twin_db, tmp_path):
    path = csv_file(tmp_path, HEADER + "ENV-0,ieee,00158d0001a2b3c4\n"  # line 2: fine
                    "ENV-1,ieee,0x123\n"                                 # line 3: too short
                    "ENV-2,nfc,04a2\n"                                   # line 4: no such kind
                    "\n"                                                 # line 5: blank, skipped
                    "LUM-0,serial\n"                                     # line 6: a field missing
                    "LUM-1,serial,a b\n"                                 # line 7: a space
                    ",mac,240ac4123456\n")                               # line 8: no device
    result = run(twin_db, "devices", "bind", "--site", "t1", path)
    assert result.exit_code == 1
    problems = result.stderr.splitlines()
    assert [p.split(":")[0].strip() for p in problems[:-1]] == ["line 3", "line 4", "line 6", "line 7", "line 8"]
    assert "16 hex digits" in problems[0] and "unknown kind" in problems[1] and "3 fields" in problems[2]
    assert problems[-1] == f"Error: nothing bound: 5 bad lines in {path}"
    assert bound(twin_db) == set()
    [entry] = audited(twin_db, "devices_bind")
    assert entry["outcome"] == "failed" and entry["detail"]["problems"] == 5


def test_a_refused_binding_binds_nothing_and_names_the_line(db_url, tmp_path):
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
        save_model(conn, small_twin("t2"))
    assert run(db_url, "devices", "bind", "--site", "t2",
               csv_file(tmp_path, HEADER + "ENV-0,ieee,00158d0001a2b3c4\n", "t2.csv")).exit_code == 0
    path = csv_file(tmp_path, HEADER + "ENV-1,serial,SN-9\n"       # line 2: fine alone
                    "# ENV-0 is taken at t2\n"                       # line 3: not a binding (one field)
                    "ENV-0,ieee,00158D0001A2B3C4\n"                  # line 4: bound at t2
                    "NOPE,mac,24:0a:c4:12:34:56\n")                  # line 5: no such device at t1
    result = run(db_url, "devices", "bind", "--site", "t1", path)
    assert result.exit_code == 1
    assert "line 3: 1 field" in result.stderr  # parse errors first: bind is not tried
    assert bound(db_url, "t1") == set()
    path = csv_file(tmp_path, HEADER + "ENV-1,serial,SN-9\nENV-0,ieee,00158D0001A2B3C4\nNOPE,mac,24:0a:c4:12:34:56\n")
    result = run(db_url, "devices", "bind", "--site", "t1", path)
    assert result.exit_code == 1
    assert "line 4: no device 'NOPE' at site 't1'" in result.stderr
    assert "ieee:00158d0001a2b3c4 is already bound to 'ENV-0' at site 't2'" in result.stderr
    assert result.stderr.splitlines()[-1] == f"Error: nothing bound: 2 problems in {path}"
    assert bound(db_url, "t1") == set()  # line 2 was fine, and not bound either


def test_the_header_is_required(twin_db, tmp_path):
    for text in ("ENV-0,ieee,00158d0001a2b3c4\n", "device,kind,id\nENV-0,ieee,00158d0001a2b3c4\n", ""):
        result = run(twin_db, "devices", "bind", "--site", "t1", csv_file(tmp_path, text))
        assert result.exit_code == 1
        assert "header device_id,kind_of_id,hardware_id" in result.output, result.output
    # Extra columns (a room, a note) are allowed and ignored, in any order.
    result = run(twin_db, "devices", "bind", "--site", "t1",
                 csv_file(tmp_path, "room,hardware_id,device_id,kind_of_id\nRoom 0,00158d0001a2b3c4,ENV-0,ieee\n"))
    assert result.exit_code == 0, result.output
    assert run(twin_db, "devices", "bind", "--site", "nowhere", csv_file(tmp_path, HEADER)).exit_code == 1


def test_unbind_by_site_and_identity(db_url, tmp_path):
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
        save_model(conn, small_twin("t2"))
    run(db_url, "devices", "bind", "--site", "t1",
        csv_file(tmp_path, HEADER + "ENV-0,ieee,00158d0001a2b3c4\nLUM-0,urn,urn:dev:ow:10e2073a01080063\n"))
    result = run(db_url, "devices", "unbind", "--site", "t2", "ieee:00158d0001a2b3c4")
    assert result.exit_code == 1 and "is bound to 'ENV-0' at site 't1', not at 't2'" in result.output
    result = run(db_url, "devices", "unbind", "--site", "t1", "ieee:0x00158D0001A2B3C4")
    assert result.exit_code == 0 and result.output == "t1: unbound ieee:00158d0001a2b3c4 from ENV-0\n"
    result = run(db_url, "devices", "unbind", "--site", "t1", "URN:dev:ow:10e2073a01080063")
    assert result.exit_code == 0 and result.output == "t1: unbound urn:dev:ow:10e2073a01080063 from LUM-0\n"
    assert bound(db_url) == set()
    result = run(db_url, "devices", "unbind", "--site", "t1", "ieee:00158d0001a2b3c4")
    assert result.exit_code == 1 and "ieee:00158d0001a2b3c4 is not bound" in result.output
    result = run(db_url, "devices", "unbind", "--site", "t1", "00158d0001a2b3c4")
    assert result.exit_code == 2 and "kind:id" in result.output
    assert [(e["target"], e["detail"]) for e in audited(db_url, "devices_unbind")] == [
        ("t1", {"identity": "urn:dev:ow:10e2073a01080063", "device": "LUM-0", "source": "bind"}),
        ("t1", {"identity": "ieee:00158d0001a2b3c4", "device": "ENV-0", "source": "bind"})]


def test_adapters_enable_list_disable(db_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
        save_model(conn, small_twin("t2"))
    result = run(db_url, "adapters", "enable", "--site", "t1", "zigbee2mqtt")
    assert result.exit_code == 0 and result.output == "t1: zigbee2mqtt enabled under 'zigbee2mqtt'\n"
    result = run(db_url, "adapters", "enable", "--site", "t2", "chirpstack", "--prefix", "application/42",
                 "--option", "fport=10", "--option", "region=CN470", "--option", "confirmed=true")
    assert result.exit_code == 0, result.output
    assert result.output == ("t2: chirpstack enabled under 'application/42' "
                             "(options: confirmed=true, fport=10, region=CN470)\n")
    result = run(db_url, "adapters", "enable", "--site", "t2", "tasmota")
    assert result.output == "t2: tasmota enabled at the topic root (tele/..., stat/..., cmnd/...)\n"
    listed = run(db_url, "adapters", "list").output.splitlines()
    assert listed == [
        "t1           zigbee2mqtt  zigbee2mqtt",
        "t2           chirpstack   application/42          confirmed=true, fport=10, region=CN470",
        "t2           tasmota      (topic root)",
        "3 adapters enabled",
    ]
    rows = orjson.loads(run(db_url, "adapters", "list", "--site", "t2", "--json").output)
    assert rows == [
        {"site_id": "t2", "adapter": "chirpstack", "prefix": "application/42",
         "options": {"confirmed": True, "fport": 10, "region": "CN470"}},
        {"site_id": "t2", "adapter": "tasmota", "prefix": "", "options": {}},
    ]
    # A prefix belongs to one site; a prefix must be topic levels; an unknown adapter or option is a usage error.
    result = run(db_url, "adapters", "enable", "--site", "t2", "zigbee2mqtt")
    assert result.exit_code == 1 and "zigbee2mqtt prefix 'zigbee2mqtt' belongs to site 't1'" in result.output
    result = run(db_url, "adapters", "enable", "--site", "t2", "zigbee2mqtt", "--prefix", "z2m/#")
    assert result.exit_code == 2 and "topic prefix 'z2m/#'" in result.output
    assert run(db_url, "adapters", "enable", "--site", "t2", "lorawan").exit_code == 2
    assert run(db_url, "adapters", "enable", "--site", "t2", "tts", "--option", "novalue").exit_code == 2
    assert run(db_url, "adapters", "enable", "--site", "t9", "tts").exit_code == 1
    # Enabling again replaces the options.
    run(db_url, "adapters", "enable", "--site", "t2", "chirpstack", "--prefix", "application/42")
    assert "fport" not in run(db_url, "adapters", "list", "--site", "t2").output

    result = run(db_url, "adapters", "disable", "--site", "t1", "zigbee2mqtt")
    assert result.exit_code == 0 and result.output == "t1: zigbee2mqtt disabled under 'zigbee2mqtt'\n"
    result = run(db_url, "adapters", "disable", "--site", "t1", "zigbee2mqtt")
    assert result.exit_code == 1 and "zigbee2mqtt is not enabled under 'zigbee2mqtt' at site 't1'" in result.output
    assert run(db_url, "adapters", "list", "--site", "t1").output == "0 adapters enabled\n"
    assert [(e["action"], e["target"], e["detail"]) for e in audited(db_url, "adapter_disable")] == [
        ("adapter_disable", "t1", {"adapter": "zigbee2mqtt", "prefix": "zigbee2mqtt"})]
    enabled = audited(db_url, "adapter_enable")
    assert [e["outcome"] for e in enabled] == ["ok", "failed", "ok", "ok", "ok"]  # newest first
    assert enabled[1]["detail"]["error"] == "zigbee2mqtt prefix 'zigbee2mqtt' belongs to site 't1'"
    assert enabled[-2]["detail"] == {"adapter": "chirpstack", "prefix": "application/42",
                                     "options": {"confirmed": True, "fport": 10, "region": "CN470"}}
