-- Campus Twin schema, version 16: devices as schools buy them (issue 19). Hardware identities of the
-- twin's devices, the adapters each site has enabled, and the hardware those adapters have seen.

-- What a device's hardware calls itself: unique per kind across the network. 'ifc' identities are
-- replaced by each BIM revision that carries them; 'bind' ones (CSV, dashboard) are kept.
CREATE TABLE IF NOT EXISTS device_identities (
    kind         text NOT NULL CHECK (kind IN ('ieee', 'deveui', 'mac', 'urn', 'serial', 'tasmota')),
    hardware_id  text NOT NULL CHECK (hardware_id ~ '^[^[:space:]/+#]{1,128}$'),
    device_id    integer NOT NULL REFERENCES devices ON DELETE CASCADE,
    source       text NOT NULL CHECK (source IN ('ifc', 'bind')),
    bound_at     timestamptz NOT NULL DEFAULT now(),
    bound_by     text,
    PRIMARY KEY (kind, hardware_id)
);
CREATE INDEX IF NOT EXISTS device_identities_device ON device_identities (device_id);

-- Adapters a site has enabled: which topic family, under which prefix (a prefix belongs to one site).
CREATE TABLE IF NOT EXISTS site_adapters (
    site_id     text NOT NULL REFERENCES sites ON DELETE CASCADE,
    adapter     text NOT NULL CHECK (adapter IN ('zigbee2mqtt', 'chirpstack', 'tts', 'tasmota')),
    prefix      text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}',
    enabled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (adapter, prefix)
);
CREATE INDEX IF NOT EXISTS site_adapters_site ON site_adapters (site_id);

-- Hardware an adapter has seen at a site, bound or not: under which of the site's prefixes (NULL: not an
-- adapter's, e.g. a SenML URN), how to reach it (zigbee2mqtt's friendly name, the LoRaWAN application, the
-- Tasmota topic), its model, and for hardware bound to no device, what it sent meanwhile (the devices page's
-- "publishing but not in the twin").
CREATE TABLE IF NOT EXISTS hardware_seen (
    site_id      text NOT NULL REFERENCES sites ON DELETE CASCADE,
    kind         text NOT NULL,
    hardware_id  text NOT NULL,
    adapter      text NOT NULL,
    prefix       text,
    address      text NOT NULL,
    model        text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    messages     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, kind, hardware_id)
);
CREATE INDEX IF NOT EXISTS hardware_seen_address ON hardware_seen (adapter, site_id, prefix, address);
