"""Delivery of alarm events to the configured channels, from the notifier's worker.

The notifier queues each event it takes out of ``alarm_events`` for the channels that want it
(:func:`twin.storage.deliveries.queue`, once per event and channel), then calls :meth:`Dispatcher.deliver`:
per channel, oldest first, as the channel's rate limit allows; a failure is stored with its reason
(secrets redacted) and retried after a growing backoff, later events of that channel waiting behind
it so that raised, acknowledged and cleared arrive in order. Nothing here runs in a monitor cycle.
"""

from __future__ import annotations

import logging
import ssl
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from twin.monitoring.channels import dingtalk, email, feishu, wecom
from twin.monitoring.channels.config import Channel, NotifyConfig
from twin.monitoring.channels.message import Message, compose, test_message
from twin.storage import deliveries

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
BACKOFF_S = 2.0
MAX_BACKOFF_S = 300.0
BATCH = 100
#: The limits' windows are stretched by this much (5 a second: at most 5 in any 1.1 s), so that network
#: jitter never lets a robot count more than its documented limit in its own window.
WINDOW_MARGIN = 1.1


class RateLimit:
    """Sliding windows: at most ``n`` sends in any ``window_s`` seconds, for each (n, window_s)."""

    def __init__(self, limits: list[tuple[int, float]], clock: Callable[[], float]) -> None:
        self.limits = [(n, w) for n, w in limits if n > 0]
        self.clock = clock
        self.sent: deque[float] = deque(maxlen=max((n for n, _ in self.limits), default=1))

    def wait(self) -> float:
        """Seconds until one more send is allowed (0: now)."""
        now = self.clock()
        wait = 0.0
        for n, window in self.limits:
            if len(self.sent) >= n:
                wait = max(wait, self.sent[-n] + window - now)
        return max(0.0, wait)

    def record(self) -> None:
        self.sent.append(self.clock())


def _answer_error(raw: bytes) -> str | None:
    """A robot's JSON answer: ``None`` when it says OK (errcode 0 / code 0 / StatusCode 0), else why not."""
    try:
        answer = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    for key in ("errcode", "code", "StatusCode"):
        if key in answer and answer[key] not in (0, "0"):
            msg = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
            return f"{key} {answer[key]}: {msg}".strip()
    return None


def post_json(url: str, payload: Mapping[str, Any], timeout: float = TIMEOUT_S) -> str | None:
    """POST ``payload``; ``None`` when the robot accepted it, else the reason (may contain the URL)."""
    request = urllib.request.Request(url, data=orjson.dumps(payload), method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "User-Agent": "campus-twin"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _answer_error(response.read())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc)) or type(exc).__name__


#: Attempts after which a delivery is given up (shown as a failure; its channel goes on): with the default backoff
#: (2 s doubling, at most 5 min) about 2 h of refusals.
MAX_ATTEMPTS = 30


def retry_delay(attempts: int, backoff_s: float, max_backoff_s: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling, at most ``max_backoff_s``."""
    return min(max_backoff_s, backoff_s * 2 ** min(attempts, 30))


class Dispatcher:
    """Sends queued events to the channels of ``config``; ``clock`` (monotonic seconds) drives the rate limits."""

    def __init__(self, config: NotifyConfig, *, clock: Callable[[], float] = time.monotonic,
                 backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S, timeout_s: float = TIMEOUT_S,
                 wall: Callable[[], float] = time.time, margin: float = WINDOW_MARGIN) -> None:
        self.config = config
        self.clock = clock
        self.wall = wall
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.limits = {c.name: RateLimit([(c.rate_per_minute, 60.0 * margin)]
                                         + ([(c.rate_per_second, margin)] if c.rate_per_second else []), clock)
                       for c in config.channels}
        self.sent = 0

    def queue(self, conn: psycopg.Connection, event: Mapping[str, Any]) -> list[str]:
        """Queue one lifecycle event (a row of :func:`twin.storage.alarms.pending_events`) for its channels."""
        names = [c.name for c in self.config.for_event(event["site_id"], event["severity"], event["rule"],
                                                       event["event"])]
        deliveries.queue(conn, event["event_id"], event["site_id"], names)
        return names

    def deliver(self, conn: psycopg.Connection) -> float | None:
        """Send what is due on every channel (committing each); seconds until more could go, or None."""
        wake: float | None = None
        for channel in self.config.channels:
            try:
                wait = self._deliver_channel(conn, channel)
            except psycopg.Error:
                raise  # the database's: the notifier retries with its connection
            except Exception:  # a bug in one channel must not stop the others, nor the notifier
                log.exception("alarm notification channel=%s failed; tried again later", channel.name)
                conn.rollback()
                wait = self.max_backoff_s
            if wait is not None:
                wake = wait if wake is None else min(wake, wait)
        return wake

    def _deliver_channel(self, conn: psycopg.Connection, channel: Channel) -> float | None:
        limit = self.limits[channel.name]
        while True:
            rows = deliveries.pending(conn, channel.name, limit=BATCH)
            if not rows:
                return None
            for row in rows:
                due_in = (row.next_at - datetime.now(UTC)).total_seconds()
                if due_in > 0:
                    return due_in
                wait = limit.wait()
                if wait > 0:
                    return wait
                message = compose(asdict(row), self.config.language_of(row.site_id), self.config.base_url)
                limit.record()
                reason = self.send(channel, message)
                if reason is None:
                    deliveries.mark_sent(conn, row.event_id, channel.name)
                    conn.commit()
                    self.sent += 1
                    continue
                if row.attempts + 1 >= MAX_ATTEMPTS:
                    deliveries.give_up(conn, row.event_id, channel.name, f"given up after {row.attempts + 1} "
                                                                         f"attempts: {reason}")
                    conn.commit()
                    log.error("alarm notification to channel=%s kind=%s given up event=%s alarm=%s after %d attempts: "
                              "%s", channel.name, channel.kind, row.event, row.alarm_id, row.attempts + 1, reason)
                    continue
                retry = retry_delay(row.attempts, self.backoff_s, self.max_backoff_s)
                deliveries.mark_failed(conn, row.event_id, channel.name, reason, timedelta(seconds=retry))
                conn.commit()
                log.warning("alarm notification to channel=%s kind=%s failed event=%s alarm=%s attempt=%d: %s; "
                            "retried in %.1f s", channel.name, channel.kind, row.event, row.alarm_id,
                            row.attempts + 1, reason, retry)
                return retry
            if len(rows) < BATCH:
                return None

    def send(self, channel: Channel, message: Message) -> str | None:
        """Send one message now; ``None`` on success, else the reason with every secret redacted."""
        try:
            reason = self._send(channel, message)
        except Exception as exc:  # noqa: BLE001 - any failure of a send (a broken answer: http.client's
            # IncompleteRead, BadStatusLine) is the channel's, stored and retried, never the notifier's end
            reason = f"{type(exc).__name__}: {exc}"
        return None if reason is None else channel.redact(reason)

    def _send(self, channel: Channel, message: Message) -> str | None:
        if channel.kind == "email":
            mail = email.build(message, channel.sender, channel.to)
            context = ssl.create_default_context(cafile=channel.ca_file)
            email.send(mail, host=channel.host, port=channel.port, security=channel.security,
                       username=channel.username, password=channel.password, timeout=self.timeout_s,
                       context=context)
            return None
        if channel.kind == "wecom":
            url, payload = wecom.request(channel.url, message)
        elif channel.kind == "dingtalk":
            url, payload = dingtalk.request(channel.url, message, secret=channel.secret,
                                            now_ms=int(self.wall() * 1000))
        else:
            url, payload = feishu.request(channel.url, message, secret=channel.secret, now_s=int(self.wall()))
        return post_json(url, payload, timeout=self.timeout_s)

    def test(self, site_id: str, school: str) -> dict[str, str | None]:
        """Send a test message to every channel of ``site_id``; the reason of each failure (None: sent)."""
        message = test_message(school, self.config.language_of(site_id), self.config.base_url)
        return {c.name: self.send(c, message) for c in self.config.for_site(site_id)}
