"""DingTalk (钉钉) custom robot: POST ``{"msgtype": "markdown", "markdown": {"title", "text"}}``.

With a signing secret (加签, ``SEC...``) the URL gains ``&timestamp=<ms>&sign=<sign>``, where sign is
``urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))``. Documented limit:
20 messages a minute per robot (beyond, the robot is throttled for 10 minutes).

    >>> sign(1700000000000, "secret")
    'OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from typing import Any

from twin.monitoring.channels.message import Message, markdown

RATE_PER_MINUTE = 20


def sign(timestamp_ms: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def body(m: Message) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": m.title, "text": markdown(m)}}


def request(url: str, m: Message, *, secret: str | None = None, now_ms: int = 0) -> tuple[str, dict[str, Any]]:
    """The URL (signed when a secret is set, at ``now_ms``) and JSON body of one message."""
    if secret:
        url = f"{url}{'&' if '?' in url else '?'}timestamp={now_ms}&sign={sign(now_ms, secret)}"
    return url, body(m)
