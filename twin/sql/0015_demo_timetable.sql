-- Campus Twin schema, version 15: the demo's timetable (a demo-only setting): the school day read at the
-- clock plus shift_s seconds, every day a school day, so that a demo started at any hour finds school in
-- session. One row at most; none: the real timetable. Written by campus-twin demo, read by the simulators,
-- the monitor and the dashboard.
CREATE TABLE IF NOT EXISTS demo_timetable (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    shift_s    integer NOT NULL CHECK (abs(shift_s) <= 43200),
    every_day  boolean NOT NULL DEFAULT true,
    set_at     timestamptz NOT NULL DEFAULT now()
);
