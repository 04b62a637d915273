"""`campus-twin export brick`: the twin as Brick, valid against Brick's SHACL shapes, counts equal to the twin's,
queried with SPARQL; a generated school and the richest real IFC files of ../shared/ifc."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import ifcopenshell
import plotly.utils
import pytest
from click.testing import CliRunner
from rdflib import RDF, Graph

from models_bim.generate import generate_school
from models_bim.load import read_model
from tests.helpers import add_user, login
from tests.test_dashboard import KnownTwin, _page, known_twin, make_app  # noqa: F401 - fixture
from twin import security
from twin.brick import (
    BRICK,
    EQUIPMENT_CLASSES,
    REC,
    REF,
    ROOM_CLASSES,
    ExportSite,
    brick_graph,
    device_metrics,
    validate,
)
from twin.cli import main
from twin.database import connection
from twin.domain import TwinModel
from twin.storage.model import load_model, save_model

#: The richest files of ../shared/ifc (MANIFEST.md): the school, the office, the two device-rich electrical models.
RICHEST = ("gva-primary-school-educativo_ifc2x3_revit2021.ifc", "office-a_ifc2x3_revit2011_99spaces.ifc",
           "duplex-electrical_ifc2x3_revit2013_feet.ifc", "haustechnik-elektro_ifc2x3_ddscad_lights-outlets-switches.ifc")

CO2_IN_CLASSROOMS_OF_2F = """
    PREFIX brick: <https://brickschema.org/schema/Brick#>
    PREFIX rec: <https://w3id.org/rec#>
    PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
    SELECT DISTINCT ?device WHERE {
        ?point a brick:CO2_Level_Sensor ; brick:isPointOf ?device .
        ?device brick:hasLocation ?room .
        ?room a rec:Classroom ; brick:isPartOf ?storey .
        ?storey a rec:Level ; rdfs:label "2F" .
    }"""


@pytest.fixture(scope="module")
def school_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("brick") / "school.ifc"
    generate_school(path, site_id="gs", name="Generated school", storeys=3, classrooms_per_storey=4, labs=1)
    return path


@pytest.fixture(scope="module")
def school(school_file: Path) -> TwinModel:
    return read_model(school_file, site_id="gs")


def _export(db_url: str, tmp_path: Path, *args: str) -> tuple[Graph, str]:
    out = tmp_path / "twin.ttl"
    result = CliRunner().invoke(main, ["--database-url", db_url, "export", "brick", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return Graph().parse(out, format="turtle"), result.output


def _count(g: Graph, classes) -> int:
    return len({s for c in set(classes) for s in g.subjects(RDF.type, c)})


def _points(g: Graph) -> int:
    return len(set(g.objects(None, BRICK.hasPoint)))


def test_a_generated_school_exports_valid_brick_with_the_twins_counts(db_url: str, tmp_path: Path, school,
                                                                       school_file: Path) -> None:
    model = school
    loaded = CliRunner().invoke(main, ["--database-url", db_url, "bim", "load", str(school_file), "--site", "gs"])
    assert loaded.exit_code == 0, loaded.output
    with connection(db_url) as conn:
        # One sensor has reported a metric its kind does not usually have: it gets a point for it.
        conn.execute("""INSERT INTO latest (device_id, metric_id, ts, value)
                        SELECT id, 5, %s, 0.3 FROM devices WHERE site_id = 'gs' AND kind = 'env_sensor' LIMIT 1""",
                     (datetime.now(UTC),))
        stored = load_model(conn, "gs")
    g, output = _export(db_url, tmp_path, "--site", "gs", "--validate")
    assert "conforms to Brick's shapes" in output
    assert _count(g, ROOM_CLASSES.values()) == len(stored.rooms) == len(model.rooms)
    assert _count(g, EQUIPMENT_CLASSES.values()) == len(stored.devices)
    expected_points = sum(len(device_metrics(d.kind)) for d in stored.devices) + 1
    assert _points(g) == expected_points
    assert _count(g, [REF.TimeseriesReference]) == expected_points
    assert f"{len(stored.rooms)} rooms, {len(stored.devices)} devices, {expected_points} points" in output
    assert len(list(g.subjects(RDF.type, REC.Level))) == len(stored.storeys)
    # Every building, storey, room and device carries its IFC GlobalId.
    ids = {str(o) for o in g.objects(None, REF.ifcGlobalID)}
    assert {r.global_id for r in stored.rooms} | {d.global_id for d in stored.devices} <= ids
    # ... and the IfcProject of the file it was loaded from.
    project = ifcopenshell.open(str(school_file)).by_type("IfcProject")[0].GlobalId
    assert {str(o) for o in g.objects(None, REF.ifcProjectID)} == {project}
    assert {str(o) for o in g.objects(None, REF.ifcFileLocation)} == {"school.ifc"}
    site_gid = ifcopenshell.open(str(school_file)).by_type("IfcSite")[0].GlobalId
    site_ref = next(g.objects(next(g.subjects(RDF.type, REC.Site)), REF.hasExternalReference))
    assert str(g.value(site_ref, REF.ifcGlobalID)) == site_gid


def test_co2_sensors_in_classrooms_of_storey_2f_by_sparql(db_url: str, tmp_path: Path, school) -> None:
    model = school
    with connection(db_url) as conn:
        save_model(conn, model)
    g, _ = _export(db_url, tmp_path, "--site", "gs")
    rows = g.query(CO2_IN_CLASSROOMS_OF_2F)
    storey_2f = {s.global_id for s in model.storeys if s.name == "2F"}
    classrooms = {r.global_id for r in model.rooms if r.use == "classroom" and r.storey_global_id in storey_2f}
    expected = {d.device_id for d in model.devices if d.kind == "env_sensor" and d.room_global_id in classrooms}
    assert expected  # the generated school has sensors in its 2F classrooms
    found = {unquote(str(r.device).rsplit("/", 1)[1]) for r in rows}
    assert found == expected


def test_the_network_exports_every_site_in_one_valid_graph(db_url: str, tmp_path: Path, school) -> None:
    from tests.helpers import small_twin

    model = school
    with connection(db_url) as conn:
        save_model(conn, model)
        save_model(conn, small_twin("t2"))
    g, output = _export(db_url, tmp_path, "--network", "--validate")
    assert len(list(g.subjects(RDF.type, REC.Site))) == 2
    assert "2 site(s)" in output and "conforms" in output


def test_a_broken_graph_does_not_conform() -> None:
    from tests.helpers import small_twin

    g, _ = brick_graph([ExportSite(small_twin("t1"))], database="postgresql://db.example/twin")
    assert validate(g).conforms
    ref = next(g.subjects(RDF.type, REF.TimeseriesReference))
    g.remove((ref, REF.hasTimeseriesId, None))  # a time-series reference must say which series
    result = validate(g)
    assert not result.conforms
    assert "hasTimeseriesId" in result.report


def test_brick_usage_errors(db_url: str) -> None:
    runner = CliRunner()
    for args in (["export", "brick"], ["export", "brick", "--site", "x", "--metric", "co2"],
                 ["export", "--network"]):
        assert runner.invoke(main, ["--database-url", db_url, *args]).exit_code == 2
    result = runner.invoke(main, ["--database-url", db_url, "export", "brick", "--site", "nowhere"])
    assert result.exit_code == 1 and "unknown site 'nowhere'" in result.output


@pytest.mark.parametrize("name", RICHEST)
def test_the_richest_shared_files_export_valid_brick(shared_ifc: Path, db_url: str, tmp_path: Path, name: str) -> None:
    path = shared_ifc / name
    if not path.exists():
        pytest.skip(f"{name} is not in {shared_ifc}")
    model = read_model(path, site_id="s1")
    with connection(db_url) as conn:
        save_model(conn, model)
        stored = load_model(conn, "s1")
    g, output = _export(db_url, tmp_path, "--site", "s1", "--validate")
    assert "conforms" in output
    assert _count(g, ROOM_CLASSES.values()) == len(stored.rooms)
    assert _count(g, EQUIPMENT_CLASSES.values()) == len(stored.devices)
    assert _points(g) == sum(len(device_metrics(d.kind)) for d in stored.devices)


def test_brick_ttl_is_downloaded_by_admins_only(known_twin: KnownTwin) -> None:  # noqa: F811
    from dashboard.app import close_app

    for role in security.ROLES:
        add_user(known_twin.url, f"{role}-1", role)
    app = make_app(known_twin.url)
    try:
        anonymous = app.server.test_client().get("/brick.ttl")
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
        for role in ("viewer", "operator", "planner"):
            client = app.server.test_client()
            login(client, f"{role}-1")
            assert client.get("/brick.ttl").status_code == 403, role
        admin = app.server.test_client()
        login(admin, "admin-1")
        response = admin.get("/brick.ttl?site=hq")
        assert response.status_code == 200
        assert response.mimetype == "text/turtle"
        assert 'filename="hq.ttl"' in response.headers["Content-Disposition"]
        g = Graph().parse(data=response.get_data(as_text=True), format="turtle")
        with connection(known_twin.url) as conn:
            stored = load_model(conn, "hq")
        assert _count(g, ROOM_CLASSES.values()) == len(stored.rooms)
        assert validate(g).conforms
        assert len(list(Graph().parse(data=admin.get("/brick.ttl").get_data(as_text=True), format="turtle")
                        .subjects(RDF.type, REC.Site))) == 2  # the network: headquarters and member school
        assert admin.get("/brick.ttl?site=nowhere").status_code == 404
        # The BIM page links to it for admins only.
        bim = _page("bim")
        for role in security.ROLES:
            who = login(app.server.test_client(), f"{role}-1")
            with app.server.test_request_context("/", headers=who.headers):
                page = json.dumps(bim.layout(), cls=plotly.utils.PlotlyJSONEncoder)
            assert ('"href": "/brick.ttl"' in page) == (role == "admin"), role
        with connection(known_twin.url) as conn:
            outcomes = [r[0] for r in conn.execute(
                "SELECT outcome FROM audit_log WHERE action = 'export' ORDER BY id").fetchall()]
        assert outcomes.count("denied") == 3 and "ok" in outcomes
    finally:
        close_app(app)


@pytest.mark.parametrize("kind", ["env_sensor", "luminaire", "blackboard_luminaire", "panel"])
def test_a_kinds_points_are_what_the_simulated_device_of_that_kind_reports(kind: str) -> None:
    import random

    from simulators.models import model_for
    from simulators.timetable import Timetable

    device = model_for(kind, random.Random(1), Timetable())
    reported = device.step(60.0, datetime(2026, 11, 16, 10, 0, tzinfo=UTC))
    assert set(device_metrics(kind)) == set(reported)
