"""Shape-preserving rational cubic interpolation (Delbourgo & Gregory, "Shape preserving piecewise
rational interpolation", SIAM J. Sci. Stat. Comput. 6 (1985) 967-976), as used by Jäckel's
initial guesses for the implied volatility.

On [x_l, x_r] with values y_l, y_r, slopes d_l, d_r and a control parameter r, in
t = (x - x_l)/(x_r - x_l), h = x_r - x_l:

    y = [y_r·t³ + (r·y_r - h·d_r)·t²(1-t) + (r·y_l + h·d_l)·t(1-t)² + y_l·(1-t)³]
        / [1 + (r - 3)·t(1-t)]

r = 3 is the cubic Hermite interpolant; r → ∞ the straight line. r is chosen to reproduce a
known second derivative at one end, then raised as far as needed to keep the interpolant
monotone and convex (or concave) when the data are.
"""

from __future__ import annotations

import math

from flashalpha.pricing._jit import kernel

_EPSILON = 2.220446049250313e-16
#: Beyond this the rational cubic is the straight line to machine precision.
MAXIMUM_CONTROL = 2.0 / (_EPSILON * _EPSILON)
#: Below -1 the denominator could vanish inside the interval.
MINIMUM_CONTROL = -(1.0 - math.sqrt(_EPSILON))


@kernel
def rational_cubic(
    t: float,
    one_minus_t: float,
    h: float,
    y_l: float,
    y_r: float,
    d_l: float,
    d_r: float,
    r: float,
) -> float:
    """The interpolant at t; `one_minus_t` is passed separately so that callers which know the
    distance to the right end more accurately than 1 - t (near x_r) keep it."""
    if h == 0.0:
        return 0.5 * (y_l + y_r)
    if r >= MAXIMUM_CONTROL:
        return y_r * t + y_l * one_minus_t
    t2 = t * t
    u2 = one_minus_t * one_minus_t
    numerator = (
        y_r * t2 * t
        + (r * y_r - h * d_r) * t2 * one_minus_t
        + (r * y_l + h * d_l) * t * u2
        + y_l * u2 * one_minus_t
    )
    return numerator / (1.0 + (r - 3.0) * t * one_minus_t)


@kernel
def minimum_control(d_l: float, d_r: float, slope: float) -> float:
    """The smallest r that keeps the interpolant monotone and convex/concave like the data
    (preferring shape preservation over smoothness)."""
    monotone = d_l * slope >= 0.0 and d_r * slope >= 0.0
    convex = d_l <= slope <= d_r
    concave = d_l >= slope >= d_r
    if not (monotone or convex or concave):
        return MINIMUM_CONTROL
    r_monotone = -math.inf
    r_convex = -math.inf
    if monotone:
        r_monotone = (d_r + d_l) / slope if slope != 0.0 else MAXIMUM_CONTROL
    if convex or concave:
        left = slope - d_l
        right = d_r - slope
        if left != 0.0 and right != 0.0:
            r_convex = max(abs(right / left), abs(left / right))
        else:
            r_convex = MAXIMUM_CONTROL
    elif monotone:
        r_convex = MAXIMUM_CONTROL
    return max(MINIMUM_CONTROL, r_monotone, r_convex)


@kernel
def control_for_left_second_derivative(
    h: float, y_l: float, y_r: float, d_l: float, d_r: float, second_l: float
) -> float:
    """r such that the interpolant's second derivative at x_l is `second_l`, made
    shape-preserving. From y''(x_l)·h² = 2r·Δy - 2h·d_r - 2(r - 1)·h·d_l."""
    slope = (y_r - y_l) / h
    numerator = 0.5 * h * second_l + (d_r - d_l)
    denominator = slope - d_l
    if denominator != 0.0:
        r = numerator / denominator
    else:
        r = MAXIMUM_CONTROL if numerator > 0.0 else MINIMUM_CONTROL
    return max(r, minimum_control(d_l, d_r, slope))


@kernel
def control_for_right_second_derivative(
    h: float, y_l: float, y_r: float, d_l: float, d_r: float, second_r: float
) -> float:
    """The mirror image of `control_for_left_second_derivative`, at x_r."""
    slope = (y_r - y_l) / h
    numerator = 0.5 * h * second_r + (d_r - d_l)
    denominator = d_r - slope
    if denominator != 0.0:
        r = numerator / denominator
    else:
        r = MAXIMUM_CONTROL if numerator > 0.0 else MINIMUM_CONTROL
    return max(r, minimum_control(d_l, d_r, slope))
