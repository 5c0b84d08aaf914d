"""European prices: textbook values, QuantLib, limits, parity and bad rows."""

from __future__ import annotations

import numpy as np
import pytest

from flashalpha.pricing import bsm_price

from .quantlib_reference import european
from .samples import random_options

# E. G. Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed. (McGraw-Hill, 2007),
# chapter 1, the worked examples (printed to 4 decimals). Each case: spot, strike, years, rate,
# cost of carry b (div_yield = rate - b), vol, is_call, value.
HAUG_EXAMPLES = [
    # 1.1.1 Black-Scholes (1973): stock option, no dividend.
    (60.0, 65.0, 0.25, 0.08, 0.08, 0.30, True, 2.1334),
    # 1.1.2 Merton (1973): put on a stock index with a 5% dividend yield.
    (100.0, 95.0, 0.5, 0.10, 0.05, 0.20, False, 2.4648),
    # 1.1.6 generalized Black-Scholes-Merton, put with b = 5%.
    (75.0, 70.0, 0.5, 0.10, 0.05, 0.35, False, 4.0870),
    # 1.1.3 Black (1976): option on a futures (b = 0), F = K = 19, call and put equal.
    (19.0, 19.0, 0.75, 0.10, 0.0, 0.28, True, 1.7011),
    (19.0, 19.0, 0.75, 0.10, 0.0, 0.28, False, 1.7011),
    # 1.1.5 Garman-Kohlhagen (1983): currency call, domestic 6%, foreign 8% (b = -2%).
    (1.56, 1.60, 0.5, 0.06, -0.02, 0.12, True, 0.0291),
]


@pytest.mark.parametrize(
    ("spot", "strike", "years", "rate", "carry", "vol", "is_call", "value"), HAUG_EXAMPLES
)
def test_haug_examples(spot, strike, years, rate, carry, vol, is_call, value):
    price = bsm_price(spot, strike, years, rate, rate - carry, vol, is_call)
    assert price == pytest.approx(value, abs=5e-5)


def test_random_options_against_quantlib():
    # QuantLib's AnalyticEuropeanEngine with flat curves; 1e-10 relative where the price is
    # well conditioned (>= 1e-3 dollars), 1e-12 dollars absolute below.
    sample = random_options(2000, seed=4, whole_days=True)
    ours = bsm_price(
        *(sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "vol")),
        sample["is_call"],
    )
    reference = np.array(
        [
            european(
                sample["spot"][i],
                sample["strike"][i],
                sample["days"][i],
                sample["rate"][i],
                sample["div_yield"][i],
                sample["vol"][i],
                bool(sample["is_call"][i]),
            )["price"]
            for i in range(2000)
        ]
    )
    large = reference >= 1e-3
    np.testing.assert_allclose(ours[large], reference[large], rtol=1e-10)
    np.testing.assert_allclose(ours[~large], reference[~large], rtol=0, atol=1e-12)


def test_put_call_parity_and_symmetry():
    s = random_options(20000, seed=5)
    args = (s["spot"], s["strike"], s["years"], s["rate"], s["div_yield"], s["vol"])
    call, put = bsm_price(*args, True), bsm_price(*args, False)
    forward_gap = s["spot"] * np.exp(-s["div_yield"] * s["years"]) - s["strike"] * np.exp(
        -s["rate"] * s["years"]
    )
    np.testing.assert_allclose(call - put, forward_gap, rtol=0, atol=2e-13 * 100.0)
    # Put-call symmetry (b = 0): C(S, K) = P(K, S) when rate == div_yield.
    c_sym = bsm_price(s["spot"], s["strike"], s["years"], s["rate"], s["rate"], s["vol"], True)
    p_sym = bsm_price(s["strike"], s["spot"], s["years"], s["rate"], s["rate"], s["vol"], False)
    np.testing.assert_allclose(c_sym, p_sym, rtol=1e-13, atol=1e-13)


def test_limits_are_values_not_nan():
    spot, strike = 100.0, np.array([90.0, 100.0, 110.0])
    assert np.array_equal(bsm_price(spot, strike, 0.0, 0.05, 0.01, 0.2, True), [10.0, 0.0, 0.0])
    assert np.array_equal(bsm_price(spot, strike, 0.0, 0.05, 0.01, 0.2, False), [0.0, 0.0, 10.0])
    years, rate, q = 0.5, 0.05, 0.01
    forward_gap = spot * np.exp(-q * years) - strike * np.exp(-rate * years)
    np.testing.assert_allclose(
        bsm_price(spot, strike, years, rate, q, 0.0, True), np.maximum(forward_gap, 0.0)
    )
    np.testing.assert_allclose(
        bsm_price(spot, strike, years, rate, q, 0.0, False), np.maximum(-forward_gap, 0.0)
    )
    # A vanishing vol converges on the limit.
    np.testing.assert_allclose(
        bsm_price(spot, strike, years, rate, q, 1e-9, True),
        np.maximum(forward_gap, 0.0),
        atol=1e-8,
    )


def test_bad_rows_are_nan_and_do_not_spoil_the_batch():
    spot = np.array([100.0, -1.0, np.nan, 100.0, 100.0, 100.0, 100.0])
    years = np.array([0.5, 0.5, 0.5, -0.1, 0.5, np.inf, 0.5])
    vol = np.array([0.2, 0.2, 0.2, 0.2, -0.2, 0.2, 0.2])
    rate = np.array([0.05, 0.05, 0.05, 0.05, 0.05, 0.05, np.nan])
    prices = bsm_price(spot, 100.0, years, rate, 0.0, vol, True)
    assert prices[0] == pytest.approx(6.888728577680624, rel=1e-12)  # the row of test_broadcast
    assert np.isnan(prices[1:5]).all()
    assert np.isnan(prices[6])


def test_broadcasting_shapes_and_scalars():
    assert isinstance(bsm_price(100.0, 100.0, 0.5, 0.05, 0.0, 0.2, True), float)
    strikes = np.linspace(80, 120, 5)[:, None]
    vols = np.array([0.1, 0.2, 0.3])
    grid = bsm_price(100.0, strikes, 0.5, 0.05, 0.0, vols, np.array([True, False, True]))
    assert grid.shape == (5, 3)
    assert grid[2, 1] == pytest.approx(bsm_price(100.0, 100.0, 0.5, 0.05, 0.0, 0.2, False))
    serial = bsm_price(100.0, strikes, 0.5, 0.05, 0.0, vols, True)
    parallel = bsm_price(100.0, strikes, 0.5, 0.05, 0.0, vols, True, parallel=True)
    assert np.array_equal(serial, parallel)
    assert bsm_price(100.0, 100.0, 0.5, 0.05, 0.0, 0.2, 1) == bsm_price(
        100.0, 100.0, 0.5, 0.05, 0.0, 0.2, True
    )
