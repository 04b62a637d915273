"""Login, server-side sessions, CSRF and role checks for the dashboard (docs/security.md).

- ``/login`` is a plain HTML form (its own double-submit CSRF token); a good password creates a
  session row (``twin.storage.users``) whose random token goes into an HttpOnly, SameSite=Strict
  cookie (Secure over HTTPS or with ``secure_cookies``), and sets the ``_csrf_token`` cookie that
  dash-renderer sends back as the ``X-CSRFToken`` header on every callback POST.
- Before every request, and before any of its body is read: a body longer than the route and the
  role allow is refused (413: forms and callbacks small, the upload size only for roles that may
  upload); static files pass; without a live session pages redirect to the login and ``/_dash-*``
  endpoints answer 401; every POST must carry the session's CSRF token (else 403).
- Logins are throttled per address and per username (:func:`twin.storage.users.login_throttle`):
  429 with ``Retry-After``, the password not even checked. The address is the peer's, or the one
  forwarded by ``trusted_proxies`` reverse proxies (``create_app``).
- State-changing callbacks are wrapped in :func:`requires` (``@requires("acknowledge")``), which
  checks the role on the server (403 and an audit entry when refused).
"""

from __future__ import annotations

import functools
import html
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import dash
import flask

from dashboard import data
from dashboard.i18n import current, t
from dashboard.paths import safe_local_path
from twin import security
from twin.storage import audit, users

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

SESSION_COOKIE = "campus_twin_session"
#: dash-renderer reads this cookie and sends it as the ``X-CSRFToken`` header of its POSTs.
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
LOGIN_CSRF_COOKIE = "campus_twin_login_csrf"
SECURE_KEY = "campus_twin.secure_cookies"
#: Set in the WSGI environ of the app's own start-up request (an object no HTTP client can send).
INTERNAL_KEY = "campus_twin.internal"
#: Paths served without a session (relative to the app's prefix): the login and static files.
PUBLIC_PREFIXES = ("login", "lang/", "_dash-component-suites/", "assets/", "_favicon.ico", "favicon.ico")
#: Largest body of a login or logout form, and of a callback from a role that may not upload.
FORM_MAX_BYTES = 64 * 1024
CALLBACK_MAX_BYTES = 1024 * 1024
UPLOAD_KEY = "campus_twin.upload_body_bytes"


def install(app: dash.Dash, *, secure_cookies: bool = False, upload_body_bytes: int = CALLBACK_MAX_BYTES) -> None:
    """Add ``/login`` and ``/logout`` and the request guard to ``app``'s server; a callback request
    of a role that may upload may be ``upload_body_bytes`` long."""
    server, prefix = app.server, app.config.routes_pathname_prefix
    server.extensions[SECURE_KEY] = secure_cookies
    server.extensions[UPLOAD_KEY] = upload_body_bytes
    server.extensions[INTERNAL_KEY] = object()
    server.add_url_rule(f"{prefix}login", "campus_twin_login", _login, methods=["GET", "POST"])
    server.add_url_rule(f"{prefix}logout", "campus_twin_logout", _logout, methods=["POST"])
    server.before_request(functools.partial(_guard, prefix))


def internal_environ(server: flask.Flask) -> dict[str, object]:
    """The environ that lets the app's own start-up request through (see ``create_app``)."""
    return {INTERNAL_KEY: server.extensions[INTERNAL_KEY]}


def current_user() -> users.SessionUser | None:
    """The user of the request's live session, else None (cached per request)."""
    if not flask.has_request_context():
        return None
    if "campus_twin_user" not in flask.g:
        token = flask.request.cookies.get(SESSION_COOKIE)
        found = None
        if token:
            with data.connection() as conn:
                found = users.session_user(conn, token)
        flask.g.campus_twin_user = found
    return flask.g.campus_twin_user


def can(action: str) -> bool:
    """True when the current user's role allows ``action`` (for showing or hiding controls)."""
    user = current_user()
    return security.allowed(user.role if user else None, action)


def record(action: str, outcome: str, target: str | None = None, detail: dict[str, Any] | None = None, *,
           username: str | None = None) -> None:
    """An audit-log entry for the current request's user (or ``username``) and address."""
    user = current_user()
    with data.connection() as conn:
        audit.record(conn, action, outcome, username=username or (user.username if user else None), target=target,
                     detail=detail, remote_addr=flask.request.remote_addr if flask.has_request_context() else None)


def requires(action: str) -> Callable[[F], F]:
    """Wrap a callback: run it only when the session's role allows ``action``, else 403 (audited)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not can(action):
                user = current_user()
                record(action, "denied", target=fn.__name__, detail={"role": user.role if user else None})
                flask.abort(403, description=f"your role may not {action}")
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _is_public(prefix: str, path: str) -> bool:
    rel = path.removeprefix(prefix)
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in PUBLIC_PREFIXES)


def _too_large(limit: int) -> flask.Response | None:
    """413 when the request announces a body over ``limit``; 411 for a body of unannounced length
    (chunked: browsers and dash-renderer always send Content-Length)."""
    request = flask.request
    request.max_content_length = limit
    if request.content_length is None and request.headers.get("Transfer-Encoding"):
        return flask.make_response(flask.jsonify(error="a request body needs a Content-Length"), 411)
    if (request.content_length or 0) > limit:
        log.info("request body refused path=%s length=%s limit=%d", request.path, request.content_length, limit)
        return flask.make_response(flask.jsonify(error=f"request body too large (limit {limit} bytes)"), 413)
    return None


def _guard(prefix: str) -> flask.Response | None:
    """Runs before the view, so before anything reads the request body (only headers are used)."""
    request = flask.request
    server = flask.current_app
    if request.environ.get(INTERNAL_KEY) is server.extensions[INTERNAL_KEY]:
        return None
    if _is_public(prefix, request.path) or request.path == f"{prefix}logout":
        return _too_large(FORM_MAX_BYTES)
    user = current_user()
    if user is None:
        if request.method != "GET" or request.path.startswith(f"{prefix}_dash-"):
            return flask.make_response(flask.jsonify(error="login required"), 401)
        target = request.full_path.rstrip("?") if request.query_string else request.path
        return flask.redirect(f"{prefix}login?next={quote(target, safe='/')}")
    uploader = security.allowed(user.role, "upload") and request.path == f"{prefix}_dash-update-component"
    refused = _too_large(server.extensions[UPLOAD_KEY] if uploader else CALLBACK_MAX_BYTES)
    if refused is not None:
        return refused
    if request.method not in ("GET", "HEAD", "OPTIONS") and not security.same(request.headers.get(CSRF_HEADER),
                                                                              user.csrf_token):
        return flask.make_response(flask.jsonify(error="CSRF token missing or wrong"), 403)
    return None


def _safe_next(value: str | None, prefix: str) -> str:
    """A local path to go to after the login (never another site): :func:`dashboard.paths.safe_local_path`."""
    return safe_local_path(value, prefix)


def _cookie_kwargs(prefix: str) -> dict[str, Any]:
    secure = bool(flask.current_app.extensions.get(SECURE_KEY)) or flask.request.is_secure
    return {"path": prefix, "secure": secure, "samesite": "Strict"}


LOGIN_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Campus Twin – {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{prefix}assets/style.css"></head>
<body><header class="topbar"><span class="brand">Campus Twin</span>
<span class="lang-switch">{switch}</span></header>
<main class="content login"><h2>{title}</h2>{error}
<form method="post" action="{prefix}login" class="login-form">
<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label>{user_label}<input id="login-username" name="username" autocomplete="username" required autofocus></label>
<label>{password_label}<input id="login-password" name="password" type="password" autocomplete="current-password"
 required></label>
<button id="login-submit" type="submit" class="button">{title}</button></form></main></body></html>
"""


def _language_links(prefix: str, lang: str, next_path: str) -> str:
    """EN / 中文 links back to this login form (its ``next`` kept, also after a failed attempt): the language
    is chosen before logging in."""
    here = f"{prefix}login?next={quote(next_path, safe='/')}"  # as the login redirect writes it
    return " ".join(
        f'<a id="login-lang-{code}" href="{html.escape(prefix)}lang/{code}?{html.escape(urlencode({"next": here}))}" '
        f'class="lang-link{" active" if code == lang else ""}">{label}</a>'
        for code, label in (("en", "EN"), ("zh", "中文")))


def _login_page(prefix: str, next_path: str, error: str | None = None, status: int = 200) -> flask.Response:
    lang = current()
    # Kept while the form is open in other tabs: a new token per GET would void the forms already shown.
    kept = flask.request.cookies.get(LOGIN_CSRF_COOKIE, "")
    csrf = kept if len(kept) >= 32 and kept.replace("-", "").replace("_", "").isalnum() else security.new_token()
    body = LOGIN_PAGE.format(
        lang="zh-CN" if lang == "zh" else "en", prefix=html.escape(prefix), title=html.escape(t("Log in", lang)),
        csrf=csrf, next=html.escape(next_path), user_label=html.escape(t("Username", lang)),
        password_label=html.escape(t("Password", lang)),
        error=f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else "",
        switch=_language_links(prefix, lang, next_path))
    response = flask.make_response(body, status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, **_cookie_kwargs(prefix))
    return response


def _login() -> flask.Response:
    request = flask.request
    prefix = flask.current_app.extensions["campus_twin.prefix"]
    next_path = _safe_next(request.values.get("next"), prefix)
    if request.method == "GET":
        return _login_page(prefix, next_path)
    if not security.same(request.form.get("csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(prefix, next_path, t("The form expired; please try again."), 403)
    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    with data.connection() as conn:
        wait = users.login_throttle(conn, username, request.remote_addr)
        if wait.seconds > 0:  # not audited: each refused attempt would be a row an attacker writes for free
            log.info("login throttled username=%r addr=%s wait_s=%.0f busy=%s", username, request.remote_addr,
                     wait.seconds, wait.busy)
            message = (t("Another login from this address is being checked; try again in a moment.") if wait.busy
                       else t("Too many failed logins; wait a few minutes."))
            refused = _login_page(prefix, next_path, message, 429)
            refused.headers["Retry-After"] = str(math.ceil(wait.seconds))
            return refused
        user = users.authenticate(conn, username, password)
        if user is None:
            audit.record(conn, "login", "failed", username=username, remote_addr=request.remote_addr)
            return _login_page(prefix, next_path, t("Wrong username or password."), 401)
        token, csrf = users.create_session(conn, user.id)
        audit.record(conn, "login", "ok", username=user.username, detail={"role": user.role},
                     remote_addr=request.remote_addr)
    response = flask.redirect(next_path)
    kwargs = _cookie_kwargs(prefix)
    max_age = int(users.SESSION_TTL.total_seconds())
    response.set_cookie(SESSION_COOKIE, token, httponly=True, max_age=max_age, **kwargs)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, max_age=max_age, **kwargs)
    response.delete_cookie(LOGIN_CSRF_COOKIE, httponly=True, **kwargs)
    return response


def _logout() -> flask.Response:
    request = flask.request
    prefix = flask.current_app.extensions["campus_twin.prefix"]
    user = current_user()
    token = request.cookies.get(SESSION_COOKIE)
    if user is None or not token:
        return flask.redirect(f"{prefix}login")
    if not security.same(request.form.get("csrf_token") or request.headers.get(CSRF_HEADER), user.csrf_token):
        return flask.make_response(flask.jsonify(error="CSRF token missing or wrong"), 403)
    with data.connection() as conn:
        users.end_session(conn, token)
        audit.record(conn, "logout", "ok", username=user.username, remote_addr=request.remote_addr)
    response = flask.redirect(f"{prefix}login")
    response.delete_cookie(SESSION_COOKIE, httponly=True, **_cookie_kwargs(prefix))
    response.delete_cookie(CSRF_COOKIE, **_cookie_kwargs(prefix))
    return response


def user_badge(lang: str) -> Any:
    """The top bar's "name (role) · Log out" (a POST form carrying the CSRF token)."""
    from dash import dcc
    from dash import html as dhtml

    user = current_user()
    if user is None:
        return dhtml.Span()
    return dhtml.Form([
        dhtml.Span(f"{user.username} ({t(user.role, lang)})", id="current-user", className="user"),
        dcc.Input(type="hidden", name="csrf_token", value=user.csrf_token, id="logout-csrf"),
        dhtml.Button(t("Log out", lang), type="submit", id="logout", className="button button-small"),
    ], method="post", action=dash.get_relative_path("/logout"), className="user-badge")
