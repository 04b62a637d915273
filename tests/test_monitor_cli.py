"""campus-twin monitor, kpis and report against a real database: output, files, one-line errors."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
import orjson
from click.testing import CliRunner

from tests.helpers import small_twin
from twin.cli import main, stop_on_signals
from twin.database import connection
from twin.process import thread_death
from twin.storage.model import save_model


def run(db_url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", db_url, *args], catch_exceptions=False)


def test_monitor_kpis_and_report_commands(db_url, tmp_path: Path):
    with connection(db_url) as conn:
        save_model(conn, small_twin("c1"))
    once = run(db_url, "monitor", "--once")
    assert once.exit_code == 0 and "raised 0, cleared 0" in once.output
    timed = run(db_url, "monitor", "--interval", "1", "--duration", "1.5")
    assert timed.exit_code == 0 and "stopped: raised 0" in timed.output
    past = run(db_url, "monitor", "--from", "2026-11-16", "--to", "2026-11-17")
    assert past.exit_code == 0 and "c1: raised 0, cleared 0" in past.output
    kpis = run(db_url, "kpis", "--day", "2026-11-16", "--json")
    assert kpis.exit_code == 0
    doc = orjson.loads(kpis.output)
    # three classrooms, no device reported: 0 of 3 everywhere, nothing measured for lighting compliance
    assert doc["scopes"]["c1"]["iot_coverage"] == {"value": 0.0, "numerator": 0.0, "denominator": 3.0}
    assert doc["scopes"]["network"]["lighting_compliance"]["value"] is None
    text = run(db_url, "kpis", "--day", "2026-11-16")
    assert "network" in text.output and "0.0%" in text.output
    out = tmp_path / "c1.html"
    result = run(db_url, "report", "--site", "c1", "--month", "2026-10", "--out", str(out))
    assert result.exit_code == 0 and f"wrote {out}" in result.output
    html = out.read_text("utf-8")
    assert "monthly report 2026-10" in html and "No classroom was measured this month." in html


def test_bad_input_gets_one_line_errors(db_url, tmp_path: Path):
    with connection(db_url) as conn:
        save_model(conn, small_twin("c1", rooms=1))
    bad = tmp_path / "rules.toml"
    bad.write_text("[rules.classroom_co2_high]\nseverity = 'loud'\n")
    cases = [
        (["report", "--site", "nope", "--month", "2026-11", "--out", str(tmp_path / "x.html")],
         "Error: unknown site 'nope'"),
        (["report", "--site", "nope", "--month", "2026-13", "--out", str(tmp_path / "x.html")],
         "Error: not a month: '2026-13' (use YYYY-MM, e.g. 2026-11)"),
        (["report", "--site", "c1", "--month", "2999-01", "--out", str(tmp_path / "x.html")], "has not begun"),
        (["monitor", "--once", "--rules", str(bad)], "Error: rule classroom_co2_high: severity must be one of"),
        (["monitor", "--once", "--rules", str(tmp_path / "missing.toml")], "Error: cannot read rules file"),
        (["kpis", "--site", "nope"], "Error: unknown site 'nope'"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(main, ["--database-url", db_url, *args])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "x.html").exists()
    result = CliRunner().invoke(main, ["--database-url", db_url, "kpis", "--day", "16/11/2026"])
    assert result.exit_code == 2 and "not a date" in result.output
    result = CliRunner().invoke(main, ["--database-url", db_url, "monitor", "--once", "--clock", "yesterday"])
    assert result.exit_code == 2 and "not an ISO 8601 time: 'yesterday'" in result.output


def test_monitor_on_the_data_clock_and_an_explicit_clock(db_url):
    """--clock data follows the stored readings (a replayed morning); --clock TIME starts there."""
    from datetime import UTC, datetime, timedelta

    from twin.metrics import BY_NAME
    from twin.storage.model import device_keys
    from twin.storage.readings import ReadingWriter

    with connection(db_url) as conn:
        save_model(conn, small_twin("c1", rooms=1))
        keys = device_keys(conn)
        t0 = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # 09:00 in Shenzhen, a Monday
        ReadingWriter(conn).write([(t0 + timedelta(seconds=30 * i), keys[("c1", "ENV-0")],
                                    BY_NAME["co2"].metric_id, 600.0 + i) for i in range(20)])
        conn.commit()
    data = run(db_url, "monitor", "--once", "--clock", "data")
    assert data.exit_code == 0 and "raised 0, cleared 0" in data.output  # 09:09:30: nothing silent long yet
    later = run(db_url, "monitor", "--once", "--clock", "2026-11-16T09:30:00+08:00")
    assert later.exit_code == 0 and "raised 1," in later.output  # ENV-0 silent since 09:09:30
    with connection(db_url) as conn:
        [(rule, raised, known)] = conn.execute("SELECT rule, raised_at, known_at FROM alarms").fetchall()
    # known when the clock said (09:30 and the moments the command took to get there)
    assert (rule, raised) == ("device_offline", t0 + timedelta(seconds=30 * 19 + 90))
    assert timedelta(0) <= known - datetime(2026, 11, 16, 1, 30, tzinfo=UTC) < timedelta(minutes=1)


def _left_behind() -> list[str]:
    """What a long-running command must not leave in this process once it ended."""
    return [t.name for t in threading.enumerate() if t.name == "exit-on-thread-death" and t.is_alive()]


def test_a_long_running_command_removes_its_thread_death_hook(db_url):
    hook, sigterm = threading.excepthook, signal.getsignal(signal.SIGTERM)
    timed = run(db_url, "monitor", "--interval", "1", "--duration", "0.5")
    assert timed.exit_code == 0, timed.output
    assert threading.excepthook is hook and signal.getsignal(signal.SIGTERM) is sigterm
    assert thread_death() is None


def test_a_thread_dying_in_a_command_fails_it_and_leaves_nothing_behind():
    """The death still fails the command (the group's check runs before the command's context
    closes); then the hook, the recorded death and the os._exit timer are gone."""
    hook = threading.excepthook

    @click.command("die-in-thread")
    def die_in_thread() -> None:
        stop = stop_on_signals()
        threading.Thread(target=lambda: 1 / 0, name="doomed", daemon=True).start()
        assert stop.wait(60), "the dead thread did not stop the command"

    main.add_command(die_in_thread)
    try:
        result = CliRunner().invoke(main, ["die-in-thread"])
    finally:
        main.commands.pop("die-in-thread")
    assert result.exit_code == 1, result.output
    assert "thread 'doomed' died: ZeroDivisionError" in result.output
    assert threading.excepthook is hook and thread_death() is None
    assert _left_behind() == []
    again = CliRunner().invoke(main, ["--help"])  # a later in-process command is not failed by it
    assert again.exit_code == 0
