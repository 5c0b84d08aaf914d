"""The fast American engine (Andersen-Lake-Offengenden): published values, QuantLib's
QdFpAmericanEngine, its greeks and its implied volatility."""

from __future__ import annotations

import numpy as np
import pytest
import QuantLib as ql

from flashalpha.pricing import (
    ImpliedVolStatus,
    american_greeks,
    american_implied_vol,
    american_price,
    bsm_greeks,
    bsm_price,
)

from .quantlib_reference import option, process
from .samples import random_options

ARGS = ("spot", "strike", "years", "rate", "div_yield", "vol", "is_call")


def test_andersen_lake_offengenden_put():
    # ALO (2016), the running example: S = 100, K = 95, r = 7.5%, q = 5%, σ = 25%, T = 1,
    # American put 6.278683.
    args = (100.0, 95.0, 1.0, 0.075, 0.05, 0.25, False)
    assert american_price(*args, method="accurate") == pytest.approx(6.278683, abs=5e-6)
    assert american_price(*args, method="fast") == pytest.approx(6.278683, abs=2e-5)


def test_hull_american_put_converged_value():
    args = (50.0, 50.0, 5.0 / 12.0, 0.10, 0.0, 0.40, False)
    assert american_price(*args, method="accurate") == pytest.approx(4.2842, abs=5e-5)
    assert american_price(*args, method="fast") == pytest.approx(4.2842, abs=1e-4)


def _quantlib_accurate(spot, strike, days, rate, q, vol, is_call):
    opt = option(strike, days, is_call, american=True)
    opt.setPricingEngine(
        ql.QdFpAmericanEngine(process(spot, rate, q, vol), ql.QdFpAmericanEngine.accurateScheme())
    )
    return opt.NPV()


def test_fast_engine_within_1e_3_of_quantlib_accurate_scheme():
    # 400 random options of the ranges (strikes 50-150 on spot 100, 1 day to 2 years,
    # vol 5-150%, r 0-5%, q 0-3%). Worst seen: 2.5e-4 (a call, K = 86.8, T = 1.79 y,
    # σ = 74%; mean 3.2e-5); the accurate scheme stays within 2.1e-5 of QuantLib's. (On
    # 3,000 more, seed 77: fast 7.5e-4 at worst.)
    sample = random_options(400, seed=31, whole_days=True)
    reference = np.array(
        [
            _quantlib_accurate(
                sample["spot"][i],
                sample["strike"][i],
                int(sample["days"][i]),
                sample["rate"][i],
                sample["div_yield"][i],
                sample["vol"][i],
                bool(sample["is_call"][i]),
            )
            for i in range(400)
        ]
    )
    args = [sample[k] for k in ARGS]
    fast = american_price(*args, method="fast")
    accurate = american_price(*args, method="accurate")
    assert np.max(np.abs(fast - reference)) <= 1e-3
    assert np.max(np.abs(accurate - reference)) <= 5e-5


def test_low_vol_against_the_carry():
    # σ² ≪ |r - q|, where the smooth-pasting fixed point (FP-B) diverges and the engine
    # switches to Kim's equation (FP-A): at-the-money puts, σ = 1-4%, against QuantLib's
    # high-precision scheme. Worst seen 1.5e-3 (σ = 1%, T = 1.7 y); 2e-4 from σ = 2%.
    for vol, tolerance in ((0.01, 2e-3), (0.02, 1e-3), (0.04, 1e-3)):
        for days, rate, q in ((180, 0.05, 0.0), (620, 0.03, 0.0044), (620, 0.04, 0.01)):
            opt = option(100.0, days, False, american=True)
            opt.setPricingEngine(
                ql.QdFpAmericanEngine(
                    process(100.0, rate, q, vol), ql.QdFpAmericanEngine.highPrecisionScheme()
                )
            )
            ours = american_price(100.0, 100.0, days / 365.0, rate, q, vol, False, method="fast")
            assert ours == pytest.approx(opt.NPV(), abs=tolerance)


def test_bounds_and_no_early_exercise_cases():
    sample = random_options(2000, seed=32)
    s, k, t = sample["spot"], sample["strike"], sample["years"]
    r, q, v = sample["rate"], sample["div_yield"], sample["vol"]
    for is_call in (True, False):
        american = american_price(s, k, t, r, q, v, is_call, method="fast")
        european = bsm_price(s, k, t, r, q, v, is_call)
        intrinsic = np.maximum((s - k) if is_call else (k - s), 0.0)
        assert (american >= european - 1e-9).all()
        assert (american >= intrinsic).all()
        assert (american <= (s if is_call else k)).all()
    # Calls without dividends and puts at zero rate are never exercised early.
    np.testing.assert_allclose(
        american_price(s, k, t, r, 0.0, v, True, method="fast"), bsm_price(s, k, t, r, 0.0, v, True)
    )
    np.testing.assert_allclose(
        american_price(s, k, t, 0.0, q, v, False, method="fast"),
        bsm_price(s, k, t, 0.0, q, v, False),
    )


def test_limits_and_bad_rows():
    strikes = np.array([90.0, 100.0, 110.0])
    np.testing.assert_array_equal(
        american_price(100.0, strikes, 0.0, 0.05, 0.0, 0.3, False, method="fast"), [0.0, 0.0, 10.0]
    )
    frozen = american_price(100.0, strikes, 1.0, 0.05, 0.0, 0.0, False, method="fast")
    np.testing.assert_allclose(frozen, [0.0, 0.0, 10.0])
    bad = american_price(
        np.array([100.0, np.nan, 0.0]), 100.0, 1.0, 0.05, 0.0, 0.3, False, method="fast"
    )
    assert np.isfinite(bad[0])
    assert np.isnan(bad[1:]).all()
    with pytest.raises(ValueError, match="method"):
        american_price(100.0, 100.0, 1.0, 0.05, 0.0, 0.3, False, method="magic")


def test_greeks_match_black_scholes_without_early_exercise():
    # An American call on a non-dividend stock is European: the engine's finite-difference
    # greeks must reproduce the analytic ones.
    sample = random_options(300, seed=33)
    sample["years"] = np.maximum(sample["years"], 0.05)
    args = [sample[k] for k in ("spot", "strike", "years", "rate")]
    ours = american_greeks(*args, 0.0, sample["vol"], True)
    exact = bsm_greeks(*args, 0.0, sample["vol"], True)
    for name, rtol, atol in [
        ("price", 1e-12, 1e-12), ("delta", 1e-5, 1e-6), ("gamma", 1e-3, 1e-5),
        ("vega", 1e-5, 1e-5), ("theta", 1e-3, 1e-3), ("rho", 5e-3, 5e-3),
        ("vanna", 1e-3, 1e-4), ("charm", 2e-2, 2e-2), ("vomma", 1e-3, 1e-3),
    ]:  # fmt: skip
        np.testing.assert_allclose(getattr(ours, name), getattr(exact, name), rtol=rtol, atol=atol,
                                   err_msg=name)  # fmt: skip


def test_put_greeks_against_a_fine_tree():
    # Delta, gamma and theta of American puts against a 4000-step CRR tree.
    from flashalpha.pricing import crr_tree

    sample = random_options(60, seed=34)
    sample["years"] = np.maximum(sample["years"], 0.1)
    args = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "vol")]
    ours = american_greeks(*args, False)
    tree = crr_tree(*args, False, steps=4000)
    np.testing.assert_allclose(ours.price, tree.price, atol=5e-3)
    np.testing.assert_allclose(ours.delta, tree.delta, atol=2e-3)
    np.testing.assert_allclose(ours.gamma, tree.gamma, atol=2e-3)
    assert np.all(np.abs(ours.theta - tree.theta) <= 0.02 * np.abs(tree.theta) + 0.05)


def test_american_implied_vol_round_trip_and_statuses():
    sample = random_options(3000, seed=35)
    args = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield")]
    price = american_price(*args, sample["vol"], sample["is_call"], method="fast")
    vol, status = american_implied_vol(price, *args, sample["is_call"], True)
    ok = status == ImpliedVolStatus.OK
    # Every solved row reprices exactly; where the price moves with vol (vega >= 0.01 per
    # 1.00 of vol) the vol itself is recovered to 1e-8. Deep in-the-money options whose price
    # is (nearly) their exercise value have no well-defined vol.
    repriced = american_price(*args, vol, sample["is_call"], method="fast")
    intrinsic = np.maximum(np.where(sample["is_call"], 100.0 - sample["strike"],
                                    sample["strike"] - 100.0), 0.0)  # fmt: skip
    informative = ok & (price - intrinsic > 1e-3)
    assert np.all(np.abs(repriced - price)[informative] <= 1e-9 * price[informative] + 1e-12)
    # (within a cent of the exercise value the price is flat in vol up to ~1e-5)
    assert np.all(np.abs(repriced - price)[ok] <= 1e-4)
    vega = american_greeks(*args, sample["vol"], sample["is_call"]).vega
    sensitive = informative & (vega >= 1e-2)
    assert sensitive.sum() > 2500
    assert np.max(np.abs(vol[sensitive] - sample["vol"][sensitive])) <= 1e-8

    spot, strike, years, rate, q = 100.0, 120.0, 0.5, 0.05, 0.0
    good = american_price(spot, strike, years, rate, q, 0.3, False, method="fast")
    prices = np.array([good, 0.0, 19.0, 120.0, good, np.nan])
    times = np.array([years, years, years, years, 0.0, years])
    vols, codes = american_implied_vol(prices, spot, strike, times, rate, q, False, True)
    assert [ImpliedVolStatus(int(c)) for c in codes] == [
        ImpliedVolStatus.OK,
        ImpliedVolStatus.NON_POSITIVE_PRICE,
        ImpliedVolStatus.BELOW_INTRINSIC,
        ImpliedVolStatus.ABOVE_MAXIMUM,
        ImpliedVolStatus.ZERO_TIME,
        ImpliedVolStatus.BAD_INPUT,
    ]
    assert vols[0] == pytest.approx(0.3, abs=1e-9)
    assert np.isnan(vols[1:]).all()
