"""Channel formatters and configuration: the exact JSON each robot documents, signatures computed as the
vendors' documentation says, messages in the site's language, secrets never shown. Pure, no services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin.monitoring.channels import config, dingtalk, email, feishu, message, wecom
from twin.monitoring.channels.dispatch import RateLimit, _answer_error

EVENT = {"event": "raised", "site_id": "hq", "school": "福田第一小学", "building": "教学楼", "storey": "2F",
             "room": "二年级1班", "room_id": 7, "rule": "co2_classroom", "severity": "warning", "standard": "GB/T 17226-2017",
             "message": "CO2 1650 ppm > 1500 ppm", "value": 1650.0, "at": datetime(2026, 12, 4, 1, 0, tzinfo=UTC),
             "raised_at": datetime(2026, 12, 4, 0, 50, tzinfo=UTC), "time_zone": "Asia/Shanghai", "by": None, "note": None,
             "device_id": None}


def test_a_raised_alarm_reads_in_chinese_with_school_place_rule_value_local_time_and_room_link():
    m = message.compose(EVENT, "zh", "https://twin.example/")
    assert m.title == "[警告] 告警产生: co2_classroom, 二年级1班"
    assert dict(m.lines) == {"学校": "福田第一小学", "位置": "教学楼 / 2F / 二年级1班", "规则": "co2_classroom",
                             "标准": "GB/T 17226-2017", "数值": "CO2 1650 ppm > 1500 ppm",
                             "开始时间": "2026-12-04 08:50:00 (Asia/Shanghai)"}
    assert m.link == "https://twin.example/room/7"


def test_an_acknowledged_alarm_in_english_says_who_when_and_the_note():
    m = message.compose({**EVENT, "event": "acknowledged", "by": "li.wei", "note": "window opened"}, "en", None)
    assert m.title == "[warning] Alarm acknowledged: co2_classroom, 二年级1班"
    lines = dict(m.lines)
    assert lines["Event at"] == "2026-12-04 09:00:00" and lines["By"] == "li.wei" and lines["Note"] == "window opened"
    assert m.link is None


def test_the_wecom_body_is_a_markdown_message():
    m = message.compose(EVENT, "zh", "https://twin.example")
    url, body = wecom.request("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", m)
    assert url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"
    assert body == {"msgtype": "markdown", "markdown": {"content": message.markdown(m)}}
    assert "[查看房间](https://twin.example/room/7)" in body["markdown"]["content"]


def test_the_dingtalk_signature_is_hmac_sha256_of_timestamp_newline_secret_keyed_by_the_secret():
    # DingTalk's documented algorithm, written out here independently of the module
    digest = hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    expected = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    assert dingtalk.sign(1700000000000, "SECabc") == expected
    assert dingtalk.sign(1700000000000, "secret") == "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"


def test_the_dingtalk_request_is_markdown_with_title_and_text_and_a_signed_url():
    m = message.compose(EVENT, "en", None)
    url, body = dingtalk.request("https://oapi.dingtalk.com/robot/send?access_token=T", m, secret="secret",
                                 now_ms=1700000000000)
    assert url == ("https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1700000000000"
                   "&sign=OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D")
    assert body == {"msgtype": "markdown", "markdown": {"title": m.title, "text": message.markdown(m)}}
    assert dingtalk.request("https://x/robot/send?access_token=T", m)[0] == "https://x/robot/send?access_token=T"


def test_the_feishu_signature_keys_hmac_sha256_with_timestamp_newline_secret_over_an_empty_message():
    digest = hmac.new(b"1700000000\nsecret", b"", hashlib.sha256).digest()
    assert feishu.sign(1700000000, "secret") == base64.b64encode(digest).decode()


def test_the_feishu_request_is_an_interactive_card_with_timestamp_and_sign_in_the_body():
    m = message.compose(EVENT, "zh", "https://twin.example")
    _, body = feishu.request("https://open.feishu.cn/open-apis/bot/v2/hook/H", m, secret="s", now_s=1700000000)
    assert body["timestamp"] == "1700000000" and body["sign"] == feishu.sign(1700000000, "s")
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"] == {"title": {"tag": "plain_text", "content": m.title}, "template": "orange"}
    assert card["elements"][0]["text"]["tag"] == "lark_md" and "**学校**: 福田第一小学" in card["elements"][0]["text"]["content"]
    assert card["elements"][1]["actions"][0]["url"] == "https://twin.example/room/7"
    assert "sign" not in feishu.request("https://x/hook/H", m)[1]


def test_an_email_has_a_text_and_an_html_part():
    mail = email.build(message.compose(EVENT, "en", "https://twin.example"), "twin@school.cn", ["fm@school.cn"])
    assert mail["Subject"] == "[warning] Alarm raised: co2_classroom, 二年级1班"
    parts = [p.get_content_type() for p in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert "https://twin.example/room/7" in mail.get_body(("html",)).get_content()


CONFIG = """
base_url = "https://twin.example"
language = "zh"
[sites.m1]
language = "en"
[[channels]]
name = "wecom"
kind = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=TOPSECRETKEY"
severities = ["critical"]
[[channels]]
name = "ding"
kind = "dingtalk"
url = "env:DING_URL"
secret = "SECsigningsecret"
sites = ["hq"]
[[channels]]
name = "mail"
kind = "email"
host = "smtp.school.cn"
sender = "twin@school.cn"
to = "fm@school.cn"
password = "mailpassword"
events = ["raised"]
"""


def test_a_configuration_file_gives_channels_filters_languages_and_the_documented_limits(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DING_URL", "https://oapi.dingtalk.com/robot/send?access_token=TOKEN1234")
    (tmp_path / "notify.toml").write_text(CONFIG, encoding="utf-8")
    cfg = config.load(tmp_path / "notify.toml")
    assert [c.name for c in cfg.channels] == ["wecom", "ding", "mail"]
    assert cfg.channels[1].url.endswith("TOKEN1234") and cfg.channels[2].to == ("fm@school.cn",)
    assert cfg.channels[2].port == 587
    assert [c.name for c in cfg.for_event("hq", "warning", "co2_classroom", "raised")] == ["ding", "mail"]
    assert [c.name for c in cfg.for_event("m1", "critical", "co2_classroom", "cleared")] == ["wecom"]
    assert cfg.language_of("m1") == "en" and cfg.language_of("hq") == "zh"
    assert (cfg.channels[0].rate_per_minute, cfg.channels[1].rate_per_minute) == (20, 20)
    feishu_cfg = config.parse({"channels": [{"kind": "feishu", "url": "https://x/hook/ABCD"}]})
    assert (feishu_cfg.channels[0].rate_per_minute, feishu_cfg.channels[0].rate_per_second) == (100, 5)


def test_secrets_appear_in_no_repr_and_are_redacted_from_reasons(monkeypatch):
    monkeypatch.setenv("DING_URL", "https://oapi.dingtalk.com/robot/send?access_token=TOKEN1234")
    import tomllib
    cfg = config.parse(tomllib.loads(CONFIG))
    for c in cfg.channels:
        for secret in ("TOPSECRETKEY", "TOKEN1234", "SECsigningsecret", "mailpassword"):
            assert secret not in repr(c)
    wecom_c, ding = cfg.channels[0], cfg.channels[1]
    assert "TOPSECRETKEY" not in wecom_c.redact("error at send?key=TOPSECRETKEY: refused")
    assert ding.redact(f"<urlopen error {ding.url}&sign=x> SECsigningsecret") == "<urlopen error ***&sign=x> ***"


def test_a_wrong_configuration_says_which_channel_and_key_without_the_secret(monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(config.ConfigError, match="kind must be one of"):
        config.parse({"channels": [{"name": "x", "kind": "sms", "url": "https://x"}]})
    with pytest.raises(config.ConfigError, match="environment variable NOPE"):
        config.parse({"channels": [{"name": "x", "kind": "wecom", "url": "env:NOPE"}]})
    with pytest.raises(config.ConfigError, match="url must be") as err:
        config.parse({"channels": [{"name": "x", "kind": "wecom", "url": "ftp://secretkey"}]})
    assert "secretkey" not in str(err.value)


def test_a_rate_limit_allows_n_per_window_and_says_how_long_to_wait():
    now = [100.0]
    limit = RateLimit([(20, 60.0), (5, 1.0)], lambda: now[0])
    for _ in range(5):
        assert limit.wait() == 0
        limit.record()
    assert limit.wait() == pytest.approx(1.0)
    now[0] += 1.0
    for _ in range(5):
        limit.record()
    now[0] += 1.0
    for _ in range(5):
        limit.record()
    now[0] += 1.0
    for _ in range(5):
        limit.record()
    now[0] += 1.0
    assert limit.wait() == pytest.approx(56.0)  # 20 in the last minute: the first of them leaves it at 160


def test_robot_answers_with_an_error_code_are_failures():
    assert _answer_error(b'{"errcode":0,"errmsg":"ok"}') is None
    assert _answer_error(b'{"code":0,"msg":"success","data":{}}') is None
    assert _answer_error(b'{"errcode":45009,"errmsg":"api freq out of limit"}') == "errcode 45009: api freq out of limit"
    assert _answer_error(b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}'
                         ).startswith("code 19021")
    assert _answer_error(b"") is None


def test_an_acknowledgement_note_cannot_mention_everyone_or_link_in_a_robots_markdown():
    from datetime import UTC, datetime

    from twin.monitoring.channels.message import compose, markdown

    event = {"event": "acknowledged", "site_id": "hq", "school": "HQ", "rule": "co2_classroom", "severity": "warning",
             "room": "Class 2-1", "room_id": 7, "message": "co2 1800 ppm", "standard": None,
             "raised_at": datetime(2026, 12, 4, 1, tzinfo=UTC), "at": datetime(2026, 12, 4, 2, tzinfo=UTC),
             "time_zone": "Asia/Shanghai", "by": "li<@all>", "note": "ok <at id=all></at> [click](http://evil.example)\n# x"}
    body = markdown(compose(event, "en", None))
    assert "<at" not in body and "<@" not in body and "](http://evil" not in body and "\n# x" not in body
