"""Suspected message loss from per-device ``seq`` numbers, tolerant of reordering.

Several ingest workers share a subscription, so one device's messages reach the database
in several batches, in any order, some of them twice. A device's sequence state is its
highest ``seq`` seen (``high``), a window of which of the 1,024 numbers up to ``high`` have
arrived (bit ``i`` is ``high - i``; about 8 hours of a sensor reporting every 30 s), and
``lost``: numbers that left the window without arriving. Suspected loss is ``lost`` plus
the numbers missing inside the window, so a gap that a late message fills (another
worker's batch) is no longer counted.

    >>> s = merge(SeqState(), [1, 2, 5, 6])
    >>> s.high, s.gaps
    (6, 2)
    >>> merge(s, [3, 4]).gaps
    0
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WINDOW = 1024
_MASK = (1 << WINDOW) - 1
#: A batch that starts at or below this while the device is far past it: the device restarted its count.
RESTART_BELOW = 16


@dataclass(frozen=True, slots=True)
class SeqState:
    """A device's sequence state (stored as ``last_seq``, ``seq_window`` bytes and ``seq_lost``)."""

    high: int | None = None
    window: int = _MASK
    lost: int = 0

    @property
    def gaps(self) -> int:
        """Numbers suspected lost: left the window missing, or missing inside it."""
        if self.high is None:
            return 0
        return self.lost + WINDOW - (self.window & _MASK).bit_count()


def merge(state: SeqState, seqs: Iterable[int]) -> SeqState:
    """The state after the messages numbered ``seqs`` (any order, duplicates allowed).

    Numbers more than a window below ``high`` are too late to tell (they were counted as lost
    when they left the window) and change nothing, unless they start again near 1: the
    device restarted its count (a reboot), and the state starts from there, keeping what was
    lost and the holes still open. (So a redelivery of one of a device's first 16 messages,
    arriving more than a window late, is taken for a restart.) Before the first number,
    nothing counts as missing.
    """
    numbers = sorted(set(seqs))
    if not numbers:
        return state
    high, window, lost = state.high, state.window & _MASK, state.lost
    if high is not None and numbers[0] <= RESTART_BELOW and numbers[-1] < high - WINDOW:
        lost += WINDOW - window.bit_count()  # the holes open when the count restarts stay counted
        high = None
    if high is None:
        high, window = numbers[0] - 1, _MASK  # a fresh count: nothing before its first number is missing
    for n in numbers:  # late numbers fill their holes before the window moves on
        if n <= high and high - n < WINDOW:
            window |= 1 << (high - n)
    top = max(high, numbers[-1])
    shift = top - high
    if shift >= WINDOW:
        lost += WINDOW - window.bit_count()  # every old slot leaves the window
        # numbers between the old window and the new one that did not come in this batch
        lost += max(0, shift - WINDOW - sum(1 for n in numbers if high < n <= top - WINDOW))
        window = 0
    elif shift:
        leaving = window >> (WINDOW - shift)
        lost += shift - leaving.bit_count()
        window = (window << shift) & _MASK
    for n in numbers:
        if n > high and top - n < WINDOW:
            window |= 1 << (top - n)
    return SeqState(top, window, lost)


def window_bytes(window: int) -> bytes | None:
    """The window as stored (``bytea``, big-endian); ``None`` when nothing in it is missing,
    as in a stream that arrives in order (nothing to write)."""
    window &= _MASK
    return None if window == _MASK else window.to_bytes(WINDOW // 8, "big")


def window_from_bytes(data: bytes | None) -> int:
    """The stored window (``None``: nothing missing yet)."""
    return _MASK if data is None else int.from_bytes(data, "big")
