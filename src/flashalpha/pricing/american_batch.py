"""The fast American engine over blocks of options in lockstep, so that LLVM vectorizes it.

`american.put_boundary` and `american.put_price` solve one option at a time: every quadrature
point is a chain of scalar libm calls (exp, erfc), about 40 ns each, and an option needs ~150
of them. Here the same algorithm (same scheme, same QD+ start with the same secant steps, same
Jacobi fixed-point iterations, same premium integral) runs on `lanes` options at once, with
every loop innermost over the options and the transcendental functions from `vector_math`
(branch-free, SIMD). Per-option decisions become per-lane selects:

- the secant steps of the QD+ start stop per lane when the scalar engine would (masks);
- FP-A or FP-B per lane (both integrands need Φ and φ at d₊ and d₋, so computing both and
  selecting costs nothing extra).

Prices agree with the scalar engine to round-off (the vector exp, ln and Φ differ from libm
by an ulp or two), ~1e-13 on spot 100.

Layout: per-lane values are arrays of `lanes`; per-(node, lane) values rows of n·lanes with
the node major (active nodes j = 0..n-1, τ_j > 0; node n is τ = 0, where H = 0); per-(node,
point, lane) values rows of n·l·lanes. `Work` holds them as rows of one 2-D array.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from flashalpha.pricing._jit import kernel
from flashalpha.pricing.american import (
    FLOOR_TOLERANCE,
    MAX_AMERICAN_IV_EVALUATIONS,
    QD_PLUS_STEPS,
    QD_PLUS_TOLERANCE,
    Scheme,
    _as_put,
    _valid,
    bsm_greeks_vega,
    early_exercise_matters,
    exercise_floor,
    fixed_point_a,
)
from flashalpha.pricing.binomial import deterministic_american
from flashalpha.pricing.black_scholes import bsm_price_scalar
from flashalpha.pricing.implied_vol import implied_vol_scalar
from flashalpha.pricing.normal import INV_SQRT_TWO_PI
from flashalpha.pricing.status import (
    STATUS_ABOVE_MAXIMUM,
    STATUS_BAD_INPUT,
    STATUS_BELOW_INTRINSIC,
    STATUS_NON_POSITIVE_PRICE,
    STATUS_OK,
    STATUS_ZERO_TIME,
)
from flashalpha.pricing.vector_math import cdf_into, exp_into, log_into

# Rows of the work array. Per lane (first `lanes` entries used):
(
    L_CARRY, L_XLIM, L_LOGX, L_PERP, L_USE_A, L_S, L_K, L_T, L_R, L_Q, L_V,
    L_A, L_B, L_C,
) = range(14)  # fmt: skip
# Per (node, lane):
(
    J_TAU, J_SQRT_TAU, J_SD, J_DRIFT, J_DR, J_DQ, J_QH, J_ALPHA, J_BETA, J_LAM, J_LAMP,
    J_R, J_Q, J_V, J_DISC, J_GUESS, J_LO, J_HI, J_Y0, J_F0, J_Y1, J_F1, J_ACTIVE,
    J_A, J_B, J_C, J_D, J_E, J_F, J_G, J_H,
) = range(14, 45)  # fmt: skip
# Per (node, point, lane) or (price point, lane):
(P_GROW_R, P_GROW_Q, P_HP, P_DP, P_DM, P_CP, P_CM, P_EP, P_EM, P_A) = range(45, 55)
WORK_ROWS = 55


def block_lanes(scheme: Scheme) -> int:
    """Options per block at most: 128 for small schemes (each stage's loop and array-view
    overhead is paid per block: 64 lanes are ~5% slower, 32 ~20%), 8 for big ones (the work
    array then stays ~1 MB)."""
    points = (scheme.tau_fraction.shape[0] - 1) * scheme.node_sin.shape[0]
    return 128 if points <= 64 else 8


@kernel
def _fit_lanes(lanes: int, count: int) -> int:
    """Fewer lanes for small batches (a multiple of 8, the AVX-512 width)."""
    return max(8, min(lanes, (count + 7) // 8 * 8))


def work_shape(scheme: Scheme, lanes: int) -> tuple[int, int]:
    nodes = scheme.tau_fraction.shape[0]
    points = max((nodes - 1) * scheme.node_sin.shape[0], scheme.price_sin.shape[0], nodes)
    return WORK_ROWS, points * lanes


@kernel
def _qd_residual(y: np.ndarray, out: np.ndarray, w: np.ndarray, bits: np.ndarray, nb: int):
    """Li's QD+ exercise condition (see american._qd_plus_residual) at ln B = y, per (node,
    lane), unit strike, into out."""
    boundary = w[J_A]
    d_plus = w[J_B]
    d_minus = w[J_C]
    cdf_minus = w[J_D]
    cdf_plus = w[J_E]
    pdf_plus = w[J_F]
    scratch = w[J_G]
    exp_into(y, boundary, bits, nb)
    tau_sd = w[J_SD]
    drift = w[J_DRIFT]
    for i in range(nb):
        sd = tau_sd[i]
        dp = (y[i] + drift[i]) / sd + 0.5 * sd
        d_plus[i] = -dp
        d_minus[i] = sd - dp
    cdf_into(d_minus, cdf_minus, scratch, bits, nb)
    cdf_into(d_plus, cdf_plus, pdf_plus, bits, nb)
    dr_ = w[J_DR]
    dq_ = w[J_DQ]
    qh = w[J_QH]
    alpha_ = w[J_ALPHA]
    beta_ = w[J_BETA]
    lam_ = w[J_LAM]
    lamp = w[J_LAMP]
    r_ = w[J_R]
    q_ = w[J_Q]
    v_ = w[J_V]
    sqrt_tau = w[J_SQRT_TAU]
    for i in range(nb):
        b = boundary[i]
        cm = cdf_minus[i]
        cp = cdf_plus[i]
        dr = dr_[i]
        dq = dq_[i]
        european = dr * cm - b * dq * cp
        theta = (
            r_[i] * dr * cm
            - q_[i] * b * dq * cp
            - v_[i] * b * dq * INV_SQRT_TWO_PI * pdf_plus[i] / (2.0 * sqrt_tau[i])
        )
        gap = 1.0 - b - european
        denominator = 2.0 * lam_[i] + beta_[i] - 1.0
        h = qh[i]
        c0 = -((1.0 - h) * alpha_[i] / denominator) * (
            1.0 / h - theta / (r_[i] * dr * gap) + lamp[i] / denominator
        )
        out[i] = (1.0 - dq * cp) * b + (lam_[i] + c0) * gap


@kernel
def block_boundary(
    lanes: int,
    scheme: Scheme,
    h_nodes: np.ndarray,
    w: np.ndarray,
    bits: np.ndarray,
    force_a: bool = False,
) -> None:
    """Put boundaries (unit strike) of the lanes' (T, r, q, σ) in w[L_T], w[L_R], w[L_Q],
    w[L_V] (put-equivalent, r·T > 0, σ > 0, T > 0): H at the nodes into h_nodes (nodes,
    lanes); ln X into w[L_LOGX], r - q into w[L_CARRY]. As american.put_boundary with
    `equation` 0 (1 if `force_a`: Kim's FP-A everywhere, as the chain tables)."""
    nodes = scheme.tau_fraction.shape[0]
    nact = nodes - 1
    points = scheme.node_sin.shape[0]
    nb = nact * lanes
    t_ = w[L_T]
    r_ = w[L_R]
    q_ = w[L_Q]
    v_ = w[L_V]
    carry_ = w[L_CARRY]
    xlim_ = w[L_XLIM]
    logx_ = w[L_LOGX]
    perp_ = w[L_PERP]
    use_a = w[L_USE_A]
    for b in range(lanes):
        r = r_[b]
        q = q_[b]
        v = v_[b]
        carry = r - q
        carry_[b] = carry
        xlim_[b] = min(1.0, r / q) if q > 0.0 else 1.0
        variance = v * v
        omega = 2.0 * carry / variance
        lam = 0.5 * (-(omega - 1.0) - math.sqrt((omega - 1.0) ** 2 + 8.0 * r / variance))
        perp_[b] = lam / (lam - 1.0)
        use_a[b] = 1.0 if force_a or fixed_point_a(r, q, v, t_[b]) else 0.0
    any_a = False
    for b in range(lanes):
        any_a = any_a or use_a[b] > 0.0
    log_into(xlim_, logx_, bits, lanes)
    for j in range(nodes):
        for b in range(lanes):
            h_nodes[j, b] = 0.0
    # Per (node, lane) constants of the QD+ start and the fixed point.
    tau_ = w[J_TAU]
    sqrt_tau_ = w[J_SQRT_TAU]
    sd_ = w[J_SD]
    drift_ = w[J_DRIFT]
    jr = w[J_R]
    jq = w[J_Q]
    jv = w[J_V]
    arg = w[J_A]
    arg2 = w[J_B]
    for j in range(nact):
        fraction = scheme.tau_fraction[j]
        for b in range(lanes):
            i = j * lanes + b
            tau = t_[b] * fraction
            tau_[i] = tau
            st = math.sqrt(tau)
            sqrt_tau_[i] = st
            sd_[i] = v_[b] * st
            drift_[i] = carry_[b] * tau
            jr[i] = r_[b]
            jq[i] = q_[b]
            jv[i] = v_[b]
            arg[i] = -r_[b] * tau
            arg2[i] = -q_[b] * tau
    exp_into(arg, w[J_DR], bits, nb)
    exp_into(arg2, w[J_DQ], bits, nb)
    for i in range(nb):
        arg[i] = -drift_[i]
    exp_into(arg, w[J_DISC], bits, nb)
    dr_ = w[J_DR]
    qh_ = w[J_QH]
    alpha_ = w[J_ALPHA]
    beta_ = w[J_BETA]
    lam_ = w[J_LAM]
    lamp_ = w[J_LAMP]
    guess_ = w[J_GUESS]
    lo_ = w[J_LO]
    hi_ = w[J_HI]
    for j in range(nact):
        for b in range(lanes):
            i = j * lanes + b
            h = 1.0 - dr_[i]
            qh_[i] = h
            variance = v_[b] * v_[b]
            alpha = 2.0 * r_[b] / variance
            beta = 2.0 * carry_[b] / variance
            alpha_[i] = alpha
            beta_[i] = beta
            root = math.sqrt((beta - 1.0) ** 2 + 4.0 * alpha / h)
            lam_[i] = 0.5 * (-(beta - 1.0) - root)
            lamp_[i] = alpha / (h * h * root)
            x = xlim_[b]
            perpetual = perp_[b]
            speed = (carry_[b] * tau_[i] + 2.0 * sd_[i]) * x / (x - perpetual)
            speed = max(speed, 2.0 * sd_[i])
            arg[i] = -speed if perpetual < x else 0.0
            lo_[i] = logx_[b] - 50.0
            hi_[i] = logx_[b] - 1e-12
    exp_into(arg, arg2, bits, nb)
    for j in range(nact):
        for b in range(lanes):
            i = j * lanes + b
            x = xlim_[b]
            perpetual = perp_[b]
            guess = perpetual + (x - perpetual) * arg2[i] if perpetual < x else x * 0.999
            guess_[i] = guess
            arg[i] = min(max(guess, 1e-300), x * (1.0 - 1e-9))
    # QD+ by secant steps on ln B (american.qd_plus_boundary), lane by lane masks.
    y0 = w[J_Y0]
    f0 = w[J_F0]
    y1 = w[J_Y1]
    f1 = w[J_F1]
    active = w[J_ACTIVE]
    log_into(arg, y0, bits, nb)
    _qd_residual(y0, f0, w, bits, nb)
    for i in range(nb):
        y1[i] = y0[i] - 1e-3
        active[i] = 1.0
    _qd_residual(y1, f1, w, bits, nb)
    fresh = w[J_H]
    for step in range(QD_PLUS_STEPS):
        for i in range(nb):
            a = active[i] > 0.0
            g0 = f0[i]
            g1 = f1[i]
            ok = a and math.isfinite(g0) and math.isfinite(g1) and g1 != g0
            x0 = y0[i]
            x1 = y1[i]
            x2 = min(max(x1 - g1 * (x1 - x0) / (g1 - g0), lo_[i]), hi_[i])
            y0[i] = x1 if ok else x0
            f0[i] = g1 if ok else g0
            y1[i] = x2 if ok else x1
            active[i] = 1.0 if (ok and abs(x2 - x1) >= QD_PLUS_TOLERANCE) else 0.0
        still = False
        for i in range(nb):
            still = still or active[i] > 0.0
        if not still:
            break
        if step < QD_PLUS_STEPS - 1:
            _qd_residual(y1, fresh, w, bits, nb)
            for i in range(nb):
                f1[i] = fresh[i] if active[i] > 0.0 else f1[i]
    exp_into(y1, arg, bits, nb)
    for j in range(nact):
        for b in range(lanes):
            i = j * lanes + b
            boundary = arg[i]
            x = xlim_[b]
            good = boundary > 0.0 and boundary < x
            arg2[i] = (boundary if good else guess_[i]) / x
    log_into(arg2, arg, bits, nb)
    for j in range(nact):
        for b in range(lanes):
            value = arg[j * lanes + b]
            h_nodes[j, b] = value * value
    # Weights times e^(r·u), e^(q·u) at u = τ_j·sin²θ_k, per (node, point, lane).
    grow_r = w[P_GROW_R]
    grow_q = w[P_GROW_Q]
    for j in range(nact):
        for k in range(points):
            s2 = scheme.node_sin[k] ** 2
            for b in range(lanes):
                u = tau_[j * lanes + b] * s2
                i = (j * points + k) * lanes + b
                w[P_A, i] = r_[b] * u
                w[P_DP, i] = q_[b] * u
    npts = nact * points * lanes
    # (Without FP-A lanes e^(r·u) joins φ(d₋)'s exponent in the iterations: w[P_A] keeps r·u.)
    if any_a:
        exp_into(w[P_A], grow_r, bits, npts)
    exp_into(w[P_DP], grow_q, bits, npts)
    for j in range(nact):
        for k in range(points):
            weight = scheme.node_weights[k]
            for b in range(lanes):
                i = (j * points + k) * lanes + b
                grow_r[i] = grow_r[i] * weight if any_a else weight
                grow_q[i] *= weight
    rate_u = w[P_A]
    hp = w[P_HP]
    dp_ = w[P_DP]
    dm_ = w[P_DM]
    cp_ = w[P_CP]
    cm_ = w[P_CM]
    ep_ = w[P_EP]
    em_ = w[P_EM]
    integral_n = w[J_A]
    integral_d = w[J_B]
    node_dp = w[J_C]
    node_dm = w[J_D]
    node_cp = w[J_E]
    node_cm = w[J_F]
    node_ep = w[J_G]
    node_em = w[J_H]
    root_h = w[J_Y0]
    disc = w[J_DISC]
    inv_sd = w[J_F0]
    for i in range(nb):
        inv_sd[i] = 1.0 / sd_[i]
    for _ in range(scheme.iterations):
        for j in range(nodes):
            for b in range(lanes):
                root_h[j * lanes + b] = math.sqrt(max(h_nodes[j, b], 0.0))
        # H at every quadrature point: one matrix product with the node values.
        for j in range(nact):
            for k in range(points):
                base = (j * points + k) * lanes
                for b in range(lanes):
                    hp[base + b] = 0.0
                for m in range(nodes):
                    coefficient = scheme.node_interpolation[j, k, m]
                    for b in range(lanes):
                        hp[base + b] += coefficient * h_nodes[m, b]
        for j in range(nact):
            for k in range(points):
                cos_k = scheme.node_cos[k]
                inv_cos = 1.0 / cos_k
                base = (j * points + k) * lanes
                for b in range(lanes):
                    i = base + b
                    ij = j * lanes + b
                    wt = sqrt_tau_[ij] * cos_k
                    log_ratio = math.sqrt(max(hp[i], 0.0)) - root_h[ij]
                    sw = v_[b] * wt
                    dp = (log_ratio + carry_[b] * wt * wt) * (inv_sd[ij] * inv_cos) + 0.5 * sw
                    dp_[i] = dp
                    dm_[i] = dp - sw
        cdf_into(dp_, cp_, ep_, bits, npts)
        if any_a:
            cdf_into(dm_, cm_, em_, bits, npts)
        else:  # FP-B needs only φ(d₋), here times e^(r·u)
            for i in range(npts):
                cm_[i] = rate_u[i] - 0.5 * dm_[i] * dm_[i]
            exp_into(cm_, em_, bits, npts)
        for i in range(nb):
            integral_n[i] = 0.0
            integral_d[i] = 0.0
        for j in range(nact):
            for k in range(points):
                sin_k = scheme.node_sin[k]
                cos_k = scheme.node_cos[k]
                base = (j * points + k) * lanes
                for b in range(lanes):
                    i = base + b
                    ij = j * lanes + b
                    jacobian = 2.0 * tau_[ij] * sin_k
                    scale = INV_SQRT_TWO_PI * inv_sd[ij]
                    a_n = cos_k * cm_[i]
                    a_d = cos_k * cp_[i]
                    b_n = scale * em_[i]
                    b_d = cos_k * cp_[i] + scale * ep_[i]
                    fp_a = use_a[b] > 0.0
                    integral_n[ij] += grow_r[i] * jacobian * (a_n if fp_a else b_n)
                    integral_d[ij] += grow_q[i] * jacobian * (a_d if fp_a else b_d)
        for j in range(nact):
            for b in range(lanes):
                ij = j * lanes + b
                sd = sd_[ij]
                log_b = logx_[b] - root_h[ij]
                d_plus = (log_b + drift_[ij]) * inv_sd[ij] + 0.5 * sd
                node_dp[ij] = d_plus
                node_dm[ij] = d_plus - sd
        cdf_into(node_dp, node_cp, node_ep, bits, nb)
        if any_a:
            cdf_into(node_dm, node_cm, node_em, bits, nb)
        else:
            for i in range(nb):
                node_cm[i] = -0.5 * node_dm[i] * node_dm[i]
            exp_into(node_cm, node_em, bits, nb)
        for j in range(nact):
            for b in range(lanes):
                ij = j * lanes + b
                scale = INV_SQRT_TWO_PI * inv_sd[ij]
                fp_a = use_a[b] > 0.0
                numerator = node_cm[ij] if fp_a else scale * node_em[ij]
                denominator = node_cp[ij] if fp_a else scale * node_ep[ij] + node_cp[ij]
                numerator += r_[b] * integral_n[ij]
                denominator += q_[b] * integral_d[ij]
                x = xlim_[b]
                boundary = min(disc[ij] * numerator / denominator, x)
                # (no boundary: keep the old value, as the scalar engine)
                node_dp[ij] = boundary / x if boundary > 0.0 else 0.0
        log_into(node_dp, node_dm, bits, nb)
        for j in range(nact):
            for b in range(lanes):
                ij = j * lanes + b
                value = node_dm[ij]
                h_nodes[j, b] = value * value if node_dp[ij] > 0.0 else h_nodes[j, b]


@kernel
def block_put_price(
    lanes: int, scheme: Scheme, h_nodes: np.ndarray, w: np.ndarray, bits: np.ndarray,
    out: np.ndarray,
) -> None:  # fmt: skip
    """American puts of spot w[L_S], strike w[L_K] on the lanes' boundaries (block_boundary
    over exactly T = w[L_T]) into out[:lanes]. As american.put_price."""
    block_put_price_shorter(lanes, scheme, h_nodes, w, bits, out, np.empty(0))


@kernel
def block_put_price_shorter(
    lanes: int, scheme: Scheme, h_nodes: np.ndarray, w: np.ndarray, bits: np.ndarray,
    out: np.ndarray, boundary_years: np.ndarray,
) -> None:  # fmt: skip
    """As block_put_price for expiries w[L_T] ≤ boundary_years[b], the span of each lane's
    boundary (american.put_price_shorter: the boundary by Clenshaw's recurrence at the
    quadrature times); an empty `boundary_years` means equal to w[L_T]."""
    nodes = scheme.tau_fraction.shape[0]
    points = scheme.price_sin.shape[0]
    s_ = w[L_S]
    k_ = w[L_K]
    t_ = w[L_T]
    r_ = w[L_R]
    q_ = w[L_Q]
    v_ = w[L_V]
    carry_ = w[L_CARRY]
    logx_ = w[L_LOGX]
    log_s = w[L_A]
    log_k = w[L_B]
    log_into(s_, log_s, bits, lanes)
    log_into(k_, log_k, bits, lanes)
    hp = w[P_HP]
    dp_ = w[P_DP]
    dm_ = w[P_DM]
    cp_ = w[P_CP]
    cm_ = w[P_CM]
    ep_ = w[P_EP]
    em_ = w[P_EM]
    grow_r = w[P_GROW_R]
    arg = w[P_A]
    npts = points * lanes
    if boundary_years.shape[0] == 0:
        for k in range(points):
            base = k * lanes
            for b in range(lanes):
                hp[base + b] = 0.0
            for m in range(nodes):
                coefficient = scheme.price_interpolation[k, m]
                for b in range(lanes):
                    hp[base + b] += coefficient * h_nodes[m, b]
    else:
        chebyshev = w[J_A]  # (nodes, lanes): Chebyshev coefficients of H per lane
        for m in range(nodes):
            for b in range(lanes):
                chebyshev[m * lanes + b] = 0.0
            for i in range(nodes):
                coefficient = scheme.to_coefficients[m, i]
                for b in range(lanes):
                    chebyshev[m * lanes + b] += coefficient * h_nodes[i, b]
        z = w[J_B]
        b1 = w[J_C]
        b2 = w[J_D]
        for k in range(points):
            sin_k = scheme.price_sin[k]
            for b in range(lanes):
                z[b] = 2.0 * math.sqrt(t_[b] / boundary_years[b]) * sin_k - 1.0
                b1[b] = 0.5 * chebyshev[(nodes - 1) * lanes + b]
                b2[b] = 0.0
            for m in range(nodes - 2, 0, -1):
                for b in range(lanes):
                    value = 2.0 * z[b] * b1[b] - b2[b] + chebyshev[m * lanes + b]
                    b2[b] = b1[b]
                    b1[b] = value
            for b in range(lanes):
                hp[k * lanes + b] = z[b] * b1[b] - b2[b] + 0.5 * chebyshev[b]
    for k in range(points):
        s2 = scheme.price_sin[k] ** 2
        base = k * lanes
        for b in range(lanes):
            i = base + b
            t = t_[b]
            w2 = t - t * s2
            sw = v_[b] * math.sqrt(w2)
            log_moneyness = log_s[b] - (log_k[b] + logx_[b] - math.sqrt(max(hp[i], 0.0)))
            dp = (log_moneyness + carry_[b] * w2) / sw + 0.5 * sw
            dp_[i] = -dp
            dm_[i] = sw - dp
            grow_r[i] = -r_[b] * w2
            arg[i] = -q_[b] * w2
    cdf_into(dp_, cp_, ep_, bits, npts)
    cdf_into(dm_, cm_, em_, bits, npts)
    exp_into(grow_r, ep_, bits, npts)
    exp_into(arg, em_, bits, npts)
    premium = w[L_C]
    for b in range(lanes):
        premium[b] = 0.0
    for k in range(points):
        factor = scheme.price_weights[k] * 2.0 * scheme.price_sin[k] * scheme.price_cos[k]
        base = k * lanes
        for b in range(lanes):
            i = base + b
            term = r_[b] * k_[b] * ep_[i] * cm_[i] - q_[b] * s_[b] * em_[i] * cp_[i]
            premium[b] += factor * t_[b] * term
    # The European put, vectorized (absolute accuracy, like the premium).
    for b in range(lanes):
        t = t_[b]
        sd = v_[b] * math.sqrt(t)
        d_plus = (log_s[b] - log_k[b] + carry_[b] * t) / sd + 0.5 * sd
        dp_[b] = -d_plus
        dm_[b] = sd - d_plus
        grow_r[b] = -r_[b] * t
        arg[b] = -q_[b] * t
    cdf_into(dp_, cp_, ep_, bits, lanes)
    cdf_into(dm_, cm_, em_, bits, lanes)
    exp_into(grow_r, ep_, bits, lanes)
    exp_into(arg, em_, bits, lanes)
    for b in range(lanes):
        european = k_[b] * ep_[b] * cm_[b] - s_[b] * em_[b] * cp_[b]
        out[b] = max(european + premium[b], k_[b] - s_[b])


def _price_loop(spot, strike, years, rate, div_yield, vol, is_call, scheme, lanes, out):
    n = spot.shape[0]
    engine = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        s, k, t, r, q, v = spot[i], strike[i], years[i], rate[i], div_yield[i], vol[i]
        if not _valid(s, k, t, r, q, v):
            out[i] = math.nan
        elif t == 0.0 or v == 0.0:
            sign = 1.0 if is_call[i] else -1.0
            out[i] = deterministic_american(s, k, t, r, q, sign, True)[0]
        else:
            ps, pk, pr, pq = _as_put(s, k, r, q, is_call[i])
            if early_exercise_matters(pr, t):
                engine[count] = i
                count += 1
            else:
                out[i] = max(bsm_price_scalar(ps, pk, t, pr, pq, v, False), pk - ps)
    # FP-A rows first: blocks of FP-B rows only skip Φ(d₋) (see block_boundary).
    front = 0
    for position in range(count):
        i = engine[position]
        _s, _k, pr, pq = _as_put(spot[i], strike[i], rate[i], div_yield[i], is_call[i])
        if fixed_point_a(pr, pq, vol[i], years[i]):
            engine[position] = engine[front]
            engine[front] = i
            front += 1
    lanes = _fit_lanes(lanes, count)
    blocks = (count + lanes - 1) // lanes
    nodes = scheme.tau_fraction.shape[0]
    rows, width = WORK_ROWS, max((nodes - 1) * scheme.node_sin.shape[0],
                                 scheme.price_sin.shape[0], nodes) * lanes  # fmt: skip
    for c in prange(blocks):
        w = np.empty((rows, width))
        bits = np.empty(width, dtype=np.int64)
        h_nodes = np.empty((nodes, lanes))
        prices = np.empty(lanes)
        first = c * lanes
        for b in range(lanes):
            i = engine[min(first + b, count - 1)]  # spare lanes repeat the last option
            ps, pk, pr, pq = _as_put(spot[i], strike[i], rate[i], div_yield[i], is_call[i])
            w[L_S, b] = ps
            w[L_K, b] = pk
            w[L_T, b] = years[i]
            w[L_R, b] = pr
            w[L_Q, b] = pq
            w[L_V, b] = vol[i]
        block_boundary(lanes, scheme, h_nodes, w, bits)
        block_put_price(lanes, scheme, h_nodes, w, bits, prices)
        for b in range(min(lanes, count - first)):
            out[engine[first + b]] = prices[b]


_price_serial = kernel(_price_loop)
_price_parallel = kernel(_price_loop, parallel=True)


def american_fast_prices(s, k, t, r, q, v, c, scheme: Scheme, out, *, parallel=False):
    """Flat float64 arrays in, prices into `out` (see american.american_price)."""
    loop = _price_parallel if parallel else _price_serial
    loop(s, k, t, r, q, v, c, scheme, block_lanes(scheme), out)


#: Engine rows per queue (one queue per parallel task).
IV_CHUNK = 4096
# Rows of the per-lane state of `implied_vol_queue`.
(S_TARGET, S_VOL, S_VALUE, S_LO, S_HI, S_PREV_VOL, S_PREV_VALUE, S_EVALS, S_SEED_VEGA) = range(9)
IV_STATE_ROWS = 9


@kernel
def american_iv_screen(price, spot, strike, years, rate, div_yield, is_call):
    """(vol, status, needs_engine) of one American implied vol before the engine: the statuses
    of american.american_implied_vol_scalar, and the European implied vol where early exercise
    never pays (there the engine's price is the European one)."""
    if not (math.isfinite(price) and _valid(spot, strike, years, rate, div_yield, 0.0)):
        return math.nan, STATUS_BAD_INPUT, False
    if years == 0.0:
        return math.nan, STATUS_ZERO_TIME, False
    if price <= 0.0:
        return math.nan, STATUS_NON_POSITIVE_PRICE, False
    if price >= (spot if is_call else strike):
        return math.nan, STATUS_ABOVE_MAXIMUM, False
    if price <= exercise_floor(spot, strike, years, rate, div_yield, is_call) + (
        FLOOR_TOLERANCE * price
    ):
        return math.nan, STATUS_BELOW_INTRINSIC, False
    if not early_exercise_matters(div_yield if is_call else rate, years):
        vol, code, _ = implied_vol_scalar(price, spot, strike, years, rate, div_yield, is_call)
        return vol, code, False
    return math.nan, STATUS_OK, True


@kernel
def implied_vol_queue(rows_todo, price, spot, strike, years, rate, div_yield, is_call, scheme,
                      lanes, w, bits, h_nodes, state, rows, vol, status, start_vol,
                      start_vega):  # fmt: skip
    """Inverts the engine for the rows `rows_todo` (all needing it), `lanes` at a time: each
    lane runs the secant iteration of american.american_implied_vol_scalar on its own row and
    takes the next row from the queue when done, so that the block engine always evaluates
    a full block. Results into vol/status. `start_vol`/`start_vega` (per row, or empty): a
    start other than the European implied vol where positive (e.g. the mid's vol and vega
    for the bid and the ask)."""
    todo = rows_todo.shape[0]
    if todo == 0:
        return
    taken = 0
    target = state[S_TARGET]
    x = state[S_VOL]
    lo = state[S_LO]
    hi = state[S_HI]
    x_prev = state[S_PREV_VOL]
    f_prev = state[S_PREV_VALUE]
    evals = state[S_EVALS]
    seed_vega = state[S_SEED_VEGA]
    prices = np.empty(lanes)
    for b in range(lanes):
        rows[b] = -1
    first = rows_todo[0]
    for b in range(lanes):  # idle lanes price a valid option (results unused)
        ps, pk, pr, pq = _as_put(spot[first], strike[first], rate[first], div_yield[first],
                                 is_call[first])  # fmt: skip
        w[L_S, b], w[L_K, b], w[L_T, b] = ps, pk, years[first]
        w[L_R, b], w[L_Q, b], w[L_V, b] = pr, pq, 0.3
    while True:
        busy = 0
        for b in range(lanes):
            if rows[b] < 0 and taken < todo:
                i = rows_todo[taken]
                taken += 1
                rows[b] = i
                ps, pk, pr, pq = _as_put(spot[i], strike[i], rate[i], div_yield[i], is_call[i])
                w[L_S, b], w[L_K, b], w[L_T, b], w[L_R, b], w[L_Q, b] = ps, pk, years[i], pr, pq
                seeded = start_vol.shape[0] > 0 and start_vol[i] > 0.0
                if seeded:
                    x[b] = start_vol[i]
                else:
                    guess, code, _ = implied_vol_scalar(price[i], spot[i], strike[i], years[i],
                                                        rate[i], div_yield[i],
                                                        is_call[i])  # fmt: skip
                    x[b] = guess if code == STATUS_OK and guess > 0.0 else 0.3
                seed_vega[b] = start_vega[i] if seeded and start_vega[i] > 0.0 else 0.0
                target[b] = price[i]
                lo[b] = 0.0
                hi[b] = math.inf
                x_prev[b] = math.nan
                f_prev[b] = math.nan
                evals[b] = 0.0
            if rows[b] >= 0:
                busy += 1
                w[L_V, b] = x[b]
        if busy == 0:
            return
        block_boundary(lanes, scheme, h_nodes, w, bits)
        block_put_price(lanes, scheme, h_nodes, w, bits, prices)
        for b in range(lanes):
            i = rows[b]
            if i < 0:
                continue
            value = prices[b] - target[b]
            evals[b] += 1.0
            # One step of american_implied_vol_scalar's loop; done -> the lane is freed.
            v = x[b]
            done = False
            if value > 0.0:
                hi[b] = v
            else:
                lo[b] = v
            if value == 0.0 or evals[b] > MAX_AMERICAN_IV_EVALUATIONS:
                done = True  # (as the scalar loop: at most 1 + MAX evaluations)
            else:
                if math.isnan(x_prev[b]):
                    vega = seed_vega[b]
                    if not vega > 0.0:
                        vega = bsm_greeks_vega(spot[i], strike[i], years[i], rate[i],
                                               div_yield[i], v)  # fmt: skip
                    step = -value / vega if vega > 1e-300 else math.nan
                else:
                    slope = (value - f_prev[b]) / (v - x_prev[b])
                    step = -value / slope if slope > 0.0 else math.nan
                if abs(step) <= 1e-10 * v:
                    if lo[b] <= v + step <= hi[b]:
                        v += step
                    done = True
                else:
                    candidate = v + step
                    if not (lo[b] < candidate < hi[b]):
                        candidate = (
                            0.5 * (lo[b] + hi[b]) if hi[b] < math.inf else 2.0 * max(v, 0.05)
                        )
                    if abs(candidate - v) <= 1e-10 * v:
                        v = candidate
                        done = True
                    else:
                        x_prev[b] = v
                        f_prev[b] = value
                        v = candidate
            x[b] = v
            if done:
                if not math.isfinite(v) or v > 100.0:
                    vol[i] = math.nan
                    status[i] = STATUS_ABOVE_MAXIMUM
                else:
                    vol[i] = v
                    status[i] = STATUS_OK
                rows[b] = -1


def _iv_loop(price, spot, strike, years, rate, div_yield, is_call, scheme, lanes, chunk, vol,
             status):  # fmt: skip
    n = price.shape[0]
    engine = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        v, code, needs_engine = american_iv_screen(
            price[i], spot[i], strike[i], years[i], rate[i], div_yield[i], is_call[i]
        )
        vol[i] = v
        status[i] = code
        if needs_engine:
            engine[count] = i
            count += 1
    chunks = (count + chunk - 1) // chunk
    lanes = _fit_lanes(lanes, min(count, chunk))
    no_start = np.empty(0)
    nodes = scheme.tau_fraction.shape[0]
    width = max((nodes - 1) * scheme.node_sin.shape[0], scheme.price_sin.shape[0], nodes) * lanes
    for c in prange(chunks):
        w = np.empty((WORK_ROWS, width))
        bits = np.empty(width, dtype=np.int64)
        h_nodes = np.empty((nodes, lanes))
        state = np.empty((IV_STATE_ROWS, lanes))
        rows = np.empty(lanes, dtype=np.int64)
        stop = min(count, (c + 1) * chunk)
        implied_vol_queue(engine[c * chunk : stop], price, spot, strike, years, rate, div_yield,
                          is_call, scheme, lanes, w, bits, h_nodes, state, rows, vol,
                          status, no_start, no_start)  # fmt: skip


_iv_serial = kernel(_iv_loop)
_iv_parallel = kernel(_iv_loop, parallel=True)


def american_fast_implied_vols(p, s, k, t, r, q, c, scheme: Scheme, vol, status, *, parallel=False):
    """Flat arrays in; vols and ImpliedVolStatus codes into `vol`, `status` (see
    american.american_implied_vol)."""
    loop = _iv_parallel if parallel else _iv_serial
    loop(p, s, k, t, r, q, c, scheme, block_lanes(scheme), IV_CHUNK, vol, status)
