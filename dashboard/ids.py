"""Component ids of every page, in one place (no scattered string literals)."""

from __future__ import annotations

# Network overview (/)
OVERVIEW_CARDS = "overview-cards"
OVERVIEW_KPIS = "overview-kpis"
OVERVIEW_MAP = "overview-map"
OVERVIEW_SESSIONS = "overview-sessions"
OVERVIEW_INTERVAL = "overview-interval"
OVERVIEW_NAV = "overview-nav"

# Site floor plan (/site/<site_id>)
SITE_STOREY = "site-storey"
SITE_METRIC = "site-metric"
SITE_FLOORPLAN = "site-floorplan"
SITE_LEGEND = "site-legend"
SITE_DRAWN = "site-drawn"
SITE_INTERVAL = "site-interval"
SITE_NAV = "site-nav"
SITE_3D_LINK = "site-3d-link"

# Building in 3D (/building/<building_id>)
BUILDING_ID = "building-id"
BUILDING_METRIC = "building-metric"
BUILDING_FIGURE = "building-figure"
BUILDING_LEGEND = "building-legend"
BUILDING_INTERVAL = "building-interval"

# Room (/room/<room_id>)
ROOM_ID = "room-id"
ROOM_METRIC = "room-metric"
ROOM_RANGE = "room-range"
ROOM_CUSTOM = "room-custom"
ROOM_TABLE = "room-table"
ROOM_DEVICES = "room-devices"
ROOM_SERIES = "room-series"
ROOM_INTERVAL = "room-interval"
ROOM_CSV_BUTTON = "room-csv-button"
ROOM_CSV = "room-csv"
ROOM_LUMINAIRE = "room-luminaire"
ROOM_LEVEL = "room-level"
ROOM_CMD = "room-cmd"  # pattern id {"type": ROOM_CMD, "action": "on" | "off" | "dim"}
ROOM_CMD_STATUS = "room-cmd-status"
ROOM_COMMANDS = "room-commands"

# Alarms (/alarms)
ALARM_SITE = "alarm-site"
ALARM_SEVERITY = "alarm-severity"
ALARM_STATE = "alarm-state"
ALARM_NOTE = "alarm-note"
ALARM_TABLE = "alarm-table"
ALARM_ACK = "alarm-ack"  # pattern id {"type": ALARM_ACK, "id": <alarm id>}
ALARM_STATUS = "alarm-status"
ALARM_REFRESH = "alarm-refresh"
ALARM_INTERVAL = "alarm-interval"

# Devices (/devices)
DEVICES_SITE = "devices-site"
DEVICES_STATE = "devices-state"
DEVICES_BODY = "devices-body"
DEVICES_INTERVAL = "devices-interval"
DEVICES_SEARCH = "devices-search"
DEVICES_KIND = "devices-kind"
DEVICES_SORT = "devices-sort"
DEVICES_ORDER = "devices-order"
DEVICES_PAGE = "devices-page"
DEVICES_UNMAPPED = "unmapped"

# BIM (/bim)
BIM_SITE = "bim-site"
BIM_NAME = "bim-name"
BIM_ROLE = "bim-role"
BIM_BRICK = "bim-brick"
BIM_UPLOAD = "bim-upload"
BIM_RESULT = "bim-result"
BIM_LOG = "bim-log"
SITE_BUILDING = "site-building"
SITE_STOREYS = "site-storeys"

# Room page (issue 18): summary, the chart around a time, the offer of an empty range
ROOM_SUMMARY = "room-summary"
ROOM_AT = "room-at"
ROOM_OFFER = "room-offer"
ROOM_OFFER_TEXT = "room-offer-text"
ROOM_OFFER_BUTTON = "room-offer-button"
ROOM_OFFER_AT = "room-offer-at"
# Network overview (issue 18): the school x KPI matrix, the sites off the map, the time of the figures
OVERVIEW_MATRIX = "overview-matrix"
OVERVIEW_OUTSIDE = "overview-outside"
OVERVIEW_ASOF = "overview-asof"

# Site floor plan (issue 18): the building, storey and metric in the URL
SITE_URL = "site-url"

# Alarms page (issue 18): several acknowledged at once
ALARM_PICK = "alarm-pick"  # pattern id {"type": ALARM_PICK, "id": <alarm id>}
ALARM_SELECTED = "alarm-selected"
ALARM_ACK_SELECTED = "alarm-ack-selected"
ALARM_BULK_STATUS = "alarm-bulk-status"
ALARM_BULK_REFRESH = "alarm-bulk-refresh"
ALARM_NOTIFY_FAILURES = "alarm-notify-failures"
SCHOOL_CLOCK = "school-clock"

# Devices page (issue 19): hardware adapters saw that no device carries, bound by a planner
HARDWARE = "hardware"
HARDWARE_PAGE = "hardware-page"
HARDWARE_STATUS = "hardware-status"
HARDWARE_REFRESH = "hardware-refresh"  # bumped by a bind: the list and the devices re-read
HARDWARE_SHOWN = "hardware-shown"  # what the list shows (rows re-rendered only when it changes)
HARDWARE_DEVICE = "hardware-device"  # pattern id {"type": HARDWARE_DEVICE, "key": hardware_key(...)}
HARDWARE_BIND = "hardware-bind"  # pattern id {"type": HARDWARE_BIND, "key": hardware_key(...)}
