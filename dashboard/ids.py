"""Component ids of every page, in one place (no scattered string literals)."""

from __future__ import annotations

# Network overview (/)
OVERVIEW_CARDS = "overview-cards"

# Site floor plan (/site/<site_id>)
SITE_STOREY = "site-storey"
SITE_METRIC = "site-metric"
SITE_FLOORPLAN = "site-floorplan"
SITE_INTERVAL = "site-interval"
SITE_NAV = "site-nav"

# Room (/room/<room_id>)
ROOM_ID = "room-id"
ROOM_METRIC = "room-metric"
ROOM_TABLE = "room-table"
ROOM_SERIES = "room-series"
ROOM_INTERVAL = "room-interval"
