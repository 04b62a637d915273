"""Network overview (``/``): the education bureau's command centre for the 1+N network.

KPI tiles for the whole network (schools, devices online, open alarms by severity, coverage and the
daily KPIs against the 100 % targets, each with a line saying what it counts), the schools ranked by
what needs attention with a one-line reason (:func:`dashboard.figures.network.rank`), a map fitted to
the schools (a far-away site listed apart), a school x KPI matrix coloured against target in which every
"–" says why, and the cloud classes in progress. Sites without devices are no schools: they are counted
apart. Refreshed every ``REFRESH_MS``; a click on a ranked school, a matrix row or a map marker opens it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import data, ids
from dashboard.figures import network as net_fig
from dashboard.figures.network import KPI_NAMES, Ranked, kpi_status, missing_code, missing_text, percent
from dashboard.i18n import current, t
from dashboard.localtime import fmt_time, zone_label
from dashboard.sessions import group_sessions
from twin.storage.devices import CloudPanel

REFRESH_MS = 10_000
#: (KPI key, English label) of the fraction KPIs in the order shown.
COVERAGE = tuple(KPI_NAMES.items())
#: What each tile and matrix column counts, in one line (English keys of ``dashboard.i18n``).
HELP = {
    "schools": "sites with devices",
    "devices_online": "devices whose last status is online, of all devices",
    "open_alarms": "alarms not closed, by severity",
    "iot_coverage": "classrooms and labs with an environment sensor reporting (15 min)",
    "lighting_coverage": "classrooms whose luminaires all report (15 min)",
    "panel_coverage": "classrooms with an interactive panel reporting (15 min)",
    "lighting_compliance": "classrooms meeting GB 7793 in lessons, of those measured",
    "data_completeness": "messages received of those expected",
}
MATRIX_COLUMNS = (("devices_online", "devices online"), ("open_alarms", "open alarms"), *COVERAGE)
PANEL_STATES = {0: "off", 1: "standby", 2: "on"}
INPUT_SOURCES = {0: "none", 1: "built-in PC", 2: "HDMI", 3: "cloud-class stream"}

dash.register_page(__name__, path="/", name="Network", title="Campus Twin – network", order=0)


def _count(n: int, one: str, many: str, lang: str) -> str:
    return t(one if n == 1 else many, lang).format(n=n)


def _help(key: str, lang: str, daily: Mapping[str, Any] | None = None) -> str:
    text = t(HELP[key], lang)
    stored = (daily or {}).get(key)
    return f"{text} ({stored.day.isoformat()})" if stored is not None else text


def kpi_bar(value: float | None) -> html.Div:
    """A progress bar against the 100 % target, coloured by :func:`kpi_status`."""
    width = 0.0 if value is None else max(0.0, min(100.0, 100 * value))
    return html.Div(html.Div(className=f"kpi-fill fill-{kpi_status(value)}", style={"width": f"{width:.0f}%"}),
                    className="kpi-bar")


def kpi_tile(label: str, value: str, help_text: str, *, lang: str, fraction: float | None = None,
             bar: bool = False, status: str = "", title: str = "") -> html.Div:
    """A tile: label, value, a bar against the target for fractions, and one line saying what it counts."""
    children: list[Any] = [html.Div(t(label, lang), className="kpi-label"), html.Div(value, className="kpi-value")]
    if bar:
        children += [kpi_bar(fraction), html.Div(f"{t('target', lang)} 100%", className="kpi-target")]
    children.append(html.Div(help_text, className="kpi-help"))
    return html.Div(children, className=f"kpi kpi-{status or 'plain'}", title=title or help_text)


def network_tiles(net: Mapping[str, Any], lang: str) -> list[html.Div]:
    """The eight tiles of the whole network (a "–" says why in its help line and tooltip)."""
    online = net["online"] / net["devices"] if net.get("devices") else None
    bare = len(net.get("without_devices", ()))
    schools_help = t(HELP["schools"], lang) + (
        " · " + _count(bare, "{n} site without devices", "{n} sites without devices", lang) if bare else "")
    a = net.get("alarms", {})
    alarms_help = " · ".join(f"{a.get(sev, 0)} {t(sev, lang)}" for sev in data.SEVERITIES)
    tiles = [
        kpi_tile("Schools", str(net["schools"]), schools_help, lang=lang),
        kpi_tile("devices online", percent(online),
                 missing_text(missing_code("devices_online", net, {}, net.get("devices")), lang, short=True)
                 or _help("devices_online", lang), lang=lang, fraction=online, bar=True, status=kpi_status(online)),
        kpi_tile("open alarms", str(net["open_alarms"]), alarms_help, lang=lang,
                 status="bad" if a.get("critical") else "near" if a.get("warning") else "good",
                 title=t(HELP["open_alarms"], lang) + ": " + alarms_help),
    ]
    daily = net.get("daily", {})
    for key, label in COVERAGE:
        value = net.get(key)
        why = missing_code(key, net, daily)
        tiles.append(kpi_tile(label, percent(value), missing_text(why, lang, short=True) or _help(key, lang, daily),
                              lang=lang, fraction=value, bar=True, status=kpi_status(value),
                              title=missing_text(why, lang) or _help(key, lang, daily)))
    return tiles


def _site_link(site_id: str) -> str:
    return dash.get_relative_path(f"/site/{site_id}")


def ranking_view(ranked: Sequence[Ranked], without: Sequence[Any], lang: str) -> list[Any]:
    """The schools, most in need of attention first, each with its one-line reason; sites without devices apart."""
    if not ranked and not without:
        return [html.P(t("No schools yet: load a BIM model first.", lang))]
    items = []
    for i, r in enumerate(ranked, 1):
        site = r.view.site
        role = "headquarters" if site.role == "headquarters" else "member"
        items.append(dcc.Link([
            html.Span(str(i), className=f"rank-no level-{r.level}"),
            html.Div([html.Span(site.name, className="card-title"), " ",
                      html.Span(t(role, lang), className=f"badge badge-{role}"),
                      html.Div(net_fig.reason_line(r.reasons, lang), className="rank-reason",
                               title=" · ".join(net_fig.reason_text(x, lang) for x in r.reasons))],
                     className="rank-body"),
        ], href=_site_link(site.site_id), className=f"card-link rank-item rank-{r.level}"))
    out: list[Any] = [html.Div(items, className="rank-list")]
    if without:
        out.append(html.P([
            _count(len(without), "{n} site without devices", "{n} sites without devices", lang)
            + " (" + t("not counted as schools", lang) + "): ",
            *[x for i, v in enumerate(without) for x in ((", " if i else ""), dcc.Link(
                v.site.name, href=_site_link(v.site.site_id)))],
        ], className="muted without-devices"))
    return out


def _cell(value: str, status: str, note: str = "", title: str = "") -> html.Td:
    children: list[Any] = [html.Div(value, className="cell-value")]
    if note:
        children.append(html.Small(note, className="cell-note"))
    return html.Td(children, className=f"cell cell-{status}", title=title or note)


def _device_note(devices: int, online: int, offline: int, lang: str) -> str:
    silent = max(0, devices - online - offline)
    notes = [_count(offline, "{n} device offline", "{n} devices offline", lang)] if offline else []
    if silent:
        notes.append(_count(silent, "{n} device without status", "{n} devices without status", lang))
    return " · ".join(notes)


def _row_cells(name: Any, kpis: Mapping[str, Any], daily: Mapping[str, Any], devices: int, online: int, offline: int,
               alarms: Mapping[str, int], open_alarms: int, lang: str) -> list[Any]:
    share = online / devices if devices else None
    why = missing_code("devices_online", kpis, daily, devices)
    cells: list[Any] = [html.Th(name, scope="row"),
                        _cell(percent(share), kpi_status(share),
                              missing_text(why, lang, short=True) or _device_note(devices, online, offline, lang),
                              missing_text(why, lang) or t(HELP["devices_online"], lang))]
    severe = [f"{alarms.get(sev, 0)} {t(sev, lang)}" for sev in data.SEVERITIES if alarms.get(sev)]
    cells.append(_cell(str(open_alarms), "bad" if alarms.get("critical") else "near" if alarms.get("warning")
                       else "good", " · ".join(severe)))
    for key, _ in COVERAGE:
        value = kpis.get(key)
        found = missing_code(key, kpis, daily)
        stored = daily.get(key)
        note = missing_text(found, lang, short=True) or (
            f"{stored.numerator:g}/{stored.denominator:g}" if stored is not None and key in net_fig.DAILY else "")
        cells.append(_cell(percent(value), kpi_status(value), note, missing_text(found, lang) or _help(key, lang, daily)))
    return cells


def matrix_view(ranked: Sequence[Ranked], net: Mapping[str, Any], lang: str) -> list[Any]:
    """Schools x KPIs, in the ranking's order, then the whole network; cells coloured against target."""
    head = html.Thead(html.Tr([html.Th(t("School", lang))] + [
        html.Th(t(label, lang), title=t(HELP[key], lang)) for key, label in MATRIX_COLUMNS]))
    rows = []
    for r in ranked:
        v = r.view
        rows.append(html.Tr(_row_cells(dcc.Link(v.site.name, href=_site_link(v.site.site_id)), v.kpis, v.daily,
                                       v.site.devices, v.site.online, v.offline, v.alarms, v.site.open_alarms, lang)))
    rows.append(html.Tr(_row_cells(t("whole network", lang), net, net.get("daily", {}), net.get("devices", 0),
                                   net.get("online", 0), net.get("offline", 0), net.get("alarms", {}),
                                   net.get("open_alarms", 0), lang), className="network-row"))
    legend = html.P([html.Span(t("at target (100%)", lang), className="cell-good swatch-cell"),
                     html.Span(t("within 10 points below", lang), className="cell-near swatch-cell"),
                     html.Span(t("further below", lang), className="cell-bad swatch-cell"),
                     html.Span(t("– no value: the cell says why", lang), className="cell-none swatch-cell")],
                    className="matrix-legend")
    return [html.Table([head, html.Tbody(rows)], className="table matrix"), legend]


def outside_view(views: Sequence[data.SiteView], lang: str) -> list[Any]:
    """Schools not drawn: far from the network (with where they are) or without coordinates."""
    schools = [v.site for v in views if v.site.devices]
    _, far = net_fig.split_far(schools)
    unplaced = [s for s in schools if s.latitude is None or s.longitude is None]
    out: list[Any] = []
    if far:
        out.append(html.Div([t("Outside the map", lang) + ": ", *[x for i, (s, d) in enumerate(far) for x in (
            ", " if i else "", dcc.Link(s.name, href=_site_link(s.site_id)),
            f" ({s.latitude:.2f}°N, {s.longitude:.2f}°E, " + t("{km} km from the network", lang).format(
                km=f"{d:,.0f}") + ")")]]))
    if unplaced:
        out.append(html.Div([t("No coordinates in the BIM model", lang) + ": ", *[x for i, s in enumerate(unplaced)
                            for x in (", " if i else "", dcc.Link(s.name, href=_site_link(s.site_id)))]]))
    return out


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
        html.Div([html.H2(t("Network", lang) + f" · {t('whole network', lang)}"),
                  html.Span(id=ids.OVERVIEW_ASOF, className="muted")], className="overview-head"),
        html.Div(id=ids.OVERVIEW_KPIS, className="kpi-grid"),
        html.Div([
            html.Div([html.H3(t("Needs attention", lang)),
                      html.P(t("Ranked by critical alarms, then devices offline, warnings, KPIs below target, "
                               "devices without status, info alarms.", lang), className="muted small"),
                      html.Div(id=ids.OVERVIEW_CARDS)], className="panel ranking"),
            html.Div([html.H3(t("Network map", lang)),
                      dcc.Graph(id=ids.OVERVIEW_MAP, config={"displaylogo": False, "scrollZoom": True},
                                className="network-map"),
                      html.Div(id=ids.OVERVIEW_OUTSIDE, className="muted outside-map"),
                      html.P(t("Numbers are the ranking; names on hover. Click a school to open it.", lang),
                             className="muted small")], className="panel"),
        ], className="overview-top"),
        html.Div([html.H3(t("Schools × KPIs", lang)), html.Div(id=ids.OVERVIEW_MATRIX)], className="panel matrix-panel"),
        html.Div([html.H3(t("Cloud classes in progress", lang)), html.Div(id=ids.OVERVIEW_SESSIONS)],
                 className="panel"),
        dcc.Interval(id=ids.OVERVIEW_INTERVAL, interval=REFRESH_MS),
    ])


@dash.callback(
    Output(ids.OVERVIEW_KPIS, "children"),
    Output(ids.OVERVIEW_CARDS, "children"),
    Output(ids.OVERVIEW_MAP, "figure"),
    Output(ids.OVERVIEW_SESSIONS, "children"),
    Output(ids.OVERVIEW_MATRIX, "children"),
    Output(ids.OVERVIEW_OUTSIDE, "children"),
    Output(ids.OVERVIEW_ASOF, "children"),
    Input(ids.OVERVIEW_INTERVAL, "n_intervals"),
)
def update_overview(_n: int | None) -> tuple[Any, ...]:
    """KPI tiles, the ranking, map, cloud classes, matrix, the sites off the map and the time, from the database."""
    lang = current()
    views, net = data.network()
    ranked, without = net_fig.rank(views)
    figure = net_fig.network_map(ranked, lang)
    figure["layout"]["uirevision"] = "map"
    zone = data.site_zone(None)
    asof = f"{t('as of', lang)} {fmt_time(datetime.now(UTC), lang, zone)} ({zone_label(zone, lang)})"
    return (network_tiles(net, lang), ranking_view(ranked, without, lang), figure,
            sessions_view(data.cloud_panels(), lang), matrix_view(ranked, net, lang), outside_view(views, lang), asof)


@dash.callback(Output(ids.OVERVIEW_NAV, "pathname"), Input(ids.OVERVIEW_MAP, "clickData"), prevent_initial_call=True)
def open_site(click_data: dict[str, Any] | None) -> str:
    """Open the school whose marker was clicked (a marker's ``customdata`` is its site id)."""
    points = (click_data or {}).get("points") or []
    site_id = points[0].get("customdata") if points else None
    if not isinstance(site_id, str):
        raise PreventUpdate
    return dash.get_relative_path(f"/site/{site_id}")
