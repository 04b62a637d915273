"""One lifecycle for every long-running part of the twin: start, ready, stop within a deadline, crash reported.

A :class:`Service` is started, then waited for until it is *ready* on something observable
(an event it sets, a port answering, a launcher that returned), asked to stop, and joined
against a deadline. A :class:`Supervisor` starts services in order, each one ready before the
next starts, and stops them in reverse order against one deadline::

    stop = threading.Event()                       # set by a signal, a dead thread, a service that ended
    with Supervisor(stop) as services:
        url = services.start(Launched("database", launch=start_db, halt=stop_db)).value
        services.start(ThreadService("ingest", worker.run, ready=worker.connected))
        services.wait(duration)                    # until ``stop`` is set, or ``duration`` seconds
    # leaving the block stops them: ingest first, the database last

The services of the twin fit it as they are: the ingest worker and the monitor (``run(stop)``
and an event they set once ready), the ingest pool (``ingest.pool.run_workers`` with its
``ready`` event), the simulator fleet (``FleetRunner.run`` and ``started``), the dashboard's
server (``dashboard.serve.serve_until``; ready when its port answers), the broker and the
embedded database (their launchers return once they answer: :class:`Launched`).

A service thread that raises goes through :data:`threading.excepthook` as any thread does:
with :func:`twin.process.exit_on_thread_death` installed (the CLI's ``stop_on_signals``) that
is a loud log line with the traceback, the stop of everything, and a non-zero exit. A service
that ends by itself without being asked is a failure too (:class:`ServiceError`). After the
stop, :meth:`Supervisor.stop` raises the first failure in the caller's thread.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

from twin.process import exit_on_thread_death, join_within

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds the services of a command get, all together, to stop after Ctrl-C or SIGTERM.
STOP_S = 30.0
#: What each service still gets once the deadline has passed (one before it did not stop): the others
#: are still stopped in order, each within this.
_AFTER_DEADLINE_S = 1.0
#: How often a wait for readiness also looks whether the service ended or the stop was asked.
_LOOK_S = 0.05
#: How often the main thread, waiting for the stop, wakes to run signal handlers (:meth:`Supervisor.wait`).
_WAKE_S = 0.5


class ServiceError(RuntimeError):
    """A service that did not become ready in time, or ended without being asked to."""


class Service(Protocol):
    """What the supervisor needs of a long-running part."""

    name: str
    #: The exception the service died of, once it has.
    error: BaseException | None

    def start(self, wake: threading.Event) -> None:
        """Begin (return at once, or when a launcher is done); set ``wake`` when the service ends."""

    def wait_ready(self, abort: threading.Event, timeout_s: float | None) -> bool:
        """Block until ready; False when it ended, ``abort`` was set or ``timeout_s`` passed first."""

    def stop(self) -> None:
        """Ask the service to stop (returns at once)."""

    def join(self, timeout_s: float) -> bool:
        """Wait for the service to have stopped; whether it has."""

    @property
    def ended(self) -> bool:
        """Whether it has ended (a thread returned or raised; a launched part was stopped)."""


Ready = threading.Event | Callable[[], bool] | None


def _is_ready(ready: Ready) -> bool:
    if ready is None:
        return True
    if isinstance(ready, threading.Event):
        return ready.is_set()
    return bool(ready())


class ThreadService:
    """``run(stop)`` in a thread of its own; ready when ``ready`` (an event, or a check) says so.

    ``close`` runs once the thread has ended (release what ``run`` does not: the app's pool, say).
    ``subject`` is what the service runs (the worker, the monitor), for its counters afterwards.
    """

    def __init__(self, name: str, run: Callable[[threading.Event], Any], *, ready: Ready = None,
                 close: Callable[[], None] | None = None, subject: Any = None) -> None:
        self.name = name
        self.subject = subject
        self.error: BaseException | None = None
        self._run, self._ready, self._close = run, ready, close
        self._stop = threading.Event()
        self._done = threading.Event()
        self._wake: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self, wake: threading.Event) -> None:
        self._wake = wake
        self._thread = threading.Thread(target=self._body, name=self.name, daemon=True)
        self._thread.start()

    def _body(self) -> None:
        try:
            self._run(self._stop)
        except BaseException as exc:
            self.error = exc
            raise  # to threading.excepthook: logged loudly, and the process stops (exit_on_thread_death)
        finally:
            self._done.set()
            if self._wake is not None:
                self._wake.set()

    def wait_ready(self, abort: threading.Event, timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        event = self._ready if isinstance(self._ready, threading.Event) else None
        while not _is_ready(self._ready):
            if self.ended or abort.is_set():
                return False
            left = _LOOK_S if deadline is None else min(_LOOK_S, deadline - time.monotonic())
            if left <= 0:
                return False
            if event is not None:
                event.wait(left)
            else:
                self._done.wait(left)
        return not self.ended

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> bool:
        if self._thread is not None and join_within([self._thread], timeout_s):
            return False  # still running: named, its stack dumped (join_within)
        if self._close is not None and not self._closed:
            self._closed = True
            self._close()
        return True


class Launched(Generic[T]):
    """A part started by a launcher that returns once it answers (the broker, the embedded database);
    ``halt(value)`` ends it. ``value`` is what the launcher returned (a URL, the broker)."""

    def __init__(self, name: str, launch: Callable[[], T], halt: Callable[[T], None] | None = None) -> None:
        self.name = name
        self.error: BaseException | None = None
        self._launch, self._halt = launch, halt
        self._value: T | None = None
        self._started = self._stopped = False

    @property
    def value(self) -> T:
        assert self._started, f"{self.name} was not started"
        return self._value  # type: ignore[return-value]

    @property
    def ended(self) -> bool:
        return self._stopped

    def start(self, wake: threading.Event) -> None:
        self._value = self._launch()
        self._started = True

    def wait_ready(self, abort: threading.Event, timeout_s: float | None) -> bool:
        return self._started

    def stop(self) -> None:
        if self._started and not self._stopped:
            self._stopped = True
            if self._halt is not None:
                self._halt(self._value)  # type: ignore[arg-type]

    def join(self, timeout_s: float) -> bool:
        return True


def port_answers(host: str, port: int, timeout_s: float = 1.0) -> Callable[[], bool]:
    """A readiness check: a TCP connection to ``host:port`` is accepted."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return True
        except OSError:
            return False

    return check


class Supervisor:
    """Starts services in order (each ready before the next), stops them in reverse within one deadline.

    ``stop`` is the event that ends the run: set by a signal, by a thread that died
    (:func:`twin.process.exit_on_thread_death`), or here when a service ends by itself.
    """

    def __init__(self, stop: threading.Event | None = None, *, stop_within_s: float = STOP_S) -> None:
        self.stop_event = stop if stop is not None else threading.Event()
        self.stop_within_s = stop_within_s
        self.services: list[Service] = []
        #: Services still running when the stop's deadline passed (after :meth:`stop`).
        self.laggards: list[str] = []
        self._stopped = False
        self._failure: BaseException | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.stop(raise_failure=exc is None)

    def start(self, service: T, *, ready_within_s: float | None = None) -> T:
        """Start ``service`` and wait until it is ready (or the stop is asked); return it.

        Raises the service's own error when it dies before it is ready, and :class:`ServiceError`
        when it ends, or is not ready within ``ready_within_s``. What was started before is
        stopped by :meth:`stop` (leaving the ``with`` block)."""
        svc: Service = service  # type: ignore[assignment]
        if self.stop_event.is_set():
            return service
        log.info("service starting name=%s", svc.name)
        self.services.append(svc)
        svc.start(self.stop_event)
        if svc.wait_ready(self.stop_event, ready_within_s):
            log.info("service ready name=%s", svc.name)
        elif svc.error is not None:
            raise svc.error
        elif svc.ended:
            raise ServiceError(f"{svc.name} ended while starting")
        elif not self.stop_event.is_set():
            raise ServiceError(f"{svc.name} was not ready within {ready_within_s:g} s")
        return service

    def wait(self, duration_s: float | None = None) -> None:
        """Block until the stop is asked, a service ends, or ``duration_s`` passes; then ask the stop.

        Waits in short spells: the kernel may hand SIGTERM to any thread, and Python runs the handler
        (which asks the stop) in the main thread only once that thread runs Python again; blocked on
        the event for good, it never would."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self.stop_event.is_set():
            left = _WAKE_S if deadline is None else min(_WAKE_S, deadline - time.monotonic())
            if left <= 0:
                break
            self.stop_event.wait(left)
        self.stop_event.set()

    def failure(self) -> BaseException | None:
        """The first service that died, or ended without being asked to: what it died of."""
        for svc in self.services:
            if svc.error is not None:
                return svc.error
            if svc.ended and not getattr(svc, "stopping", True):
                return ServiceError(f"{svc.name} ended by itself")
        return None

    def stop(self, *, raise_failure: bool = True) -> list[str]:
        """Stop the started services in reverse order, each given what is left of one deadline;
        return the names of those still running at its end. Once the deadline has passed (a service did
        not stop), each later one still gets :data:`_AFTER_DEADLINE_S`; one whose stop raises is logged and
        the others are still stopped. Then raise the first failure."""
        if not self._stopped:
            self._stopped = True
            self._failure = self.failure()
            if isinstance(self._failure, ServiceError):  # an exception was logged by threading.excepthook
                log.critical("service failed: %s; stopping the others", self._failure)
            self.stop_event.set()
            deadline = time.monotonic() + self.stop_within_s
            for svc in reversed(self.services):
                try:
                    svc.stop()
                except Exception as exc:  # the parts started before it are still stopped
                    log.exception("service stop failed name=%s", svc.name)
                    self._failure = self._failure or exc
                    continue
                if svc.join(max(_AFTER_DEADLINE_S, deadline - time.monotonic())):
                    log.info("service stopped name=%s", svc.name)
                else:
                    self.laggards.append(svc.name)
        if raise_failure and self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return self.laggards


def _dump_stacks_on(signum: int) -> bool:
    """Have ``signum`` print every thread's stack on stderr (the process's own when ``sys.stderr`` is
    not a file, as under click's test runner); whether it could."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            faulthandler.register(signum, file=stream, all_threads=True)
            return True
        except (AttributeError, ValueError, OSError):  # no stream, or one without a file descriptor
            continue
    return False


def stop_on_signals() -> tuple[threading.Event, Callable[[], None]]:
    """An event set by SIGINT, SIGTERM or a thread that dies (:func:`twin.process.exit_on_thread_death`),
    and the function that undoes all three (call it when the command ends).

    Meanwhile SIGUSR1 prints every thread's stack on stderr (:mod:`faulthandler`): what a command that
    does not stop is doing, without stopping it (``kill -USR1 PID``)."""
    stop = threading.Event()
    uninstall = exit_on_thread_death(stop)
    dumps = _dump_stacks_on(signal.SIGUSR1)

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        uninstall()
        if dumps:
            faulthandler.unregister(signal.SIGUSR1)
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler and old is not None:
                signal.signal(sig, old)

    return stop, restore
