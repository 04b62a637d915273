"""Messages of the adapters' topic families, routed to their site and device (issue 19).

The sites' enabled adapters (``site_adapters``) declare the filters ingest subscribes to. A message under
one of them is decoded by its adapter (a pure function), then each device it reports on is found by its
hardware identity (``device_identities``), through the name the adapter announced when the message names
the device only by that (a zigbee2mqtt friendly name). What follows is the native path's: readings,
statuses, sequence numbers, dead letters, acknowledgement after commit.

Hardware bound to no device of the twin is recorded in ``hardware_seen`` (the devices page's "publishing
but not in the twin", with the number of messages); its readings are not kept: once bound, what it sends
next is stored. Hardware bound to a device of another site than the prefix's is refused (a gateway
speaks only for its own school), as is a SenML record naming another device than its topic's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from ingest.adapters.base import Decoded, Hardware, Report
from ingest.adapters.registry import adapter
from ingest.decode import Status
from twin.identities import candidates
from twin.messaging.mqtt import topic_matches
from twin.metrics import Metric
from twin.storage import identities
from twin.storage.identities import AdapterConfig, Resolved, Seen

log = logging.getLogger(__name__)

#: Look identities up again at most this often when one is missing (a binding made meanwhile).
REFRESH_S = 10.0
_ACK_METRICS = ("on", "dimming")


@dataclass(slots=True)
class Routed:
    """What the worker stores for one adapter message: per device reached, ``(device key, report)``;
    hardware seen; dead-letter reasons."""

    reports: list[tuple[int, Report]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class AdapterRouter:
    """The enabled adapters of every site, and the identities and names they resolve through.

    ``lookup`` gives the connection to read identities on (the worker's lookup connection)."""

    def __init__(self, configs: Sequence[AdapterConfig], lookup: Callable[[], psycopg.Connection]) -> None:
        self.configs = tuple(configs)
        self._lookup = lookup
        self._filters = [(f, c) for c in self.configs for f in adapter(c.adapter).filters(c.prefix)]
        self._by_topic: dict[str, AdapterConfig | None] = {}
        self._ids: dict[tuple[str, str], Resolved] = {}
        #: ``{adapter: {(site, prefix, address): (kind, hardware id)}}``: the names adapters announced.
        self._names: dict[str, dict[tuple[str, str | None, str], tuple[str, str]]] = {}
        #: Names announced to this process (a bridge's device list), kept over what the database had when read:
        #: a batch's own announcement is stored only when the batch commits.
        self._announced: dict[str, dict[tuple[str, str | None, str], tuple[str, str]]] = {}
        self._loaded = -REFRESH_S
        #: The device key a report of ``(adapter, site, prefix, address, hardware)`` reached, while identities and
        #: names stay as they were read (cleared when either changes): the usual message takes one lookup.
        self._reached: dict[tuple[str, str, str, str, Hardware | None], int] = {}
        self._modules = {c.adapter: adapter(c.adapter) for c in self.configs}
        #: Group names per ``(site, prefix)`` (zigbee2mqtt's ``bridge/groups``): their messages are not a device's.
        self._groups: dict[tuple[str, str], frozenset[str]] = {}
        #: What was last noted of hardware bound to a device: ``(site, kind, id) -> (adapter, address, model)``.
        self._noted: dict[tuple[str, str, str], tuple[str, str, str, str | None]] = {}

    def filters(self) -> list[str]:
        """Every adapter filter to subscribe to (each once)."""
        return list(dict.fromkeys(f for f, _ in self._filters))

    def config_for(self, topic: str) -> AdapterConfig | None:
        """The site adapter whose filters ``topic`` falls under (cached per topic)."""
        if topic in self._by_topic:
            return self._by_topic[topic]
        found = next((c for f, c in self._filters if topic_matches(f, topic)), None)
        if len(self._by_topic) > 100_000:
            self._by_topic.clear()
        self._by_topic[topic] = found
        return found

    # -- identities ------------------------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> bool:
        """Read identities and adapter names again (at most every :data:`REFRESH_S` unless ``force``)."""
        if not force and time.monotonic() - self._loaded < REFRESH_S:
            return False
        conn = self._lookup()
        self._ids = identities.resolver(conn)
        # one query per adapter (not per site: a city has hundreds of sites on the same adapter)
        self._names = {a: identities.addresses(conn, a) | self._announced.get(a, {})
                       for a in dict.fromkeys(c.adapter for c in self.configs)}
        self._loaded = time.monotonic()
        self._reached.clear()
        return True

    def resolve(self, kind: str, hardware_id: str) -> Resolved | None:
        """The device bound to ``(kind, hardware_id)``; looked up again when missing and stale."""
        if not self._ids and self._loaded < 0:
            self._refresh(force=True)
        found = self._ids.get((kind, hardware_id))
        if found is None and self._refresh():
            found = self._ids.get((kind, hardware_id))
        return found

    def resolve_urn(self, urn: str) -> Resolved | None:
        """The device an RFC 9039 URN names (as a URN, or as the MAC/EUI inside ``urn:dev:mac:``)."""
        pairs = candidates(urn)
        if self._loaded < 0:
            self._refresh(force=True)
        while True:
            found = next((r for k, h in pairs if (r := self._ids.get((k, h))) is not None), None)
            if found is not None or not self._refresh():
                return found

    def _hardware(self, config: AdapterConfig, report: Report) -> Hardware | None:
        if report.hardware is not None:
            return report.hardware
        hit = self._name(config, report.address)
        if hit is None and self._refresh():
            hit = self._name(config, report.address)
        return Hardware(hit[0], hit[1], report.address) if hit else None

    def _name(self, config: AdapterConfig, address: str) -> tuple[str, str] | None:
        """What ``address`` names under ``config``'s prefix (a name seen before prefixes were recorded: any)."""
        names = self._names.get(config.adapter, {})
        return names.get((config.site_id, config.prefix, address)) or names.get((config.site_id, None, address))

    # -- messages ----------------------------------------------------------------------------------------
    def route(self, config: AdapterConfig, topic: str, payload: bytes, received_at: datetime) -> Routed:
        """Decode one message of ``config``'s adapter and find the devices it reports on."""
        out = Routed()
        try:
            decoded: Decoded = self._modules[config.adapter].decode(topic, config.prefix, payload, received_at)
        except Exception as exc:  # a decoder bug must not stop ingest: the message is kept as a dead letter
            log.exception("adapter %s failed on topic %s", config.adapter, topic)
            out.errors.append(f"{config.adapter}: decoder error {type(exc).__name__}: {str(exc)[:120]}")
            return out
        out.errors.extend(decoded.errors)
        if decoded.names or decoded.groups is not None:
            self._reached.clear()
        if decoded.names:
            # a bridge's device list is complete: names it no longer has (a device renamed or removed) are dropped
            # (in this process; in the database the hardware seen last under a name wins)
            for names in (self._names, self._announced):
                table = names.setdefault(config.adapter, {})
                for key in [k for k in table if k[:2] == (config.site_id, config.prefix)]:
                    del table[key]
        for hw in decoded.names:
            for names in (self._names, self._announced):
                names.setdefault(config.adapter, {})[(config.site_id, config.prefix, hw.address)] = (hw.kind,
                                                                                                     hw.hardware_id)
            out.seen.append(Seen(config.site_id, hw.kind, hw.hardware_id, config.adapter, hw.address, hw.model,
                                 received_at, 0, config.prefix))
        if decoded.groups is not None:
            self._groups[(config.site_id, config.prefix)] = frozenset(decoded.groups)
        groups = self._groups.get((config.site_id, config.prefix), frozenset())
        for report in decoded.reports:
            fast = (config.adapter, config.site_id, config.prefix, report.address, report.hardware)
            if (key := self._reached.get(fast)) is not None:
                out.reports.append((key, report))
                continue
            if report.hardware is None and report.address in groups:
                continue  # a group's state (its members report their own)
            hw = self._hardware(config, report)
            if hw is None:
                out.errors.append(f"{config.adapter}: device {report.address[:80]!r} is not in the adapter's device "
                                  f"list yet (for zigbee2mqtt: {config.prefix}/bridge/devices)")
                continue
            address = hw.address or report.address
            found = self.resolve(hw.kind, hw.hardware_id)
            if found is None:
                out.seen.append(Seen(config.site_id, hw.kind, hw.hardware_id, config.adapter, address, hw.model,
                                     received_at, 1, config.prefix))
                continue
            if found.site_id != config.site_id:
                out.errors.append(f"{hw.kind}:{hw.hardware_id} is bound to {found.device_id!r} of site "
                                  f"{found.site_id!r}, heard under site {config.site_id!r}'s {config.adapter} prefix")
                continue
            noted = (config.adapter, config.prefix, address, hw.model)
            if self._noted.get((config.site_id, hw.kind, hw.hardware_id)) != noted:
                self._noted[(config.site_id, hw.kind, hw.hardware_id)] = noted
                out.seen.append(Seen(config.site_id, hw.kind, hw.hardware_id, config.adapter, address, hw.model,
                                     received_at, 0, config.prefix))
            out.reports.append((found.device_key, report))
            if len(self._reached) > 200_000:
                self._reached.clear()
            self._reached[fast] = found.device_key
        return out


def report_status(report: Report) -> Status | None:
    """The status a report carries: its state, or ``online`` when it brings vitals (a device heard now)."""
    vitals = (report.firmware, report.battery_pct, report.rssi_dbm)
    if report.state is None and all(v is None for v in vitals):
        return None
    return Status(report.state or "online", *vitals)


def ack_state(key: int, readings: Sequence[tuple[datetime, Metric, float]]) -> tuple[int, datetime, float | None,
                                                                                      float | None] | None:
    """``(device key, time, on, dimming)`` when a report says a luminaire's state (what acknowledges a command
    sent through an adapter), else ``None``."""
    state = {m.name: (ts, v) for ts, m, v in readings if m.name in _ACK_METRICS}
    if not state:
        return None
    ts = max(t for t, _ in state.values())
    return key, ts, state.get("on", (None, None))[1], state.get("dimming", (None, None))[1]
