"""Alarm events reach WeCom, DingTalk and Feishu robots and e-mail through the notifier's worker: loopback
stand-ins for the robots (checking the exact JSON and the signatures as the vendors document them) and
an aiosmtpd server. Real database; the rate limits run on an injected clock."""

from __future__ import annotations

import base64
import email as email_lib
import hashlib
import hmac
import json
import logging
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from tests.helpers import small_twin, wait_for
from twin.database import connection
from twin.monitoring.channels import config
from twin.monitoring.channels.dispatch import Dispatcher
from twin.monitoring.notify import Notifier
from twin.storage import alarms, deliveries
from twin.storage.model import save_model

DING_SECRET = "SECding-secret-0123"
FEISHU_SECRET = "feishu-secret-0123"
KEY = "wecom-key-TOPSECRET"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Robots:
    """One HTTP server standing in for the three robots (paths /wecom, /dingtalk, /feishu)."""

    def __init__(self, port: int | None = None) -> None:
        self.received: dict[str, list[dict]] = {"wecom": [], "dingtalk": [], "feishu": []}
        self.bad: list[str] = []
        self.lock = threading.Lock()
        #: Answer every message with a refusal (a revoked key), keeping none.
        self.refuse = False
        robots = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                kind = url.path.strip("/")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                query = urllib.parse.parse_qs(url.query)
                problem = robots.check(kind, query, body)
                if robots.refuse:
                    problem = "invalid webhook url"
                with robots.lock:
                    if robots.refuse:
                        pass
                    elif problem:
                        robots.bad.append(problem)
                    else:
                        robots.received[kind].append(body)
                answer = {"errcode": 0, "errmsg": "ok"} if kind != "feishu" else {"code": 0, "msg": "success"}
                if problem:
                    answer = {"errcode": 310000, "errmsg": problem} if kind != "feishu" else {"code": 19021,
                                                                                              "msg": problem}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def check(kind: str, query: dict[str, list[str]], body: dict) -> str | None:
        """The vendors' documented checks, written out here from their documentation."""
        if kind == "wecom":
            if query.get("key") != [KEY] or body.get("msgtype") != "markdown" or set(body) != {"msgtype", "markdown"}:
                return "wecom: bad key or body"
            return None if set(body["markdown"]) == {"content"} else "wecom: markdown needs content only"
        if kind == "dingtalk":
            ts = query["timestamp"][0]
            digest = hmac.new(DING_SECRET.encode(), f"{ts}\n{DING_SECRET}".encode(), hashlib.sha256).digest()
            if query["sign"][0] != base64.b64encode(digest).decode():  # parse_qs has url-decoded it
                return "dingtalk: sign mismatch"
            ok = body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
            return None if ok else "dingtalk: bad body"
        if kind == "feishu":
            digest = hmac.new(f"{body['timestamp']}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()
            if body["sign"] != base64.b64encode(digest).decode():
                return "feishu: sign match fail"
            return None if body["msg_type"] == "interactive" and "card" in body else "feishu: bad body"
        return f"unknown path {kind}"

    def count(self, kind: str) -> int:
        with self.lock:
            return len(self.received[kind])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email_lib.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email_lib.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def robots() -> Iterator[Robots]:
    r = Robots()
    yield r
    r.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def site(db_url: str) -> tuple[str, str]:
    site_id = f"ch-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=50))
    return db_url, site_id


def channels(port: int, site_id: str, smtp_port: int | None = None, **limits: int) -> config.NotifyConfig:
    base = f"http://127.0.0.1:{port}"
    raw: list[dict] = [
        {"name": "wecom", "kind": "wecom", "url": f"{base}/wecom?key={KEY}", "sites": [site_id]},
        {"name": "ding", "kind": "dingtalk", "url": f"{base}/dingtalk?access_token=tok1234", "secret": DING_SECRET},
        {"name": "feishu", "kind": "feishu", "url": f"{base}/feishu", "secret": FEISHU_SECRET},
    ]
    if smtp_port:
        raw.append({"name": "mail", "kind": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
                    "sender": "twin@school.example", "to": ["fm@school.example"]})
    for c in raw:
        c.update(limits)
    return config.parse({"base_url": "https://twin.example", "language": "en", "channels": raw,
                         "sites": {site_id: {"language": "zh"}}})


def device_keys(url: str, site_id: str) -> list[int]:
    with connection(url) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM devices WHERE site_id = %s ORDER BY id",
                                           (site_id,)).fetchall()]


def raise_alarms(url: str, site_id: str, n: int) -> list[int]:
    with connection(url) as conn:
        return [alarms.raise_alarm(conn, site_id, "device_low_battery", "warning", f"battery at {i}%", device_key=k)
                for i, k in enumerate(device_keys(url, site_id)[:n])]


def unsent(url: str) -> int:
    with connection(url) as conn:
        return conn.execute("SELECT count(*) FROM alarm_deliveries WHERE sent_at IS NULL").fetchone()[0]


def test_raised_acknowledged_and_cleared_give_three_messages_on_every_channel_in_order(site, robots, mailbox):
    url, site_id = site
    box, smtp_port = mailbox
    (alarm_id,) = raise_alarms(url, site_id, 1)
    with connection(url) as conn:
        assert alarms.acknowledge(conn, alarm_id, by="li.wei", note="battery ordered")
        assert alarms.clear(conn, alarm_id)
    notifier = Notifier(None, None, channels=Dispatcher(channels(robots.port, site_id, smtp_port), backoff_s=0.05),
                        poll_s=0.05)
    notifier.start(url)
    try:
        wait_for(lambda: all(robots.count(k) == 3 for k in robots.received) and len(box.messages) == 3)
    finally:
        notifier.close()
    assert robots.bad == []
    titles = [b["markdown"]["content"].splitlines()[0] for b in robots.received["wecom"]]
    assert titles == ["**[警告] 告警产生: device_low_battery, Room 0**", "**[警告] 告警已确认: device_low_battery, Room 0**",
                      "**[警告] 告警已解除: device_low_battery, Room 0**"]
    assert [b["markdown"]["title"] for b in robots.received["dingtalk"]] == [t.strip("*") for t in titles]
    assert [b["card"]["header"]["title"]["content"] for b in robots.received["feishu"]] == [t.strip("*") for t in titles]
    assert "确认人: li.wei" in robots.received["wecom"][1]["markdown"]["content"]
    assert "[查看房间](https://twin.example/room/" in robots.received["wecom"][0]["markdown"]["content"]
    assert [m["Subject"] for m in box.messages] == [t.strip("*") for t in titles]
    assert [p.get_content_type() for p in box.messages[0].iter_parts()] == ["text/plain", "text/html"]
    assert unsent(url) == 0
    # delivered once: another pass sends nothing again
    with connection(url) as conn:
        assert Notifier(None, None, channels=Dispatcher(channels(robots.port, site_id, smtp_port))).send_pending(conn) == 0
    assert robots.count("wecom") == 3


def test_a_burst_of_100_alarms_respects_each_robots_limit_and_loses_none(site, robots):
    url, site_id = site
    raise_alarms(url, site_id, 100)
    now = [0.0]
    cfg = channels(robots.port, site_id)
    dispatcher = Dispatcher(cfg, clock=lambda: now[0], margin=1.0)  # the documented windows exactly
    sent_per_minute = {"wecom": [], "feishu": []}
    with connection(url) as conn:
        Notifier(None, None, channels=dispatcher).send_pending(conn)  # queues all, sends what the limits allow
        for _minute in range(5):
            for _second in range(60):
                dispatcher.deliver(conn)
                now[0] += 1.0
            sent_per_minute["wecom"].append(robots.count("wecom"))
            sent_per_minute["feishu"].append(robots.count("feishu"))
        dispatcher.deliver(conn)
    assert sent_per_minute["wecom"] == [20, 40, 60, 80, 100]  # WeCom: 20 a minute per robot
    assert sent_per_minute["feishu"] == [100] * 5  # Feishu: 5 a second, 100 a minute
    assert robots.count("dingtalk") == 100 and robots.bad == []
    assert Dispatcher(cfg).limits["feishu"].limits == [(100, 66.0), (5, 1.1)]  # by default, with a margin
    devices = [b["markdown"]["content"] for b in robots.received["wecom"]]
    assert len(set(devices)) == 100
    assert unsent(url) == 0


def test_feishu_sends_at_most_five_a_second():
    now = [0.0]
    from twin.monitoring.channels.dispatch import RateLimit
    limit = RateLimit([(100, 60.0), (5, 1.0)], lambda: now[0])
    sent = 0
    while limit.wait() == 0:
        limit.record()
        sent += 1
    assert sent == 5


def test_a_robot_that_is_down_gets_the_messages_once_it_is_back_and_the_failure_is_stored_redacted(site, caplog):
    url, site_id = site
    port = _free_port()  # nothing listens there yet
    caplog.set_level(logging.WARNING, logger="twin.monitoring.channels.dispatch")
    raise_alarms(url, site_id, 3)
    cfg = channels(port, site_id)
    notifier = Notifier(None, None, channels=Dispatcher(cfg, backoff_s=0.05, max_backoff_s=0.3), poll_s=0.05)
    notifier.start(url)
    robots = None
    try:
        def failed() -> list[deliveries.DeliveryFailure]:
            with connection(url) as conn:
                return deliveries.failures(conn, site_id)
        stored = wait_for(lambda: [f for f in failed() if f.attempts >= 2 and f.channel == "wecom"])
        assert "refused" in stored[0].last_error.lower()
        assert KEY not in stored[0].last_error
        robots = Robots(port)
        wait_for(lambda: all(robots.count(k) == 3 for k in robots.received))
        wait_for(lambda: unsent(url) == 0)
        assert failed() == []
    finally:
        notifier.close()
        if robots is not None:
            robots.close()
    assert robots.bad == []
    order = [b["markdown"]["content"] for b in robots.received["wecom"]]
    assert [("battery at 0%" in order[0]), ("battery at 1%" in order[1]), ("battery at 2%" in order[2])] == [True] * 3
    text = caplog.text
    assert "failed" in text and KEY not in text and DING_SECRET not in text and "tok1234" not in text


def _certificate(tmp_path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl), as a school's own relay might have."""
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_email_over_starttls_checks_the_relay_logs_in_and_sends_a_text_and_an_html_part(site, tmp_path):
    import ssl

    from aiosmtpd.smtp import AuthResult

    url, site_id = site
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"mail-pass-0123")

    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        raise_alarms(url, site_id, 1)
        cfg = config.parse({"language": "en", "channels": [
            {"name": "mail", "kind": "email", "host": "127.0.0.1", "port": port, "security": "starttls",
             "username": "twin", "password": "mail-pass-0123", "sender": "twin@school.example",
             "to": ["fm@school.example"], "ca_file": cert}]})
        with connection(url) as conn:
            Notifier(None, None, channels=Dispatcher(cfg)).send_pending(conn)
        assert logins == [(b"twin", b"mail-pass-0123")]
        assert [m["Subject"] for m in box.messages] == ["[warning] Alarm raised: device_low_battery, Room 0"]
        assert [p.get_content_type() for p in box.messages[0].iter_parts()] == ["text/plain", "text/html"]
        # without its CA the relay's certificate is refused: a failure with its reason, before any login
        with connection(url) as conn:
            alarms.raise_alarm(conn, site_id, "device_low_battery", "warning", "battery at 4%",
                               device_key=device_keys(url, site_id)[1])
        bad = config.parse({"channels": [{"name": "mail", "kind": "email", "host": "127.0.0.1", "port": port,
                                          "username": "twin", "password": "mail-pass-0123",
                                          "sender": "twin@school.example", "to": "fm@school.example"}]})
        with connection(url) as conn:
            Notifier(None, None, channels=Dispatcher(bad)).send_pending(conn)
            (failure,) = deliveries.failures(conn, site_id)
        assert "CERTIFICATE_VERIFY_FAILED" in failure.last_error and "mail-pass" not in failure.last_error
        assert len(logins) == 1 and len(box.messages) == 1
    finally:
        controller.stop()


def test_a_hanging_robot_holds_no_monitor_cycle_and_gets_every_event_once_it_answers(site):
    from twin.monitoring.monitor import Monitor

    url, site_id = site
    release = threading.Event()
    robots = Robots()
    hanging = []
    check = robots.check

    def hang_then_check(kind, query, body):
        if not release.is_set():
            hanging.append(kind)
            release.wait()
        return check(kind, query, body)

    robots.check = hang_then_check  # type: ignore[method-assign]
    cfg = config.parse({"channels": [{"name": "wecom", "kind": "wecom",
                                      "url": f"http://127.0.0.1:{robots.port}/wecom?key={KEY}"}]})
    notifier = Notifier(None, None, channels=Dispatcher(cfg, timeout_s=0.2, backoff_s=0.05, max_backoff_s=0.2),
                        poll_s=0.05)
    monitor = Monitor(url, notifier=notifier)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop, 0.05), name="monitor", daemon=True)
    thread.start()

    def low_battery(device: str) -> None:
        with connection(url) as conn:
            conn.execute("UPDATE device_status SET battery_pct = 5 WHERE device_id = (SELECT id FROM devices "
                         "WHERE site_id = %s AND device_id = %s)", (site_id, device))

    def battery_alarms() -> set[str]:
        with connection(url) as conn:
            return {r[0] for r in conn.execute(
                """SELECT d.device_id FROM alarms a JOIN devices d ON d.id = a.device_id
                   WHERE a.site_id = %s AND a.rule = 'device_low_battery'""", (site_id,)).fetchall()}

    try:
        low_battery("ENV-0")
        wait_for(lambda: battery_alarms() == {"ENV-0"})
        wait_for(lambda: len(hanging) >= 2)  # timed out and retried: the robot still hangs
        low_battery("ENV-1")  # the monitor's next cycles raise it meanwhile
        wait_for(lambda: battery_alarms() == {"ENV-0", "ENV-1"})
        assert robots.count("wecom") == 0
        release.set()
        wait_for(lambda: robots.count("wecom") >= 2 and unsent(url) == 0)
    finally:
        release.set()
        stop.set()
        thread.join(30)
        robots.close()
    assert not thread.is_alive()
    contents = [b["markdown"]["content"] for b in robots.received["wecom"]]
    assert "ENV-0" in contents[0] and "ENV-1" in contents[-1]
    assert robots.bad == []


class _BrokenAnswer(BaseHTTPRequestHandler):
    """A robot (or a proxy before it) that announces 100 bytes and sends 12: http.client's IncompleteRead."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b'{"errcode":0')
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_a_broken_answer_is_the_channels_failure_not_the_notifiers_end(site):
    """It ended the notifier's thread (and so the monitor), and again after every restart."""
    url, site_id = site
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    raise_alarms(url, site_id, 1)
    cfg = config.parse({"channels": [{"name": "wecom", "kind": "wecom",
                                      "url": f"http://127.0.0.1:{server.server_address[1]}/wecom?key={KEY}"}]})
    notifier = Notifier(None, None, channels=Dispatcher(cfg, backoff_s=0.05, max_backoff_s=0.1), poll_s=0.05)
    notifier.start(url)
    try:
        def failed() -> list[deliveries.DeliveryFailure]:
            with connection(url) as conn:
                return deliveries.failures(conn, site_id)
        stored = wait_for(lambda: [f for f in failed() if f.attempts >= 2])
        assert "IncompleteRead" in stored[0].last_error and KEY not in stored[0].last_error
        assert notifier.running
    finally:
        notifier.close()
        server.shutdown()


def test_the_backoff_is_bounded_whatever_the_attempts():
    """2 ** 1024 attempts overflowed a float: after 3.5 days of a deleted robot the monitor died, and again."""
    from twin.monitoring.channels.dispatch import retry_delay

    assert retry_delay(0, 2.0, 300.0) == 2.0 and retry_delay(3, 2.0, 300.0) == 16.0
    assert retry_delay(5000, 2.0, 300.0) == 300.0


def test_a_message_refused_for_good_is_given_up_and_the_channel_goes_on(site):
    """A robot whose key was revoked refuses every attempt: after MAX_ATTEMPTS the event is given up (and shown as
    such), the events after it are sent."""
    from twin.monitoring.channels.dispatch import MAX_ATTEMPTS

    url, site_id = site
    robots = Robots(_free_port())
    try:
        first, _second = raise_alarms(url, site_id, 2)
        dispatcher = Dispatcher(channels(robots.port, site_id), backoff_s=0.0, max_backoff_s=0.0)
        robots.refuse = True
        with connection(url) as conn:
            Notifier(None, None, channels=dispatcher).send_pending(conn)  # queued, refused once each
            conn.execute("""UPDATE alarm_deliveries q SET attempts = %s FROM alarm_events e
                            WHERE e.id = q.event_id AND e.alarm_id = %s""", (MAX_ATTEMPTS - 1, first))
            conn.commit()
            dispatcher.deliver(conn)  # the first refused once more: given up on every channel; the second refused
            robots.refuse = False
            dispatcher.deliver(conn)
            given_up = [f for f in deliveries.failures(conn, site_id) if f.alarm_id == first]
        assert {f.channel for f in given_up} == {"wecom", "ding", "feishu"}
        assert all("given up" in f.last_error for f in given_up)
        assert [("battery at 1%" in b["markdown"]["content"]) for b in robots.received["wecom"]] == [True]
    finally:
        robots.close()
