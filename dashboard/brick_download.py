"""``/brick.ttl``: the twin as Brick (:mod:`twin.brick`) for admins; ``?site=ID`` for one school, else the network.

Others get 403 (audited); without a login the guard of :mod:`dashboard.auth` sends the browser to the login page.
"""

from __future__ import annotations

import dash
import flask

from dashboard import auth, data

ACTION = "export"
#: Where the app keeps what ``ref:storedAt`` says (the database URL without credentials).
DATABASE_KEY = "campus_twin.database_name"


def install(app: dash.Dash, database_url: str) -> None:
    """Serve ``{prefix}brick.ttl`` on ``app``'s server."""
    from twin.brick import database_name

    server = app.server
    server.extensions[DATABASE_KEY] = database_name(database_url)
    server.add_url_rule(f"{app.config.requests_pathname_prefix}brick.ttl", "campus_twin_brick", _download)


def _download() -> flask.Response:
    from twin.brick import brick_graph, stored_sites
    from twin.storage.sites import list_sites

    if not auth.can(ACTION):
        user = auth.current_user()
        auth.record(ACTION, "denied", target="brick.ttl", detail={"role": user.role if user else None})
        flask.abort(403, description="only admins may export the twin")
    site = flask.request.args.get("site")
    with data.connection() as conn:
        ids = [site] if site else [s.site_id for s in list_sites(conn)]
        sites = stored_sites(conn, ids)
    if site and not sites:
        flask.abort(404, description=f"unknown site {site!r}")
    graph, counts = brick_graph(sites, database=flask.current_app.extensions[DATABASE_KEY])
    auth.record(ACTION, "ok", target="brick.ttl", detail={"site": site, "rooms": counts.rooms,
                                                          "devices": counts.devices, "points": counts.points})
    name = f"{site or 'network'}.ttl"
    return flask.Response(graph.serialize(format="turtle", encoding="utf-8"), mimetype="text/turtle",
                          headers={"Content-Disposition": f'attachment; filename="{name}"'})
