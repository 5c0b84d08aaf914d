"""Cox-Ross-Rubinstein binomial trees for American (and European) options.

The textbook tree (Cox, Ross & Rubinstein 1979; Hull, "Options, Futures, and Other
Derivatives", ch. 13 and 21): n steps of Δt = T/n, u = e^(σ√Δt), d = 1/u,
p = (e^((r-q)Δt) - d)/(u - d), one-step discount e^(-rΔt). Backward induction compares the
continuation value with immediate exercise at every node. Delta, gamma and theta are read off
the first two time steps as in Hull (delta and gamma from the nodes at Δt and 2Δt, theta from the
middle node at 2Δt against the root, per year).

Discrete cash dividends use the escrowed-dividend model (Hull, ch. 21.3): the tree is built on
S* = S - PV(dividends paid before expiry) with volatility σ, and at a node at time t the stock
price is S* plus the present value at t of the dividends still to come. A continuous dividend
yield applies on top (pass 0 when the dividends are modeled as cash).

Each option is an independent tree; the batch is spread over options (`parallel=True` over
numba threads). The inner loop over the nodes of one time step is branch-free so that LLVM
vectorizes it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from flashalpha.pricing._arrays import flat_inputs, shaped
from flashalpha.pricing._jit import kernel

DEFAULT_STEPS = 200


class TreeResult(NamedTuple):
    """Price (dollars), delta (per $1 of spot), gamma (per $1 per $1), theta (dollars per year)."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    theta: np.ndarray


@kernel
def crr_tree_into(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
    american: bool,
    steps: int,
    dividend_times: np.ndarray,
    dividend_amounts: np.ndarray,
    prices: np.ndarray,
    values: np.ndarray,
    remaining: np.ndarray,
    out: np.ndarray,
    col: int,
) -> None:
    """Price, delta, gamma, theta of one option into out[0:4, col]. `prices` and `values` are
    work arrays of at least steps + 1 doubles, `remaining` of steps + 1."""
    sign = 1.0 if is_call else -1.0
    if not (
        0.0 < spot < math.inf
        and 0.0 < strike < math.inf
        and 0.0 <= years < math.inf
        and 0.0 <= vol < math.inf
        and math.isfinite(rate)
        and math.isfinite(div_yield)
        and steps >= 2
    ):
        for g in range(4):
            out[g, col] = math.nan
        return
    if years == 0.0 or vol == 0.0:
        value, delta, theta = deterministic_american(
            spot, strike, years, rate, div_yield, sign, american
        )
        out[0, col] = value
        out[1, col] = delta
        out[2, col] = 0.0
        out[3, col] = theta
        return
    dt = years / steps
    up = math.exp(vol * math.sqrt(dt))
    down = 1.0 / up
    growth = math.exp((rate - div_yield) * dt)
    discount = math.exp(-rate * dt)
    p_up = (growth - down) / (up - down)
    discount_up = discount * p_up
    discount_down = discount * (1.0 - p_up)

    # Present value at each time step of the cash dividends still to be paid before expiry.
    escrow = 0.0
    for k in range(steps + 1):
        remaining[k] = 0.0
    for m in range(dividend_times.shape[0]):
        t_div = dividend_times[m]
        if 0.0 < t_div <= years:
            escrow += dividend_amounts[m] * math.exp(-rate * t_div)
            last_step = min(int(t_div / dt), steps)
            for k in range(last_step + 1):
                if k * dt < t_div:
                    remaining[k] += dividend_amounts[m] * math.exp(-rate * (t_div - k * dt))
    spot_star = spot - escrow
    if spot_star <= 0.0:
        for g in range(4):
            out[g, col] = math.nan
        return

    log_step = vol * math.sqrt(dt)
    for j in range(steps + 1):
        prices[j] = spot_star * math.exp((2 * j - steps) * log_step)
        values[j] = max(sign * (prices[j] - strike), 0.0)
    v10 = v11 = v20 = v21 = v22 = 0.0
    for i in range(steps - 1, -1, -1):
        pv = remaining[i]
        if american:
            for j in range(i + 1):
                node = prices[j] * up
                prices[j] = node
                hold = discount_up * values[j + 1] + discount_down * values[j]
                exercise = sign * (node + pv - strike)
                values[j] = hold if hold > exercise else exercise
        else:
            for j in range(i + 1):
                values[j] = discount_up * values[j + 1] + discount_down * values[j]
        if i == 2:
            v20, v21, v22 = values[0], values[1], values[2]
        elif i == 1:
            v10, v11 = values[0], values[1]
    price = values[0]
    if american:  # the root's node price is S up to round-off; exercise is worth exactly this
        price = max(price, sign * (spot - strike))
    s10, s11 = spot_star * down, spot_star * up
    s20, s22 = spot_star * down * down, spot_star * up * up
    out[0, col] = price
    out[1, col] = (v11 - v10) / (s11 - s10)
    upper_delta = (v22 - v21) / (s22 - spot_star)
    lower_delta = (v21 - v20) / (spot_star - s20)
    out[2, col] = (upper_delta - lower_delta) / (0.5 * (s22 - s20))
    out[3, col] = (v21 - price) / (2.0 * dt)


@kernel
def deterministic_american(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    sign: float,
    american: bool,
) -> tuple[float, float, float]:
    """(value, delta, theta per year) at zero vol or zero time: the best exercise date along the
    deterministic forward path (only expiry if not `american`).

    f(t) = e^(-rt)·θ(S·e^((r-q)t) - K) = θ(S·e^(-qt) - K·e^(-rt)) has at most one stationary
    point, so the best exercise value is at 0, at T, or there.
    """
    best = max(sign * (spot * math.exp(-div_yield * years) - strike * math.exp(-rate * years)), 0.0)
    best_time = years
    if american:
        now = max(sign * (spot - strike), 0.0)
        if now > best:
            best, best_time = now, 0.0
        if rate != div_yield and rate > 0.0 and div_yield > 0.0:
            stationary = math.log(rate * strike / (div_yield * spot)) / (rate - div_yield)
            if 0.0 < stationary < years:
                value = sign * (
                    spot * math.exp(-div_yield * stationary) - strike * math.exp(-rate * stationary)
                )
                if value > best:
                    best, best_time = value, stationary
    if best <= 0.0:
        return 0.0, 0.0, 0.0
    delta = sign * math.exp(-div_yield * best_time)
    theta = 0.0
    if best_time > 0.0:
        theta = sign * (
            div_yield * spot * math.exp(-div_yield * best_time)
            - rate * strike * math.exp(-rate * best_time)
        )
    return best, delta, theta


def _crr_loop(
    spot, strike, years, rate, div_yield, vol, is_call, american, steps, div_t, div_a, out
):
    n = spot.shape[0]
    for i in prange(n):
        prices = np.empty(steps + 1)
        values = np.empty(steps + 2)
        remaining = np.empty(steps + 1)
        crr_tree_into(
            spot[i], strike[i], years[i], rate[i], div_yield[i], vol[i], is_call[i],
            american[i], steps, div_t, div_a, prices, values, remaining, out, i,
        )  # fmt: skip


_crr_serial = kernel(_crr_loop)
_crr_parallel = kernel(_crr_loop, parallel=True)


def crr_tree(
    spot,
    strike,
    years,
    rate,
    div_yield,
    vol,
    is_call,
    *,
    american=True,
    steps: int = DEFAULT_STEPS,
    dividend_times=None,
    dividend_amounts=None,
    parallel: bool = False,
) -> TreeResult:
    """Price, delta, gamma and theta of options on a CRR tree with `steps` time steps.

    Units as `bsm_price` (dollars, years ACT/365, decimals); theta per year. `american` may be
    an array (False gives the European tree, useful to measure the tree's own error).
    `dividend_times` (years from now) and `dividend_amounts` (dollars per share) are discrete
    cash dividends common to every option of the batch (one underlying); dividends after expiry
    are ignored. Bad rows give NaN.
    """
    shape, (s, k, t, r, q, v), (c, a) = flat_inputs(
        (spot, strike, years, rate, div_yield, vol), (is_call, american)
    )
    div_t = np.ascontiguousarray(
        np.zeros(0) if dividend_times is None else dividend_times, dtype=np.float64
    ).reshape(-1)
    div_a = np.ascontiguousarray(
        np.zeros(0) if dividend_amounts is None else dividend_amounts, dtype=np.float64
    ).reshape(-1)
    if div_t.shape != div_a.shape:
        raise ValueError(
            f"dividend_times has {div_t.size} entries but dividend_amounts has {div_a.size}"
        )
    if int(steps) < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    out = np.empty((4, s.shape[0]))
    (_crr_parallel if parallel else _crr_serial)(
        s, k, t, r, q, v, c, a, int(steps), div_t, div_a, out
    )
    return TreeResult(*(shaped(row, shape) for row in out))
