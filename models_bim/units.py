"""The units a file states its lengths, areas and volumes in, as factors to metres, m² and m³.

::

    units = file_units(ifc_file)
    area_m2 = stated_area * units.area        # ifc_area * scale = square metres

``ifcopenshell.util.unit.calculate_unit_scale(file, "AREAUNIT")`` returns 1.0 when the file
declares no area unit, which would read a millimetre file's mm² as m² (44,190,000 m² for a
44 m² room of a Renga export). A file that declares no area or volume unit states them in its
length unit squared or cubed, so that is what is used then.
"""

from __future__ import annotations

from dataclasses import dataclass

import ifcopenshell
import ifcopenshell.util.unit


@dataclass(frozen=True, slots=True)
class FileUnits:
    """Factors from the file's units to metres, square metres and cubic metres."""

    length: float
    area: float
    volume: float
    area_declared: bool  #: False: ``area`` is ``length ** 2``
    volume_declared: bool  #: False: ``volume`` is ``length ** 3``


def declared_unit_types(ifc_file: ifcopenshell.file) -> set[str]:
    """The UnitType of every unit in the project's IfcUnitAssignment (``{"LENGTHUNIT", "AREAUNIT", ...}``)."""
    projects = ifc_file.by_type("IfcProject")
    assignment = projects[0].UnitsInContext if projects else None
    units = assignment.Units if assignment is not None else ()
    return {unit.UnitType for unit in units or () if isinstance(getattr(unit, "UnitType", None), str)}


def file_units(ifc_file: ifcopenshell.file) -> FileUnits:
    """The file's unit factors; an undeclared area or volume unit follows the length unit."""
    declared = declared_unit_types(ifc_file)
    length = ifcopenshell.util.unit.calculate_unit_scale(ifc_file)
    area_declared, volume_declared = "AREAUNIT" in declared, "VOLUMEUNIT" in declared
    area = ifcopenshell.util.unit.calculate_unit_scale(ifc_file, "AREAUNIT") if area_declared else length ** 2
    volume = ifcopenshell.util.unit.calculate_unit_scale(ifc_file, "VOLUMEUNIT") if volume_declared else length ** 3
    return FileUnits(length=length, area=area, volume=volume, area_declared=area_declared,
                     volume_declared=volume_declared)
