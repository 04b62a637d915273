"""Site floor plan (``/site/<site_id>``): a storey's rooms coloured by a live metric.

The figure refreshes every ``REFRESH_MS`` without a page reload; clicking a room opens
``/room/<room_id>``.
"""

from __future__ import annotations

from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import data, ids
from dashboard.figures import FLOORPLAN_METRICS, floorplan_figure, room_from_click

REFRESH_MS = 2000

dash.register_page(__name__, path_template="/site/<site_id>", name="Site", title="Campus Twin – site", order=1)


def storey_options(storeys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dropdown options labelled "building – storey", valued by storey id."""
    return [{"label": f"{s['building']} – {s['storey']}", "value": s["storey_id"]} for s in storeys]


def layout(site_id: str | None = None, **_: Any) -> html.Div:
    site = data.site(site_id) if site_id else None
    if site is None:
        return html.Div([html.H2("Unknown school"), html.P(f"No site {site_id!r}."),
                         dcc.Link("All schools", href=dash.get_relative_path("/"))])
    options = storey_options(data.storeys(site_id))
    return html.Div([
        dcc.Location(id=ids.SITE_NAV, refresh="callback-nav"),
        html.H2(site["name"]),
        html.Div([
            dcc.Dropdown(id=ids.SITE_STOREY, options=options, value=options[0]["value"] if options else None,
                         clearable=False, placeholder="no storeys", className="picker"),
            dcc.Dropdown(id=ids.SITE_METRIC, options=list(FLOORPLAN_METRICS), value="co2", clearable=False,
                         className="picker"),
        ], className="pickers"),
        dcc.Graph(id=ids.SITE_FLOORPLAN, config={"displaylogo": False}, className="floorplan"),
        dcc.Interval(id=ids.SITE_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.SITE_FLOORPLAN, "figure"),
    Input(ids.SITE_STOREY, "value"),
    Input(ids.SITE_METRIC, "value"),
    Input(ids.SITE_INTERVAL, "n_intervals"),
)
def update_floorplan(storey_id: int | None, metric: str, _n: int | None) -> go.Figure:
    """Redraw the storey with the latest values."""
    if storey_id is None:
        return floorplan_figure([], {}, metric)
    rooms, values = data.floorplan(int(storey_id))
    return floorplan_figure(rooms, values, metric, uirevision=storey_id)


@dash.callback(
    Output(ids.SITE_NAV, "pathname"),
    Input(ids.SITE_FLOORPLAN, "clickData"),
    prevent_initial_call=True,
)
def open_room(click_data: dict[str, Any] | None) -> str:
    """Go to the clicked room's page."""
    room_id = room_from_click(click_data)
    if room_id is None:
        raise PreventUpdate
    return dash.get_relative_path(f"/room/{room_id}")
