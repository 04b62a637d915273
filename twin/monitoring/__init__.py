"""Monitoring: the standards and how a site applies them, the rule engine, device health, lighting
compliance, KPIs, the monitor service, alarm notifications and the monthly report."""
