"""Alarms (``/alarms``): filter by school, severity and state; acknowledge with a note; the history.

Open alarms have an "Acknowledge" button; the note typed above the table goes with it.
Acknowledged and closed alarms (state filter "any", "acknowledged" or "closed") are the
history, with who acknowledged them, when, and the note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import auth, data, ids
from dashboard.i18n import current, t
from twin.storage.alarms import SEVERITIES, STATES, AlarmRow

REFRESH_MS = 10_000
ANY = "any"

dash.register_page(__name__, path="/alarms", name="Alarms", title="Campus Twin – alarms", order=4)


def _options(values: Sequence[str], lang: str) -> list[dict[str, str]]:
    return [{"label": t(ANY, lang), "value": ANY}] + [{"label": t(v, lang), "value": v} for v in values]


def site_options(lang: str) -> list[dict[str, str]]:
    return [{"label": t(ANY, lang), "value": ANY}] + [{"label": s.name, "value": s.site_id}
                                                     for s in data.sites()]


def alarms_table(rows: Sequence[AlarmRow], lang: str, *, can_ack: bool = True) -> Any:
    """The alarms; open ones get an "Acknowledge" button when the reader may acknowledge."""
    if not rows:
        return html.P(t("No alarms match.", lang), className="muted")
    headers = ("raised", "known", "School", "room", "device", "rule", "severity", "state", "message", "acknowledged by",
               "note", "cleared", "")
    body = []
    for a in rows:
        action: Any = html.Button(t("Acknowledge", lang), id={"type": ids.ALARM_ACK, "id": a.id},
                                  className="button button-small") if a.state == "open" and can_ack else ""
        acked = f"{a.acked_by} {a.acked_at:%Y-%m-%d %H:%M}" if a.acked_at else ""
        room: Any = dcc.Link(a.room, href=dash.get_relative_path(f"/room/{a.room_id}")) if a.room_id else ""
        body.append(html.Tr([
            html.Td(f"{a.raised_at:%Y-%m-%d %H:%M}"), html.Td(f"{a.known_at:%H:%M}"), html.Td(a.site_name),
            html.Td(room),
            html.Td(a.device_id or ""), html.Td(a.rule),
            html.Td(html.Span(t(a.severity, lang), className=f"chip chip-{a.severity}")),
            html.Td(html.Span(t(a.state, lang), className=f"chip chip-state-{a.state}")),
            html.Td(a.message), html.Td(acked), html.Td(a.note or ""),
            html.Td(f"{a.cleared_at:%Y-%m-%d %H:%M}" if a.cleared_at else ""), html.Td(action),
        ], className=f"alarm-row alarm-{a.state}"))
    return dbc.Table([html.Thead(html.Tr([html.Th(t(h, lang) if h else "") for h in headers])), html.Tbody(body)],
                     className="table")


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
        html.Div(id=ids.ALARM_STATUS, className="muted"),
        html.Div(id=ids.ALARM_TABLE),
        dcc.Store(id=ids.ALARM_REFRESH, data=0),
        dcc.Interval(id=ids.ALARM_INTERVAL, interval=REFRESH_MS),
    ])


def _filter(value: str | None) -> str | None:
    return None if value in (None, ANY) else value


@dash.callback(
    Output(ids.ALARM_TABLE, "children"),
    Input(ids.ALARM_SITE, "value"),
    Input(ids.ALARM_SEVERITY, "value"),
    Input(ids.ALARM_STATE, "value"),
    Input(ids.ALARM_REFRESH, "data"),
    Input(ids.ALARM_INTERVAL, "n_intervals"),
)
def update_alarms(site_id: str, severity: str, state: str, _refresh: int, _n: int | None) -> Any:
    """The alarms matching the filters, newest first."""
    return alarms_table(data.alarm_list(_filter(site_id), _filter(severity), _filter(state)), current(),
                        can_ack=auth.can("acknowledge"))


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
