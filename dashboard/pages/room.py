"""Room (``/room/<room_id>``): where it is, its live values, and the last hour of a metric."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from dashboard import data, ids
from dashboard.figures import FLOORPLAN_METRICS, colour_for, format_value, series_figure, unit_of

REFRESH_MS = 5000

dash.register_page(__name__, path_template="/room/<room_id>", name="Room", title="Campus Twin – room", order=2)


def parse_room_id(room_id: str | None) -> int | None:
    try:
        return int(room_id) if room_id is not None else None
    except ValueError:
        return None


def live_table(rows: list[dict[str, Any]]) -> dbc.Table | html.P:
    """Latest value per device and metric, each value cell coloured by its bucket."""
    if not rows:
        return html.P("No live values yet.")
    head = html.Thead(html.Tr([html.Th(h) for h in ("device", "kind", "metric", "value", "time (UTC)")]))
    body = html.Tbody([
        html.Tr([
            html.Td(r["device_id"]), html.Td(r["kind"]), html.Td(r["metric"]),
            html.Td([html.Span("■ ", style={"color": colour_for(r["metric"], r["value"])}),
                     format_value(r["value"], r["unit"])], className="value"),
            html.Td(r["ts"].strftime("%Y-%m-%d %H:%M:%S")),
        ])
        for r in rows
    ])
    return dbc.Table([head, body], className="table")


def layout(room_id: str | None = None, **_: Any) -> html.Div:
    key = parse_room_id(room_id)
    room = data.room(key) if key is not None else None
    if room is None:
        return html.Div([html.H2("Unknown room"), html.P(f"No room {room_id!r}."),
                         dcc.Link("All schools", href=dash.get_relative_path("/"))])
    where = [
        dcc.Link(room["site_name"], href=dash.get_relative_path(f"/site/{room['site_id']}")),
        f" › {room['building']} › {room['storey']}",
    ]
    return html.Div([
        dcc.Store(id=ids.ROOM_ID, data=key),
        html.H2(room["name"] + (f" – {room['long_name']}" if room["long_name"] else "")),
        html.P(where, className="breadcrumb"),
        html.P(f"{room['use']}" + (f", {room['area_m2']:.0f} m²" if room["area_m2"] else ""), className="muted"),
        html.H3("Live values"),
        html.Div(id=ids.ROOM_TABLE),
        html.H3("Last hour"),
        dcc.Dropdown(id=ids.ROOM_METRIC, options=list(FLOORPLAN_METRICS), value="co2", clearable=False,
                     className="picker"),
        dcc.Graph(id=ids.ROOM_SERIES, config={"displaylogo": False}),
        dcc.Interval(id=ids.ROOM_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.ROOM_TABLE, "children"),
    Output(ids.ROOM_SERIES, "figure"),
    Input(ids.ROOM_METRIC, "value"),
    Input(ids.ROOM_INTERVAL, "n_intervals"),
    State(ids.ROOM_ID, "data"),
)
def update_room(metric: str, _n: int | None, room_id: int) -> tuple[Any, go.Figure]:
    """Refresh the live table and the one-hour chart."""
    return live_table(data.room_live(room_id)), series_figure(data.room_series(room_id, metric), metric,
                                                              unit_of(metric))
