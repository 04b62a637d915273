"""The one child-process helper (twin/children.py), through real children: results, errors, deadlines,
crashes, memory caps, the stop of stuck children, and ``python -m`` children that stream messages.

Nothing here sleeps: the parent waits on the child's pipe or on its exit.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from pathlib import Path

import psutil
import pytest

from twin.children import (
    ChildDied,
    ChildFailed,
    ChildTimeout,
    ModuleChild,
    exit_text,
    receive,
    send_message,
    spawn,
    stop_processes,
)

REPO = Path(__file__).resolve().parents[1]


def add(a: int, b: int, *, times: int = 1) -> int:
    return (a + b) * times


def raises() -> None:
    raise LookupError("no such site 'x'\nsecond line never shown")


def hangs() -> None:
    threading.Event().wait()


def crashes() -> None:
    os._exit(3)


def hogs() -> int:
    hog = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GiB
    return len(hog)


def unpicklable() -> object:
    return threading.Lock()


def deaf(ready: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()  # type: ignore[attr-defined]
    threading.Event().wait()


def test_a_child_gives_its_result_back():
    assert spawn(add, 2, 3, process_name="adder", times=4).result(60) == 20


def test_a_child_that_raises_gives_its_error_back_in_one_line():
    child = spawn(raises, process_name="raiser")
    with pytest.raises(ChildFailed, match=r"^no such site 'x'$") as caught:
        child.result(60)
    assert caught.value.kind == "error"
    assert child.process.exitcode == 1  # a failed run is a non-zero exit too


def test_a_child_that_exceeds_its_deadline_is_killed():
    child = spawn(hangs, process_name="hanger")
    pid = child.pid
    with pytest.raises(ChildTimeout, match="still running after 0.5 s; killed"):
        child.result(0.5)
    assert child.process.exitcode == -signal.SIGKILL
    assert pid is not None and not psutil.pid_exists(pid)


def test_a_child_that_crashes_says_how_it_ended():
    with pytest.raises(ChildDied, match=r"^exit code 3$") as caught:
        spawn(crashes, process_name="crasher").result(60)
    assert caught.value.exitcode == 3
    assert exit_text(-9) == "exit code -9, SIGKILL"


def test_a_child_is_capped_in_memory_and_an_unpicklable_result_is_an_error():
    with pytest.raises(ChildFailed) as caught:
        spawn(hogs, process_name="hog", memory_bytes=1024**3).result(60)
    assert caught.value.kind == "memory"
    with pytest.raises(ChildFailed) as unsent:
        spawn(unpicklable, process_name="lock").result(60)
    assert unsent.value.kind == "unsent" and "TypeError" in str(unsent.value)
    assert multiprocessing.active_children() == []


def test_stuck_children_are_killed_together_after_one_grace():
    ctx = multiprocessing.get_context("spawn")
    children = []
    for i in range(3):
        ready = ctx.Event()
        child = spawn(deaf, ready, process_name=f"deaf-{i}")
        assert ready.wait(60)
        children.append(child)
    quick = spawn(add, 1, 1, process_name="quick")
    assert receive(quick.pipe, None) == ("ok", 2)  # it has sent its result; SIGTERM ends it
    killed = stop_processes([c.process for c in [*children, quick]], grace_s=0.5, kill_wait_s=10.0)
    assert killed == [c.process for c in children]
    assert [c.process.exitcode for c in children] == [-signal.SIGKILL] * 3
    for c in [*children, quick]:
        c.close()


def test_a_module_child_streams_messages_and_its_death_says_its_last_words():
    child = ModuleChild("tests.test_children", "talk", package_root=REPO)
    try:
        got = []
        for message in child.messages():
            got.append(message)
            if message[0] == "done":
                break
        assert got == [("progress", 1, 2), ("progress", 2, 2), ("done", "ok")]
    finally:
        child.close()
    dying = ModuleChild("tests.test_children", "die", package_root=REPO)
    try:
        with pytest.raises(ChildDied, match=r"^exit code 5; the kernel gave up on space 7$"):
            list(dying.messages())
    finally:
        dying.close()


def test_a_killed_module_child_is_reported_with_its_signal():
    child = ModuleChild("tests.test_children", "hang", package_root=REPO)
    try:
        child.kill()
        with pytest.raises(ChildDied, match=r"^exit code -9, SIGKILL"):
            next(child.messages())
    finally:
        child.close()


if __name__ == "__main__":  # the ModuleChild of the tests above
    from twin.process import die_with_parent

    die_with_parent()
    out = sys.stdout.buffer
    if sys.argv[1] == "talk":
        send_message(out, ("progress", 1, 2))
        send_message(out, ("progress", 2, 2))
        send_message(out, ("done", "ok"))
    elif sys.argv[1] == "die":
        print("the kernel gave up on space 7", file=sys.stderr)
        sys.exit(5)
    else:
        threading.Event().wait()
