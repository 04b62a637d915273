"""A building in 3D (``/building/<building_id>``): storeys stacked, rooms extruded from their footprints.

Coloured by the same metrics as the floor plan; refreshed every ``REFRESH_MS`` with the
camera kept (``uirevision``).
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from dashboard import data, ids
from dashboard.figures import building_figure
from dashboard.i18n import current, t
from dashboard.pages.site import legend, metric_options

REFRESH_MS = 5000

dash.register_page(__name__, path_template="/building/<building_id>", name="Building",
                   title="Campus Twin – building", order=2)


def layout(building_id: str | None = None, **_: Any) -> html.Div:
    lang = current()
    try:
        key = int(building_id) if building_id is not None else None
    except ValueError:
        key = None
    found = data.building(key) if key is not None else None
    if found is None:
        return html.Div([html.H2(t("Unknown building", lang)), html.P(f"{building_id!r}"),
                         dcc.Link(t("All schools", lang), href=dash.get_relative_path("/"))])
    return html.Div([
        dcc.Store(id=ids.BUILDING_ID, data=key),
        html.P([dcc.Link(t("Network", lang), href=dash.get_relative_path("/")), " › ",
                dcc.Link(found.site_name, href=dash.get_relative_path(f"/site/{found.site_id}")), " › ",
                found.name], className="breadcrumb"),
        html.H2(f"{found.name} · {t('3D view', lang)}"),
        html.Div([dcc.Dropdown(id=ids.BUILDING_METRIC, options=metric_options(lang), value="co2", clearable=False,
                               className="picker picker-small")], className="pickers"),
        html.Div(id=ids.BUILDING_LEGEND, className="legend"),
        dcc.Graph(id=ids.BUILDING_FIGURE, config={"displaylogo": False}, className="building3d"),
        dcc.Interval(id=ids.BUILDING_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.BUILDING_FIGURE, "figure"),
    Output(ids.BUILDING_LEGEND, "children"),
    Input(ids.BUILDING_METRIC, "value"),
    Input(ids.BUILDING_INTERVAL, "n_intervals"),
    State(ids.BUILDING_ID, "data"),
)
def update_building(metric: str, _n: int | None, building_id: int) -> tuple[dict[str, Any], Any]:
    """The building's rooms in 3D with the latest values."""
    lang = current()
    rooms, values, standards = data.building_plan(building_id)
    return (building_figure(rooms, values, metric, lang=lang, uirevision=building_id, standards=standards),
            legend(metric, lang, standards))
