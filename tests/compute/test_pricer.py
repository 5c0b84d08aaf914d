"""What a worker computes: the fused kernels over a batch, columns mapped by name."""

from __future__ import annotations

import numpy as np
import pytest

from flashalpha import pricing
from flashalpha.compute.pricer import price_batch, warm_up
from flashalpha.compute.protocol import RESULT_COLUMNS
from flashalpha.state.layout import ExerciseStyle, PricingStatus


def batch(style: ExerciseStyle, n: int = 2000, seed: int = 5):
    rng = np.random.default_rng(seed)
    spot = np.full(n, 100.0)
    strike = rng.uniform(70, 130, n)
    years = rng.uniform(0.05, 2.0, n)
    rate, div_yield = np.full(n, 0.04), np.full(n, 0.02)
    right = rng.integers(0, 2, n).astype(np.uint8)
    vols = rng.uniform(0.15, 0.6, n)
    args = (spot, strike, years, rate, div_yield, vols, right == 1)
    if style == ExerciseStyle.AMERICAN:
        price = pricing.american_price(*args, method="fast")
    else:
        price = pricing.bsm_price(*args)
    inputs = {
        "spot": spot,
        "strike": strike,
        "years": years,
        "rate": rate,
        "div_yield": div_yield,
        "bid": price - 0.01,
        "ask": price + 0.01,
        "right": right,
        "style": np.full(n, style, np.uint8),
    }
    return inputs, vols, price


@pytest.mark.parametrize("style", [ExerciseStyle.EUROPEAN, ExerciseStyle.AMERICAN])
def test_mid_vols_come_back_and_greeks_are_taken_there(style):
    inputs, vols, price = batch(style)
    out = price_batch(inputs)
    assert [(k, v.dtype.str if v.dtype.itemsize > 1 else "u1") for k, v in out.items()] == [
        (name, dtype) for name, dtype in RESULT_COLUMNS
    ]
    ok = out["pricing_status"] == PricingStatus.OK
    assert ok.mean() > 0.95
    # Quotable rows: a bid above 0 (else the mid is not the model price) and a time value
    # that a cent-wide quote can resolve (deep in the money, the mid is the intrinsic value).
    vega = pricing.bsm_greeks(
        inputs["spot"], inputs["strike"], inputs["years"], 0.04, 0.02, vols, inputs["right"] == 1
    ).vega
    ok &= (price > 0.05) & (vega > 0.5)
    # The kernels' accuracy is the pricing tests' business; here: the right fields, by name.
    assert (np.abs(out["iv"][ok] - vols[ok]) < 1e-6).mean() > 0.97
    assert (np.abs(out["theo"][ok] - price[ok]) < 1e-6).mean() > 0.97
    direct = pricing.price_contracts(
        inputs["spot"], inputs["strike"], inputs["years"], inputs["rate"], inputs["div_yield"],
        inputs["right"] == 1, inputs["style"] == ExerciseStyle.AMERICAN, inputs["bid"], inputs["ask"],
    )  # fmt: skip
    for name, field in (("iv_bid", "iv_bid"), ("iv", "iv_mid"), ("iv_ask", "iv_ask"),
                        ("delta", "delta"), ("vomma", "vomma"), ("theo", "theo"),
                        ("pricing_status", "status")):  # fmt: skip
        np.testing.assert_array_equal(out[name], getattr(direct, field))
    ok &= np.abs(out["iv"] - vols) < 1e-6
    calls = inputs["right"] == 1
    assert (out["delta"][ok & calls] > 0).all() and (out["delta"][ok & ~calls] < 0).all()
    assert (out["gamma"][ok] >= 0).all() and (out["vega"][ok] >= 0).all()


def test_rows_without_a_vol_carry_their_status_and_nan():
    inputs, _, _ = batch(ExerciseStyle.EUROPEAN, n=4)
    inputs["bid"][0], inputs["ask"][0] = np.nan, np.nan  # no quote
    inputs["years"][1] = 0.0  # expired
    inputs["spot"][2] = np.nan  # no spot yet
    inputs["ask"][3] = 1e6  # above the no-arbitrage maximum
    out = price_batch(inputs)
    assert out["pricing_status"].tolist() == [
        PricingStatus.NO_QUOTE,
        PricingStatus.EXPIRED,
        PricingStatus.BAD_INPUT,
        PricingStatus.ABOVE_MAXIMUM,
    ]
    assert np.isnan(out["iv"]).all()


def test_warm_up_runs_every_kernel():
    warm_up()
