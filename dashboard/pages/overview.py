"""Network overview (``/``): one card per school, headquarters first (the 1+N view)."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import data, ids

dash.register_page(__name__, path="/", name="Network", title="Campus Twin – network", order=0)


def online_percent(site: dict[str, Any]) -> str:
    """Devices online as a percentage text, "–" for a site without devices."""
    devices = site.get("devices") or 0
    return f"{100.0 * (site.get('online') or 0) / devices:.0f}%" if devices else "–"


def site_card(site: dict[str, Any]) -> dcc.Link:
    """A card with a school's counts, linking to its floor plans."""
    role = "headquarters" if site["role"] == "headquarters" else "member"
    facts = [
        ("rooms", site["rooms"]),
        ("devices", site["devices"]),
        ("online", online_percent(site)),
        ("open alarms", site["open_alarms"]),
    ]
    body = dbc.CardBody([
        html.H3(site["name"], className="card-title"),
        html.Div(role, className=f"badge badge-{role}"),
        html.Dl([item for label, value in facts for item in (html.Dt(label), html.Dd(str(value)))],
                className="facts"),
    ])
    return dcc.Link(dbc.Card(body, className=f"card site-card site-{role}"),
                    href=dash.get_relative_path(f"/site/{site['site_id']}"), className="card-link")


def layout(**_: Any) -> html.Div:
    sites = data.sites()
    cards = [site_card(s) for s in sites] or [html.P("No schools yet: load a BIM model first.")]
    return html.Div([html.H2("Schools"), html.Div(cards, id=ids.OVERVIEW_CARDS, className="card-grid")])
