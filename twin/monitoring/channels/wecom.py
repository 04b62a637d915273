"""WeCom (企业微信) group robot: POST ``{"msgtype": "markdown", "markdown": {"content": ...}}`` to the
robot's webhook (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``). The documented limit is
20 messages a minute per robot; content at most 4096 bytes."""

from __future__ import annotations

from typing import Any

from twin.monitoring.channels.message import Message, markdown

RATE_PER_MINUTE = 20
MAX_BYTES = 4096


def body(m: Message) -> dict[str, Any]:
    content = markdown(m).encode()[:MAX_BYTES].decode(errors="ignore")
    return {"msgtype": "markdown", "markdown": {"content": content}}


def request(url: str, m: Message) -> tuple[str, dict[str, Any]]:
    """The URL and JSON body of one message."""
    return url, body(m)
