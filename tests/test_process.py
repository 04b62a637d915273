"""Stopping threads against one deadline: the laggards are named and their stacks written out."""

from __future__ import annotations

import threading
import time

from twin.process import join_within


def test_join_within_returns_threads_still_running_and_dumps_their_stacks(capfd) -> None:
    release = threading.Event()
    quick = threading.Thread(target=lambda: None, name="quick", daemon=True)
    stuck = threading.Thread(target=release.wait, name="stuck-worker", daemon=True)
    quick.start()
    stuck.start()
    start = time.monotonic()
    try:
        alive = join_within([stuck, quick], 0.3)
    finally:
        release.set()
    assert alive == [stuck]
    assert time.monotonic() - start < 5  # one deadline for all, not one per thread
    err = capfd.readouterr().err
    assert "Thread 0x" in err and "in wait" in err  # faulthandler's dump shows where it waits


def test_join_within_is_quiet_when_everything_stops(capfd) -> None:
    threads = [threading.Thread(target=time.sleep, args=(0.05,), daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    assert join_within(threads, 5) == []
    assert "Thread" not in capfd.readouterr().err
