"""The twin as Brick: a site's model (and what its devices report) as an RDF graph, and its SHACL check.

Brick 1.5, as the ``brickschema`` package bundles it (nothing is fetched). Brick 1.4 phased its own
location classes out for RealEstateCore's, so places are ``rec:`` classes (``rec:Site``,
``rec:Building``, ``rec:Level``, ``rec:Classroom``...) joined by ``brick:hasPart``/``brick:isPartOf``;
devices are Brick equipment ``brick:hasLocation`` their room (else storey) with ``brick:hasPoint``
points, one per metric, units from QUDT. Every element read from the IFC has an ``ref:IFCReference``
(its GlobalId) and every point a ``ref:TimeseriesReference`` whose id is ``site/device/metric``, the
readings' key in the database it names.

    >>> g = brick_graph([ExportSite(model, reported)], database="postgresql://db.example/twin")
    >>> g.serialize(format="turtle")
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from rdflib import RDF, RDFS, SKOS, XSD, BNode, Graph, Literal, Namespace, URIRef

from twin.domain import TwinModel

#: The Brick version the export speaks and validates against (bundled with ``brickschema``).
BRICK_VERSION = "1.5"
BRICK = Namespace("https://brickschema.org/schema/Brick#")
REC = Namespace("https://w3id.org/rec#")
REF = Namespace("https://brickschema.org/schema/Brick/ref#")
UNIT = Namespace("http://qudt.org/vocab/unit/")
QUDT = Namespace("http://qudt.org/schema/qudt/")
#: Where the twin's own nodes live: ``urn:campus-twin:<site>/<kind>/<id>``.
BASE = "urn:campus-twin:"

#: Room use -> RealEstateCore space class (Brick 1.4+ locations).
ROOM_CLASSES: dict[str, URIRef] = {
    "classroom": REC.Classroom, "lab": REC.Laboratory, "office": REC.Office, "corridor": REC.Hallway,
    "toilet": REC.Toilet, "stair": REC.Stairwell, "other": REC.Room,
}
#: Device kind -> Brick equipment class.
EQUIPMENT_CLASSES: dict[str, URIRef] = {
    "env_sensor": BRICK.IAQ_Sensor_Equipment, "luminaire": BRICK.Luminaire, "blackboard_luminaire": BRICK.Luminaire,
    "panel": BRICK.Audio_Visual_Equipment, "outlet": BRICK.PlugStrip, "switch": BRICK.Switch, "controller": BRICK.Controller,
    "appliance": BRICK.Equipment, "other": BRICK.Equipment,
}
#: Metric (catalogue name) -> Brick point class and QUDT unit (None: unitless).
POINTS: dict[str, tuple[URIRef, URIRef | None]] = {
    "temperature": (BRICK.Air_Temperature_Sensor, UNIT.DEG_C),
    "humidity": (BRICK.Relative_Humidity_Sensor, UNIT.PERCENT_RH),
    "co2": (BRICK.CO2_Level_Sensor, UNIT.PPM),
    "pm25": (BRICK["PM2.5_Level_Sensor"], UNIT["MicroGM-PER-M3"]),
    "tvoc": (BRICK.TVOC_Level_Sensor, UNIT["MilliGM-PER-M3"]),
    "noise": (BRICK.Sensor, UNIT.DeciB_A),  # Brick 1.5 has no sound-level sensor class
    "occupancy": (BRICK.Occupancy_Count_Sensor, None),
    "illuminance": (BRICK.Illuminance_Sensor, UNIT.LUX),
    "blackboard_illuminance": (BRICK.Illuminance_Sensor, UNIT.LUX),
    "power": (BRICK.Electric_Power_Sensor, UNIT.W),
    "energy": (BRICK.Electric_Energy_Sensor, UNIT["W-HR"]),
    "dimming": (BRICK.Level_Status, UNIT.PERCENT),
    "on": (BRICK.On_Off_Status, None),
    "panel_state": (BRICK.Operating_Mode_Status, None),
    "panel_temperature": (BRICK.Temperature_Sensor, UNIT.DEG_C),
    "screen_on": (BRICK.On_Off_Status, None),
    "input_source": (BRICK.Mode_Status, None),
    "cloud_session": (BRICK.Status, None),
    "cloud_role": (BRICK.Mode_Status, None),
    "presence": (BRICK.Occupancy_Status, None),
    "link_quality": (BRICK.Status, None),
}
#: What a device of each kind reports (the simulators' and the usual hardware's metrics); a device also
#: gets a point for any other metric it has reported.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "env_sensor": ("temperature", "humidity", "co2", "pm25", "noise", "occupancy"),
    "luminaire": ("on", "dimming", "power", "energy", "illuminance"),
    "blackboard_luminaire": ("on", "dimming", "power", "energy", "blackboard_illuminance"),
    "panel": ("panel_state", "screen_on", "power", "panel_temperature", "input_source"),
}


@dataclass(frozen=True, slots=True)
class ExportSite:
    """One site to export: its model, the metrics each device has reported (device id -> names) and the
    IFC file it was last loaded from (name, SHA-256, IfcProject and IfcSite GlobalIds), when known."""

    model: TwinModel
    reported: Mapping[str, Iterable[str]] = field(default_factory=dict)
    ifc_file: str | None = None
    ifc_sha256: str | None = None
    ifc_project: str | None = None
    ifc_site: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    sites: int = 0
    buildings: int = 0
    storeys: int = 0
    rooms: int = 0
    devices: int = 0
    points: int = 0


def device_metrics(kind: str, reported: Iterable[str] = ()) -> tuple[str, ...]:
    """The metrics a device gets points for: its kind's and what it reported, in catalogue order."""
    names = set(KIND_METRICS.get(kind, ())) | {m for m in reported if m in POINTS}
    return tuple(m for m in POINTS if m in names)


def node(site_id: str, kind: str, ident: str) -> URIRef:
    """The IRI of one element of the twin (ids percent-encoded)."""
    return URIRef(f"{BASE}{quote(site_id, safe='')}/{kind}/{quote(ident, safe='')}")


def new_graph() -> Graph:
    g = Graph()
    for prefix, ns in (("brick", BRICK), ("rec", REC), ("ref", REF), ("unit", UNIT), ("qudt", QUDT), ("skos", SKOS)):
        g.bind(prefix, ns)
    return g


def brick_graph(sites: Iterable[ExportSite], *, database: str) -> tuple[Graph, Counts]:
    """The Brick graph of ``sites`` and what it holds; ``database`` names where time series are stored."""
    g = new_graph()
    totals = Counts()
    for s in sites:
        c = add_site(g, s, database=database)
        totals = Counts(*(a + b for a, b in zip(astuple(totals), astuple(c), strict=True)))
    return g, totals


def add_site(g: Graph, s: ExportSite, *, database: str) -> Counts:
    """Add one site to ``g``; return its counts."""
    m = s.model
    sid = m.site.site_id
    site = node(sid, "site", sid)
    g.add((site, RDF.type, REC.Site))
    g.add((site, RDFS.label, Literal(m.site.name or sid)))
    # The IfcProject's GlobalId; an import logged before it was recorded: the file's SHA-256 names the file.
    project_id = s.ifc_project or m.ifc_project or (f"sha256:{s.ifc_sha256}" if s.ifc_sha256 else "unknown")
    project = node(sid, "ifc-project", project_id)

    def ifc(element: URIRef, global_id: str, name: str) -> None:
        ref = BNode()
        g.add((element, REF.hasExternalReference, ref))
        g.add((ref, RDF.type, REF.IFCReference))
        g.add((ref, REF.ifcGlobalID, Literal(global_id)))
        if name:
            g.add((ref, REF.ifcName, Literal(name)))
        g.add((ref, REF.hasIfcProjectReference, project))

    g.add((project, RDF.type, REF.ifcProject))
    g.add((project, REF.ifcFileLocation, Literal(s.ifc_file or "unknown")))
    g.add((project, REF.ifcProjectID, Literal(project_id)))

    if site_gid := s.ifc_site or m.ifc_site:
        ifc(site, site_gid, m.site.name)
    parts = {}
    for b in m.buildings:
        n = parts[b.global_id] = node(sid, "building", b.global_id)
        g.add((n, RDF.type, REC.Building))
        g.add((n, RDFS.label, Literal(b.name or b.global_id)))
        _part_of(g, n, site)
        ifc(n, b.global_id, b.name)
    for st in m.storeys:
        n = parts[st.global_id] = node(sid, "storey", st.global_id)
        g.add((n, RDF.type, REC.Level))
        g.add((n, RDFS.label, Literal(st.name or st.global_id)))
        _part_of(g, n, parts.get(st.building_global_id, site))
        ifc(n, st.global_id, st.name)
    for r in m.rooms:
        n = parts[r.global_id] = node(sid, "room", r.global_id)
        g.add((n, RDF.type, ROOM_CLASSES.get(r.use, REC.Room)))
        g.add((n, RDFS.label, Literal(r.name or r.long_name or r.global_id)))
        if r.long_name and r.long_name != r.name:
            g.add((n, SKOS.altLabel, Literal(r.long_name)))
        _part_of(g, n, parts.get(r.storey_global_id, site))
        ifc(n, r.global_id, r.name)
    points = 0
    units: set[URIRef] = set()
    db = Literal(database)
    for d in m.devices:
        n = node(sid, "device", d.device_id)
        g.add((n, RDF.type, EQUIPMENT_CLASSES.get(d.kind, BRICK.Equipment)))
        g.add((n, RDFS.label, Literal(d.name or d.device_id)))
        place = parts.get(d.room_global_id or "") or parts.get(d.storey_global_id or "")
        if place is not None:
            g.add((n, BRICK.hasLocation, place))
        ifc(n, d.global_id, d.name)
        for metric in device_metrics(d.kind, s.reported.get(d.device_id, ())):
            cls, unit = POINTS[metric]
            p = node(sid, "point", f"{d.device_id}/{metric}")
            g.add((p, RDF.type, cls))
            g.add((p, RDFS.label, Literal(f"{d.device_id} {metric}")))
            if unit is not None:
                g.add((p, BRICK.hasUnit, unit))
                units.add(unit)
            g.add((n, BRICK.hasPoint, p))
            g.add((p, BRICK.isPointOf, n))
            ts = BNode()
            g.add((p, REF.hasExternalReference, ts))
            g.add((ts, RDF.type, REF.TimeseriesReference))
            g.add((ts, REF.hasTimeseriesId, Literal(f"{sid}/{d.device_id}/{metric}", datatype=XSD.string)))
            g.add((ts, REF.storedAt, db))
            points += 1
    # QUDT's unit vocabulary is not part of Brick: the units used are declared (Brick's shapes want a qudt:Unit).
    for unit in units:
        g.add((unit, RDF.type, QUDT.Unit))
    return Counts(1, len(m.buildings), len(m.storeys), len(m.rooms), len(m.devices), points)


def _part_of(g: Graph, child: URIRef, parent: URIRef) -> None:
    g.add((child, BRICK.isPartOf, parent))
    g.add((parent, BRICK.hasPart, child))


@dataclass(frozen=True, slots=True)
class Validation:
    conforms: bool
    #: pySHACL's text report (empty when it conforms).
    report: str


def validate(g: Graph) -> Validation:
    """Check ``g`` against Brick's SHACL shapes (the bundled ontology; nothing is fetched)."""
    import brickschema

    data = brickschema.Graph()
    data += g
    conforms, _, text = data.validate(extra_graphs=[_brick_ontology()])
    return Validation(bool(conforms), "" if conforms else str(text))


@functools.cache
def _brick_ontology() -> Graph:
    """Brick with its shapes, parsed once (2 MB of Turtle, about 2 s); never changed by validation."""
    import brickschema

    return brickschema.Graph(load_brick=True, brick_version=BRICK_VERSION)


def stored_sites(conn: Any, site_ids: Iterable[str]) -> list[ExportSite]:
    """What :func:`brick_graph` needs of the stored sites ``site_ids`` (unknown ones are left out)."""
    from twin.storage.bim_imports import last_source
    from twin.storage.devices import reported_metrics
    from twin.storage.model import load_model

    out = []
    for site_id in site_ids:
        model = load_model(conn, site_id)
        if model is None:
            continue
        src = last_source(conn, site_id)
        out.append(ExportSite(model, reported_metrics(conn, site_id), src.file_name if src else None,
                              src.file_sha256 if src else None, src.ifc_project if src else None,
                              src.ifc_site if src else None))
    return out


def database_name(url: str) -> str:
    """A database URL without user, password or query (what ``ref:storedAt`` says; no secret leaves)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
