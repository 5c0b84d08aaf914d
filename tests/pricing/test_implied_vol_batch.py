"""The block path of implied_vol (phase by phase over blocks of rows, vectorized normalized Black
function) against the per-row scalar path that price_contracts uses: the same bits."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from flashalpha.pricing import ImpliedVolStatus, bsm_price, implied_vol
from flashalpha.pricing.implied_vol import BLOCK, implied_vol_scalar
from flashalpha.pricing.implied_vol_batch import WORK_ROWS, black_and_vega, black_and_vega_into
from flashalpha.pricing.normalized_black import normalized_black_and_vega

from .samples import random_options

ARGS = ("spot", "strike", "years", "rate", "div_yield")


@njit
def _scalar_path(price, spot, strike, years, rate, div_yield, is_call):
    n = price.shape[0]
    vol = np.empty(n)
    status = np.empty(n, dtype=np.uint8)
    for i in range(n):
        vol[i], status[i], _ = implied_vol_scalar(
            price[i], spot[i], strike[i], years[i], rate[i], div_yield[i], is_call[i]
        )
    return vol, status


@njit
def _scalar_black(x, s, reference):
    b = np.empty(x.shape[0])
    vega = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        if reference:
            b[i], vega[i] = normalized_black_and_vega(x[i], s[i])
        else:
            b[i], vega[i] = black_and_vega(x[i], math.exp(0.5 * x[i]), s[i])
    return b, vega


@njit
def _block_black(x, s, block):
    n = x.shape[0]
    b = np.empty(n)
    vega = np.empty(n)
    work = np.empty((WORK_ROWS, block))
    rows = np.empty(block, dtype=np.int64)
    for start in range(0, n, block):
        m = min(block, n - start)
        xs = x[start : start + m].copy()
        ss = s[start : start + m].copy()
        b_max = np.empty(m)
        for i in range(m):
            b_max[i] = math.exp(0.5 * xs[i])
        bb = np.empty(m)
        vv = np.empty(m)
        black_and_vega_into(xs, b_max, ss, bb, vv, work, rows, m)
        b[start : start + m] = bb
        vega[start : start + m] = vv
    return b, vega


def _with_edge_rows(sample, price):
    """Bad and limit rows spread over the blocks (and across block boundaries)."""
    price = price.copy()
    years = sample["years"].copy()
    spot_discounted = sample["spot"] * np.exp(-sample["div_yield"] * years)
    price[::997] = np.nan
    price[1::991] = 0.0
    years[2::983] = 0.0
    price[3::977] = -1.0
    price[4::971] = spot_discounted[4::971] * 1.01  # above the maximum (calls and puts alike)
    price[5::967] *= 1e-9  # tiny: deep in the lower branch, or below intrinsic
    price[BLOCK - 1 :: 5 * BLOCK] = np.inf
    return price, years


def test_block_path_matches_scalar_path_with_edge_rows_mixed_in():
    n = 200_003  # not a multiple of the block
    sample = random_options(n, seed=31)
    price = bsm_price(*(sample[k] for k in ARGS), sample["vol"], sample["is_call"])
    price, years = _with_edge_rows(sample, price)
    args = (sample["spot"], sample["strike"], years, sample["rate"], sample["div_yield"])
    vol, status = implied_vol(price, *args, sample["is_call"], True)
    ref_vol, ref_status = _scalar_path(price, *args, sample["is_call"])
    np.testing.assert_array_equal(status, ref_status)
    assert {int(c) for c in np.unique(status)} == {int(c) for c in ImpliedVolStatus}
    np.testing.assert_array_equal(vol, ref_vol)  # bit for bit, NaN where NaN


def test_block_path_in_every_branch_and_near_the_bounds():
    # Prices from the lower bound to just under the maximum at fixed strikes, so that every
    # block holds rows of all three branches and of the scalar regions of b(x, s).
    vols = np.concatenate([10.0 ** np.linspace(-3.0, 1.5, 600), [0.2] * 24])
    strikes = np.resize(np.array([20.0, 60.0, 95.0, 100.0, 105.0, 160.0, 600.0]), vols.shape)
    years = np.resize(np.array([1.0 / 365.0, 0.1, 1.0, 5.0, 30.0]), vols.shape)
    is_call = np.resize(np.array([True, False, False]), vols.shape)
    price = bsm_price(100.0, strikes, years, 0.03, 0.01, vols, is_call)
    vol, status = implied_vol(price, 100.0, strikes, years, 0.03, 0.01, is_call, True)
    ones = np.ones_like(vols)
    ref_vol, ref_status = _scalar_path(
        price, 100.0 * ones, strikes, years, 0.03 * ones, 0.01 * ones, is_call
    )
    np.testing.assert_array_equal(status, ref_status)
    ok = status == ImpliedVolStatus.OK
    assert ok.sum() > 500
    assert (price[ok] < 1e-12).any()  # deep in the lower branch
    assert (vol[ok] > 0.0).sum() > 300
    np.testing.assert_array_equal(vol, ref_vol)


def test_one_row_blocks_and_scalars_and_parallel():
    sample = random_options(3 * BLOCK + 7, seed=32)
    price = bsm_price(*(sample[k] for k in ARGS), sample["vol"], sample["is_call"])
    args = [sample[k] for k in ARGS]
    whole = implied_vol(price, *args, sample["is_call"])
    rows = [implied_vol(price[i], *(a[i] for a in args), sample["is_call"][i]) for i in range(50)]
    np.testing.assert_array_equal(whole[:50], rows)
    parallel = implied_vol(price, *args, sample["is_call"], parallel=True)
    np.testing.assert_array_equal(parallel, whole)


def test_black_and_vega_block_and_row_agree_and_match_normalized_black():
    rng = np.random.default_rng(33)
    n = 400_000
    x = -(10.0 ** rng.uniform(-8.0, 2.5, n))
    x[: n // 20] = 0.0
    s = 10.0 ** rng.uniform(-4.0, 1.5, n)
    s[n // 20 : n // 20 + 10] = [0.0, math.inf, math.nan, 1e-300, 1e300, 0.0, 1.0, 2.0, 3.0, 40.0]
    b, vega = _block_black(x, s, 256)
    row_b, row_vega = _scalar_black(x, s, False)
    np.testing.assert_array_equal(b, row_b)
    np.testing.assert_array_equal(vega, row_vega)
    ref_b, ref_vega = _scalar_black(x, s, True)
    np.testing.assert_array_equal(np.isnan(b), np.isnan(ref_b))
    np.testing.assert_array_equal(b == 0.0, ref_b == 0.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        h, t = x / s, 0.5 * s
        condition = 1.0 + 0.5 * (h * h + t * t)  # of b and of its vega (the exponent)
    # normalized_black_and_vega is within 7 ulps·condition of the exact value, median 1 ulp.
    ok = ref_b > 1e-300
    assert np.max(np.abs(b[ok] / ref_b[ok] - 1.0) / condition[ok]) <= 4e-15
    ok = ref_vega > 1e-300
    assert np.max(np.abs(vega[ok] / ref_vega[ok] - 1.0) / condition[ok]) <= 4e-15
