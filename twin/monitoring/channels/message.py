"""What an alarm notification says, in the site's language (``zh`` or ``en``), as markdown, text or HTML.

    >>> from datetime import UTC, datetime
    >>> m = compose(dict(event="raised", site_id="hq", school="Futian No.1", building="Main", storey="2F",
    ...     room="Class 2-1", room_id=7, rule="co2_classroom", severity="warning", standard="GB/T 17226-2017",
    ...     message="CO2 1650 ppm > 1500 ppm", value=1650.0, at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC),
    ...     raised_at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC), time_zone="Asia/Shanghai", by=None, note=None,
    ...     device_id=None), "en", "https://twin.example")
    >>> m.title
    '[warning] Alarm raised: co2_classroom, Class 2-1'
    >>> m.link
    'https://twin.example/room/7'
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twin.localtime import fmt_time, zone

LANGUAGES = ("zh", "en")

_WORDS: dict[str, dict[str, str]] = {
    "zh": {"raised": "告警产生", "acknowledged": "告警已确认", "cleared": "告警已解除", "test": "测试消息",
           "school": "学校", "place": "位置", "rule": "规则", "standard": "标准", "value": "数值",
           "since": "开始时间", "at": "事件时间", "by": "确认人", "note": "备注", "device": "设备",
           "room_page": "查看房间", "test_body": "Campus Twin 通知渠道测试：收到此消息说明配置正确。",
           "severity.critical": "严重", "severity.warning": "警告", "severity.info": "提示"},
    "en": {"raised": "Alarm raised", "acknowledged": "Alarm acknowledged", "cleared": "Alarm cleared",
           "test": "Test message", "school": "School", "place": "Place", "rule": "Rule", "standard": "Standard",
           "value": "Value", "since": "Since", "at": "Event at", "by": "By", "note": "Note", "device": "Device",
           "room_page": "Open the room",
           "test_body": "Campus Twin notification channel test: this message means the channel works.",
           "severity.critical": "critical", "severity.warning": "warning", "severity.info": "info"},
}


@dataclass(frozen=True, slots=True)
class Message:
    """A notification: a title, labelled lines and an optional link (to the room page)."""

    title: str
    lines: tuple[tuple[str, str], ...]
    link: str | None = None
    link_label: str = ""
    severity: str = "info"


#: What a person's text must not carry into a robot's markdown: mentions (Feishu ``<at id=all></at>``, WeCom
#: ``<@userid>``), links and emphasis; shown as look-alike characters instead.
_MARKUP = str.maketrans({"<": "‹", ">": "›", "[": "［", "]": "］", "*": "∗", "`": "ˋ", "\n": " ", "\r": " "})


def plain(text: str) -> str:
    """A person's text (an acknowledgement's note) safe in every channel's markdown: no mention, link or markup.

    >>> plain("done <at id=all></at> [x](http://evil) **now**")
    'done ‹at id=all›‹/at› ［x］(http://evil) ∗∗now∗∗'
    """
    return text.translate(_MARKUP)[:500]


def compose(event: Mapping[str, Any], language: str, base_url: str | None) -> Message:
    """The message of one lifecycle event (a :class:`twin.storage.deliveries.Delivery` as a mapping)."""
    w = _WORDS[language if language in LANGUAGES else "zh"]
    tz = zone(event.get("time_zone"))
    place = " / ".join(p for p in (event.get("building"), event.get("storey"), event.get("room")) if p)
    severity = str(event.get("severity") or "info")
    sev = w.get(f"severity.{severity}", severity)
    subject = ", ".join(p for p in (event["rule"], event.get("room") or event.get("device_id")) if p)
    lines: list[tuple[str, str]] = [(w["school"], str(event.get("school") or event["site_id"]))]
    if place:
        lines.append((w["place"], place))
    if event.get("device_id"):
        lines.append((w["device"], str(event["device_id"])))
    lines.append((w["rule"], str(event["rule"])))
    if event.get("standard"):
        lines.append((w["standard"], str(event["standard"])))
    if event.get("message"):
        lines.append((w["value"], str(event["message"])))
    lines.append((w["since"], f"{fmt_time(event['raised_at'], tz)} ({tz.key})"))
    if event["event"] != "raised":
        lines.append((w["at"], fmt_time(event["at"], tz)))
    if event.get("by"):
        lines.append((w["by"], plain(str(event["by"]))))
    if event.get("note"):
        lines.append((w["note"], plain(str(event["note"]))))
    link = f"{base_url.rstrip('/')}/room/{event['room_id']}" if base_url and event.get("room_id") else None
    return Message(f"[{sev}] {w[event['event']]}: {subject}", tuple(lines), link, w["room_page"], severity)


def test_message(school: str, language: str, base_url: str | None) -> Message:
    """The message of ``campus-twin notify test``."""
    w = _WORDS[language if language in LANGUAGES else "zh"]
    return Message(f"{w['test']}: {school}", ((w["school"], school), ("", w["test_body"])),
                   base_url.rstrip("/") + "/" if base_url else None, "Campus Twin", "info")


def markdown(m: Message) -> str:
    """The message as markdown (the subset WeCom, DingTalk and Feishu cards render)."""
    out = [f"**{m.title}**", ""]
    out += [f"> {k}: {v}" if k else f"> {v}" for k, v in m.lines]
    if m.link:
        out += ["", f"[{m.link_label}]({m.link})"]
    return "\n".join(out)


def text(m: Message) -> str:
    out = [m.title, ""] + [f"{k}: {v}" if k else v for k, v in m.lines]
    if m.link:
        out += ["", f"{m.link_label}: {m.link}"]
    return "\n".join(out) + "\n"


def html_body(m: Message) -> str:
    rows = "".join(f"<tr><th align=\"left\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in m.lines)
    link = f'<p><a href="{html.escape(m.link)}">{html.escape(m.link_label)}</a></p>' if m.link else ""
    return f"<html><body><h3>{html.escape(m.title)}</h3><table>{rows}</table>{link}</body></html>"
