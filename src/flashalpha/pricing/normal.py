"""The standard normal distribution and the scaled complementary error function.

Scalar numba functions, the building blocks of every pricing kernel:

- `erfcx(x) = exp(x²)·erfc(x)`, W. J. Cody's rational Chebyshev approximations ("Rational
  Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-637; the
  coefficients are those of his published CALERF routine). Relative error below 1e-15 on the
  whole real line; it never overflows for x ≥ -26.6 and decays like 1/(x·√π) for large x, which
  is what lets the normalized Black function stay accurate far out of the money.
- `norm_cdf`, `norm_pdf`: Φ and φ. Φ uses the C library's `erfc`, accurate in both tails.
- `norm_inv`: Φ⁻¹, Wichura's algorithm AS 241 (PPND16, Applied Statistics 37 (1988) 477-484),
  relative error about 1e-16.
"""

from __future__ import annotations

import math

import numpy as np

from flashalpha.pricing._jit import kernel

SQRT_TWO = math.sqrt(2.0)
SQRT_TWO_PI = math.sqrt(2.0 * math.pi)
INV_SQRT_TWO = 1.0 / SQRT_TWO
INV_SQRT_TWO_PI = 1.0 / SQRT_TWO_PI
INV_SQRT_PI = 1.0 / math.sqrt(math.pi)

# Cody's coefficients: |x| <= 0.5 (erf), 0.5 < |x| <= 4 (erfc·e^x²), |x| > 4 (asymptotic form).
_A = np.array(
    [
        3.16112374387056560e00,
        1.13864154151050156e02,
        3.77485237685302021e02,
        3.20937758913846947e03,
        1.85777706184603153e-1,
    ]
)
_B = np.array(
    [
        2.36012909523441209e01,
        2.44024637934444173e02,
        1.28261652607737228e03,
        2.84423683343917062e03,
    ]
)
_C = np.array(
    [
        5.64188496988670089e-1,
        8.88314979438837594e00,
        6.61191906371416295e01,
        2.98635138197400131e02,
        8.81952221241769090e02,
        1.71204761263407058e03,
        2.05107837782607147e03,
        1.23033935479799725e03,
        2.15311535474403846e-8,
    ]
)
_D = np.array(
    [
        1.57449261107098347e01,
        1.17693950891312499e02,
        5.37181101862009858e02,
        1.62138957456669019e03,
        3.29079923573345963e03,
        4.36261909014324716e03,
        3.43936767414372164e03,
        1.23033935480374942e03,
    ]
)
_P = np.array(
    [
        3.05326634961232344e-1,
        3.60344899949804439e-1,
        1.25781726111229246e-1,
        1.60837851487422766e-2,
        6.58749161529837803e-4,
        1.63153871373020978e-2,
    ]
)
_Q = np.array(
    [
        2.56852019228982242e00,
        1.87295284992346725e00,
        5.27905102951428412e-1,
        6.05183413124413191e-2,
        2.33520497626869185e-3,
    ]
)


@kernel
def _erf_small(x: float) -> float:
    """erf(x) for |x| <= 0.5."""
    z = x * x
    a0, a1, a2, a3, a4 = _A[0], _A[1], _A[2], _A[3], _A[4]
    b0, b1, b2, b3 = _B[0], _B[1], _B[2], _B[3]
    num = (((a4 * z + a0) * z + a1) * z + a2) * z + a3
    den = (((z + b0) * z + b1) * z + b2) * z + b3
    return x * num / den


@kernel
def _erfcx_mid(y: float) -> float:
    """erfcx(y) for 0.5 < y <= 4."""
    num = _C[8] * y
    den = y
    for i in range(7):
        num = (num + _C[i]) * y
        den = (den + _D[i]) * y
    return (num + _C[7]) / (den + _D[7])


@kernel
def erfcx_large_correction(y: float) -> float:
    """For y > 4, the c(y) of Cody's form erfcx(y) = (1/√π - c(y))/y, c(y) ~ 1/(2√π·y²).

    Computed directly, so that 1 - √π·y·erfcx(y) = √π·c(y) keeps full relative precision.
    """
    z = 1.0 / (y * y)
    num = _P[5] * z
    den = z
    for i in range(4):
        num = (num + _P[i]) * z
        den = (den + _Q[i]) * z
    return z * (num + _P[4]) / (den + _Q[4])


@kernel
def _erfcx_large(y: float) -> float:
    """erfcx(y) for y > 4."""
    if y >= 6.71e7:  # the rational correction is below one ulp
        return INV_SQRT_PI / y
    return (INV_SQRT_PI - erfcx_large_correction(y)) / y


@kernel
def erfcx(x: float) -> float:
    """exp(x²)·erfc(x), accurate to about one ulp; +inf for x < -26.63 (where it overflows)."""
    y = abs(x)
    if y <= 0.5:
        result = math.exp(x * x) * (1.0 - _erf_small(x))
        return result
    result = _erfcx_mid(y) if y <= 4.0 else _erfcx_large(y)
    if x < 0.0:
        if x < -26.628:
            return math.inf
        # Split x² into an exactly representable part and a small rest so that exp(x²) keeps
        # full relative precision (Cody's trick).
        xx = math.trunc(x * 16.0) / 16.0
        rest = (x - xx) * (x + xx)
        result = 2.0 * math.exp(xx * xx) * math.exp(rest) - result
    return result


@kernel
def norm_pdf(x: float) -> float:
    """φ(x) = exp(-x²/2)/√(2π)."""
    return INV_SQRT_TWO_PI * math.exp(-0.5 * x * x)


@kernel
def exp_minus_half_square(x: float) -> float:
    """exp(-x²/2) to full relative precision even where x² is large (x split as in Cody)."""
    xx = math.trunc(x * 16.0) / 16.0
    rest = (x - xx) * (x + xx)
    return math.exp(-0.5 * xx * xx) * math.exp(-0.5 * rest)


@kernel
def norm_cdf(x: float) -> float:
    """Φ(x), to a few ulps relative in the lower tail down to the underflow near -38.5.

    Below -1 it is φ-scaled: ½·exp(-x²/2)·erfcx(-x/√2), so that rounding x/√2 (which erfc's
    steep tail would amplify by x²) costs nothing.
    """
    if x < -1.0:
        return 0.5 * exp_minus_half_square(x) * erfcx(-x * INV_SQRT_TWO)
    return 0.5 * math.erfc(-x * INV_SQRT_TWO)


# AS 241 (PPND16) coefficients.
_PPND_A = np.array(
    [
        3.3871328727963666080e0,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ]
)
_PPND_B = np.array(
    [
        1.0,
        4.2313330701600911252e1,
        6.8718700749205790830e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.9307895800092710610e4,
        2.8729085735721942674e4,
        5.2264952788528545610e3,
    ]
)
_PPND_C = np.array(
    [
        1.42343711074968357734e0,
        4.63033784615654529590e0,
        5.76949722146069140550e0,
        3.64784832476320460504e0,
        1.27045825245236838258e0,
        2.41780725177450611770e-1,
        2.27238449892691845833e-2,
        7.74545014278341407640e-4,
    ]
)
_PPND_D = np.array(
    [
        1.0,
        2.05319162663775882187e0,
        1.67638483018380384940e0,
        6.89767334985100004550e-1,
        1.48103976427480074590e-1,
        1.51986665636164571966e-2,
        5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ]
)
_PPND_E = np.array(
    [
        6.65790464350110377720e0,
        5.46378491116411436990e0,
        1.78482653991729133580e0,
        2.96560571828504891230e-1,
        2.65321895265761230930e-2,
        1.24266094738807843860e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ]
)
_PPND_F = np.array(
    [
        1.0,
        5.99832206555887937690e-1,
        1.36929880922735805310e-1,
        1.48753612908506148525e-2,
        7.86869131145613259100e-4,
        1.84631831751005468180e-5,
        1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ]
)


@kernel
def _poly8(c: np.ndarray, x: float) -> float:
    return (
        ((((((c[7] * x + c[6]) * x + c[5]) * x + c[4]) * x + c[3]) * x + c[2]) * x + c[1]) * x
    ) + c[0]


@kernel
def norm_inv(p: float) -> float:
    """Φ⁻¹(p) for 0 < p < 1 (AS 241); -inf at 0, +inf at 1, NaN outside [0, 1]."""
    if not (0.0 <= p <= 1.0):
        return math.nan
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _poly8(_PPND_A, r) / _poly8(_PPND_B, r)
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        value = _poly8(_PPND_C, r) / _poly8(_PPND_D, r)
    else:
        r -= 5.0
        value = _poly8(_PPND_E, r) / _poly8(_PPND_F, r)
    return -value if q < 0.0 else value


@kernel
def norm_cdf_fast(x: float) -> float:
    """Φ(x) as ½·exp(-x²/2)·erfcx(|x|/√2) for the smaller tail (a rational function and one
    exp, about half the cost of erfc): relative error ~x²·1e-16 in the lower tail from the
    rounding of x², for kernels that need absolute accuracy (the American engine)."""
    tail = 0.5 * math.exp(-0.5 * x * x) * erfcx(abs(x) * INV_SQRT_TWO)
    return tail if x <= 0.0 else 1.0 - tail
