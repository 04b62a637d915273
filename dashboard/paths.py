"""Where the dashboard may send a browser after a login or a language switch: its own pages only."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_local_path(value: str | None, prefix: str) -> str:
    """``value`` when it is a path of this app (under ``prefix``), else ``prefix`` (never another site).

    Only a path made of printable, non-space characters: browsers drop tabs and newlines from URLs,
    so ``/\\t/evil.com`` would become ``//evil.com``.

    >>> safe_local_path("/alarms?site=hq", "/"), safe_local_path("//evil.example/", "/")
    ('/alarms?site=hq', '/')
    """
    if (not value or not value.startswith(prefix) or value.startswith("//") or "\\" in value
            or any(c.isspace() or not c.isprintable() for c in value)):
        return prefix
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return prefix
    return value


def same_site_path(url: str | None, host: str, prefix: str) -> str:
    """The path and query of ``url`` (a Referer) when it is a page of this app on ``host``, else ``prefix``."""
    if not url:
        return prefix
    parts = urlsplit(url)
    if parts.netloc != host:
        return prefix
    return safe_local_path(parts.path + (f"?{parts.query}" if parts.query else ""), prefix)
