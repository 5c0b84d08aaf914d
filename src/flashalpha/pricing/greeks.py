"""European price and greeks under Black-Scholes-Merton, all from one pass.

Notation: S spot, K strike, T years, r rate, q dividend yield, b = r - q (cost of carry),
σ vol, v = σ√T, θ = +1 for calls and -1 for puts, Φ/φ the normal cdf/pdf, d1, d2 as in
`black_scholes`. Time derivatives are with respect to calendar time t (T = expiry - t), so
theta, charm, veta and color are "what happens as one year passes": theta = -∂V/∂T.

Units (per option, not per contract; multiply by the multiplier for a contract):

=========== ============================ ===========================================
greek        definition                   unit
=========== ============================ ===========================================
price        V                            dollars
delta        ∂V/∂S                        dollars per dollar of spot
gamma        ∂²V/∂S²                      per dollar of spot
vega         ∂V/∂σ                        dollars per 1.00 of vol (÷100 per vol point)
theta        ∂V/∂t = -∂V/∂T               dollars per year (see `theta_per_day`)
rho          ∂V/∂r                        dollars per 1.00 of rate
epsilon      ∂V/∂q (dividend rho)         dollars per 1.00 of dividend yield
vanna        ∂²V/∂S∂σ = ∂delta/∂σ         delta per 1.00 of vol
charm        ∂delta/∂t                    delta per year
vomma        ∂²V/∂σ² = ∂vega/∂σ           vega per 1.00 of vol
veta         ∂vega/∂t                     vega per year
speed        ∂³V/∂S³ = ∂gamma/∂S          gamma per dollar of spot
zomma        ∂gamma/∂σ                    gamma per 1.00 of vol
color        ∂gamma/∂t                    gamma per year
ultima       ∂³V/∂σ³ = ∂vomma/∂σ          vomma per 1.00 of vol
dual_delta   ∂V/∂K                        dollars per dollar of strike
dual_gamma   ∂²V/∂K²                      per dollar of strike
elasticity   lambda = delta·S/V           dimensionless (% change of V per % of S)
=========== ============================ ===========================================

Zero time or zero vol (v = 0) gives the greeks of the limit, the discounted intrinsic value
max(θ·(S·e^(-qT) - K·e^(-rT)), 0): delta, rho, epsilon, theta and dual delta of the exercised
or abandoned forward (half of it exactly at the money), every second-order greek 0, and
elasticity 0 where the option is worthless. Bad inputs give NaN in that row only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from flashalpha.pricing._arrays import flat_inputs, shaped
from flashalpha.pricing._jit import kernel
from flashalpha.pricing.normal import INV_SQRT_TWO, INV_SQRT_TWO_PI, erfcx, norm_pdf
from flashalpha.pricing.vector_math import cdf_given_gaussian_into, exp_into, log_into

GREEK_NAMES = (
    "price",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
    "epsilon",
    "vanna",
    "charm",
    "vomma",
    "veta",
    "speed",
    "zomma",
    "color",
    "ultima",
    "dual_delta",
    "dual_gamma",
    "elasticity",
)
N_GREEKS = len(GREEK_NAMES)
DAYS_PER_YEAR = 365.0


class Greeks(NamedTuple):
    """Price and greeks as arrays of one shape; units in the module docstring."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray
    epsilon: np.ndarray
    vanna: np.ndarray
    charm: np.ndarray
    vomma: np.ndarray
    veta: np.ndarray
    speed: np.ndarray
    zomma: np.ndarray
    color: np.ndarray
    ultima: np.ndarray
    dual_delta: np.ndarray
    dual_gamma: np.ndarray
    elasticity: np.ndarray

    @property
    def theta_per_day(self) -> np.ndarray:
        """Theta in dollars per calendar day (theta / 365)."""
        return theta_per_day(self.theta)


def theta_per_day(theta_per_year, days_per_year: float = DAYS_PER_YEAR):
    """Convert a theta (or charm, veta, color) per year into one per day."""
    return np.asarray(theta_per_year) / days_per_year


@kernel
def _cdf_given_pdf(z: float, pdf: float) -> float:
    """Φ(z) re-using φ(z): φ(z)·√(π/2)·erfcx(|z|/√2) is the smaller tail, a rational function
    of |z| (no exponential, no libm erfc): Φ(z) for z ≤ 0, 1 - Φ(-z) above."""
    tail = pdf * _SQRT_HALF_PI * erfcx(abs(z) * INV_SQRT_TWO)
    return tail if z <= 0.0 else 1.0 - tail


_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)


@kernel
def bsm_greeks_into(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
    out: np.ndarray,
    col: int,
) -> None:
    """Write price and the greeks of one option into out[:, col] (order of GREEK_NAMES)."""
    if not (
        spot >= 0.0
        and strike >= 0.0
        and years >= 0.0
        and vol >= 0.0
        and math.isfinite(rate)
        and math.isfinite(div_yield)
        and spot < math.inf
        and strike < math.inf
        and years < math.inf
        and vol < math.inf
    ):
        for g in range(N_GREEKS):
            out[g, col] = math.nan
        return
    sign = 1.0 if is_call else -1.0
    dq = math.exp(-div_yield * years)
    dr = math.exp(-rate * years)
    sq = spot * dq
    kr = strike * dr
    sqrt_t = math.sqrt(years)
    deviation = vol * sqrt_t
    if deviation == 0.0 or spot == 0.0 or strike == 0.0:
        moneyness = sign * (sq - kr)
        exercised = 1.0 if moneyness > 0.0 else (0.5 if moneyness == 0.0 else 0.0)
        price = max(moneyness, 0.0)
        for g in range(N_GREEKS):
            out[g, col] = 0.0
        out[0, col] = price
        out[1, col] = sign * dq * exercised
        out[4, col] = sign * (div_yield * sq - rate * kr) * exercised
        out[5, col] = sign * years * kr * exercised
        out[6, col] = -sign * years * sq * exercised
        out[15, col] = -sign * dr * exercised
        out[17, col] = out[1, col] * spot / price if price > 0.0 else 0.0
        return
    d1 = math.log(sq / kr) / deviation + 0.5 * deviation
    d2 = d1 - deviation
    pdf1 = norm_pdf(d1)
    pdf2 = pdf1 * sq / kr  # φ(d2) = φ(d1)·S·e^(-qT)/(K·e^(-rT))
    cdf1 = _cdf_given_pdf(sign * d1, pdf1)
    cdf2 = _cdf_given_pdf(sign * d2, pdf2)
    carry = rate - div_yield
    price = sign * (sq * cdf1 - kr * cdf2)
    delta = sign * dq * cdf1
    gamma = dq * pdf1 / (spot * deviation)
    vega = sq * pdf1 * sqrt_t
    d1_dt = carry / deviation - 0.5 * d2 / years  # ∂d1/∂T
    out[0, col] = price
    out[1, col] = delta
    out[2, col] = gamma
    out[3, col] = vega
    out[4, col] = -0.5 * vega * vol / years + sign * (div_yield * sq * cdf1 - rate * kr * cdf2)
    out[5, col] = sign * years * kr * cdf2
    out[6, col] = -sign * years * sq * cdf1
    out[7, col] = -dq * pdf1 * d2 / vol
    out[8, col] = sign * div_yield * dq * cdf1 - dq * pdf1 * d1_dt
    out[9, col] = vega * d1 * d2 / vol
    out[10, col] = vega * (div_yield + d1 * d1_dt - 0.5 / years)
    out[11, col] = -gamma / spot * (1.0 + d1 / deviation)
    out[12, col] = gamma * (d1 * d2 - 1.0) / vol
    out[13, col] = gamma * (div_yield + d1 * d1_dt + 0.5 / years)
    d12 = d1 * d2
    out[14, col] = -vega / (vol * vol) * (d12 * (1.0 - d12) + d1 * d1 + d2 * d2)
    out[15, col] = -sign * dr * cdf2
    out[16, col] = dr * pdf2 / (strike * deviation)
    out[17, col] = delta * spot / price if price > 0.0 else 0.0


#: Options per block of the vectorized loop.
BLOCK = 256


@kernel
def _greeks_block(start, m, spot, strike, years, rate, div_yield, vol, is_call, out, t, bits):
    """bsm_greeks_into for options start..start+m-1, stage by stage over the block so that
    LLVM vectorizes every loop (exp, ln and Φ from `vector_math`). Limits and bad rows
    (flagged in the first pass) go through the scalar bsm_greeks_into afterwards."""
    s_, k_, t_, r_, q_, v_ = t[0], t[1], t[2], t[3], t[4], t[5]
    arg_q, arg_r, dq, dr, ratio, log_ratio = t[6], t[7], t[8], t[9], t[10], t[11]
    x1, x2, g1, g2, c1, c2, special = t[12], t[13], t[14], t[15], t[16], t[17], t[18]
    for i in range(m):
        j = start + i
        spot_j, strike_j, years_j = spot[j], strike[j], years[j]
        rate_j, yield_j, vol_j = rate[j], div_yield[j], vol[j]
        good = (
            spot_j > 0.0
            and strike_j > 0.0
            and years_j > 0.0
            and vol_j > 0.0
            and math.isfinite(rate_j)
            and math.isfinite(yield_j)
            and spot_j < math.inf
            and strike_j < math.inf
            and years_j < math.inf
            and vol_j < math.inf
        )
        special[i] = 0.0 if good else 1.0
        s_[i] = spot_j if good else 1.0
        k_[i] = strike_j if good else 1.0
        t_[i] = years_j if good else 1.0
        r_[i] = rate_j if good else 0.0
        q_[i] = yield_j if good else 0.0
        v_[i] = vol_j if good else 0.2
        arg_q[i] = -q_[i] * t_[i]
        arg_r[i] = -r_[i] * t_[i]
    exp_into(arg_q, dq, bits, m)
    exp_into(arg_r, dr, bits, m)
    for i in range(m):
        ratio[i] = (s_[i] * dq[i]) / (k_[i] * dr[i])
    log_into(ratio, log_ratio, bits, m)
    for i in range(m):
        sign = 1.0 if is_call[start + i] else -1.0
        deviation = v_[i] * math.sqrt(t_[i])
        d1 = log_ratio[i] / deviation + 0.5 * deviation
        x1[i] = sign * d1
        x2[i] = sign * (d1 - deviation)
        arg_q[i] = -0.5 * d1 * d1
    exp_into(arg_q, g1, bits, m)
    for i in range(m):
        g2[i] = g1[i] * ratio[i]  # φ(d2) = φ(d1)·S·e^(-qT)/(K·e^(-rT))
    cdf_given_gaussian_into(x1, g1, c1, m)
    cdf_given_gaussian_into(x2, g2, c2, m)
    for i in range(m):
        j = start + i
        sign = 1.0 if is_call[j] else -1.0
        spot_i, strike_i, years_i = s_[i], k_[i], t_[i]
        rate_i, yield_i, vol_i = r_[i], q_[i], v_[i]
        sq = spot_i * dq[i]
        kr = strike_i * dr[i]
        sqrt_t = math.sqrt(years_i)
        deviation = vol_i * sqrt_t
        d1 = sign * x1[i]
        d2 = d1 - deviation
        pdf1 = INV_SQRT_TWO_PI * g1[i]
        pdf2 = INV_SQRT_TWO_PI * g2[i]
        cdf1 = c1[i]
        cdf2 = c2[i]
        carry = rate_i - yield_i
        price = sign * (sq * cdf1 - kr * cdf2)
        delta = sign * dq[i] * cdf1
        gamma = dq[i] * pdf1 / (spot_i * deviation)
        vega = sq * pdf1 * sqrt_t
        d1_dt = carry / deviation - 0.5 * d2 / years_i
        out[0, j] = price
        out[1, j] = delta
        out[2, j] = gamma
        out[3, j] = vega
        out[4, j] = -0.5 * vega * vol_i / years_i + sign * (
            yield_i * sq * cdf1 - rate_i * kr * cdf2
        )
        out[5, j] = sign * years_i * kr * cdf2
        out[6, j] = -sign * years_i * sq * cdf1
        out[7, j] = -dq[i] * pdf1 * d2 / vol_i
        out[8, j] = sign * yield_i * dq[i] * cdf1 - dq[i] * pdf1 * d1_dt
        out[9, j] = vega * d1 * d2 / vol_i
        out[10, j] = vega * (yield_i + d1 * d1_dt - 0.5 / years_i)
        out[11, j] = -gamma / spot_i * (1.0 + d1 / deviation)
        out[12, j] = gamma * (d1 * d2 - 1.0) / vol_i
        out[13, j] = gamma * (yield_i + d1 * d1_dt + 0.5 / years_i)
        d12 = d1 * d2
        out[14, j] = -vega / (vol_i * vol_i) * (d12 * (1.0 - d12) + d1 * d1 + d2 * d2)
        out[15, j] = -sign * dr[i] * cdf2
        out[16, j] = dr[i] * pdf2 / (strike_i * deviation)
        out[17, j] = delta * spot_i / price if price > 0.0 else 0.0
    for i in range(m):
        if special[i] > 0.0:
            j = start + i
            bsm_greeks_into(spot[j], strike[j], years[j], rate[j], div_yield[j], vol[j],
                            is_call[j], out, j)  # fmt: skip


def _bsm_greeks_loop(spot, strike, years, rate, div_yield, vol, is_call, out):
    n = spot.shape[0]
    for c in prange((n + BLOCK - 1) // BLOCK):
        t = np.empty((19, BLOCK))
        bits = np.empty(BLOCK, dtype=np.int64)
        start = c * BLOCK
        _greeks_block(start, min(BLOCK, n - start), spot, strike, years, rate, div_yield, vol,
                      is_call, out, t, bits)  # fmt: skip


_bsm_greeks_serial = kernel(_bsm_greeks_loop)
_bsm_greeks_parallel = kernel(_bsm_greeks_loop, parallel=True)


def bsm_greeks(
    spot,
    strike,
    years,
    rate,
    div_yield,
    vol,
    is_call,
    *,
    parallel: bool = False,
) -> Greeks:
    """Price and all greeks of European options (Black-Scholes-Merton), as a `Greeks` tuple.

    Inputs and units as `bsm_price` (years ACT/365, rates and vol as decimals); the greeks'
    units are in this module's docstring (vega per 1.00 of vol, theta per year, ...).
    """
    shape, (s, k, t, r, q, v), (c,) = flat_inputs(
        (spot, strike, years, rate, div_yield, vol), (is_call,)
    )
    out = np.empty((N_GREEKS, s.shape[0]))
    (_bsm_greeks_parallel if parallel else _bsm_greeks_serial)(s, k, t, r, q, v, c, out)
    return Greeks(*(shaped(row, shape) for row in out))
