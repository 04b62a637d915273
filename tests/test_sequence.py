"""twin.sequence: suspected loss from seq numbers, whatever the order the batches come in."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import orjson

from ingest.worker import IngestWorker
from tests.helpers import publisher, running, stored_readings, wait_for
from twin.database import connection
from twin.messaging.contract import topic
from twin.sequence import WINDOW, SeqState, first_from_bytes, merge, window_bytes, window_from_bytes


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


# --- count restarts (a device reboot): issue 17 -----------------------------------------------

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(k: float) -> datetime:
    """The device time of a message ``k`` periods of 30 s after ``T0``."""
    return T0 + timedelta(seconds=30 * k)


def timed(state: SeqState, pairs: list[tuple[int, datetime]]) -> SeqState:
    """``merge`` with each number's device time."""
    return merge(state, [n for n, _ in pairs], [t for _, t in pairs])


def count(numbers: Iterable[int], start: float) -> list[tuple[int, datetime]]:
    """``numbers`` sent one a period from ``start``, in order (a hole keeps its period)."""
    return [(n, at(start + n)) for n in numbers]


def test_a_reboot_keeps_the_holes_of_the_old_count_and_the_new_count_starts_whole() -> None:
    """The issue's example: the re-counted numbers must not fill the old count's holes."""
    assert merge(merge(SeqState(), [*range(1, 50), *range(60, 300)]), range(1, 120)).gaps == 10
    assert merge(merge(SeqState(), [*range(1, 50), *range(60, 300)]), range(1, 120)).high == 119


def test_a_reboot_after_only_30_messages_is_told_from_reordering() -> None:
    old = [n for n in range(1, 31) if n != 7]
    assert merge(merge(SeqState(), old), range(1, 11)).gaps == 1  # without times: 1 came twice
    state = timed(timed(SeqState(), count(old, 0)), count(range(1, 11), 100))
    assert (state.high, state.gaps) == (10, 1)
    assert timed(state, count([12], 100)).gaps == 2  # the new count's own holes count too


def test_an_early_number_that_is_late_is_not_a_reboot() -> None:
    """The early-number rule asks whether the smallest number already came in this count: the
    first numbers of a count that another worker stores later do not restart it."""
    assert _through([[2, 4, 6], [1, 3, 5]]).gaps == 0
    assert _through([list(range(5, 40)), [1, 2, 3, 4]]).gaps == 0
    with_times = timed(timed(SeqState(), count([2, 4, 6], 0)), count([1, 3, 5], 0))
    assert (with_times.high, with_times.gaps) == (6, 0)


def test_a_redelivered_early_message_with_its_device_time_is_not_a_reboot() -> None:
    state = timed(SeqState(), count([n for n in range(1, 300) if n != 200], 0))
    assert timed(state, count([1, 2, 3], 0)).gaps == 1  # QoS 1 sent them again: same numbers, same times
    assert timed(state, count([200], 0)).gaps == 0


def test_a_reboot_in_the_middle_of_a_batch() -> None:
    """One batch holds the end of the old count (with a hole) and the start of the new one."""
    state = timed(SeqState(), count(range(1, 481), 0))
    batch = count([n for n in range(481, 501) if n != 490], 0) + count(range(1, 21), 600)
    random.Random(3).shuffle(batch)  # the batch's order is not the device's
    state = timed(state, batch)
    assert (state.high, state.gaps) == (20, 1)
    assert state.count_from == at(601) and state.high_at == at(620)


def test_late_messages_of_the_old_count_after_the_reboot_are_neither_loss_nor_a_jump() -> None:
    """Worker A stores the new count before worker B stores the old count's last messages."""
    sent_old = count([n for n in range(1, 501) if n not in (100, 101)], 0)
    a, b = sent_old[:-20], sent_old[-20:]
    state = timed(timed(SeqState(), a), count(range(1, 31), 600))
    assert (state.high, state.gaps) == (30, 2)
    state = timed(state, b)  # too late for the old count, and no part of the new one
    assert (state.high, state.gaps) == (30, 2)
    assert timed(state, count(range(31, 41), 600)).gaps == 2


def test_reordering_and_duplicates_across_batches_with_times_count_only_real_holes() -> None:
    rng = random.Random(11)
    first = count([n for n in range(1, 801) if n % 101], 0)  # 7 missing
    second = count([n for n in range(1, 401) if n % 151], 1000)  # after a reboot: 2 missing

    def shared(sent: list[tuple[int, datetime]]) -> list[list[tuple[int, datetime]]]:
        """Two workers: each stretch of 40 messages split between them (every other one), the
        two halves stored in either order; some stretches swapped with the next."""
        batches = []
        for i in range(0, len(sent), 40):
            halves = [sent[i:i + 40:2], sent[i + 1:i + 40:2]]
            rng.shuffle(halves)
            batches += halves
        for i in range(len(batches) - 1):
            if rng.random() < 0.3:
                batches[i], batches[i + 1] = batches[i + 1], batches[i]
        return batches

    for _ in range(20):
        batches = shared(first) + shared(second)
        batches += [rng.sample(first + second, 5) for _ in range(10) if rng.random() < 0.5]  # redeliveries
        state = SeqState()
        for batch in batches:
            state = timed(state, batch)
        assert (state.high, state.gaps) == (400, 9)


def test_without_device_times_in_a_timed_batch_the_early_number_rule_applies() -> None:
    state = timed(SeqState(), count([*range(1, 50), *range(60, 300)], 0))
    assert merge(state, list(range(1, 120)), [None] * 119).gaps == 10


def test_the_count_start_round_trips_through_the_stored_window() -> None:
    state = merge(SeqState(), [2, 4, 6])
    assert state.first == 2
    data = window_bytes(state.window, state.first)
    assert window_from_bytes(data) == state.window and first_from_bytes(data) == 2
    assert first_from_bytes(window_bytes(state.window)) == 0
    restored = SeqState(state.high, window_from_bytes(data), state.lost, first=first_from_bytes(data))
    assert merge(restored, [1, 3, 5]).gaps == 0
    assert merge(SeqState(), range(2, 3000)).first == 0  # the count's start left the window: nothing to keep


def test_a_reboot_is_counted_through_the_broker_and_the_database(twin_db: str, mqtt_url: str) -> None:
    """ENV-0 sends 1..40 without 11..13, reboots, sends 1..20 (later device times): its status
    keeps the 3 lost; without the restart the re-counted 11..13 would have filled them."""
    tag = uuid.uuid4().hex[:8]
    worker = IngestWorker(twin_db, mqtt_url, client_id=f"t-seq-{tag}", share_group=f"t-{tag}", batch_wait_s=0.05)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    sent = [(n, base + timedelta(seconds=30 * n)) for n in range(1, 41) if n not in (11, 12, 13)]
    sent += [(n, base + timedelta(seconds=30 * (100 + n))) for n in range(1, 21)]
    with running(worker.run):
        assert worker.connected.wait(10)
        with publisher(mqtt_url, f"seq-pub-{tag}") as client:
            for n, ts in sent:
                client.publish(topic("t1", "ENV-0", "telemetry"), orjson.dumps(
                    {"ts": int(ts.timestamp() * 1000), "seq": n, "metrics": {"co2": 400 + n}}), qos=1).wait_for_publish(10)
        wait_for(lambda: stored_readings(twin_db) >= len(sent))
    with connection(twin_db) as conn:
        row = conn.execute(
            "SELECT s.seq_gaps, s.last_seq, s.seq_high_at, s.seq_count_from FROM device_status s "
            "JOIN devices d ON d.id = s.device_id WHERE d.device_id = 'ENV-0'").fetchone()
    assert row == (3, 20, base + timedelta(seconds=30 * 120), base + timedelta(seconds=30 * 101))


def test_a_count_stored_without_times_takes_the_early_number_rule_until_its_time_is_known() -> None:
    """A state stored before device times (schema 12) or from messages without them."""
    legacy = merge(SeqState(), [*range(1, 50), *range(60, 300)])
    assert legacy.high_at is None
    state = timed(legacy, count(range(1, 120), 600))
    assert (state.high, state.gaps, state.high_at) == (119, 10, at(719))
    state = timed(state, count(range(1, 5), 800))  # its time is known now: a reboot by time
    assert (state.high, state.gaps, state.count_from) == (4, 10, at(801))


def test_a_clock_set_back_in_the_first_count_seen_loses_nothing() -> None:
    """The simulator's clock_skew: timestamps 2-60 minutes off for a while. The first count the
    twin sees has no earlier count its messages could be late ones of."""
    state = timed(SeqState(), count(range(1, 21), 0))
    state = timed(state, [(n, at(n) - timedelta(minutes=60)) for n in range(21, 41)])
    state = timed(state, count(range(41, 61), 0))
    assert (state.high, state.gaps, state.count_from) == (60, 0, None)
