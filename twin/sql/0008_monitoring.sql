-- Campus Twin schema, version 8: standards-based monitoring (docs/monitoring.md).
-- Sites get a building climate zone (it decides the season of the temperature and humidity
-- rules); alarms get their standard and worst value, one open alarm per room (or device)
-- and rule, and a lifecycle log that is also the notification outbox; per-site rule
-- overrides; what the monitor remembers of device status; daily KPIs and per-classroom
-- lighting compliance for trends and the monthly report.

ALTER TABLE sites ADD COLUMN IF NOT EXISTS climate_zone text
    CHECK (climate_zone IN ('severe_cold', 'cold', 'hot_summer_cold_winter', 'hot_summer_warm_winter', 'mild'));

ALTER TABLE alarms ADD COLUMN IF NOT EXISTS standard text;
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS value double precision;
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_open
    ON alarms (site_id, rule, coalesce(room_id, -1), coalesce(device_id, -1)) WHERE state <> 'closed';
CREATE INDEX IF NOT EXISTS alarms_raised ON alarms (site_id, raised_at);

CREATE TABLE IF NOT EXISTS alarm_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id     bigint NOT NULL REFERENCES alarms ON DELETE CASCADE,
    event        text NOT NULL CHECK (event IN ('raised', 'acknowledged', 'cleared')),
    at           timestamptz NOT NULL,
    by           text,
    note         text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    notified_at  timestamptz
);
CREATE INDEX IF NOT EXISTS alarm_events_alarm ON alarm_events (alarm_id);
CREATE INDEX IF NOT EXISTS alarm_events_pending ON alarm_events (id) WHERE notified_at IS NULL;

CREATE TABLE IF NOT EXISTS rule_overrides (
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    rule_id     text NOT NULL,
    params      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, rule_id)
);

CREATE TABLE IF NOT EXISTS monitor_devices (
    device_id      integer PRIMARY KEY REFERENCES devices ON DELETE CASCADE,
    seq_gaps_seen  bigint NOT NULL DEFAULT 0,
    last_gap_at    timestamptz
);

CREATE TABLE IF NOT EXISTS kpi_daily (
    day          date NOT NULL,
    scope        text NOT NULL,              -- a site id, or '*' for the whole network
    kpi          text NOT NULL,
    numerator    double precision NOT NULL,
    denominator  double precision NOT NULL,
    value        double precision,           -- numerator / denominator; NULL when nothing to count
    target       double precision NOT NULL DEFAULT 1,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, scope, kpi)
);

CREATE TABLE IF NOT EXISTS room_lighting_daily (
    day                    date NOT NULL,
    room_id                integer NOT NULL REFERENCES rooms ON DELETE CASCADE,
    site_id                text NOT NULL REFERENCES sites ON DELETE CASCADE,
    occupied_minutes       integer NOT NULL,
    desk_lux               double precision,
    desk_uniformity        double precision,
    blackboard_lux         double precision,
    blackboard_uniformity  double precision,
    compliant              boolean NOT NULL,
    PRIMARY KEY (day, room_id)
);
CREATE INDEX IF NOT EXISTS room_lighting_daily_site ON room_lighting_daily (site_id, day);
