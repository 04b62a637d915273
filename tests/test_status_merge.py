"""A batch's statuses are written in one statement, merged per device (adapters report a battery or a signal
with every message): the same end state as writing them one by one."""

from __future__ import annotations

from tests.helpers import small_twin
from twin.database import connection
from twin.storage import events
from twin.storage.model import save_model

SEQUENCE = [  # (state, firmware, battery, rssi, retained) in the order received
    ("online", "1.0", None, -70.0, True),   # a retained copy: not a sign of life
    ("online", None, 88.0, None, False),    # live: seen now
    ("offline", None, None, -80.0, False),  # the last word on the state
    ("offline", "1.1", None, None, True),
]


def test_merged_statuses_end_where_one_by_one_ends(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
        keys = dict(conn.execute("SELECT device_id, id FROM devices").fetchall())
        with conn.transaction():
            for state, firmware, battery, rssi, retained in SEQUENCE:
                events.update_status(conn, keys["ENV-0"], state, firmware=firmware, battery_pct=battery,
                                     rssi_dbm=rssi, retained=retained)
            events.update_statuses(conn, events.merge_statuses(
                [(keys["ENV-1"], *row) for row in SEQUENCE] + [(keys["ENV-2"], "online", None, None, None, True)]))
            rows = {d: r for d, *r in conn.execute(
                """SELECT d.device_id, s.state, s.last_seen IS NOT NULL, s.firmware, s.battery_pct, s.rssi_dbm
                   FROM device_status s JOIN devices d ON d.id = s.device_id""").fetchall()}
    assert rows["ENV-1"] == rows["ENV-0"] == ["offline", True, "1.1", 88.0, -80.0]
    assert rows["ENV-2"] == ["online", False, None, None, None]  # only a retained online: never seen
