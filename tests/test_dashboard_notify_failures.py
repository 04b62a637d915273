"""The alarms page shows the notifications a channel has not taken yet, with the last reason."""

from __future__ import annotations

import importlib
from datetime import timedelta

import dash

from tests.test_dashboard import KnownTwin, _json, app, known_twin, signed_in  # noqa: F401  (fixtures)
from twin.database import connection
from twin.storage import alarms, deliveries


def test_the_alarms_page_lists_undelivered_notifications_with_their_reason(app: dash.Dash,  # noqa: F811
                                                                             known_twin: KnownTwin) -> None:  # noqa: F811
    page = importlib.import_module("dashboard.pages.alarms")
    with connection(known_twin.url) as conn:
        alarm_id = alarms.raise_alarm(conn, "hq", "temperature_out_of_range", "warning", "too warm",
                                      device_key=known_twin.keys["hq", "env-101"])
        (event_id,) = conn.execute("SELECT id FROM alarm_events WHERE alarm_id = %s", (alarm_id,)).fetchone()
        deliveries.queue(conn, event_id, "hq", ["ops-wecom", "ops-mail"])
        deliveries.mark_failed(conn, event_id, "ops-wecom", "errcode 45009: api freq out of limit",
                               timedelta(seconds=30))
        deliveries.mark_sent(conn, event_id, "ops-mail")
    with app.server.test_request_context("/", headers=signed_in(app)):
        hq = _json(page.update_failures("hq", None))
        member = page.update_failures("m01", None)
    assert "Notifications not delivered" in hq and "ops-wecom" in hq and "api freq out of limit" in hq
    assert f"raised #{alarm_id}" in hq and "ops-mail" not in hq
    assert member == ""
