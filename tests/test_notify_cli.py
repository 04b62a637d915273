"""campus-twin notify test / status and monitor --notify, against loopback robots and a real database."""

from __future__ import annotations

import uuid
from pathlib import Path

from click.testing import CliRunner

from tests.helpers import small_twin
from tests.test_notify_channels_delivery import DING_SECRET, FEISHU_SECRET, KEY, Robots, _free_port
from twin.cli import main
from twin.database import connection
from twin.storage import alarms
from twin.storage.model import save_model


def run(db_url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", db_url, *args], catch_exceptions=False)


def notify_file(tmp_path: Path, port: int, down_port: int, site_id: str) -> Path:
    base = f"http://127.0.0.1:{port}"
    path = tmp_path / "notify.toml"
    path.write_text(f"""
language = "en"
base_url = "https://twin.example"
[[channels]]
name = "ops-wecom"
kind = "wecom"
url = "{base}/wecom?key={KEY}"
[[channels]]
name = "ops-ding"
kind = "dingtalk"
url = "{base}/dingtalk?access_token=tok1234"
secret = "{DING_SECRET}"
[[channels]]
name = "ops-feishu"
kind = "feishu"
url = "{base}/feishu"
secret = "{FEISHU_SECRET}"
[[channels]]
name = "other-school"
kind = "wecom"
url = "{base}/wecom?key={KEY}"
sites = ["elsewhere"]
[[channels]]
name = "down"
kind = "wecom"
url = "http://127.0.0.1:{down_port}/wecom?key=DOWNKEY123"
sites = ["{site_id}"]
""", encoding="utf-8")
    return path


def test_notify_test_sends_to_every_channel_of_the_site_and_says_which_failed(db_url, tmp_path: Path):
    site_id = f"cli-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=1))
    robots = Robots()
    try:
        path = notify_file(tmp_path, robots.port, _free_port(), site_id)
        result = CliRunner().invoke(main, ["--database-url", db_url, "notify", "test", "--site", site_id,
                                           "--notify", str(path)])
        lines = result.output.splitlines()
        assert lines[:3] == ["ops-wecom (wecom): sent", "ops-ding (dingtalk): sent", "ops-feishu (feishu): sent"]
        assert lines[3].startswith("down (wecom): failed: ") and "DOWNKEY123" not in result.output
        assert result.exit_code == 1
        assert robots.bad == [] and [robots.count(k) for k in ("wecom", "dingtalk", "feishu")] == [1, 1, 1]
        assert "Test message" in robots.received["wecom"][0]["markdown"]["content"]
        unknown = CliRunner().invoke(main, ["--database-url", db_url, "notify", "test", "--site", "nope",
                                            "--notify", str(path)])
        assert unknown.exit_code == 1 and "Error: no site 'nope'" in unknown.output
    finally:
        robots.close()


def test_monitor_once_with_notify_delivers_the_events_and_status_shows_the_failing_channel(db_url, tmp_path: Path):
    site_id = f"cli-{uuid.uuid4().hex[:6]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=1))
        (key,) = conn.execute("SELECT id FROM devices WHERE site_id = %s AND device_id = 'ENV-0'",
                              (site_id,)).fetchone()
        alarms.raise_alarm(conn, site_id, "device_low_battery", "warning", "battery at 5%", device_key=key)
    robots = Robots()
    try:
        path = notify_file(tmp_path, robots.port, _free_port(), site_id)
        result = run(db_url, "monitor", "--once", "--notify", str(path))
        assert result.exit_code == 0, result.output
        assert [robots.count(k) for k in ("wecom", "dingtalk", "feishu")] == [1, 1, 1]
        status = run(db_url, "notify", "status", "--site", site_id)
        assert "ops-wecom: sent 1, pending 0" in status.output
        assert "down: sent 0, pending 1" in status.output
        assert "failing: down alarm" in status.output and "DOWNKEY123" not in status.output
    finally:
        robots.close()


def test_a_wrong_notify_file_is_a_one_line_error(db_url, tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[channels]]\nname = "x"\nkind = "sms"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--database-url", db_url, "monitor", "--once", "--notify", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: channel 'x': kind must be one of wecom, dingtalk, feishu, email"
