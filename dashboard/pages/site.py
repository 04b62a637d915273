"""Site floor plan (``/site/<site_id>?building=<id>&storey=<id>&metric=<metric>``): a storey's rooms coloured
by a live metric.

Pick the building and the storey, and the metric (a measured one, standard compliance or
device health); rooms are coloured as the site's standards judge their values today (the
rule engine's rules, season and overrides: :mod:`twin.monitoring.site_standards`), and the legend
shows those rules' bounds and what the device markers mean. Every
``REFRESH_MS`` the values are read again and only what changed is sent to the browser (a
``dash.Patch`` of fill colours, labels and hovers; the zoom is kept by ``uirevision``), so
a 200-room storey stays smooth. A click anywhere in a room (or on a device) opens the room.

The pickers are kept in the URL's query (a new history entry per pick, without reloading the
page), so reload, back and a shared link show the same building, storey and metric.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode

import dash
from dash import Input, Output, Patch, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import data, ids
from dashboard.figures import (
    FLOORPLAN_METRICS,
    device_styles,
    floorplan_figure,
    floorplan_styles,
    legend_items,
    room_from_click,
    room_style,
)
from dashboard.figures.floorplan import hit_offset
from dashboard.figures.legend import device_legend_items, device_state_items
from dashboard.i18n import current, t
from dashboard.metrics import metric_label
from twin.monitoring.site_standards import SiteStandards
from twin.storage.plans import StoreyRow

REFRESH_MS = 1500
#: The metric shown when the URL names none.
DEFAULT_METRIC = "co2"
#: Plotly marker symbols as characters for the device legend.
SYMBOL_GLYPHS = {"circle": "●", "diamond": "◆", "diamond-wide": "◆", "square": "■"}

dash.register_page(__name__, path_template="/site/<site_id>", name="Site", title="Campus Twin – site", order=1)


def metric_options(lang: str) -> list[dict[str, str]]:
    """The metric picker's options: human names (:func:`dashboard.metrics.metric_label`), valued by metric id."""
    return [{"label": metric_label(m, lang), "value": m} for m in FLOORPLAN_METRICS]


# -- the URL ---------------------------------------------------------------------------------------------------


def query_string(building_id: int | None, storey_id: int | None, metric: str | None) -> str:
    """``?building=3&storey=12&metric=co2`` (what is None is left out)."""
    pairs = [(k, v) for k, v in (("building", building_id), ("storey", storey_id), ("metric", metric)) if v is not None]
    return f"?{urlencode(pairs)}" if pairs else ""


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_query(search: str | None) -> tuple[int | None, int | None, str | None]:
    """``(building id, storey id, metric)`` of a query string; None for each one missing or not valid."""
    query = parse_qs((search or "").lstrip("?"))
    building, storey, metric = (query.get(k, [None])[0] for k in ("building", "storey", "metric"))
    return _int(building), _int(storey), metric if metric in FLOORPLAN_METRICS else None


def choose(choices: Sequence[Mapping[str, Any]], building_id: Any = None, storey_id: Any = None,
           metric: str | None = None) -> tuple[int | None, int | None, str]:
    """What to show for a request: the storey if it is one of the site's, else the building's first storey,
    else the site's first; its building; the metric, else ``DEFAULT_METRIC``."""
    storey = next((s for s in choices if str(s["storey_id"]) == str(storey_id)), None) if storey_id is not None \
        else None
    if storey is None and building_id is not None:
        storey = next((s for s in choices if str(s["building_id"]) == str(building_id)), None)
    if storey is None and choices:
        storey = choices[0]
    metric = metric if metric in FLOORPLAN_METRICS else DEFAULT_METRIC
    return (storey["building_id"], storey["storey_id"], metric) if storey else (None, None, metric)


def storey_choices(storeys: Sequence[StoreyRow]) -> list[dict[str, Any]]:
    """What the page keeps of its storeys in the browser (``SITE_STOREYS``) to pick one of a building."""
    return [{"storey_id": s.storey_id, "storey": s.storey, "building_id": s.building_id, "building": s.building}
            for s in storeys]


def storey_options(choices: Sequence[Mapping[str, Any]], building_id: int | None = None) -> list[dict[str, Any]]:
    """Dropdown options of one building's storeys (all when ``building_id`` is None), valued by storey id,
    from :func:`storey_choices`."""
    return [{"label": s["storey"], "value": s["storey_id"]} for s in choices
            if building_id is None or s["building_id"] == building_id]


def building_options(storeys: Sequence[StoreyRow]) -> list[dict[str, Any]]:
    seen: dict[int, str] = {}
    for s in storeys:
        seen.setdefault(s.building_id, s.building)
    return [{"label": name, "value": key} for key, name in seen.items()]


def legend(metric: str, lang: str, standards: SiteStandards | None = None) -> list[Any]:
    """The metric's colours and, for a standard, each rule's bounds as ``standards`` give them."""
    items, source = legend_items(metric, lang, standards)
    chips = [html.Span([html.Span("■", style={"color": colour}, className="swatch"), label], className="legend-item")
             for colour, label in items]
    return [html.Div([html.B(metric_label(metric, lang)), *chips]
                     + ([html.Span(f"({source})", className="muted")] if source else []), className="legend-row"),
            device_legend(lang)]


def device_legend(lang: str) -> html.Div:
    """What the device markers' shapes (kinds) and colours (states) mean."""
    shapes = [html.Span([html.Span(SYMBOL_GLYPHS.get(symbol, "○"), className=f"swatch symbol-{symbol}"), label],
                        className="legend-item") for symbol, label in device_legend_items(lang)]
    colours = [html.Span([html.Span("●", style={"color": colour}, className="swatch"), label],
                         className="legend-item") for colour, label in device_state_items(lang)]
    return html.Div([html.B(t("Device markers", lang)), *shapes, html.Span("·", className="muted"), *colours],
                    className="legend-row device-legend")


def layout(site_id: str | None = None, storey: str | None = None, building: str | None = None,
           metric: str | None = None, **_: Any) -> html.Div:
    """The page for ``/site/<site_id>?building=…&storey=…&metric=…`` (each optional)."""
    lang = current()
    site = data.site(site_id) if site_id else None
    if site is None:
        return html.Div([html.H2(t("Unknown school", lang)), html.P(f"{site_id!r}"),
                         dcc.Link(t("All schools", lang), href=dash.get_relative_path("/"))])
    storeys = data.storeys(site_id)
    choices = storey_choices(storeys)
    building_id, storey_id, metric = choose(choices, building, storey, metric)
    return html.Div([
        dcc.Location(id=ids.SITE_NAV, refresh="callback-nav"),
        dcc.Location(id=ids.SITE_URL, refresh=False),
        dcc.Store(id=ids.SITE_STOREYS, data=choices),
        dcc.Store(id=ids.SITE_DRAWN),
        html.P([dcc.Link(t("Network", lang), href=dash.get_relative_path("/")), " › ", site.name],
               className="breadcrumb"),
        html.H2(site.name),
        html.Div([
            dcc.Dropdown(id=ids.SITE_BUILDING, options=building_options(storeys), value=building_id, clearable=False,
                         placeholder=t("no storeys", lang), className="picker picker-small"),
            dcc.Dropdown(id=ids.SITE_STOREY, options=storey_options(choices, building_id),
                         value=storey_id, clearable=False,
                         placeholder=t("no storeys", lang), className="picker picker-small"),
            dcc.Dropdown(id=ids.SITE_METRIC, options=metric_options(lang), value=metric, clearable=False,
                         className="picker picker-small"),
            dcc.Link(t("3D view of this building", lang), id=ids.SITE_3D_LINK,
                     href=dash.get_relative_path(f"/building/{building_id}") if building_id else "#",
                     className="button-link"),
        ], className="pickers"),
        html.Div(id=ids.SITE_LEGEND, className="legend"),
        dcc.Graph(id=ids.SITE_FLOORPLAN, config={"displaylogo": False, "scrollZoom": True}, className="floorplan"),
        html.P(t("Click anywhere in a room to open it; hover it for its values.", lang), className="muted"),
        dcc.Interval(id=ids.SITE_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.SITE_URL, "search"),
    Output(ids.SITE_BUILDING, "value"),
    Output(ids.SITE_STOREY, "options"),
    Output(ids.SITE_STOREY, "value"),
    Output(ids.SITE_METRIC, "value"),
    Output(ids.SITE_3D_LINK, "href"),
    Input(ids.SITE_URL, "search"),
    Input(ids.SITE_BUILDING, "value"),
    Input(ids.SITE_STOREY, "value"),
    Input(ids.SITE_METRIC, "value"),
    State(ids.SITE_STOREYS, "data"),
    prevent_initial_call=True,
)
def sync_url(search: str | None, building_id: int | None, storey_id: int | None, metric: str | None,
             storeys: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    """Keep the pickers and the URL's query together.

    A pick puts the building, storey and metric in the URL (a new history entry; a new building
    keeps the storey when it belongs to it, else takes its lowest). Back or forward changes the URL
    only: the pickers follow it.
    """
    storeys = storeys or []
    if dash.ctx.triggered_id == ids.SITE_URL:
        wanted = choose(storeys, *parse_query(search))
    elif dash.ctx.triggered_id == ids.SITE_BUILDING:
        in_building = any(s["storey_id"] == storey_id and s["building_id"] == building_id for s in storeys)
        wanted = choose(storeys, building_id, storey_id if in_building else None, metric)
    else:
        wanted = choose(storeys, None, storey_id, metric)
    shown = (building_id, storey_id, metric)
    new_building, new_storey, new_metric = wanted
    in_url = choose(storeys, *parse_query(search))
    return (
        no_update if in_url == wanted else query_string(*wanted),
        no_update if new_building == building_id else new_building,
        no_update if new_building == building_id else storey_options(storeys, new_building),
        no_update if new_storey == shown[1] else new_storey,
        no_update if new_metric == shown[2] else new_metric,
        dash.get_relative_path(f"/building/{new_building}") if new_building is not None else "#",
    )


# -- drawing and live refresh ---------------------------------------------------------------------------------


def fingerprint(style: Sequence[str]) -> int:
    """A short, process-independent digest of a room's style (what the browser keeps to diff refreshes)."""
    return zlib.crc32("\x1f".join(style).encode("utf-8"))


def draw(plan: data.StoreyPlan, values: Mapping[int, Mapping[str, float]], states: Sequence[str],
         storey_id: int, metric: str, lang: str, standards: SiteStandards | None = None
         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole figure of a storey, and what was drawn (kept in the browser to diff the next refresh)."""
    styles = floorplan_styles(plan.rooms, values, metric, lang, geometry=plan.geometry, standards=standards)
    figure = floorplan_figure(plan.rooms, values, metric, lang=lang, uirevision=storey_id, styles=styles,
                              geometry=plan.geometry, states=states)
    drawn = {
        "storey": storey_id, "metric": metric, "lang": lang, "plan": plan.stamp.isoformat(),
        "rooms": list(plan.geometry.room_ids), "names": list(plan.geometry.names), "uses": list(plan.geometry.uses),
        "label_names": list(plan.geometry.label_names), "hits": hit_offset(plan.geometry),
        "styles": [fingerprint(s) for s in styles],
        "device_styles": fingerprint(states),
    }
    return figure, drawn


def refresh_changes(drawn: Mapping[str, Any], values: Mapping[int, Mapping[str, float]], states: Sequence[str],
                    standards: SiteStandards | None = None
                    ) -> tuple[dict[int, tuple[str, str, str]], bool, dict[str, Any]]:
    """What changed since ``drawn``: ``(room index -> new style, whether device states changed, new drawn)``.

    ``drawn`` was drawn from the same plan (storey and BIM stamp), so the rooms and devices are the same;
    a change of the standards (an override, a new season) changes the styles it touches.
    """
    lang, metric = drawn["lang"], drawn["metric"]
    changed: dict[int, tuple[str, str, str]] = {}
    prints = []
    for i, (room_id, name, use, shown, old) in enumerate(zip(drawn["rooms"], drawn["names"], drawn["uses"],
                                                             drawn["label_names"], drawn["styles"], strict=True)):
        style = room_style(name, values.get(room_id, {}), metric, lang, use=use, standards=standards,
                           label_name=shown)
        prints.append(fingerprint(style))
        if prints[-1] != old:
            changed[i] = style
    device_print = fingerprint(states)
    return changed, device_print != drawn["device_styles"], {**drawn, "styles": prints, "device_styles": device_print}


def to_patch(changed: Mapping[int, Sequence[str]], devices: tuple[list[str], list[str]] | None, rooms: int,
             hits: int) -> Patch:
    """A figure patch setting only the changed rooms' colour, hover and label (and the device markers).

    ``rooms`` is the number of room traces: the labels trace comes next, then the devices;
    ``devices`` their new ``(colours, hovers)``, or None when unchanged; ``hits`` the index of room 0's
    hit trace (which carries its hover; :func:`dashboard.figures.floorplan.hit_offset`).
    """
    patch = Patch()
    for i, (colour, label, hover) in changed.items():
        patch["data"][i]["fillcolor"] = colour
        patch["data"][hits + i]["text"] = hover
        patch["data"][rooms]["text"][i] = label  # the labels trace follows the rooms
    if devices is not None:
        patch["data"][rooms + 1]["marker"]["color"] = devices[0]
        patch["data"][rooms + 1]["text"] = devices[1]
    return patch


@dash.callback(
    Output(ids.SITE_LEGEND, "children"),
    Input(ids.SITE_METRIC, "value"),
    Input(ids.SITE_STOREY, "value"),
)
def update_legend(metric: str, storey_id: int | None = None) -> list[Any]:
    """The chosen metric's colours and, for a standard, the bounds of the storey's site's rules today."""
    return legend(metric, current(), data.storey_standards(int(storey_id)) if storey_id is not None else None)


@dash.callback(
    Output(ids.SITE_FLOORPLAN, "figure"),
    Output(ids.SITE_DRAWN, "data"),
    Input(ids.SITE_STOREY, "value"),
    Input(ids.SITE_METRIC, "value"),
    Input(ids.SITE_INTERVAL, "n_intervals"),
    State(ids.SITE_DRAWN, "data"),
)
def update_floorplan(storey_id: int | None, metric: str, _n: int | None, drawn: dict[str, Any] | None
                     ) -> tuple[Any, Any]:
    """Draw the storey when the storey, metric or its BIM changes; on a tick, patch only what changed.

    Rooms are coloured as the site's standards of today judge them (:mod:`twin.monitoring.site_standards`).
    The outputs are plain JSON (dicts, lists, numeric arrays) so that Dash's encoder takes
    orjson's fast path: a 122-room storey is about 110–125 kB with its hit points.
    """
    lang = current()
    plan, values, states, standards = (data.floorplan(int(storey_id)) if storey_id is not None
                                       else (None, {}, [], None))
    if plan is None:
        return floorplan_figure([], {}, metric, lang=lang), None
    storey_id = int(storey_id)
    if drawn is not None and (drawn["storey"], drawn["metric"], drawn["lang"], drawn.get("plan")) == (
            storey_id, metric, lang, plan.stamp.isoformat()) and "hits" in drawn:
        changed, devices_changed, new_drawn = refresh_changes(drawn, values, states, standards)
        if not changed and not devices_changed:
            return no_update, no_update
        devices = device_styles(plan.geometry, states, lang) if devices_changed else None
        return to_patch(changed, devices, len(drawn["rooms"]), drawn["hits"]), new_drawn
    return draw(plan, values, states, storey_id, metric, lang, standards)


@dash.callback(
    Output(ids.SITE_NAV, "href"),
    Input(ids.SITE_FLOORPLAN, "clickData"),
    prevent_initial_call=True,
)
def open_room(click_data: dict[str, Any] | None) -> str:
    """Go to the clicked room's page (its whole address: the plan's query is not the room's)."""
    room_id = room_from_click(click_data)
    if room_id is None:
        raise PreventUpdate
    return dash.get_relative_path(f"/room/{room_id}")
