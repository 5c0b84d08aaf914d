"""The normalized Black function and its vega for the implied vol solver, row by row and over
a block of rows, with the same bits either way.

`black_and_vega(x, b_max, s)` is `normalized_black.normalized_black_and_vega` in the three
regions where almost all options fall (the erfcx form for h + t ≤ 0, the Φ form above it, the
Taylor series in t for t < 0.25), with exp and erfcx written as plain arithmetic (Cody-Waite
exp as in `vector_math`, Cody's rational erfcx as in `normal`): within a few ulps of it (its
condition number 1 + (h² + t²)/2 times 2e-16). `black_and_vega_into` evaluates the same
formulas for a whole block branch-free, every form for every row and one selected, so that
LLVM vectorizes them. The pieces are compiled without FMA contraction, so that a row gets the
same bits in a vector lane as in the scalar function: the array path and the per-row path of
`implied_vol` agree exactly. Rows outside the three regions (far out of the money,
h + t ≤ -10; s = 0 or ∞; NaN) use `normalized_black_and_vega` itself in both.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from flashalpha.pricing._jit import kernel
from flashalpha.pricing.normal import _A, _B, _C, _D, _P, _Q, INV_SQRT_PI, INV_SQRT_TWO, SQRT_TWO_PI
from flashalpha.pricing.normalized_black import (
    _SMALL_T_ORDER,
    _SMALL_T_P,
    _SMALL_T_Q,
    _SQRT_PI,
    ASYMPTOTIC_BELOW,
    SMALL_T,
    normalized_black_and_vega,
)

#: Rows of work space `black_and_vega_into` needs (each at least n doubles).
WORK_ROWS = 2

_HALF_SQRT_TWO_PI = 0.5 * SQRT_TWO_PI
_INV_SQRT_TWO_PI = 1.0 / SQRT_TWO_PI
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634

#: Exact IEEE arithmetic, no FMA contraction: the same bits in every context.
exact = kernel(fastmath=False)
#: The same, inlined into the (exact) caller in numba's IR: LLVM would not inline functions
#: this large, and a call in the loop would keep it from vectorizing.
exact_inline = kernel(fastmath=False, inline="always")


@intrinsic
def _bits_as_float(typingctx, bits):
    """The float64 whose bit pattern is the int64 `bits` (a bitcast; vectorizes)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _float_as_bits(typingctx, value):
    """The int64 bit pattern of the float64 `value` (a bitcast; vectorizes)."""
    if not isinstance(value, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@exact_inline
def ln(x: float) -> float:
    """ln(x) as `vector_math.log_into` (within 2 ulps), subnormal x included: -inf at 0,
    +inf at +inf, NaN for x < 0 or NaN. Vectorizes."""
    subnormal = x < 2.2250738585072014e-308
    y = x * 18014398509481984.0 if subnormal else x  # 2⁵⁴
    bits = _float_as_bits(y)
    exponent = float(((bits >> 52) & 0x7FF) - 1023) - (54.0 if subnormal else 0.0)
    m = _bits_as_float((bits & 0xFFFFFFFFFFFFF) | (np.int64(1023) << 52))
    big = m > 1.4142135623730951
    m = 0.5 * m if big else m
    e = exponent + 1.0 if big else exponent
    r = (m - 1.0) / (m + 1.0)
    z = r * r
    p = 2.0 / 21.0
    p = p * z + 2.0 / 19.0
    p = p * z + 2.0 / 17.0
    p = p * z + 2.0 / 15.0
    p = p * z + 2.0 / 13.0
    p = p * z + 2.0 / 11.0
    p = p * z + 2.0 / 9.0
    p = p * z + 2.0 / 7.0
    p = p * z + 2.0 / 5.0
    p = p * z + 2.0 / 3.0
    result = e * _LN2_HI + (r * (z * p) + (e * _LN2_LO + 2.0 * r))
    result = -math.inf if x == 0.0 else result
    result = math.inf if x == math.inf else result
    return math.nan if not x >= 0.0 else result


@exact_inline
def _exp(x: float) -> float:
    """exp(x) as `vector_math.exp_into`: within 2 ulps; 0 below -708, +inf above 709."""
    xc = min(max(x, -708.0), 709.0)
    kf = math.floor(xc * _INV_LN2 + 0.5)
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 1.984126984126984e-04
    p = p * r + 1.388888888888889e-03
    p = p * r + 8.333333333333333e-03
    p = p * r + 4.1666666666666664e-02
    p = p * r + 1.6666666666666666e-01
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    p = 0.0 if x < -708.0 else p
    p = math.inf if x > 709.0 else p
    return p * _bits_as_float((np.int64(kf) + 1023) << 52)


@exact_inline
def _erfcx_small(y: float) -> tuple[float, float]:
    """erfcx(y) = top/bottom for 0 ≤ y ≤ 0.5: exp(y²)·(1 - erf(y)), erf(y) = y·R(y²)."""
    z = y * y
    num = (((_A[4] * z + _A[0]) * z + _A[1]) * z + _A[2]) * z + _A[3]
    den = (((z + _B[0]) * z + _B[1]) * z + _B[2]) * z + _B[3]
    return _exp(min(z, 0.25)) * (den - y * num), den


@exact_inline
def _erfcx_mid(y: float) -> tuple[float, float]:
    """erfcx(y) = top/bottom for 0.5 < y ≤ 4: Cody's R(y)."""
    num = (((((((_C[8] * y + _C[0]) * y + _C[1]) * y + _C[2]) * y + _C[3]) * y + _C[4]) * y
            + _C[5]) * y + _C[6]) * y  # fmt: skip
    den = (((((((y + _D[0]) * y + _D[1]) * y + _D[2]) * y + _D[3]) * y + _D[4]) * y + _D[5]) * y
           + _D[6]) * y  # fmt: skip
    return num + _C[7], den + _D[7]


@exact_inline
def _erfcx_large(y: float) -> tuple[float, float]:
    """erfcx(y) = top/bottom for y > 4: (1/√π - c(y))/y, c multiplied through by y¹⁰ as in
    `vector_math.cdf_given_gaussian_into`; 1/(√π·y) from 6.71e7 (c below one ulp)."""
    if y >= 6.71e7:
        return INV_SQRT_PI, y
    zz = y * y
    num = ((((_P[4] * zz + _P[3]) * zz + _P[2]) * zz + _P[1]) * zz + _P[0]) * zz + _P[5]
    den = ((((_Q[4] * zz + _Q[3]) * zz + _Q[2]) * zz + _Q[1]) * zz + _Q[0]) * zz + 1.0
    return zz * den * INV_SQRT_PI - num, zz * den * y


@exact_inline
def _erfcx_positive(y: float, select: bool) -> float:
    """erfcx(y) for y ≥ 0, Cody's three rational forms (normal.py): the one that applies, or
    with `select` (a constant) all three and one selected, which vectorizes. The same bits."""
    if select:
        top_small, bottom_small = _erfcx_small(min(y, 0.5))
        top_mid, bottom_mid = _erfcx_mid(y)
        top_large, bottom_large = _erfcx_large(max(y, 4.0))
        top = top_mid if y <= 4.0 else top_large
        bottom = bottom_mid if y <= 4.0 else bottom_large
        top = top_small if y <= 0.5 else top
        bottom = bottom_small if y <= 0.5 else bottom
    elif y <= 0.5:
        top, bottom = _erfcx_small(y)
    elif y <= 4.0:
        top, bottom = _erfcx_mid(y)
    else:
        top, bottom = _erfcx_large(y)
    return top / bottom


@exact_inline
def _one_plus_h_y(h: float, select: bool) -> float:
    """1 + h·Y(h) = Y'(h), h ≤ 0; for h < -5.66 as √π·c(w), c from Cody's correction
    (multiplied through by w¹⁰), without the cancellation of 1 + h·Y."""
    w = -h * INV_SQRT_TWO
    if w > 4.0 and not select:
        return _SQRT_PI * _cody_correction(w)
    small = 1.0 + h * _HALF_SQRT_TWO_PI * _erfcx_positive(w, select)
    return _SQRT_PI * _cody_correction(w) if w > 4.0 else small


@exact_inline
def _cody_correction(w: float) -> float:
    """c(w) of erfcx(w) = (1/√π - c(w))/w for w > 4."""
    zz = min(w * w, 1e50)
    num = ((((_P[4] * zz + _P[3]) * zz + _P[2]) * zz + _P[1]) * zz + _P[0]) * zz + _P[5]
    den = ((((_Q[4] * zz + _Q[3]) * zz + _Q[2]) * zz + _Q[1]) * zz + _Q[0]) * zz + 1.0
    return num / (zz * den)


@exact_inline
def _small_t_bracket(h: float, t: float, select: bool) -> float:
    """Y(h+t) - Y(h-t) by the Taylor series of `normalized_black` (t < 0.25)."""
    a = _one_plus_h_y(h, select)
    h2 = h * h
    tt = t * t
    series = 0.0
    for m in range(_SMALL_T_ORDER - 1, -1, -1):
        p = 0.0
        q = 0.0
        for k in range(m + 1, -1, -1):
            p = p * h2 + _SMALL_T_P[m, k]
            q = q * h2 + _SMALL_T_Q[m, k]
        series = series * tt + (p * a + q)
    return 2.0 * t * series


@exact_inline
def _large_t_value(h: float, t: float, b_max: float, scale: float, select: bool) -> float:
    """b for t ≥ 0.25: ½·e^(-(h²+t²)/2)·[erfcx(-(h+t)/√2) - erfcx(-(h-t)/√2)] for h + t ≤ 0;
    above, e^(x/2)·Φ(h+t) - e^(-x/2)·Φ(h-t) with Φ(h+t) = 1 - ½·erfc((h+t)/√2)."""
    u = INV_SQRT_TWO * (h + t)
    plus = _erfcx_positive(abs(u), select)
    minus = _erfcx_positive(-INV_SQRT_TWO * (h - t), select)
    if u <= 0.0 and not select:
        return max(scale * (plus - minus), 0.0)
    cdf_form = b_max * (1.0 - 0.5 * _exp(-u * u) * plus) - scale * minus
    return max(cdf_form if u > 0.0 else scale * (plus - minus), 0.0)


@exact_inline
def _regular(s: float, h: float, t: float) -> bool:
    return s > 0.0 and s < math.inf and h + t > ASYMPTOTIC_BELOW


@exact
def black_and_vega(x: float, b_max: float, s: float) -> tuple[float, float]:
    """(b(x, s), ∂b/∂s) of an out-of-the-money call, x ≤ 0, s ≥ 0, b_max = math.exp(0.5·x);
    units of √(F·K)."""
    h = x / s
    t = 0.5 * s
    if not _regular(s, h, t):
        return normalized_black_and_vega(x, s)
    vega = _INV_SQRT_TWO_PI * _exp(-0.5 * (h * h + t * t))
    if t < SMALL_T:
        return vega * _small_t_bracket(h, t, False), vega
    return _large_t_value(h, t, b_max, vega * _HALF_SQRT_TWO_PI, False), vega


@exact
def black_and_vega_into(x, b_max, s, b, vega, work, n: int) -> None:
    """b[:n], vega[:n] = black_and_vega(x[:n], b_max[:n], s[:n]) over a block, vectorized (the
    same bits). `work` is (WORK_ROWS, ≥ n) doubles; outputs must not alias inputs or `work`."""
    special = work[0]
    small = 0
    for i in range(n):
        h = x[i] / s[i]
        t = 0.5 * s[i]
        small += 1 if t < SMALL_T else 0
        special[i] = 0.0 if _regular(s[i], h, t) else 1.0
    series = work[1]
    if small > 0:
        for i in range(n):
            series[i] = _small_t_bracket(x[i] / s[i], 0.5 * s[i], True)
    for i in range(n):
        h = x[i] / s[i]
        t = 0.5 * s[i]
        v = _INV_SQRT_TWO_PI * _exp(-0.5 * (h * h + t * t))
        large = _large_t_value(h, t, b_max[i], v * _HALF_SQRT_TWO_PI, True)
        b[i] = v * series[i] if t < SMALL_T else large
        vega[i] = v
    for i in range(n):
        if special[i] != 0.0:
            b[i], vega[i] = normalized_black_and_vega(x[i], s[i])
