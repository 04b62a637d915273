"""Smoke test of bench/notify.py: a few alarms and a small burst through a signed Feishu stand-in on a
scratch database of the test server; one JSON object with the promised keys, nothing lost, no bad
signature. No latency or rate is asserted (a loaded machine says little; the limits are checked on an
injected clock in tests/test_notify_channels_delivery.py)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.conftest import REPO

KEYS = {"channel", "latency", "burst", "bad_signatures", "target_p99_s", "target_met"}


def test_notify_benchmark_prints_one_json_object(pg_admin_url: str) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "notify.py"), "--alarms", "4", "--gap", "0.1",
                          "--burst", "12", "--database-url", pg_admin_url],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-5000:]
    assert len(out.stdout.strip().splitlines()) == 1, out.stdout[-2000:]
    result = orjson.loads(out.stdout)
    assert KEYS <= set(result), sorted(KEYS - set(result))
    assert result["latency"]["received"] == 4 and result["bad_signatures"] == 0
    assert result["burst"]["received"] == 12 and result["burst"]["lost"] == 0
