"""American options: the fast engine (Andersen-Lake-Offengenden), the CRR tree, and inversion.

Fast engine: L. Andersen, M. Lake, D. Offengenden, "High-performance American option pricing",
Journal of Computational Finance 20(1) (2016) 39-87. For a put (calls by McDonald-Schroder
put-call symmetry, C(S, K, r, q) = P(K, S, q, r)), the price is the European price plus the
early exercise premium, an integral over the exercise boundary B(τ):

    V(T, S) = p(T, S) + ∫_0^T [r·K·e^(-r(T-u))·Φ(-d₋(T-u, S/B(u)))
                               - q·S·e^(-q(T-u))·Φ(-d₊(T-u, S/B(u)))] du,

and B solves the fixed-point system ("FP-B", smooth pasting)

    B(τ) = K·e^(-(r-q)τ)·N(τ, B)/D(τ, B),
    N = φ(d₋(τ, B(τ)/K))/(σ√τ) + r∫_0^τ e^(ru)·φ(d₋(τ-u, B(τ)/B(u)))/(σ√(τ-u)) du,
    D = φ(d₊(τ, B(τ)/K))/(σ√τ) + Φ(d₊(τ, B(τ)/K))
        + q∫_0^τ e^(qu)·[Φ(d₊(τ-u, B(τ)/B(u))) + φ(d₊(τ-u, B(τ)/B(u)))/(σ√(τ-u))] du.

As in the paper, B is carried as H(√τ) = ln(B(τ)/X)², X = K·min(1, r/q) its limit at expiry,
interpolated with Chebyshev polynomials on n + 1 Chebyshev-Lobatto nodes in √τ; the integrals
use Gauss-Legendre rules (l points per node, p for the price) after the substitution
u = τ·sin²θ, which removes the 1/√(τ-u) singularity and B's √u behavior near expiry. The
iteration starts from Li's QD+ boundary (itself started from Bjerksund & Stensland (1993)'s
exponential form) and takes m Jacobi steps, of FP-B, or of Kim's equation FP-A where
σ² < 2·|r - q| (FP-B diverges there). The boundary is proportional to the strike and does not
depend on spot, so one boundary per (r, q, σ, T) serves every strike, and delta, gamma and
theta re-use it (see `american_greeks`). The price is max(European + premium, K - S), with no
hard switch at the approximate boundary (which would make the price jump there).

Zero rate (puts) or zero dividend yield (calls) means no early exercise: the European price.
A negative rate for puts (or negative yield for calls) is outside the model (the boundary can
split in two) and also returns the European price, which is then a lower bound.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from flashalpha.pricing._arrays import flat_inputs, shaped
from flashalpha.pricing._jit import kernel
from flashalpha.pricing.binomial import DEFAULT_STEPS, crr_tree, deterministic_american
from flashalpha.pricing.black_scholes import bsm_price_scalar
from flashalpha.pricing.implied_vol import implied_vol_scalar
from flashalpha.pricing.normal import INV_SQRT_TWO_PI, norm_cdf_fast
from flashalpha.pricing.status import (
    STATUS_ABOVE_MAXIMUM,
    STATUS_BAD_INPUT,
    STATUS_BELOW_INTRINSIC,
    STATUS_NON_POSITIVE_PRICE,
    STATUS_OK,
    STATUS_ZERO_TIME,
    ImpliedVolStatus,
)

_QUARTER_PI = 0.25 * math.pi
_INV_SQRT_TWO = 1.0 / math.sqrt(2.0)
#: Engine evaluations per American implied vol at most (typically 3 or 4).
MAX_AMERICAN_IV_EVALUATIONS = 16
#: Quotes (dollars) at most this far above an in-the-money American option's exercise value
#: have no meaningful implied vol: the price is exactly the exercise value for every vol below
#: some level and barely moves above it, so a tick of quote noise spans the whole vol range.
MIN_TIME_VALUE = 0.01
#: Prices within this relative distance of the exercise floor have no vol either: the
#: engine's price is flat there to ~1e-7 (the approximate boundary's noise), so the last
#: digits would pick an arbitrary vol.
FLOOR_TOLERANCE = 1e-9


class Scheme(NamedTuple):
    """Discretization of the fast engine, with everything that depends only on it precomputed.

    n + 1 Chebyshev-Lobatto nodes z_j = cos(jπ/n) in z = 2√(τ/T) - 1 (j = n is τ = 0), l
    Gauss-Legendre points θ_k per boundary integral, p for the price integral, m iterations.
    The substitution u = τ·sin²θ puts every quadrature point at a fixed z, so the Chebyshev
    interpolation of H at all points is one matrix product with the node values.
    """

    tau_fraction: np.ndarray  # (n+1,) τ_j / T
    to_coefficients: np.ndarray  # (n+1, n+1) node values -> Chebyshev coefficients
    node_interpolation: np.ndarray  # (n+1, l, n+1) node values -> H at u_jk = τ_j·sin²θ_k
    node_sin: np.ndarray  # (l,)
    node_cos: np.ndarray  # (l,)
    node_weights: np.ndarray  # (l,) Gauss weights times dθ/dy = π/4
    price_interpolation: np.ndarray  # (p, n+1) node values -> H at u_k = T·sin²θ_k
    price_sin: np.ndarray
    price_cos: np.ndarray
    price_weights: np.ndarray
    iterations: int


def _chebyshev_basis(z: np.ndarray, n: int) -> np.ndarray:
    """T_0..T_n at z, with the first and last halved (the Σ'' convention)."""
    basis = np.cos(np.outer(np.arccos(np.clip(z, -1.0, 1.0)), np.arange(n + 1)))
    basis[..., 0] *= 0.5
    basis[..., n] *= 0.5
    return basis


def make_scheme(nodes: int, node_quadrature: int, iterations: int, price_quadrature: int) -> Scheme:
    """n = `nodes` Chebyshev intervals, l = `node_quadrature` points per boundary integral,
    m = `iterations` fixed-point steps, p = `price_quadrature` points for the price."""
    n = nodes
    j = np.arange(n + 1)
    z = np.cos(j * np.pi / n)
    half = np.where((j == 0) | (j == n), 0.5, 1.0)
    to_coefficients = (2.0 / n) * np.cos(np.outer(j, j) * np.pi / n) * half[None, :]
    tau_fraction = (0.5 * (1.0 + z)) ** 2
    y_l, w_l = np.polynomial.legendre.leggauss(node_quadrature)
    theta_l = 0.25 * np.pi * (1.0 + y_l)
    sin_l = np.sin(theta_l)
    # u_jk / T = τ_j/T·sin²θ_k  ->  z_jk = 2·√(τ_j/T)·sinθ_k - 1.
    z_nodes = 2.0 * np.sqrt(tau_fraction)[:, None] * sin_l[None, :] - 1.0
    node_interpolation = _chebyshev_basis(z_nodes.reshape(-1), n) @ to_coefficients
    y_p, w_p = np.polynomial.legendre.leggauss(price_quadrature)
    theta_p = 0.25 * np.pi * (1.0 + y_p)
    price_interpolation = _chebyshev_basis(2.0 * np.sin(theta_p) - 1.0, n) @ to_coefficients
    return Scheme(
        tau_fraction=tau_fraction,
        to_coefficients=np.ascontiguousarray(to_coefficients),
        node_interpolation=np.ascontiguousarray(
            node_interpolation.reshape(n + 1, node_quadrature, n + 1)
        ),
        node_sin=sin_l,
        node_cos=np.cos(theta_l),
        node_weights=w_l * 0.25 * np.pi,
        price_interpolation=np.ascontiguousarray(price_interpolation),
        price_sin=np.sin(theta_p),
        price_cos=np.cos(theta_p),
        price_weights=w_p * 0.25 * np.pi,
        iterations=int(iterations),
    )


#: The live scheme (n = 5, l = 5, m = 3, p = 10): within 1e-3 of QuantLib's accurate
#: QdFpAmericanEngine on the test samples (worst case in tests/pricing/test_american.py).
#: l = 6 is no more accurate (the price quadrature p dominates), l = 4 misses 1e-3 at low vol.
FAST_SCHEME = make_scheme(nodes=5, node_quadrature=5, iterations=3, price_quadrature=10)
#: A reference scheme, about 1e-6 from QuantLib's accurate scheme.
ACCURATE_SCHEME = make_scheme(nodes=16, node_quadrature=32, iterations=10, price_quadrature=48)


def work_size(scheme: Scheme) -> int:
    """Doubles of work space `put_boundary` needs."""
    nodes, points = scheme.tau_fraction.shape[0], scheme.node_sin.shape[0]
    return 2 * nodes * points + points + nodes


@kernel
def _fast_cdf(x: float) -> float:
    """Φ to absolute accuracy (the boundary iteration and the premium integral need no more)."""
    return norm_cdf_fast(x)


@kernel
def _qd_plus_residual(
    log_b: float,
    log_strike: float,
    strike: float,
    sd: float,
    drift: float,
    discount_r: float,
    discount_q: float,
    rate: float,
    div_yield: float,
    vol: float,
    sqrt_tau: float,
    h: float,
    alpha: float,
    beta: float,
    lam: float,
    lam_prime: float,
) -> float:
    """Li (2010)'s QD+ exercise condition for a put (ALO 2016, section 4.1), zero at the QD+
    boundary B = e^log_b: (1 - e^(-qτ)Φ(-d₊))·B + (λ + c₀)·(K - B - p(B)), with
    c₀ = -(1-h)α/(2λ+β-1)·[1/h - e^(rτ)·Θ/(r·(K - B - p)) + λ'/(2λ+β-1)], Θ the put's theta."""
    boundary = math.exp(log_b)
    d_plus = (log_b - log_strike + drift) / sd + 0.5 * sd
    d_minus = d_plus - sd
    cdf_minus = _fast_cdf(-d_minus)
    cdf_plus = _fast_cdf(-d_plus)
    european = strike * discount_r * cdf_minus - boundary * discount_q * cdf_plus
    theta = (
        rate * strike * discount_r * cdf_minus
        - div_yield * boundary * discount_q * cdf_plus
        - vol
        * boundary
        * discount_q
        * INV_SQRT_TWO_PI
        * math.exp(-0.5 * d_plus * d_plus)
        / (2.0 * sqrt_tau)
    )
    gap = strike - boundary - european
    denominator = 2.0 * lam + beta - 1.0
    c0 = -((1.0 - h) * alpha / denominator) * (
        1.0 / h - theta / (rate * discount_r * gap) + lam_prime / denominator
    )
    return (1.0 - discount_q * cdf_plus) * boundary + (lam + c0) * gap


@kernel
def qd_plus_boundary(
    strike: float,
    tau: float,
    rate: float,
    div_yield: float,
    vol: float,
    x_limit: float,
    guess: float,
) -> float:
    """The QD+ boundary at τ by secant steps on ln B inside (0, X), to 1e-7 in ln B (it is
    only the start of the fixed point); the guess is returned if the steps fail."""
    h = 1.0 - math.exp(-rate * tau)
    alpha = 2.0 * rate / (vol * vol)
    beta = 2.0 * (rate - div_yield) / (vol * vol)
    root = math.sqrt((beta - 1.0) ** 2 + 4.0 * alpha / h)
    lam = 0.5 * (-(beta - 1.0) - root)
    lam_prime = alpha / (h * h * root)
    sqrt_tau = math.sqrt(tau)
    sd = vol * sqrt_tau
    drift = (rate - div_yield) * tau
    discount_r = math.exp(-rate * tau)
    discount_q = math.exp(-div_yield * tau)
    log_strike = math.log(strike)
    lo = math.log(x_limit) - 50.0
    hi = math.log(x_limit) - 1e-12
    y0 = math.log(min(max(guess, 1e-300), x_limit * (1.0 - 1e-9)))
    f0 = _qd_plus_residual(
        y0, log_strike, strike, sd, drift, discount_r, discount_q, rate, div_yield, vol,
        sqrt_tau, h, alpha, beta, lam, lam_prime,
    )  # fmt: skip
    y1 = y0 - 1e-3
    f1 = _qd_plus_residual(
        y1, log_strike, strike, sd, drift, discount_r, discount_q, rate, div_yield, vol,
        sqrt_tau, h, alpha, beta, lam, lam_prime,
    )  # fmt: skip
    for _ in range(QD_PLUS_STEPS):
        if not (math.isfinite(f0) and math.isfinite(f1)) or f1 == f0:
            break
        y2 = min(max(y1 - f1 * (y1 - y0) / (f1 - f0), lo), hi)
        y0, f0 = y1, f1
        y1 = y2
        if abs(y1 - y0) < QD_PLUS_TOLERANCE:
            break
        f1 = _qd_plus_residual(
            y1, log_strike, strike, sd, drift, discount_r, discount_q, rate, div_yield, vol,
            sqrt_tau, h, alpha, beta, lam, lam_prime,
        )  # fmt: skip
    boundary = math.exp(y1)
    if not (0.0 < boundary < x_limit) or not math.isfinite(boundary):
        return guess
    return boundary


#: Secant steps and tolerance (in ln B) of the QD+ start: it only has to be close enough for
#: the fixed point to converge in `Scheme.iterations` steps. Two steps (three residuals) are
#: as accurate as three against QuantLib (3,000 random options: worst 7.5e-4 either way); one
#: is not (2.1e-3).
QD_PLUS_STEPS = 2
QD_PLUS_TOLERANCE = 1e-3

#: Which fixed-point equation: 0 = smooth pasting (FP-B) everywhere, 1 = Kim's (FP-A)
#: everywhere, 2 = automatic (see `fixed_point_a`). Module constant for experiments.
FIXED_POINT_RULE = 2


@kernel
def fixed_point_a(rate: float, div_yield: float, vol: float, years: float) -> bool:
    """Whether to iterate Kim's equation (FP-A) rather than the smooth-pasting one (FP-B).

    FP-B converges faster but oscillates and diverges at low vol against the carry (σ² small
    next to |r - q|: ATM puts at σ = 1-4% with r - q = 3-5% were off by up to 0.28 after four
    iterations); FP-A stays stable there. Measured against QuantLib's high-precision scheme,
    the switch at σ² < 2·|r - q| keeps the fast scheme within ~1e-3 on both sides."""
    if FIXED_POINT_RULE == 0:
        return False
    if FIXED_POINT_RULE == 1:
        return True
    return vol * vol < _FP_A_RATIO * abs(rate - div_yield)


_FP_A_RATIO = 2.0


@kernel
def put_boundary(
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    scheme: Scheme,
    h_nodes: np.ndarray,
    work: np.ndarray,
    equation: int = 0,
) -> float:
    """Exercise boundary of an American put (rate > 0): H = ln(B/X)² at the n + 1 nodes into
    `h_nodes`; returns ln X. `work` holds at least `work_size(scheme)` doubles. `equation`:
    0 chooses (`fixed_point_a`), 1 forces Kim's FP-A, 2 the smooth-pasting FP-B."""
    nodes = scheme.tau_fraction.shape[0]
    points = scheme.node_sin.shape[0]
    grow_r = work[: nodes * points]
    grow_q = work[nodes * points : 2 * nodes * points]
    h_points = work[2 * nodes * points : 2 * nodes * points + points]
    h_next = work[2 * nodes * points + points : 2 * nodes * points + points + nodes]
    carry = rate - div_yield
    x_limit = strike * min(1.0, rate / div_yield) if div_yield > 0.0 else strike
    log_x = math.log(x_limit)
    log_strike = math.log(strike)
    # Start: Li's QD+ boundary at every node, itself started from the perpetual boundary joined
    # to X in Bjerksund & Stensland (1993)'s exponential form.
    variance = vol * vol
    omega = 2.0 * carry / variance
    lam = 0.5 * (-(omega - 1.0) - math.sqrt((omega - 1.0) ** 2 + 8.0 * rate / variance))
    perpetual = strike * lam / (lam - 1.0)
    for j in range(nodes):
        tau = years * scheme.tau_fraction[j]
        h_nodes[j] = 0.0
        if tau <= 0.0:
            continue
        for k in range(points):
            u = tau * scheme.node_sin[k] ** 2
            grow_r[j * points + k] = scheme.node_weights[k] * math.exp(rate * u)
            grow_q[j * points + k] = scheme.node_weights[k] * math.exp(div_yield * u)
        guess = x_limit * 0.999
        if perpetual < x_limit:
            speed = (carry * tau + 2.0 * vol * math.sqrt(tau)) * x_limit / (x_limit - perpetual)
            speed = max(speed, 2.0 * vol * math.sqrt(tau))
            guess = perpetual + (x_limit - perpetual) * math.exp(-speed)
        boundary = qd_plus_boundary(strike, tau, rate, div_yield, vol, x_limit, guess)
        h_nodes[j] = math.log(boundary / x_limit) ** 2

    use_a = fixed_point_a(rate, div_yield, vol, years) if equation == 0 else equation == 1
    for _ in range(scheme.iterations):
        # Jacobi: every node from the previous boundary; the new values go in place after.
        for j in range(nodes):
            tau = years * scheme.tau_fraction[j]
            if tau <= 0.0:
                continue
            for k in range(points):
                acc = 0.0
                for i in range(nodes):
                    acc += scheme.node_interpolation[j, k, i] * h_nodes[i]
                h_points[k] = acc
            sqrt_tau = math.sqrt(tau)
            sd = vol * sqrt_tau
            log_b = log_x - math.sqrt(max(h_nodes[j], 0.0))
            # Terms at u = 0, against the strike.
            d_plus = (log_b - log_strike + carry * tau) / sd + 0.5 * sd
            d_minus = d_plus - sd
            if use_a:
                numerator = _fast_cdf(d_minus)
                denominator = _fast_cdf(d_plus)
            else:
                numerator = INV_SQRT_TWO_PI * math.exp(-0.5 * d_minus * d_minus) / sd
                denominator = INV_SQRT_TWO_PI * math.exp(-0.5 * d_plus * d_plus) / sd + _fast_cdf(
                    d_plus
                )
            # Integrals over u = τ·sin²θ: du = 2τ·sinθ·cosθ·dθ and √(τ - u) = √τ·cosθ, so the
            # 1/(σ√(τ-u)) factors cancel cosθ.
            integral_n = 0.0
            integral_d = 0.0
            for k in range(points):
                sin_t = scheme.node_sin[k]
                cos_t = scheme.node_cos[k]
                w = sqrt_tau * cos_t
                log_ratio = math.sqrt(max(h_points[k], 0.0)) - math.sqrt(max(h_nodes[j], 0.0))
                sw = vol * w
                dp = (log_ratio + carry * w * w) / sw + 0.5 * sw
                dm = dp - sw
                jacobian = 2.0 * tau * sin_t
                if use_a:  # Kim's equation: Φ terms, du keeps its cosθ
                    integral_n += grow_r[j * points + k] * jacobian * cos_t * _fast_cdf(dm)
                    integral_d += grow_q[j * points + k] * jacobian * cos_t * _fast_cdf(dp)
                else:
                    pdf_p = INV_SQRT_TWO_PI * math.exp(-0.5 * dp * dp)
                    pdf_m = INV_SQRT_TWO_PI * math.exp(-0.5 * dm * dm)
                    integral_n += grow_r[j * points + k] * jacobian * pdf_m / sd
                    integral_d += (
                        grow_q[j * points + k] * jacobian * (cos_t * _fast_cdf(dp) + pdf_p / sd)
                    )
            numerator += rate * integral_n
            denominator += div_yield * integral_d
            boundary = min(strike * math.exp(-carry * tau) * numerator / denominator, x_limit)
            h_next[j] = math.log(boundary / x_limit) ** 2 if boundary > 0.0 else h_nodes[j]
        for j in range(nodes):
            if years * scheme.tau_fraction[j] > 0.0:
                h_nodes[j] = h_next[j]
    return log_x


@kernel
def _premium_term(
    log_moneyness: float, years: float, u: float, rate: float, div_yield: float, vol: float,
    strike: float, spot: float,
) -> float:  # fmt: skip
    """Integrand of the early exercise premium at u: r·K·e^(-rw²)·Φ(-d₋) - q·S·e^(-qw²)·Φ(-d₊),
    w² = T - u, with ln(S/B(u)) = `log_moneyness`."""
    w2 = years - u
    sw = vol * math.sqrt(w2)
    dp = (log_moneyness + (rate - div_yield) * w2) / sw + 0.5 * sw
    dm = dp - sw
    return rate * strike * math.exp(-rate * w2) * _fast_cdf(-dm) - div_yield * spot * math.exp(
        -div_yield * w2
    ) * _fast_cdf(-dp)


@kernel
def put_price(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    scheme: Scheme,
    h_nodes: np.ndarray,
    log_x_unit: float,
) -> float:
    """American put from a boundary solved for a unit strike over exactly `years`.

    The boundary is proportional to the strike (the problem is homogeneous), so one boundary
    serves every strike and spot: ln B(u) = ln K + ln X₁ - √H(u).
    """
    log_k = math.log(strike)
    log_spot = math.log(spot)
    # No switch to the exercise value below B(T): max(European + premium, K - S) is continuous
    # where the approximate boundary and the integral disagree slightly, a hard switch would
    # jump there (and finite-difference greeks with it).
    european = bsm_price_scalar(spot, strike, years, rate, div_yield, vol, False)
    nodes = h_nodes.shape[0]
    premium = 0.0
    for k in range(scheme.price_sin.shape[0]):
        h = 0.0
        for i in range(nodes):
            h += scheme.price_interpolation[k, i] * h_nodes[i]
        u = years * scheme.price_sin[k] ** 2  # du = 2T·sinθ·cosθ·dθ
        log_moneyness = log_spot - (log_k + log_x_unit - math.sqrt(max(h, 0.0)))
        premium += (
            scheme.price_weights[k]
            * 2.0
            * years
            * scheme.price_sin[k]
            * scheme.price_cos[k]
            * _premium_term(log_moneyness, years, u, rate, div_yield, vol, strike, spot)
        )
    return max(european + premium, strike - spot)


@kernel
def put_price_shorter(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    scheme: Scheme,
    h_nodes: np.ndarray,
    log_x_unit: float,
    boundary_years: float,
    coefficients: np.ndarray,
) -> float:
    """As `put_price` for an expiry `years` ≤ `boundary_years` (the span of the boundary), with
    the boundary evaluated by Clenshaw's recurrence at arbitrary times (theta, charm)."""
    if years <= 0.0:
        return max(strike - spot, 0.0)
    nodes = h_nodes.shape[0]
    for k in range(nodes):
        acc = 0.0
        for i in range(nodes):
            acc += scheme.to_coefficients[k, i] * h_nodes[i]
        coefficients[k] = acc
    log_k = math.log(strike)
    log_spot = math.log(spot)
    european = bsm_price_scalar(spot, strike, years, rate, div_yield, vol, False)
    premium = 0.0
    for k in range(scheme.price_sin.shape[0]):
        u = years * scheme.price_sin[k] ** 2
        z = 2.0 * math.sqrt(u / boundary_years) - 1.0
        h = _clenshaw(coefficients, z)
        log_moneyness = log_spot - (log_k + log_x_unit - math.sqrt(max(h, 0.0)))
        premium += (
            scheme.price_weights[k]
            * 2.0
            * years
            * scheme.price_sin[k]
            * scheme.price_cos[k]
            * _premium_term(log_moneyness, years, u, rate, div_yield, vol, strike, spot)
        )
    return max(european + premium, strike - spot)


@kernel
def _clenshaw(coefficients: np.ndarray, z: float) -> float:
    """Σ'' c_k T_k(z), first and last coefficients halved."""
    n = coefficients.shape[0] - 1
    b1 = 0.5 * coefficients[n]
    b2 = 0.0
    for k in range(n - 1, 0, -1):
        b1, b2 = 2.0 * z * b1 - b2 + coefficients[k], b1
    return z * b1 - b2 + 0.5 * coefficients[0]


@kernel
def early_exercise_matters(put_rate: float, years: float) -> bool:
    """Whether the put-equivalent (rate = the put's rate, the call's dividend yield) can be
    worth more than its European twin. At r ≤ 0 it never is (at r < 0 with q < r the boundary
    splits in two, which we do not model: the European price is then a lower bound); when
    r·T < 1e-15 the premium, at most about r·K·T, is below double precision."""
    return put_rate * years > 1e-15


@kernel
def _valid(spot, strike, years, rate, div_yield, vol) -> bool:
    return (
        0.0 < spot < math.inf
        and 0.0 < strike < math.inf
        and 0.0 <= years < math.inf
        and 0.0 <= vol < math.inf
        and math.isfinite(rate)
        and math.isfinite(div_yield)
    )


@kernel
def _as_put(spot, strike, rate, div_yield, is_call):
    """McDonald-Schroder symmetry: a call is the put with spot and strike, rate and yield
    swapped."""
    if is_call:
        return strike, spot, div_yield, rate
    return spot, strike, rate, div_yield


@kernel
def american_fast_scalar(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
    scheme: Scheme,
    h_nodes: np.ndarray,
    work: np.ndarray,
) -> float:
    """One American option on the fast engine, dollars; NaN for bad input."""
    if not _valid(spot, strike, years, rate, div_yield, vol):
        return math.nan
    sign = 1.0 if is_call else -1.0
    if years == 0.0 or vol == 0.0:
        return deterministic_american(spot, strike, years, rate, div_yield, sign, True)[0]
    s, k, r, q = _as_put(spot, strike, rate, div_yield, is_call)
    if not early_exercise_matters(r, years):  # European (see early_exercise_matters)
        return max(bsm_price_scalar(s, k, years, r, q, vol, False), k - s)
    log_x_unit = put_boundary(1.0, years, r, q, vol, scheme, h_nodes, work)
    return put_price(s, k, years, r, q, vol, scheme, h_nodes, log_x_unit)


def _american_fast_loop(spot, strike, years, rate, div_yield, vol, is_call, scheme, out):
    n = spot.shape[0]
    chunk = 64
    nodes = scheme.tau_fraction.shape[0]
    size = 2 * nodes * scheme.node_sin.shape[0] + scheme.node_sin.shape[0] + nodes
    for c in prange((n + chunk - 1) // chunk):
        h_nodes = np.empty(nodes)
        work = np.empty(size)
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            out[i] = american_fast_scalar(
                spot[i], strike[i], years[i], rate[i], div_yield[i], vol[i], is_call[i],
                scheme, h_nodes, work,
            )  # fmt: skip


_american_fast_serial = kernel(_american_fast_loop)
_american_fast_parallel = kernel(_american_fast_loop, parallel=True)

_SCHEMES = {"fast": FAST_SCHEME, "accurate": ACCURATE_SCHEME}


def american_price(
    spot,
    strike,
    years,
    rate,
    div_yield,
    vol,
    is_call,
    method: str = "crr",
    steps: int = DEFAULT_STEPS,
    *,
    dividend_times=None,
    dividend_amounts=None,
    parallel: bool = False,
):
    """American option prices in dollars, broadcast over numpy arrays.

    Units as `bsm_price`. `method`: "crr" (Cox-Ross-Rubinstein tree with `steps` steps;
    supports discrete cash dividends, see `crr_tree`), "fast" (Andersen-Lake-Offengenden,
    the live engine, within 1e-3 of QuantLib's accurate QD+/fixed-point engine on our tests)
    or "accurate" (the same with a fine scheme, ~1e-6). Bad rows give NaN.
    """
    if method == "crr":
        return crr_tree(
            spot, strike, years, rate, div_yield, vol, is_call,
            american=True, steps=steps, dividend_times=dividend_times,
            dividend_amounts=dividend_amounts, parallel=parallel,
        ).price  # fmt: skip
    if method not in _SCHEMES:
        raise ValueError(f"method must be 'crr', 'fast' or 'accurate', got {method!r}")
    if dividend_times is not None or dividend_amounts is not None:
        raise ValueError("discrete dividends are supported by method='crr' only")
    shape, (s, k, t, r, q, v), (c,) = flat_inputs(
        (spot, strike, years, rate, div_yield, vol), (is_call,)
    )
    out = np.empty(s.shape[0])
    from flashalpha.pricing.american_batch import american_fast_prices

    american_fast_prices(s, k, t, r, q, v, c, _SCHEMES[method], out, parallel=parallel)
    return shaped(out, shape)


@kernel
def _price_given_boundary(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
    scheme: Scheme,
    h_nodes: np.ndarray,
    log_x_unit: float,
    boundary_years: float,
    coefficients: np.ndarray,
) -> float:
    """The option (call or put) priced on a boundary solved for its put-equivalent's r, q, σ
    and `boundary_years`; `years` may be shorter (theta)."""
    s, k, r, q = _as_put(spot, strike, rate, div_yield, is_call)
    if not early_exercise_matters(r, years):
        return max(bsm_price_scalar(s, k, years, r, q, vol, False), k - s)
    if years == boundary_years:
        return put_price(s, k, years, r, q, vol, scheme, h_nodes, log_x_unit)
    return put_price_shorter(
        s, k, years, r, q, vol, scheme, h_nodes, log_x_unit, boundary_years, coefficients
    )


@kernel
def _solve_boundary(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
    scheme: Scheme,
    h_nodes: np.ndarray,
    work: np.ndarray,
) -> float:
    _s, _k, r, q = _as_put(spot, strike, rate, div_yield, is_call)
    if not early_exercise_matters(r, years):
        return 0.0
    return put_boundary(1.0, years, r, q, vol, scheme, h_nodes, work)


#: Rows of the output of `american_fast_greeks_into`.
AMERICAN_GREEK_NAMES = (
    "price",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
    "vanna",
    "charm",
    "vomma",
)


@kernel
def american_fast_greeks_into(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    vol: float,
    is_call: bool,
    scheme: Scheme,
    h_nodes: np.ndarray,
    h_up: np.ndarray,
    h_down: np.ndarray,
    work: np.ndarray,
    coefficients: np.ndarray,
    out: np.ndarray,
    col: int,
) -> None:
    """Price and greeks of one American option on the fast engine into out[0:9, col], in the
    order of AMERICAN_GREEK_NAMES and the units of `greeks` (vega per 1.00 vol, theta and charm
    per year, rho per 1.00 rate).

    Finite differences of the engine, whose price is a smooth function of its inputs (fixed
    nodes, fixed iteration count): spot and time bumps re-use the boundary (it depends on
    neither), vol bumps (vega, vanna, vomma) solve two more boundaries, the rate bump (rho,
    forward difference) one more.
    """
    if not _valid(spot, strike, years, rate, div_yield, vol):
        for g in range(9):
            out[g, col] = math.nan
        return
    sign = 1.0 if is_call else -1.0
    if years == 0.0 or vol == 0.0:
        value, delta, theta = deterministic_american(
            spot, strike, years, rate, div_yield, sign, True
        )
        for g in range(9):
            out[g, col] = 0.0
        out[0, col], out[1, col], out[4, col] = value, delta, theta
        return
    log_x = _solve_boundary(
        spot, strike, years, rate, div_yield, vol, is_call, scheme, h_nodes, work
    )
    h = 5e-4 * spot
    dt = min(1e-4, 0.25 * years)

    def price(s, t, v, nodes, lx):
        return _price_given_boundary(
            s, strike, t, rate, div_yield, v, is_call, scheme, nodes, lx, years, coefficients
        )

    p0 = price(spot, years, vol, h_nodes, log_x)
    p_up = price(spot + h, years, vol, h_nodes, log_x)
    p_down = price(spot - h, years, vol, h_nodes, log_x)
    delta = (p_up - p_down) / (2.0 * h)
    # Time derivatives by the second-order backward difference (the boundary spans [0, T]):
    # -∂f/∂T ≈ (4·f(T - dt) - f(T - 2dt) - 3·f(T))/(2dt).
    p_later = price(spot, years - dt, vol, h_nodes, log_x)
    p_later2 = price(spot, years - 2.0 * dt, vol, h_nodes, log_x)
    delta_later = (
        price(spot + h, years - dt, vol, h_nodes, log_x)
        - price(spot - h, years - dt, vol, h_nodes, log_x)
    ) / (2.0 * h)
    delta_later2 = (
        price(spot + h, years - 2.0 * dt, vol, h_nodes, log_x)
        - price(spot - h, years - 2.0 * dt, vol, h_nodes, log_x)
    ) / (2.0 * h)
    dv = max(1e-3 * vol, 1e-5)
    log_x_up = _solve_boundary(
        spot, strike, years, rate, div_yield, vol + dv, is_call, scheme, h_up, work
    )
    log_x_down = _solve_boundary(
        spot, strike, years, rate, div_yield, vol - dv, is_call, scheme, h_down, work
    )
    pv_up = price(spot, years, vol + dv, h_up, log_x_up)
    pv_down = price(spot, years, vol - dv, h_down, log_x_down)
    delta_v_up = (
        price(spot + h, years, vol + dv, h_up, log_x_up)
        - price(spot - h, years, vol + dv, h_up, log_x_up)
    ) / (2.0 * h)
    delta_v_down = (
        price(spot + h, years, vol - dv, h_down, log_x_down)
        - price(spot - h, years, vol - dv, h_down, log_x_down)
    ) / (2.0 * h)
    dr = 1e-4
    log_x_rate = _solve_boundary(
        spot, strike, years, rate + dr, div_yield, vol, is_call, scheme, h_up, work
    )
    p_rate = _price_given_boundary(
        spot, strike, years, rate + dr, div_yield, vol, is_call, scheme, h_up, log_x_rate,
        years, coefficients,
    )  # fmt: skip
    out[0, col] = p0
    out[1, col] = delta
    out[2, col] = (p_up - 2.0 * p0 + p_down) / (h * h)
    out[3, col] = (pv_up - pv_down) / (2.0 * dv)
    out[4, col] = (4.0 * p_later - p_later2 - 3.0 * p0) / (2.0 * dt)
    out[5, col] = (p_rate - p0) / dr
    out[6, col] = (delta_v_up - delta_v_down) / (2.0 * dv)
    out[7, col] = (4.0 * delta_later - delta_later2 - 3.0 * delta) / (2.0 * dt)
    out[8, col] = (pv_up - 2.0 * p0 + pv_down) / (dv * dv)


@kernel
def american_implied_vol_scalar(
    price: float,
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    is_call: bool,
    scheme: Scheme,
    h_nodes: np.ndarray,
    work: np.ndarray,
    start_vol: float = 0.0,
    start_vega: float = 0.0,
) -> tuple[float, int, int]:
    """(vol, ImpliedVolStatus, engine evaluations) inverting the fast engine for one option.

    `start_vol` > 0 (with `start_vega`, the American vega there, if known) replaces the
    European start, e.g. the mid's vol when solving for the bid and the ask.

    The European implied vol of the price is an upper bound (an American option is worth at
    least its European twin), and the start; then one Newton step with the European vega and
    secant steps, safeguarded by bisection of the bracket, to 1e-10 relative in vol.
    """
    if not (math.isfinite(price) and _valid(spot, strike, years, rate, div_yield, 0.0)):
        return math.nan, STATUS_BAD_INPUT, 0
    if years == 0.0:
        return math.nan, STATUS_ZERO_TIME, 0
    if price <= 0.0:
        return math.nan, STATUS_NON_POSITIVE_PRICE, 0
    sign = 1.0 if is_call else -1.0
    if price >= (spot if is_call else strike):
        return math.nan, STATUS_ABOVE_MAXIMUM, 0
    floor = deterministic_american(spot, strike, years, rate, div_yield, sign, True)[0]
    if price <= floor + FLOOR_TOLERANCE * price:
        # At the exercise value every vol up to the one that moves the boundary past the spot
        # gives this price (no vol 0.0 here, unlike a European option).
        return math.nan, STATUS_BELOW_INTRINSIC, 0

    def f(v):
        return (
            american_fast_scalar(
                spot, strike, years, rate, div_yield, v, is_call, scheme, h_nodes, work
            )
            - price
        )

    # Bracket [lo, hi] with f(lo) < 0 < f(hi); secant steps from the last two iterates,
    # bisection whenever a step leaves the bracket.
    lo, hi = 0.0, math.inf
    if start_vol > 0.0:
        vol = start_vol
    else:
        guess, code, _ = implied_vol_scalar(price, spot, strike, years, rate, div_yield, is_call)
        vol = guess if code == STATUS_OK and guess > 0.0 else 0.3
    value = f(vol)
    evaluations = 1
    previous_vol, previous_value = math.nan, math.nan
    for _ in range(MAX_AMERICAN_IV_EVALUATIONS):
        if value > 0.0:
            hi = vol
        else:
            lo = vol
        if value == 0.0:
            break
        if math.isnan(previous_vol):
            # First step: Newton with the European vega (an American vega is close to it
            # wherever early exercise is not dominant, and the bracket guards the rest).
            vega = (
                start_vega
                if start_vega > 0.0
                else bsm_greeks_vega(spot, strike, years, rate, div_yield, vol)
            )
            step = -value / vega if vega > 1e-300 else math.nan
        else:
            slope = (value - previous_value) / (vol - previous_vol)
            step = -value / slope if slope > 0.0 else math.nan
        if abs(step) <= 1e-10 * vol:  # converged (also where vol + step rounds to vol)
            if lo <= vol + step <= hi:
                vol += step
            break
        candidate = vol + step
        if not (lo < candidate < hi):
            candidate = 0.5 * (lo + hi) if hi < math.inf else 2.0 * max(vol, 0.05)
        if abs(candidate - vol) <= 1e-10 * vol:
            vol = candidate
            break
        previous_vol, previous_value = vol, value
        vol = candidate
        value = f(vol)
        evaluations += 1
    if not math.isfinite(vol) or vol > 100.0:
        return math.nan, STATUS_ABOVE_MAXIMUM, evaluations
    return vol, STATUS_OK, evaluations


@kernel
def exercise_floor(spot, strike, years, rate, div_yield, is_call) -> float:
    """The American option's lower bound: the best deterministic exercise value (intrinsic
    value now, or the discounted forward's at a later date), dollars."""
    sign = 1.0 if is_call else -1.0
    return deterministic_american(spot, strike, years, rate, div_yield, sign, True)[0]


@kernel
def quote_has_vol(quote: float, floor: float) -> bool:
    """Whether an American quote carries an implied vol: more than MIN_TIME_VALUE above a
    positive exercise value (any positive quote of an out-of-the-money option does)."""
    if floor <= 0.0:
        return quote > 0.0
    return quote - floor > MIN_TIME_VALUE * (1.0 + 1e-6)


@kernel
def bsm_greeks_vega(spot, strike, years, rate, div_yield, vol) -> float:
    """European vega, dollars per 1.00 of vol."""
    deviation = vol * math.sqrt(years)
    forward_ratio = spot * math.exp(-div_yield * years) / (strike * math.exp(-rate * years))
    d1 = math.log(forward_ratio) / deviation + 0.5 * deviation
    return (
        spot
        * math.exp(-div_yield * years)
        * INV_SQRT_TWO_PI
        * math.exp(-0.5 * d1 * d1)
        * math.sqrt(years)
    )


def _american_iv_loop(price, spot, strike, years, rate, div_yield, is_call, scheme, vol, status):
    n = price.shape[0]
    chunk = 64
    nodes = scheme.tau_fraction.shape[0]
    size = 2 * nodes * scheme.node_sin.shape[0] + scheme.node_sin.shape[0] + nodes
    for c in prange((n + chunk - 1) // chunk):
        h_nodes = np.empty(nodes)
        work = np.empty(size)
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            v, code, _ = american_implied_vol_scalar(
                price[i], spot[i], strike[i], years[i], rate[i], div_yield[i], is_call[i],
                scheme, h_nodes, work,
            )  # fmt: skip
            vol[i] = v
            status[i] = code


_american_iv_serial = kernel(_american_iv_loop)
_american_iv_parallel = kernel(_american_iv_loop, parallel=True)


def american_implied_vol(
    price,
    spot,
    strike,
    years,
    rate,
    div_yield,
    is_call,
    return_status: bool = False,
    *,
    method: str = "fast",
    parallel: bool = False,
):
    """Implied volatility of American option prices under the fast engine (or "accurate").

    Inputs and outputs as `implied_vol` (NaN and an `ImpliedVolStatus` per row where no vol
    exists: below the American lower bound max(intrinsic, forward intrinsic), at or above
    the upper bound S (calls) or K (puts), no time, no price, bad input). Solved to 1e-10 in vol
    on the engine's own prices.
    """
    if method not in _SCHEMES:
        raise ValueError(f"method must be 'fast' or 'accurate', got {method!r}")
    shape, (p, s, k, t, r, q), (c,) = flat_inputs(
        (price, spot, strike, years, rate, div_yield), (is_call,)
    )
    vol = np.empty(p.shape[0])
    status = np.empty(p.shape[0], dtype=np.uint8)
    from flashalpha.pricing.american_batch import american_fast_implied_vols

    american_fast_implied_vols(p, s, k, t, r, q, c, _SCHEMES[method], vol, status,
                               parallel=parallel)  # fmt: skip
    if not return_status:
        return shaped(vol, shape)
    if shape == ():
        return float(vol[0]), ImpliedVolStatus(int(status[0]))
    return vol.reshape(shape), status.reshape(shape)


class AmericanGreeks(NamedTuple):
    """Price and greeks of American options on the fast engine (units as `Greeks`)."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray
    vanna: np.ndarray
    charm: np.ndarray
    vomma: np.ndarray


def _american_greeks_loop(spot, strike, years, rate, div_yield, vol, is_call, scheme, out):
    n = spot.shape[0]
    chunk = 64
    nodes = scheme.tau_fraction.shape[0]
    size = 2 * nodes * scheme.node_sin.shape[0] + scheme.node_sin.shape[0] + nodes
    for c in prange((n + chunk - 1) // chunk):
        h_nodes = np.empty(nodes)
        h_up = np.empty(nodes)
        h_down = np.empty(nodes)
        coefficients = np.empty(nodes)
        work = np.empty(size)
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            american_fast_greeks_into(
                spot[i], strike[i], years[i], rate[i], div_yield[i], vol[i], is_call[i],
                scheme, h_nodes, h_up, h_down, work, coefficients, out, i,
            )  # fmt: skip


_american_greeks_serial = kernel(_american_greeks_loop)
_american_greeks_parallel = kernel(_american_greeks_loop, parallel=True)


def american_greeks(
    spot,
    strike,
    years,
    rate,
    div_yield,
    vol,
    is_call,
    *,
    method: str = "fast",
    parallel: bool = False,
) -> AmericanGreeks:
    """Price, delta, gamma, vega, theta, rho, vanna, charm, vomma of American options by
    finite differences of the fast engine (see `american_fast_greeks_into`)."""
    if method not in _SCHEMES:
        raise ValueError(f"method must be 'fast' or 'accurate', got {method!r}")
    shape, (s, k, t, r, q, v), (c,) = flat_inputs(
        (spot, strike, years, rate, div_yield, vol), (is_call,)
    )
    out = np.empty((len(AMERICAN_GREEK_NAMES), s.shape[0]))
    loop = _american_greeks_parallel if parallel else _american_greeks_serial
    loop(s, k, t, r, q, v, c, _SCHEMES[method], out)
    return AmericanGreeks(*(shaped(row, shape) for row in out))
