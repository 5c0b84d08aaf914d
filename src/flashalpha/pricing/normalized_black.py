"""The normalized Black function, to (nearly) full relative precision everywhere.

With forward F, strike K, x = ln(F/K) and total deviation s = σ√T, an undiscounted option
price divided by √(F·K) is

    b(x, s, θ) = θ·[e^(x/2)·Φ(θ·(x/s + s/2)) - e^(-x/2)·Φ(θ·(x/s - s/2))]

(P. Jäckel, "Let's Be Rational", Wilmott 2015, whose notation we follow). Any option reduces to
an out-of-the-money call, x ≤ 0, by put-call symmetry and by subtracting the intrinsic value,
so the kernels here take x ≤ 0. With h = x/s, t = s/2 and Y(z) = Φ(z)/φ(z),

    b = exp(-(h² + t²)/2)/√(2π) · [Y(h + t) - Y(h - t)],

and the difference is the numerical difficulty: far out of the money or at small s the two
terms nearly cancel. Four regions, each computed without that cancellation:

1. h + t ≤ -10: the asymptotic series Y(z) ~ Σ (-1)ⁿ(2n-1)!!/|z|^(2n+1) (Abramowitz & Stegun
   26.2.12), differenced term by term in closed form (every term of Y(h+t) - Y(h-t) is a
   product of 2t and positive powers, summed until it stops decreasing).
2. t < 0.25: the Taylor series Y(h+t) - Y(h-t) = 2·Σ Y⁽²ᵐ⁺¹⁾(h)·t^(2m+1)/(2m+1)!, with the
   derivatives written as P_m(h²)·a + Q_m(h²), a = 1 + h·Y(h) (polynomials derived from
   Y' = 1 + zY below, to t^17). For h < -5.66 `a` comes straight from Cody's asymptotic
   rational function, not from the cancelling 1 + h·Y(h).
3. h + t > 0.85: the difference of the two Φ terms, which then differ by a factor ≥ 4.
4. Elsewhere: ½·exp(-(h²+t²)/2)·[erfcx(-(h+t)/√2) - erfcx(-(h-t)/√2)] (Cody's erfcx).

The relative error is a few 1e-16 in regions 1, 3 and 4 near their interior, up to ~2e-15
at the edges of region 4 (t ≈ 0.25, h ≈ -10, where the bracket cancels by a factor ~20).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from flashalpha.pricing._jit import kernel
from flashalpha.pricing.normal import (
    INV_SQRT_TWO,
    INV_SQRT_TWO_PI,
    SQRT_TWO_PI,
    erfcx,
    erfcx_large_correction,
    norm_cdf,
)

SMALL_T = 0.25
ASYMPTOTIC_BELOW = -10.0
NORM_CDF_ABOVE = 0.85
_SQRT_PI = math.sqrt(math.pi)
_SMALL_T_ORDER = 9  # terms t, t³, ..., t^17
_HALF_SQRT_TWO_PI = 0.5 * SQRT_TWO_PI


def _small_t_coefficients(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows m of P_m/(2m+1)! and Q_m/(2m+1)! as polynomials in h² (ascending powers).

    Y⁽ⁿ⁾ = u_n(h)·Y + v_n(h) with u, v from Y⁽ⁿ⁺¹⁾ = h·Y⁽ⁿ⁾ + n·Y⁽ⁿ⁻¹⁾; for odd n, u_n = h·w_n(h²),
    so Y⁽ⁿ⁾ = w_n·a + (v_n - w_n) with a = 1 + h·Y. Exact rational arithmetic, then floats.
    """
    u: list[list[int]] = [[1], [0, 1]]
    v: list[list[int]] = [[0], [1]]

    def combine(p: list[int], q: list[int], n: int) -> list[int]:
        shifted = [0, *p]
        return [
            (shifted[i] if i < len(shifted) else 0) + n * (q[i] if i < len(q) else 0)
            for i in range(max(len(shifted), len(q)))
        ]

    for n in range(1, 2 * order):
        u.append(combine(u[n], u[n - 1], n))
        v.append(combine(v[n], v[n - 1], n))
    p_rows = np.zeros((order, order + 1))
    q_rows = np.zeros((order, order + 1))
    for m in range(order):
        n = 2 * m + 1
        w = u[n][1::2]
        ve = v[n][0::2]
        factorial = math.factorial(n)
        for i, coefficient in enumerate(w):
            p_rows[m, i] = float(Fraction(coefficient, factorial))
            q_rows[m, i] -= float(Fraction(coefficient, factorial))
        for i, coefficient in enumerate(ve):
            q_rows[m, i] += float(Fraction(coefficient, factorial))
    return p_rows, q_rows


_SMALL_T_P, _SMALL_T_Q = _small_t_coefficients(_SMALL_T_ORDER)


@kernel
def _one_plus_h_y(h: float) -> float:
    """a = 1 + h·Y(h) = Y'(h) for h ≤ 0, without the cancellation of the two terms for h ≪ 0."""
    w = -h * INV_SQRT_TWO
    if w > 4.0:
        # Y(h) = √(π/2)·erfcx(w) and erfcx(w) = (1/√π - c(w))/w  ⇒  1 + h·Y(h) = √π·c(w).
        return _SQRT_PI * erfcx_large_correction(w)
    return 1.0 + h * (0.5 * SQRT_TWO_PI) * erfcx(w)


@kernel
def _small_t_bracket(h: float, t: float) -> float:
    """[Y(h+t) - Y(h-t)] for t < SMALL_T by its Taylor series."""
    a = _one_plus_h_y(h)
    h2 = h * h
    w = t * t
    total = 0.0
    for m in range(_SMALL_T_ORDER - 1, -1, -1):
        p = 0.0
        q = 0.0
        for i in range(m + 1, -1, -1):
            p = p * h2 + _SMALL_T_P[m, i]
            q = q * h2 + _SMALL_T_Q[m, i]
        total = total * w + (p * a + q)
    return 2.0 * t * total


@kernel
def _asymptotic_bracket(h: float, t: float) -> float:
    """[Y(h+t) - Y(h-t)] for h + t ≤ -10 (both h ± t far in the lower tail)."""
    alpha = -1.0 / (h + t)  # 1/|h+t|
    gamma = -1.0 / (h - t)  # 1/|h-t| < alpha
    # α^(2n+1) - γ^(2n+1) = (α - γ)·H_2n with H_m = Σ_j α^j γ^(m-j), and α - γ = 2t·α·γ.
    h_m = 1.0  # H_0
    gamma_power = 1.0
    total = 1.0
    double_factorial = 1.0  # (2n-1)!!
    previous = math.inf
    sign = 1.0
    for n in range(1, 60):
        gamma_power *= gamma
        h_m = alpha * h_m + gamma_power  # H_(2n-1)
        gamma_power *= gamma
        h_m = alpha * h_m + gamma_power  # H_(2n)
        double_factorial *= 2.0 * n - 1.0
        term = double_factorial * h_m
        if term >= previous:  # the asymptotic series has started to diverge
            break
        sign = -sign
        total += sign * term
        previous = term
        if term < 1e-17 * total:
            break
    return 2.0 * t * alpha * gamma * total


@kernel
def normalized_black_and_vega(x: float, s: float) -> tuple[float, float]:
    """(b(x, s), ∂b/∂s) of an out-of-the-money (or at-the-money) call, x ≤ 0, s ≥ 0, in units
    of √(F·K); they share the factor exp(-(h² + t²)/2)."""
    if s <= 0.0:
        return 0.0, (INV_SQRT_TWO_PI if x == 0.0 else 0.0)
    if s == math.inf:
        return math.exp(0.5 * x), 0.0
    h = x / s
    t = 0.5 * s
    vega = INV_SQRT_TWO_PI * math.exp(-0.5 * (h * h + t * t))
    if h + t <= ASYMPTOTIC_BELOW:
        return vega * _asymptotic_bracket(h, t), vega
    if t < SMALL_T:
        return vega * _small_t_bracket(h, t), vega
    scale = vega * _HALF_SQRT_TWO_PI  # ½·exp(-(h²+t²)/2)
    if h + t > NORM_CDF_ABOVE:
        # e^(-x/2)·Φ(h-t) in its φ-scaled form: e^(-x/2) alone overflows for x < -1420.
        value = math.exp(0.5 * x) * norm_cdf(h + t) - scale * erfcx(-INV_SQRT_TWO * (h - t))
    else:
        value = scale * (erfcx(-INV_SQRT_TWO * (h + t)) - erfcx(-INV_SQRT_TWO * (h - t)))
    return max(value, 0.0), vega


@kernel
def normalized_black_otm(x: float, s: float) -> float:
    """b(x, s) of an out-of-the-money (or at-the-money) call: x ≤ 0, s ≥ 0. Units of √(F·K)."""
    return normalized_black_and_vega(x, s)[0]


@kernel
def normalized_black_otm_complement(x: float, s: float) -> float:
    """b_max - b(x, s) = e^(x/2)·Φ(-h-t) + e^(-x/2)·Φ(h-t) for x ≤ 0: a sum, never a difference."""
    if s <= 0.0:
        return math.exp(0.5 * x)
    if s == math.inf:
        return 0.0
    h = x / s
    t = 0.5 * s
    # e^(x/2)·Φ(z) = e^(-x/2)·Φ(z - s)·... both terms φ-scaled as ½·exp(-(h²+t²)/2)·erfcx(-z/√2)
    # wherever the argument is negative, so that no factor overflows or underflows alone.
    scale = 0.5 * math.exp(-0.5 * (h * h + t * t))
    upper = scale * erfcx(INV_SQRT_TWO * (h + t)) if h + t > 0.0 else 0.0
    if h + t <= 0.0:
        upper = math.exp(0.5 * x) * norm_cdf(-h - t)
    return upper + scale * erfcx(-INV_SQRT_TWO * (h - t))


@kernel
def normalized_vega(x: float, s: float) -> float:
    """∂b/∂s = φ(x/s + s/2)·e^(x/2) = exp(-(h² + t²)/2)/√(2π)."""
    if s <= 0.0:
        return INV_SQRT_TWO_PI if x == 0.0 else 0.0
    h = x / s
    t = 0.5 * s
    return INV_SQRT_TWO_PI * math.exp(-0.5 * (h * h + t * t))


@kernel
def normalized_black(x: float, s: float, is_call: bool) -> float:
    """b(x, s, θ) for any x: intrinsic value plus the out-of-the-money part."""
    theta = 1.0 if is_call else -1.0
    if theta * x > 0.0:
        intrinsic = theta * (math.exp(0.5 * x) - math.exp(-0.5 * x))
        return intrinsic + normalized_black_otm(-abs(x), s)
    return normalized_black_otm(-abs(x), s)
