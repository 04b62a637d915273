"""Room (``/room/<room_id>``): live values, devices, history from the rollups, luminaire commands.

- Live values and the devices with their status, refreshed every ``REFRESH_MS``.
- History over 1 h, 24 h, 7 d, 30 d or a custom range: up to ``HOURLY_FROM`` from the
  1-minute rollups, beyond from the 1-hour rollups (never raw readings), with the bounds
  of the room's rules drawn (its use, its site's overrides, the season of the range's end);
  "Download CSV" exports exactly the shown series.
- Lighting control: on, off, dim to a level, for one luminaire or all; the command and its
  acknowledgement (from the device over MQTT) are listed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import auth, data, ids
from dashboard.commands import LUMINAIRE_KINDS, CommandError
from dashboard.figures import CHART_METRICS, colour_for, format_value, series_csv, series_figure, unit_of
from dashboard.history import LIVE_RANGES, RANGE_LABELS, chart_window
from dashboard.i18n import current, t
from twin.monitoring.site_standards import SiteStandards
from twin.storage.commands import CommandRow
from twin.storage.devices import RoomDevice
from twin.storage.readings import LatestValue

REFRESH_MS = 2000
ALL_LUMINAIRES = "*"

dash.register_page(__name__, path_template="/room/<room_id>", name="Room", title="Campus Twin – room", order=3)


def parse_room_id(room_id: str | None) -> int | None:
    try:
        return int(room_id) if room_id is not None else None
    except ValueError:
        return None


def _time(value: datetime | None, lang: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else t("never", lang)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], lang: str, **kwargs: Any) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(t(h, lang)) for h in headers]))
    return dbc.Table([head, html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])], className="table",
                     **kwargs)


def live_table(rows: Sequence[LatestValue], lang: str = "en", *, use: str = "",
               standards: SiteStandards | None = None) -> Any:
    """Latest value per device and metric, each value cell coloured as ``standards`` judge it in a room of ``use``."""
    if not rows:
        return html.P(t("No live values yet.", lang))
    head = html.Thead(html.Tr([html.Th(t(h, lang)) for h in ("device", "kind", "metric", "value")]
                              + [html.Th(t("time", lang) + " (UTC)")]))
    body = html.Tbody([
        html.Tr([
            html.Td(r.device_id), html.Td(r.kind), html.Td(t(r.metric, lang)),
            html.Td([html.Span("■ ", style={"color": colour_for(r.metric, r.value, use=use,
                                                                      standards=standards)}),
                     format_value(r.value, r.unit)], className="value"),
            html.Td(r.ts.strftime("%Y-%m-%d %H:%M:%S")),
        ])
        for r in rows
    ])
    return dbc.Table([head, body], className="table")


def state_chip(state: str, lang: str) -> html.Span:
    return html.Span(t(state, lang), className=f"chip chip-{state}")


def devices_table(rows: Sequence[RoomDevice], lang: str = "en") -> Any:
    """The room's devices with state, last seen, battery and signal."""
    return _table(("device", "kind", "state", "last seen", "battery", "signal"), [
        (r.device_id, r.kind, state_chip(r.state, lang), _time(r.last_seen, lang),
         "–" if r.battery_pct is None else f"{r.battery_pct:.0f} %",
         "–" if r.rssi_dbm is None else f"{r.rssi_dbm:.0f} dBm")
        for r in rows], lang)


def ack_text(row: CommandRow, lang: str) -> html.Span:
    if row.acked_at is None:
        return html.Span(t("waiting for ack", lang), className="chip chip-unknown")
    if row.ok:
        return html.Span(f"{t('ok', lang)} {row.acked_at:%H:%M:%S}", className="chip chip-online ack-ok")
    error = (row.ack or {}).get("error", "")
    return html.Span(f"{t('failed', lang)}: {error}", className="chip chip-offline")


def commands_table(rows: Sequence[CommandRow], lang: str = "en") -> Any:
    if not rows:
        return html.P(t("None.", lang), className="muted")
    return _table(("device", "action", "level", "sent", "acknowledged"), [
        (r.device_id, r.action, "" if r.level is None else f"{r.level:.0f} %",
         r.sent_at.strftime("%H:%M:%S"), ack_text(r, lang)) for r in rows], lang)


def lighting_panel(devices: Sequence[RoomDevice], lang: str) -> Any:
    luminaires = [d for d in devices if d.kind in LUMINAIRE_KINDS]
    if not luminaires:
        return html.P(t("No luminaires in this room.", lang), className="muted")
    allowed = auth.can("command")
    notice = [] if data.bridge() is not None else [html.P(
        t("Commands need an MQTT broker (start the dashboard with --mqtt-url).", lang), className="warning")]
    if not allowed:
        notice.append(html.P(t("Only operators and admins may send commands.", lang), className="muted"))
    options = [{"label": t("all luminaires", lang), "value": ALL_LUMINAIRES}] + [
        {"label": f"{d.device_id} ({d.kind})", "value": d.device_id} for d in luminaires]
    return html.Div([
        *notice,
        html.Div([
            dcc.Dropdown(id=ids.ROOM_LUMINAIRE, options=options, value=ALL_LUMINAIRES, clearable=False,
                         className="picker picker-small"),
            html.Button(t("On", lang), id={"type": ids.ROOM_CMD, "action": "on"}, className="button",
                        disabled=not allowed),
            html.Button(t("Off", lang), id={"type": ids.ROOM_CMD, "action": "off"}, className="button",
                        disabled=not allowed),
            html.Div([html.Span(t("level", lang), className="muted"),
                      dcc.Slider(id=ids.ROOM_LEVEL, min=0, max=100, step=10, value=50,
                                 marks={0: "0", 50: "50", 100: "100"})], className="slider"),
            html.Button(t("Dim", lang), id={"type": ids.ROOM_CMD, "action": "dim"}, className="button",
                        disabled=not allowed),
        ], className="pickers"),
        html.Div(id=ids.ROOM_CMD_STATUS, className="muted"),
        html.H4(t("Recent commands", lang)),
        html.Div(id=ids.ROOM_COMMANDS),
    ])


def layout(room_id: str | None = None, **_: Any) -> html.Div:
    lang = current()
    key = parse_room_id(room_id)
    room = data.room(key) if key is not None else None
    if room is None:
        return html.Div([html.H2(t("Unknown room", lang)), html.P(f"{room_id!r}"),
                         dcc.Link(t("All schools", lang), href=dash.get_relative_path("/"))])
    where = [
        dcc.Link(t("Network", lang), href=dash.get_relative_path("/")), " › ",
        dcc.Link(room.site_name, href=dash.get_relative_path(f"/site/{room.site_id}")), " › ",
        dcc.Link(f"{room.building} {room.storey}",
                 href=dash.get_relative_path(f"/site/{room.site_id}?storey={room.storey_id}")),
    ]
    today = datetime.now(UTC).date()
    return html.Div([
        dcc.Store(id=ids.ROOM_ID, data=key),
        html.P(where, className="breadcrumb"),
        html.H2(room.name + (f" – {room.long_name}" if room.long_name else "")),
        html.P(f"{room.use}" + (f", {room.area_m2:.0f} m²" if room.area_m2 else ""), className="muted"),
        html.Div([
            html.Div([html.H3(t("Live values", lang)), html.Div(id=ids.ROOM_TABLE)], className="panel"),
            html.Div([html.H3(t("Devices in this room", lang)), html.Div(id=ids.ROOM_DEVICES),
                      html.H3(t("Lighting control", lang)), lighting_panel(data.room_devices(key), lang)],
                     className="panel"),
        ], className="two-columns room-columns"),
        html.H3(t("History", lang)),
        html.Div([
            dcc.Dropdown(id=ids.ROOM_METRIC, options=[{"label": t(m, lang), "value": m} for m in CHART_METRICS],
                         value="co2", clearable=False, className="picker picker-small"),
            dcc.RadioItems(id=ids.ROOM_RANGE, options=[{"label": t(v, lang), "value": k}
                                                      for k, v in RANGE_LABELS.items()],
                           value="1h", inline=True, className="ranges"),
            dcc.DatePickerRange(id=ids.ROOM_CUSTOM, start_date=str(today - timedelta(days=3)), end_date=str(today),
                                display_format="YYYY-MM-DD", className="dates"),
            html.Button(t("Download CSV", lang), id=ids.ROOM_CSV_BUTTON, className="button"),
            dcc.Download(id=ids.ROOM_CSV),
        ], className="pickers"),
        dcc.Graph(id=ids.ROOM_SERIES, config={"displaylogo": False}, className="series"),
        dcc.Interval(id=ids.ROOM_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.ROOM_TABLE, "children"),
    Output(ids.ROOM_DEVICES, "children"),
    Input(ids.ROOM_INTERVAL, "n_intervals"),
    State(ids.ROOM_ID, "data"),
)
def update_live(_n: int | None, room_id: int) -> tuple[Any, Any]:
    """Refresh the live values and the devices' status."""
    lang = current()
    room = data.room(room_id)
    standards = data.room_standards(room) if room else None
    return (live_table(data.room_live(room_id), lang, use=(room.use if room else None) or "", standards=standards),
            devices_table(data.room_devices(room_id), lang))


@dash.callback(
    Output(ids.ROOM_COMMANDS, "children"),
    Input(ids.ROOM_INTERVAL, "n_intervals"),
    Input(ids.ROOM_CMD_STATUS, "children"),
    State(ids.ROOM_ID, "data"),
)
def update_commands(_n: int | None, _status: Any, room_id: int) -> Any:
    """The room's recent commands with their acknowledgements."""
    return commands_table(data.room_commands(room_id), current())


def chart(room_id: int, metric: str, range_key: str, start_date: str | None = None, end_date: str | None = None, *,
          now: datetime | None = None, lang: str = "en"
          ) -> tuple[dict[str, Any], list[tuple[datetime, float, float, float]]]:
    """The chart of a range and the points it shows (from the 1-minute or 1-hour rollups), with the bounds of
    the room's rules on the range's last day."""
    start, end, hourly = chart_window(range_key, start_date, end_date, now=now)
    points, bands = data.room_chart(room_id, metric, start, end, hourly=hourly)
    source = t("from 1-hour rollups" if hourly else "from 1-minute rollups", lang)
    figure = series_figure(points, metric, unit_of(metric), lang=lang, source=source, bands=bands)
    figure["layout"]["xaxis"]["range"] = [start.astimezone(UTC).replace(tzinfo=None),
                                          end.astimezone(UTC).replace(tzinfo=None)]  # naive UTC, like the data
    return figure, points


@dash.callback(
    Output(ids.ROOM_SERIES, "figure"),
    Input(ids.ROOM_METRIC, "value"),
    Input(ids.ROOM_RANGE, "value"),
    Input(ids.ROOM_CUSTOM, "start_date"),
    Input(ids.ROOM_CUSTOM, "end_date"),
    Input(ids.ROOM_INTERVAL, "n_intervals"),
    State(ids.ROOM_ID, "data"),
)
def update_chart(metric: str, range_key: str, start_date: str | None, end_date: str | None, _n: int | None,
                 room_id: int) -> Any:
    """Redraw the chart when the metric or range changes, and live for the short ranges."""
    if ctx.triggered_id == ids.ROOM_INTERVAL and range_key not in LIVE_RANGES:
        return no_update
    if ctx.triggered_id == ids.ROOM_CUSTOM and range_key != "custom":
        return no_update
    return chart(room_id, metric, range_key, start_date, end_date, lang=current())[0]


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("_") or "room"


@dash.callback(
    Output(ids.ROOM_CSV, "data"),
    Input(ids.ROOM_CSV_BUTTON, "n_clicks"),
    State(ids.ROOM_METRIC, "value"),
    State(ids.ROOM_RANGE, "value"),
    State(ids.ROOM_CUSTOM, "start_date"),
    State(ids.ROOM_CUSTOM, "end_date"),
    State(ids.ROOM_ID, "data"),
    prevent_initial_call=True,
)
def download_csv(n_clicks: int | None, metric: str, range_key: str, start_date: str | None, end_date: str | None,
                 room_id: int) -> dict[str, Any]:
    """The shown range as CSV (the same rollup buckets as the chart)."""
    if not n_clicks:
        raise PreventUpdate
    start, end, _ = chart_window(range_key, start_date, end_date)
    _, points = chart(room_id, metric, range_key, start_date, end_date)
    room = data.room(room_id)
    name = f"{_slug(room.name if room else str(room_id))}-{metric}-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.csv"
    return dcc.send_string(series_csv(points, metric, unit_of(metric)), name)


def send(room_id: int, target: str, action: str, level: float | None, sent_by: str = "dashboard") -> list[str]:
    """Send ``action`` to one luminaire of the room or to all; return the command ids."""
    bridge = data.bridge()
    if bridge is None:
        raise CommandError("no MQTT broker")
    luminaires = [d for d in data.room_devices(room_id) if d.kind in LUMINAIRE_KINDS
                  and (target == ALL_LUMINAIRES or d.device_id == target)]
    if not luminaires:
        raise CommandError(f"no luminaire {target!r} in this room")
    return [bridge.send(d.site_id, d.device_id, d.id, action, level if action == "dim" else None,
                        sent_by=sent_by) for d in luminaires]


@dash.callback(
    Output(ids.ROOM_CMD_STATUS, "children"),
    Input({"type": ids.ROOM_CMD, "action": ALL}, "n_clicks"),
    State(ids.ROOM_LUMINAIRE, "value"),
    State(ids.ROOM_LEVEL, "value"),
    State(ids.ROOM_ID, "data"),
    prevent_initial_call=True,
)
@auth.requires("command")
def send_command(clicks: list[int | None], target: str, level: float | None, room_id: int) -> str:
    """On / Off / Dim pressed: publish the command (stored first, so its ack can be shown)."""
    trigger = ctx.triggered_id
    if not trigger or not any(clicks):
        raise PreventUpdate
    lang = current()
    user = auth.current_user()
    what = {"room": room_id, "target": target, "action": trigger["action"], "level": level}
    try:
        sent = send(room_id, target or ALL_LUMINAIRES, trigger["action"], level, sent_by=user.username)
    except CommandError as exc:
        auth.record("command", "failed", f"room {room_id}", {**what, "error": str(exc)})
        return f"{t('command not sent', lang)}: {exc}"
    auth.record("command", "ok", f"room {room_id}", {**what, "commands": sent})
    return f"{t('command sent', lang)}: {trigger['action']} × {len(sent)}"
