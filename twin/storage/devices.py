"""Devices as the twin reads them: lists with status and vitals, one device, a room's devices, room health,
devices missing from the BIM or never heard, and the cloud-class panels in session.

Devices are written by a BIM import (:func:`twin.storage.model.save_model`), their status by ingest.
A device's ``id`` is the key of the ``devices`` table; ``device_id`` is its id in MQTT topics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from twin.metrics import BY_NAME


@dataclass(frozen=True, slots=True)
class DeviceListed:
    """A device (not removed) with kind, site, room, position, status and last seen."""

    id: int
    site_id: str
    device_id: str
    kind: str
    ifc_class: str | None
    name: str | None
    mapping: str
    room_id: int | None
    room: str | None
    room_use: str | None
    x: float | None
    y: float | None
    z: float | None
    state: str
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """One device (not removed) by its site and id: ``id`` (the key), ``kind``, ``room_id``."""

    id: int
    site_id: str
    device_id: str
    kind: str
    room_id: int | None


@dataclass(frozen=True, slots=True)
class RoomDevice:
    """A device of a room with its status and vitals."""

    id: int
    site_id: str
    device_id: str
    kind: str
    name: str | None
    state: str
    last_seen: datetime | None
    battery_pct: float | None
    rssi_dbm: float | None
    firmware: str | None


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which devices a list shows: a school, a state, a kind (None: any) and ``search``, a case-insensitive
    substring of the device id, its room's name, its building's name or its kind (blank: everything)."""

    site_id: str | None = None
    state: str | None = None
    kind: str | None = None
    search: str = ""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device of the devices list: school, id, kind, room and building, mapping, state and vitals."""

    site_id: str
    device_id: str
    kind: str
    room_id: int | None
    room: str | None
    building: str | None
    mapping: str
    state: str
    last_seen: datetime | None
    battery_pct: float | None
    rssi_dbm: float | None
    firmware: str | None


@dataclass(frozen=True, slots=True)
class UnmappedCounts:
    """How many devices each unmapped list holds: publishing but not in the BIM, never heard, in no room."""

    unknown: int
    never_heard: int
    no_room: int


@dataclass(frozen=True, slots=True)
class UnknownPublisher:
    """A device publishing but not in the BIM (from dead letters "unknown device", per topic's device)."""

    site_id: str
    device_id: str
    messages: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class NeverHeard:
    """A device in the BIM that never sent anything."""

    site_id: str
    device_id: str
    kind: str
    room: str | None
    mapping: str


@dataclass(frozen=True, slots=True)
class UnmappedDevice:
    """A device in the BIM that could not be placed in a room."""

    site_id: str
    device_id: str
    kind: str
    name: str | None
    ifc_class: str | None


@dataclass(frozen=True, slots=True)
class CloudPanel:
    """A panel in a cloud-class session: its site, room, ``session``, ``role`` (1 main classroom, 2 auxiliary)
    and its latest ``panel_state``, ``input_source`` and ``screen_on`` (None if unknown)."""

    site_id: str
    site_name: str
    site_role: str
    device_id: str
    room_id: int | None
    room: str | None
    session: float
    role: float | None
    panel_state: float | None
    input_source: float | None
    screen_on: float | None


def list_devices(conn: psycopg.Connection, site_id: str | None = None) -> list[DeviceListed]:
    """Devices (not removed) with kind, site, room, status and last seen."""
    with conn.cursor(row_factory=class_row(DeviceListed)) as cur:
        return cur.execute(
            """SELECT d.id, d.site_id, d.device_id, d.kind, d.ifc_class, d.name, d.mapping,
                      d.room_id, r.name AS room, r.use AS room_use, d.x, d.y, d.z,
                      coalesce(st.state, 'unknown') AS state, st.last_seen
               FROM devices d LEFT JOIN rooms r ON r.id = d.room_id
               LEFT JOIN device_status st ON st.device_id = d.id
               WHERE d.removed_at IS NULL AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
               ORDER BY d.site_id, r.name NULLS LAST, d.device_id""",
            {"site": site_id},
        ).fetchall()


def device_ids(conn: psycopg.Connection, site_id: str) -> dict[int, str]:
    """``devices.id -> device_id`` of every device of a site, removed ones included (history keeps them)."""
    return dict(conn.execute("SELECT id, device_id FROM devices WHERE site_id = %s", (site_id,)).fetchall())


def device(conn: psycopg.Connection, site_id: str, device_id: str) -> DeviceRef | None:
    """One device (not removed) by its site and id."""
    with conn.cursor(row_factory=class_row(DeviceRef)) as cur:
        return cur.execute(
            """SELECT id, site_id, device_id, kind, room_id FROM devices
               WHERE site_id = %s AND device_id = %s AND removed_at IS NULL""",
            (site_id, device_id),
        ).fetchone()


def room_devices(conn: psycopg.Connection, room_id: int) -> list[RoomDevice]:
    """The devices of a room with their status and vitals."""
    with conn.cursor(row_factory=class_row(RoomDevice)) as cur:
        return cur.execute(
            """SELECT d.id, d.site_id, d.device_id, d.kind, d.name, coalesce(st.state, 'unknown') AS state,
                      st.last_seen, st.battery_pct, st.rssi_dbm, st.firmware
               FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
               WHERE d.room_id = %s AND d.removed_at IS NULL ORDER BY d.kind, d.device_id""",
            (room_id,),
        ).fetchall()


def room_health(conn: psycopg.Connection, room_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Per room ``(devices online, devices)``; rooms without devices are absent."""
    rows = conn.execute(
        """SELECT d.room_id, count(*) FILTER (WHERE st.state = 'online'), count(*)
           FROM devices d LEFT JOIN device_status st ON st.device_id = d.id
           WHERE d.room_id = ANY(%s) AND d.removed_at IS NULL GROUP BY d.room_id""",
        (list(room_ids),),
    ).fetchall()
    return {room: (int(online), int(total)) for room, online, total in rows}


#: What the devices list sorts by (the key a reader picks -> its SQL, ``{dir}`` the direction); missing values
#: sort last either way, ties by school and device id so that a page never shifts. "state": offline first.
DEVICE_SORTS: dict[str, str] = {
    "site": "d.site_id {dir}",
    "device": "d.device_id {dir}",
    "kind": "d.kind {dir}",
    "room": "b.name {dir} NULLS LAST, r.name {dir} NULLS LAST",
    "state": "CASE coalesce(st.state, 'unknown') WHEN 'offline' THEN 0 WHEN 'unknown' THEN 1 ELSE 2 END {dir}",
    "last_seen": "st.last_seen {dir} NULLS LAST",
    "battery": "st.battery_pct {dir} NULLS LAST",
}

_DEVICES_FROM = """
    FROM devices d LEFT JOIN rooms r ON r.id = d.room_id
    LEFT JOIN storeys s ON s.id = coalesce(r.storey_id, d.storey_id) LEFT JOIN buildings b ON b.id = s.building_id
    LEFT JOIN device_status st ON st.device_id = d.id
    WHERE d.removed_at IS NULL AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
      AND (%(kind)s::text IS NULL OR d.kind = %(kind)s)
      AND (%(pattern)s::text IS NULL OR d.device_id ILIKE %(pattern)s OR d.kind ILIKE %(pattern)s
           OR r.name ILIKE %(pattern)s OR r.long_name ILIKE %(pattern)s OR b.name ILIKE %(pattern)s)"""


def like_pattern(search: str) -> str | None:
    """``search`` (trimmed) as an ILIKE pattern matching it anywhere, ``%`` and ``_`` taken literally;
    None for a blank search."""
    text = search.strip()
    if not text:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filter_params(where: DeviceFilter) -> dict[str, object]:
    return {"site": where.site_id, "state": where.state, "kind": where.kind, "pattern": like_pattern(where.search)}


def device_page(conn: psycopg.Connection, where: DeviceFilter, *, sort: str = "state", descending: bool = False,
                limit: int = 50, offset: int = 0) -> list[DeviceRow]:
    """One page of the devices ``where`` selects, sorted by ``sort`` (a key of :data:`DEVICE_SORTS`).

    Filtered, sorted and cut in the database (``LIMIT``/``OFFSET``): 50 of 10,000 devices take a few
    milliseconds, whatever the page. :class:`ValueError` for an unknown sort key."""
    if sort not in DEVICE_SORTS:
        raise ValueError(f"unknown sort {sort!r} (one of {', '.join(DEVICE_SORTS)})")
    order = sql.SQL(DEVICE_SORTS[sort]).format(dir=sql.SQL("DESC" if descending else "ASC"))
    query = sql.SQL("SELECT d.site_id, d.device_id, d.kind, d.room_id, r.name AS room, b.name AS building, d.mapping,"
                    " coalesce(st.state, 'unknown') AS state, st.last_seen, st.battery_pct, st.rssi_dbm, st.firmware"
                    + _DEVICES_FROM + """
                      AND (%(state)s::text IS NULL OR coalesce(st.state, 'unknown') = %(state)s)
                    ORDER BY {order}, d.site_id, d.device_id LIMIT %(limit)s OFFSET %(offset)s""").format(order=order)
    with conn.cursor(row_factory=class_row(DeviceRow)) as cur:
        return cur.execute(query, {**_filter_params(where), "limit": limit, "offset": offset}).fetchall()


def device_list_counts(conn: psycopg.Connection, where: DeviceFilter) -> dict[str, int]:
    """How many devices ``where`` selects in each state (online, offline, unknown; zeros included),
    whatever ``where.state`` is: the total of a filtered list, and what each state filter would give."""
    query = sql.SQL("SELECT coalesce(st.state, 'unknown'), count(*) {devices} GROUP BY 1").format(
        devices=sql.SQL(_DEVICES_FROM))
    rows = conn.execute(query, _filter_params(where)).fetchall()
    counts = dict.fromkeys(("online", "offline", "unknown"), 0)
    counts.update({state: int(n) for state, n in rows})
    return counts


def device_kinds(conn: psycopg.Connection, site_id: str | None = None) -> list[str]:
    """The kinds of devices (not removed) of a school, or of every school, sorted."""
    rows = conn.execute(
        """SELECT DISTINCT kind FROM devices WHERE removed_at IS NULL AND (%(site)s::text IS NULL OR site_id = %(site)s)
           ORDER BY kind""", {"site": site_id}).fetchall()
    return [kind for (kind,) in rows]


_UNKNOWN_PUBLISHERS = """
    FROM dead_letters WHERE reason LIKE 'unknown device%%'
      AND (%(site)s::text IS NULL OR split_part(topic, '/', 3) = %(site)s)
      AND (%(pattern)s::text IS NULL OR split_part(topic, '/', 4) ILIKE %(pattern)s)"""

_NEVER_HEARD = """
    FROM devices d LEFT JOIN rooms r ON r.id = d.room_id LEFT JOIN device_status st ON st.device_id = d.id
    WHERE d.removed_at IS NULL AND st.last_seen IS NULL
      AND NOT EXISTS (SELECT 1 FROM latest l WHERE l.device_id = d.id)
      AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
      AND (%(pattern)s::text IS NULL OR d.device_id ILIKE %(pattern)s)"""

_NO_ROOM = """
    FROM devices d
    WHERE d.removed_at IS NULL AND d.mapping = 'unmapped'
      AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
      AND (%(pattern)s::text IS NULL OR d.device_id ILIKE %(pattern)s)"""


def unknown_publishers(conn: psycopg.Connection, *, site_id: str | None = None, search: str = "",
                       limit: int = 200, offset: int = 0) -> list[UnknownPublisher]:
    """Devices publishing but not in the BIM: dead letters with reason "unknown device", per topic's device,
    newest first; ``search`` is a case-insensitive substring of the device id."""
    with conn.cursor(row_factory=class_row(UnknownPublisher)) as cur:
        return cur.execute(
            sql.SQL("""SELECT split_part(topic, '/', 3) AS site_id, split_part(topic, '/', 4) AS device_id,
                      count(*) AS messages, min(received_at) AS first_seen, max(received_at) AS last_seen {unknown}
               GROUP BY 1, 2 ORDER BY max(received_at) DESC, 1, 2 LIMIT %(limit)s OFFSET %(offset)s""").format(
                unknown=sql.SQL(_UNKNOWN_PUBLISHERS)),
            {"site": site_id, "pattern": like_pattern(search), "limit": limit, "offset": offset},
        ).fetchall()


def never_heard(conn: psycopg.Connection, *, site_id: str | None = None, search: str = "", limit: int = 500,
                offset: int = 0) -> list[NeverHeard]:
    """Devices in the BIM that never sent anything (no reading, never seen), by site and id;
    ``search`` is a case-insensitive substring of the device id."""
    with conn.cursor(row_factory=class_row(NeverHeard)) as cur:
        return cur.execute(
            sql.SQL("SELECT d.site_id, d.device_id, d.kind, r.name AS room, d.mapping {never}"
                    " ORDER BY d.site_id, d.device_id LIMIT %(limit)s OFFSET %(offset)s").format(
                never=sql.SQL(_NEVER_HEARD)),
            {"site": site_id, "pattern": like_pattern(search), "limit": limit, "offset": offset},
        ).fetchall()


def unmapped_in_bim(conn: psycopg.Connection, *, site_id: str | None = None, search: str = "",
                    limit: int = 500, offset: int = 0) -> list[UnmappedDevice]:
    """Devices in the BIM that could not be placed in a room, by site and id;
    ``search`` is a case-insensitive substring of the device id."""
    with conn.cursor(row_factory=class_row(UnmappedDevice)) as cur:
        return cur.execute(
            sql.SQL("SELECT d.site_id, d.device_id, d.kind, d.name, d.ifc_class {no_room}"
                    " ORDER BY d.site_id, d.device_id LIMIT %(limit)s OFFSET %(offset)s").format(
                no_room=sql.SQL(_NO_ROOM)),
            {"site": site_id, "pattern": like_pattern(search), "limit": limit, "offset": offset},
        ).fetchall()


def unmapped_counts(conn: psycopg.Connection, *, site_id: str | None = None, search: str = "") -> UnmappedCounts:
    """How many devices :func:`unknown_publishers`, :func:`never_heard` and :func:`unmapped_in_bim` list
    in all (their lists are cut to a page)."""
    query = sql.SQL("""SELECT (SELECT count(DISTINCT split_part(topic, '/', 3) || '/' || split_part(topic, '/', 4))
                                  {unknown}), (SELECT count(*) {never}), (SELECT count(*) {no_room})""").format(
        unknown=sql.SQL(_UNKNOWN_PUBLISHERS), never=sql.SQL(_NEVER_HEARD), no_room=sql.SQL(_NO_ROOM))
    row = conn.execute(query, {"site": site_id, "pattern": like_pattern(search)}).fetchone()
    return UnmappedCounts(int(row[0]), int(row[1]), int(row[2]))


_SESSION_METRICS = ("cloud_session", "cloud_role", "panel_state", "input_source", "screen_on")


def cloud_panels(conn: psycopg.Connection, since: datetime) -> list[CloudPanel]:
    """Panels taking part in a cloud-class session (``cloud_session`` > 0, reported since ``since``),
    one per panel, by session, site and room."""
    ids = [BY_NAME[m].metric_id for m in _SESSION_METRICS]
    with conn.cursor(row_factory=class_row(CloudPanel)) as cur:
        return cur.execute(
            """SELECT d.site_id, s.name AS site_name, s.role AS site_role, d.device_id, d.room_id,
                      r.name AS room, sess.value AS session,
                      max(l.value) FILTER (WHERE l.metric_id = %(role)s) AS role,
                      max(l.value) FILTER (WHERE l.metric_id = %(state)s) AS panel_state,
                      max(l.value) FILTER (WHERE l.metric_id = %(input)s) AS input_source,
                      max(l.value) FILTER (WHERE l.metric_id = %(screen)s) AS screen_on
               FROM latest sess JOIN devices d ON d.id = sess.device_id
               JOIN sites s ON s.site_id = d.site_id LEFT JOIN rooms r ON r.id = d.room_id
               LEFT JOIN latest l ON l.device_id = d.id AND l.metric_id = ANY(%(ids)s)
               WHERE sess.metric_id = %(session)s AND sess.value > 0 AND sess.ts >= %(since)s
                 AND d.removed_at IS NULL
               GROUP BY d.site_id, s.name, s.role, d.device_id, d.room_id, r.name, sess.value
               ORDER BY sess.value, d.site_id, r.name""",
            {"session": ids[0], "role": ids[1], "state": ids[2], "input": ids[3], "screen": ids[4], "ids": ids[1:],
             "since": since},
        ).fetchall()


def reported_metrics(conn: psycopg.Connection, site_id: str) -> dict[str, set[str]]:
    """Device id -> the metrics (catalogue names) it has a latest value of, for the site's devices."""
    found: dict[str, set[str]] = {}
    for dev, metric in conn.execute(
            """SELECT d.device_id, m.name FROM latest l JOIN devices d ON d.id = l.device_id
               JOIN metrics m ON m.metric_id = l.metric_id WHERE d.site_id = %s AND d.removed_at IS NULL""",
            (site_id,)):
        found.setdefault(dev, set()).add(metric)
    return found
