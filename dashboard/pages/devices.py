"""Devices (``/devices``): online/offline, last seen, battery, signal; and the unmapped devices.

Unmapped comes in three kinds: publishing but not in the BIM (dead letters "unknown
device"), in the BIM but never heard, and in the BIM but in no room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, dcc, html

from dashboard import data, ids
from dashboard.i18n import current, t
from dashboard.pages.alarms import ANY, _filter, site_options
from dashboard.pages.room import _table, _time, state_chip
from twin.storage.devices import DeviceVitals

REFRESH_MS = 10_000
DEVICE_STATES = ("online", "offline", "unknown")

dash.register_page(__name__, path="/devices", name="Devices", title="Campus Twin – devices", order=5)


def layout(**_: Any) -> html.Div:
    lang = current()
    return html.Div([
        html.H2(t("Devices", lang)),
        html.Div([
            html.Label([t("School", lang), dcc.Dropdown(id=ids.DEVICES_SITE, options=site_options(lang), value=ANY,
                                                        clearable=False, className="picker picker-small")]),
            html.Label([t("state", lang), dcc.Dropdown(
                id=ids.DEVICES_STATE, options=[{"label": t(ANY, lang), "value": ANY}]
                + [{"label": t(s, lang), "value": s} for s in DEVICE_STATES],
                value=ANY, clearable=False, className="picker picker-small")]),
        ], className="pickers"),
        html.Div(id=ids.DEVICES_BODY),
        dcc.Interval(id=ids.DEVICES_INTERVAL, interval=REFRESH_MS),
    ])


def _room(r: DeviceVitals) -> Any:
    return dcc.Link(r.room, href=dash.get_relative_path(f"/room/{r.room_id}")) if r.room_id else "–"


def devices_body(view: data.DevicesView, lang: str) -> list[Any]:
    counts: Mapping[str, int] = view.counts
    total = sum(counts.values())
    rows = view.devices
    summary = html.Div([html.Span([state_chip(s, lang), f" {counts.get(s, 0)}"], className="count")
                        for s in DEVICE_STATES] + [html.Span(f"{t('showing', lang)} {len(rows)} {t('of', lang)} {total}",
                                                             className="muted")], className="counts")

    def listing(title: str, headers: Sequence[str], items: Sequence[Sequence[Any]]) -> list[Any]:
        body: Any = _table(headers, items, lang) if items else html.P(t("None.", lang), className="muted")
        return [html.H4(f"{t(title, lang)} ({len(items)})"), body]

    return [
        summary,
        _table(("site", "device", "kind", "room", "state", "last seen", "battery", "signal", "firmware"), [
            (r.site_id, r.device_id, r.kind, _room(r), state_chip(r.state, lang), _time(r.last_seen, lang),
             "–" if r.battery_pct is None else f"{r.battery_pct:.0f} %",
             "–" if r.rssi_dbm is None else f"{r.rssi_dbm:.0f} dBm", r.firmware or "–") for r in rows],
            lang, id="devices-table"),
        html.H3(t("Unmapped devices", lang)),
        html.Div([
            *listing("Publishing but not in the BIM", ("site", "device", "messages", "first seen", "last seen"),
                     [(u.site_id, u.device_id, u.messages, _time(u.first_seen, lang),
                       _time(u.last_seen, lang)) for u in view.unknown]),
            *listing("In the BIM but never heard", ("site", "device", "kind", "room"),
                     [(n.site_id, n.device_id, n.kind, n.room or "–") for n in view.never_heard]),
            *listing("In the BIM but in no room", ("site", "device", "kind"),
                     [(n.site_id, n.device_id, n.kind) for n in view.no_room]),
        ], id="unmapped"),
    ]


@dash.callback(
    Output(ids.DEVICES_BODY, "children"),
    Input(ids.DEVICES_SITE, "value"),
    Input(ids.DEVICES_STATE, "value"),
    Input(ids.DEVICES_INTERVAL, "n_intervals"),
)
def update_devices(site_id: str, state: str, _n: int | None) -> list[Any]:
    return devices_body(data.devices_view(_filter(site_id), _filter(state)), current())
