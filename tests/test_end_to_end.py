"""The walking skeleton end to end: generate an IFC, load it, simulate, ingest, draw the floor plan."""

from __future__ import annotations

import uuid

from dashboard.figures import floorplan_figure
from ingest.worker import IngestWorker
from simulators.fleet import FleetRunner
from tests.helpers import running, wait_for
from twin.cli import load_bim
from twin.database import connection
from twin.storage.plans import list_storeys, storey_rooms
from twin.storage.readings import room_latest


def test_generated_school_loaded_simulated_ingested_and_drawn(db_url, mqtt_url, tmp_path):
    from models_bim.generate import generate_school

    ifc = tmp_path / "school.ifc"
    generate_school(ifc, site_id="e2e", name="端到端学校", storeys=2, classrooms_per_storey=3)
    summary = load_bim(db_url, ifc, "e2e", role="headquarters")
    assert summary["storeys"] == 2 and summary["rooms"] > 6

    with connection(db_url) as conn:
        sensor_rooms = {r[0] for r in conn.execute(
            "SELECT DISTINCT room_id FROM devices WHERE kind = 'env_sensor' AND room_id IS NOT NULL").fetchall()}
    assert len(sensor_rooms) == 6  # one environment sensor per classroom

    tag = uuid.uuid4().hex[:8]
    worker = IngestWorker(db_url, mqtt_url, client_id=f"e2e-ingest-{tag}", share_group=f"e2e-{tag}",
                          batch_wait_s=0.05)
    runner = FleetRunner(db_url, mqtt_url, interval_s=0.5, seed=3, client_id=f"e2e-sim-{tag}")

    def rooms_with_co2() -> set[int]:
        with connection(db_url) as conn:
            latest = room_latest(conn, list(sensor_rooms))
        return {room for room, values in latest.items() if "co2" in values}

    with running(worker.run):
        assert worker.connected.wait(10)
        with running(runner.run):
            wait_for(lambda: rooms_with_co2() == sensor_rooms, timeout=60)

    with connection(db_url) as conn:
        # this site's messages only: a shared broker also hands out retained statuses of other sites
        refused = conn.execute("SELECT topic, reason FROM dead_letters WHERE topic LIKE 'campus/v1/e2e/%'").fetchall()
        assert refused == []
        storeys = list_storeys(conn, "e2e")
        assert len(storeys) == 2
        for storey in storeys:
            rooms = storey_rooms(conn, storey.storey_id)
            values = room_latest(conn, [r.room_id for r in rooms])
            fig = floorplan_figure(rooms, values, "co2")
            drawn = [r for r in rooms if r.footprint is not None]
            assert len(drawn) == len(rooms), "every generated room has a footprint"
            names = [t.get("name") for t in fig["data"]]
            room_traces = fig["data"][:names.index("labels")]  # one outline per room, then the labels
            assert len(room_traces) == len(rooms)
            assert sorted(int(t["customdata"][0]) for t in room_traces) == sorted(r.room_id for r in rooms)
            # and every room can be clicked anywhere: hit points of its own
            hits = {int(t["customdata"][0]) for t in fig["data"] if t.get("meta") == "hit"}
            assert hits == {r.room_id for r in rooms}
