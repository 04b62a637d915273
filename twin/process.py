"""Child processes that do not outlive their parent; threads that do not hang a stop."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """In a child process: ask Linux to SIGTERM it when its parent dies (even by SIGKILL).

    Elsewhere a no-op: the parent's clean stop still ends the child.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def verbosity_of(level: int) -> int:
    """The ``-v`` count (:func:`twin.logs.setup_logging`) that gives a child the parent's log ``level``."""
    import logging

    return 2 if level <= logging.DEBUG else 1 if level <= logging.INFO else 0


def join_within(threads: list[threading.Thread], timeout_s: float) -> list[threading.Thread]:
    """Join ``threads`` against one deadline; return those still alive, their stacks written to stderr.

    For a clean stop that must not hang: the caller exits anyway (the threads being daemons)
    and the stack dump says which part did not stop in time.
    """
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    if alive:
        log.warning("still running %.0f s after the stop: %s (stacks follow on stderr)", timeout_s,
                    ", ".join(t.name for t in alive))
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    return alive


#: Exit status of a process ended because one of its threads died (``EX_SOFTWARE``).
EXIT_THREAD_DIED = 70
_deaths: list[str] = []
_exit_timer: threading.Timer | None = None
_exit_timer_lock = threading.Lock()


def exit_on_thread_death(stop: threading.Event | None = None, grace_s: float = 60.0) -> Callable[[], None]:
    """Install a :data:`threading.excepthook` so that no process runs on half-alive; return its uninstall.

    A thread that dies of an exception (a service's own, paho's network thread, any other) is
    logged with its reason and traceback. With ``stop``, the process then stops as on SIGTERM
    (``stop`` is set) and its main thread, seeing :func:`thread_death`, exits non-zero; if it is
    still running ``grace_s`` later, it is ended with status :data:`EXIT_THREAD_DIED`. Without
    ``stop`` it is ended with that status at once.

    The returned callable restores the previous hook, forgets the recorded deaths and cancels a
    pending exit: for a command run inside a longer-lived process (a test's CliRunner).
    """

    def hook(args: threading.ExceptHookArgs) -> None:
        global _exit_timer
        if args.exc_type is SystemExit:  # as the default hook: a thread's sys.exit() is not a death
            return
        name = args.thread.name if args.thread is not None else "?"
        reason = f"thread {name!r} died: {args.exc_type.__name__}: {args.exc_value}"
        _deaths.append(reason)
        log.critical("%s; ending the process", reason,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
        if stop is None:
            _exit_now()
        stop.set()
        with _exit_timer_lock:  # published only once started: uninstall may join it at once
            if _exit_timer is None:
                timer = threading.Timer(grace_s, _exit_late, args=(grace_s,))
                timer.name, timer.daemon = "exit-on-thread-death", True
                timer.start()
                _exit_timer = timer

    previous = threading.excepthook
    threading.excepthook = hook

    def uninstall() -> None:
        global _exit_timer
        if threading.excepthook is hook:
            threading.excepthook = previous
        _deaths.clear()
        with _exit_timer_lock:
            timer, _exit_timer = _exit_timer, None
        if timer is not None:
            timer.cancel()
            timer.join(5.0)

    return uninstall


def thread_death() -> str | None:
    """Why the first thread that died did (``None``: none died), while :func:`exit_on_thread_death` is installed."""
    return _deaths[0] if _deaths else None


def _exit_late(grace_s: float) -> None:
    log.critical("still running %.0f s after a thread died; exiting with status %d", grace_s, EXIT_THREAD_DIED)
    _exit_now()


def _exit_now() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_THREAD_DIED)
