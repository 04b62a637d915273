-- Campus Twin schema, version 17: MQTT accounts of the sites' adapters (issue 19). An 'integration'
-- account speaks for one adapter: a zigbee2mqtt instance, ChirpStack's MQTT integration or a bridge
-- from The Things Stack (adapter and prefix: the site_adapters row it serves), or one Tasmota device
-- (adapter 'tasmota', no prefix: the username is the device's Tasmota topic, device_id its device).
ALTER TABLE mqtt_accounts DROP CONSTRAINT IF EXISTS mqtt_accounts_role_check;
ALTER TABLE mqtt_accounts ADD CONSTRAINT mqtt_accounts_role_check
    CHECK (role IN ('device', 'gateway', 'ingest', 'dashboard', 'monitor', 'integration'));
ALTER TABLE mqtt_accounts ADD COLUMN IF NOT EXISTS adapter text;
ALTER TABLE mqtt_accounts ADD COLUMN IF NOT EXISTS prefix text;
ALTER TABLE mqtt_accounts DROP CONSTRAINT IF EXISTS mqtt_accounts_integration;
ALTER TABLE mqtt_accounts ADD CONSTRAINT mqtt_accounts_integration
    CHECK (CASE WHEN role = 'integration' THEN adapter IS NOT NULL AND (adapter = 'tasmota') = (prefix IS NULL)
                ELSE adapter IS NULL AND prefix IS NULL END);
-- One account per adapter subscription (a prefix belongs to one site: site_adapters' key).
CREATE UNIQUE INDEX IF NOT EXISTS mqtt_accounts_adapter_prefix ON mqtt_accounts (adapter, prefix)
    WHERE prefix IS NOT NULL;
