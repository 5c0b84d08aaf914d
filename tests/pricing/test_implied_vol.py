"""Implied volatility: round trips, the normalized solver's precision and iteration count,
statuses of bad rows, and agreement with QuantLib and with Jäckel's own implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql
from py_lets_be_rational import implied_volatility_from_a_transformed_rational_guess

from flashalpha.pricing import ImpliedVolStatus, bsm_price, implied_vol
from flashalpha.pricing.implied_vol import (
    MAX_ITERATIONS,
    implied_vol_iterations,
    implied_vol_quotes,
    normalized_implied_deviation,
)
from flashalpha.pricing.normalized_black import (
    normalized_black_otm,
    normalized_black_otm_complement,
)

from .quantlib_reference import european, option, process
from .samples import random_options

ARGS = ("spot", "strike", "years", "rate", "div_yield")


def _quotable(sample, price):
    years, spot, strike = sample["years"], sample["spot"], sample["strike"]
    forward_gap = spot * np.exp(-sample["div_yield"] * years) - strike * np.exp(
        -sample["rate"] * years
    )
    intrinsic = np.maximum(np.where(sample["is_call"], forward_gap, -forward_gap), 0.0)
    return (price >= 0.01) & (price - intrinsic >= 0.005)


def test_round_trip_one_million_options():
    # The acceptance test: |σ̂ - σ| <= 1e-12 on every quotable option (price >= 0.01,
    # time value >= 0.005) of 1M random options. Worst seen: 7e-14.
    sample = random_options(1_000_000, seed=2024)
    price = bsm_price(*(sample[k] for k in ARGS), sample["vol"], sample["is_call"])
    vol, status = implied_vol(price, *(sample[k] for k in ARGS), sample["is_call"], True)
    quotable = _quotable(sample, price)
    assert quotable.sum() > 900_000
    assert (status[quotable] == ImpliedVolStatus.OK).all()
    assert np.max(np.abs(vol[quotable] - sample["vol"][quotable])) <= 1e-12


def _normalized_cases(n, seed):
    rng = np.random.default_rng(seed)
    x = -(10.0 ** rng.uniform(-8.0, 2.5, n))
    x[: n // 20] = 0.0
    s = 10.0 ** rng.uniform(-4.0, 1.5, n)
    return x, s


def test_normalized_solver_reaches_machine_precision_in_two_or_three_steps():
    # Over the whole normalized domain (|ln F/K| up to 316, σ√T from 1e-4 to 32, prices down
    # to 1e-300): relative error of s below 1e-14 (worst seen 3.2e-15, the conditioning of
    # b(s) at these extremes); at most MAX_ITERATIONS = 3 steps, 3 only for a few percent.
    x, s = _normalized_cases(100_000, seed=7)
    errors, steps = [], []
    for xi, si in zip(x, s, strict=True):
        beta = normalized_black_otm(xi, si)
        gap = normalized_black_otm_complement(xi, si)
        if beta < 1e-300 or gap < 1e-300:
            continue  # no double-precision price to invert
        s_hat, iterations = normalized_implied_deviation(beta, gap, xi)
        errors.append(abs(s_hat / si - 1.0))
        steps.append(iterations)
    errors, steps = np.array(errors), np.array(steps)
    assert len(errors) > 70_000
    assert errors.max() <= 1e-14
    assert steps.max() <= MAX_ITERATIONS == 3
    assert np.mean(steps == 3) < 0.05


def test_two_steps_on_realistic_options():
    sample = random_options(100_000, seed=8)
    price = bsm_price(*(sample[k] for k in ARGS), sample["vol"], sample["is_call"])
    steps = implied_vol_iterations(price, *(sample[k] for k in ARGS), sample["is_call"])
    quotable = _quotable(sample, price)
    assert steps[quotable].max() <= 3
    assert np.mean(steps[quotable] <= 2) > 0.9


def test_matches_lets_be_rational_reference_implementation():
    # Jäckel's algorithm as packaged by py_lets_be_rational (an independent code base).
    rng = np.random.default_rng(9)
    for _ in range(3000):
        forward, strike = 100.0, rng.uniform(40.0, 250.0)
        years, vol = rng.uniform(0.01, 3.0), rng.uniform(0.03, 2.0)
        is_call = bool(rng.random() < 0.5)
        price = bsm_price(forward, strike, years, 0.0, 0.0, vol, is_call)
        if price < 1e-8 * forward:
            continue
        theirs = implied_volatility_from_a_transformed_rational_guess(
            price, forward, strike, years, 1.0 if is_call else -1.0
        )
        ours = implied_vol(price, forward, strike, years, 0.0, 0.0, is_call)
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-13)


def test_matches_quantlib_implied_volatility():
    sample = random_options(300, seed=10, whole_days=True)
    for i in range(300):
        days = int(sample["days"][i])
        spot, strike = sample["spot"][i], sample["strike"][i]
        rate, div_yield, vol = sample["rate"][i], sample["div_yield"][i], sample["vol"][i]
        is_call = bool(sample["is_call"][i])
        price = european(spot, strike, days, rate, div_yield, vol, is_call)["price"]
        forward_gap = spot * math.exp(-div_yield * days / 365.0) - strike * math.exp(
            -rate * days / 365.0
        )
        if price < 0.01 or price - max(forward_gap if is_call else -forward_gap, 0.0) < 0.005:
            continue  # not quotable
        opt = option(strike, days, is_call)
        opt.setPricingEngine(ql.AnalyticEuropeanEngine(process(spot, rate, div_yield, vol)))
        reference = opt.impliedVolatility(
            price, process(spot, rate, div_yield, 0.3), 1e-14, 1000, 1e-4, 5.0
        )
        ours = implied_vol(price, spot, strike, days / 365.0, rate, div_yield, is_call)
        # QuantLib's Brent solver stops near 1e-9 of its root, and its price differs from
        # ours by ~1e-14 relative (divided by vega).
        assert ours == pytest.approx(reference, abs=1e-8)


def test_put_call_symmetry():
    sample = random_options(20_000, seed=11)
    args = [sample[k] for k in ARGS]
    call = bsm_price(*args, sample["vol"], True)
    put = bsm_price(*args, sample["vol"], False)
    vol_call = implied_vol(call, *args, True)
    vol_put = implied_vol(put, *args, False)
    both = _quotable(sample | {"is_call": np.ones(20_000, bool)}, call) & _quotable(
        sample | {"is_call": np.zeros(20_000, bool)}, put
    )
    np.testing.assert_allclose(vol_call[both], vol_put[both], rtol=0, atol=1e-12)


def test_statuses_and_bad_rows_never_spoil_the_batch():
    spot, strike, years, rate, q = 100.0, 100.0, 0.5, 0.05, 0.01
    good = bsm_price(spot, strike, years, rate, q, 0.25, True)
    forward_gap = spot * math.exp(-q * years) - strike * math.exp(-rate * years)
    cases = [
        (good, spot, years, ImpliedVolStatus.OK),
        (0.0, spot, years, ImpliedVolStatus.NON_POSITIVE_PRICE),
        (-1.0, spot, years, ImpliedVolStatus.NON_POSITIVE_PRICE),
        (forward_gap - 0.01, spot, years, ImpliedVolStatus.BELOW_INTRINSIC),
        (spot * math.exp(-q * years), spot, years, ImpliedVolStatus.ABOVE_MAXIMUM),
        (150.0, spot, years, ImpliedVolStatus.ABOVE_MAXIMUM),
        (good, spot, 0.0, ImpliedVolStatus.ZERO_TIME),
        (np.nan, spot, years, ImpliedVolStatus.BAD_INPUT),
        (good, -100.0, years, ImpliedVolStatus.BAD_INPUT),
        (good, np.inf, years, ImpliedVolStatus.BAD_INPUT),
        (good, spot, -1.0, ImpliedVolStatus.BAD_INPUT),
        (good, spot, years, ImpliedVolStatus.OK),
    ]
    price = np.array([c[0] for c in cases])
    spots = np.array([c[1] for c in cases])
    years_column = np.array([c[2] for c in cases])
    vol, status = implied_vol(price, spots, strike, years_column, rate, q, True, True)
    assert [ImpliedVolStatus(int(code)) for code in status] == [c[3] for c in cases]
    assert vol[0] == pytest.approx(0.25, abs=1e-14)
    assert vol[-1] == vol[0]
    assert np.isnan(vol[1:-1]).all()
    assert status.dtype == np.uint8


def test_price_at_the_lower_bound_is_zero_vol():
    spot, strike, years, rate, q = 100.0, 80.0, 0.5, 0.05, 0.0
    intrinsic = spot * math.exp(-q * years) - strike * math.exp(-rate * years)
    vol, status = implied_vol(intrinsic, spot, strike, years, rate, q, True, True)
    assert vol == 0.0
    assert status is ImpliedVolStatus.OK


def test_quotes_helper_and_parallel_and_shapes():
    sample = random_options(5000, seed=12)
    args = [sample[k] for k in ARGS]
    price = bsm_price(*args, sample["vol"], sample["is_call"])
    bid, ask = price * 0.98, price * 1.02
    quotes = implied_vol_quotes(bid, ask, *args, sample["is_call"])
    mid = implied_vol(0.5 * (bid + ask), *args, sample["is_call"])
    np.testing.assert_array_equal(quotes.mid, mid)
    ok = quotes.status_bid == ImpliedVolStatus.OK
    assert (quotes.bid[ok] <= quotes.mid[ok]).all()
    assert (quotes.mid[ok] <= quotes.ask[ok]).all()
    parallel = implied_vol(price, *args, sample["is_call"], parallel=True)
    np.testing.assert_array_equal(parallel, implied_vol(price, *args, sample["is_call"]))
    grid = implied_vol(np.full((3, 4), 5.0), 100.0, 100.0, 0.5, 0.0, 0.0, True)
    assert grid.shape == (3, 4)
    assert isinstance(implied_vol(5.0, 100.0, 100.0, 0.5, 0.0, 0.0, True), float)
