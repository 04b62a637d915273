"""Alarm notifications go out from their own worker: a webhook that hangs or fails holds no monitor cycle,
and once it answers every event is delivered exactly once, in order. Real database, loopback receiver."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from tests.helpers import small_twin, wait_for
from twin.database import connection
from twin.monitoring import notify
from twin.monitoring.monitor import Monitor
from twin.monitoring.notify import Notifier
from twin.process import exit_on_thread_death, thread_death
from twin.storage import alarms
from twin.storage.model import save_model


class Receiver:
    """A webhook receiver whose mode is ``hang`` (answers nothing until released), ``fail`` (500) or ``ok``."""

    def __init__(self) -> None:
        self.mode = "hang"
        self.released = threading.Event()
        self.hanging = 0
        self.failures = 0
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode = receiver.mode
                if mode == "hang":
                    with receiver.lock:
                        receiver.hanging += 1
                    receiver.released.wait()  # the sender has given up long before: not delivered
                    self.send_response(503)
                elif mode == "fail":
                    with receiver.lock:
                        receiver.failures += 1
                    self.send_response(500)
                else:
                    with receiver.lock:
                        receiver.received.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/alarms"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.released.set()
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def site(db_url: str) -> tuple[str, str]:
    site_id = f"ntf-{uuid.uuid4().hex[:8]}"
    with connection(db_url) as conn:
        save_model(conn, small_twin(site_id, rooms=3))
    return db_url, site_id


def low_battery(url: str, site_id: str, device: str) -> None:
    with connection(url) as conn:
        conn.execute("UPDATE device_status SET battery_pct = 5 WHERE device_id = (SELECT id FROM devices "
                     "WHERE site_id = %s AND device_id = %s)", (site_id, device))


def raise_battery_alarm(url: str, site_id: str) -> None:
    """One open low-battery alarm of ENV-0 (one event in the outbox)."""
    with connection(url) as conn:
        (key,) = conn.execute("SELECT id FROM devices WHERE site_id = %s AND device_id = 'ENV-0'",
                              (site_id,)).fetchone()
        alarms.raise_alarm(conn, site_id, "device_low_battery", "warning", "battery at 5%", device_key=key)


def battery_alarms(url: str, site_id: str) -> set[str]:
    with connection(url) as conn:
        return {r[0] for r in conn.execute(
            """SELECT d.device_id FROM alarms a JOIN devices d ON d.id = a.device_id
               WHERE a.site_id = %s AND a.rule = 'device_low_battery'""", (site_id,)).fetchall()}


def stored_events(url: str) -> list[tuple[str, int]]:
    with connection(url) as conn:
        return [tuple(r) for r in conn.execute("SELECT event, alarm_id FROM alarm_events ORDER BY id").fetchall()]


def pending(url: str) -> int:
    with connection(url) as conn:
        return conn.execute("SELECT count(*) FROM alarm_events WHERE notified_at IS NULL").fetchone()[0]


def test_a_hanging_then_failing_webhook_holds_no_cycle_and_every_event_goes_out_once_in_order(site, receiver):
    url, site_id = site
    notifier = Notifier(None, receiver.url, webhook_timeout_s=0.2, backoff_s=0.05, max_backoff_s=0.2)
    monitor = Monitor(url, notifier=notifier)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop, 0.05), name="monitor", daemon=True)
    thread.start()
    try:
        low_battery(url, site_id, "ENV-0")
        wait_for(lambda: battery_alarms(url, site_id) == {"ENV-0"})
        wait_for(lambda: receiver.hanging >= 1)  # the worker is stuck on the first event
        # a later cycle records its alarm while the webhook still hangs
        low_battery(url, site_id, "ENV-1")
        wait_for(lambda: battery_alarms(url, site_id) == {"ENV-0", "ENV-1"})
        assert receiver.received == [] and pending(url) == 2
        receiver.mode = "fail"
        wait_for(lambda: receiver.failures >= 2)  # retried, not given up
        low_battery(url, site_id, "ENV-2")
        wait_for(lambda: battery_alarms(url, site_id) == {"ENV-0", "ENV-1", "ENV-2"})
        assert receiver.received == []
        receiver.mode = "ok"
        receiver.released.set()
        wait_for(lambda: pending(url) == 0)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    events = stored_events(url)
    assert len(events) == 3
    assert [(e["event"], e["alarm_id"]) for e in receiver.received] == events
    assert [e["device_id"] for e in receiver.received] == ["ENV-0", "ENV-1", "ENV-2"]


def test_the_notifier_worker_starts_and_stops_with_the_monitor(site, receiver):
    url, site_id = site
    receiver.mode = "ok"
    monitor = Monitor(url, notifier=Notifier(None, receiver.url))
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop, 0.05), name="monitor", daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(t.name == "notifier" for t in threading.enumerate()))
        low_battery(url, site_id, "ENV-0")
        wait_for(lambda: len(receiver.received) == 1)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert not any(t.name == "notifier" for t in threading.enumerate())


def test_a_crashed_notifier_worker_ends_the_process_loudly(site, receiver, monkeypatch):
    url, site_id = site
    receiver.mode = "ok"
    raise_battery_alarm(url, site_id)

    def broken(event):
        raise RuntimeError("a bug in the notifier")

    monkeypatch.setattr("twin.monitoring.notify.event_payload", broken)
    stop = threading.Event()
    uninstall = exit_on_thread_death(stop)
    notifier = Notifier(None, receiver.url)
    try:
        notifier.start(url)
        assert stop.wait(30)
        wait_for(lambda: not notifier.running)  # the hook has run in the dying thread
        assert "notifier" in (thread_death() or "") and "a bug in the notifier" in (thread_death() or "")
    finally:
        uninstall()
        notifier.close()
    assert receiver.received == []


def test_two_notifiers_on_one_database_do_not_deliver_an_event_twice(site, receiver, caplog):
    """Only the notifier holding the outbox's lock delivers (two monitors' workers would post everything twice)."""
    url, site_id = site
    receiver.mode = "ok"
    raise_battery_alarm(url, site_id)
    other = psycopg.connect(url, autocommit=True)  # another process's notifier, in the middle of a delivery
    assert other.execute("SELECT pg_try_advisory_lock(%s)", (notify.OUTBOX_LOCK,)).fetchone()[0]
    notifier = Notifier(None, receiver.url, poll_s=0.05)
    caplog.set_level(logging.DEBUG, logger="twin.monitoring.notify")
    try:
        notifier.start(url)
        wait_for(lambda: any("another notifier" in r.getMessage() for r in caplog.records))
        assert receiver.received == [] and pending(url) == 1
        other.close()
        wait_for(lambda: pending(url) == 0)
    finally:
        other.close()
        notifier.close()
    assert [e["device_id"] for e in receiver.received] == ["ENV-0"]
