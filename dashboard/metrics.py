"""Metric names for people, in both languages: one table for every page (pickers, legends, hovers).

    metric_label("co2", "en") == "CO₂"
    metric_label("illuminance", "zh") == "课桌照度"
    metric_label("no_such_metric", "en") == "no_such_metric"     # unknown ids show as they are

Keys are the metric ids of :mod:`twin.metrics` plus the floor plan's derived ``compliance`` and
``device_health``.
"""

from __future__ import annotations

#: metric id -> (English, Chinese)
NAMES: dict[str, tuple[str, str]] = {
    "co2": ("CO₂", "二氧化碳"),
    "temperature": ("Temperature", "温度"),
    "humidity": ("Humidity", "湿度"),
    "illuminance": ("Desk illuminance", "课桌照度"),
    "blackboard_illuminance": ("Blackboard illuminance", "黑板照度"),
    "occupancy": ("Occupancy", "人数"),
    "noise": ("Noise", "噪声"),
    "pm25": ("PM2.5", "PM2.5 细颗粒物"),
    "tvoc": ("TVOC", "TVOC 挥发性有机物"),
    "power": ("Power", "功率"),
    "energy": ("Energy", "电能"),
    "dimming": ("Dimming", "调光"),
    "on": ("Switched on", "开关"),
    "panel_state": ("Panel state", "大屏状态"),
    "panel_temperature": ("Panel temperature", "大屏温度"),
    "screen_on": ("Screen", "屏幕"),
    "input_source": ("Input source", "信号源"),
    "cloud_session": ("Cloud class", "云课堂"),
    "cloud_role": ("Cloud-class role", "云课堂角色"),
    "presence": ("Presence", "有人"),
    "link_quality": ("Zigbee link quality", "Zigbee 链路质量"),
    "compliance": ("Standards compliance", "标准达标"),
    "device_health": ("Device health", "设备健康"),
}


def metric_label(metric: str, lang: str = "en") -> str:
    """``metric``'s name for people in ``lang`` ("en" or "zh"); the id itself when unknown."""
    names = NAMES.get(metric)
    if names is None:
        return metric
    return names[1] if lang == "zh" else names[0]
