-- Campus Twin schema, version 1: the spatial twin, devices, metrics, status, alarms,
-- dead letters and BIM imports. Readings and their partitions are created in Python
-- (TimescaleDB hypertable or plain PostgreSQL range partitions).

CREATE TABLE IF NOT EXISTS sites (
    site_id      text PRIMARY KEY CHECK (site_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name         text NOT NULL,
    role         text NOT NULL DEFAULT 'member' CHECK (role IN ('headquarters', 'member')),
    latitude     double precision,
    longitude    double precision,
    elevation_m  double precision,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS buildings (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    global_id   text NOT NULL,
    name        text NOT NULL,
    removed_at  timestamptz,
    UNIQUE (site_id, global_id)
);

CREATE TABLE IF NOT EXISTS storeys (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    building_id  integer NOT NULL REFERENCES buildings ON DELETE CASCADE,
    global_id    text NOT NULL,
    name         text NOT NULL,
    elevation_m  double precision NOT NULL DEFAULT 0,
    removed_at   timestamptz,
    UNIQUE (building_id, global_id)
);

CREATE TABLE IF NOT EXISTS rooms (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    storey_id   integer NOT NULL REFERENCES storeys ON DELETE CASCADE,
    global_id   text NOT NULL,
    name        text NOT NULL,
    long_name   text,
    use         text NOT NULL DEFAULT 'other'
                CHECK (use IN ('classroom', 'lab', 'office', 'corridor', 'toilet', 'stair', 'other')),
    footprint   bytea,            -- WKB of a shapely (Multi)Polygon on the floor plane, metres
    area_m2     double precision,
    height_m    double precision,
    removed_at  timestamptz,
    UNIQUE (site_id, global_id)
);
CREATE INDEX IF NOT EXISTS rooms_storey ON rooms (storey_id);

CREATE TABLE IF NOT EXISTS devices (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    device_id   text NOT NULL CHECK (device_id ~ '^[^/+#]{1,128}$'),
    global_id   text,
    kind        text NOT NULL,
    ifc_class   text,
    name        text NOT NULL DEFAULT '',
    room_id     integer REFERENCES rooms ON DELETE SET NULL,
    storey_id   integer REFERENCES storeys ON DELETE SET NULL,
    mapping     text NOT NULL DEFAULT 'unmapped'
                CHECK (mapping IN ('containment', 'reference', 'geometry', 'unmapped')),
    x double precision, y double precision, z double precision,
    removed_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, device_id)
);
CREATE INDEX IF NOT EXISTS devices_room ON devices (room_id);

CREATE TABLE IF NOT EXISTS metrics (
    metric_id    smallint PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    unit         text NOT NULL,
    min_value    double precision NOT NULL,
    max_value    double precision NOT NULL,
    description  text NOT NULL DEFAULT ''
);

-- Latest value per device and metric, kept up to date on write.
CREATE TABLE IF NOT EXISTS latest (
    device_id  integer NOT NULL REFERENCES devices ON DELETE CASCADE,
    metric_id  smallint NOT NULL REFERENCES metrics,
    ts         timestamptz NOT NULL,
    value      double precision NOT NULL,
    PRIMARY KEY (device_id, metric_id)
);

-- Rollups (count, sum, min, max) per device, metric and bucket, kept up to date on write.
CREATE TABLE IF NOT EXISTS rollup_1m (
    device_id  integer NOT NULL,
    metric_id  smallint NOT NULL,
    bucket     timestamptz NOT NULL,
    n          integer NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    PRIMARY KEY (device_id, metric_id, bucket)
);
CREATE TABLE IF NOT EXISTS rollup_1h (LIKE rollup_1m INCLUDING ALL);

CREATE TABLE IF NOT EXISTS device_status (
    device_id    integer PRIMARY KEY REFERENCES devices ON DELETE CASCADE,
    state        text NOT NULL DEFAULT 'unknown' CHECK (state IN ('online', 'offline', 'unknown')),
    last_seen    timestamptz,
    firmware     text,
    battery_pct  double precision,
    rssi_dbm     double precision,
    last_seq     bigint,
    seq_gaps     bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS alarms (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    room_id     integer REFERENCES rooms ON DELETE SET NULL,
    device_id   integer REFERENCES devices ON DELETE SET NULL,
    rule        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'closed')),
    message     text NOT NULL DEFAULT '',
    raised_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz,
    acked_at    timestamptz,
    acked_by    text,
    note        text
);
CREATE INDEX IF NOT EXISTS alarms_open ON alarms (site_id) WHERE state <> 'closed';

CREATE TABLE IF NOT EXISTS dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    topic         text NOT NULL,
    reason        text NOT NULL,
    payload       bytea NOT NULL,
    payload_size  integer NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at);

CREATE TABLE IF NOT EXISTS bim_imports (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      text NOT NULL REFERENCES sites ON DELETE CASCADE,
    file_name    text NOT NULL,
    file_sha256  text NOT NULL,
    ifc_schema   text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    summary      jsonb NOT NULL DEFAULT '{}',
    diff         jsonb NOT NULL DEFAULT '{}'
);
