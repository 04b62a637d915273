"""Values that cross package boundaries: the twin's spatial model (rows read back are typed next to their
queries in :mod:`twin.storage`).

All lengths are metres, areas square metres, coordinates in the model's world frame
(``x``/``y`` on the floor plane, ``z`` up). Footprints are shapely geometries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from shapely.geometry.base import BaseGeometry

_SITE_ID_CHARS = r"A-Za-z0-9_.-"
#: A site id: letters, digits, '_', '.', '-', at most 64 (it goes into MQTT topics and file names).
SITE_ID = re.compile(rf"[{_SITE_ID_CHARS}]{{1,64}}")
#: Runs of what a site id may not hold (to make one from a file name).
NOT_IN_SITE_ID = re.compile(rf"[^{_SITE_ID_CHARS}]+")

SiteRole = Literal["headquarters", "member"]
RoomUse = Literal["classroom", "lab", "office", "corridor", "toilet", "stair", "other"]
Mapping = Literal["containment", "reference", "geometry", "unmapped"]
#: Where a room's footprint came from: body geometry, the FootPrint curve, the bounding box, or nowhere.
GeometrySource = Literal["body", "footprint", "bounding_box", "none"]
#: Where a device id came from: ``Pset_CampusTwin.DeviceId``, the Tag, or derived from the GlobalId.
IdSource = Literal["pset", "tag", "derived"]

#: Device kinds the twin knows; simulators and rules key on these.
DEVICE_KINDS = (
    "env_sensor",
    "luminaire",
    "blackboard_luminaire",
    "panel",
    "outlet",
    "switch",
    "controller",
    "appliance",
    "other",
)


@dataclass(frozen=True, slots=True)
class MapConversion:
    """IfcMapConversion: model (x, y, z) in metres -> map (eastings, northings, height) in the ``crs``.

    ``eastings = x * scale * cos(a) - y * scale * sin(a) + e0`` with ``a`` the rotation of the
    model's x axis from map east (``x_axis_abscissa``, ``x_axis_ordinate``).
    """

    crs: str | None
    eastings: float
    northings: float
    orthogonal_height: float
    x_axis_abscissa: float = 1.0
    x_axis_ordinate: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    name: str
    role: SiteRole = "member"
    latitude: float | None = None
    longitude: float | None = None
    elevation_m: float | None = None
    map_conversion: MapConversion | None = None


@dataclass(frozen=True, slots=True)
class Building:
    global_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Storey:
    global_id: str
    building_global_id: str
    name: str
    elevation_m: float = 0.0


@dataclass(frozen=True, slots=True)
class Room:
    global_id: str
    storey_global_id: str
    name: str
    long_name: str | None = None
    use: RoomUse = "other"
    footprint: BaseGeometry | None = None
    area_m2: float | None = None
    height_m: float | None = None
    geometry: GeometrySource = "body"
    #: The file's own floor area and height (BaseQuantities / Qto_SpaceBaseQuantities), when it states them.
    quantity_area_m2: float | None = None
    quantity_height_m: float | None = None


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    global_id: str
    kind: str
    ifc_class: str
    name: str = ""
    room_global_id: str | None = None
    storey_global_id: str | None = None
    mapping: Mapping = "unmapped"
    x: float | None = None
    y: float | None = None
    z: float | None = None
    id_source: IdSource = "pset"
    #: Hardware identities the BIM gives it, ``(kind, hardware_id)`` in normal form (:mod:`twin.identities`), sorted.
    identities: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TwinModel:
    """Everything one BIM file says about one site."""

    site: Site
    buildings: tuple[Building, ...] = ()
    storeys: tuple[Storey, ...] = ()
    rooms: tuple[Room, ...] = ()
    devices: tuple[Device, ...] = ()
    schema: str = ""
    warnings: tuple[str, ...] = field(default=())
    #: The file's IfcProject and (first) IfcSite GlobalIds ("" when not read from a file).
    ifc_project: str = ""
    ifc_site: str = ""
