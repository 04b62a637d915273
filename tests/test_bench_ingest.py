"""Smoke test of bench/ingest.py at a tiny size: it runs and prints the promised JSON, the zigbee2mqtt
adapter path's keys among them, having stored every reading of the adapter's backlog."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.conftest import REPO

KEYS = {"receive_limit_msgs_per_s", "pipeline_1w_msgs_per_s", "pipeline_2w_msgs_per_s", "naive_msgs_per_s",
        "p50_latency_s", "p99_latency_s", "ratio_vs_limit", "ratio_vs_naive",
        "adapter_msgs_per_s", "adapter_rows_per_s", "adapter_ratio_vs_limit", "adapter_ratio_vs_native",
        "adapter_rows_ratio_vs_native"}


@pytest.mark.usefixtures("mosquitto_installed")
def test_ingest_benchmark_prints_its_keys(pg_admin_url):
    env = {**os.environ, "CAMPUS_TWIN_DATABASE_URL": pg_admin_url}
    env.pop("CAMPUS_TWIN_MQTT_URL", None)  # its own Mosquitto: the benchmark drains fresh sessions
    out = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--smoke"], capture_output=True,
                         text=True, timeout=180, env=env, check=True)
    result = orjson.loads(out.stdout)
    assert KEYS <= set(result)
    assert result["messages"] == 600
    assert all(result[k] > 0 for k in KEYS)
    # the adapter path: zigbee2mqtt state messages of the same number of devices, bound by IEEE address and
    # named by a bridge device list; every reading stored (the benchmark checks it per device), no dead letter
    assert result["adapter"] == "zigbee2mqtt"
    assert result["adapter_devices"] == result["devices"]
    assert result["adapter_rows_stored"] == result["messages"] * result["adapter_metrics_per_message"]
    assert result["adapter_dead_letters"] == 0
    assert isinstance(result["adapter_meets_target"], bool)


@pytest.mark.usefixtures("mosquitto_installed")
def test_ingest_benchmark_says_why_when_the_broker_drops_the_backlog(pg_admin_url, tmp_path):
    """A broker that queues only 100 messages for an offline client: a one-line reason, not a wrong figure."""
    from twin.messaging.broker import MosquittoBroker

    broker = MosquittoBroker(tmp_path / "mosquitto", persist=False, extra_conf="max_queued_messages 100\n")
    try:
        env = {**os.environ, "CAMPUS_TWIN_DATABASE_URL": pg_admin_url, "CAMPUS_TWIN_MQTT_URL": broker.url}
        out = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--smoke"], capture_output=True,
                             text=True, timeout=180, env=env, check=False)
    finally:
        broker.stop()
    assert out.returncode != 0 and out.stdout == ""
    assert f"the broker at {broker.url} delivered 100 of the 600 messages" in out.stderr
    assert "max_queued_messages" in out.stderr
