"""The stored daily KPIs of one day, as the ``kpis`` command shows them: typed rows, network first."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from tests.helpers import small_twin
from twin.database import connection
from twin.storage import kpis
from twin.storage.model import save_model

DAY = date(2026, 11, 16)


def test_day_kpis_are_typed_rows_network_first_then_by_site_and_kpi(db_url):
    with connection(db_url) as conn:
        save_model(conn, small_twin("b2", rooms=1))
        save_model(conn, small_twin("a1", rooms=1))
        kpis.store_day(conn, DAY, "b2", {"panel_coverage": (0, 1), "iot_coverage": (1, 1)})
        kpis.store_day(conn, DAY, "a1", {"iot_coverage": (1, 2)})
        kpis.store_day(conn, DAY, kpis.NETWORK, {"iot_coverage": (2, 3), "lighting_compliance": (0, 0)})
        kpis.store_day(conn, date(2026, 11, 17), "a1", {"iot_coverage": (2, 2)})  # another day: not shown
        rows = kpis.day_kpis(conn, DAY)
        only_a1 = kpis.day_kpis(conn, DAY, site="a1")
        none = kpis.day_kpis(conn, date(2026, 11, 18))
    assert [(r.scope, r.kpi) for r in rows] == [
        ("*", "iot_coverage"), ("*", "lighting_compliance"),
        ("a1", "iot_coverage"), ("b2", "iot_coverage"), ("b2", "panel_coverage")]
    first = rows[0]
    assert isinstance(first, kpis.DayKpi) and dataclasses.is_dataclass(first)
    assert (first.numerator, first.denominator, first.value) == (2.0, 3.0, pytest.approx(2 / 3))
    assert rows[1].value is None  # nothing to count
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.value = 1.0  # type: ignore[misc]
    assert [(r.scope, r.kpi, r.value) for r in only_a1] == [("a1", "iot_coverage", 0.5)]
    assert none == []
