"""Values that cross package boundaries: the twin's spatial model and readings.

All lengths are metres, areas square metres, coordinates in the model's world frame
(``x``/``y`` on the floor plane, ``z`` up). Footprints are shapely geometries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shapely.geometry.base import BaseGeometry

SiteRole = Literal["headquarters", "member"]
RoomUse = Literal["classroom", "lab", "office", "corridor", "toilet", "stair", "other"]
Mapping = Literal["containment", "reference", "geometry", "unmapped"]

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
class Site:
    site_id: str
    name: str
    role: SiteRole = "member"
    latitude: float | None = None
    longitude: float | None = None
    elevation_m: float | None = None


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


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one metric of one device at one time (``ts`` is timezone-aware UTC)."""

    ts: datetime
    site_id: str
    device_id: str
    metric: str
    value: float
