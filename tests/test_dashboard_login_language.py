"""The login page has the language switch; switching never leaves the app (issue 18)."""

from __future__ import annotations

from collections.abc import Iterator

import dash
import pytest

from tests.test_dashboard import KnownTwin, known_twin, make_app  # noqa: F401 - fixture


@pytest.fixture
def plain_app(known_twin: KnownTwin) -> Iterator[dash.Dash]:  # noqa: F811
    from dashboard.app import close_app

    app = make_app(known_twin.url)
    try:
        yield app
    finally:
        close_app(app)


def test_the_login_page_switches_language_before_anyone_logs_in(plain_app: dash.Dash) -> None:
    client = plain_app.server.test_client()
    first = client.get("/alarms")  # not logged in: to the login page, which remembers where to go
    assert first.status_code in (302, 303)
    login_url = first.headers["Location"]
    page = client.get(login_url).get_data(as_text=True)
    assert 'id="login-lang-zh"' in page and 'id="login-lang-en"' in page and "中文" in page
    link = page.split('id="login-lang-zh" href="')[1].split('"')[0].replace("&amp;", "&")
    switched = client.get(link)
    assert switched.status_code == 302
    assert switched.headers["Location"] == login_url  # back to the same login form, its next kept
    assert "campus_twin_lang=zh" in switched.headers["Set-Cookie"]
    chinese = client.get(login_url).get_data(as_text=True)
    assert '<html lang="zh-CN">' in chinese and "登录" in chinese and "用户名" in chinese and "密码" in chinese
    back = client.get(chinese.split('id="login-lang-en" href="')[1].split('"')[0].replace("&amp;", "&"))
    assert "campus_twin_lang=en" in back.headers["Set-Cookie"]
    assert '<html lang="en">' in client.get(login_url).get_data(as_text=True)


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/x", "/\t/evil.example"])
def test_switching_language_never_leaves_the_app(plain_app: dash.Dash, target: str) -> None:
    client = plain_app.server.test_client()
    response = client.get("/lang/zh", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    elsewhere = client.get("/lang/zh", headers={"Referer": "https://evil.example/page"})
    assert elsewhere.headers["Location"] == "/"
    same = client.get("/lang/en", headers={"Referer": "http://localhost/room/5?metric=co2"})
    assert same.headers["Location"] == "/room/5?metric=co2"  # a page of this app: back to it


def test_after_a_failed_login_the_switch_still_keeps_where_to_go(plain_app: dash.Dash) -> None:
    client = plain_app.server.test_client()
    form = client.get("/login?next=/alarms").get_data(as_text=True)
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    failed = client.post("/login", data={"username": "nobody", "password": "wrong", "csrf_token": token,
                                         "next": "/alarms"}).get_data(as_text=True)
    link = failed.split('id="login-lang-zh" href="')[1].split('"')[0].replace("&amp;", "&")
    assert client.get(link).headers["Location"] == "/login?next=/alarms"
