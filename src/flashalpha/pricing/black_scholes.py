"""European option prices under Black-Scholes-Merton with a continuous dividend yield.

    call = S·e^(-qT)·Φ(d1) - K·e^(-rT)·Φ(d2),  put = K·e^(-rT)·Φ(-d2) - S·e^(-qT)·Φ(-d1)
    d1 = (ln(S/K) + (r - q + σ²/2)·T) / (σ·√T),  d2 = d1 - σ·√T

The price is computed as the intrinsic value of the forward plus the time value from the
normalized Black function (`normalized_black`), which keeps full relative precision for far
out-of-the-money options and never falls below the intrinsic value by round-off.

Limits are values, not errors: `years == 0` gives the intrinsic value max(±(S - K), 0), and
`vol == 0` the discounted intrinsic value of the forward, max(±(S·e^(-qT) - K·e^(-rT)), 0).
Negative spot, strike, years or vol, and NaN anywhere, give NaN for that row only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from flashalpha.pricing._arrays import flat_inputs, shaped
from flashalpha.pricing._jit import kernel
from flashalpha.pricing.normalized_black import normalized_black_otm


@kernel
def bsm_price_scalar(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
) -> float:
    """One European option's price in dollars (see the module docstring)."""
    if not (
        0.0 <= spot < math.inf
        and 0.0 <= strike < math.inf
        and 0.0 <= years < math.inf
        and 0.0 <= vol < math.inf
        and math.isfinite(rate)
        and math.isfinite(div_yield)
    ):
        return math.nan  # also catches NaN
    spot_discounted = spot * math.exp(-div_yield * years)
    strike_discounted = strike * math.exp(-rate * years)
    deviation = vol * math.sqrt(years)
    if is_call:
        intrinsic = max(spot_discounted - strike_discounted, 0.0)
    else:
        intrinsic = max(strike_discounted - spot_discounted, 0.0)
    if deviation == 0.0 or spot == 0.0 or strike == 0.0:
        return intrinsic
    # Intrinsic value plus the time value, which is the price of the out-of-the-money option
    # of the pair: e^(-rT)·√(F·K)·b(-|ln(F/K)|, σ√T).
    x = -abs(math.log(spot_discounted / strike_discounted))
    norm = math.sqrt(spot_discounted) * math.sqrt(strike_discounted)
    return intrinsic + norm * normalized_black_otm(x, deviation)


def _bsm_price_loop(spot, strike, years, rate, div_yield, vol, is_call, out):
    for i in prange(out.shape[0]):
        out[i] = bsm_price_scalar(
            spot[i], strike[i], years[i], rate[i], div_yield[i], vol[i], is_call[i]
        )


_bsm_price_serial = kernel(_bsm_price_loop)
_bsm_price_parallel = kernel(_bsm_price_loop, parallel=True)


def bsm_price(
    spot,
    strike,
    years,
    rate,
    div_yield,
    vol,
    is_call,
    *,
    parallel: bool = False,
):
    """European option prices in dollars, broadcast over numpy arrays.

    spot, strike: dollars. years: time to expiry in years (ACT/365). rate, div_yield:
    continuously compounded, decimal per year (0.05 = 5%). vol: decimal per √year (0.20 = 20%).
    is_call: True for calls, False for puts. `parallel=True` spreads the batch over numba's
    threads. Returns an array of the broadcast shape (a float for scalar inputs).
    """
    shape, (s, k, t, r, q, v), (c,) = flat_inputs(
        (spot, strike, years, rate, div_yield, vol), (is_call,)
    )
    out = np.empty(s.shape[0])
    (_bsm_price_parallel if parallel else _bsm_price_serial)(s, k, t, r, q, v, c, out)
    return shaped(out, shape)
