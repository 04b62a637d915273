"""Dashboard hardening against the real app, a real server process and the real database: request
bodies refused by role before they are read (memory of the served process bounded), security
headers, login throttling per address and per username, unknown asset paths."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dash
import pytest

from tests.helpers import PASSWORD, add_user, http_login, wait_for
from tests.test_dashboard import _free_port, _up, make_app, serving
from twin import security
from twin.database import connection

MB = 1024 * 1024
#: Headers every response of the dashboard carries (docs/security.md).
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin"}


def _router_call(dependencies: list[dict]) -> dict:
    """What dash-renderer POSTs to show the alarms page (the pages router callback)."""
    output = next(d["output"] for d in dependencies if "_pages_content.children" in d["output"])
    return {"output": output,
            "outputs": [{"id": "_pages_content", "property": "children"},
                        {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/alarms"},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}


def _vm(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` (peak) of a process and all its descendants (gunicorn's master and workers), in
    bytes, from /proc (the sum of peaks bounds the peak of the sum)."""
    import psutil

    total = 0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            lines = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        except FileNotFoundError:
            continue  # ended meanwhile
        total += next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field + ":"))
    return total


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``campus-twin dashboard`` in its own process on a free port: its base URL and pid."""
    for role in ("viewer", "planner"):
        add_user(db_url, f"{role}-1", role)
    with _dashboard_process(db_url, tmp_path) as (base, pid):
        yield base, pid


@contextlib.contextmanager
def _dashboard_process(db_url: str, tmp_path: Path, *args: str) -> Iterator[tuple[str, int]]:
    """``campus-twin dashboard [args]`` in its own process on a free port: its base URL and pid."""
    port = _free_port()
    exe = shutil.which("campus-twin", path=str(Path(sys.executable).parent)) or shutil.which("campus-twin")
    assert exe, "the campus-twin command is installed with the project"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUS_TWIN_")}
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen([exe, "--database-url", db_url, "dashboard", "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or _up(base), timeout=90)
        assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _post_headers(base: str, path: str, headers: dict[str, str]) -> http.client.HTTPConnection:
    """A POST whose headers are sent, none of its body yet."""
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)
    conn.putrequest("POST", path)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


def _upload_body(length: int, chunk: int = MB) -> Iterator[bytes]:
    """``length`` bytes of an upload-shaped callback body, from a generator (never all in memory)."""
    head = b'{"output":"..bim-result.children...bim-log.children..","inputs":[{"id":"bim-upload",' \
           b'"property":"contents","value":"data:application/octet-stream;base64,'
    tail = b'"}],"changedPropIds":["bim-upload.contents"],"state":[]}'
    yield head
    left = length - len(head) - len(tail)
    block = b"A" * chunk
    while left > 0:
        yield block[:min(chunk, left)]
        left -= chunk
    yield tail


def _streamed(conn: http.client.HTTPConnection, parts: Iterator[bytes], chunked: bool = False) -> int | None:
    """Send ``parts`` as the body (with chunked framing when ``chunked``); the answer's status
    (None when the server closed the connection before the whole body was sent)."""
    try:
        for part in parts:
            conn.send(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused early: the server stopped reading
    try:
        return conn.getresponse().status
    except (ConnectionResetError, http.client.RemoteDisconnected):
        return None
    finally:
        conn.close()


def test_oversized_request_bodies_are_refused_before_they_are_read_and_memory_stays_bounded(
        served: tuple[str, int]) -> None:
    base, pid = served
    viewer = http_login(base, "viewer-1")[1]
    planner = http_login(base, "planner-1")[1]
    callback = "/_dash-update-component"
    json_type = {"Content-Type": "application/json"}
    # Answered from the headers alone: no body byte was sent, so nothing was read.
    for path, who, length, expected in ((callback, viewer, 200 * MB, 413), (callback, viewer, 2 * MB, 413),
                                        (callback, planner, 1024 * MB, 413), (callback, None, 200 * MB, 401),
                                        ("/login", None, 10 * MB, 413), (callback, viewer, None, 411)):
        size = {"Content-Length": str(length)} if length else {"Transfer-Encoding": "chunked"}
        conn = _post_headers(base, path, {**json_type, **(who.headers if who else {}), **size})
        try:
            response = conn.getresponse()
            assert response.status == expected, (path, length, response.status)
        finally:
            conn.close()
    # Three viewer POSTs of 200 MB each, two with a length, one chunked: refused, memory bounded.
    rss_before = _vm(pid, "VmRSS")
    sized = {**json_type, **viewer.headers, "Content-Length": str(200 * MB)}
    statuses = [_streamed(_post_headers(base, callback, sized), _upload_body(200 * MB)) for _ in range(2)]
    chunked = {**json_type, **viewer.headers, "Transfer-Encoding": "chunked"}
    statuses.append(_streamed(_post_headers(base, callback, chunked), _upload_body(200 * MB), chunked=True))
    assert statuses[:2] == [413, 413] and statuses[2] in (411, None), statuses
    peak, rss_after = _vm(pid, "VmHWM"), _vm(pid, "VmRSS")
    assert peak < rss_before + 100 * MB, f"peak RSS {peak / MB:.0f} MB, {rss_before / MB:.0f} MB before"
    assert rss_after < rss_before + 50 * MB, f"RSS {rss_after / MB:.0f} MB after, {rss_before / MB:.0f} MB before"
    # the dashboard still answers, and a callback of normal size passes the viewer's limit
    opener, who = http_login(base, "viewer-1")
    call = _router_call(json.loads(opener.open(base + "/_dash-dependencies", timeout=30).read()))
    request = urllib.request.Request(base + callback, json.dumps(call).encode(),
                                     {**json_type, "X-CSRFToken": who.csrf})
    with opener.open(request, timeout=30) as response:
        assert response.status == 200 and "_pages_content" in response.read().decode()


@pytest.fixture
def app(db_url: str) -> Iterator[dash.Dash]:
    from dashboard.app import close_app

    for name, role in (("viewer-1", "viewer"), ("viewer-2", "viewer"), ("admin-1", "admin")):
        add_user(db_url, name, role)
    app = make_app(db_url)
    try:
        yield app
    finally:
        close_app(app)


def _assert_security_headers(response, what: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (what, name, response.headers.get(name))
    csp = response.headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], (what, csp)
    assert directives.get("default-src") == ["'self'"] and directives.get("object-src") == ["'none'"], (what, csp)
    assert "'unsafe-inline'" not in directives.get("script-src", ["'unsafe-inline'"]), (what, csp)


def test_security_headers_on_pages_callbacks_the_login_and_errors(app: dash.Dash) -> None:
    from tests.helpers import login

    client = app.server.test_client()
    _assert_security_headers(client.get("/login"), "login form")
    _assert_security_headers(client.get("/alarms"), "redirect to the login")
    _assert_security_headers(client.get("/_dash-layout"), "401")
    who = login(client, "viewer-1")
    _assert_security_headers(client.get("/"), "page")
    _assert_security_headers(client.get("/_dash-dependencies"), "callback map")
    routed = client.post("/_dash-update-component", headers={"X-CSRFToken": who.csrf},
                         json=_router_call(client.get("/_dash-dependencies").get_json()))
    assert routed.status_code == 200, routed.get_data(as_text=True)[:300]
    _assert_security_headers(routed, "callback")
    _assert_security_headers(client.get("/assets/style.css"), "asset")
    _assert_security_headers(client.get("/assets/nothing-here.css"), "404")
    # the inline script Dash renders is allowed by its hash, and only that
    page = client.get("/").get_data(as_text=True)
    assert '<script id="_dash-renderer"' in page
    for digest in app.csp_hashes():
        assert digest in client.get("/").headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/_dash-component-suites/not_a_package/x.js",
                                  "/_dash-component-suites/dash/not-a-file.v1_0_0m1.js",
                                  "/_dash-component-suites/dash/../../etc/passwd",
                                  "/assets/nothing-here.css"])
def test_unknown_asset_paths_answer_404_without_listing_what_is_registered(
        app: dash.Dash, path: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        response = app.server.test_client().get(path)
    assert response.status_code == 404, (path, response.status_code)
    text = response.get_data(as_text=True) + caplog.text
    assert "registered" not in text.lower() and "dash_core_components" not in text, text[:500]


# --- login throttling -----------------------------------------------------------------------------


def _attempt(app: dash.Dash, username: str, password: str, address: str) -> tuple[int, dict[str, str]]:
    """A login through the form from ``address``: its status and headers."""
    client = app.server.test_client()
    env = {"REMOTE_ADDR": address}
    page = client.get("/login", environ_base=env).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                           environ_base=env)
    return response.status_code, dict(response.headers)


def _failures(url: str, *, username: str | None = None, address: str | None = None) -> int:
    with connection(url) as conn:
        return int(conn.execute(
            """SELECT count(*) FROM audit_log WHERE action = 'login' AND outcome = 'failed'
                 AND (%(u)s::text IS NULL OR username = %(u)s) AND (%(a)s::text IS NULL OR remote_addr = %(a)s)""",
            {"u": username, "a": address}).fetchone()[0])


def _store_failures(url: str, n: int, *, username: str | None = None, address: str | None = None) -> None:
    """``n`` failed logins stored just now, as the limiter reads them (one username or ``n`` different ones)."""
    with connection(url) as conn:
        for i in range(n):
            conn.execute("INSERT INTO audit_log (username, action, outcome, remote_addr) VALUES (%s, 'login', "
                         "'failed', %s)", (username or f"nobody-{i}", address or f"198.51.100.{i % 250}"))


def _age_failures(url: str, seconds: float) -> None:
    """Let ``seconds`` pass for the limiter: every stored login attempt moves that far into the past."""
    with connection(url) as conn:
        conn.execute("UPDATE audit_log SET ts = ts - make_interval(secs => %s) WHERE action = 'login'", (seconds,))


def test_the_throttle_grows_exponentially_and_is_bounded() -> None:
    rule = security.Throttle(free=5, cap_s=900)
    assert [security.login_wait(n, 0.0, rule) for n in (0, 4, 5, 6, 7, 10)] == [0, 0, 1, 2, 4, 32]
    assert security.login_wait(40, 0.0, rule) == 900 and security.login_wait(40, 900.0, rule) == 0
    assert security.login_wait(7, 3.0, rule) == 1  # measured from the latest failure


def test_guessing_one_password_is_throttled_for_that_address_only(app: dash.Dash, db_url: str) -> None:
    attacker, user = "203.0.113.7", "192.0.2.10"
    refused = None
    for i in range(30):  # wrong passwords as fast as the form takes them, until the throttle answers
        status, headers = _attempt(app, "viewer-1", f"guess-{i}", attacker)
        if status == 429:
            refused = headers
            break
        assert status == 401
    assert refused is not None and int(refused["Retry-After"]) >= 1
    tried = _failures(db_url, username="viewer-1", address=attacker)
    assert security.PAIR_THROTTLE.free <= tried < 30  # refused attempts are not even tried
    # the real user, from their own address, logs in at once
    assert _attempt(app, "viewer-1", PASSWORD, user)[0] == 302
    # the attacker's address stays throttled, even with the right password, for as long as the stored
    # failures say: here the longest wait (the cap) ...
    _store_failures(db_url, 20, username="viewer-1", address=attacker)
    status, headers = _attempt(app, "viewer-1", PASSWORD, attacker)
    assert status == 429 and security.PAIR_THROTTLE.cap_s - 60 < int(headers["Retry-After"]) <= \
        security.PAIR_THROTTLE.cap_s
    # ... and no longer: once the cap has passed since the latest failure, a right password works there too
    _age_failures(db_url, security.PAIR_THROTTLE.cap_s + 1)
    assert _attempt(app, "viewer-1", PASSWORD, attacker)[0] == 302


def test_spraying_many_usernames_from_one_address_is_throttled(app: dash.Dash, db_url: str) -> None:
    sprayer = "203.0.113.99"
    statuses = [_attempt(app, f"user-{i}", "Winter2026!", sprayer)[0] for i in range(40)]
    assert 429 in statuses and set(statuses) == {401, 429}, statuses
    assert security.ADDRESS_THROTTLE.free <= _failures(db_url, address=sprayer) < 40
    assert _attempt(app, "viewer-2", PASSWORD, "192.0.2.20")[0] == 302  # others are not affected
    _store_failures(db_url, 40, address=sprayer)
    assert _attempt(app, "viewer-1", PASSWORD, sprayer)[0] == 429  # the address as a whole is slowed
    _age_failures(db_url, security.ADDRESS_THROTTLE.cap_s + 1)
    assert _attempt(app, "viewer-1", PASSWORD, sprayer)[0] == 302


def test_a_distributed_attack_on_one_user_never_locks_out_an_address_it_logged_in_from(
        app: dash.Dash, db_url: str) -> None:
    home = "192.0.2.30"
    assert _attempt(app, "viewer-1", PASSWORD, home)[0] == 302  # the user's usual address
    _store_failures(db_url, 40, username="viewer-1")  # one or two guesses from each of many addresses
    status, headers = _attempt(app, "viewer-1", PASSWORD, "192.0.2.31")  # an address never used by the user
    assert status == 429 and int(headers["Retry-After"]) <= security.USERNAME_THROTTLE.cap_s
    assert _attempt(app, "viewer-1", PASSWORD, home)[0] == 302  # a known address: no wait
    _store_failures(db_url, 40, username="viewer-1")
    _age_failures(db_url, security.USERNAME_THROTTLE.cap_s + 1)  # the bound for new addresses
    assert _attempt(app, "viewer-1", PASSWORD, "192.0.2.31")[0] == 302


def test_a_burst_of_parallel_guesses_is_taken_one_at_a_time(app: dash.Dash, db_url: str) -> None:
    """40 wrong passwords posted at once from one address: attempts from one address run one at a
    time, so the throttle sees each stored failure and lets only a few be tried."""
    import http.cookiejar
    import threading
    import urllib.error
    import urllib.parse

    n = 40
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def guess(i: int, base: str) -> None:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(base + "/login", timeout=60).read().decode()
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        form = urllib.parse.urlencode({"username": "viewer-1", "password": f"guess-{i}", "csrf_token": token}).encode()
        barrier.wait(60)
        try:
            opener.open(base + "/login", form, timeout=60)
            statuses.append(200)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)

    with serving(app) as base:
        threads = [threading.Thread(target=guess, args=(i, base)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert sorted(set(statuses)) == [401, 429] and len(statuses) == n, statuses
    tried = _failures(db_url, username="viewer-1", address="127.0.0.1")
    assert tried == statuses.count(401)
    # at most the free failures, then waits of 1, 2, 4 s: a burst over in a few seconds tries few
    assert tried <= security.PAIR_THROTTLE.free + 3, (tried, statuses)
    assert _attempt(app, "viewer-1", PASSWORD, "192.0.2.40")[0] == 302  # the user, elsewhere, at once


# --- shared addresses: a school's NAT, a reverse proxy ----------------------------------------------


def _http_attempt(base: str, username: str, password: str, headers: dict[str, str] | None = None
                  ) -> tuple[int, str]:
    """A login through the form of a served dashboard, over real HTTP (redirects not followed):
    its status and page."""
    host = base.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=60)
    conn.request("GET", "/login", headers=headers or {})
    page = conn.getresponse()
    text = page.read().decode()
    token = text.split('name="csrf_token" value="')[1].split('"')[0]
    cookie = next(c.split(";")[0] for c in page.headers.get_all("Set-Cookie") if c.startswith("campus_twin_login"))
    form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token, "next": "/"})
    conn.request("POST", "/login", body=form, headers={
        **(headers or {}), "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    answer = conn.getresponse()
    status, body = answer.status, answer.read().decode()
    conn.close()
    return status, body


def _store_login(url: str, username: str, address: str) -> None:
    """A good login of ``username`` from ``address`` stored (as days ago as the limiter still counts)."""
    with connection(url) as conn:
        conn.execute("INSERT INTO audit_log (ts, username, action, outcome, remote_addr) VALUES "
                     "(now() - make_interval(days => %s), %s, 'login', 'ok', %s)",
                     (security.KNOWN_ADDRESS_DAYS - 1, username, address))


def test_a_user_who_logged_in_from_a_shared_address_is_not_locked_out_by_others_failures(
        db_url: str, tmp_path: Path) -> None:
    """A school's NAT address (here the test's own, 127.0.0.1): a student's failures throttle the
    address for usernames never logged in from there, never for staff who did."""
    for name in ("staff-1", "newcomer-1"):
        add_user(db_url, name, "viewer")
    _store_login(db_url, "staff-1", "127.0.0.1")
    with _dashboard_process(db_url, tmp_path) as (base, _pid):
        _store_failures(db_url, 40, address="127.0.0.1")  # a student sprays from the school's address
        status, page = _http_attempt(base, "newcomer-1", PASSWORD)
        assert status == 429 and "Too many failed logins" in page
        assert _http_attempt(base, "staff-1", PASSWORD)[0] == 302
        # a wrong password of a known user is still counted and throttled per user and address
        assert _http_attempt(base, "staff-1", "wrong-password")[0] == 401


def test_a_login_waiting_for_another_from_its_address_is_told_so_not_that_it_failed(
        db_url: str, tmp_path: Path) -> None:
    from twin.storage.users import LOGIN_LOCK

    add_user(db_url, "staff-1", "viewer")
    with _dashboard_process(db_url, tmp_path) as (base, _pid), connection(db_url) as conn:
        # another login from this address is being checked (it holds the address's lock)
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOGIN_LOCK, "addr:127.0.0.1"))
        status, page = _http_attempt(base, "staff-1", PASSWORD)
        assert status == 429 and "Too many failed logins" not in page
        assert "another login from this address is being checked" in page.lower()
        conn.rollback()
        assert _http_attempt(base, "staff-1", PASSWORD)[0] == 302


@pytest.mark.parametrize("hops", [0, 1])
def test_the_address_rule_uses_x_forwarded_for_only_behind_a_trusted_proxy(
        db_url: str, tmp_path: Path, hops: int) -> None:
    add_user(db_url, "staff-1", "viewer")
    sprayer = "203.0.113.50"
    forwarded = {"X-Forwarded-For": sprayer}
    with _dashboard_process(db_url, tmp_path, "--trusted-proxies", str(hops)) as (base, _pid):
        _store_failures(db_url, 40, address=sprayer)
        status, _page = _http_attempt(base, "staff-1", PASSWORD, forwarded)
        assert status == (429 if hops else 302)
        if hops:  # the proxy's own address (here the test's) is not the one throttled
            assert _http_attempt(base, "staff-1", PASSWORD)[0] == 302
        assert _http_attempt(base, "staff-1", "wrong-password", forwarded)[0] == (429 if hops else 401)
        assert _failures(db_url, username="staff-1", address="127.0.0.1") == (0 if hops else 1)
