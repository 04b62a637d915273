"""Times people read are in the site's zone, with the zone said; machines keep UTC (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from dashboard import localtime as shown
from tests.helpers import small_twin
from twin import localtime
from twin.cli import main
from twin.database import connection
from twin.storage import sites
from twin.storage.model import save_model


def test_a_utc_time_is_shown_in_the_site_zone_with_the_zone_said() -> None:
    at = datetime(2026, 12, 4, 16, 50, 5, tzinfo=UTC)
    assert shown.fmt_time(at, "en") == "2026-12-05 00:50:05"  # Shenzhen is UTC+8: already tomorrow
    assert shown.fmt_time(at, "en", localtime.zone("Europe/Berlin"), seconds=False) == "2026-12-04 17:50"
    assert shown.fmt_time(None, "zh") == "从未" and shown.fmt_time(None, "en", none="no data") == "no data"
    assert shown.zone_label(localtime.zone("Asia/Shanghai")) == "Asia/Shanghai (UTC+8)"
    assert localtime.utc_offset(localtime.zone("Asia/Kolkata")) == "UTC+5:30"
    assert localtime.utc_offset(localtime.zone("Europe/Berlin"), datetime(2026, 7, 1, tzinfo=UTC)) == "UTC+2"
    assert shown.time_header(localtime.zone("Asia/Shanghai"), "zh") == "时间 (Asia/Shanghai, UTC+8)"
    with pytest.raises(localtime.ZoneError, match="Mars/Olympus"):
        localtime.zone("Mars/Olympus")


def test_a_site_keeps_its_time_zone_set_from_the_command_line(db_url: str) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("c1", rooms=1))
        assert sites.time_zones(conn) == {"c1": "Asia/Shanghai"}  # every site starts in China Standard Time
    runner = CliRunner()
    result = runner.invoke(main, ["--database-url", db_url, "sites", "set", "c1", "--time-zone", "Europe/Berlin"])
    assert result.exit_code == 0, result.output
    assert "Europe/Berlin (UTC+" in result.output
    bad = runner.invoke(main, ["--database-url", db_url, "sites", "set", "c1", "--time-zone", "Mars/Olympus"])
    assert bad.exit_code == 2 and "unknown time zone" in bad.output
    missing = runner.invoke(main, ["--database-url", db_url, "sites", "set", "nope", "--time-zone", "UTC"])
    assert missing.exit_code == 1 and "no site 'nope'" in missing.output
    listed = runner.invoke(main, ["--database-url", db_url, "sites", "list"])
    assert "Europe/Berlin" in listed.output and "1 sites" in listed.output
    with connection(db_url) as conn:
        assert sites.time_zones(conn) == {"c1": "Europe/Berlin"}
        # A new revision of the BIM model keeps the setting (the zone is not in the file).
        save_model(conn, small_twin("c1", rooms=2))
        assert sites.time_zones(conn) == {"c1": "Europe/Berlin"}


def test_the_bim_import_log_shows_each_import_in_its_school_s_time(db_url: str) -> None:
    from dash import html

    from tests.test_dashboard import make_app

    with connection(db_url) as conn:
        save_model(conn, small_twin("c1", rooms=1))
        save_model(conn, small_twin("c2", rooms=1))
        sites.set_time_zone(conn, "c2", "Europe/Berlin")
        for site in ("c1", "c2"):
            conn.execute("INSERT INTO bim_imports (site_id, file_name, file_sha256, ifc_schema, imported_at) "
                         "VALUES (%s, 'x.ifc', 'ab', 'IFC4', '2026-12-04T16:50:00Z')", (site,))
    app = make_app(db_url)
    try:
        from dashboard.pages.bim import import_log  # pages register with an app

        with app.server.test_request_context("/bim"):
            table = import_log("en")
    finally:
        from dashboard.app import close_app

        close_app(app)
    cells = [row.children[0].children for row in table.children[1].children]
    shown = {c.children: c.title for c in cells if isinstance(c, html.Span)}
    assert shown == {"2026-12-05 00:50": "Asia/Shanghai (UTC+8)", "2026-12-04 17:50": "Europe/Berlin (UTC+1)"}


def test_chart_dates_are_numbers_in_chinese_not_english_month_names() -> None:
    from datetime import timedelta

    from dashboard.figures.series import series_figure

    at = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    points = [(at + timedelta(hours=h), 600.0 + h, 590.0, 610.0 + h) for h in range(6)]
    for lang, day in (("zh", "%m月%d日"), ("en", "%b %d")):
        fig = series_figure(points, "co2", "ppm", lang=lang, zone=localtime.zone("Asia/Shanghai"))
        axis = fig["layout"]["xaxis"]
        formats = [stop["value"] for stop in axis["tickformatstops"]]
        assert all(day in f for f in formats) and axis["hoverformat"] == "%Y-%m-%d %H:%M"
        assert "Asia/Shanghai, UTC+8" in axis["title"]["text"]
        # the x values are the school's time (08:00 local for 00:00 UTC ... ), not UTC
        first = fig["data"][-1]["x"][0]
        assert (first.hour if hasattr(first, "hour") else datetime.fromisoformat(str(first)).hour) == 14
