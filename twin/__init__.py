"""Campus Twin core: domain model, settings, storage, MQTT contract and the CLI."""

__version__ = "0.1.0"
