"""Which IFC elements are devices, what kind they are, and what they are called on MQTT.

IFC4 and IFC4X3 name devices by class (IfcLightFixture, IfcSensor, ...). IFC2X3 files
mostly use generic IfcFlowTerminal / IfcFlowController / IfcDistributionControlElement /
IfcEnergyConversionDevice and say what they are through the type object
(IfcLightFixtureType, ...); generic elements of other types (sanitary terminals,
breakers, boilers) are not devices of the twin.

A device's hardware identities (:mod:`twin.identities`) come from ``Pset_CampusTwin``
(``HardwareId``: ``kind:id`` or a bare RFC 9039 URN, several separated by ``;`` or ``,``;
``IEEEAddress``, ``DevEUI``, ``MACAddress``: one id of that kind) and from
``Pset_ManufacturerOccurrence.SerialNumber`` (IFC2X3 and IFC4). A malformed value is a
warning and skipped; an id given for several devices of the file is bound to none of them::

    found, warnings = device_identities([("ENV-1F-01", element)], index)
    found["ENV-1F-01"]   # (("ieee", "00158d0001a2b3c4"), ("serial", "SN-1"))
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

import ifcopenshell
import ifcopenshell.ifcopenshell_wrapper
import ifcopenshell.util.element

from models_bim.index import FileIndex
from twin.domain import IdSource
from twin.identities import DEVEUI, IEEE, MAC, SERIAL, Identity, IdentityError, normalize, parse_identity

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


# -- hardware identities ------------------------------------------------------------------------------
HARDWARE_ID_PROPERTY = "HardwareId"
#: Pset_CampusTwin properties holding one hardware id of a known kind.
KIND_PROPERTIES: dict[str, str] = {"IEEEAddress": IEEE, "DevEUI": DEVEUI, "MACAddress": MAC}
SERIAL_PSET, SERIAL_PROPERTY = "Pset_ManufacturerOccurrence", "SerialNumber"
#: The property sets a reader indexes for hardware identities.
IDENTITY_PSETS = (DEVICE_ID_PSET, SERIAL_PSET)
#: Values authoring tools write where an id is not known (Revit writes 'N/A' or the parameter's name):
#: no identity, and no mistake either.
PLACEHOLDERS = frozenset({"", "-", "--", "0", "n/a", "na", "none", "null", "unknown", "tbd", "tba", "serialnumber",
                          "hardwareid", "ieeeaddress", "deveui", "macaddress"})
#: Problems of single values reported one by one; beyond these, a count.
MAX_IDENTITY_WARNINGS = 20
_LIST = re.compile(r"[;,]")
#: (property set, property, kind) of the properties holding one id each.
_SINGLE = (*((DEVICE_ID_PSET, p, k) for p, k in KIND_PROPERTIES.items()), (SERIAL_PSET, SERIAL_PROPERTY, SERIAL))

Identities = tuple[tuple[str, str], ...]


def hardware_identities(element: ifcopenshell.entity_instance,
                        index: FileIndex | None = None) -> tuple[Identities, list[str]]:
    """The hardware identities the element's property sets state (sorted, normal form), and a problem for each
    malformed value (``"Pset_CampusTwin.HardwareId 'x' is not a hardware id (...)"``)."""
    def value(pset: str, prop: str) -> object:
        if index is not None:
            return index.pset_value(element, pset, prop)
        return ifcopenshell.util.element.get_pset(element, pset, prop)

    found: set[tuple[str, str]] = set()
    problems: list[str] = []
    raw_list = value(DEVICE_ID_PSET, HARDWARE_ID_PROPERTY)
    listed = _text(raw_list)
    if raw_list is not None and listed is None:
        problems.append(f"{DEVICE_ID_PSET}.{HARDWARE_ID_PROPERTY} {str(raw_list)[:60]!r} is not a hardware id "
                        "(not text)")
    if listed is not None and listed.strip().lower() not in PLACEHOLDERS:
        for part in (p.strip() for p in _LIST.split(listed)):
            if part:
                try:
                    found.add(parse_identity(part))
                except IdentityError as exc:
                    problems.append(f"{DEVICE_ID_PSET}.{HARDWARE_ID_PROPERTY} {part[:60]!r} is not a hardware id "
                                    f"({exc})")
    for pset, prop, kind in _SINGLE:
        raw = value(pset, prop)
        text = _text(raw)
        if raw is None or (text is not None and text.strip().lower() in PLACEHOLDERS):
            continue
        try:
            if text is None:
                raise IdentityError(f"{kind}: hardware id must be text")
            found.add((kind, normalize(kind, text)))
        except IdentityError as exc:
            problems.append(f"{pset}.{prop} {str(raw)[:60]!r} is not a hardware id ({exc})")
    return tuple(sorted(found)), problems


def _text(raw: object) -> str | None:
    """A property value as text: strings as they are, integers (a serial number typed as a number) in decimal."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return None


def device_identities(devices: Sequence[tuple[str, ifcopenshell.entity_instance]], index: FileIndex | None = None,
                      ) -> tuple[dict[str, Identities], list[str]]:
    """``{device_id: identities}`` of the devices (``(device id, element)``) that state any, and the warnings:
    each malformed value (the first :data:`MAX_IDENTITY_WARNINGS`, then a count), each id the file gives several
    devices (bound to none of them: which one is meant is not known)."""
    found: dict[str, Identities] = {}
    problems: list[str] = []
    for device_id, element in devices:
        identities, wrong = hardware_identities(element, index)
        problems += [f"{device_id}: {p}" for p in wrong]
        if identities:
            found[device_id] = identities
    warnings = problems[:MAX_IDENTITY_WARNINGS]
    if len(problems) > MAX_IDENTITY_WARNINGS:
        warnings.append(f"... and {len(problems) - MAX_IDENTITY_WARNINGS} more malformed hardware ids")
    owners = Counter(identity for identities in found.values() for identity in identities)
    shared = {identity for identity, n in owners.items() if n > 1}
    for identity in sorted(shared):
        holders = [d for d, identities in found.items() if identity in identities]
        warnings.append(f"hardware id {Identity(*identity)} given for {len(holders)} devices "
                        f"({', '.join(holders[:5])}{', ...' if len(holders) > 5 else ''}): bound to none")
    if shared:
        found = {d: kept for d, identities in found.items() if (kept := tuple(i for i in identities if i not in shared))}
    return found, warnings
