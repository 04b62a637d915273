"""Room (``/room/<room_id>``): a summary first, then history, devices, luminaire commands, raw values.

- Summary: each metric of the room aggregated over its devices (:func:`room_summary`: a mean,
  the most people counted, a sum of power, "3 of 9 on" for luminaires, words for states), with
  its status against the site's standards; rules outside their hours (lessons; school hours with
  the room empty, as the rule engine counts them) say "not in session" instead of a verdict.
  Refreshed every ``REFRESH_MS`` with the devices and the raw per-device values (collapsed).
- History over 1 h, 24 h, 7 d, 30 d, a custom range or around a time (``?metric=co2&at=<ISO 8601>``,
  ± ``AROUND``; an alarm links there): up to ``HOURLY_FROM`` from the 1-minute rollups, beyond
  from the 1-hour rollups (never raw readings), with the bounds of the room's rules drawn;
  the axis in the site's time zone, a gap in the data a break in the lines; an empty range says
  so and offers the time of the room's last data. "Download CSV" exports exactly the shown series (UTC).
- Lighting control: on, off, dim to a level, for one luminaire or all; the command and its
  acknowledgement (from the device over MQTT) are listed.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import auth, data, ids
from dashboard.commands import LUMINAIRE_KINDS, CommandError
from dashboard.figures import (
    CHART_METRICS,
    STATUS_COLOURS,
    colour_for,
    format_value,
    series_csv,
    series_figure,
    unit_of,
)
from dashboard.figures.series import axis_time
from dashboard.history import LIVE_RANGES, RANGE_LABELS, chart_window
from dashboard.i18n import current, t
from dashboard.localtime import SCHOOL_TZ, fmt_time, local, time_header
from twin.monitoring.site_standards import NO_STANDARD, OK, STATUSES, SiteStandards
from twin.storage.commands import CommandRow
from twin.storage.devices import RoomDevice
from twin.storage.readings import LatestValue
from twin.timetable import Timetable

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


# -- summary ---------------------------------------------------------------------------------------------

#: A rule outside its hours at this time (no lesson, or not school hours): not judged.
NOT_IN_SESSION = "not in session"
#: Metrics in the summary, in this order (air, people, light, power, then the devices' states); others follow.
SUMMARY_ORDER = ("co2", "temperature", "humidity", "pm25", "tvoc", "noise", "occupancy", "illuminance",
                 "blackboard_illuminance", "dimming", "power", "energy", "on", "screen_on", "panel_state",
                 "input_source", "panel_temperature", "cloud_session", "cloud_role")
#: How the room's devices' latest values make one value: the mean, except these.
SUMMED = ("power", "energy")
HIGHEST = ("occupancy",)  # several sensors in a room count the same people
#: Switches (0/1): luminaires always as "3 of 9 on"; a single screen as on/off.
SWITCHES = ("on", "screen_on")
#: Enumerated states, by value.
STATE_WORDS = {"panel_state": ("off", "standby", "on"),
               "input_source": ("none", "built-in PC", "HDMI", "cloud-class stream"),
               "cloud_role": ("none", "main classroom", "auxiliary classroom")}
#: What the summary calls a metric (English; ZH in dashboard.i18n).
SUMMARY_LABELS = {"co2": "CO₂", "pm25": "PM2.5", "tvoc": "TVOC", "illuminance": "desk illuminance",
                  "blackboard_illuminance": "blackboard illuminance", "on": "luminaires", "screen_on": "panel screen",
                  "panel_state": "panel", "input_source": "input source", "cloud_session": "cloud class",
                  "cloud_role": "cloud-class role", "panel_temperature": "panel temperature"}
#: A status for people.
STATUS_WORDS = {OK: "meets the standard", "info": "outside the standard", "warning": "outside the standard",
                "critical": "fails the standard", NOT_IN_SESSION: NOT_IN_SESSION, NO_STANDARD: ""}
TIMETABLE = Timetable()


# NamedTuples, not dataclasses: Dash's page loader runs this file before it is in sys.modules, where a
# dataclass of string annotations cannot be made.
class SummaryItem(NamedTuple):
    """One metric of a room: its value for people, its status (a ``STATUSES`` value or ``NOT_IN_SESSION``),
    and how many devices reported it."""

    metric: str
    label: str
    text: str
    status: str
    devices: int


def _state_text(metric: str, values: Sequence[float], lang: str) -> str:
    words = STATE_WORDS[metric]
    names = [words[int(v)] if 0 <= int(v) < len(words) else str(int(v)) for v in values]
    counts = Counter(names).most_common()
    if len(counts) == 1:
        return t(counts[0][0], lang)
    return ", ".join(f"{n} {t(name, lang)}" for name, n in counts)


def _switch_text(metric: str, values: Sequence[float], lang: str) -> str:
    on = sum(v > 0 for v in values)
    if metric == "screen_on" and len(values) == 1:
        return t("on" if on else "off", lang)
    return t("{on} of {n} on", lang).format(on=on, n=len(values))


def _value_text(metric: str, values: Sequence[float], lang: str) -> str:
    if metric in SWITCHES:
        return _switch_text(metric, values, lang)
    if metric in STATE_WORDS:
        return _state_text(metric, values, lang)
    if metric == "cloud_session":
        sessions = sorted({int(v) for v in values if v > 0})
        return ", ".join(map(str, sessions)) if sessions else t("none", lang)
    value = _aggregate(metric, values)
    if metric == "occupancy":
        return f"{value:.0f} {t('persons', lang)}"
    return format_value(value, unit_of(metric))


def _aggregate(metric: str, values: Sequence[float]) -> float:
    if metric in SUMMED:
        return float(sum(values))
    if metric in HIGHEST:
        return float(max(values))
    return float(sum(values) / len(values))


def rule_hours(now: datetime, occupancy: float | None, zone: ZoneInfo = SCHOOL_TZ,
               timetable: Timetable = TIMETABLE) -> bool | None:
    """Which rules count at ``now``, as the rule engine counts them, as ``SiteStandards``' ``occupied``:
    True (a lesson: the rules of occupied hours), False (school hours with the room empty: the rules of an
    empty room), None (a lesson in an empty room: both); ``NOT_IN_SESSION`` when none counts."""
    when = local(now, zone)
    empty = occupancy is not None and occupancy == 0
    if timetable.occupied(when):
        return None if empty else True
    if timetable.school_hours(when) and empty:
        return False
    return NOT_IN_SESSION  # type: ignore[return-value]


def room_summary(rows: Sequence[LatestValue], use: str, standards: SiteStandards | None, *,
                 now: datetime | None = None, lang: str = "en", zone: ZoneInfo = SCHOOL_TZ,
                 timetable: Timetable = TIMETABLE) -> list[SummaryItem]:
    """Each metric of the room over its devices' latest values, with its status at ``now`` (default: now).

    A metric that rules judge is judged (``standards.judge``, the verdicts of the floor plan) only by
    the rules whose hours it is; when none is, its status is ``NOT_IN_SESSION``.
    """
    by_metric: dict[str, list[float]] = {}
    for r in rows:
        by_metric.setdefault(r.metric, []).append(r.value)
    occupancy = max(by_metric["occupancy"]) if by_metric.get("occupancy") else None
    hours = rule_hours(now or datetime.now(UTC), occupancy, zone, timetable)
    order = {m: i for i, m in enumerate(SUMMARY_ORDER)}
    items = []
    for metric in sorted(by_metric, key=lambda m: (order.get(m, len(order)), m)):
        values = by_metric[metric]
        status = NO_STANDARD
        if standards is not None and metric not in SWITCHES and metric not in STATE_WORDS \
                and standards.value_rules(metric, use):
            if hours == NOT_IN_SESSION or not standards.value_rules(metric, use, occupied=hours):
                status = NOT_IN_SESSION
            else:
                status = standards.judge(metric, _aggregate(metric, values), use, occupied=hours).status
        items.append(SummaryItem(metric, t(SUMMARY_LABELS.get(metric, metric), lang),
                                 _value_text(metric, values, lang), status, len(values)))
    return items


def summary_panel(items: Sequence[SummaryItem], lang: str) -> Any:
    """The summary: a headline (the worst status judged now), then one tile per metric."""
    if not items:
        return html.P(t("No live values yet.", lang), className="muted")
    judged = [i.status for i in items if i.status in STATUSES and i.status != NO_STANDARD]
    worst = max(judged, key=STATUSES.index) if judged else None
    if worst is None:
        headline = t("Not in session: the standards judge this room in lessons.", lang) \
            if any(i.status == NOT_IN_SESSION for i in items) else t("No standard judges these values.", lang)
    else:
        headline = t({OK: "The room meets the standards.", "info": "A value is outside a standard.",
                      "warning": "A value is outside a standard.", "critical": "A value fails a standard."}[worst],
                     lang)
    tiles = []
    for i in items:
        words = STATUS_WORDS.get(i.status, i.status)
        chip = html.Span(t(words, lang), className=f"chip chip-status-{i.status.replace(' ', '-')}") if words else ""
        swatch = html.Span("■ ", style={"color": STATUS_COLOURS[i.status]}) if i.status in STATUS_COLOURS \
            and i.status != NO_STANDARD else ""
        tiles.append(html.Div([
            html.Div(i.label, className="summary-label"),
            html.Div([swatch, i.text], className="summary-value"),
            html.Div([chip, html.Span(f" {i.devices} {t('devices', lang)}" if i.devices > 1 else "",
                                      className="muted")], className="summary-status"),
        ], className=f"summary-tile summary-{i.metric}"))
    return html.Div([html.P(headline, className=f"summary-headline summary-{worst or 'none'}"),
                     html.Div(tiles, className="summary-grid")])


def live_table(rows: Sequence[LatestValue], lang: str = "en", *, use: str = "",
               standards: SiteStandards | None = None, zone: ZoneInfo = SCHOOL_TZ) -> Any:
    """Latest value per device and metric, each value cell coloured as ``standards`` judge it in a room of ``use``."""
    if not rows:
        return html.P(t("No live values yet.", lang))
    head = html.Thead(html.Tr([html.Th(t(h, lang)) for h in ("device", "kind", "metric", "value")]
                              + [html.Th(time_header(zone, lang))]))
    body = html.Tbody([
        html.Tr([
            html.Td(r.device_id, className="nowrap"), html.Td(t(r.kind, lang)), html.Td(t(r.metric, lang)),
            html.Td([html.Span("■ ", style={"color": colour_for(r.metric, r.value, use=use,
                                                                      standards=standards)}),
                     format_value(r.value, r.unit)], className="value"),
            html.Td(fmt_time(r.ts, lang, zone), className="nowrap"),
        ])
        for r in rows
    ])
    return dbc.Table([head, body], className="table")


def state_chip(state: str, lang: str) -> html.Span:
    return html.Span(t(state, lang), className=f"chip chip-{state}")


def devices_table(rows: Sequence[RoomDevice], lang: str = "en", zone: ZoneInfo = SCHOOL_TZ) -> Any:
    """The room's devices with state, last seen (in the site's zone), battery and signal."""
    return _table(("device", "kind", "state", "last seen", "battery", "signal"), [
        (html.Span(r.device_id, className="nowrap"), t(r.kind, lang), state_chip(r.state, lang),
         fmt_time(r.last_seen, lang, zone),
         "–" if r.battery_pct is None else f"{r.battery_pct:.0f} %",
         "–" if r.rssi_dbm is None else f"{r.rssi_dbm:.0f} dBm")
        for r in rows], lang)


def ack_text(row: CommandRow, lang: str, zone: ZoneInfo = SCHOOL_TZ) -> html.Span:
    if row.acked_at is None:
        return html.Span(t("waiting for ack", lang), className="chip chip-unknown")
    if row.ok:
        return html.Span(f"{t('ok', lang)} {fmt_time(row.acked_at, lang, zone)[11:]}",
                         className="chip chip-online ack-ok")
    error = (row.ack or {}).get("error", "")
    return html.Span(f"{t('failed', lang)}: {error}", className="chip chip-offline")


def commands_table(rows: Sequence[CommandRow], lang: str = "en", zone: ZoneInfo = SCHOOL_TZ) -> Any:
    if not rows:
        return html.P(t("None.", lang), className="muted")
    return _table(("device", "action", "level", "sent", "acknowledged"), [
        (html.Span(r.device_id, className="nowrap"), t(r.action, lang), "" if r.level is None else f"{r.level:.0f} %",
         fmt_time(r.sent_at, lang, zone)[11:], ack_text(r, lang, zone)) for r in rows], lang)


def lighting_panel(devices: Sequence[RoomDevice], lang: str) -> Any:
    luminaires = [d for d in devices if d.kind in LUMINAIRE_KINDS]
    if not luminaires:  # the refresh's input and output are there all the same, hidden
        return html.Div([html.P(t("No luminaires in this room.", lang), className="muted"),
                         html.Div(id=ids.ROOM_CMD_STATUS, hidden=True), html.Div(id=ids.ROOM_COMMANDS, hidden=True)])
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


#: The range around a given time (``?at=``, an alarm's link, the last data of an empty range).
AT_RANGE = "at"
#: How far either side of that time the chart looks.
AROUND = timedelta(hours=2)


def parse_at(value: str | None) -> datetime | None:
    """An ISO 8601 time from a link (``Z`` or an offset; naive is UTC; a ``+`` a query string made a space)."""
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def at_link(room_id: int, metric: str | None, at: datetime) -> str:
    """The room's chart around ``at`` (for ``metric`` when given): ``/room/<id>?metric=co2&at=<UTC ISO>``."""
    query = (f"metric={metric}&" if metric else "") + f"at={at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return dash.get_relative_path(f"/room/{room_id}?{query}")


def range_options(lang: str, at: datetime | None = None, zone: ZoneInfo = SCHOOL_TZ) -> list[dict[str, str]]:
    options = [{"label": t(v, lang), "value": k} for k, v in RANGE_LABELS.items()]
    if at is not None:
        options.append({"label": t("around {time}", lang).format(time=fmt_time(at, lang, zone, seconds=False)),
                        "value": AT_RANGE})
    return options


def window(range_key: str, start_date: str | None = None, end_date: str | None = None, *, at: str | None = None,
           now: datetime | None = None) -> tuple[datetime, datetime, bool]:
    """``(start, end, hourly)`` of a range: :func:`dashboard.history.chart_window`, or ± ``AROUND`` ``at``."""
    moment = parse_at(at) if range_key == AT_RANGE else None
    if moment is not None:
        return moment - AROUND, moment + AROUND, False
    return chart_window(range_key if range_key != AT_RANGE else "1h", start_date, end_date, now=now)


def layout(room_id: str | None = None, metric: str | None = None, at: str | None = None, **_: Any) -> html.Div:
    lang = current()
    key = parse_room_id(room_id)
    room = data.room(key) if key is not None else None
    if room is None:
        return html.Div([html.H2(t("Unknown room", lang)), html.P(f"{room_id!r}"),
                         dcc.Link(t("All schools", lang), href=dash.get_relative_path("/"))])
    zone = data.site_zone(room.site_id)
    where = [
        dcc.Link(t("Network", lang), href=dash.get_relative_path("/")), " › ",
        dcc.Link(room.site_name, href=dash.get_relative_path(f"/site/{room.site_id}")), " › ",
        dcc.Link(f"{room.building} {room.storey}",
                 href=dash.get_relative_path(f"/site/{room.site_id}?storey={room.storey_id}")),
    ]
    moment = parse_at(at)
    today = datetime.now(zone).date()
    return html.Div([
        dcc.Store(id=ids.ROOM_ID, data=key),
        dcc.Store(id=ids.ROOM_AT, data=moment.isoformat() if moment else None),
        dcc.Store(id=ids.ROOM_OFFER_AT, data=None),
        html.P(where, className="breadcrumb"),
        html.H2(room.name + (f" – {room.long_name}" if room.long_name else "")),
        html.P(t(room.use or "", lang) + (f", {room.area_m2:.0f} m²" if room.area_m2 else ""), className="muted"),
        html.Div([html.H3(t("Summary", lang)), html.Div(id=ids.ROOM_SUMMARY)], className="panel room-summary"),
        html.H3(t("History", lang)),
        html.Div([
            dcc.Dropdown(id=ids.ROOM_METRIC, options=[{"label": t(m, lang), "value": m} for m in CHART_METRICS],
                         value=metric if metric in CHART_METRICS else "co2", clearable=False,
                         className="picker picker-small"),
            dcc.RadioItems(id=ids.ROOM_RANGE, options=range_options(lang, moment, zone),
                           value=AT_RANGE if moment else "1h", inline=True, className="ranges"),
            dcc.DatePickerRange(id=ids.ROOM_CUSTOM, start_date=str(today - timedelta(days=3)), end_date=str(today),
                                display_format="YYYY-MM-DD", className="dates"),
            html.Button(t("Download CSV", lang), id=ids.ROOM_CSV_BUTTON, className="button"),
            dcc.Download(id=ids.ROOM_CSV),
        ], className="pickers"),
        html.Div([html.Span(id=ids.ROOM_OFFER_TEXT, className="muted"), " ",
                  html.Button(t("Show that range", lang), id=ids.ROOM_OFFER_BUTTON, className="button button-small")],
                 id=ids.ROOM_OFFER, className="offer", style={"display": "none"}),
        dcc.Graph(id=ids.ROOM_SERIES, config={"displaylogo": False}, className="series"),
        html.Div([
            html.Div([html.H3(t("Devices in this room", lang)), html.Div(id=ids.ROOM_DEVICES)], className="panel"),
            html.Div([html.H3(t("Lighting control", lang)), lighting_panel(data.room_devices(key), lang)],
                     className="panel"),
        ], className="two-columns room-columns"),
        html.Details([html.Summary(t("Raw values of every device", lang)), html.Div(id=ids.ROOM_TABLE)],
                     className="panel raw-values"),
        dcc.Store(id=ROOM_SHOWN, data=None),
        dcc.Interval(id=ids.ROOM_INTERVAL, interval=REFRESH_MS),
    ])


def _digest(*parts: Any) -> str:
    """A short digest of what an output shows (the same in every worker: no salted ``hash``)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def live_outputs(view: data.RoomView, lang: str) -> dict[str, tuple[str, Any]]:
    """The live panels of a room (summary, raw values, devices, commands): each as ``(digest, render)``, the
    digest of what it shows and a function drawing it, so that an unchanged panel is not drawn again."""
    use = view.room.use or ""
    # judged as the monitor judges: on the stored timetable, in the schools' zone (docs/cli.md, sites set)
    items = room_summary(view.latest, use, view.standards, lang=lang, zone=SCHOOL_TZ, timetable=view.timetable)
    colours = [colour_for(r.metric, r.value, use=use, standards=view.standards) for r in view.latest]
    return {
        ids.ROOM_SUMMARY: (_digest(lang, items), lambda: summary_panel(items, lang)),
        ids.ROOM_TABLE: (_digest(lang, view.zone.key, view.latest, colours),
                         lambda: live_table(view.latest, lang, use=use, standards=view.standards, zone=view.zone)),
        ids.ROOM_DEVICES: (_digest(lang, view.zone.key, view.devices),
                           lambda: devices_table(view.devices, lang, view.zone)),
        ids.ROOM_COMMANDS: (_digest(lang, view.zone.key, view.commands),
                            lambda: commands_table(view.commands, lang, view.zone)),
    }


def update_live(_n: int | None, room_id: int) -> tuple[Any, Any, Any]:
    """The summary, the raw values and the devices' status of a room."""
    view = data.room_view(room_id)
    if view is None:
        lang = current()
        return summary_panel([], lang), live_table([], lang), devices_table([], lang)
    shown = live_outputs(view, current())
    return tuple(shown[key][1]() for key in (ids.ROOM_SUMMARY, ids.ROOM_TABLE, ids.ROOM_DEVICES))  # type: ignore[return-value]


#: What the page shows now (digests by output), so that a refresh sends only what changed.
ROOM_SHOWN = "room-shown"
LIVE_OUTPUTS = (ids.ROOM_SUMMARY, ids.ROOM_TABLE, ids.ROOM_DEVICES, ids.ROOM_COMMANDS)
CHART_OUTPUTS = ((ids.ROOM_SERIES, "figure"), (ids.ROOM_OFFER, "style"), (ids.ROOM_OFFER_TEXT, "children"),
                 (ids.ROOM_OFFER_AT, "data"))


@dash.callback(
    *[Output(key, "children") for key in LIVE_OUTPUTS],
    *[Output(key, prop, allow_duplicate=True) for key, prop in CHART_OUTPUTS],
    Output(ROOM_SHOWN, "data"),
    Input(ids.ROOM_INTERVAL, "n_intervals"),
    Input(ids.ROOM_CMD_STATUS, "children"),
    State(ids.ROOM_ID, "data"),
    State(ids.ROOM_METRIC, "value"),
    State(ids.ROOM_RANGE, "value"),
    State(ids.ROOM_AT, "data"),
    State(ROOM_SHOWN, "data"),
    prevent_initial_call="initial_duplicate",
)
def refresh(_n: int | None, _status: Any, room_id: int, metric: str, range_key: str, at: str | None,
            shown: dict[str, str] | None) -> tuple[Any, ...]:
    """A tick (or a command sent): the summary, raw values, devices and commands, and the chart of a live range,
    in one request and one connection; a panel that shows the same as before is not sent again, nor the chart's
    data (only its sliding time axis)."""
    lang = current()
    live_range = range_key in LIVE_RANGES and ctx.triggered_id == ids.ROOM_INTERVAL  # else update_chart draws it
    start, end, hourly = window(range_key, at=at) if live_range else (None, None, False)
    view = data.room_view(room_id, (metric, start, end, hourly) if live_range else None)
    if view is None:
        raise PreventUpdate
    shown = dict(shown or {})
    out: list[Any] = []
    for key, (digest, render) in live_outputs(view, lang).items():
        out.append(no_update if shown.get(key) == digest else render())
        shown[key] = digest
    chart_out: list[Any] = [no_update] * len(CHART_OUTPUTS)
    if view.series is not None and start is not None and end is not None:
        series = view.series
        digest = _digest(lang, metric, range_key, series.points, series.bands, series.zone.key)
        if shown.get(ids.ROOM_SERIES) == digest:
            axis = Patch()
            axis["layout"]["xaxis"]["range"] = [axis_time(start, series.zone), axis_time(end, series.zone)]
            chart_out[0] = axis
        else:
            figure = chart_figure(series, metric, start, end, hourly, lang)
            last = max((r.ts for r in view.latest if r.metric == metric), default=None)
            chart_out = [figure, *offer_outputs(offer_for(last, series.points, lang, series.zone))]
        shown[ids.ROOM_SERIES] = digest
    return (*out, *chart_out, shown)


def chart_figure(series: data.RoomSeries, metric: str, start: datetime, end: datetime, hourly: bool, lang: str
                 ) -> dict[str, Any]:
    """The chart of ``series`` over ``start``..``end``, its axis in the series' zone."""
    source = t("from 1-hour rollups" if hourly else "from 1-minute rollups", lang)
    figure = series_figure(series.points, metric, unit_of(metric), lang=lang, source=source, bands=series.bands,
                           zone=series.zone, interval=timedelta(hours=1) if hourly else timedelta(minutes=1))
    zone = series.zone
    figure["layout"]["xaxis"]["range"] = [axis_time(start, zone), axis_time(end, zone)]  # wall clock, like the data
    return figure


def chart(room_id: int, metric: str, range_key: str, start_date: str | None = None, end_date: str | None = None, *,
          at: str | None = None, now: datetime | None = None, lang: str = "en", zone: ZoneInfo | None = None
          ) -> tuple[dict[str, Any], list[tuple[datetime, float, float, float]]]:
    """The chart of a range and the points it shows (from the 1-minute or 1-hour rollups), with the bounds of
    the room's rules on the range's last day; the axis in ``zone`` (the room's site's when None)."""
    figure, series = _chart(room_id, metric, range_key, start_date, end_date, at=at, now=now, lang=lang, zone=zone)
    return figure, series.points


def _chart(room_id: int, metric: str, range_key: str, start_date: str | None = None, end_date: str | None = None, *,
           at: str | None = None, now: datetime | None = None, lang: str = "en", zone: ZoneInfo | None = None
           ) -> tuple[dict[str, Any], data.RoomSeries]:
    start, end, hourly = window(range_key, start_date, end_date, at=at, now=now)
    series = data.room_series_view(room_id, metric, start, end, hourly=hourly)
    if zone is not None:
        series = data.RoomSeries(series.points, series.bands, zone)
    return chart_figure(series, metric, start, end, hourly, lang), series


def last_data(room_id: int, metric: str) -> datetime | None:
    """When a device of the room last reported ``metric`` (None: never)."""
    return max((r.ts for r in data.room_live(room_id) if r.metric == metric), default=None)


class Offer(NamedTuple):
    """What an empty chart offers: the range around the room's last data."""

    at: datetime
    text: str


def offer_for(last: datetime | None, points: Sequence[Any], lang: str, zone: ZoneInfo = SCHOOL_TZ) -> Offer | None:
    """For an empty range: the room's last data (at ``last``) to show instead (None: data shown, or none at all)."""
    if points or last is None:
        return None
    return Offer(last, t("Last data: {time}.", lang).format(time=fmt_time(last, lang, zone)))


def data_offer(room_id: int, metric: str, points: Sequence[Any], lang: str, zone: ZoneInfo = SCHOOL_TZ
               ) -> Offer | None:
    """For an empty range: the room's last data of ``metric`` to show instead (None: data shown, or none at all)."""
    if points:
        return None
    return offer_for(last_data(room_id, metric), points, lang, zone)


def offer_outputs(offer: Offer | None) -> tuple[dict[str, str], str, str | None]:
    """The offer's style, text and time."""
    if offer is None:
        return {"display": "none"}, "", None
    return {}, offer.text, offer.at.isoformat()


@dash.callback(
    Output(ids.ROOM_SERIES, "figure"),
    Output(ids.ROOM_OFFER, "style"),
    Output(ids.ROOM_OFFER_TEXT, "children"),
    Output(ids.ROOM_OFFER_AT, "data"),
    Input(ids.ROOM_METRIC, "value"),
    Input(ids.ROOM_RANGE, "value"),
    Input(ids.ROOM_CUSTOM, "start_date"),
    Input(ids.ROOM_CUSTOM, "end_date"),
    Input(ids.ROOM_AT, "data"),
    State(ids.ROOM_ID, "data"),
)
def update_chart(metric: str, range_key: str, start_date: str | None, end_date: str | None, at: str | None,
                 room_id: int) -> Any:
    """Redraw the chart when the metric or range changes (a live range is redrawn by :func:`refresh`); an empty
    range offers the range around the room's last data."""
    if ctx.triggered_id == ids.ROOM_CUSTOM and range_key != "custom":
        return (no_update,) * 4
    lang = current()
    figure, series = _chart(room_id, metric, range_key, start_date, end_date, at=at, lang=lang)
    return figure, *offer_outputs(data_offer(room_id, metric, series.points, lang, series.zone))


@dash.callback(
    Output(ids.ROOM_AT, "data"),
    Output(ids.ROOM_RANGE, "options"),
    Output(ids.ROOM_RANGE, "value"),
    Input(ids.ROOM_OFFER_BUTTON, "n_clicks"),
    State(ids.ROOM_OFFER_AT, "data"),
    State(ids.ROOM_ID, "data"),
    prevent_initial_call=True,
)
def show_offer(n_clicks: int | None, at: str | None, room_id: int) -> tuple[str, list[dict[str, str]], str]:
    """"Show that range": the chart around the room's last data."""
    moment = parse_at(at)
    if not n_clicks or moment is None:
        raise PreventUpdate
    room = data.room(room_id)
    return moment.isoformat(), range_options(current(), moment, data.site_zone(room.site_id if room else None)), \
        AT_RANGE


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
    State(ids.ROOM_AT, "data"),
    prevent_initial_call=True,
)
def download_csv(n_clicks: int | None, metric: str, range_key: str, start_date: str | None, end_date: str | None,
                 room_id: int, at: str | None = None) -> dict[str, Any]:
    """The shown range as CSV (the same rollup buckets as the chart; times UTC, ISO 8601)."""
    if not n_clicks:
        raise PreventUpdate
    start, end, _ = window(range_key, start_date, end_date, at=at)
    _, points = chart(room_id, metric, range_key, start_date, end_date, at=at, zone=SCHOOL_TZ)
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
