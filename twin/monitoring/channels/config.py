"""Channel configuration: a TOML file given to ``campus-twin monitor --notify FILE``.

    base_url = "https://twin.example.edu.cn"   # links to room pages
    language = "zh"                            # default language of messages (zh or en)

    [sites.member-1]
    language = "en"

    [[channels]]
    name = "hq-wecom"
    kind = "wecom"                     # wecom, dingtalk, feishu or email
    url = "env:HQ_WECOM_URL"           # "env:NAME" reads the environment variable NAME
    sites = ["hq"]                     # optional filters: sites, severities, rules, events
    severities = ["critical", "warning"]

Robots take ``url`` and (DingTalk, Feishu) an optional ``secret``; e-mail takes ``host``, ``port``,
``security`` (starttls, tls or none), ``username``, ``password``, ``sender``, ``to`` and ``ca_file`` (a
private CA's certificates, for a school's own relay; default: the system's). ``rate_per_minute``
(and ``rate_per_second``) default to the vendor's documented limit. Secrets never appear in a repr,
a log line or a stored error (:meth:`Channel.redact`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.monitoring.channels import dingtalk, feishu, wecom
from twin.monitoring.channels.email import SECURITIES
from twin.monitoring.channels.message import LANGUAGES

KINDS = ("wecom", "dingtalk", "feishu", "email")
#: Documented limits per robot: (per minute, per second).
LIMITS: dict[str, tuple[int, int | None]] = {
    "wecom": (wecom.RATE_PER_MINUTE, None),
    "dingtalk": (dingtalk.RATE_PER_MINUTE, None),
    "feishu": (feishu.RATE_PER_MINUTE, feishu.RATE_PER_SECOND),
    "email": (60, None),
}
EVENTS = ("raised", "acknowledged", "cleared")
REDACTED = "***"


class ConfigError(ValueError):
    """The notification configuration is wrong (the message names the channel and key, never a secret)."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One configured channel; sensitive fields are left out of its repr."""

    name: str
    kind: str
    url: str = field(default="", repr=False)
    secret: str | None = field(default=None, repr=False)
    host: str = ""
    port: int = 0
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = ""
    to: tuple[str, ...] = ()
    ca_file: str | None = None
    sites: frozenset[str] | None = None
    severities: frozenset[str] | None = None
    rules: frozenset[str] | None = None
    events: frozenset[str] = frozenset(EVENTS)
    rate_per_minute: int = 20
    rate_per_second: int | None = None

    def wants(self, site_id: str, severity: str, rule: str, event: str) -> bool:
        return ((self.sites is None or site_id in self.sites) and event in self.events
                and (self.severities is None or severity in self.severities)
                and (self.rules is None or rule in self.rules))

    def redact(self, text: str) -> str:
        """``text`` with the endpoint's token and every secret replaced by ``***``."""
        for s in self._sensitive():
            text = text.replace(s, REDACTED)
        return text

    def _sensitive(self) -> list[str]:
        out = [s for s in (self.url, self.secret, self.password) if s]
        out += [v for v in re.findall(r"(?:key|access_token|token)=([^&\s]+)", self.url)]
        if "/hook/" in self.url:
            out.append(self.url.rsplit("/hook/", 1)[1])
        return sorted((s for s in out if len(s) >= 4), key=len, reverse=True)


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    channels: tuple[Channel, ...]
    base_url: str | None = None
    language: str = "zh"
    site_languages: Mapping[str, str] = field(default_factory=dict)

    def language_of(self, site_id: str) -> str:
        return self.site_languages.get(site_id, self.language)

    def for_event(self, site_id: str, severity: str, rule: str, event: str) -> list[Channel]:
        return [c for c in self.channels if c.wants(site_id, severity, rule, event)]

    def for_site(self, site_id: str) -> list[Channel]:
        return [c for c in self.channels if c.sites is None or site_id in c.sites]


def _value(raw: Any, where: str) -> Any:
    if isinstance(raw, str) and raw.startswith("env:"):
        name = raw[4:]
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]
    return raw


def _set(raw: Any, where: str) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(f"{where}: a list of strings")
    return frozenset(raw)


def parse(data: Mapping[str, Any]) -> NotifyConfig:
    """Check and build a configuration from parsed TOML."""
    channels: list[Channel] = []
    names: set[str] = set()
    for i, raw in enumerate(data.get("channels", [])):
        name = str(raw.get("name") or f"channel-{i + 1}")
        where = f"channel {name!r}"
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if name in names:
            raise ConfigError(f"{where}: a second channel of this name")
        names.add(name)
        per_minute, per_second = LIMITS[kind]
        values = {k: _value(v, f"{where}.{k}") for k, v in raw.items()}
        if kind == "email":
            if not values.get("host") or not values.get("sender") or not values.get("to"):
                raise ConfigError(f"{where}: e-mail needs host, sender and to")
            if values.get("security", "starttls") not in SECURITIES:
                raise ConfigError(f"{where}: security must be one of {', '.join(SECURITIES)}")
        elif not str(values.get("url", "")).startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must be an http(s) URL")
        events = _set(values.get("events"), f"{where}.events")
        if events is not None and not events <= set(EVENTS):
            raise ConfigError(f"{where}.events: among {', '.join(EVENTS)}")
        to = values.get("to", ())
        channels.append(Channel(
            name=name, kind=kind, url=str(values.get("url", "")), secret=values.get("secret") or None,
            host=str(values.get("host", "")),
            port=int(values.get("port", {"tls": 465}.get(values.get("security", "starttls"), 587))),
            security=values.get("security", "starttls"), username=values.get("username"),
            password=values.get("password"), sender=str(values.get("sender", "")),
            to=tuple([to] if isinstance(to, str) else to), ca_file=values.get("ca_file"),
            sites=_set(values.get("sites"), f"{where}.sites"),
            severities=_set(values.get("severities"), f"{where}.severities"),
            rules=_set(values.get("rules"), f"{where}.rules"),
            events=events if events is not None else frozenset(EVENTS),
            rate_per_minute=int(values.get("rate_per_minute", per_minute)),
            rate_per_second=values.get("rate_per_second", per_second)))
    language = data.get("language", "zh")
    site_languages = {s: v.get("language", language) for s, v in data.get("sites", {}).items()}
    for lang in (language, *site_languages.values()):
        if lang not in LANGUAGES:
            raise ConfigError(f"language must be one of {', '.join(LANGUAGES)}")
    return NotifyConfig(tuple(channels), data.get("base_url"), language, site_languages)


def load(path: Path) -> NotifyConfig:
    """Read a configuration file (TOML)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{Path(path).name}: {exc}") from None
    return parse(data)
