"""ActivitySampler: draws follow the weights, zero weights are never drawn, refresh by slices."""

from __future__ import annotations

import numpy as np

from flashalpha.feeds.synthetic.sampling import BLOCK, ActivitySampler


def test_draws_follow_the_weights_across_blocks():
    count = 3 * BLOCK + 123
    weights = np.zeros(count)
    weights[5] = 1.0  # block 0
    weights[BLOCK + 7] = 3.0  # block 1
    weights[2 * BLOCK : 3 * BLOCK] = 0.0  # block 2: silent
    weights[-1] = 4.0  # the short last block
    sampler = ActivitySampler(count, lambda local, now: weights[local], sweep_calls=1)
    sampler.refresh_all(0)
    rng = np.random.default_rng(0)
    drawn = np.concatenate([sampler.sample(rng, 1) for _ in range(4_000)])
    values, frequency = np.unique(drawn, return_counts=True)
    assert values.tolist() == [5, BLOCK + 7, count - 1]
    assert np.allclose(frequency / frequency.sum(), [0.125, 0.375, 0.5], atol=0.03)
    assert sampler.sample(rng, 0).shape == (0,)


def test_samples_are_distinct_and_near_the_requested_count():
    weights = np.random.default_rng(1).pareto(1.5, 50_000)
    sampler = ActivitySampler(50_000, lambda local, now: weights[local], sweep_calls=4)
    sampler.refresh_all(0)
    picked = sampler.sample(np.random.default_rng(2), 1_000)
    assert np.all(np.diff(picked) > 0)
    assert 970 <= picked.shape[0] <= 1_000


def test_slices_refresh_in_turn_and_silence_expired_contracts():
    count = 4 * BLOCK
    alive = np.ones(count)
    sampler = ActivitySampler(count, lambda local, now: alive[local], sweep_calls=4)
    sampler.refresh_all(0)
    alive[:] = 0.0
    alive[3 * BLOCK + 10] = 1.0
    rng = np.random.default_rng(3)
    for _ in range(3):  # blocks 0, 1, 2 refreshed: block 3 still holds old weights
        sampler.advance(0)
    assert np.all(sampler.sample(rng, 50) >= 3 * BLOCK)
    sampler.advance(0)  # block 3
    assert sampler.sample(rng, 50).tolist() == [3 * BLOCK + 10]
    alive[:] = 0.0
    for _ in range(4):
        sampler.advance(0)
    assert sampler.sample(rng, 10).shape == (0,)
