"""Child processes that do not outlive their parent; threads that do not hang a stop."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
import time

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
