"""The dashboard shows what the monitor stored: daily KPIs on the overview, the alarm lifecycle on /alarms."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import dash

from tests.test_dashboard import KnownTwin, _json, _page, app, known_twin  # noqa: F401 (fixtures)
from twin.database import connection
from twin.storage import alarms, kpis


def test_overview_shows_stored_lighting_compliance_and_completeness(app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    with connection(known_twin.url) as conn:
        kpis.store_day(conn, date(2026, 11, 15), kpis.NETWORK, {"lighting_compliance": (1, 4)})
        kpis.store_day(conn, date(2026, 11, 16), kpis.NETWORK,
                       {"lighting_compliance": (3, 8), "data_completeness": (930, 1000)})
        kpis.store_day(conn, date(2026, 11, 16), "hq", {"lighting_compliance": (1, 3)})
    overview = _page("overview")
    with app.server.test_request_context("/"):
        tiles, cards, *_ = overview.update_overview(1)
    tiles_text, cards_text = _json(tiles), _json(cards)
    # the newest stored day: 3 of 8 classrooms comply (38%), 93% of the expected messages arrived
    assert "lighting compliance" in tiles_text and "38%" in tiles_text and "93%" in tiles_text
    assert "33%" in cards_text  # hq's own compliance


def test_alarms_page_shows_who_acknowledged_and_when_it_cleared(app: dash.Dash, known_twin: KnownTwin) -> None:  # noqa: F811
    with connection(known_twin.url) as conn:
        raised = conn.execute("SELECT raised_at FROM alarms WHERE id = %s", (known_twin.alarm_id,)).fetchone()[0]
        cleared = raised + timedelta(minutes=30)  # an alarm is never cleared before it was raised
        alarms.acknowledge(conn, known_twin.alarm_id, by="li", note="window opened")
        alarms.clear(conn, known_twin.alarm_id, cleared)
        assert [e[0] for e in alarms.alarm_events(conn, known_twin.alarm_id)] == ["raised", "acknowledged", "cleared"]
    page = _page("alarms")
    with app.server.test_request_context("/"):
        table = _json(page.update_alarms("hq", "any", "closed", 0, None))
    assert "window opened" in table and "li " in table
    # in the school's time (Asia/Shanghai, UTC+8), not the server's UTC
    assert f"{cleared.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M}" in table
    assert f"{cleared.astimezone(UTC):%Y-%m-%d %H:%M}" not in table
