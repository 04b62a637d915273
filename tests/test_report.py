"""The monthly report's HTML: rendered from a template with autoescaping, shipped as package data."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from fnmatch import fnmatch
from pathlib import Path

from twin.monitoring.report import render

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'


def test_a_site_or_room_name_cannot_inject_markup() -> None:
    t0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    room = {"room": IMG, "days": 2, "compliant_days": 1, "desk_lux": 400.0, "desk_uniformity": 0.8,
            "blackboard_lux": None, "blackboard_uniformity": None}
    alarm = {"rule": "device_offline", "severity": "warning", "acked_at": None, "cleared_at": None, "raised_at": t0,
             "standard": None, "room": IMG, "device_id": 7}
    html = render(site_id="hq", site_name=SCRIPT, role=SCRIPT, year=2026, month=11, first=date(2026, 11, 1),
                  last=date(2026, 11, 30), days=[], rooms=[room], month_alarms=[alarm],
                  devices=[(7, "env", (10.0, 20.0))], device_names={7: SCRIPT}, generated=t0)
    assert "<script" not in html and "<img" not in html and "onerror=\"" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=" in html
    assert html.count("&lt;script&gt;") >= 4  # title, heading, role, the device most often offline
    assert html.count("&lt;img") >= 3  # the compliance table, its chart, the rooms with most alarms


def test_the_report_template_ships_as_package_data() -> None:
    package = REPO / "twin" / "monitoring"
    templates = sorted((package / "templates").glob("*.j2"))
    assert [t.name for t in templates] == ["report.html.j2"]
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["package-data"]
    globs = package_data["twin.monitoring"]
    for template in templates:
        assert any(fnmatch(template.relative_to(package).as_posix(), g) for g in globs), template
