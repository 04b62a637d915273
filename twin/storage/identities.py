"""Hardware identities of devices, the adapters sites enable, the hardware adapters have seen (schema 16).

Identities are unique per kind across the network (``(kind, hardware_id)`` is the key); normal forms come
from :mod:`twin.identities`. Binding is all or nothing: a file with one bad line binds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from twin.identities import check_prefix, overlapping


class BindError(ValueError):
    """Bindings refused; ``problems`` names each (the whole set was bound or nothing was)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Binding:
    """``device_id`` (the twin's) carries ``(kind, hardware_id)`` (normal form, :func:`twin.identities.normalize`)."""

    device_id: str
    kind: str
    hardware_id: str


@dataclass(frozen=True, slots=True)
class IdentityRow:
    site_id: str
    device_id: str
    kind: str
    hardware_id: str
    source: str
    bound_at: datetime
    bound_by: str | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """The device an identity belongs to."""

    device_key: int
    site_id: str
    device_id: str


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    site_id: str
    adapter: str
    prefix: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Seen:
    """Hardware an adapter saw at a site; ``messages`` to add (those of hardware bound to no device)."""

    site_id: str
    kind: str
    hardware_id: str
    adapter: str
    address: str
    model: str | None
    at: datetime
    messages: int = 0
    #: The site's prefix the adapter saw it under (``None``: not known, or not an adapter's: a SenML URN).
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class SeenRow:
    site_id: str
    kind: str
    hardware_id: str
    adapter: str
    address: str
    model: str | None
    first_seen: datetime
    last_seen: datetime
    messages: int


@dataclass(frozen=True, slots=True)
class Route:
    """How a command reaches a device through its adapter."""

    adapter: str
    prefix: str
    address: str
    kind: str
    hardware_id: str
    options: dict[str, Any] = field(default_factory=dict)


# -- identities ---------------------------------------------------------------------------------------
def bind(conn: psycopg.Connection, site_id: str, bindings: Sequence[Binding], *, by: str | None = None,
         source: str = "bind") -> int:
    """Bind each identity to its device of ``site_id``, all or nothing; return how many are new.

    Refused (:class:`BindError`, nothing bound): a device that is not the site's (or removed), an identity
    bound to another device, the same identity twice in ``bindings`` for different devices. Binding what
    is already bound to the same device changes nothing."""
    problems: list[str] = []
    with conn.transaction():
        keys = dict(conn.execute(
            "SELECT device_id, id FROM devices WHERE site_id = %s AND removed_at IS NULL AND device_id = ANY(%s)",
            (site_id, list({b.device_id for b in bindings}))).fetchall())
        wanted: dict[tuple[str, str], str] = {}
        for i, b in enumerate(bindings, 1):
            if b.device_id not in keys:
                problems.append(f"line {i}: no device {b.device_id!r} at site {site_id!r}")
            other = wanted.setdefault((b.kind, b.hardware_id), b.device_id)
            if other != b.device_id:
                problems.append(f"line {i}: {b.kind}:{b.hardware_id} given for {other!r} and {b.device_id!r}")
        taken = {(k, h): (s, d) for k, h, s, d in conn.execute(
            """SELECT i.kind, i.hardware_id, d.site_id, d.device_id FROM device_identities i
               JOIN devices d ON d.id = i.device_id
               WHERE (i.kind, i.hardware_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
            ([k for k, _ in wanted], [h for _, h in wanted])).fetchall()}
        for (kind, hw), device in wanted.items():
            owner = taken.get((kind, hw))
            if owner is not None and owner != (site_id, device):
                problems.append(f"{kind}:{hw} is already bound to {owner[1]!r} at site {owner[0]!r} "
                                f"(unbind it first)")
        if problems:
            raise BindError(problems)
        new = [(kind, hw, keys[device], source, by) for (kind, hw), device in wanted.items() if (kind, hw) not in taken]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO device_identities (kind, hardware_id, device_id, source, bound_by) "
                            "VALUES (%s, %s, %s, %s, %s)", new)
            if source == "bind" and (again := [key for key in wanted if key in taken]):
                # bound by a planner what the BIM also says: kept when a later revision no longer says it
                cur.execute("""UPDATE device_identities SET source = 'bind', bound_by = %s, bound_at = now()
                               WHERE source = 'ifc' AND (kind, hardware_id) IN
                                     (SELECT * FROM unnest(%s::text[], %s::text[]))""",
                            (by, [k for k, _ in again], [h for _, h in again]))
    return len(new)


def unbind(conn: psycopg.Connection, kind: str, hardware_id: str) -> bool:
    """Forget one identity; whether it was bound."""
    return conn.execute("DELETE FROM device_identities WHERE kind = %s AND hardware_id = %s",
                        (kind, hardware_id)).rowcount > 0


def replace_ifc(conn: psycopg.Connection, site_id: str, found: Mapping[str, Sequence[tuple[str, str]]]) -> list[str]:
    """Make the site's IFC identities those ``found`` per device id (a BIM revision's), keeping bound ones.

    An identity of the file already bound to another device is not taken: returned as a problem, the rest
    are stored."""
    problems: list[str] = []
    with conn.transaction():
        conn.execute("""DELETE FROM device_identities i USING devices d
                        WHERE d.id = i.device_id AND d.site_id = %s AND i.source = 'ifc'""", (site_id,))
        bindings = [Binding(device, kind, hw) for device, ids in found.items() for kind, hw in ids]
        for b in bindings:
            try:
                with conn.transaction():
                    bind(conn, site_id, [b], source="ifc", by="ifc")
            except BindError as exc:
                problems.extend(f"{b.device_id}: {p.removeprefix('line 1: ')}" for p in exc.problems)
    return problems


def identities(conn: psycopg.Connection, *, site_id: str | None = None) -> list[IdentityRow]:
    """Every identity (of one site), by site, device and kind."""
    with conn.cursor(row_factory=class_row(IdentityRow)) as cur:
        return cur.execute(
            """SELECT d.site_id, d.device_id, i.kind, i.hardware_id, i.source, i.bound_at, i.bound_by
               FROM device_identities i JOIN devices d ON d.id = i.device_id
               WHERE %(site)s::text IS NULL OR d.site_id = %(site)s
               ORDER BY d.site_id, d.device_id, i.kind, i.hardware_id""", {"site": site_id}).fetchall()


def resolver(conn: psycopg.Connection) -> dict[tuple[str, str], Resolved]:
    """``{(kind, hardware_id): device}`` of every identity of a device not removed (what ingest looks up)."""
    rows = conn.execute(
        """SELECT i.kind, i.hardware_id, d.id, d.site_id, d.device_id FROM device_identities i
           JOIN devices d ON d.id = i.device_id WHERE d.removed_at IS NULL""").fetchall()
    return {(kind, hw): Resolved(key, site, device) for kind, hw, key, site, device in rows}


# -- adapters -----------------------------------------------------------------------------------------
def adapters(conn: psycopg.Connection, *, site_id: str | None = None) -> list[AdapterConfig]:
    """The adapters enabled (at one site), by site, adapter and prefix."""
    rows = conn.execute(
        """SELECT site_id, adapter, prefix, options FROM site_adapters
           WHERE %(site)s::text IS NULL OR site_id = %(site)s ORDER BY site_id, adapter, prefix""",
        {"site": site_id}).fetchall()
    return [AdapterConfig(site, adapter, prefix, dict(options or {})) for site, adapter, prefix, options in rows]


def enable_adapter(conn: psycopg.Connection, site_id: str, adapter: str, prefix: str,
                   options: Mapping[str, Any] | None = None) -> None:
    """Enable ``adapter`` under ``prefix`` for ``site_id`` (options replaced if it was); :class:`BindError`
    when another site has that prefix (messages under it would not know their school)."""
    prefix = check_prefix(adapter, prefix)
    with conn.transaction():
        conn.execute("LOCK TABLE site_adapters IN SHARE ROW EXCLUSIVE MODE")  # one enable at a time: overlaps
        row = conn.execute("SELECT site_id FROM site_adapters WHERE adapter = %s AND prefix = %s",
                           (adapter, prefix)).fetchone()
        if row is not None and row[0] != site_id:
            raise BindError([f"{adapter} prefix {prefix!r} belongs to site {row[0]!r}"])
        if clash := overlapping(adapter, prefix, [c for c in adapters(conn) if (c.adapter, c.prefix) != (adapter, prefix)]):
            raise BindError([clash])
        conn.execute(
            """INSERT INTO site_adapters (site_id, adapter, prefix, options) VALUES (%s, %s, %s, %s)
               ON CONFLICT (adapter, prefix) DO UPDATE SET options = excluded.options""",
            (site_id, adapter, prefix, Jsonb(dict(options or {}))))


def disable_adapter(conn: psycopg.Connection, site_id: str, adapter: str, prefix: str) -> bool:
    """Disable one adapter subscription of a site; whether it was enabled."""
    return conn.execute("DELETE FROM site_adapters WHERE site_id = %s AND adapter = %s AND prefix = %s",
                        (site_id, adapter, prefix)).rowcount > 0


# -- hardware seen --------------------------------------------------------------------------------------
def note_seen(conn: psycopg.Connection, seen: Sequence[Seen]) -> None:
    """Record hardware adapters saw (address and model kept current, messages added)."""
    if not seen:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO hardware_seen AS t (site_id, kind, hardware_id, adapter, prefix, address, model,
                                               first_seen, last_seen, messages)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (site_id, kind, hardware_id) DO UPDATE SET adapter = excluded.adapter,
                 prefix = excluded.prefix, address = excluded.address, model = coalesce(excluded.model, t.model),
                 last_seen = greatest(t.last_seen, excluded.last_seen), messages = t.messages + excluded.messages""",
            [(s.site_id, s.kind, s.hardware_id, s.adapter, s.prefix, s.address, s.model, s.at, s.at, s.messages)
             for s in seen])


def addresses(conn: psycopg.Connection, adapter: str) -> dict[tuple[str, str | None, str], tuple[str, str]]:
    """``{(site_id, prefix, address): (kind, hardware_id)}`` of what ``adapter`` has seen (zigbee2mqtt's friendly
    names from its bridge's device list); where a name was reused, the hardware seen last under it."""
    rows = conn.execute("""SELECT site_id, prefix, address, kind, hardware_id FROM hardware_seen WHERE adapter = %s
                           ORDER BY last_seen""", (adapter,)).fetchall()
    return {(site, prefix, address): (kind, hw) for site, prefix, address, kind, hw in rows}


_UNMAPPED = sql.SQL("""FROM hardware_seen h
               WHERE NOT EXISTS (SELECT 1 FROM device_identities i JOIN devices d ON d.id = i.device_id
                                 WHERE i.kind = h.kind AND i.hardware_id = h.hardware_id AND d.removed_at IS NULL)
                 AND (%(site)s::text IS NULL OR h.site_id = %(site)s)""")


def unmapped_hardware(conn: psycopg.Connection, *, site_id: str | None = None, limit: int = 100,
                      offset: int = 0) -> list[SeenRow]:
    """Hardware seen but bound to no device (newest first): "publishing but not in the twin"."""
    with conn.cursor(row_factory=class_row(SeenRow)) as cur:
        return cur.execute(
            sql.SQL("""SELECT h.site_id, h.kind, h.hardware_id, h.adapter, h.address, h.model, h.first_seen,
                              h.last_seen, h.messages {unmapped} ORDER BY h.last_seen DESC, h.site_id, h.kind,
                              h.hardware_id LIMIT %(limit)s OFFSET %(offset)s""").format(unmapped=_UNMAPPED),
            {"site": site_id, "limit": limit, "offset": offset}).fetchall()


def count_unmapped_hardware(conn: psycopg.Connection, *, site_id: str | None = None) -> int:
    return conn.execute(sql.SQL("SELECT count(*) {unmapped}").format(unmapped=_UNMAPPED), {"site": site_id}).fetchone()[0]


def route(conn: psycopg.Connection, device_key: int) -> Route | None:
    """How a command reaches ``device_key`` through an adapter of its site; ``None`` for a device that speaks
    the twin's own contract (no identity an enabled adapter has seen)."""
    row = conn.execute(
        """SELECT h.adapter, a.prefix, h.address, h.kind, h.hardware_id, a.options
           FROM device_identities i JOIN devices d ON d.id = i.device_id
           JOIN hardware_seen h ON h.site_id = d.site_id AND h.kind = i.kind AND h.hardware_id = i.hardware_id
           JOIN site_adapters a ON a.site_id = d.site_id AND a.adapter = h.adapter
                                   AND (a.prefix = h.prefix OR h.prefix IS NULL)
           WHERE i.device_id = %s ORDER BY a.prefix = h.prefix DESC NULLS LAST, h.last_seen DESC LIMIT 1""",
        (device_key,)).fetchone()
    if row is None:
        return None
    adapter, prefix, address, kind, hw, options = row
    return Route(adapter, prefix, address, kind, hw, dict(options or {}))


# -- the devices page: hardware ids of listed devices, devices to bind hardware to ----------------------
def identities_of(conn: psycopg.Connection, devices: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], list[IdentityRow]]:
    """The identities of each ``(site_id, device_id)`` of ``devices`` that has any, by kind and hardware id."""
    if not devices:
        return {}
    with conn.cursor(row_factory=class_row(IdentityRow)) as cur:
        rows = cur.execute(
            """SELECT d.site_id, d.device_id, i.kind, i.hardware_id, i.source, i.bound_at, i.bound_by
               FROM device_identities i JOIN devices d ON d.id = i.device_id
               WHERE d.removed_at IS NULL
                 AND (d.site_id, d.device_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
               ORDER BY d.site_id, d.device_id, i.kind, i.hardware_id""",
            ([s for s, _ in devices], [d for _, d in devices])).fetchall()
    found: dict[tuple[str, str], list[IdentityRow]] = {}
    for row in rows:
        found.setdefault((row.site_id, row.device_id), []).append(row)
    return found


@dataclass(frozen=True, slots=True)
class BindCandidate:
    """A device of the site hardware may be bound to: ``carries`` an identity of the kind asked about already;
    ``suggested`` when it carries none and its id or name resembles how the hardware is addressed."""

    device_id: str
    name: str | None
    device_kind: str
    carries: bool
    suggested: bool


#: Separators ignored when an address is compared with device ids and names ("Env_101" resembles "env-101").
_PLAIN = r"regexp_replace(lower({}), '[[:space:]._:/\-]+', '', 'g')"


def bind_candidates(conn: psycopg.Connection, site_id: str, kind: str, address: str = "", *, search: str = "",
                    limit: int = 20) -> list[BindCandidate]:
    """Devices (not removed) of ``site_id`` to bind hardware of ``kind`` addressed as ``address`` to: the
    suggested ones first (no identity of ``kind``; id or name equal to the address, or one containing the other,
    separators and case ignored; the closest first), then those without an identity of ``kind``, by id.
    ``search`` narrows to a case-insensitive substring of the device id or name."""
    from twin.storage.devices import like_pattern

    query = f"""
        WITH a AS (SELECT {_PLAIN.format("%(address)s::text")} AS plain)
        SELECT device_id, name, device_kind, carries, suggested FROM (
            SELECT d.device_id, d.name, d.kind AS device_kind, x.carries,
                   NOT x.carries AND length(a.plain) >= 3 AND (
                       (length(x.id) >= 3 AND (strpos(a.plain, x.id) > 0 OR strpos(x.id, a.plain) > 0))
                    OR (length(x.nm) >= 3 AND (strpos(a.plain, x.nm) > 0 OR strpos(x.nm, a.plain) > 0))) AS suggested,
                   least(abs(length(x.id) - length(a.plain)), abs(length(x.nm) - length(a.plain))) AS distance
            FROM devices d CROSS JOIN a
            CROSS JOIN LATERAL (SELECT {_PLAIN.format("d.device_id")} AS id,
                                       {_PLAIN.format("coalesce(d.name, '')")} AS nm,
                                       EXISTS (SELECT 1 FROM device_identities i
                                               WHERE i.device_id = d.id AND i.kind = %(kind)s) AS carries) x
            WHERE d.site_id = %(site)s AND d.removed_at IS NULL
              AND (%(pattern)s::text IS NULL OR d.device_id ILIKE %(pattern)s OR d.name ILIKE %(pattern)s)) c
        ORDER BY suggested DESC, CASE WHEN suggested THEN distance END, carries, device_id
        LIMIT %(limit)s"""
    with conn.cursor(row_factory=class_row(BindCandidate)) as cur:
        return cur.execute(query, {"address": address, "kind": kind, "site": site_id,
                                   "pattern": like_pattern(search), "limit": limit}).fetchall()
