"""Properties every price must have, checked by hypothesis over the whole input range:
increasing in vol, monotone in strike, American >= European, no-arbitrage bounds."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flashalpha.pricing import american_price, bsm_price, implied_vol

spot = st.floats(1.0, 1000.0)
moneyness = st.floats(0.3, 3.0)
years = st.floats(1.0 / 365.0, 3.0)
rate = st.floats(0.0, 0.10)
div_yield = st.floats(0.0, 0.08)
vol = st.floats(0.01, 2.0)
is_call = st.booleans()

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(spot, moneyness, years, rate, div_yield, vol, vol, is_call)
# Found by hypothesis: a put deep in its exercise region, 6.4e-6·S above K - S at the lower
# vol (the premium's quadrature error) and 4.3e-6·S at the higher.
@example(s=1.0, m=2.25, t=0.9375, r=0.099609375, q=0.0, v1=0.5, v2=0.6875, c=False)
def test_price_increases_with_vol(s, m, t, r, q, v1, v2, c):
    low, high = sorted((v1, v2))
    k = s * m
    assert bsm_price(s, k, t, r, q, low, c) <= bsm_price(s, k, t, r, q, high, c) + 1e-12 * s
    # The fast engine is monotone to its own accuracy, 1e-5·S (docs/PRICING.md: within 1e-3 of
    # QuantLib's QdFp accurate scheme at S = 100). In the exercise region its European +
    # premium exceeds K - S by up to a few 1e-6·S, more at low vol; it deliberately does not
    # switch to K - S below the boundary, which would make the price (and the
    # finite-difference greeks) jump there.
    for method, tolerance in (("fast", 1e-5), ("crr", 1e-9)):
        a_low = american_price(s, k, t, r, q, low, c, method=method)
        a_high = american_price(s, k, t, r, q, high, c, method=method)
        assert a_low <= a_high + tolerance * s


@PROPERTY_SETTINGS
@given(spot, moneyness, moneyness, years, rate, div_yield, vol, is_call)
def test_price_monotone_in_strike(s, m1, m2, t, r, q, v, c):
    k_low, k_high = sorted((s * m1, s * m2))
    sign = -1.0 if c else 1.0  # calls fall, puts rise with the strike
    diff = bsm_price(s, k_high, t, r, q, v, c) - bsm_price(s, k_low, t, r, q, v, c)
    assert sign * diff >= -1e-12 * s
    # ...and by no more than the discounted strike difference.
    assert abs(diff) <= (k_high - k_low) * math.exp(-r * t) * (1 + 1e-12) + 1e-12 * s
    diff_am = american_price(s, k_high, t, r, q, v, c, method="fast") - american_price(
        s, k_low, t, r, q, v, c, method="fast"
    )
    assert sign * diff_am >= -1e-5 * s  # the fast engine's accuracy (see above)


@PROPERTY_SETTINGS
@given(spot, moneyness, years, rate, div_yield, vol, is_call)
def test_no_arbitrage_bounds(s, m, t, r, q, v, c):
    k = s * m
    forward_gap = s * math.exp(-q * t) - k * math.exp(-r * t)
    european = bsm_price(s, k, t, r, q, v, c)
    lower = max(forward_gap if c else -forward_gap, 0.0)
    upper = s * math.exp(-q * t) if c else k * math.exp(-r * t)
    assert lower - 1e-12 * s <= european <= upper
    intrinsic = max((s - k) if c else (k - s), 0.0)
    for method in ("fast", "crr"):
        american = american_price(s, k, t, r, q, v, c, method=method)
        assert american >= intrinsic
        assert american <= (s if c else k)
        if method == "fast":  # the tree is its own discretization of the European price
            assert american >= european - 1e-9 * s


@PROPERTY_SETTINGS
@given(spot, moneyness, years, rate, div_yield, vol, is_call)
def test_implied_vol_inverts_wherever_the_price_is_informative(s, m, t, r, q, v, c):
    k = s * m
    price = bsm_price(s, k, t, r, q, v, c)
    solved, status = implied_vol(price, s, k, t, r, q, c, True)
    assert status in (1, 3) or price == 0.0  # OK, or below intrinsic by round-off
    if status == 1:
        # Re-pricing at the solved vol gives the price back to round-off.
        assert abs(bsm_price(s, k, t, r, q, solved, c) - price) <= 4e-15 * max(price, s) + 1e-300
    assert np.isfinite(solved) or status != 1
