"""The fast American engine in lockstep blocks (american_batch) against the scalar engine
(american.put_boundary / put_price, one option at a time): the same algorithm, so the same
prices to round-off, and the same implied vols and statuses."""

from __future__ import annotations

import numpy as np

from flashalpha.pricing import american
from flashalpha.pricing.american_batch import american_fast_implied_vols, american_fast_prices

from .samples import random_options

ARGS = ("spot", "strike", "years", "rate", "div_yield", "vol", "is_call")


def _scalar_prices(sample, scheme):
    args = [np.ascontiguousarray(sample[k]) for k in ARGS]
    out = np.empty(args[0].size)
    american._american_fast_serial(*args, scheme, out)
    return out


def _sample(n, seed):
    sample = random_options(n, seed=seed)
    sample["vol"][: n // 10] = np.random.default_rng(seed).uniform(0.01, 0.05, n // 10)  # FP-A
    sample["years"][-5:] = 0.0  # limits and bad rows go through the scalar paths
    sample["vol"][-10:-5] = 0.0
    sample["strike"][-12] = np.nan
    sample["rate"][-15:-13] = 0.0  # no early exercise for puts
    return sample


def test_block_prices_equal_the_scalar_engine():
    for scheme, n in ((american.FAST_SCHEME, 3000), (american.ACCURATE_SCHEME, 300)):
        sample = _sample(n, seed=51)
        args = [np.ascontiguousarray(sample[k]) for k in ARGS]
        ours = np.empty(n)
        american_fast_prices(*args, scheme, ours)
        scalar = _scalar_prices(sample, scheme)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(scalar))
        finite = np.isfinite(scalar)
        assert np.max(np.abs(ours[finite] - scalar[finite])) <= 1e-11
    # parallel variant, same results
    parallel = np.empty(n)
    american_fast_prices(*args, scheme, parallel, parallel=True)
    np.testing.assert_array_equal(parallel, ours)


def test_block_implied_vols_match_the_scalar_solver():
    sample = _sample(3000, seed=52)
    args = [np.ascontiguousarray(sample[k]) for k in ARGS]
    price = np.empty(3000)
    american_fast_prices(*args, american.FAST_SCHEME, price)
    price[5] = np.nan
    price[6] = -1.0
    base = args[:5]
    vol, status = np.empty(3000), np.empty(3000, np.uint8)
    american_fast_implied_vols(price, *base, args[6], american.FAST_SCHEME, vol, status)
    ref_vol, ref_status = np.empty(3000), np.empty(3000, np.uint8)
    american._american_iv_serial(price, *base, args[6], american.FAST_SCHEME, ref_vol,
                                 ref_status)  # fmt: skip
    # Statuses agree except where the price sits on the exercise floor to round-off.
    assert (status == ref_status).mean() > 0.998
    both = (status == 1) & (ref_status == 1)
    vega = american.american_greeks(*args[:6], args[6]).vega
    sensitive = both & (vega >= 1e-2)
    assert sensitive.sum() > 2000
    assert np.max(np.abs(vol[sensitive] - ref_vol[sensitive])) <= 1e-8
