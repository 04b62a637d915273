"""Pure figure builders: floor plans, the 3D building, the network map, time series.

Nothing here talks to the database or to Dash; every function takes plain values and
returns a plotly figure as a plain ``{"data": [...], "layout": {...}}`` dict (cheap to
build and to patch: no validation pass over hundreds of traces), a colour or text.

Nothing here knows a threshold of a standard. A room's colour for a measured metric is the
verdict of :class:`twin.monitoring.site_standards.SiteStandards` (the site's rules on the day, for the
room's use, in the season, with its overrides: what the rule engine judges by), drawn by
``STATUS_COLOURS``: green when every rule judging the value is met, yellow when it breaks an
``info`` or ``warning`` rule, red for a ``critical`` one, blue when no rule judges that metric
for that room use. The latest value is a glance, not an alarm (alarms need a duration).
``compliance`` is the room's worst verdict over its latest values, each rule in its hours
(desk illuminance only while occupied). Legends and chart bands are the API's ``bands``.
Only two glances without a standard keep their own buckets here (``GLANCES``): occupancy
(empty / occupied) and device health (all online / ≥ 50 % / less). Rooms without a value are grey.

The modules, each named for what it draws:

- :mod:`~dashboard.figures.judging`: the palette, a value's status and colour as the standards judge it, its text;
- :mod:`~dashboard.figures.floorplan`: a storey's plan (rooms, labels, devices) and what a click on it names;
- :mod:`~dashboard.figures.legend`: the plan's legend;
- :mod:`~dashboard.figures.building`: the 3D building;
- :mod:`~dashboard.figures.network`: the network map of the schools;
- :mod:`~dashboard.figures.series`: a room's time series and its CSV.

This package re-exports what the pages and tests use.
"""

from dashboard.figures.building import building_figure
from dashboard.figures.floorplan import (
    STATE_COLOURS,
    PlanGeometry,
    device_styles,
    floorplan_figure,
    floorplan_styles,
    plan_geometry,
    room_from_click,
    room_style,
)
from dashboard.figures.judging import (
    BAD,
    CHART_METRICS,
    COMPLIANCE,
    DEVICE_HEALTH,
    FLOORPLAN_METRICS,
    GOOD,
    NEUTRAL,
    NO_DATA,
    STATUS_COLOURS,
    colour_for,
    format_value,
    unit_of,
    with_derived,
)
from dashboard.figures.legend import legend_items
from dashboard.figures.network import online_share
from dashboard.figures.series import band_intervals, series_csv, series_figure

__all__ = [
    "BAD",
    "CHART_METRICS",
    "COMPLIANCE",
    "DEVICE_HEALTH",
    "FLOORPLAN_METRICS",
    "GOOD",
    "NEUTRAL",
    "NO_DATA",
    "STATE_COLOURS",
    "STATUS_COLOURS",
    "PlanGeometry",
    "band_intervals",
    "building_figure",
    "colour_for",
    "device_styles",
    "floorplan_figure",
    "floorplan_styles",
    "format_value",
    "legend_items",
    "online_share",
    "plan_geometry",
    "room_from_click",
    "room_style",
    "series_csv",
    "series_figure",
    "unit_of",
    "with_derived",
]
