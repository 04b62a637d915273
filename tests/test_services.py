"""The one service lifecycle (twin/services.py): order, readiness, reverse stop within a deadline, crashes.

Crashes and signals are tried in real processes (the thread-death hook ends a process); the rest
in this one, waiting on events, never on sleeps.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from twin.services import Launched, ServiceError, Supervisor, ThreadService, port_answers


def recorder(name: str, log: list[str], *, ready: threading.Event | None = None,
             deaf: threading.Event | None = None):
    """A service body that notes its start and stop in ``log``; ``deaf``: it ignores the stop until set."""

    def run(stop: threading.Event) -> None:
        log.append(f"start {name}")
        if ready is not None:
            ready.set()
        if deaf is not None:
            deaf.wait()
        else:
            stop.wait()
        log.append(f"stop {name}")

    return run


def test_services_start_in_order_each_ready_first_and_stop_in_reverse():
    log: list[str] = []
    ready_a = threading.Event()
    seen_ready: list[bool] = []

    def b(stop: threading.Event) -> None:
        seen_ready.append(ready_a.is_set())
        recorder("b", log)(stop)

    with Supervisor() as sup:
        db = sup.start(Launched("db", launch=lambda: log.append("start db") or "url",
                                halt=lambda value: log.append(f"stop db {value}")))
        sup.start(ThreadService("a", recorder("a", log, ready=ready_a), ready=ready_a))
        sup.start(ThreadService("b", b))
        assert db.value == "url"
    assert seen_ready == [True]
    assert log == ["start db", "start a", "start b", "stop b", "stop a", "stop db url"]
    assert sup.laggards == []


def test_a_service_that_does_not_stop_is_named_and_the_others_still_stop(capfd):
    log: list[str] = []
    release = threading.Event()
    sup = Supervisor(stop_within_s=0.2)
    try:
        sup.start(ThreadService("first", recorder("first", log)))
        sup.start(ThreadService("stuck", recorder("stuck", log, deaf=release)))
        sup.start(ThreadService("last", recorder("last", log)))
        laggards = sup.stop()
    finally:
        release.set()
    assert laggards == ["stuck"]
    assert log[:3] == ["start first", "start stuck", "start last"]
    assert "stop last" in log and "stop first" in log and "stop stuck" not in log[:5]
    assert "Thread 0x" in capfd.readouterr().err  # where the laggard waits (join_within's stack dump)


def test_readiness_is_what_the_service_shows_a_port_answering():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    check = port_answers("127.0.0.1", port)
    assert not check()
    listener.listen()
    try:
        assert check()
        with Supervisor() as sup:
            sup.start(ThreadService("http", lambda stop: stop.wait(), ready=check))
    finally:
        listener.close()


def test_a_service_that_is_never_ready_fails_the_start_and_what_started_is_stopped():
    log: list[str] = []
    never = threading.Event()
    with pytest.raises(ServiceError, match="slow was not ready within 0.1 s"), Supervisor() as sup:
        sup.start(ThreadService("ok", recorder("ok", log)))
        sup.start(ThreadService("slow", lambda stop: stop.wait(), ready=never), ready_within_s=0.1)
    assert log == ["start ok", "stop ok"]


def test_a_service_that_ends_by_itself_stops_the_rest_and_is_a_failure():
    log: list[str] = []
    go = threading.Event()

    def quitter(stop: threading.Event) -> None:
        go.wait()  # ready at once, ends when told (not by the stop)

    with pytest.raises(ServiceError, match="quitter ended by itself"), Supervisor() as sup:
        sup.start(ThreadService("long", recorder("long", log)))
        sup.start(ThreadService("quitter", quitter))
        go.set()
        sup.wait()  # woken by the service's end, not by a signal or a duration
    assert log == ["start long", "stop long"]


def test_a_service_that_dies_while_starting_raises_its_own_error():
    def broken(stop: threading.Event) -> None:
        raise ValueError("no such device table")

    hook = threading.excepthook
    threading.excepthook = lambda args: None  # this process: no thread-death hook, nothing to print
    try:
        with pytest.raises(ValueError, match="no such device table"), Supervisor() as sup:
            sup.start(ThreadService("broken", broken, ready=threading.Event()))
    finally:
        threading.excepthook = hook


SCRIPT = textwrap.dedent("""
    import sys, threading
    from twin.logs import setup_logging
    from twin.services import Supervisor, ThreadService, stop_on_signals

    setup_logging(0)
    stop, restore = stop_on_signals()
    told = threading.Event()  # the test has said whether to crash
    crash = []
    order = []

    def steady(name):
        def run(stop):
            stop.wait()
            order.append(name)
        return run

    def crasher(stop):
        told.wait()
        if crash:
            raise ZeroDivisionError("division by zero in the service")
        stop.wait()

    with Supervisor(stop) as sup:
        sup.start(ThreadService("first", steady("first")))
        sup.start(ThreadService("crasher", crasher))
        sup.start(ThreadService("last", steady("last")))
        print("ready", flush=True)
        said = sys.stdin.readline().strip()
        if said == "crash":
            crash.append(True)
        elif said == "term-to-a-thread":  # SIGTERM delivered to a service's thread, once the main thread waits
            import signal, time
            main = threading.main_thread().ident

            def term_once_waiting():
                while sys._current_frames()[main].f_code.co_filename != threading.__file__:
                    time.sleep(0.01)  # the main thread is in threading's wait
                time.sleep(0.5)  # and blocked there
                first = next(t for t in threading.enumerate() if t.name == "first")
                signal.pthread_kill(first.ident, signal.SIGTERM)

            threading.Thread(target=term_once_waiting, daemon=True).start()
        told.set()
        sup.wait()
    print("stopped", " ".join(order), flush=True)
    restore()
""")


def run_script(command: str | None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    if command is None:
        proc.send_signal(signal.SIGTERM)
        command = ""
    out, err = proc.communicate(command + "\n", timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_crashed_service_is_a_loud_non_zero_exit():
    done = run_script("crash")
    assert done.returncode != 0, done
    assert "thread 'crasher' died: ZeroDivisionError: division by zero in the service" in done.stderr, done.stderr
    assert "level=critical" in done.stderr
    assert "stopped" not in done.stdout  # the failure is raised after the others stopped


def test_sigterm_stops_every_service_in_reverse_order_and_exits_zero():
    done = run_script(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "stopped last first"


def test_sigterm_received_by_another_thread_still_stops_the_run():
    """The kernel may hand a process's SIGTERM to any of its threads; Python runs the handler in the main
    thread only when that thread runs Python: a main thread blocked on the stop for good never did (the
    demo's SIGTERM stop hung twice in full suites with all its threads waiting)."""
    done = run_script("term-to-a-thread")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "stopped last first"


def test_sigusr1_prints_every_thread_stack_and_the_run_goes_on():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGUSR1)
    dump = []
    for line in proc.stderr:  # faulthandler writes at once: the services' threads, waiting
        dump.append(line)
        if "in run" in line:
            break
    assert any(line.startswith("Thread 0x") for line in dump), dump
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "stopped last first"


def test_a_part_whose_stop_fails_does_not_keep_the_others_running():
    """The broker's stop raising must not leave the database (started before it) running: the rest
    still stop in reverse, then the failure is raised."""
    log: list[str] = []

    def broken_halt(value: str) -> None:
        log.append(f"stop {value}")
        raise OSError("mosquitto would not die")

    sup = Supervisor()
    sup.start(Launched("db", launch=lambda: "db", halt=lambda value: log.append(f"stop {value}")))
    sup.start(Launched("broker", launch=lambda: "broker", halt=broken_halt))
    sup.start(ThreadService("ingest", recorder("ingest", log)))
    with pytest.raises(OSError, match="mosquitto would not die"):
        sup.stop()
    assert log == ["start ingest", "stop ingest", "stop broker", "stop db"]
