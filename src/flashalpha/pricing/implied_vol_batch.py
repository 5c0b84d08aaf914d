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
from flashalpha.pricing.normal import (
    _A,
    _B,
    _C,
    _D,
    _P,
    _PPND_A,
    _PPND_B,
    _PPND_C,
    _PPND_D,
    _PPND_E,
    _PPND_F,
    _Q,
    INV_SQRT_PI,
    INV_SQRT_TWO,
    SQRT_TWO_PI,
)
from flashalpha.pricing.normalized_black import (
    _SMALL_T_ORDER,
    _SMALL_T_P,
    _SMALL_T_Q,
    _SQRT_PI,
    ASYMPTOTIC_BELOW,
    SMALL_T,
    normalized_black_and_vega,
)
from flashalpha.pricing.rational_cubic import MAXIMUM_CONTROL, MINIMUM_CONTROL

#: Rows of work space `black_and_vega_into` and `guesses_into` need (each at least n doubles).
WORK_ROWS = 5

_HALF_SQRT_TWO_PI = 0.5 * SQRT_TWO_PI
_INV_SQRT_TWO_PI = 1.0 / SQRT_TWO_PI
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634
_SQRT_THREE = math.sqrt(3.0)
_TWO_PI = 2.0 * math.pi
_LOWER_MAP_SCALE = _TWO_PI / math.sqrt(27.0)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi / 2.0)

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


#: `ln` as a function of its own, for callers compiled with FMA contraction (inlined into them
#: in numba's IR it would take their flags).
ln_exact = exact(ln.py_func)


@exact
def ln_into(x: np.ndarray, out: np.ndarray, n: int) -> None:
    """out[:n] = ln(x[:n]), vectorized (the bits of `ln_exact`)."""
    for i in range(n):
        out[i] = ln(x[i])


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
def black_and_vega_into(x, b_max, s, b, vega, work, rows, n: int) -> None:
    """b[:n], vega[:n] = black_and_vega(x[:n], b_max[:n], s[:n]) over a block, vectorized (the
    same bits): the rows of each region gathered and evaluated branch-free. `work` is
    (WORK_ROWS, ≥ n) doubles, `rows` ≥ n int64; outputs must not alias inputs or `work`."""
    h_, t_, b_max_, vega_, value = work[0], work[1], work[2], work[3], work[4]
    for i in range(n):
        h = x[i] / s[i]
        t = 0.5 * s[i]
        vega[i] = _INV_SQRT_TWO_PI * _exp(-0.5 * (h * h + t * t))
    for small in (True, False):
        m = 0
        for i in range(n):
            h = x[i] / s[i]
            t = 0.5 * s[i]
            rows[m] = i
            h_[m] = h
            t_[m] = t
            b_max_[m] = b_max[i]
            vega_[m] = vega[i]
            m += 1 if _regular(s[i], h, t) and (t < SMALL_T) == small else 0
        if small:
            for j in range(m):
                value[j] = vega_[j] * _small_t_bracket(h_[j], t_[j], True)
        else:
            for j in range(m):
                value[j] = _large_t_value(
                    h_[j], t_[j], b_max_[j], vega_[j] * _HALF_SQRT_TWO_PI, True
                )
        for j in range(m):
            b[rows[j]] = value[j]
    for i in range(n):
        if not _regular(s[i], x[i] / s[i], 0.5 * s[i]):
            b[i], vega[i] = normalized_black_and_vega(x[i], s[i])


# --- the rational initial guess of the lower and middle branches, branch-free ----------------
# Jäckel's guesses of `implied_vol._guess_from_points` (Delbourgo-Gregory rational cubic with
# the control parameter of `rational_cubic.py`; the lower map's transcendental functions as
# above, Φ⁻¹ as AS 241 with all three regions evaluated), so that the guess of a block
# vectorizes too. The guess only needs ~1e-3 relative accuracy; the steps do the rest.


@exact_inline
def _minimum_control(d_l: float, d_r: float, slope: float) -> float:
    """`rational_cubic.minimum_control`, branch-free."""
    monotone = (d_l * slope >= 0.0) & (d_r * slope >= 0.0)
    convex = (d_l <= slope) & (slope <= d_r)
    concave = (d_l >= slope) & (slope >= d_r)
    r_monotone = (d_r + d_l) / slope if slope != 0.0 else MAXIMUM_CONTROL
    r_monotone = r_monotone if monotone else -math.inf
    left = slope - d_l
    right = d_r - slope
    r_convex = max(abs(right / left), abs(left / right))
    r_convex = r_convex if (left != 0.0) & (right != 0.0) else MAXIMUM_CONTROL
    r_convex = r_convex if convex | concave else (MAXIMUM_CONTROL if monotone else -math.inf)
    r = max(MINIMUM_CONTROL, max(r_monotone, r_convex))
    return r if monotone | convex | concave else MINIMUM_CONTROL


@exact_inline
def _control(h: float, y_l: float, y_r: float, d_l: float, d_r: float, second: float,
             at_right: bool) -> float:  # fmt: skip
    """`rational_cubic.control_for_right_second_derivative` (at_right) or `..._left_...`."""
    slope = (y_r - y_l) / h
    numerator = 0.5 * h * second + (d_r - d_l)
    denominator = d_r - slope if at_right else slope - d_l
    r = numerator / denominator
    r = r if denominator != 0.0 else (MAXIMUM_CONTROL if numerator > 0.0 else MINIMUM_CONTROL)
    return max(r, _minimum_control(d_l, d_r, slope))


@exact_inline
def _rational_cubic(t: float, one_minus_t: float, h: float, y_l: float, y_r: float,
                    d_l: float, d_r: float, r: float) -> float:  # fmt: skip
    """`rational_cubic.rational_cubic`, branch-free."""
    t2 = t * t
    u2 = one_minus_t * one_minus_t
    numerator = (
        y_r * t2 * t
        + (r * y_r - h * d_r) * t2 * one_minus_t
        + (r * y_l + h * d_l) * t * u2
        + y_l * u2 * one_minus_t
    )
    value = numerator / (1.0 + (r - 3.0) * t * one_minus_t)
    value = y_r * t + y_l * one_minus_t if r >= MAXIMUM_CONTROL else value
    return 0.5 * (y_l + y_r) if h == 0.0 else value


@exact_inline
def _poly(c, x: float) -> float:
    return (
        (((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x + c[1]
    ) * x + c[0]


@exact_inline
def _norm_inv(p: float) -> float:
    """Φ⁻¹(p) by AS 241 (`normal.norm_inv`), the three regions evaluated and one selected."""
    q = p - 0.5
    r = 0.180625 - q * q
    central = q * _poly(_PPND_A, r) / _poly(_PPND_B, r)
    tail = math.sqrt(-ln(min(p, 1.0 - p)))
    near = _poly(_PPND_C, tail - 1.6) / _poly(_PPND_D, tail - 1.6)
    far = _poly(_PPND_E, tail - 5.0) / _poly(_PPND_F, tail - 5.0)
    value = near if tail <= 5.0 else far
    value = -value if q < 0.0 else value
    value = central if abs(q) <= 0.425 else value
    value = -math.inf if p == 0.0 else value
    value = math.inf if p == 1.0 else value
    return value if 0.0 <= p <= 1.0 else math.nan


@exact_inline
def _lower_guess(beta: float, x: float, s_l: float, b_l: float) -> float:
    """s from f = (2π|x|/√27)·Φ(-|x|/(√3·s))³, b's asymptotic form for s → 0, interpolated in
    the rational cubic matched to f's value, slope and curvature (in β) at s_l."""
    ax = abs(x)
    z = -ax / (_SQRT_THREE * s_l)
    y = z * z
    s2 = s_l * s_l
    erfcx_value = _erfcx_positive(-z * INV_SQRT_TWO, True)
    cdf = 0.5 * _exp(-0.5 * y) * erfcx_value
    mills = _SQRT_PI_OVER_TWO * erfcx_value  # Φ(z)/φ(z)
    f_l = _LOWER_MAP_SCALE * ax * cdf * cdf * cdf
    fp_l = _TWO_PI * y * cdf * cdf * _exp(y + 0.125 * s2)
    fpp_l = (
        (math.pi / 6.0)
        * y
        / (s2 * s_l)
        * cdf
        * (8.0 * _SQRT_THREE * s_l * ax + (3.0 * s2 * (s2 - 8.0) - 8.0 * x * x) * mills)
        * _exp(2.0 * y + 0.25 * s2)
    )
    r = _control(b_l, 0.0, f_l, 1.0, fp_l, fpp_l, True)
    t = beta / b_l
    f = _rational_cubic(t, 1.0 - t, b_l, 0.0, f_l, 1.0, fp_l, r)
    f = f if f > 0.0 else (f_l * t + b_l * (1.0 - t)) * t  # round-off for extreme |x|
    root = _exp(ln(f / (_LOWER_MAP_SCALE * ax)) / 3.0)
    return abs(x / (_SQRT_THREE * _norm_inv(root)))


@exact_inline
def _middle_guess(beta: float, s_c: float, b_c: float, v_c: float, s_side: float,
                  b_side: float, v_side: float) -> tuple[float, int, float, float]:  # fmt: skip
    """(s, branch, s_left, s_right): the branch (0 lower, 1 middle, 2 upper), its bracket and,
    in the middle branch, the guess: s(β) itself on [s_l, s_c] (β below b_c) or [s_c, s_u]."""
    below = beta < b_c
    lower = below & (beta < b_side)
    upper = (not below) & (beta > b_side)
    s_a = s_side if below else s_c
    s_b = s_c if below else s_side
    b_a = b_side if below else b_c
    b_b = b_c if below else b_side
    d_a = 1.0 / (v_side if below else v_c)
    d_b = 1.0 / (v_c if below else v_side)
    width = b_b - b_a
    r = _control(width, s_a, s_b, d_a, d_b, 0.0, below)
    t = (beta - b_a) / width
    s = _rational_cubic(t, 1.0 - t, width, s_a, s_b, d_a, d_b, r)
    branch = 0 if lower else (2 if upper else 1)
    s_left = 0.0 if lower else (s_side if upper else s_a)
    s_right = s_side if lower else (math.inf if upper else s_b)
    return s, branch, s_left, s_right


@exact_inline
def _usable_guess(s: float, s_c: float) -> float:
    return s if (s > 0.0) & (s < math.inf) else (s_c if s_c > 0.0 else 1.0)


@exact_inline
def guess_lane(beta: float, x: float, s_c: float, b_c: float, v_c: float, s_side: float,
               b_side: float, v_side: float) -> tuple[float, int, float, float]:  # fmt: skip
    """(s, branch, s_left, s_right) of `implied_vol._guess_from_points` for the lower
    (branch 0) and middle (1) branches; for the upper branch (2) s is not the guess."""
    s, branch, s_left, s_right = _middle_guess(beta, s_c, b_c, v_c, s_side, b_side, v_side)
    if branch == 0:
        s = _lower_guess(beta, x, s_side, b_side)
    return _usable_guess(s, s_c), branch, s_left, s_right


@exact
def guesses_into(beta, x, s_c, b_c, v_c, s_side, b_side, v_side, s, branch, s_left, s_right,
                 work, rows, n: int) -> None:  # fmt: skip
    """`guess_lane` of rows :n, vectorized: the middle guess of every row, then the lower
    guess of the lower branch's rows only, gathered. `work` is (4, ≥ n) doubles, `rows` ≥ n
    int64."""
    for i in range(n):
        s[i], branch[i], s_left[i], s_right[i] = _middle_guess(
            beta[i], s_c[i], b_c[i], v_c[i], s_side[i], b_side[i], v_side[i]
        )
    lower_beta, lower_x, lower_s, lower_b = work[0], work[1], work[2], work[3]
    m = 0
    for i in range(n):
        rows[m] = i
        lower_beta[m] = beta[i]
        lower_x[m] = x[i]
        lower_s[m] = s_side[i]
        lower_b[m] = b_side[i]
        m += 1 if branch[i] == 0 else 0
    for j in range(m):
        lower_s[j] = _lower_guess(lower_beta[j], lower_x[j], lower_s[j], lower_b[j])
    for j in range(m):
        s[rows[j]] = lower_s[j]
    for i in range(n):
        s[i] = _usable_guess(s[i], s_c[i])
