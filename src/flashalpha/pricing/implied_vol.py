"""Implied volatility of European options, in the manner of Jäckel's "Let's Be Rational".

P. Jäckel, "Let's Be Rational", Wilmott (2015) 40-53. The price is normalized,

    β = time value / (e^(-rT)·√(F·K)),  x = -|ln(F/K)|,

which turns every option into an out-of-the-money call on the normalized Black function
b(x, s) (see `normalized_black`), s = σ√T. Around the inflection point s_c = √(2|x|) of
b(s), and the two points s_l < s_c < s_u where its tangent there meets 0 and b_max = e^(x/2),
the price range splits into four branches. In each, a rational cubic interpolant (Delbourgo &
Gregory, matched to the value, slope and curvature of the exact function at the branch ends)
gives the initial guess, through a transformation that makes it nearly exact in that branch:

- β < b_l: f = (2π|x|/√27)·Φ(-|x|/(√3·s))³, b's asymptotic form for s → 0; objective
  g(s) = 1/ln b(s) - 1/ln β, nearly linear where b underflows exponentially.
- b_l ≤ β ≤ b_u: s(β) itself; objective g(s) = b(s) - β.
- β > b_u: f = Φ(-s/2), b's asymptotic form for s → ∞; objective
  g(s) = ln((b_max - β)/(b_max - b(s))), with b_max - b computed as a sum (no cancellation).

Then Householder steps of order 4 (third-order Householder: Newton with the second and third
derivatives of g, all closed-form in s): two steps reach the maximum attainable precision,
a third runs only when the second still moved s by more than a few ulps.

Per-row outcomes (`ImpliedVolStatus`): a price at the lower bound gives vol 0.0; no time left,
a non-positive price, a price below the lower bound or at/above the upper bound, and bad
inputs give NaN and say so in the status array. Nothing raises for a bad row.

Two paths, the same bits. `implied_vol_scalar` solves one row (price_contracts calls it).
The array API works on blocks of rows phase by phase: prepare every row, b and vega at the
inflection and tangent points of every row, the guesses, then each Householder step of the
rows not yet converged; each phase is a loop over independent rows that LLVM vectorizes
(`implied_vol_batch`). The functions both paths share for b(x, s), ln, the guesses and the
updates are compiled without FMA contraction, so that a vector lane computes what the scalar
code does (tests/pricing/test_implied_vol_batch.py checks it bit for bit).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from flashalpha.pricing._arrays import flat_inputs, shaped
from flashalpha.pricing._jit import kernel
from flashalpha.pricing.implied_vol_batch import WORK_ROWS as BATCH_WORK_ROWS
from flashalpha.pricing.implied_vol_batch import (
    black_and_vega,
    black_and_vega_into,
    exact,
    exact_inline,
    guess_lane,
    guesses_into,
    ln,
    ln_exact,
    ln_into,
)
from flashalpha.pricing.normal import erfcx, norm_cdf, norm_inv
from flashalpha.pricing.normalized_black import (
    normalized_black_and_vega,
    normalized_black_otm_complement,
)
from flashalpha.pricing.rational_cubic import (
    control_for_left_second_derivative,
    rational_cubic,
)
from flashalpha.pricing.status import (
    STATUS_ABOVE_MAXIMUM,
    STATUS_BAD_INPUT,
    STATUS_BELOW_INTRINSIC,
    STATUS_NON_POSITIVE_PRICE,
    STATUS_OK,
    STATUS_ZERO_TIME,
    ImpliedVolStatus,
)

#: Householder steps at most; two suffice for all but extreme inputs (see tests/pricing).
MAX_ITERATIONS = 3
#: A Householder step smaller than this, relative to s, leaves an error of order its 4th power.
_FINAL_STEP = 1e-7
#: |ln(F/K)| beyond this (F/K beyond e^±700) is not an option we can normalize in doubles.
MAX_LOG_MONEYNESS = 700.0

_SQRT_THREE = math.sqrt(3.0)
_TWO_PI = 2.0 * math.pi
_LOWER_MAP_SCALE = _TWO_PI / math.sqrt(27.0)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi / 2.0)

_LOWER, _MIDDLE, _UPPER = 0, 1, 2


@exact_inline
def _householder_step(newton: float, halley: float, third: float) -> float:
    return newton * (1.0 + 0.5 * halley * newton) / (1.0 + newton * (halley + third * newton / 6.0))


@kernel
def _lower_map(x: float, s: float) -> tuple[float, float, float]:
    """f(s) = (2π|x|/√27)·Φ(z)³, z = -|x|/(√3·s), and df/dβ, d²f/dβ² along b(x, s)."""
    ax = abs(x)
    z = -ax / (_SQRT_THREE * s)
    y = z * z
    s2 = s * s
    cdf = norm_cdf(z)
    mills = _SQRT_PI_OVER_TWO * erfcx(-z / math.sqrt(2.0))  # Φ(z)/φ(z)
    f = _LOWER_MAP_SCALE * ax * cdf * cdf * cdf
    fp = _TWO_PI * y * cdf * cdf * math.exp(y + 0.125 * s2)
    fpp = (
        (math.pi / 6.0)
        * y
        / (s2 * s)
        * cdf
        * (8.0 * _SQRT_THREE * s * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * mills)
        * math.exp(2.0 * y + 0.25 * s2)
    )
    return f, fp, fpp


@kernel
def _inverse_lower_map(x: float, f: float) -> float:
    return abs(x / (_SQRT_THREE * norm_inv((f / (_LOWER_MAP_SCALE * abs(x))) ** (1.0 / 3.0))))


@kernel
def _upper_map(x: float, s: float) -> tuple[float, float, float]:
    """f(s) = Φ(-s/2) and df/dβ, d²f/dβ² along b(x, s)."""
    w = (x / s) ** 2
    f = norm_cdf(-0.5 * s)
    fp = -0.5 * math.exp(0.5 * w)
    fpp = _SQRT_PI_OVER_TWO * math.exp(w + 0.125 * s * s) * w / s
    return f, fp, fpp


@kernel
def _initial_guess(beta: float, gap: float, x: float) -> tuple[float, int, float, float]:
    """(s, branch, s_left, s_right): the rational guess for b(x, s) = beta, the branch (which
    objective the Householder steps use) and the bracket the guess established."""
    b_max = math.exp(0.5 * x)
    s_c = math.sqrt(-2.0 * x)
    b_c, v_c = black_and_vega(x, b_max, s_c)
    s_side = _tangent_point(beta, b_max, s_c, b_c, v_c)
    b_side, v_side = black_and_vega(x, b_max, s_side)
    return _guess_from_points(beta, gap, x, b_max, s_c, b_c, v_c, s_side, b_side, v_side)


@kernel
def _tangent_point(beta: float, b_max: float, s_c: float, b_c: float, v_c: float) -> float:
    """s_l (beta < b_c) or s_u: where the tangent at the inflection point meets 0 or b_max."""
    if beta < b_c:
        return s_c - b_c / v_c
    return s_c + (b_max - b_c) / v_c


@exact
def _guess_from_points(
    beta: float,
    gap: float,
    x: float,
    b_max: float,
    s_c: float,
    b_c: float,
    v_c: float,
    s_side: float,
    b_side: float,
    v_side: float,
) -> tuple[float, int, float, float]:
    """`_initial_guess` given b and vega at s_c and at the tangent point `s_side`: the lower
    and middle branches as `implied_vol_batch.guess_lane` (the block path's, the same bits),
    the upper branch here."""
    if beta < b_c or beta <= b_side:
        return guess_lane(beta, x, s_c, b_c, v_c, s_side, b_side, v_side)
    # The guess needs no more than ~1e-3 relative accuracy: b_max - b is subtracted here.
    s_u, b_u = s_side, b_side
    gap_u = b_max - b_u
    f_u, fp_u, fpp_u = _upper_map(x, s_u)
    r = control_for_left_second_derivative(gap_u, f_u, 0.0, fp_u, -0.5, fpp_u)
    one_minus_t = gap / gap_u
    t = 1.0 - one_minus_t
    f = rational_cubic(t, one_minus_t, gap_u, f_u, 0.0, fp_u, -0.5, r)
    if not f > 0.0:
        f = (f_u * one_minus_t + 0.5 * gap_u * t) * one_minus_t
    s = -2.0 * norm_inv(f)
    if not (s > 0.0 and s < math.inf):
        s = s_c if s_c > 0.0 else 1.0
    return s, _UPPER, s_u, math.inf


@exact_inline
def _black_ratios(x: float, s: float) -> tuple[float, float]:
    """b''/b' and b'''/b' at s."""
    h = x / s
    b_halley = h * h / s - 0.25 * s
    h_over_s = h / s
    b_third = b_halley * b_halley - 3.0 * (h_over_s * h_over_s) - 0.25
    return b_halley, b_third


@exact
def _householder_update(
    x: float,
    b_max: float,
    s: float,
    branch: int,
    beta: float,
    log_beta: float,
    gap: float,
    log_gap: float,
    s_left: float,
    s_right: float,
) -> tuple[float, float, float, float]:
    """One safeguarded Householder step of the branch's objective: (new s, the step taken,
    s_left, s_right narrowed by the sign of b(s) - beta)."""
    if branch != _UPPER:
        b, vega = black_and_vega(x, b_max, s)
        return _update_given_value(x, s, branch, beta, log_beta, b, vega, s_left, s_right)
    b_halley, b_third = _black_ratios(x, s)
    step = math.nan
    complement = normalized_black_otm_complement(x, s)
    vega = normalized_black_and_vega(x, s)[1]
    if complement < gap:  # b(s) > beta
        s_right = min(s_right, s)
    elif complement > gap:
        s_left = max(s_left, s)
    if complement > 0.0 and vega > 0.0:
        g = log_gap - math.log(complement)
        gp = vega / complement
        halley = b_halley + gp
        third = b_third + gp * (2.0 * gp + 3.0 * b_halley)
        step = _householder_step(-g / gp, halley, third)
    return _safeguarded(s, step, s_left, s_right)


@exact_inline
def _update_given_value(
    x: float,
    s: float,
    branch: int,
    beta: float,
    log_beta: float,
    b: float,
    vega: float,
    s_left: float,
    s_right: float,
) -> tuple[float, float, float, float]:
    """`_householder_update` of the lower and middle branches given b(x, s) and its vega;
    branch-free (both steps, one selected), so that a loop over rows vectorizes."""
    b_halley, b_third = _black_ratios(x, s)
    s_right = min(s_right, s) if b > beta else s_right
    s_left = max(s_left, s) if b < beta else s_left
    middle = _householder_step((beta - b) / vega, b_halley, b_third)
    log_b = ln(b)
    ratio = vega / b
    newton = (log_beta - log_b) * log_b / log_beta / ratio
    halley = b_halley - ratio * (1.0 + 2.0 / log_b)
    third = (
        b_third
        + 2.0 * ratio * ratio * (1.0 + 3.0 / log_b * (1.0 + 1.0 / log_b))
        - 3.0 * b_halley * ratio * (1.0 + 2.0 / log_b)
    )
    lower = branch == _LOWER
    step = _householder_step(newton, halley, third) if lower else middle
    usable = vega > 0.0 and (b > 0.0 or not lower)
    return _safeguarded(s, step if usable else math.nan, s_left, s_right)


@exact_inline
def _safeguarded(
    s: float, step: float, s_left: float, s_right: float
) -> tuple[float, float, float, float]:
    # Outside the bracket (or no usable derivative): bisect it, geometrically when it is
    # unbounded above.
    inside = math.isfinite(step) and s_left <= s + step <= s_right
    bisection = 0.5 * (s_left + s_right) - s if s_right < math.inf else s
    step = max(step if inside else bisection, -0.5 * s)
    return s + step, step, s_left, s_right


@exact_inline
def _converged(s: float, step: float) -> bool:
    # The steps converge with order 4: after a step of relative size δ the error left is of
    # order δ⁴, so a step below 1e-7 (or one at round-off level) ends the iteration.
    return abs(step) <= _FINAL_STEP * s


@kernel
def normalized_implied_deviation(beta: float, gap: float, x: float) -> tuple[float, int]:
    """s with b(x, s) = beta for an out-of-the-money call (x ≤ 0, 0 < beta < e^(x/2)).

    `gap` is e^(x/2) - beta, passed in because the caller computes it from prices in dollars
    more accurately than the subtraction here could. Returns (s, Householder steps taken).
    """
    s, branch, s_left, s_right = _initial_guess(beta, gap, x)
    b_max = math.exp(0.5 * x)
    log_beta = ln_exact(beta)
    log_gap = math.log(gap)
    iterations = 0
    while iterations < MAX_ITERATIONS:
        iterations += 1
        s, step, s_left, s_right = _householder_update(
            x, b_max, s, branch, beta, log_beta, gap, log_gap, s_left, s_right
        )
        if _converged(s, step):
            break
    return s, iterations


@kernel
def _normalized_option(
    price: float,
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    is_call: bool,
) -> tuple[int, bool, float, float, float]:
    """(status, solve, x, beta, gap): an option as an out-of-the-money call on b(x, s).

    `solve` is False where no iteration is needed: the status is final, and the vol NaN (or
    0.0 for a price at the lower bound, status OK).
    """
    if not (
        math.isfinite(price)
        and 0.0 < spot < math.inf
        and 0.0 < strike < math.inf
        and 0.0 <= years < math.inf
        and math.isfinite(rate)
        and math.isfinite(div_yield)
    ):
        return STATUS_BAD_INPUT, False, 0.0, 0.0, 0.0
    if years == 0.0:
        return STATUS_ZERO_TIME, False, 0.0, 0.0, 0.0
    if price <= 0.0:
        return STATUS_NON_POSITIVE_PRICE, False, 0.0, 0.0, 0.0
    spot_discounted = spot * math.exp(-div_yield * years)
    strike_discounted = strike * math.exp(-rate * years)
    x = math.log(spot_discounted / strike_discounted)  # ln(F/K)
    if not abs(x) <= MAX_LOG_MONEYNESS:
        return STATUS_BAD_INPUT, False, 0.0, 0.0, 0.0
    if is_call:
        upper = spot_discounted
        intrinsic = max(spot_discounted - strike_discounted, 0.0)
    else:
        upper = strike_discounted
        intrinsic = max(strike_discounted - spot_discounted, 0.0)
    if price >= upper:
        return STATUS_ABOVE_MAXIMUM, False, 0.0, 0.0, 0.0
    time_value = price - intrinsic
    if time_value < 0.0:
        return STATUS_BELOW_INTRINSIC, False, 0.0, 0.0, 0.0
    if time_value == 0.0:
        return STATUS_OK, False, 0.0, 0.0, 0.0
    norm = math.sqrt(spot_discounted) * math.sqrt(strike_discounted)
    return STATUS_OK, True, -abs(x), time_value / norm, (upper - price) / norm


@kernel
def implied_vol_scalar(
    price: float,
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    is_call: bool,
) -> tuple[float, int, int]:
    """(vol, ImpliedVolStatus, iterations) of one European option; vol is NaN unless OK."""
    code, solve, x, beta, gap = _normalized_option(
        price, spot, strike, years, rate, div_yield, is_call
    )
    if not solve:
        return (0.0 if code == STATUS_OK else math.nan), code, 0
    s, iterations = normalized_implied_deviation(beta, gap, x)
    return s / math.sqrt(years), STATUS_OK, iterations


#: Rows per block of the array path (its work space, ~22 rows of doubles, stays in L2).
BLOCK = 1024
_STATE_ROWS = 14


@kernel
def _implied_vol_block(start, m, price, spot, strike, years, rate, div_yield, is_call, vol,
                       status, state, work, rows, branches):  # fmt: skip
    """implied_vol_scalar for rows start..start+m-1 (the same bits), phase by phase over the
    block: prepare all rows, then the rational guess of all (b and vega at the inflection and
    tangent points, vectorized by `implied_vol_batch`), then Householder steps, each over the
    rows not yet converged. The upper branch (prices near the maximum) goes through the
    scalar solver."""
    x_, beta_, gap_, log_beta_, s_, left_, right_ = (
        state[0], state[1], state[2], state[3], state[4], state[5], state[6]
    )  # fmt: skip
    b_max_, s_c_, b_c_, v_c_, s_side_, b_side_, v_side_ = (
        state[7], state[8], state[9], state[10], state[11], state[12], state[13]
    )  # fmt: skip
    spare_rows = rows[m:]  # `rows` holds 2·m: indices of the rows still solving, and work space
    k = 0
    for i in range(m):
        j = start + i
        code, solve, x, beta, gap = _normalized_option(
            price[j], spot[j], strike[j], years[j], rate[j], div_yield[j], is_call[j]
        )
        status[j] = code
        vol[j] = 0.0 if code == STATUS_OK else math.nan
        rows[k] = j
        x_[k] = x
        beta_[k] = beta
        gap_[k] = gap
        k += 1 if solve else 0
    for a in range(k):
        b_max_[a] = math.exp(0.5 * x_[a])
        s_c_[a] = math.sqrt(-2.0 * x_[a])
    black_and_vega_into(x_, b_max_, s_c_, b_c_, v_c_, work, spare_rows, k)
    for a in range(k):
        s_side_[a] = _tangent_point(beta_[a], b_max_[a], s_c_[a], b_c_[a], v_c_[a])
    black_and_vega_into(x_, b_max_, s_side_, b_side_, v_side_, work, spare_rows, k)
    guesses_into(beta_, x_, s_c_, b_c_, v_c_, s_side_, b_side_, v_side_, s_, branches, left_,
                 right_, work, spare_rows, k)  # fmt: skip
    kept = 0
    for a in range(k):
        j = rows[a]
        x, beta = x_[a], beta_[a]
        if branches[a] == _UPPER:
            vol[j] = normalized_implied_deviation(beta, gap_[a], x)[0] / math.sqrt(years[j])
            continue
        rows[kept] = j
        x_[kept] = x
        b_max_[kept] = b_max_[a]
        beta_[kept] = beta
        branches[kept] = branches[a]
        s_[kept] = s_[a]
        left_[kept] = left_[a]
        right_[kept] = right_[a]
        kept += 1
    k = kept
    ln_into(beta_, log_beta_, k)
    b_, v_, steps_ = b_c_, v_c_, b_side_
    for iteration in range(MAX_ITERATIONS):
        black_and_vega_into(x_, b_max_, s_, b_, v_, work, spare_rows, k)
        _updates_into(x_, s_, branches, beta_, log_beta_, b_, v_, left_, right_, steps_, k)
        last = iteration == MAX_ITERATIONS - 1
        kept = 0
        for a in range(k):
            j = rows[a]
            if last or _converged(s_[a], steps_[a]):
                vol[j] = s_[a] / math.sqrt(years[j])
                continue
            rows[kept] = j
            x_[kept] = x_[a]
            b_max_[kept] = b_max_[a]
            beta_[kept] = beta_[a]
            log_beta_[kept] = log_beta_[a]
            branches[kept] = branches[a]
            s_[kept] = s_[a]
            left_[kept] = left_[a]
            right_[kept] = right_[a]
            kept += 1
        k = kept


@exact
def _updates_into(x_, s_, branches, beta_, log_beta_, b_, v_, left_, right_, steps_, k):
    """`_update_given_value` of rows :k in place (s_, left_, right_; the step into steps_),
    vectorized."""
    for a in range(k):
        s, step, s_left, s_right = _update_given_value(
            x_[a], s_[a], branches[a], beta_[a], log_beta_[a], b_[a], v_[a], left_[a], right_[a]
        )
        s_[a] = s
        steps_[a] = step
        left_[a] = s_left
        right_[a] = s_right


def _implied_vol_loop(price, spot, strike, years, rate, div_yield, is_call, vol, status):
    n = price.shape[0]
    size = min(BLOCK, n)
    for c in prange((n + BLOCK - 1) // BLOCK):
        state = np.empty((_STATE_ROWS, size))
        work = np.empty((BATCH_WORK_ROWS, size))
        rows = np.empty(2 * size, dtype=np.int64)
        branches = np.empty(size, dtype=np.int64)
        start = c * BLOCK
        _implied_vol_block(start, min(BLOCK, n - start), price, spot, strike, years, rate,
                           div_yield, is_call, vol, status, state, work, rows,
                           branches)  # fmt: skip


_implied_vol_serial = kernel(_implied_vol_loop)
_implied_vol_parallel = kernel(_implied_vol_loop, parallel=True)


def _iterations_loop(price, spot, strike, years, rate, div_yield, is_call, out):
    for i in range(price.shape[0]):
        out[i] = implied_vol_scalar(
            price[i], spot[i], strike[i], years[i], rate[i], div_yield[i], is_call[i]
        )[2]


_iterations = kernel(_iterations_loop)


def implied_vol(
    price,
    spot,
    strike,
    years,
    rate,
    div_yield,
    is_call,
    return_status: bool = False,
    *,
    parallel: bool = False,
):
    """Black-Scholes-Merton implied volatility (decimal per √year) of European option prices.

    price, spot, strike: dollars; years: ACT/365; rate, div_yield: continuously compounded
    decimals; is_call: bool. Broadcasts like numpy. Rows without a volatility are NaN; with
    `return_status=True` the result is `(vol, status)`, status a uint8 array of
    `ImpliedVolStatus` codes. `parallel=True` spreads the batch over numba's threads.
    """
    shape, (p, s, k, t, r, q), (c,) = flat_inputs(
        (price, spot, strike, years, rate, div_yield), (is_call,)
    )
    vol = np.empty(p.shape[0])
    status = np.empty(p.shape[0], dtype=np.uint8)
    (_implied_vol_parallel if parallel else _implied_vol_serial)(p, s, k, t, r, q, c, vol, status)
    if not return_status:
        return shaped(vol, shape)
    if shape == ():
        return float(vol[0]), ImpliedVolStatus(int(status[0]))
    return vol.reshape(shape), status.reshape(shape)


def implied_vol_iterations(price, spot, strike, years, rate, div_yield, is_call) -> np.ndarray:
    """Householder steps the solver took per row (0 where it did not run); for tests."""
    shape, (p, s, k, t, r, q), (c,) = flat_inputs(
        (price, spot, strike, years, rate, div_yield), (is_call,)
    )
    out = np.empty(p.shape[0], dtype=np.int64)
    _iterations(p, s, k, t, r, q, c, out)
    return out.reshape(shape)


class QuoteVols(NamedTuple):
    """Implied vols of a bid/ask quote and its mid, with a status per side."""

    bid: np.ndarray
    mid: np.ndarray
    ask: np.ndarray
    status_bid: np.ndarray
    status_mid: np.ndarray
    status_ask: np.ndarray


def implied_vol_quotes(
    bid, ask, spot, strike, years, rate, div_yield, is_call, *, parallel: bool = False
) -> QuoteVols:
    """Implied vols of bid, mid = (bid + ask)/2 and ask, each with its `ImpliedVolStatus`.

    A missing side (NaN) gives NaN and BAD_INPUT on that side and on the mid.
    """
    bid_array = np.asarray(bid, dtype=np.float64)
    ask_array = np.asarray(ask, dtype=np.float64)
    mid = 0.5 * (bid_array + ask_array)
    sides = [
        implied_vol(side, spot, strike, years, rate, div_yield, is_call, True, parallel=parallel)
        for side in (bid_array, mid, ask_array)
    ]
    return QuoteVols(sides[0][0], sides[1][0], sides[2][0], sides[0][1], sides[1][1], sides[2][1])
