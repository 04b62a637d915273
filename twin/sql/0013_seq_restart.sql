-- Campus Twin schema, version 13: a device's count restart (a reboot) told from reordering by time
-- (twin.sequence): seq_high_at is the device time of the highest number of the current count,
-- seq_count_from the device time of its first; numbers older than that belong to an earlier count.
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS seq_high_at timestamptz;
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS seq_count_from timestamptz;
