"""A storey's floor-plan snapshot (twin.storage.plans.storey_snapshot) against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from shapely.geometry import box

from twin.database import connection
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.metrics import BY_NAME
from twin.storage import plans
from twin.storage.events import update_status
from twin.storage.model import device_keys, save_model
from twin.storage.readings import ReadingWriter, room_latest

CO2 = BY_NAME["co2"].metric_id
TEMPERATURE = BY_NAME["temperature"].metric_id


def _model() -> TwinModel:
    rooms = (
        Room("A", "S1", "A101", use="classroom", footprint=box(0, 0, 8, 6)),
        Room("B", "S1", "B102", use="lab", footprint=box(8, 0, 16, 6)),
        Room("C", "S1", "C store", use="other"),  # no footprint
        Room("U", "S2", "U201", use="classroom", footprint=box(0, 0, 8, 6)),  # another storey
    )
    devices = (
        Device("env-a1", "GA1", "env_sensor", "IfcSensor", room_global_id="A", storey_global_id="S1",
               mapping="containment", x=1.0, y=1.0, z=1.0),
        Device("env-a2", "GA2", "env_sensor", "IfcSensor", room_global_id="A", storey_global_id="S1",
               mapping="containment", x=2.0, y=1.0, z=1.0),
        Device("lum-b", "GB", "luminaire", "IfcLightFixture", room_global_id="B", storey_global_id="S1",
               mapping="containment"),  # no position: counted, not marked
        Device("gw-1", "GW", "controller", "IfcController", storey_global_id="S1", mapping="geometry",
               x=20.0, y=3.0, z=1.0),  # on the storey, in no room
        Device("env-u", "GU", "env_sensor", "IfcSensor", room_global_id="U", storey_global_id="S2",
               mapping="containment", x=1.0, y=1.0, z=1.0),
    )
    return TwinModel(Site("p1", "Plan school", "headquarters", 22.5, 114.0), (Building("B1", "Main"),),
                     (Storey("S1", "B1", "1F", 0.0), Storey("S2", "B1", "2F", 3.6)), rooms, devices)


@pytest.fixture
def twin(db_url: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    with connection(db_url) as conn:
        save_model(conn, _model())
        keys = device_keys(conn)
        ReadingWriter(conn).write([
            (now - timedelta(seconds=30), keys["p1", "env-a1"], CO2, 700.0),
            (now - timedelta(seconds=10), keys["p1", "env-a1"], CO2, 800.0),  # latest of env-a1
            (now - timedelta(seconds=10), keys["p1", "env-a2"], CO2, 1000.5),
            (now - timedelta(seconds=10), keys["p1", "env-a1"], TEMPERATURE, 24.25),
            (now - timedelta(seconds=10), keys["p1", "env-u"], CO2, 2000.0),
        ])
        update_status(conn, keys["p1", "env-a2"], "offline")
        conn.commit()
        storeys = dict(conn.execute("SELECT global_id, id FROM storeys").fetchall())
        rooms = dict(conn.execute("SELECT name, id FROM rooms").fetchall())
    return {"url": db_url, "storey": storeys["S1"], "upper": storeys["S2"], "rooms": rooms}


class CountingCursor(psycopg.Cursor):
    executed = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        type(self).executed += 1
        return super().execute(*args, **kwargs)


def test_a_storey_snapshot_is_what_the_plan_draws_in_one_statement(twin: dict[str, Any]) -> None:
    with connection(twin["url"]) as conn:
        conn.cursor_factory = CountingCursor
        snap = plans.storey_snapshot(conn, twin["storey"])
        assert CountingCursor.executed == 1
        conn.cursor_factory = psycopg.Cursor
        stamp = conn.execute("SELECT updated_at FROM sites WHERE site_id = 'p1'").fetchone()[0]
        same_rooms = plans.storey_rooms(conn, twin["storey"])
        same_latest = room_latest(conn, [r.room_id for r in same_rooms])
    assert snap is not None and (snap.storey_id, snap.site_id, snap.stamp) == (twin["storey"], "p1", stamp)
    rooms = twin["rooms"]
    # rooms by name with their use and footprint (None when it has none), as storey_rooms reads them
    assert [(r.room_id, r.name, r.use) for r in snap.rooms] == [(rooms["A101"], "A101", "classroom"),
                                                                 (rooms["B102"], "B102", "lab"),
                                                                 (rooms["C store"], "C store", "other")]
    assert [r.footprint for r in snap.rooms] == [r.footprint for r in same_rooms]
    assert snap.rooms[0].footprint.equals(box(0, 0, 8, 6)) and snap.rooms[2].footprint is None
    # the storey's devices by id, in its rooms or on it without a room, positions as stored (None: not placed)
    assert [(d.device_id, d.kind, d.room_id, d.x, d.y) for d in snap.devices] == [
        ("env-a1", "env_sensor", rooms["A101"], 1.0, 1.0), ("env-a2", "env_sensor", rooms["A101"], 2.0, 1.0),
        ("gw-1", "controller", None, 20.0, 3.0), ("lum-b", "luminaire", rooms["B102"], None, None)]
    # states of the devices not online: offline, or unknown (never reported); online ones are absent
    assert dict(snap.not_online) == {"env-a2": "offline", "gw-1": "unknown", "lum-b": "unknown"}
    # latest values per room and metric: the mean over the room's devices, exact; other storeys not included
    assert snap.latest == {rooms["A101"]: {"co2": 900.25, "temperature": 24.25}}
    assert snap.latest == {k: v for k, v in same_latest.items() if v}


def test_a_known_stamp_skips_rooms_and_devices_until_an_import_changes_the_site(twin: dict[str, Any]) -> None:
    with connection(twin["url"]) as conn:
        first = plans.storey_snapshot(conn, twin["storey"])
        assert first is not None
        again = plans.storey_snapshot(conn, twin["storey"], known=first.stamp)
        assert again is not None and again.rooms is None and again.devices is None
        assert (again.stamp, dict(again.not_online), again.latest) == (first.stamp, dict(first.not_online),
                                                                       first.latest)
        moved = _model()
        save_model(conn, TwinModel(moved.site, moved.buildings, moved.storeys, moved.rooms[1:], moved.devices[2:]))
        conn.commit()
        after = plans.storey_snapshot(conn, twin["storey"], known=first.stamp)
        assert after is not None and after.stamp > first.stamp
        assert [r.name for r in after.rooms] == ["B102", "C store"]  # A101 removed by the re-import
        assert [d.device_id for d in after.devices] == ["gw-1", "lum-b"]


def test_an_unknown_storey_has_no_snapshot_and_an_empty_one_has_empty_parts(twin: dict[str, Any]) -> None:
    with connection(twin["url"]) as conn:
        assert plans.storey_snapshot(conn, 999_999) is None
        conn.execute("INSERT INTO storeys (building_id, global_id, name) SELECT building_id, 'S9', '9F' "
                     "FROM storeys WHERE id = %s", (twin["storey"],))
        empty = conn.execute("SELECT id FROM storeys WHERE global_id = 'S9'").fetchone()[0]
        snap = plans.storey_snapshot(conn, empty)
    assert snap is not None and snap.site_id == "p1"
    assert (snap.rooms, snap.devices, dict(snap.not_online), dict(snap.latest)) == ((), (), {}, {})
