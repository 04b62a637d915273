"""twin.sequence: suspected loss from seq numbers, whatever the order the batches come in."""

from __future__ import annotations

import random

from twin.sequence import WINDOW, SeqState, merge, window_bytes, window_from_bytes


def _through(batches: list[list[int]]) -> SeqState:
    state = SeqState()
    for batch in batches:
        state = merge(state, batch)
    return state


def test_gaps_in_one_batch_and_across_batches_are_counted() -> None:
    state = _through([[1, 2, 5, 6]])
    assert (state.high, state.gaps) == (6, 2)
    state = merge(state, [10])
    assert (state.high, state.gaps) == (10, 5)


def test_the_first_number_seen_starts_the_count() -> None:
    assert merge(SeqState(), [500, 501]).gaps == 0


def test_two_workers_interleaving_one_device_suspect_nothing_once_both_batches_are_in() -> None:
    """Round-robin sharing: one worker gets the odd numbers, the other the even ones."""
    odd, even = list(range(1, 1000, 2)), list(range(2, 1001, 2))  # a backlog of 1,000 messages, within the window
    assert _through([odd, even]).gaps == 0
    assert _through([even, odd]).gaps == 0
    assert merge(SeqState(), odd[:50]).gaps == 49  # alone, the odd half looks like loss until the rest comes


def test_any_order_and_duplicates_give_the_same_count_as_in_order() -> None:
    rng = random.Random(7)
    sent = [n for n in range(17, 3001) if n % 97]  # 30 numbers missing
    for _ in range(20):
        batches = [sent[i:i + 13] for i in range(0, len(sent), 13)]
        # reordered within a few batches of each other (as shared workers do), some sent twice
        for i in range(len(batches) - 1):
            if rng.random() < 0.5:
                batches[i], batches[i + 1] = batches[i + 1], batches[i]
        batches += [rng.sample(sent, 5) for _ in range(10) if rng.random() < 0.5]  # redeliveries, however late
        assert _through(batches).gaps == 30


def test_a_jump_past_the_window_counts_every_number_skipped() -> None:
    state = _through([[1, 2, 3], [3 + 5000]])
    assert state.gaps == 4999
    state = _through([[1], [5, 2000, 2001]])  # 2..4 and 6..1999 missing
    assert state.gaps == 3 + 1994


def test_a_number_far_below_the_high_mark_is_a_restart_and_keeps_what_was_lost() -> None:
    state = _through([[1, 2, 4], list(range(5, 3000))])
    assert state.gaps == 1
    state = merge(state, [1, 2, 3])  # the device rebooted
    assert (state.high, state.gaps) == (3, 1)
    assert merge(state, [4, 6]).gaps == 2


def test_a_late_number_older_than_the_window_changes_nothing() -> None:
    state = _through([[1], list(range(3, 3 + 2 * WINDOW))])
    assert state.gaps == 1
    assert merge(state, [2]).gaps == 1  # too late to tell: it was counted when it left the window


def test_windows_round_trip_through_their_stored_bytes() -> None:
    state = merge(SeqState(), [1, 70, 900])
    assert len(window_bytes(state.window)) == WINDOW // 8
    assert window_from_bytes(window_bytes(state.window)) == state.window
    assert SeqState(state.high, window_from_bytes(window_bytes(state.window)), state.lost).gaps == state.gaps == 897
    assert window_from_bytes(None) == SeqState().window
    assert window_bytes(merge(SeqState(), range(1, 3000)).window) is None  # nothing missing: nothing to store


def test_a_late_number_fills_its_hole_even_when_its_batch_moves_the_window_on() -> None:
    state = _through([[n for n in range(1, 1124) if n != 100]])
    assert (state.high, state.gaps) == (1123, 1)
    assert merge(state, [100, 1124]).gaps == 0  # the same as [100] then [1124]
    assert merge(merge(state, [100]), [1124]).gaps == 0


def test_a_restart_keeps_the_holes_that_were_still_open() -> None:
    state = _through([[n for n in range(1, 2001) if n != 1990]])
    assert state.gaps == 1
    restarted = merge(state, [1, 2])
    assert (restarted.high, restarted.gaps) == (2, 1)
    assert merge(restarted, [3, 5]).gaps == 2
