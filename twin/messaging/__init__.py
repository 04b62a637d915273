"""Messaging: the MQTT topic and payload contract, the one paho wrapper, the broker launcher and
its accounts and ACLs."""
