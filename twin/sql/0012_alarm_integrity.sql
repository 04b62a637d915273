-- Campus Twin schema, version 12: alarms a person can trust (docs/monitoring.md, "Alarm integrity").
-- known_at: when the twin knew (the monitor cycle that raised it), beside raised_at (when the
-- condition began, from the data). An alarm never clears before it was raised. device_heard: the
-- minutes (receive time, with the first and last time in each) in which ingest stored a reading of a
-- device, so that offline is judged on what the twin heard, whatever the device's clock says;
-- device_status.clock_offset_s: the newest reading's device time minus the time it was stored.
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS known_at timestamptz;
UPDATE alarms SET known_at = raised_at WHERE known_at IS NULL;
ALTER TABLE alarms ALTER COLUMN known_at SET DEFAULT now();
ALTER TABLE alarms ALTER COLUMN known_at SET NOT NULL;
UPDATE alarms SET cleared_at = raised_at WHERE cleared_at < raised_at;
UPDATE alarm_events e SET at = a.raised_at FROM alarms a
    WHERE a.id = e.alarm_id AND e.event = 'cleared' AND e.at < a.raised_at;
-- a cleared event dated before an earlier event of its alarm (it was dated by the data's end)
UPDATE alarm_events e SET at = p.latest
    FROM (SELECT f.id, (SELECT max(g.at) FROM alarm_events g WHERE g.alarm_id = f.alarm_id AND g.id < f.id) AS latest
          FROM alarm_events f WHERE f.event = 'cleared') p
    WHERE p.id = e.id AND p.latest > e.at;
ALTER TABLE alarms DROP CONSTRAINT IF EXISTS alarms_cleared_after_raised;
ALTER TABLE alarms ADD CONSTRAINT alarms_cleared_after_raised CHECK (cleared_at IS NULL OR cleared_at >= raised_at);
ALTER TABLE alarms DROP CONSTRAINT IF EXISTS alarms_closed_has_cleared_at;
UPDATE alarms SET cleared_at = greatest(raised_at, coalesce(acked_at, raised_at)) WHERE state = 'closed' AND cleared_at IS NULL;
ALTER TABLE alarms ADD CONSTRAINT alarms_closed_has_cleared_at CHECK ((state = 'closed') = (cleared_at IS NOT NULL));
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS clock_offset_s double precision;
CREATE TABLE IF NOT EXISTS device_heard (
    device_id  integer NOT NULL REFERENCES devices ON DELETE CASCADE,
    minute     timestamptz NOT NULL,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (device_id, minute)
);
-- The first and last reading time of each device in each minute (device time, as the readings): a
-- silence between two minutes is known to the second, so offline is 3 intervals after the last report.
CREATE TABLE IF NOT EXISTS device_minutes (
    device_id  integer NOT NULL,
    minute     timestamptz NOT NULL,
    first_ts   timestamptz NOT NULL,
    last_ts    timestamptz NOT NULL,
    PRIMARY KEY (device_id, minute)
);
CREATE INDEX IF NOT EXISTS device_heard_minute ON device_heard (minute);
-- a device's dead letters by topic and time (telemetry refused for its time is still a live device)
CREATE INDEX IF NOT EXISTS dead_letters_topic ON dead_letters (topic, received_at);
-- Readings stored before this migration have no device_minutes: the monitor reads the rollups for them.
CREATE TABLE IF NOT EXISTS device_minutes_since (since timestamptz NOT NULL);
INSERT INTO device_minutes_since SELECT coalesce(max(bucket) + interval '1 hour', '-infinity') FROM rollup_1h
    WHERE NOT EXISTS (SELECT 1 FROM device_minutes_since);
