-- Campus Twin schema, version 10: suspected loss that tolerates reordering across ingest workers.
-- seq_window: which of the 1,024 numbers up to last_seq have arrived (twin.sequence; NULL: all);
-- seq_lost: numbers that left the window missing. seq_gaps = seq_lost + missing inside the window.
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS seq_window bytea;
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS seq_lost bigint NOT NULL DEFAULT 0;
UPDATE device_status SET seq_lost = seq_gaps WHERE seq_gaps > 0 AND seq_lost = 0;
