"""Hardware identities of devices and the adapters that speak for them: pure functions, no I/O.

A device of the twin may carry identities its hardware knows itself by (DESIGN.md, "Devices as
schools buy them"): a Zigbee IEEE address, a LoRaWAN DevEUI, a MAC address, an RFC 9039 device
URN, a serial number, a Tasmota device topic. Each is stored as ``(kind, hardware_id)`` in a
normal form, unique per kind across the whole network:

>>> normalize("ieee", "0x00158D0001A2B3C4")
'00158d0001a2b3c4'
>>> normalize("mac", "24:0A:C4:12:34:56")
'240ac4123456'
>>> normalize("urn", "URN:dev:ow:10E2073A01080063")
'urn:dev:ow:10e2073a01080063'
>>> parse_identity("deveui:70-B3-D5-7E-D0-05-A1-B2")
('deveui', '70b3d57ed005a1b2')
>>> candidates("urn:dev:ow:10e2073a01080063")
[('urn', 'urn:dev:ow:10e2073a01080063')]
>>> [kind for kind, _ in candidates("urn:dev:mac:0024befffe804ff1")]
['urn', 'mac', 'deveui', 'ieee']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IEEE, DEVEUI, MAC, URN, SERIAL, TASMOTA = "ieee", "deveui", "mac", "urn", "serial", "tasmota"
#: Kinds of hardware identity, in the order ``devices list`` shows them.
KINDS: tuple[str, ...] = (IEEE, DEVEUI, MAC, URN, SERIAL, TASMOTA)
#: Longest hardware id stored (characters, normal form).
HARDWARE_ID_MAX = 128

_HEX = re.compile(r"[0-9a-f]+")
_SEPARATORS = re.compile(r"[\s:.\-]")
#: RFC 9039 device URNs: ``urn:dev:`` then mac, ow, org, os or ops and their identifier.
_URN = re.compile(r"urn:dev:(mac|ow|org|os|ops):[^\s/+#]+")
#: What a serial number or a Tasmota topic may hold (a topic level: no ``/+#``, no spaces or controls).
_TEXT_ID = re.compile(r"[^\s/+#\x00-\x1f\x7f]+")
#: Hex digits of each kind that is an EUI: IEEE and DevEUI are EUI-64, a MAC EUI-48 or EUI-64.
_EUI_DIGITS = {IEEE: (16,), DEVEUI: (16,), MAC: (12, 16)}


class IdentityError(ValueError):
    """A hardware identity that cannot be stored (unknown kind, malformed id)."""


def normalize(kind: str, raw: str) -> str:
    """``raw`` in the normal form of ``kind``; :class:`IdentityError` when it is not one.

    EUIs (IEEE, DevEUI, MAC) are lowercase hex without ``0x`` or separators; URNs lowercase in their
    ``urn:dev:<type>:`` prefix; serial numbers and Tasmota topics as given, trimmed."""
    if kind not in KINDS:
        raise IdentityError(f"unknown kind of hardware id {kind!r} (one of {', '.join(KINDS)})")
    if not isinstance(raw, str):
        raise IdentityError(f"{kind}: hardware id must be text")
    text = raw.strip()
    if kind in _EUI_DIGITS:
        value = _SEPARATORS.sub("", text.lower())
        value = value.removeprefix("0x")
        if not _HEX.fullmatch(value) or len(value) not in _EUI_DIGITS[kind]:
            digits = " or ".join(str(n) for n in _EUI_DIGITS[kind])
            raise IdentityError(f"{kind}: {raw[:40]!r} is not {digits} hex digits")
        return value
    if kind == URN:
        head, _, rest = text.partition(":dev:")
        value = f"{head.lower()}:dev:{rest}" if rest else text
        parts = value.split(":", 3)
        if len(parts) == 4:
            # mac and ow identifiers are hex (RFC 9039 §3.1, §3.2): compared without case
            ident = parts[3].lower() if parts[2].lower() in ("mac", "ow") else parts[3]
            value = ":".join([*(p.lower() for p in parts[:3]), ident])
        if not _URN.fullmatch(value) or len(value) > HARDWARE_ID_MAX:
            raise IdentityError(f"urn: {raw[:60]!r} is not an RFC 9039 device URN (urn:dev:mac|ow|org|os|ops:...)")
        return value
    if not text or len(text) > HARDWARE_ID_MAX or not _TEXT_ID.fullmatch(text):
        raise IdentityError(f"{kind}: {raw[:40]!r} must be 1 to {HARDWARE_ID_MAX} characters without spaces or /+#")
    return text


def parse_identity(text: str) -> tuple[str, str]:
    """``"kind:id"`` (or a bare device URN) -> ``(kind, normal id)``; :class:`IdentityError` otherwise."""
    value = text.strip()
    if value.lower().startswith("urn:"):
        return URN, normalize(URN, value)
    kind, sep, raw = value.partition(":")
    if not sep:
        raise IdentityError(f"{text[:40]!r}: write a hardware id as kind:id (kinds: {', '.join(KINDS)})")
    return kind.strip().lower(), normalize(kind.strip().lower(), raw)


def candidates(urn: str) -> list[tuple[str, str]]:
    """The identities an RFC 9039 URN may be bound as: the URN itself, and for ``urn:dev:mac:`` the MAC
    (an EUI-64 MAC as a DevEUI or IEEE address too: LoRaWAN and Zigbee radios are named by EUI-64)."""
    try:
        value = normalize(URN, urn)
    except IdentityError:
        return []
    out = [(URN, value)]
    kind, _, ident = value[len("urn:dev:"):].partition(":")
    if kind == "mac":
        for other in (MAC, DEVEUI, IEEE):
            try:
                out.append((other, normalize(other, ident)))
            except IdentityError:
                pass
    return out


@dataclass(frozen=True, slots=True)
class Identity:
    """One hardware identity of a device, as bound (from the IFC, a CSV or the dashboard)."""

    kind: str
    hardware_id: str

    def __str__(self) -> str:
        return self.hardware_id if self.kind == URN else f"{self.kind}:{self.hardware_id}"


# -- adapters ---------------------------------------------------------------------------------------
ZIGBEE2MQTT, CHIRPSTACK, TTS = "zigbee2mqtt", "chirpstack", "tts"
#: Adapters a site may enable, with the topic prefix each uses by default (its projects' own default).
ADAPTERS: dict[str, str] = {
    ZIGBEE2MQTT: "zigbee2mqtt",   # zigbee2mqtt's base_topic
    CHIRPSTACK: "application/+",  # ChirpStack v4's MQTT integration: application/<application id>/...
    TTS: "v3/+",                  # The Things Stack v3: v3/<application id>@<tenant>/...
    TASMOTA: "",                  # Tasmota's FullTopic %prefix%/%topic%/ (tele/, stat/, cmnd/ at the root)
}
#: The kind of hardware id each adapter names its devices by.
ADAPTER_KINDS: dict[str, str] = {ZIGBEE2MQTT: IEEE, CHIRPSTACK: DEVEUI, TTS: DEVEUI, TASMOTA: TASMOTA}
_PREFIX = re.compile(r"[^\s#\x00-\x1f\x7f]{0,128}")


def check_prefix(adapter: str, prefix: str) -> str:
    """A topic prefix for ``adapter``: no ``#``, no spaces, no leading or trailing ``/``; ``+`` only as a
    whole level. :class:`IdentityError` otherwise."""
    if adapter not in ADAPTERS:
        raise IdentityError(f"unknown adapter {adapter!r} (one of {', '.join(ADAPTERS)})")
    if not _PREFIX.fullmatch(prefix) or prefix.startswith("/") or prefix.endswith("/") \
            or any("+" in level and level != "+" for level in prefix.split("/")):
        raise IdentityError(f"{adapter}: topic prefix {prefix!r} must be topic levels without '#' or spaces")
    if adapter != TASMOTA and not prefix:
        raise IdentityError(f"{adapter}: a topic prefix is needed (default {ADAPTERS[adapter]!r})")
    return prefix


#: Tasmota's topic families ingest takes: ``(prefix level, command)`` of ``tele/<topic>/SENSOR`` and the others.
TASMOTA_TOPICS = (("tele", "SENSOR"), ("tele", "STATE"), ("tele", "LWT"), ("stat", "RESULT"), ("stat", "POWER"))


def adapter_filters(adapter: str, prefix: str) -> tuple[str, ...]:
    """The MQTT filters ingest subscribes to for ``adapter`` under ``prefix`` (each adapter module's ``filters``;
    here so that ``enable_adapter`` can refuse prefixes that share topics without importing ingest)."""
    if adapter == ZIGBEE2MQTT:
        return (f"{prefix}/#",)
    if adapter == CHIRPSTACK:
        return (f"{prefix}/device/+/event/+",)
    if adapter == TTS:
        return (f"{prefix}/devices/+/+",)
    head = f"{prefix}/" if prefix else ""
    return tuple(f"{head}{level}/+/{command}" for level, command in TASMOTA_TOPICS)


def overlap(a: str, b: str) -> bool:
    """Whether some topic matches both MQTT filters ``a`` and ``b``.

    >>> overlap("application/+/device/+/event/+", "application/7/device/+/event/+"), overlap("z/#", "y/#")
    (True, False)
    """
    x, y = a.split("/"), b.split("/")
    for i in range(max(len(x), len(y))):
        if i >= len(x) or i >= len(y):
            return (y[i:] if i >= len(x) else x[i:]) == ["#"]
        if "#" in (x[i], y[i]):
            return True
        if "+" not in (x[i], y[i]) and x[i] != y[i]:
            return False
    return True


#: The twin's own topics: no adapter may subscribe under them.
TWIN_FILTER = "campus/v1/#"


def overlapping(adapter: str, prefix: str, others: Sequence[Any]) -> str | None:
    """Why ``adapter`` under ``prefix`` would share topics with the twin's own or with another enabled adapter
    subscription (``others``: rows with ``site_id``, ``adapter``, ``prefix``), or ``None``. A message under two
    subscriptions would come twice and belong to whichever matched first: one school's data lost or another's."""
    mine = adapter_filters(adapter, prefix)
    if any(overlap(f, TWIN_FILTER) for f in mine):
        return f"{adapter} under {prefix!r} would take the twin's own topics ({TWIN_FILTER}): choose another prefix"
    for other in others:
        if any(overlap(f, g) for f in mine for g in adapter_filters(other.adapter, other.prefix)):
            where = repr(other.prefix) if other.prefix else "the topic root"
            return (f"{adapter} under {prefix!r} would share topics with {other.adapter} of site {other.site_id!r} "
                    f"under {where}: choose another prefix")
    return None
