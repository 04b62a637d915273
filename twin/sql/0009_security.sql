-- Campus Twin schema, version 9: dashboard users, their sessions, the audit log, and the
-- MQTT accounts (devices, gateways, ingest, dashboard) with their hashed passwords.

CREATE TABLE IF NOT EXISTS users (
    id            serial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'planner', 'admin')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A session is known by the SHA-256 of its cookie token; the CSRF token is checked on every POST.
CREATE TABLE IF NOT EXISTS user_sessions (
    token_hash  text PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS user_sessions_expiry ON user_sessions (expires_at);

CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    username    text,
    action      text NOT NULL,          -- login, logout, acknowledge, command, upload, user_add, user_remove, ...
    outcome     text NOT NULL,          -- ok, denied, failed
    target      text,
    detail      jsonb,
    remote_addr text
);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts DESC);

-- MQTT accounts; password_hash is Mosquitto's $7$ (PBKDF2-SHA512), written to its password_file.
CREATE TABLE IF NOT EXISTS mqtt_accounts (
    username      text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('device', 'gateway', 'ingest', 'dashboard', 'monitor')),
    site_id       text REFERENCES sites ON DELETE CASCADE,
    device_id     integer REFERENCES devices ON DELETE CASCADE,
    password_hash text NOT NULL,
    issued_at     timestamptz NOT NULL DEFAULT now()
);
