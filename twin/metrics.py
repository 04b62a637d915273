"""The metric catalogue: names as they appear in payloads, storage and exports.

The physical range decides what is valid; a value outside it goes to dead letters.
Names are never renamed, only added (DESIGN.md, MQTT contract).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    metric_id: int
    name: str
    unit: str
    min_value: float
    max_value: float
    description: str


CATALOGUE: tuple[Metric, ...] = (
    Metric(1, "temperature", "°C", -40.0, 85.0, "air temperature"),
    Metric(2, "humidity", "%RH", 0.0, 100.0, "relative humidity"),
    Metric(3, "co2", "ppm", 0.0, 10000.0, "carbon dioxide concentration"),
    Metric(4, "pm25", "µg/m³", 0.0, 1000.0, "fine particulate matter PM2.5"),
    Metric(5, "tvoc", "mg/m³", 0.0, 60.0, "total volatile organic compounds"),
    Metric(6, "noise", "dB(A)", 0.0, 140.0, "A-weighted sound level"),
    Metric(7, "occupancy", "persons", 0.0, 500.0, "people in the room"),
    Metric(8, "illuminance", "lx", 0.0, 200000.0, "desk illuminance"),
    Metric(9, "blackboard_illuminance", "lx", 0.0, 200000.0, "blackboard illuminance"),
    Metric(10, "power", "W", 0.0, 100000.0, "electric power"),
    Metric(11, "energy", "Wh", 0.0, 1e12, "energy counter"),
    Metric(12, "dimming", "%", 0.0, 100.0, "dimming level"),
    Metric(13, "on", "", 0.0, 1.0, "switched on (0/1)"),
    Metric(14, "panel_state", "", 0.0, 2.0, "interactive panel: 0 off, 1 standby, 2 on"),
    Metric(15, "panel_temperature", "°C", -20.0, 120.0, "interactive panel internal temperature"),
    # Interactive panels and 1+N cloud classes (simulators, docs/simulators.md).
    Metric(16, "screen_on", "", 0.0, 1.0, "interactive panel screen lit (0/1)"),
    Metric(17, "input_source", "", 0.0, 3.0, "panel input: 0 none, 1 built-in PC, 2 HDMI, 3 cloud-class stream"),
    Metric(18, "cloud_session", "", 0.0, 1e12, "cloud-class session number (YYYYMMDDLL), 0 when none"),
    Metric(19, "cloud_role", "", 0.0, 2.0, "cloud class: 0 none, 1 main classroom streaming, 2 auxiliary joined"),
    # Off-the-shelf devices through adapters (issue 19): a motion/presence detector says someone is there,
    # not how many; a Zigbee link's quality indicator (LQI, 0-255) is not a signal strength in dBm.
    Metric(20, "presence", "", 0.0, 1.0, "someone present (motion or presence detector, 0/1)"),
    Metric(21, "link_quality", "", 0.0, 255.0, "Zigbee link quality indicator (LQI, 0-255)"),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}
BY_ID: dict[int, Metric] = {m.metric_id: m for m in CATALOGUE}
