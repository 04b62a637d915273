"""Child processes of the twin, one way: spawn, pass arguments, get a result or an error back, enforce a
deadline, stop (SIGTERM, then SIGKILL against one deadline), and say how a child ended.

Two kinds of child, for two needs:

- :func:`spawn` runs a picklable function in a *spawned* ``multiprocessing`` process (no fork of
  a threaded parent) that dies with its parent, optionally with its address space capped
  (``RLIMIT_AS``). What it returns, or the first line of what it raised, comes back over a pipe
  of its own: :meth:`Spawned.result` waits on that pipe (with a deadline, after which the child
  is killed). Used by the ingest pool (``ingest/pool.py``: long-running workers, their totals
  sent as they exit) and the dashboard's IFC upload (``dashboard/uploads.py``: an import with a
  time and a memory limit).
- :class:`ModuleChild` runs ``python -m MODULE ARGS`` (it never re-imports the caller's main
  module), which streams pickled messages on its stdout (:func:`send_message`); its stderr is
  kept for the last line it said. Used by the footprint process (``models_bim/footprint_process.py``).

Nothing is shared with a child that a killed one could leave locked: only its own pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from twin.process import EXIT_THREAD_DIED, die_with_parent, thread_death

#: How long a child that was killed is waited for (it is gone at once unless the machine is stuck).
REAP_S = 5.0


class ChildError(RuntimeError):
    """A child that gave no result: timed out, died, or raised."""


class ChildTimeout(ChildError):
    """The child ran past its deadline and was killed."""


class ChildDied(ChildError):
    """The child ended without sending a result (killed, crashed); ``exitcode`` says how."""

    def __init__(self, exitcode: int | None, said: str = "") -> None:
        self.exitcode = exitcode
        super().__init__(f"{exit_text(exitcode)}{f'; {said}' if said else ''}")


class ChildFailed(ChildError):
    """The child's function raised: ``kind`` is ``error``, ``memory`` (MemoryError) or ``unsent`` (its
    result could not be pickled); the message is the first line of the error (or its type)."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        super().__init__(text)


def exit_text(code: int | None) -> str:
    """How a child ended, for a message: ``exit code 3``, ``exit code -9, SIGKILL``."""
    if code is None:
        return "exit code unknown (still running)"
    if code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


# -- spawned functions ------------------------------------------------------------------------------
_exit_status = 0


def set_exit_status(code: int) -> None:
    """In a spawned child: exit with ``code`` once the result is sent (a run that failed but has a
    result to report, such as an ingest worker's totals)."""
    global _exit_status
    _exit_status = code


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _main(sender: Connection, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
          memory_bytes: int | None) -> None:
    """In the child: die with the parent, cap memory, run ``target``, send ``(kind, value)``, exit."""
    die_with_parent()
    if memory_bytes is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    status = 0
    try:
        message: tuple[str, Any] = ("ok", target(*args, **kwargs))
    except MemoryError:
        message, status = ("memory", "out of memory (limit reached)"), 1
    except Exception as exc:  # noqa: BLE001 - the parent gets it, in one line
        message, status = ("error", _first_line(exc)), 1
    try:
        sender.send(message)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result is an error too
        sender.send(("unsent", type(exc).__name__))
        status = 1
    finally:
        sender.close()
    if thread_death() is not None:  # a thread died in the child: a loud, non-zero exit
        status = EXIT_THREAD_DIED
    status = status or _exit_status
    if status:
        sys.exit(status)


def receive(pipe: Connection, timeout_s: float | None = 0.0) -> tuple[str, Any] | None:
    """What a spawned child sent on ``pipe`` (``(kind, value)``), waiting up to ``timeout_s``
    (None: until it sends or ends); None when it sent nothing."""
    try:
        if not pipe.poll(timeout_s):
            return None
        return pipe.recv()  # type: ignore[no-any-return]
    except (EOFError, OSError):  # ended without sending
        return None


def outcome(message: tuple[str, Any]) -> Any:
    """The value of a child's message; :class:`ChildFailed` when it is an error."""
    kind, value = message
    if kind != "ok":
        raise ChildFailed(kind, value)
    return value


@dataclass
class Spawned:
    """A spawned child and the parent's end of its result pipe."""

    process: BaseProcess
    pipe: Connection

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def result(self, timeout_s: float | None) -> Any:
        """Wait on the pipe for the child's result (at most ``timeout_s``); always leaves the child ended.

        Raises :class:`ChildTimeout` (the child is killed), :class:`ChildDied` (it ended without a
        result), :class:`ChildFailed` (its function raised)."""
        try:
            try:
                if not self.pipe.poll(timeout_s):
                    raise ChildTimeout(f"still running after {timeout_s:g} s; killed")
                message = self.pipe.recv()
            except (EOFError, OSError):
                self.process.join(REAP_S)
                raise ChildDied(self.process.exitcode) from None
            self.process.join(REAP_S)  # it exits once it has sent
        finally:
            self.close()
        return outcome(message)

    def close(self) -> None:
        """Kill the child if it still runs, reap it, close the pipe."""
        self.pipe.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(REAP_S)


def spawn(target: Callable[..., Any], *args: Any, process_name: str, memory_bytes: int | None = None,
          daemon: bool = True, **kwargs: Any) -> Spawned:
    """Run ``target(*args, **kwargs)`` in a spawned child (picklable: a module-level function, or a
    ``functools.partial`` of one) that dies with its parent; ``memory_bytes`` caps its address space."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_main, args=(sender, target, args, kwargs, memory_bytes), name=process_name,
                       daemon=daemon)
    proc.start()
    sender.close()  # the child has its own copy: its exit closes the pipe
    return Spawned(proc, receiver)


class Stoppable(Protocol):
    exitcode: int | None

    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


def stop_processes(procs: Sequence[Stoppable], grace_s: float, kill_wait_s: float) -> list[Stoppable]:
    """SIGTERM every child and wait against one deadline; SIGKILL all still running at once, reap them
    against one more. Returns the killed ones; takes at most ``grace_s + kill_wait_s``."""
    for proc in procs:
        if proc.exitcode is None:
            proc.terminate()
    _join_all(procs, time.monotonic() + grace_s)
    stuck = [p for p in procs if p.exitcode is None]
    for proc in stuck:
        proc.kill()
    _join_all(stuck, time.monotonic() + kill_wait_s)
    return stuck


def _join_all(procs: Sequence[Stoppable], deadline: float) -> None:
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))


# -- python -m children -----------------------------------------------------------------------------
def send_message(out: BinaryIO, message: tuple[Any, ...]) -> None:
    """In a :class:`ModuleChild`: one message to the parent (pickled, flushed)."""
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


class ModuleChild:
    """``python -m module *args`` with ``package_root`` on its ``PYTHONPATH`` (the parent's code);
    messages come from its stdout (:meth:`messages`), its stderr is kept for :meth:`failure`.

    The child should call :func:`twin.process.die_with_parent` first. Always :meth:`close` it.
    """

    def __init__(self, module: str, *args: str, package_root: str | Path) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child, closed by close()
        env = {**os.environ, "PYTHONPATH": str(package_root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.popen = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=self._stderr, env=env)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def messages(self) -> Iterator[tuple[Any, ...]]:
        """The child's messages as they come; :class:`ChildDied` (how it ended, its last words) when it
        ends without a message the caller took as the last."""
        assert self.popen.stdout is not None
        while True:
            try:
                yield pickle.load(self.popen.stdout)
            except (EOFError, pickle.UnpicklingError):
                raise ChildDied(self._wait(), self._last_said()) from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    def close(self) -> None:
        """Kill the child if it still runs; reap it; release its pipes."""
        self.kill()
        self._wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._stderr.close()

    def _wait(self) -> int | None:
        try:
            return self.popen.wait(REAP_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - a killed process that does not die
            return None

    def _last_said(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip() if lines else ""
