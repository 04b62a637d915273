"""Build the Dash app: pages from ``dashboard/pages``, a connection pool, local assets only.

>>> app = create_app("postgresql://localhost/campus")   # doctest: +SKIP
>>> serve(app, "127.0.0.1", 8050, stop_event)            # doctest: +SKIP  (dashboard.serve)

What the dashboard needs from other packages is injected by the composition root
(``twin/cli/``): ``mqtt_url`` for luminaire commands, ``bim_loader`` for IFC uploads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dash
from dash import dcc, html
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard import auth, bim_plans, brick_download, data, headers, i18n
from dashboard.i18n import t
from dashboard.uploads import UploadLimits
from twin.database import open_pool
from twin.messaging.broker import BrokerError
from twin.monitoring.standards import SiteConfig

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
PAGES = PACKAGE / "pages"
ASSETS = PACKAGE / "assets"
#: Top-bar links: (English label, path).
NAVIGATION = (("Network", "/"), ("Alarms", "/alarms"), ("Devices", "/devices"), ("BIM", "/bim"))


def create_app(database_url: str, *, mqtt_url: str | None = None, bim_loader: data.BimLoader | None = None,
               pool_size: int = 4, secure_cookies: bool = False, upload_limits: UploadLimits | None = None,
               trusted_proxies: int = 0, pending_dir: Path | None = None,
               rules: SiteConfig | None = None) -> dash.Dash:
    """A ready app on ``database_url``; fails fast (``DatabaseUnavailable``) when it does not answer.

    Everything is served from the package (``serve_locally``, own CSS in ``assets/``),
    so the dashboard works offline. The pool lives on ``app.server`` (see
    :mod:`dashboard.data`); close it with :func:`close_app`. With ``mqtt_url`` the room
    page sends luminaire commands (a broker that does not answer disables them, with a
    warning); ``bim_loader(path, site_id, *, name, role, dry_run, allow_removals, expect_plan, applied_by,
    remote_addr) -> summary`` (:func:`twin.cli.load_bim`) enables IFC uploads, each run
    in a child process within ``upload_limits``. Every page needs a login (:mod:`dashboard.auth`);
    ``secure_cookies`` marks the cookies Secure also when a proxy terminates HTTPS. Behind
    ``trusted_proxies`` reverse proxies, the client's address (login throttling, the audit log) and
    scheme are taken from ``X-Forwarded-For`` / ``X-Forwarded-Proto`` (werkzeug's ``ProxyFix``);
    with 0 those headers are ignored, as any client can send them. Uploaded BIM revisions wait for a
    planner's confirmation in ``pending_dir`` (the data directory's ``bim-pending``; default: a private
    folder in the system's temporary directory). ``rules`` (a rules file, as the monitor's) joins the stored
    per-site overrides in every colour, legend and band.
    """
    pool = open_pool(database_url, min_size=1, max_size=pool_size, name="dashboard")
    bridge = None
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
        if mqtt_url:
            bridge = _start_bridge(mqtt_url, pool)
            app.server.extensions[data.BRIDGE_KEY] = bridge
        if bim_loader is not None:
            app.server.extensions[data.LOADER_KEY] = bim_loader
        if rules is not None:
            app.server.extensions[data.RULES_KEY] = rules
        if pending_dir is not None:
            app.server.extensions[bim_plans.PENDING_KEY] = pending_dir
        limits = upload_limits or UploadLimits()
        app.server.extensions[data.LIMITS_KEY] = limits
        # No request body longer than an upload's callback, whoever sends it; the guard of
        # dashboard.auth refuses less, by route and role, before the body is read.
        app.server.config["MAX_CONTENT_LENGTH"] = upload_body_bytes(limits)
        app.server.extensions["campus_twin.prefix"] = app.config.requests_pathname_prefix
        i18n.register(app.server, app.config.requests_pathname_prefix)
        auth.install(app, secure_cookies=secure_cookies, upload_body_bytes=upload_body_bytes(limits))
        headers.install(app)
        brick_download.install(app, database_url)
        if trusted_proxies:
            app.server.wsgi_app = ProxyFix(app.server.wsgi_app, x_for=trusted_proxies,  # type: ignore[method-assign]
                                           x_proto=trusted_proxies)
        app.layout = _layout
        _claim_callbacks(app)
    except BaseException:
        if bridge is not None:
            bridge.close()
        pool.close()
        raise
    return app


def upload_body_bytes(limits: UploadLimits) -> int:
    """The longest callback request of a role that may upload.

    An upload arrives as base64 (4/3 of the file) in a JSON callback request; up to twice that
    still reaches the upload callback, which then says "file too large" in the page.
    """
    return 2 * (limits.max_bytes * 4 // 3) + 1024 * 1024


def _start_bridge(mqtt_url: str, pool: object) -> object | None:
    from dashboard.commands import CommandBridge

    try:
        return CommandBridge(mqtt_url, pool).start()  # type: ignore[arg-type]
    except BrokerError as exc:
        log.warning("luminaire commands disabled: %s", exc)
        return None


def _layout() -> html.Div:
    """The frame of every page, in the reader's language (evaluated per request)."""
    lang = i18n.current()
    links = [dcc.Link(t(label, lang), href=dash.get_relative_path(path), className="nav-link")
             for label, path in NAVIGATION]
    switch = [html.A(label, href=dash.get_relative_path(f"/lang/{code}"),
                     className="lang-link" + (" active" if code == lang else ""), id=f"lang-{code}")
              for code, label in (("en", "EN"), ("zh", "中文"))]
    return html.Div([
        html.Header([
            dcc.Link("Campus Twin", href=dash.get_relative_path("/"), className="brand"),
            html.Span(t("live digital twin of the school network", lang), className="tagline"),
            html.Nav(links, className="nav"),
            _school_clock(lang),
            html.Span(switch, className="lang-switch"),
            auth.user_badge(lang),
        ], className="topbar"),
        html.Main(dash.page_container, className="content", lang="zh-CN" if lang == "zh" else "en"),
    ])


def _school_clock(lang: str) -> html.Span:
    """The schools' local time, whether they are in session, and the demo's timetable shift when there is one."""
    from datetime import UTC, datetime

    from dashboard import ids
    from dashboard.localtime import fmt_time, zone_label
    from twin.localtime import fmt_shift
    from twin.storage.timetables import stored_timetable

    zone = data.site_zone(None)
    now = datetime.now(UTC)
    try:
        with data.connection() as conn:
            timetable = stored_timetable(conn)
    except Exception:  # noqa: BLE001 - the frame shows without it (no database yet, a login page)
        return html.Span(id=ids.SCHOOL_CLOCK, className="school-clock")
    session = "in session" if timetable.phase(now.astimezone(zone)) == "lesson" else "not in session"
    label = t("schools' local time", lang)
    text = (f"{label} {fmt_time(now, lang, zone, seconds=False)} "
            f"{zone_label(zone, lang)} · {t(session, lang)}")
    if timetable.shift or timetable.every_day:
        text += f" ({t('demo timetable shifted by {shift}', lang).format(shift=fmt_shift(timetable.shift))})"
    return html.Span(text, id=ids.SCHOOL_CLOCK, className="school-clock")


def close_app(app: dash.Dash) -> None:
    """Release the app's MQTT connection and database pool."""
    bridge = app.server.extensions.pop(data.BRIDGE_KEY, None)
    if bridge is not None:
        bridge.close()
    data.close_pool(app.server)


def _claim_callbacks(app: dash.Dash) -> None:
    """Make ``app`` take the pages' ``@dash.callback`` registrations now.

    Dash moves them from its global list to an app at that app's first request; a second
    app built in the same process before then (tests) would collect them twice. One
    request to the layout endpoint does that setup at once, and also checks the layout.
    """
    response = app.server.test_client().get(app.config.routes_pathname_prefix + "_dash-layout",
                                            environ_base=auth.internal_environ(app.server))
    if response.status_code != 200:
        raise RuntimeError(f"dashboard layout failed: HTTP {response.status_code}")
