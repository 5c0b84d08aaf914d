"""The repricing queue: conflation, priority, requeues, sweeps and the lag."""

from __future__ import annotations

import numpy as np

from flashalpha.compute.queue import RepricingQueue

S = 1_000_000_000


def rows(*ids):
    return np.array(ids, np.uint32)


def test_a_row_ticking_many_times_is_priced_once():
    queue = RepricingQueue(100, sweep_interval=10)
    assert queue.mark(rows(3, 4, 3), 1 * S) == 2
    assert queue.mark(rows(4, 3, 3, 5), 2 * S) == 1
    work = queue.take(100, 2 * S)
    assert sorted(work.row_ids().tolist()) == [3, 4, 5]
    assert work.sweep_rows == 0
    assert queue.take(100, 2 * S) is None


def test_batches_are_cut_at_the_limit_in_arrival_order():
    queue = RepricingQueue(100, sweep_interval=10)
    queue.mark(rows(1, 2, 3), S)
    queue.mark(rows(4, 5), S)
    assert queue.take(2, S).row_ids().tolist() == [1, 2]
    assert queue.take(2, S).row_ids().tolist() == [3, 4]
    assert queue.take(2, S).row_ids().tolist() == [5]
    assert queue.pending() == 0


def test_pending_counts_a_row_both_hot_and_ahead_of_the_sweep_once():
    queue = RepricingQueue(100, sweep_interval=10)
    queue.mark(rows(1, 2, 50), S)
    assert queue.maybe_start_sweep(10, S)  # rows 0..9: 1 and 2 are also hot
    assert queue.pending() == 11  # 0..9 and 50
    queue.take(3, S)  # the hot rows go first
    assert queue.pending() == 10
    queue.take(4, S)  # then the sweep, from its cursor
    assert queue.pending() == 6


def test_lag_is_the_oldest_stale_row_until_it_is_priced():
    queue = RepricingQueue(100, sweep_interval=10)
    queue.mark(rows(1), 1 * S)
    queue.mark(rows(2), 3 * S)
    queue.mark(rows(1), 4 * S)  # still stale since 1 s
    assert queue.lag_seconds(5 * S, 100) == 4.0
    work = queue.take(10, 5 * S)
    assert queue.lag_seconds(6 * S, 100) == 5.0  # in flight is still stale
    queue.done(work, None, 6 * S)
    assert queue.lag_seconds(7 * S, 100) == 0.0


def test_a_row_that_ticks_while_in_flight_stays_stale_and_queued():
    queue = RepricingQueue(100, sweep_interval=10)
    queue.mark(rows(1, 2), S)
    work = queue.take(10, S)
    queue.mark(rows(2), 2 * S)
    queue.done(work, None, 3 * S)
    assert queue.lag_seconds(4 * S, 100) == 3.0  # row 2, stale since 1 s
    assert queue.take(10, 4 * S).row_ids().tolist() == [2]


def test_requeued_rows_go_first_and_are_not_repeated():
    queue = RepricingQueue(100, sweep_interval=10)
    queue.mark(rows(1, 2, 3), S)
    lost = queue.take(3, S)
    queue.mark(rows(7, 2), S)  # 2 ticked again while its batch was lost
    queue.requeue(lost)
    taken = queue.take(100, S).row_ids().tolist()
    assert sorted(taken[:2]) == [1, 3] and sorted(taken[2:]) == [2, 7]
    assert len(taken) == len(set(taken))


def test_sweep_covers_every_row_in_slices_and_completes_when_all_came_back():
    queue = RepricingQueue(10, sweep_interval=5)
    assert queue.maybe_start_sweep(10, 1 * S)
    assert not queue.maybe_start_sweep(10, 1 * S)
    first = queue.take(4, 1 * S)
    assert first.rows is None and (first.start, first.stop, first.sweep_rows) == (0, 4, 4)
    second = queue.take(100, 1 * S)
    assert (second.start, second.stop) == (4, 10)
    assert queue.take(100, 1 * S) is None
    assert queue.lag_seconds(2 * S, 10) == 1.0
    queue.done(second, None, 2 * S)
    assert queue.sweeps_completed == 0
    queue.done(first, None, 3 * S)
    assert queue.sweeps_completed == 1 and queue.last_sweep_seconds == 2.0
    assert queue.lag_seconds(3 * S, 10) == 0.0
    # The next sweep is due `sweep_interval` after the previous one started.
    assert not queue.maybe_start_sweep(10, 5 * S)
    assert queue.maybe_start_sweep(10, 6 * S)


def test_a_lost_sweep_batch_is_requeued_and_the_sweep_waits_for_it():
    queue = RepricingQueue(10, sweep_interval=5)
    queue.maybe_start_sweep(10, S)
    lost = queue.take(6, S)
    rest = queue.take(6, S)
    queue.done(rest, None, S)
    queue.requeue(lost)
    assert queue.sweeps_completed == 0
    again = queue.take(100, S)
    assert sorted(again.row_ids().tolist()) == list(range(6)) and again.sweep_rows == 6
    queue.done(again, None, 2 * S)
    assert queue.sweeps_completed == 1


def test_hot_rows_go_before_the_sweep_but_a_late_sweep_gets_half_of_each_batch():
    queue = RepricingQueue(1000, sweep_interval=5)
    queue.maybe_start_sweep(1000, 0)
    queue.mark(np.arange(500, dtype=np.uint32), 0)
    work = queue.take(100, 1 * S)
    assert work.sweep_rows == 0 and len(work) == 100
    late = queue.take(100, 6 * S)  # the sweep started 6 s ago, interval 5 s
    assert len(late) == 100 and late.sweep_rows == 50
    assert late.row_ids()[50:].tolist() == list(range(50))
