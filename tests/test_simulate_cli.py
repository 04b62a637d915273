"""``campus-twin simulate`` checks the broker before it touches a database."""

from __future__ import annotations

from click.testing import CliRunner

from twin.cli import main
from twin.messaging.broker import free_port


def test_simulate_with_an_unreachable_broker_fails_in_one_line_without_starting_a_database(tmp_path):
    data_dir = tmp_path / "data"
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "--mqtt-url", url, "simulate", "--duration", "1"],
                                env={"CAMPUS_TWIN_DATABASE_URL": ""})
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: MQTT broker 127.0.0.1:") and "unreachable" in result.output, result.output
    assert result.output.count("\n") == 1, result.output
    assert not (data_dir / "pgdata").exists()
