"""Devices (``/devices``): search, filter, sort and page through every device; and the unmapped devices.

Search (device id, room, building or kind; any case), the filters, the sort and the paging are done by the
database (:func:`twin.storage.devices.device_page`): a refresh sends one page of 50 rows, whatever the number
of devices. Each device links to its room ("building · room"); times are in the school's time zone.

Unmapped comes in three kinds: publishing but not in the BIM (dead letters "unknown device"), in the BIM but
never heard, and in the BIM but in no room; each list shows its first 10 (the search narrows them) and how
many there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html
from dash.exceptions import MissingCallbackContextException

from dashboard import data, ids
from dashboard.i18n import current, t
from dashboard.localtime import SCHOOL_TZ, fmt_time, time_header
from dashboard.pages.alarms import ANY, _filter, site_options
from twin.localtime import utc_offset
from twin.storage.devices import DEVICE_SORTS, DeviceFilter, DeviceRow

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

    def __init__(self, view: data.DevicesView, lang: str) -> None:
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
        t(h, lang) for h in ("battery", "signal", "firmware")]
    rows = [(r.site_id, r.device_id, t(r.kind, lang), _room(r), html.Span(t(r.state, lang), className=f"chip chip-{r.state}"),
             clock.time(r.last_seen, r.site_id), "–" if r.battery_pct is None else f"{r.battery_pct:.0f} %",
             "–" if r.rssi_dbm is None else f"{r.rssi_dbm:.0f} dBm", r.firmware or "–") for r in view.devices]
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
)
def update_devices(site_id: str, state: str, kind: str, search: str | None, sort: str, order: str,
                   active_page: int | None, _n: int | None) -> tuple[Any, ...]:
    lang = current()
    where = DeviceFilter(site_id=_filter(site_id), state=_filter(state), kind=_filter(kind), search=search or "")
    view = data.devices_view(where, sort=sort if sort in SORTS else "state", descending=order == "desc",
                             page=page_to_show(_trigger(), active_page), page_size=PAGE_SIZE,
                             unmapped_limit=UNMAPPED_SHOWN)
    kinds = [{"label": t(ANY, lang), "value": ANY}] + [{"label": t(k, lang), "value": k} for k in view.kinds]
    return devices_table(view, lang), view.pages, view.page, unmapped_lists(view, lang), kinds
