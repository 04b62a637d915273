"""Feishu (飞书) custom bot: POST an interactive card ``{"msg_type": "interactive", "card": {...}}``.

With a signing secret (签名校验) the body gains ``"timestamp"`` (seconds, a string) and ``"sign"``:
``base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` (the string to sign is the key, the
message empty). Documented limit: 100 requests a minute and 5 a second per bot.

    >>> sign(1700000000, "secret")
    'fiWS2+gh28DOydAv7hzONH/mDn9+b1Y4Y5ivXWXy8vA='
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from twin.monitoring.channels.message import Message

RATE_PER_MINUTE = 100
RATE_PER_SECOND = 5
_TEMPLATES = {"critical": "red", "warning": "orange", "info": "blue"}


def sign(timestamp_s: int, secret: str) -> str:
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def body(m: Message) -> dict[str, Any]:
    lines = "\n".join(f"**{k}**: {v}" if k else v for k, v in m.lines)
    elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "lark_md", "content": lines}}]
    if m.link:
        elements.append({"tag": "action", "actions": [{"tag": "button", "type": "primary", "url": m.link,
                                                       "text": {"tag": "plain_text", "content": m.link_label}}]})
    return {"msg_type": "interactive",
            "card": {"config": {"wide_screen_mode": True},
                     "header": {"title": {"tag": "plain_text", "content": m.title},
                                "template": _TEMPLATES.get(m.severity, "blue")},
                     "elements": elements}}


def request(url: str, m: Message, *, secret: str | None = None, now_s: int = 0) -> tuple[str, dict[str, Any]]:
    """The URL and JSON body (signed when a secret is set, at ``now_s``) of one message."""
    payload = body(m)
    if secret:
        payload = {"timestamp": str(now_s), "sign": sign(now_s, secret), **payload}
    return url, payload

