-- Campus Twin schema, version 7: commands sent to devices (luminaire on/off/dim, panel
-- standby) and their acknowledgements, so the dashboard can show what a device answered.

CREATE TABLE IF NOT EXISTS commands (
    id          text PRIMARY KEY,          -- the "id" of the cmd payload, echoed by the ack
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    device_id   integer NOT NULL REFERENCES devices ON DELETE CASCADE,
    action      text NOT NULL,
    level       double precision,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    sent_by     text,
    acked_at    timestamptz,
    ok          boolean,
    ack         jsonb
);
CREATE INDEX IF NOT EXISTS commands_device ON commands (device_id, sent_at DESC);
