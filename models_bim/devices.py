"""Which IFC elements are devices, what kind they are, and what they are called on MQTT.

IFC4 and IFC4X3 name devices by class (IfcLightFixture, IfcSensor, ...). IFC2X3 files
mostly use generic IfcFlowTerminal / IfcFlowController / IfcDistributionControlElement /
IfcEnergyConversionDevice and say what they are through the type object
(IfcLightFixtureType, ...); generic elements of other types (sanitary terminals,
breakers, boilers) are not devices of the twin.
"""

from __future__ import annotations

import functools
import re

import ifcopenshell
import ifcopenshell.ifcopenshell_wrapper
import ifcopenshell.util.element

from models_bim.index import FileIndex
from twin.domain import IdSource

#: Device classes (IFC4 and later) and the kind each one is.
DEVICE_CLASS_KINDS: dict[str, str] = {
    "IfcSensor": "env_sensor",
    "IfcLightFixture": "luminaire",
    "IfcLamp": "luminaire",
    "IfcAudioVisualAppliance": "panel",
    "IfcCommunicationsAppliance": "appliance",
    "IfcElectricAppliance": "appliance",
    "IfcOutlet": "outlet",
    "IfcSwitchingDevice": "switch",
    "IfcUnitaryControlElement": "controller",
    "IfcController": "controller",
}

#: Generic IFC2X3-style classes, resolved through their type object.
GENERIC_CLASSES = ("IfcFlowTerminal", "IfcFlowController", "IfcDistributionControlElement",
                   "IfcEnergyConversionDevice")

#: Type objects that make a generic element a device, and the kind they give.
DEVICE_TYPE_KINDS: dict[str, str] = {cls + "Type": kind for cls, kind in DEVICE_CLASS_KINDS.items()}

#: Sensor predefined types that measure the room environment; other sensors are "other".
ENV_SENSOR_TYPES = frozenset({None, "NOTDEFINED", "USERDEFINED", "CO2SENSOR", "COSENSOR", "HUMIDITYSENSOR",
                              "TEMPERATURESENSOR", "LIGHTSENSOR", "SOUNDSENSOR", "GASSENSOR", "MOISTURESENSOR"})
#: Audio-visual predefined types that are a teaching panel; other AV equipment is "other".
PANEL_TYPES = frozenset({None, "NOTDEFINED", "USERDEFINED", "DISPLAY", "PROJECTOR"})

BLACKBOARD = re.compile(r"blackboard|chalkboard|whiteboard|board\s*light|黑板", re.IGNORECASE)

#: Characters a device id may not hold (MQTT wildcards and level separator, whitespace, controls).
_UNSAFE = re.compile(r"[/+#\s\x00-\x1f\x7f]+")
MAX_DEVICE_ID = 128
DEVICE_ID_PSET = "Pset_CampusTwin"
DEVICE_ID_PROPERTY = "DeviceId"


def device_elements(ifc_file: ifcopenshell.file,
                    index: FileIndex | None = None) -> list[tuple[ifcopenshell.entity_instance, str]]:
    """Every device of the file with its kind, in file order."""
    index = index or FileIndex(ifc_file)
    found: dict[int, tuple[ifcopenshell.entity_instance, str]] = {}
    type_of = index.type_of
    for ifc_class in (*DEVICE_CLASS_KINDS, *GENERIC_CLASSES):
        try:
            elements = ifc_file.by_type(ifc_class)
        except RuntimeError:  # class not in this schema (IfcSensor in IFC2X3, ...)
            continue
        for element in elements:
            key = element.id()
            if key not in found:
                kind = device_kind(element, type_of.get(key), type_known=True)
                if kind is not None:
                    found[key] = (element, kind)
    return [found[i] for i in sorted(found)]


def device_kind(element: ifcopenshell.entity_instance, element_type: ifcopenshell.entity_instance | None = None,
                *, type_known: bool = False) -> str | None:
    """The twin's kind of ``element`` (one of ``twin.domain.DEVICE_KINDS``), or None if it is no device.

    ``element_type`` is its type object; unless ``type_known``, a missing one is looked up.
    """
    if element_type is None and not type_known:
        element_type = ifcopenshell.util.element.get_type(element)
    ifc_class = element.is_a()
    kind = DEVICE_CLASS_KINDS.get(ifc_class)
    if kind is None:
        kind = DEVICE_TYPE_KINDS.get(element_type.is_a()) if element_type is not None else None
        if kind is None:
            kind = next((k for c, k in DEVICE_CLASS_KINDS.items() if element.is_a(c)), None)  # subclasses
            if kind is None:
                return None
    if kind == "luminaire":
        return "blackboard_luminaire" if BLACKBOARD.search(_texts(element, element_type)) else kind
    if kind == "env_sensor" and _predefined_type(element, element_type) not in ENV_SENSOR_TYPES:
        return "other"
    if kind == "panel" and _predefined_type(element, element_type) not in PANEL_TYPES:
        return "other"
    return kind


@functools.cache
def _attribute_index(schema: str, ifc_class: str, name: str) -> int | None:
    """Position of attribute ``name`` in ``ifc_class`` instances, or None when the class has none."""
    declaration = ifcopenshell.ifcopenshell_wrapper.schema_by_name(schema).declaration_by_name(ifc_class)
    names = [a.name() for a in declaration.all_attributes()]
    return names.index(name) if name in names else None


def _attribute(element: ifcopenshell.entity_instance, name: str) -> object:
    """``getattr(element, name, None)`` by a cached position (the by-name look-up is slow in IfcOpenShell)."""
    position = _attribute_index(element.is_a(True).split(".")[0], element.is_a(), name)
    return None if position is None else element[position]


def _predefined_type(element: ifcopenshell.entity_instance,
                     element_type: ifcopenshell.entity_instance | None) -> str | None:
    """The PredefinedType enumeration of the element, else of its type object (``USERDEFINED`` kept as is)."""
    value = _attribute(element, "PredefinedType")
    if value in (None, "NOTDEFINED"):
        value = _attribute(element_type, "PredefinedType") if element_type is not None else value
    return value if isinstance(value, str) else None


def _texts(element: ifcopenshell.entity_instance, element_type: ifcopenshell.entity_instance | None) -> str:
    """Name, description and object type of the element and of its type object, one per line."""
    texts = [element[2], element[3], element[4]]  # IfcObject: Name, Description, ObjectType
    if element_type is not None:
        texts += [element_type[2], element_type[3], _attribute(element_type, "ElementType")]
    return "\n".join(t for t in texts if isinstance(t, str) and t)


def safe_device_id(text: str) -> str:
    """``text`` made fit for an MQTT topic level and the devices table: no '/', '+', '#', no whitespace."""
    return _UNSAFE.sub("-", text.strip())[:MAX_DEVICE_ID]


def global_id_device_id(global_id: str) -> str:
    """The stable fallback id of an element: ``"IFC-" + GlobalId`` made topic safe."""
    return safe_device_id(f"IFC-{global_id}")


def declared_device_id(element: ifcopenshell.entity_instance, index: FileIndex | None = None) -> str | None:
    """``Pset_CampusTwin.DeviceId``, else the Tag, made topic safe; None when neither is usable."""
    found = declared_device_id_and_source(element, index)
    return found[0] if found else None


def declared_device_id_and_source(element: ifcopenshell.entity_instance,
                                  index: FileIndex | None = None) -> tuple[str, IdSource] | None:
    """(device id, ``"pset"`` or ``"tag"``) of ``element``, or None when neither gives a usable id."""
    if index is not None:
        value = index.pset_value(element, DEVICE_ID_PSET, DEVICE_ID_PROPERTY)
    else:
        value = ifcopenshell.util.element.get_pset(element, DEVICE_ID_PSET, DEVICE_ID_PROPERTY)
    source: IdSource
    for source in ("pset", "tag"):
        candidate = value if source == "pset" else _attribute(element, "Tag")
        if candidate is not None and str(candidate).strip():
            device_id = safe_device_id(str(candidate))
            if device_id.strip("-"):
                return device_id, source
    return None
