-- Campus Twin schema, version 14: a site's time zone (an IANA name), in which people read its times
-- (the dashboard, reports); storage, exports and APIs stay in UTC. China has one zone, no daylight saving.
ALTER TABLE sites ADD COLUMN IF NOT EXISTS time_zone text NOT NULL DEFAULT 'Asia/Shanghai';
