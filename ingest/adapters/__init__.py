"""Adapters: other topic families (zigbee2mqtt, LoRaWAN network servers, Tasmota) decoded into the twin's
readings, statuses and dead letters. Each adapter is a pure decoder (topic + bytes -> :class:`Decoded`)
with a declared subscription; field and unit mappings are data (``fields/<adapter>.toml``). See docs/mqtt.md."""
