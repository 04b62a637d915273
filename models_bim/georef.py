"""Where a site is on Earth: IfcSite RefLatitude / RefLongitude / RefElevation and IfcMapConversion.

Both are kept for the network map. Invalid values (minutes over 60, mixed signs, latitudes
beyond 90°, the 0°/0° placeholder, non-finite map offsets) are dropped with a warning; the
import goes on. Files disagree with themselves (a Rotterdam map conversion with a San
Francisco RefLatitude): both are kept as stated, the map uses the latitude/longitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ifcopenshell
import ifcopenshell.util.geolocation
import ifcopenshell.util.unit

from twin.domain import MapConversion


def site_location(sites: Sequence[ifcopenshell.entity_instance], scale: float,
                  warnings: list[str]) -> tuple[float | None, float | None, float | None]:
    """(latitude, longitude, elevation in metres) of the first site with a valid reference; Nones if none has."""
    for site in sites:
        lat, lon = angle(site.RefLatitude, 90), angle(site.RefLongitude, 180)
        if site.RefLatitude is not None and (lat is None or lon is None):
            warnings.append(f"site {site.Name!r}: invalid RefLatitude/RefLongitude "
                            f"{site.RefLatitude}/{site.RefLongitude} ignored")
            continue
        if lat is None or lon is None or (lat, lon) == (0.0, 0.0):
            continue
        elevation = site.RefElevation
        if elevation is not None and not math.isfinite(float(elevation)):
            warnings.append(f"site {site.Name!r}: invalid RefElevation {elevation} ignored")
            elevation = None
        return lat, lon, float(elevation) * scale + 0.0 if elevation is not None else None
    return None, None, None


def angle(dms: Sequence[int] | None, limit: float) -> float | None:
    """Decimal degrees of an IfcCompoundPlaneAngleMeasure, or None when it is missing or not a valid angle."""
    if not dms or not 3 <= len(dms) <= 4:
        return None
    parts = [int(p) for p in dms] + [0] * (4 - len(dms))
    degrees, minutes, seconds, micro = parts
    if not (abs(minutes) < 60 and abs(seconds) < 60 and abs(micro) < 1_000_000):
        return None
    if not (all(p >= 0 for p in parts) or all(p <= 0 for p in parts)):
        return None
    value = ifcopenshell.util.geolocation.dms2dd(degrees, minutes, seconds, micro)
    return value if abs(value) <= limit else None


def map_conversion(ifc_file: ifcopenshell.file, scale: float, warnings: list[str]) -> MapConversion | None:
    """The file's first valid IfcMapConversion (IFC4 and later); offsets in metres unless the CRS says otherwise.

    Eastings/northings are in the target CRS's map unit when it names one, else in the
    project length unit (converted to metres with ``scale``).
    """
    try:
        conversions = ifc_file.by_type("IfcMapConversion")
    except RuntimeError:  # IFC2X3 has none
        return None
    for conv in conversions:
        crs = conv.TargetCRS
        name = crs.Name if crs is not None and isinstance(crs.Name, str) else None
        unit_scale = scale if crs is None or getattr(crs, "MapUnit", None) is None else _unit_scale(crs.MapUnit)
        values = [conv.Eastings, conv.Northings, conv.OrthogonalHeight]
        axis = (conv.XAxisAbscissa if conv.XAxisAbscissa is not None else 1.0,
                conv.XAxisOrdinate if conv.XAxisOrdinate is not None else 0.0)
        factor = conv.Scale if conv.Scale is not None else 1.0
        numbers = [v for v in (*values, *axis, factor) if v is not None]
        if (any(not math.isfinite(float(v)) for v in numbers) or values[0] is None or values[1] is None
                or axis == (0.0, 0.0) or factor <= 0):
            warnings.append(f"IfcMapConversion #{conv.id()} ({name}) is not valid: ignored")
            continue
        return MapConversion(
            crs=name,
            eastings=float(values[0]) * unit_scale,
            northings=float(values[1]) * unit_scale,
            orthogonal_height=float(values[2] or 0.0) * unit_scale,
            x_axis_abscissa=float(axis[0]),
            x_axis_ordinate=float(axis[1]),
            scale=float(factor),
        )
    return None


def _unit_scale(unit: ifcopenshell.entity_instance) -> float:
    """Metres per map unit (IfcSIUnit with prefix, or IfcConversionBasedUnit such as the US survey foot)."""
    try:
        return float(_si_or_converted(unit))
    except Exception:  # odd unit: assume metres
        return 1.0


def _si_or_converted(unit: ifcopenshell.entity_instance) -> float:
    if unit.is_a("IfcSIUnit"):
        return ifcopenshell.util.unit.get_prefix_multiplier(unit.Prefix)
    if unit.is_a("IfcConversionBasedUnit"):
        factor = unit.ConversionFactor
        return float(factor.ValueComponent.wrappedValue) * _si_or_converted(factor.UnitComponent)
    return 1.0
