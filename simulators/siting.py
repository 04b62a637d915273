"""From the twin's BIM data to what the physics needs: window orientation, daylight position, class size.

The BIM loaded into the twin has room footprints but no windows, so a room's window
wall is taken to be its side that faces outside the storey (a point just beyond it lies
in no room of the storey); with several outside walls, the longest, then the one facing
closest to south, wins (Chinese classrooms are oriented for south light); a room without an outside wall
gets the default. Azimuths here are in the model's frame (+y up the page); the fleet turns
them to true north with the site's IfcMapConversion when the BIM has one.

    >>> from shapely.geometry import box
    >>> rooms = [box(0, 0, 9, 7), box(0, 9, 9, 16)]  # two rooms either side of a corridor
    >>> corridor = box(0, 7, 9, 9)
    >>> window_azimuth(rooms[0], [*rooms, corridor]), window_azimuth(rooms[1], [*rooms, corridor])
    (180.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

#: Outward normals of the four sides of a rectangle-ish room: (azimuth, dx, dy).
_SIDES = ((180.0, 0.0, -1.0), (0.0, 0.0, 1.0), (90.0, 1.0, 0.0), (270.0, -1.0, 0.0))
_PROBE_M = 0.6


def window_azimuth(room: BaseGeometry | None, storey: Sequence[BaseGeometry]) -> float | None:
    """Azimuth (degrees clockwise from north) of the room's outside wall, or None if it has none."""
    if room is None or room.is_empty:
        return None
    minx, miny, maxx, maxy = room.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    outside: list[float] = []
    for azimuth, dx, dy in _SIDES:
        x = cx if dx == 0 else (maxx + _PROBE_M if dx > 0 else minx - _PROBE_M)
        y = cy if dy == 0 else (maxy + _PROBE_M if dy > 0 else miny - _PROBE_M)
        probe = Point(x, y)
        if not any(g is not None and g.contains(probe) for g in storey):
            outside.append(azimuth)
    if not outside:
        return None

    def preference(azimuth: float) -> tuple[float, float]:  # the longest outside wall, then the most southern
        length = (maxx - minx) if azimuth in (0.0, 180.0) else (maxy - miny)
        return round(length, 1), -abs(((azimuth - 180.0) + 180.0) % 360.0 - 180.0)

    return max(outside, key=preference)


def position_factor(x: float | None, y: float | None, room: BaseGeometry | None, azimuth: float | None) -> float:
    """Daylight at a point relative to the room average: about 1.6 near the window, 0.6 at the back."""
    if x is None or y is None or room is None or room.is_empty or azimuth is None:
        return 1.0
    minx, miny, maxx, maxy = room.bounds
    dx, dy = math.sin(math.radians(azimuth)), math.cos(math.radians(azimuth))
    if abs(dy) >= abs(dx):
        depth = maxy - miny
        distance = (maxy - y) if dy > 0 else (y - miny)
    else:
        depth = maxx - minx
        distance = (maxx - x) if dx > 0 else (x - minx)
    if depth <= 0:
        return 1.0
    distance = min(max(distance, 0.0), depth)
    return round(math.exp(-(distance - depth / 2) / (0.7 * depth)), 3)


def class_size(area_m2: float | None, use: str) -> int:
    """Pupils a room of this area holds (about 1.4 m² each, at most 50)."""
    if use not in ("classroom", "lab"):
        return 4
    if not area_m2:
        return 45
    return max(10, min(50, int(area_m2 / 1.4)))
