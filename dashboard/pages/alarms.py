"""Alarms (``/alarms``): filter by school, severity and state; acknowledge with a note; the history.

Every alarm shows its building and room (a device alarm's room is its device's); the room links
to the room's chart of the alarm's metric around the time it was raised
(``/room/<id>?metric=co2&at=<UTC ISO 8601>``). Times are in the site's zone.
Open alarms have an "Acknowledge" button and a checkbox: "Acknowledge selected" acknowledges
every ticked one at once (operators and admins; each audited as one acknowledgement); the note
typed above the table goes with them. Acknowledged and closed alarms (state filter "any",
"acknowledged" or "closed") are the history, with who acknowledged them, when, and the note.
Below, the notifications a channel (WeCom, DingTalk, Feishu, e-mail) has not taken yet, with the
last reason, while the notifier retries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import auth, data, ids
from dashboard.figures import CHART_METRICS
from dashboard.i18n import current, t
from dashboard.localtime import SCHOOL_TZ, fmt_time, time_header
from twin.monitoring.standards import DEFAULT_RULES
from twin.storage.alarms import SEVERITIES, STATES, AlarmRow
from twin.storage.deliveries import DeliveryFailure

REFRESH_MS = 10_000
ANY = "any"

dash.register_page(__name__, path="/alarms", name="Alarms", title="Campus Twin – alarms", order=4)


def _options(values: Sequence[str], lang: str) -> list[dict[str, str]]:
    return [{"label": t(ANY, lang), "value": ANY}] + [{"label": t(v, lang), "value": v} for v in values]


def site_options(lang: str) -> list[dict[str, str]]:
    return [{"label": t(ANY, lang), "value": ANY}] + [{"label": s.name, "value": s.site_id}
                                                     for s in data.sites()]


def metric_of(rule: str) -> str | None:
    """The chart metric of an alarm's rule (a default rule's metric, else the metric its id names; None: no chart,
    e.g. ``device_offline``)."""
    known = DEFAULT_RULES.get(rule)
    if known is not None and known.metric in CHART_METRICS:
        return known.metric
    named = [m for m in CHART_METRICS if m in rule]
    return max(named, key=len) if named else None


def room_link(a: AlarmRow) -> str:
    """The room's chart around the alarm's time: ``/room/<id>?metric=<metric>&at=<raised, UTC ISO 8601>``."""
    metric = metric_of(a.rule)
    at = a.raised_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dash.get_relative_path(f"/room/{a.room_id}?" + (f"metric={metric}&" if metric else "") + f"at={at}")


def alarms_table(rows: Sequence[AlarmRow], lang: str, *, can_ack: bool = True,
                 selected: Sequence[int] = ()) -> Any:
    """The alarms; open ones get a checkbox and an "Acknowledge" button when the reader may acknowledge."""
    if not rows:
        return html.P(t("No alarms match.", lang), className="muted")
    zones = data.zones()  # one query for every school's zone (was one per school shown, each reading them all)
    body = []
    for a in rows:
        zone = zones.get(a.site_id, SCHOOL_TZ)
        is_open = a.state == "open" and can_ack
        action: Any = html.Button(t("Acknowledge", lang), id={"type": ids.ALARM_ACK, "id": a.id},
                                  className="button button-small") if is_open else ""
        pick: Any = dcc.Checklist(id={"type": ids.ALARM_PICK, "id": a.id}, options=[{"label": "", "value": a.id}],
                                  value=[a.id] if a.id in selected else [], className="alarm-pick") if is_open else ""
        acked = f"{a.acked_by} {fmt_time(a.acked_at, lang, zone, seconds=False)}" if a.acked_at else ""
        room: Any = dcc.Link(a.room, href=room_link(a), className="nowrap") if a.room_id else ""
        body.append(html.Tr([
            html.Td(pick), html.Td(fmt_time(a.raised_at, lang, zone, seconds=False), className="nowrap"),
            html.Td(fmt_time(a.known_at, lang, zone, seconds=False)[11:]), html.Td(a.site_name),
            html.Td(a.building or ""), html.Td(room),
            html.Td(a.device_id or "", className="nowrap"), html.Td(a.rule),
            html.Td(html.Span(t(a.severity, lang), className=f"chip chip-{a.severity}")),
            html.Td(html.Span(t(a.state, lang), className=f"chip chip-state-{a.state}")),
            html.Td(a.message), html.Td(acked), html.Td(a.note or ""),
            html.Td(fmt_time(a.cleared_at, lang, zone, seconds=False) if a.cleared_at else "", className="nowrap"),
            html.Td(action),
        ], className=f"alarm-row alarm-{a.state}"))
    zone_names = {z.key for z in zones.values()}
    when = time_header(next(iter(zones.values())), lang, "raised") if len(zone_names) == 1 else t("raised", lang)
    headers = ("", when, t("known", lang), t("School", lang), t("building", lang), t("room", lang),
               t("device", lang), t("rule", lang), t("severity", lang), t("state", lang), t("message", lang),
               t("acknowledged by", lang), t("note", lang), t("cleared", lang), "")
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(body)], className="table")


def layout(**_: Any) -> html.Div:
    lang = current()
    return html.Div([
        html.H2(t("Alarms", lang)),
        html.Div([
            html.Label([t("School", lang), dcc.Dropdown(id=ids.ALARM_SITE, options=site_options(lang), value=ANY,
                                                        clearable=False, className="picker picker-small")]),
            html.Label([t("severity", lang), dcc.Dropdown(id=ids.ALARM_SEVERITY, options=_options(SEVERITIES, lang),
                                                          value=ANY, clearable=False, className="picker picker-small")]),
            html.Label([t("state", lang), dcc.Dropdown(id=ids.ALARM_STATE, options=_options(STATES, lang),
                                                       value="open", clearable=False, className="picker picker-small")]),
        ], className="pickers"),
        dcc.Input(id=ids.ALARM_NOTE, type="text", placeholder=t("Note for the acknowledgement", lang),
                  className="note", debounce=False),
        html.Div([html.Button(t("Acknowledge selected", lang), id=ids.ALARM_ACK_SELECTED, className="button",
                              disabled=not auth.can("acknowledge")),
                  html.Span(id=ids.ALARM_BULK_STATUS, className="muted")], className="pickers"),
        html.Div(id=ids.ALARM_STATUS, className="muted"),
        html.Div(id=ids.ALARM_TABLE),
        html.Div(id=ids.ALARM_NOTIFY_FAILURES),
        dcc.Store(id=ids.ALARM_REFRESH, data=0),
        dcc.Store(id=ids.ALARM_BULK_REFRESH, data=0),
        dcc.Store(id=ids.ALARM_SELECTED, data=[]),
        dcc.Interval(id=ids.ALARM_INTERVAL, interval=REFRESH_MS),
    ])


def failures_table(rows: Sequence[DeliveryFailure], lang: str) -> Any:
    """The notifications not delivered yet (nothing when every channel is up to date)."""
    if not rows:
        return ""
    headers = (t("channel", lang), t("event", lang), t("attempts", lang), t("next attempt", lang),
               t("reason", lang))
    body = [html.Tr([html.Td(f.channel), html.Td(f"{f.event} #{f.alarm_id}"), html.Td(f.attempts),
                     html.Td(fmt_time(f.next_at, lang, SCHOOL_TZ)), html.Td(f.last_error)]) for f in rows]
    return html.Div([html.H3(t("Notifications not delivered", lang)),
                     dbc.Table([html.Thead(html.Tr([html.Th(h) for h in headers])), html.Tbody(body)],
                               className="table")])


@dash.callback(
    Output(ids.ALARM_NOTIFY_FAILURES, "children"),
    Input(ids.ALARM_SITE, "value"),
    Input(ids.ALARM_INTERVAL, "n_intervals"),
)
def update_failures(site_id: str, _n: int | None) -> Any:
    return failures_table(data.notification_failures(_filter(site_id)), current())


def _filter(value: str | None) -> str | None:
    return None if value in (None, ANY) else value


@dash.callback(
    Output(ids.ALARM_TABLE, "children"),
    Input(ids.ALARM_SITE, "value"),
    Input(ids.ALARM_SEVERITY, "value"),
    Input(ids.ALARM_STATE, "value"),
    Input(ids.ALARM_REFRESH, "data"),
    Input(ids.ALARM_INTERVAL, "n_intervals"),
    Input(ids.ALARM_BULK_REFRESH, "data"),
    State(ids.ALARM_SELECTED, "data"),
)
def update_alarms(site_id: str, severity: str, state: str, _refresh: int, _n: int | None, _bulk: int | None = None,
                  selected: list[int] | None = None) -> Any:
    """The alarms matching the filters, newest first (the ticked ones stay ticked across refreshes)."""
    return alarms_table(data.alarm_list(_filter(site_id), _filter(severity), _filter(state)), current(),
                        can_ack=auth.can("acknowledge"), selected=selected or ())


@dash.callback(
    Output(ids.ALARM_SELECTED, "data"),
    Input({"type": ids.ALARM_PICK, "id": ALL}, "value"),
    prevent_initial_call=True,
)
def remember_selection(values: list[list[int] | None]) -> list[int]:
    """The ticked alarms (kept while the table refreshes)."""
    return sorted({int(v) for picked in values for v in (picked or [])})


@dash.callback(
    Output(ids.ALARM_STATUS, "children"),
    Output(ids.ALARM_REFRESH, "data"),
    Input({"type": ids.ALARM_ACK, "id": ALL}, "n_clicks"),
    State(ids.ALARM_NOTE, "value"),
    State(ids.ALARM_REFRESH, "data"),
    prevent_initial_call=True,
)
@auth.requires("acknowledge")
def acknowledge(clicks: list[int | None], note: str | None, refresh: int) -> tuple[str, int]:
    """Acknowledge the alarm whose button was pressed, with the note."""
    trigger = ctx.triggered_id
    pressed = [c for c in ctx.triggered if c.get("value")]
    if not trigger or not pressed:
        raise PreventUpdate
    lang = current()
    user = auth.current_user()
    done = data.acknowledge_alarm(int(trigger["id"]), user.username, (note or "").strip()[:500],
                                  flask.request.remote_addr)
    return t("Alarm acknowledged." if done else "Alarm was not open.", lang), (refresh or 0) + 1


@dash.callback(
    Output(ids.ALARM_BULK_STATUS, "children"),
    Output(ids.ALARM_BULK_REFRESH, "data"),
    Input(ids.ALARM_ACK_SELECTED, "n_clicks"),
    State(ids.ALARM_SELECTED, "data"),
    State(ids.ALARM_NOTE, "value"),
    State(ids.ALARM_BULK_REFRESH, "data"),
    prevent_initial_call=True,
)
@auth.requires("acknowledge")
def acknowledge_selected(n_clicks: int | None, selected: list[int] | None, note: str | None,
                         refresh: int | None) -> tuple[str, int]:
    """Acknowledge every ticked open alarm with the note (each audited as one acknowledgement)."""
    if not n_clicks:
        raise PreventUpdate
    lang = current()
    user = auth.current_user()
    text = (note or "").strip()[:500]
    done = sum(data.acknowledge_alarm(int(i), user.username, text, flask.request.remote_addr)
               for i in sorted(set(selected or ())))
    return t("{n} alarms acknowledged.", lang).format(n=done), (refresh or 0) + 1
