"""Network overview (``/``): the 1+N network at a glance.

KPI tiles for the whole network (devices online, open alarms, coverage against the 100 %
targets), a map of the schools drawn from their georeference (no tiles: offline), the
cloud classes in progress, and one card per school (headquarters first). Refreshed every
``REFRESH_MS``; a click on a card or a map marker opens the school.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import data, ids
from dashboard.figures import DEVICE_HEALTH, colour_for, online_share, site_map_figure
from dashboard.i18n import current, t
from dashboard.sessions import group_sessions
from twin.storage.devices import CloudPanel
from twin.storage.sites import SiteSummary

REFRESH_MS = 10_000
#: (KPI key, English label) in the order shown.
COVERAGE = (("iot_coverage", "IoT coverage"), ("lighting_coverage", "smart-lighting coverage"),
            ("panel_coverage", "interactive-panel coverage"), ("lighting_compliance", "lighting compliance"),
            ("data_completeness", "data completeness"))
PANEL_STATES = {0: "off", 1: "standby", 2: "on"}
INPUT_SOURCES = {0: "none", 1: "built-in PC", 2: "HDMI", 3: "cloud-class stream"}

dash.register_page(__name__, path="/", name="Network", title="Campus Twin – network", order=0)


def percent(value: float | None) -> str:
    """A fraction as "75%", "–" for None."""
    return "–" if value is None else f"{100 * value:.0f}%"


def online_percent(site: SiteSummary) -> str:
    """Devices online as a percentage text, "–" for a site without devices."""
    share = online_share(site)
    return "–" if share is None else f"{share:.0f}%"


def kpi_bar(value: float | None) -> html.Div:
    """A progress bar against the 100 % target, coloured like the device-health buckets."""
    width = 0.0 if value is None else max(0.0, min(100.0, 100 * value))
    colour = colour_for(DEVICE_HEALTH, None if value is None else 100 * value)
    return html.Div(html.Div(className="kpi-fill", style={"width": f"{width:.0f}%", "background": colour}),
                    className="kpi-bar", title="target 100%")


def kpi_tile(label: str, value: str, fraction: float | None = None, *, lang: str) -> html.Div:
    children: list[Any] = [html.Div(t(label, lang), className="kpi-label"), html.Div(value, className="kpi-value")]
    if fraction is not None or label in {lab for _, lab in COVERAGE} or label == "devices online":
        children += [kpi_bar(fraction), html.Div(f"{t('target', lang)} 100%", className="kpi-target")]
    return html.Div(children, className="kpi")


def network_tiles(net: Mapping[str, Any], lang: str) -> list[html.Div]:
    online = net["online"] / net["devices"] if net.get("devices") else None
    return [
        kpi_tile("Schools", str(net["schools"]), lang=lang),
        kpi_tile("devices online", percent(online), online, lang=lang),
        kpi_tile("open alarms", str(net["open_alarms"]), lang=lang),
        *(kpi_tile(label, percent(net.get(key)), net.get(key), lang=lang) for key, label in COVERAGE),
    ]


def site_card(view: data.SiteView, lang: str = "en") -> dcc.Link:
    """A card with a school's counts and coverage, linking to its floor plans."""
    site = view.site
    role = "headquarters" if site.role == "headquarters" else "member"
    facts = [("rooms", site.rooms), ("devices", site.devices), ("online", online_percent(site)),
             ("open alarms", site.open_alarms)]
    coverage = [html.Div([html.Span(t(label, lang), className="cov-label"),
                          html.Span(percent(view.kpis.get(key)), className="cov-value"), kpi_bar(view.kpis.get(key))],
                         className="cov") for key, label in COVERAGE]
    body = dbc.CardBody([
        html.H3(site.name, className="card-title"),
        html.Div(t(role, lang), className=f"badge badge-{role}"),
        html.Dl([item for label, value in facts for item in (html.Dt(t(label, lang)), html.Dd(str(value)))],
                className="facts"),
        html.Div(coverage, className="coverage"),
    ])
    return dcc.Link(dbc.Card(body, className=f"card site-card site-{role}"),
                    href=dash.get_relative_path(f"/site/{site.site_id}"), className="card-link")


def _panel_text(p: CloudPanel, lang: str) -> str:
    state = PANEL_STATES.get(int(p.panel_state), "unknown") if p.panel_state is not None else "unknown"
    source = INPUT_SOURCES.get(int(p.input_source), "") if p.input_source is not None else ""
    return f"{t('panel', lang)} {t(state, lang)}" + (f", {t(source, lang)}" if source else "")


def _room_link(p: CloudPanel) -> Any:
    text = f"{p.site_name} · {p.room or p.device_id}"
    return dcc.Link(text, href=dash.get_relative_path(f"/room/{p.room_id}")) if p.room_id else text


def sessions_view(panels: Sequence[CloudPanel], lang: str) -> Any:
    groups = group_sessions(panels)
    if not groups:
        return html.P(t("No cloud class in progress.", lang), className="muted")
    items = []
    for g in groups:
        main = g["main"]
        head = [html.Span(f"{t('session', lang)} {g['session']}", className="session-id")]
        if main is not None:
            head += [html.Span(t("main classroom", lang) + ": ", className="muted"), _room_link(main),
                     html.Span(f" ({_panel_text(main, lang)})", className="muted")]
        aux = html.Ul([html.Li([_room_link(p), html.Span(f" ({_panel_text(p, lang)})", className="muted")])
                       for p in g["aux"]])
        items.append(html.Div([html.Div(head), html.Div(t("auxiliary classrooms", lang) + f": {len(g['aux'])}",
                                                        className="muted"), aux], className="session"))
    return html.Div(items)


def layout(**_: Any) -> html.Div:
    lang = current()
    return html.Div([
        dcc.Location(id=ids.OVERVIEW_NAV, refresh="callback-nav"),
        html.H2(t("Network", lang) + f" · {t('whole network', lang)}"),
        html.Div(id=ids.OVERVIEW_KPIS, className="kpi-row"),
        html.Div([
            html.Div([html.H3(t("Network map", lang)),
                      dcc.Graph(id=ids.OVERVIEW_MAP, config={"displaylogo": False, "scrollZoom": True},
                                className="network-map"),
                      html.P(t("Click a school to open it.", lang), className="muted")], className="panel"),
            html.Div([html.H3(t("Cloud classes in progress", lang)), html.Div(id=ids.OVERVIEW_SESSIONS)],
                     className="panel"),
        ], className="two-columns"),
        html.H3(t("Schools", lang)),
        html.Div(id=ids.OVERVIEW_CARDS, className="card-grid"),
        dcc.Interval(id=ids.OVERVIEW_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.OVERVIEW_KPIS, "children"),
    Output(ids.OVERVIEW_CARDS, "children"),
    Output(ids.OVERVIEW_MAP, "figure"),
    Output(ids.OVERVIEW_SESSIONS, "children"),
    Input(ids.OVERVIEW_INTERVAL, "n_intervals"),
)
def update_overview(_n: int | None) -> tuple[Any, Any, Any, Any]:
    """KPI tiles, school cards, map and cloud classes, from the database now."""
    lang = current()
    sites, net = data.network()
    cards = [site_card(s, lang) for s in sites] or [html.P(t("No schools yet: load a BIM model first.", lang))]
    figure = site_map_figure([s.site for s in sites], lang)
    figure["layout"]["uirevision"] = "map"
    return network_tiles(net, lang), cards, figure, sessions_view(data.cloud_panels(), lang)


@dash.callback(Output(ids.OVERVIEW_NAV, "pathname"), Input(ids.OVERVIEW_MAP, "clickData"), prevent_initial_call=True)
def open_site(click_data: dict[str, Any] | None) -> str:
    """Open the school whose marker was clicked."""
    points = (click_data or {}).get("points") or []
    site_id = points[0].get("customdata") if points else None
    if not isinstance(site_id, str):
        raise PreventUpdate
    return dash.get_relative_path(f"/site/{site_id}")
