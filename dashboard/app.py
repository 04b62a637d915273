"""Build the Dash app: pages from ``dashboard/pages``, a connection pool, local assets only.

>>> app = create_app("postgresql://localhost/campus")   # doctest: +SKIP
>>> serve(app, "127.0.0.1", 8050, stop_event)            # doctest: +SKIP  (dashboard.serve)
"""

from __future__ import annotations

from pathlib import Path

import dash
from dash import dcc, html

from dashboard import data
from twin.database import open_pool

PACKAGE = Path(__file__).resolve().parent
PAGES = PACKAGE / "pages"
ASSETS = PACKAGE / "assets"


def create_app(database_url: str, *, pool_size: int = 4) -> dash.Dash:
    """A ready app on ``database_url``; fails fast (``DatabaseUnavailable``) when it does not answer.

    Everything is served from the package (``serve_locally``, own CSS in ``assets/``),
    so the dashboard works offline. The pool lives on ``app.server`` (see
    :mod:`dashboard.data`); close it with :func:`close_app`.
    """
    pool = open_pool(database_url, min_size=1, max_size=pool_size, name="dashboard")
    try:
        app = dash.Dash(
            "dashboard",  # the package, so pages import as dashboard.pages.<name>
            use_pages=True,
            pages_folder=str(PAGES),
            assets_folder=str(ASSETS),
            serve_locally=True,
            title="Campus Twin",
            update_title=None,
            # Page layouts depend on the URL and the database; their ids are not all in one layout.
            suppress_callback_exceptions=True,
        )
        data.attach_pool(app.server, pool)
        app.layout = html.Div([
            html.Header([
                dcc.Link("Campus Twin", href=app.get_relative_path("/"), className="brand"),
                html.Span("live digital twin of the school network", className="tagline"),
            ], className="topbar"),
            html.Main(dash.page_container, className="content"),
        ])
        _claim_callbacks(app)
    except BaseException:
        pool.close()
        raise
    return app


def close_app(app: dash.Dash) -> None:
    """Release the app's database pool."""
    data.close_pool(app.server)


def _claim_callbacks(app: dash.Dash) -> None:
    """Make ``app`` take the pages' ``@dash.callback`` registrations now.

    Dash moves them from its global list to an app at that app's first request; a second
    app built in the same process before then (tests) would collect them twice. One
    request to the layout endpoint does that setup at once, and also checks the layout.
    """
    response = app.server.test_client().get(app.config.routes_pathname_prefix + "_dash-layout")
    if response.status_code != 200:
        raise RuntimeError(f"dashboard layout failed: HTTP {response.status_code}")
