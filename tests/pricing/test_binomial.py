"""The Cox-Ross-Rubinstein tree: Hull's worked example, limits, dividends, symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import QuantLib as ql

from flashalpha.pricing import american_price, bsm_price, crr_tree

from .quantlib_reference import option, process
from .samples import random_options

# J. C. Hull, "Options, Futures, and Other Derivatives", the American put of the chapter
# "Basic Numerical Procedures" (S = K = 50, r = 10%, σ = 40%, T = 5 months, no dividends):
# the 5-step tree of the example and the convergence table for 30, 50, 100 and 500 steps,
# converging to 4.2842 (chapter 20 in the 8th edition, 21 in later ones).
HULL = (50.0, 50.0, 5.0 / 12.0, 0.10, 0.0, 0.40, False)


@pytest.mark.parametrize(
    ("steps", "value", "tolerance"),
    [(5, 4.49, 5e-3), (30, 4.263, 5e-4), (50, 4.272, 5e-4), (100, 4.278, 5e-4), (500, 4.283, 5e-4)],
)
def test_hull_american_put_convergence_table(steps, value, tolerance):
    assert american_price(*HULL, steps=steps) == pytest.approx(value, abs=tolerance)


def test_hull_american_put_converges_to_4_2842():
    assert american_price(*HULL, steps=20000) == pytest.approx(4.2842, abs=5e-5)


def test_hull_five_step_greeks():
    # The same example: delta -0.41, gamma 0.03, theta -4.30 per year (-0.0118 per day).
    tree = crr_tree(*HULL, steps=5)
    assert tree.delta == pytest.approx(-0.41, abs=5e-3)
    assert tree.gamma == pytest.approx(0.03, abs=5e-3)
    assert tree.theta == pytest.approx(-4.30, abs=5e-3)


def test_european_tree_converges_to_black_scholes_and_greeks_are_sensible():
    sample = random_options(200, seed=21)
    args = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "vol")]
    tree = crr_tree(*args, sample["is_call"], american=False, steps=2000)
    exact = bsm_price(*args, sample["is_call"])
    # CRR's error oscillates with O(1/n) amplitude: 2000 steps is within a cent on spot 100.
    np.testing.assert_allclose(tree.price, exact, atol=1e-2)
    from flashalpha.pricing import bsm_greeks

    greeks = bsm_greeks(*args, sample["is_call"])
    np.testing.assert_allclose(tree.delta, greeks.delta, atol=5e-3)
    assert np.all(np.abs(tree.theta - greeks.theta) <= 0.05 * np.abs(greeks.theta) + 0.05)


def test_as_accurate_as_quantlib_binomial_crr():
    # QuantLib's "crr" tree is the additive (log-space) variant with a linearized up
    # probability, not the textbook one, so the two differ by O(Δt) (up to ~0.1 at 200 steps
    # and vols near 150%). Against the exact value (QuantLib's accurate QD+/fixed-point
    # engine) both are within 0.15 on spot 100 (the O(1/n) oscillation of CRR trees).
    sample = random_options(100, seed=22, whole_days=True)
    for i in range(100):
        spot, strike = sample["spot"][i], sample["strike"][i]
        rate, q, vol = sample["rate"][i], sample["div_yield"][i], sample["vol"][i]
        is_call, days = bool(sample["is_call"][i]), int(sample["days"][i])
        tree = option(strike, days, is_call, american=True)
        tree.setPricingEngine(ql.BinomialVanillaEngine(process(spot, rate, q, vol), "crr", 200))
        exact = option(strike, days, is_call, american=True)
        exact.setPricingEngine(
            ql.QdFpAmericanEngine(
                process(spot, rate, q, vol), ql.QdFpAmericanEngine.accurateScheme()
            )
        )
        ours = american_price(spot, strike, days / 365.0, rate, q, vol, is_call, steps=200)
        assert abs(ours - exact.NPV()) <= 0.15
        assert abs(tree.NPV() - exact.NPV()) <= 0.15


def test_put_call_symmetry_and_american_bounds():
    sample = random_options(300, seed=23)
    s, k, t = sample["spot"], sample["strike"], sample["years"]
    r, q, v = sample["rate"], sample["div_yield"], sample["vol"]
    call = american_price(s, k, t, r, q, v, True)
    put_mirror = american_price(k, s, t, q, r, v, False)
    np.testing.assert_allclose(call, put_mirror, rtol=1e-10, atol=1e-10)
    for is_call in (True, False):
        american = american_price(s, k, t, r, q, v, is_call)
        european = crr_tree(s, k, t, r, q, v, is_call, american=False).price
        intrinsic = np.maximum((s - k) if is_call else (k - s), 0.0)
        # (the node prices are products of u's: intrinsic is met to round-off)
        assert (american >= european - 1e-9).all()
        assert (american >= intrinsic - 1e-9).all()
        assert (american <= (s if is_call else k)).all()


def test_discrete_dividends_escrowed_model():
    # European on the escrowed tree -> Black-Scholes on S - PV(dividends).
    spot, strike, years, rate, vol = 100.0, 100.0, 1.0, 0.05, 0.3
    times, amounts = np.array([0.25, 0.75, 1.5]), np.array([1.0, 1.5, 2.0])  # last after expiry
    present_value = np.sum(amounts[:2] * np.exp(-rate * times[:2]))
    for is_call in (True, False):
        tree = crr_tree(
            spot, strike, years, rate, 0.0, vol, is_call, american=False, steps=2000,
            dividend_times=times, dividend_amounts=amounts,
        )  # fmt: skip
        exact = bsm_price(spot - present_value, strike, years, rate, 0.0, vol, is_call)
        assert tree.price == pytest.approx(exact, abs=1e-2)
    # An American call on a dividend payer is worth more than the European one.
    american = american_price(
        spot, strike, years, rate, 0.0, vol, True, dividend_times=times, dividend_amounts=amounts
    )
    european = crr_tree(
        spot, strike, years, rate, 0.0, vol, True, american=False,
        dividend_times=times, dividend_amounts=amounts,
    ).price  # fmt: skip
    assert american > european
    with pytest.raises(ValueError, match="dividend_amounts"):
        crr_tree(spot, strike, years, rate, 0.0, vol, True, dividend_times=times)


def test_limits_bad_rows_and_parallel():
    strikes = np.array([90.0, 100.0, 110.0])
    expired = american_price(100.0, strikes, 0.0, 0.05, 0.0, 0.3, False)
    np.testing.assert_array_equal(expired, [0.0, 0.0, 10.0])
    # Zero vol: the put is exercised at once when K - S beats K·e^(-rT) - S.
    frozen = american_price(100.0, strikes, 1.0, 0.05, 0.0, 0.0, False)
    np.testing.assert_allclose(frozen, [0.0, 0.0, 10.0])
    bad = american_price(np.array([100.0, np.nan, -1.0]), 100.0, 1.0, 0.05, 0.0, 0.3, True)
    assert np.isfinite(bad[0])
    assert np.isnan(bad[1:]).all()
    sample = random_options(500, seed=24)
    args = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "vol", "is_call")]
    np.testing.assert_array_equal(crr_tree(*args).price, crr_tree(*args, parallel=True).price)
