-- Campus Twin schema, version 11: when the twin was listening (docs/monitoring.md, "Device health").
-- Every few seconds, while its MQTT subscription is acknowledged and the database answers, each
-- ingest worker extends its current spell of listening (twin/storage/listening.py); a worker that
-- stops beating ends its spell, and its next beat begins a new one. A device's silence outside
-- every spell (ingest, broker or database down) is the twin's, not the device's.
CREATE TABLE IF NOT EXISTS ingest_listening (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     text NOT NULL,
    started_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    CHECK (last_seen_at >= started_at)
);
CREATE INDEX IF NOT EXISTS ingest_listening_client ON ingest_listening (client_id, last_seen_at DESC);
CREATE INDEX IF NOT EXISTS ingest_listening_seen ON ingest_listening (last_seen_at);
