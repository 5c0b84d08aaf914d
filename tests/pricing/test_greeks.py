"""European greeks: QuantLib, Haug's worked examples, finite differences, limits."""

from __future__ import annotations

import numpy as np
import pytest

from flashalpha.pricing import GREEK_NAMES, bsm_greeks, bsm_price

from .quantlib_reference import european
from .samples import random_options

ARGS = ("spot", "strike", "years", "rate", "div_yield", "vol", "is_call")


def _greeks(sample, **overrides):
    values = {k: sample[k] for k in ARGS} | overrides
    return bsm_greeks(*(values[k] for k in ARGS))


def test_greeks_against_quantlib():
    # QuantLib's analytic engine gives these nine; 1e-10 relative (absolute floor 1e-10 in the
    # greek's own unit, e.g. dollars per year for theta, where QuantLib computes it through the
    # pricing PDE and loses digits to cancellation).
    n = 1500
    sample = random_options(n, seed=11, whole_days=True)
    ours = _greeks(sample)
    keys = (
        "price",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        "epsilon",
        "dual_delta",
        "elasticity",
    )
    reference = {k: np.empty(n) for k in keys}
    for i in range(n):
        row = european(
            *(sample[k][i] for k in ("spot", "strike")),
            sample["days"][i],
            *(sample[k][i] for k in ("rate", "div_yield", "vol")),
            bool(sample["is_call"][i]),
        )
        for k in keys:
            reference[k][i] = row[k]
    well_conditioned = reference["price"] >= 1e-3
    for k in keys:
        np.testing.assert_allclose(
            getattr(ours, k)[well_conditioned],
            reference[k][well_conditioned],
            rtol=1e-10,
            atol=1e-10,
            err_msg=k,
        )


# Haug (2007), chapter 2 ("Black-Scholes-Merton Greeks"), worked examples, 4 decimals:
# spot, strike, years, rate, carry b, vol, is_call, greek, value.
HAUG_GREEKS = [
    # 2.1.1 delta of a futures option (b = 0).
    (105.0, 100.0, 0.5, 0.10, 0.0, 0.36, True, "delta", 0.5946),
    (105.0, 100.0, 0.5, 0.10, 0.0, 0.36, False, "delta", -0.3566),
    # 2.2.1 gamma (call and put alike).
    (55.0, 60.0, 0.75, 0.10, 0.10, 0.30, True, "gamma", 0.0278),
    (55.0, 60.0, 0.75, 0.10, 0.10, 0.30, False, "gamma", 0.0278),
    # 2.5.1 theta of a put on a stock index, per year.
    (430.0, 405.0, 0.0833, 0.07, 0.02, 0.20, False, "theta", -31.1924),
    # 2.6.1 rho of a call.
    (72.0, 75.0, 1.0, 0.09, 0.09, 0.19, True, "rho", 38.7325),
]


@pytest.mark.parametrize(
    ("spot", "strike", "years", "rate", "carry", "vol", "is_call", "greek", "value"), HAUG_GREEKS
)
def test_haug_greek_examples(spot, strike, years, rate, carry, vol, is_call, greek, value):
    greeks = bsm_greeks(spot, strike, years, rate, rate - carry, vol, is_call)
    assert getattr(greeks, greek) == pytest.approx(value, abs=5e-5)


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2.0 * h)


@pytest.mark.parametrize(
    ("greek", "base", "variable", "step"),
    [
        ("delta", "price", "spot", 1e-3),
        ("gamma", "delta", "spot", 1e-3),
        ("speed", "gamma", "spot", 1e-3),
        ("vega", "price", "vol", 1e-5),
        ("vanna", "delta", "vol", 1e-5),
        ("vomma", "vega", "vol", 1e-5),
        ("zomma", "gamma", "vol", 1e-5),
        ("ultima", "vomma", "vol", 1e-5),
        ("theta", "price", "years", -1e-6),
        ("charm", "delta", "years", -1e-6),
        ("veta", "vega", "years", -1e-6),
        ("color", "gamma", "years", -1e-6),
        ("rho", "price", "rate", 1e-6),
        ("epsilon", "price", "div_yield", 1e-6),
        ("dual_delta", "price", "strike", 1e-3),
        ("dual_gamma", "dual_delta", "strike", 1e-3),
    ],
)
def test_greeks_are_the_derivatives_they_claim(greek, base, variable, step):
    # Central differences of the next-lower greek; a negative step differentiates in calendar
    # time (years to expiry shrink as time passes). Options with at least ~5 days and vol 10%+
    # so that the difference quotient is well conditioned.
    sample = random_options(400, seed=12)
    sample["years"] = np.maximum(sample["years"], 0.05)
    sample["vol"] = np.maximum(sample["vol"], 0.1)
    analytic = getattr(_greeks(sample), greek)

    def f(x):
        return getattr(_greeks(sample, **{variable: x}), base)

    numeric = _central(f, sample[variable], abs(step)) * np.sign(step)
    scale = np.max(np.abs(analytic))
    np.testing.assert_allclose(analytic, numeric, rtol=2e-5, atol=2e-6 * scale)


def test_price_and_elasticity_consistent_with_bsm_price():
    sample = random_options(5000, seed=13)
    greeks = _greeks(sample)
    np.testing.assert_allclose(
        greeks.price, bsm_price(*(sample[k] for k in ARGS)), rtol=1e-13, atol=1e-15
    )
    np.testing.assert_allclose(greeks.elasticity, greeks.delta * 100.0 / greeks.price, rtol=1e-13)
    np.testing.assert_allclose(greeks.theta_per_day, greeks.theta / 365.0)


def test_zero_time_and_zero_vol_limits():
    strikes = np.array([90.0, 100.0, 110.0])
    expired = bsm_greeks(100.0, strikes, 0.0, 0.05, 0.02, 0.3, True)
    np.testing.assert_array_equal(expired.price, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(expired.delta, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(expired.gamma, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(expired.dual_delta, [-1.0, -0.5, -0.0])
    frozen = bsm_greeks(100.0, strikes, 0.5, 0.05, 0.02, 0.0, False)
    put_itm = strikes * np.exp(-0.025) > 100.0 * np.exp(-0.01)
    np.testing.assert_allclose(frozen.delta, np.where(put_itm, -np.exp(-0.01), 0.0), rtol=1e-15)
    # A tiny vol converges on the same limit.
    small = bsm_greeks(100.0, strikes, 0.5, 0.05, 0.02, 1e-9, False)
    np.testing.assert_allclose(small.delta, frozen.delta, atol=1e-12)
    np.testing.assert_allclose(small.theta, frozen.theta, atol=1e-9)
    np.testing.assert_allclose(small.rho, frozen.rho, atol=1e-9)
    for name in GREEK_NAMES:
        assert np.isfinite(getattr(expired, name)).all(), name
        assert np.isfinite(getattr(frozen, name)).all(), name


def test_bad_rows_are_nan_only_there():
    greeks = bsm_greeks(np.array([100.0, np.nan, -5.0]), 100.0, 0.5, 0.05, 0.0, 0.2, True)
    for name in GREEK_NAMES:
        values = getattr(greeks, name)
        assert np.isfinite(values[0]), name
        assert np.isnan(values[1:]).all(), name


def test_parallel_matches_serial():
    sample = random_options(10000, seed=14)
    serial = _greeks(sample)
    parallel = bsm_greeks(*(sample[k] for k in ARGS), parallel=True)
    for name in GREEK_NAMES:
        np.testing.assert_array_equal(getattr(serial, name), getattr(parallel, name))


def test_vectorized_blocks_equal_the_scalar_kernel():
    # bsm_greeks runs blocks of options stage by stage (vector exp, ln, Φ); bsm_greeks_into is
    # the scalar reference (and what price_contracts uses). Same formulas: equal to round-off,
    # including the rows that take the scalar path (limits, bad input) inside a block.
    from flashalpha.pricing import greeks as module

    rng = np.random.default_rng(61)
    n = 5000
    args = [np.full(n, 100.0), rng.uniform(50.0, 150.0, n), rng.uniform(0.003, 2.0, n),
            rng.uniform(0.0, 0.05, n), rng.uniform(0.0, 0.03, n), rng.uniform(0.05, 1.5, n),
            rng.random(n) < 0.5]  # fmt: skip
    args[2][:5] = 0.0
    args[5][5:10] = 0.0
    args[0][10] = np.nan
    args[1][11] = -1.0
    ours = np.array(bsm_greeks(*args))
    scalar = np.empty((module.N_GREEKS, n))
    for i in range(n):
        module.bsm_greeks_into(*(a[i] for a in args), scalar, i)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(scalar))
    np.testing.assert_allclose(ours, scalar, rtol=1e-9, atol=1e-12)
