"""Security headers on every response, and a plain 404 for asset paths Dash does not serve.

The Content-Security-Policy allows scripts from the app itself and, by their hashes, the inline
scripts Dash renders (``app.csp_hashes()``), nothing else: no inline or injected script, no
``eval``. Styles may be inline (Plotly and the components set style attributes); images and fonts
may be data URLs (Plotly's). Frames are refused both ways (``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``). See docs/security.md.
"""

from __future__ import annotations

import logging

import dash
import flask
from dash.exceptions import DependencyException

log = logging.getLogger(__name__)

CSP_KEY = "campus_twin.csp"
APP_KEY = "campus_twin.dash_app"
#: Headers every response carries besides the CSP.
STATIC_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def content_security_policy(script_hashes: list[str]) -> str:
    """The policy for the app, with the hashes of Dash's inline scripts.

    >>> content_security_policy(["'sha256-abc='"]).split("; ")[:2]
    ["default-src 'self'", "script-src 'self' 'sha256-abc='"]
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(" ".join([name, *values]) for name, values in directives.items())


def install(app: dash.Dash) -> None:
    """Add the headers to every response of ``app``."""
    server = app.server
    server.extensions[APP_KEY] = app
    server.after_request(_add_headers)
    server.register_error_handler(DependencyException, _not_found)


def _policy() -> str:
    """The app's policy, made at its first response: Dash's inline scripts are final once its
    server is set up (in a hook before that first request)."""
    extensions = flask.current_app.extensions
    if CSP_KEY not in extensions:
        extensions[CSP_KEY] = content_security_policy(list(extensions[APP_KEY].csp_hashes()))
    return str(extensions[CSP_KEY])


def _add_headers(response: flask.Response) -> flask.Response:
    response.headers["Content-Security-Policy"] = _policy()
    for name, value in STATIC_HEADERS.items():
        response.headers[name] = value
    return response


def _not_found(_: DependencyException) -> flask.Response:
    """An asset path that names no registered file: 404, neither the message nor the registry logged."""
    log.debug("unknown component-suite path=%s", flask.request.path)
    return flask.make_response(flask.jsonify(error="not found"), 404)
