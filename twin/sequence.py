"""Suspected message loss from per-device ``seq`` numbers, tolerant of reordering and reboots.

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

A device that reboots starts counting again (from 1). The holes of the old count stay
counted (they move into ``lost``) and the new count starts whole; the numbers it counts again
must not fill the old count's holes. A restart is told from reordering

- by device time, when the messages have one (``merge(state, seqs, times)``): a device's
  numbers are taken in device-time order, and a number at or below ``high`` sent after the
  latest device time of the count (``high_at``) starts a new count (the clock went on, the count
  went back). A number sent before the first of a count that so began (``count_from``)
  belongs to an earlier count and changes nothing: too late (the holes of its count were
  counted when that count ended) and no part of this one. (The first count seen has no
  ``count_from``: nothing before it is known, and a device clock set back in it loses nothing.)
  A redelivery keeps its number and its device time.
- without device times, by the early-number rule: a batch whose smallest number is at most
  ``RESTART_BELOW`` and already arrived in the current count starts a new count (so a
  redelivery of one of a device's first 16 messages, without times, is taken for a restart),
  as does one starting at most ``RESTART_BELOW`` that lies entirely below the window.

    >>> merge(merge(SeqState(), [*range(1, 50), *range(60, 300)]), range(1, 120)).gaps
    10
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

WINDOW = 1024
_MASK = (1 << WINDOW) - 1
#: Without device times, a batch whose smallest number is at most this and already arrived in the
#: current count (or lies below the window) restarts the count: the device rebooted.
RESTART_BELOW = 16
_WINDOW_BYTES = WINDOW // 8
_FIRST_BYTES = 8


@dataclass(frozen=True, slots=True)
class SeqState:
    """A device's sequence state (stored as ``last_seq``, ``seq_window`` bytes, ``seq_lost``,
    ``seq_high_at`` and ``seq_count_from``).

    ``first`` is the first number of the current count while the window still holds a number
    below it (numbers below it did not arrive *in this count*, for the early-number rule; 0:
    not kept, every number of the window counts). ``high_at`` is the latest device time of the
    current count, ``count_from`` the device time of its first number (``None``: not known, or
    the first count seen).
    """

    high: int | None = None
    window: int = _MASK
    lost: int = 0
    high_at: datetime | None = None
    count_from: datetime | None = None
    first: int = 0

    @property
    def gaps(self) -> int:
        """Numbers suspected lost: left the window missing, or missing inside it."""
        if self.high is None:
            return 0
        return self.lost + WINDOW - (self.window & _MASK).bit_count()


def merge(state: SeqState, seqs: Iterable[int], times: Sequence[datetime | None] | None = None) -> SeqState:
    """The state after the messages numbered ``seqs`` (any order, duplicates allowed), sent at
    device ``times`` (one a number; ``None`` for a number without a device time, or for all).

    Numbers with times go first, in device-time order; those without follow, under the
    early-number rule (see the module). Numbers more than a window below ``high`` are too late
    to tell (they were counted as lost when they left the window) and change nothing, unless
    they start a new count. Before the first number of a count, nothing counts as missing.
    """
    if times is None:
        return _merge_plain(state, seqs)
    seqs = list(seqs)
    if len(times) != len(seqs):
        raise ValueError(f"{len(seqs)} seq numbers but {len(times)} times")
    pairs = sorted((t, n) for n, t in zip(seqs, times, strict=True) if t is not None)
    if pairs:
        state = _merge_timed(state, pairs)
    if len(pairs) < len(seqs):
        state = _merge_plain(state, [n for n, t in zip(seqs, times, strict=True) if t is None])
    return state


def _merge_timed(state: SeqState, pairs: list[tuple[datetime, int]]) -> SeqState:
    """``(device time, seq)`` pairs in device-time order, cut where the count restarts."""
    high, high_at, count_from = state.high, state.high_at, state.count_from
    new = high is None  # the first part starts a count (nothing known yet)
    parts: list[tuple[list[tuple[datetime, int]], bool, datetime | None, datetime | None]] = []
    part: list[tuple[datetime, int]] = []
    for t, n in pairs:
        if count_from is not None and t < count_from:
            continue  # an earlier count's: too late
        if high is not None and high_at is not None and n <= high and t > high_at:
            parts.append((part, new, count_from, high_at))  # the clock went on, the count went back
            part, new, high, high_at, count_from = [], True, None, None, t
        part.append((t, n))
        if high is None or n >= high:
            high = n
            if high_at is None or t > high_at:
                high_at = t  # the latest time of the count (a clock set back does not lower it)
    parts.append((part, new, count_from, high_at))
    for part, new, count_from, high_at in parts:
        if not part:
            continue
        numbers = [n for _, n in part]
        if new:
            state = _merge_numbers(_restart(state), numbers)
        elif state.high_at is None and _plain_restart(state, sorted(set(numbers))):
            # a count whose time is not known (stored before times, or sent without them): the
            # early-number rule found a restart, and the whole part is the new count
            state = _merge_numbers(_restart(state), numbers)
            count_from, high_at = part[0][0], part[-1][0]
        else:
            state = _merge_numbers(state, numbers)
        state = replace(state, high_at=high_at, count_from=count_from)
    return state


def _merge_plain(state: SeqState, seqs: Iterable[int]) -> SeqState:
    """Numbers without device times: a restart by the early-number rule."""
    numbers = sorted(set(seqs))
    if not numbers:
        return state
    merged = _merge_numbers(_restart(state) if _plain_restart(state, numbers) else state, numbers)
    if merged.high != state.high:  # its device time is not known: the time rule waits for a timed new high
        merged = replace(merged, high_at=None)
    return merged


def _plain_restart(state: SeqState, numbers: list[int]) -> bool:
    """Whether the sorted ``numbers`` start a new count by the early-number rule: the smallest is at
    most ``RESTART_BELOW`` and already arrived in the current count, or all lie below the window."""
    high, low = state.high, numbers[0]
    return high is not None and low <= RESTART_BELOW and (numbers[-1] < high - WINDOW or _arrived(state, low))


def _arrived(state: SeqState, n: int) -> bool:
    """Whether ``n`` already arrived in the current count (as far as the window tells)."""
    high = state.high
    return (high is not None and state.first <= n <= high and high - n < WINDOW
            and bool(state.window >> (high - n) & 1))


def _restart(state: SeqState) -> SeqState:
    """A new count: the holes still open in the old one stay counted."""
    if state.high is None:
        return state
    return SeqState(lost=state.lost + WINDOW - (state.window & _MASK).bit_count())


def _merge_numbers(state: SeqState, seqs: Iterable[int]) -> SeqState:
    """Numbers of the current count (a fresh count when ``state.high`` is ``None``)."""
    numbers = sorted(set(seqs))
    if not numbers:
        return state
    high, window, lost, first = state.high, state.window & _MASK, state.lost, state.first
    if high is None:
        # a fresh count: nothing before its first number is missing
        high, window, first = numbers[0] - 1, _MASK, numbers[0]
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
    if first < 2 or top - (first - 1) >= WINDOW:
        first = 0  # no number before the count's first left in the window (or only 0, before a count from 1)
    return replace(state, high=top, window=window, lost=lost, first=first)


def window_bytes(window: int, first: int = 0) -> bytes | None:
    """The window as stored (``bytea``, big-endian), followed by the count's ``first`` number
    (8 bytes) while it is kept; ``None`` when nothing in it is missing and no first is kept,
    as in a stream that arrives in order (nothing to write)."""
    window &= _MASK
    if first:
        return window.to_bytes(_WINDOW_BYTES, "big") + first.to_bytes(_FIRST_BYTES, "big")
    return None if window == _MASK else window.to_bytes(_WINDOW_BYTES, "big")


def window_from_bytes(data: bytes | None) -> int:
    """The stored window (``None``: nothing missing yet)."""
    return _MASK if data is None else int.from_bytes(data[:_WINDOW_BYTES], "big")


def first_from_bytes(data: bytes | None) -> int:
    """The count's first number stored after the window (0: none kept)."""
    return 0 if data is None or len(data) <= _WINDOW_BYTES else int.from_bytes(data[_WINDOW_BYTES:], "big")
