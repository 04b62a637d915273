"""Alarm notification channels: group robots of WeCom, DingTalk and Feishu, and e-mail over SMTP.

Each channel kind is a small module of pure functions (message -> request), configured from a TOML
file (:mod:`.config`) and delivered by the notifier's worker (:mod:`.dispatch`), rate-limited per
channel, retried with backoff, deduplicated per event and channel in ``alarm_deliveries``.
"""
