"""Devices (``/devices``): search, filter, sort and page through every device; and the unmapped devices.

Search (device id, room, building or kind; any case), the filters, the sort and the paging are done by the
database (:func:`twin.storage.devices.device_page`): a refresh sends one page of 50 rows, whatever the number
of devices. Each device links to its room ("building · room"); times are in the school's time zone.

Unmapped comes in three kinds: publishing but not in the BIM (dead letters "unknown device"), in the BIM but
never heard, and in the BIM but in no room; each list shows its first 10 (the search narrows them) and how
many there are.

Then the hardware adapters saw that no device of the twin carries ("publishing but not in the twin"), ten a
page, with its hardware id, how it is addressed, its model and its messages; planners and admins bind one to a
device of its school in one step (the device chosen in the row, then Bind), audited. Each device row shows its
hardware ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import ALL, MATCH, Input, Output, State, dcc, html
from dash.exceptions import MissingCallbackContextException, PreventUpdate

from dashboard import auth, data, ids
from dashboard.i18n import current, t
from dashboard.localtime import SCHOOL_TZ, fmt_time, time_header
from dashboard.pages.alarms import ANY, _filter, site_options
from twin.identities import Identity, IdentityError, normalize
from twin.localtime import utc_offset
from twin.storage.devices import DEVICE_SORTS, DeviceFilter, DeviceRow
from twin.storage.identities import BindCandidate, BindError, SeenRow

REFRESH_MS = 10_000
PAGE_SIZE = 50
UNMAPPED_SHOWN = 10
DEVICE_STATES = ("online", "offline", "unknown")
#: Sort keys as the reader picks them, with their column names.
SORTS = {"state": "state", "site": "site", "device": "device", "kind": "kind", "room": "room",
         "last_seen": "last seen", "battery": "battery"}
assert set(SORTS) == set(DEVICE_SORTS)
#: A change of any of these shows the first page again.
FILTERS = (ids.DEVICES_SITE, ids.DEVICES_STATE, ids.DEVICES_KIND, ids.DEVICES_SEARCH, ids.DEVICES_SORT,
           ids.DEVICES_ORDER)
#: Rows of hardware not in the twin a page, and devices its dropdown offers.
HARDWARE_PAGE_SIZE = 10
CHOICES = 20
#: The role's right that binds hardware to devices: planners' and admins' (they change the twin's model).
BIND = "upload"

dash.register_page(__name__, path="/devices", name="Devices", title="Campus Twin – devices", order=5)


def layout(**_: Any) -> html.Div:
    lang = current()

    def picker(label: str, id_: str, options: list[dict[str, str]], value: str) -> html.Label:
        return html.Label([t(label, lang), dcc.Dropdown(id=id_, options=options, value=value, clearable=False,
                                                        className="picker picker-small")])

    return html.Div([
        html.H2(t("Devices", lang)),
        html.Div([
            html.Label([t("Search", lang), dcc.Input(
                id=ids.DEVICES_SEARCH, type="search", debounce=True, value="", className="devices-search",
                placeholder=t("device, room, building or kind", lang))]),
            picker("School", ids.DEVICES_SITE, site_options(lang), ANY),
            picker("state", ids.DEVICES_STATE, [{"label": t(ANY, lang), "value": ANY}]
                   + [{"label": t(s, lang), "value": s} for s in DEVICE_STATES], ANY),
            picker("kind", ids.DEVICES_KIND, [{"label": t(ANY, lang), "value": ANY}], ANY),
            picker("Sort by", ids.DEVICES_SORT, [{"label": t(v, lang), "value": k} for k, v in SORTS.items()],
                   "state"),
            html.Label([t("Order", lang), dcc.RadioItems(
                id=ids.DEVICES_ORDER, options=[{"label": t("ascending", lang), "value": "asc"},
                                               {"label": t("descending", lang), "value": "desc"}],
                value="asc", inline=True, className="devices-order")]),
        ], className="pickers"),
        html.Div(id=ids.DEVICES_BODY),
        dbc.Pagination(id=ids.DEVICES_PAGE, max_value=1, active_page=1, fully_expanded=False, first_last=True,
                       previous_next=True, size="sm", className="devices-pager"),
        html.Div(id=ids.DEVICES_UNMAPPED),
        html.Div(id=ids.HARDWARE),
        html.Div(id=ids.HARDWARE_STATUS, className="hardware-status"),
        dbc.Pagination(id=ids.HARDWARE_PAGE, max_value=1, active_page=1, fully_expanded=False, first_last=True,
                       previous_next=True, size="sm", className="devices-pager", style={"display": "none"}),
        dcc.Store(id=ids.HARDWARE_REFRESH, data=0),
        dcc.Store(id=ids.HARDWARE_SHOWN),
        dcc.Interval(id=ids.DEVICES_INTERVAL, interval=REFRESH_MS),
    ])


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], **kwargs: Any) -> html.Table:
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in headers])),
                       html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])],
                      className="table devices-table", **kwargs)


def _room(r: DeviceRow) -> Any:
    """A link to the device's room, "building · room"; a dash for a device in no room."""
    if r.room_id is None:
        return "–"
    return dcc.Link(" · ".join(p for p in (r.building, r.room) if p), href=dash.get_relative_path(f"/room/{r.room_id}"))


def range_text(view: data.DevicesView, lang: str) -> str:
    """``51–100 of 2,340`` (``0 of 0`` when nothing matches)."""
    if not view.devices:
        return t("{first}–{last} of {total}", lang).format(first=0, last=0, total=f"{view.total:,}")
    first = (view.page - 1) * view.page_size + 1
    return t("{first}–{last} of {total}", lang).format(first=f"{first:,}", last=f"{first + len(view.devices) - 1:,}",
                                                       total=f"{view.total:,}")


class Clock:
    """Times in each school's zone: the zone in the column header when every school shares one (the usual
    case), else the UTC offset after each time."""

    def __init__(self, view: data.DevicesView | data.HardwareView, lang: str) -> None:
        self.zones, self.lang = view.zones, lang
        found = set(view.zones.values()) or {SCHOOL_TZ}
        self.common = next(iter(found)) if len(found) == 1 else None

    def header(self, word: str) -> str:
        return time_header(self.common, self.lang, word) if self.common else t(word, self.lang)

    def time(self, value: datetime | None, site_id: str) -> str:
        zone = self.zones.get(site_id, SCHOOL_TZ)
        text = fmt_time(value, self.lang, zone)
        return text if self.common or value is None else f"{text} ({utc_offset(zone, value)})"


def devices_table(view: data.DevicesView, lang: str) -> list[Any]:
    """The state counts of the search, which rows are shown, and the page of devices."""
    summary = html.Div([html.Span([html.Span(t(s, lang), className=f"chip chip-{s}"), f" {view.counts.get(s, 0):,}"],
                                  className="count") for s in DEVICE_STATES]
                       + [html.Span(range_text(view, lang), className="muted devices-range")], className="counts")
    if not view.devices:
        return [summary, html.P(t("No devices match.", lang), className="muted")]
    clock = Clock(view, lang)
    headers = [t(h, lang) for h in ("site", "device", "kind", "room", "state")] + [clock.header("last seen")] + [
        t(h, lang) for h in ("battery", "signal", "firmware", "hardware ids")]
    rows = [(r.site_id, r.device_id, t(r.kind, lang), _room(r), html.Span(t(r.state, lang), className=f"chip chip-{r.state}"),
             clock.time(r.last_seen, r.site_id), "–" if r.battery_pct is None else f"{r.battery_pct:.0f} %",
             "–" if r.rssi_dbm is None else f"{r.rssi_dbm:.0f} dBm", r.firmware or "–",
             ", ".join(str(Identity(i.kind, i.hardware_id)) for i in view.hardware_ids.get((r.site_id, r.device_id), ()))
             or "–") for r in view.devices]
    return [summary, _table(headers, rows, id="devices-table")]


def unmapped_lists(view: data.DevicesView, lang: str) -> list[Any]:
    """The three kinds of unmapped device, the first of each and how many there are."""
    clock = Clock(view, lang)

    def listing(title: str, headers: Sequence[str], items: Sequence[Sequence[Any]], total: int) -> list[Any]:
        if not items:
            return [html.H4(f"{t(title, lang)} (0)"), html.P(t("None.", lang), className="muted")]
        more = [html.P(f"{t('showing', lang)} {len(items)} {t('of', lang)} {total:,}; "
                       f"{t('search to narrow the list', lang)}", className="muted")] if total > len(items) else []
        return [html.H4(f"{t(title, lang)} ({total:,})"), _table(headers, items), *more]

    return [
        html.H3(t("Unmapped devices", lang)),
        *listing("Publishing but not in the BIM",
                 (t("site", lang), t("device", lang), t("messages", lang), clock.header("first seen"),
                  clock.header("last seen")),
                 [(u.site_id, u.device_id, u.messages, clock.time(u.first_seen, u.site_id),
                   clock.time(u.last_seen, u.site_id)) for u in view.unknown],
                 view.unmapped.unknown),
        *listing("In the BIM but never heard", [t(h, lang) for h in ("site", "device", "kind", "room")],
                 [(n.site_id, n.device_id, t(n.kind, lang), n.room or "–") for n in view.never_heard],
                 view.unmapped.never_heard),
        *listing("In the BIM but in no room", [t(h, lang) for h in ("site", "device", "kind")],
                 [(n.site_id, n.device_id, t(n.kind, lang)) for n in view.no_room], view.unmapped.no_room),
    ]


def page_to_show(trigger: str | None, requested: int | None) -> int:
    """The page asked for; the first page after a new search, filter or sort."""
    return 1 if trigger in FILTERS or not requested else requested


def _trigger() -> str | None:
    try:
        return dash.ctx.triggered_id
    except MissingCallbackContextException:  # called directly (tests, scripts)
        return None


@dash.callback(
    Output(ids.DEVICES_BODY, "children"),
    Output(ids.DEVICES_PAGE, "max_value"),
    Output(ids.DEVICES_PAGE, "active_page"),
    Output(ids.DEVICES_UNMAPPED, "children"),
    Output(ids.DEVICES_KIND, "options"),
    Input(ids.DEVICES_SITE, "value"),
    Input(ids.DEVICES_STATE, "value"),
    Input(ids.DEVICES_KIND, "value"),
    Input(ids.DEVICES_SEARCH, "value"),
    Input(ids.DEVICES_SORT, "value"),
    Input(ids.DEVICES_ORDER, "value"),
    Input(ids.DEVICES_PAGE, "active_page"),
    Input(ids.DEVICES_INTERVAL, "n_intervals"),
    Input(ids.HARDWARE_REFRESH, "data"),
)
def update_devices(site_id: str, state: str, kind: str, search: str | None, sort: str, order: str,
                   active_page: int | None, _n: int | None, _bound: int | None = None) -> tuple[Any, ...]:
    lang = current()
    where = DeviceFilter(site_id=_filter(site_id), state=_filter(state), kind=_filter(kind), search=search or "")
    view = data.devices_view(where, sort=sort if sort in SORTS else "state", descending=order == "desc",
                             page=page_to_show(_trigger(), active_page), page_size=PAGE_SIZE,
                             unmapped_limit=UNMAPPED_SHOWN)
    kinds = [{"label": t(ANY, lang), "value": ANY}] + [{"label": t(k, lang), "value": k} for k in view.kinds]
    return devices_table(view, lang), view.pages, view.page, unmapped_lists(view, lang), kinds


# -- hardware adapters saw that no device of the twin carries ---------------------------------------------


def hardware_key(site_id: str, kind: str, hardware_id: str) -> str:
    """The key of a hardware row's controls (its dropdown and its Bind button): ``["site", "kind", "id"]``."""
    return json.dumps([site_id, kind, hardware_id], separators=(",", ":"), ensure_ascii=False)


def parse_key(key: object) -> tuple[str, str, str] | None:
    """``(site_id, kind, hardware_id)`` of a :func:`hardware_key`; None for anything else (a forged id)."""
    try:
        value = json.loads(key) if isinstance(key, str) else None
    except ValueError:
        return None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        return None
    return value[0], value[1], value[2]


def _choice(c: BindCandidate, kind: str, lang: str) -> dict[str, str]:
    """A device as the dropdown offers it: ``env-104 – suggested · CO2 sensor 104 (env_sensor)``."""
    mark = (f" – {t('suggested', lang)}" if c.suggested
            else f" – {t('has a {kind} id', lang).format(kind=kind)}" if c.carries else "")
    name = f" · {c.name}" if c.name and c.name != c.device_id else ""
    return {"label": f"{c.device_id}{mark}{name} ({t(c.device_kind, lang)})", "value": c.device_id}


def _options(choices: Sequence[BindCandidate], kind: str, lang: str, value: str | None) -> list[dict[str, str]]:
    """The choices, and the device chosen when it is not among them (kept across a refresh or a search)."""
    options = [_choice(c, kind, lang) for c in choices]
    if value and all(o["value"] != value for o in options):
        options.insert(0, {"label": value, "value": value})
    return options


def _chooser(row: SeenRow, choices: Sequence[BindCandidate], chosen: Mapping[str, str | None], lang: str) -> Any:
    """The row's device dropdown: the device chosen before a refresh, else the suggestion, else none."""
    key = hardware_key(row.site_id, row.kind, row.hardware_id)
    value = chosen[key] if key in chosen else next((c.device_id for c in choices if c.suggested), None)
    return dcc.Dropdown(id={"type": ids.HARDWARE_DEVICE, "key": key}, options=_options(choices, row.kind, lang, value),
                        value=value, placeholder=t("choose a device", lang), className="picker hardware-device",
                        labels={"search": t("Search", lang), "no_options_found": t("No devices match.", lang)})


#: Where a row's last seen and messages are in the list (children[1] is the table; its body, then the cells).
TABLE_AT, LAST_SEEN_COLUMN, MESSAGES_COLUMN = 1, 6, 7


def hardware_list(view: data.HardwareView, lang: str, *,
                  offers: Mapping[tuple[str, str, str], Sequence[BindCandidate]] | None = None,
                  chosen: Mapping[str, str | None] | None = None) -> list[Any]:
    """The page of hardware not in the twin: a heading, then the table (at :data:`TABLE_AT`); with ``offers``
    (for who may bind) a device dropdown and a Bind button on each row."""
    clock = Clock(view, lang)
    title = html.H4(f"{t('Publishing but not in the twin', lang)} ({view.total:,})")
    if not view.rows:
        return [html.Div([title, html.P(t("None.", lang), className="muted")])]
    about = html.P([t("Hardware an adapter heard that no device of the twin carries.", lang), " ",
                    t("Choose its device and press Bind." if offers is not None else "A planner binds it to its device.",
                      lang)], className="muted")
    first = (view.page - 1) * view.page_size + 1
    shown = [html.P(t("{first}–{last} of {total}", lang).format(
        first=f"{first:,}", last=f"{first + len(view.rows) - 1:,}", total=f"{view.total:,}"), className="muted")
             ] if view.pages > 1 else []
    headers = [t(h, lang) for h in ("site", "adapter", "hardware id", "address", "model")] + [
        clock.header("first seen"), clock.header("last seen"), t("messages", lang)]
    if offers is not None:
        headers.append(t("device", lang))
    rows = []
    for r in view.rows:
        cells: list[Any] = [r.site_id, r.adapter, str(Identity(r.kind, r.hardware_id)), r.address, r.model or "–",
                            clock.time(r.first_seen, r.site_id), clock.time(r.last_seen, r.site_id), f"{r.messages:,}"]
        if offers is not None:
            key = hardware_key(r.site_id, r.kind, r.hardware_id)
            cells.append(html.Div([
                _chooser(r, offers.get((r.site_id, r.kind, r.hardware_id), ()), chosen or {}, lang),
                html.Button(t("Bind", lang), id={"type": ids.HARDWARE_BIND, "key": key},
                            className="button button-small")], className="hardware-bind"))
        rows.append(cells)
    return [html.Div([title, about, *shown]), _table(headers, rows, id="hardware-table")]


def seen_patch(view: data.HardwareView, lang: str) -> dash.Patch:
    """Last seen and messages of each row of a list drawn by :func:`hardware_list` with the same rows, written
    into its cells: the rest of the list (a dropdown being used) stays as it is."""
    clock, patch = Clock(view, lang), dash.Patch()
    body = patch[TABLE_AT]["props"]["children"][1]["props"]["children"]
    for i, r in enumerate(view.rows):
        cells = body[i]["props"]["children"]
        cells[LAST_SEEN_COLUMN]["props"]["children"] = clock.time(r.last_seen, r.site_id)
        cells[MESSAGES_COLUMN]["props"]["children"] = f"{r.messages:,}"
    return patch


def _fingerprint(view: data.HardwareView, lang: str, can_bind: bool) -> list[Any]:
    """What the list's rows are (not their last seen and messages): when unchanged, a refresh patches those
    into the rows drawn and leaves the rest, with the device a planner is choosing, as it is."""
    return [lang, can_bind, view.page, view.pages, view.total,
            [[r.site_id, r.kind, r.hardware_id, r.adapter, r.address, r.model, r.first_seen.isoformat()]
             for r in view.rows]]


@dash.callback(
    Output(ids.HARDWARE, "children"),
    Output(ids.HARDWARE_PAGE, "max_value"),
    Output(ids.HARDWARE_PAGE, "active_page"),
    Output(ids.HARDWARE_PAGE, "style"),
    Output(ids.HARDWARE_SHOWN, "data"),
    Input(ids.DEVICES_SITE, "value"),
    Input(ids.HARDWARE_PAGE, "active_page"),
    Input(ids.HARDWARE_REFRESH, "data"),
    Input(ids.DEVICES_INTERVAL, "n_intervals"),
    State(ids.HARDWARE_SHOWN, "data"),
    State({"type": ids.HARDWARE_DEVICE, "key": ALL}, "value"),
    State({"type": ids.HARDWARE_DEVICE, "key": ALL}, "id"),
)
def show_hardware(site_id: str, active_page: int | None, _bound: int | None, _n: int | None, shown: Any,
                  chosen: list[str | None] | None, chosen_ids: list[dict[str, str]] | None) -> tuple[Any, ...]:
    """The page of hardware not in the twin (the first after a new school), each row's chosen device kept; on a
    refresh that finds the same rows, a patch of their last seen and messages (nothing when there are none)."""
    lang, can_bind, trigger = current(), auth.can(BIND), _trigger()
    view = data.hardware_view(_filter(site_id), page=1 if trigger == ids.DEVICES_SITE else active_page or 1,
                              page_size=HARDWARE_PAGE_SIZE)
    fingerprint = _fingerprint(view, lang, can_bind)
    if trigger == ids.DEVICES_INTERVAL and fingerprint == shown:
        if not view.rows:
            raise PreventUpdate
        return (seen_patch(view, lang),) + (dash.no_update,) * 4
    offers = data.bind_offers(view.rows, CHOICES) if can_bind else None
    kept = {c["key"]: v for c, v in zip(chosen_ids or (), chosen or (), strict=False) if isinstance(c, dict)}
    return (hardware_list(view, lang, offers=offers, chosen=kept), view.pages, view.page,
            {} if view.pages > 1 else {"display": "none"}, fingerprint)


@dash.callback(
    Output({"type": ids.HARDWARE_DEVICE, "key": MATCH}, "options"),
    Input({"type": ids.HARDWARE_DEVICE, "key": MATCH}, "search_value"),
    State({"type": ids.HARDWARE_DEVICE, "key": MATCH}, "value"),
    State({"type": ids.HARDWARE_DEVICE, "key": MATCH}, "id"),
    prevent_initial_call=True,
)
def device_options(search: str | None, value: str | None, id_: dict[str, str]) -> list[dict[str, str]]:
    """The school's devices whose id or name holds what was typed in a row's dropdown."""
    found = parse_key(id_.get("key"))
    if not (search or "").strip() or found is None:
        raise PreventUpdate
    site_id, kind, _ = found
    return _options(data.bind_choices(site_id, kind, search or "", CHOICES), kind, current(), value)


@dash.callback(
    Output(ids.HARDWARE_STATUS, "children"),
    Output(ids.HARDWARE_REFRESH, "data"),
    Input({"type": ids.HARDWARE_BIND, "key": ALL}, "n_clicks"),
    State({"type": ids.HARDWARE_DEVICE, "key": ALL}, "value"),
    State({"type": ids.HARDWARE_DEVICE, "key": ALL}, "id"),
    State(ids.HARDWARE_REFRESH, "data"),
    prevent_initial_call=True,
)
@auth.requires(BIND)
def bind_hardware(clicks: list[int | None], chosen: list[str | None], chosen_ids: list[dict[str, str]],
                  refresh: int | None) -> tuple[Any, Any]:
    """Bind the hardware of the row whose Bind was pressed to the device chosen in that row, in the user's name
    (audited); the list and the devices re-read. A refusal says why and changes nothing."""
    trigger = dash.ctx.triggered_id
    if not any(c.get("value") for c in dash.ctx.triggered) or not isinstance(trigger, dict):
        raise PreventUpdate
    lang, found = current(), parse_key(trigger.get("key"))
    try:
        if found is None:
            raise IdentityError("not a hardware row")
        site_id, kind, hardware_id = found[0], found[1], normalize(found[1], found[2])
    except IdentityError as exc:
        return html.Span(t("Not bound: {problems}", lang).format(problems=exc), className="error"), dash.no_update
    hardware = str(Identity(kind, hardware_id))
    device = {c.get("key"): v for c, v in zip(chosen_ids, chosen, strict=False)}.get(trigger["key"])
    if not device or not isinstance(device, str):
        return html.Span(t("Choose the device to bind {hardware} to.", lang).format(hardware=hardware),
                         className="error"), dash.no_update
    user = auth.current_user()
    assert user is not None  # auth.requires let only a signed-in planner or admin through
    try:
        data.bind_hardware(site_id, kind, hardware_id, device, by=user.username, remote_addr=flask.request.remote_addr)
    except BindError as exc:
        return html.Span(t("Not bound: {problems}", lang).format(problems="; ".join(exc.problems)),
                         className="error"), dash.no_update
    return (html.Span(t("Bound {hardware} to {device}.", lang).format(hardware=hardware, device=device),
                      className="ok"), (refresh or 0) + 1)
