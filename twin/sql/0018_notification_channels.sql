-- Campus Twin schema, version 18: alarm notifications through channels (WeCom, DingTalk, Feishu, e-mail).
-- One row per lifecycle event and channel: the channel's own outbox. The primary key deduplicates
-- (an event goes to a channel once); attempts, the next attempt and the last failure's reason
-- (secrets redacted) make failures visible.

CREATE TABLE IF NOT EXISTS alarm_deliveries (
    event_id    bigint NOT NULL REFERENCES alarm_events ON DELETE CASCADE,
    channel     text NOT NULL,
    site_id     text NOT NULL,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    given_up_at timestamptz,               -- refused MAX_ATTEMPTS times: shown as a failure, no longer tried
    last_error  text,
    PRIMARY KEY (event_id, channel)
);
CREATE INDEX IF NOT EXISTS alarm_deliveries_pending ON alarm_deliveries (channel, event_id)
    WHERE sent_at IS NULL AND given_up_at IS NULL;
