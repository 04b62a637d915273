"""plans.room_live: a room, its devices with status and their latest values in one statement, the same as
plans.room, devices.room_devices and readings.room_latest_detail read one by one."""

from __future__ import annotations

from tests.test_dashboard import KnownTwin, known_twin  # noqa: F401  (fixtures)
from twin.database import connect
from twin.storage import devices, plans, readings


def test_room_live_is_the_room_its_devices_and_latest_values(known_twin: KnownTwin) -> None:  # noqa: F811
    with connect(known_twin.url) as conn:
        for room_id in known_twin.rooms.values():
            live = plans.room_live(conn, room_id)
            assert live is not None
            assert live.room == plans.room(conn, room_id)
            assert live.room.time_zone == "Asia/Shanghai"
            assert list(live.devices) == devices.room_devices(conn, room_id)
            assert list(live.latest) == readings.room_latest_detail(conn, room_id)
        assert any(plans.room_live(conn, r).latest for r in known_twin.rooms.values())
        assert plans.room_live(conn, 10**9) is None
