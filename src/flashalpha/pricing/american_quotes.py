"""American rows of `price_contracts` in lockstep blocks: implied vols of the mid, bid and ask,
and the greeks at the mid's vol.

Two ways to get a row's exercise boundary at a vol, both evaluated `lanes` rows at a time with
the block engine (`american_batch`):

- chains (rows sharing T, r, q and right, at least `american_chain.MIN_GROUP`): the group's
  boundary table over vol (`american_chain`, CHAIN_SCHEME, FP-A), built here with
  `block_boundary` on its 2 × 24 vols at once and interpolated per lane;
- other rows: the fast engine's own boundary (`block_boundary`, FAST_SCHEME).

Greeks from 18 premium integrals on 4 boundaries (σ, σ ± dv, and r + dr): price, delta,
gamma and vega, vanna, vomma by central differences (h = 5e-4·S, dv = 1e-3·σ), rho forward
(1e-4), theta and charm by second-order backward differences in time (dt = 1e-4 y, the σ
boundary re-used), as `american.american_fast_greeks_into`. (The Black-Scholes equation would
give theta from delta and gamma without the time steps, but near the exercise boundary the
approximate engine's gamma makes it off by up to ~0.7/year.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from flashalpha.pricing._jit import kernel
from flashalpha.pricing.american import (
    FAST_SCHEME,
    Scheme,
    _as_put,
    exercise_floor,
    quote_has_vol,
)
from flashalpha.pricing.american_batch import (
    IV_STATE_ROWS,
    L_CARRY,
    L_K,
    L_LOGX,
    L_Q,
    L_R,
    L_S,
    L_T,
    L_V,
    WORK_ROWS,
    american_iv_screen,
    block_boundary,
    block_lanes,
    block_put_price,
    block_put_price_shorter,
    implied_vol_queue,
)
from flashalpha.pricing.american_chain import (
    _LOG_HI,
    _LOG_LO,
    _RATE_BUMP,
    CHAIN_SCHEME,
    SIGMA_GRID,
    SIGMA_HI,
    SIGMA_LO,
    SIGMA_MATRIX,
    SIGMA_NODES,
    chain_groups,
)
from flashalpha.pricing.implied_vol import implied_vol_scalar
from flashalpha.pricing.status import STATUS_NON_POSITIVE_PRICE, STATUS_OK

#: status of rows that wait for the American engine (never left in the output)
PENDING = 255
_SPOT_BUMP = 5e-4
_VOL_BUMP = 1e-3


@kernel
def _width(scheme: Scheme, lanes: int) -> int:
    nodes = scheme.tau_fraction.shape[0]
    return max((nodes - 1) * scheme.node_sin.shape[0], scheme.price_sin.shape[0], nodes) * lanes


@kernel
def _lane_option(w, b, spot, strike, years, rate, div_yield, vol, is_call):
    """Lane b prices the option (spot, strike, ...) through its put-equivalent."""
    s, k, r, q = _as_put(spot, strike, rate, div_yield, is_call)
    w[L_S, b] = s
    w[L_K, b] = k
    w[L_T, b] = years
    w[L_R, b] = r
    w[L_Q, b] = q
    w[L_V, b] = vol


@kernel
def _interpolate(coefficients, log_x, carry, lanes, h_nodes, w):
    """H at every lane's vol w[L_V] from a table (american_chain.table_boundary per lane)."""
    nodes = h_nodes.shape[0]
    n = SIGMA_NODES - 1
    zeta = np.empty(lanes)
    b1 = np.empty(lanes)
    b2 = np.empty(lanes)
    for b in range(lanes):
        z = (2.0 * math.log(w[L_V, b]) - _LOG_LO - _LOG_HI) / (_LOG_HI - _LOG_LO)
        zeta[b] = min(max(z, -1.0), 1.0)
        w[L_LOGX, b] = log_x
        w[L_CARRY, b] = carry
    for j in range(nodes):
        for b in range(lanes):
            b1[b] = 0.5 * coefficients[n, j]
            b2[b] = 0.0
        for m in range(n - 1, 0, -1):
            c = coefficients[m, j]
            for b in range(lanes):
                t = 2.0 * zeta[b] * b1[b] - b2[b] + c
                b2[b] = b1[b]
                b1[b] = t
        c0 = 0.5 * coefficients[0, j]
        for b in range(lanes):
            g = (zeta[b] * b1[b] - b2[b] + c0) * w[L_V, b]
            h_nodes[j, b] = g * g


@kernel
def build_tables(years, put_rate, put_yield, bump_rate, scheme, coefficients, log_x, w, bits,
                 h_nodes):  # fmt: skip
    """The chain's two tables (american_chain.build_table): coefficients[0] at (r, q),
    coefficients[1] with the option's rate bumped (the put-equivalent's rate for a put,
    `bump_rate` True, its yield for a call); ln X of each into log_x[0:2]. 2·SIGMA_NODES
    lanes of block_boundary (FP-A)."""
    lanes = 2 * SIGMA_NODES
    for b in range(lanes):
        second = b >= SIGMA_NODES
        w[L_T, b] = years
        w[L_R, b] = put_rate + (_RATE_BUMP if second and bump_rate else 0.0)
        w[L_Q, b] = put_yield + (_RATE_BUMP if second and not bump_rate else 0.0)
        w[L_V, b] = SIGMA_GRID[b % SIGMA_NODES]
    block_boundary(lanes, scheme, h_nodes, w, bits, True)
    nodes = h_nodes.shape[0]
    for table in range(2):
        log_x[table] = w[L_LOGX, table * SIGMA_NODES]
        for m in range(SIGMA_NODES):
            for j in range(nodes):
                acc = 0.0
                for k in range(SIGMA_NODES):
                    b = table * SIGMA_NODES + k
                    acc += SIGMA_MATRIX[m, k] * math.sqrt(max(h_nodes[j, b], 0.0)) / SIGMA_GRID[k]
                coefficients[table, m, j] = acc


@kernel
def _boundaries(lanes, scheme, w, bits, tables, index, log_x, carry, h_out):
    """H at the lanes' parameters into h_out: from tables[index] if `tables` has rows (the
    chain's), else solved by block_boundary (the lanes' own r, q, σ)."""
    if tables.shape[0] > 0:
        _interpolate(tables[index], log_x[index], carry, lanes, h_out, w)
    else:
        block_boundary(lanes, scheme, h_out, w, bits)


@kernel
def greeks_block(rows, count, vol, spot, strike, years, rate, div_yield, is_call, scheme, lanes,
                 w, bits, tables, log_x, h0, h_up, h_down, h_rate, prices, work, scratch_nodes,
                 out):  # fmt: skip
    """Theo and greeks at vol[i] of rows[0:count] (count ≤ lanes) into out[3:12, i] (the
    OUTPUT_NAMES rows of `fused`). `tables` (2, SIGMA_NODES, nodes) and log_x (2,) of the
    rows' chain, or an empty `tables` for the engine's own boundaries. `work` is (20, lanes),
    `scratch_nodes` (lanes,)."""
    no_years = scratch_nodes[:0]
    boundary_years = scratch_nodes[:lanes]
    for b in range(lanes):
        i = rows[min(b, count - 1)]
        work[0, b] = spot[i]
        work[1, b] = max(1e-3 * vol[i], 1e-5)
        _lane_option(w, b, spot[i], strike[i], years[i], rate[i], div_yield[i], vol[i],
                     is_call[i])  # fmt: skip
    first = rows[0]
    call = is_call[first]
    carry = w[L_R, 0] - w[L_Q, 0]
    # Rate-bumped boundary first (it changes r or q of the lanes, restored after).
    for b in range(lanes):
        i = rows[min(b, count - 1)]
        _lane_option(w, b, spot[i], strike[i], years[i], rate[i] + _RATE_BUMP, div_yield[i],
                     vol[i], is_call[i])  # fmt: skip
    carry_bumped = carry + (-_RATE_BUMP if call else _RATE_BUMP)
    _boundaries(lanes, scheme, w, bits, tables, 1, log_x, carry_bumped, h_rate)
    block_put_price(lanes, scheme, h_rate, w, bits, prices)
    for b in range(lanes):
        work[2, b] = prices[b]  # p(r + dr)
    for b in range(lanes):
        i = rows[min(b, count - 1)]
        _lane_option(w, b, spot[i], strike[i], years[i], rate[i], div_yield[i],
                     vol[i] + work[1, b], is_call[i])  # fmt: skip
    _boundaries(lanes, scheme, w, bits, tables, 0, log_x, carry, h_up)
    for b in range(lanes):
        w[L_V, b] = vol[rows[min(b, count - 1)]] - work[1, b]
    _boundaries(lanes, scheme, w, bits, tables, 0, log_x, carry, h_down)
    for b in range(lanes):
        w[L_V, b] = vol[rows[min(b, count - 1)]]
    _boundaries(lanes, scheme, w, bits, tables, 0, log_x, carry, h0)
    # Spot ladder S + (j - 2)·h on the σ boundary (rows 3..7), S ± h on σ ± dv (8..11),
    # S on σ ± dv (12, 13).
    for j in range(5):
        _spot_price(lanes, rows, count, spot, strike, is_call, (j - 2) * _SPOT_BUMP, scheme,
                    h0, w, bits, prices, no_years)  # fmt: skip
        for b in range(lanes):
            work[3 + j, b] = prices[b]
    for side in range(2):
        sign = 1.0 if side == 0 else -1.0
        nodes_v = h_up if side == 0 else h_down
        for b in range(lanes):
            w[L_V, b] = vol[rows[min(b, count - 1)]] + sign * work[1, b]
        for j in range(3):
            _spot_price(lanes, rows, count, spot, strike, is_call, (j - 1) * _SPOT_BUMP,
                        scheme, nodes_v, w, bits, prices, no_years)  # fmt: skip
            for b in range(lanes):
                work[8 + 3 * side + j, b] = prices[b]
    # S - h, S, S + h at T - dt and T - 2dt on the σ boundary (rows 14..19).
    for b in range(lanes):
        i = rows[min(b, count - 1)]
        w[L_V, b] = vol[i]
        boundary_years[b] = years[i]
    for step in range(2):
        for b in range(lanes):
            t = boundary_years[b]
            w[L_T, b] = t - (step + 1) * min(1e-4, 0.25 * t)
        for j in range(3):
            _spot_price(lanes, rows, count, spot, strike, is_call, (j - 1) * _SPOT_BUMP,
                        scheme, h0, w, bits, prices, boundary_years)  # fmt: skip
            for b in range(lanes):
                work[14 + 3 * step + j, b] = prices[b]
    for b in range(lanes):
        w[L_T, b] = boundary_years[b]
    for b in range(count):
        i = rows[b]
        s = spot[i]
        h = _SPOT_BUMP * s
        dv = work[1, b]
        p = work[3:8, b]
        p0 = p[2]
        delta = (p[3] - p[1]) / (2.0 * h)
        gamma = (p[3] - 2.0 * p0 + p[1]) / (h * h)
        up_down = work[8 + 2, b] - work[8 + 0, b]
        delta_v_up = up_down / (2.0 * h)
        delta_v_down = (work[11 + 2, b] - work[11 + 0, b]) / (2.0 * h)
        pv_up = work[8 + 1, b]
        pv_down = work[11 + 1, b]
        # Time: second-order backward differences, -∂/∂T (the boundary spans [0, T]).
        dt = min(1e-4, 0.25 * years[i])
        theta = (4.0 * work[15, b] - work[18, b] - 3.0 * p0) / (2.0 * dt)
        delta_1 = (work[16, b] - work[14, b]) / (2.0 * h)
        delta_2 = (work[19, b] - work[17, b]) / (2.0 * h)
        charm = (4.0 * delta_1 - delta_2 - 3.0 * delta) / (2.0 * dt)
        out[11, i] = p0
        out[3, i] = delta
        out[4, i] = gamma
        out[5, i] = (pv_up - pv_down) / (2.0 * dv)
        out[6, i] = theta
        out[7, i] = (work[2, b] - p0) / _RATE_BUMP
        out[8, i] = (delta_v_up - delta_v_down) / (2.0 * dv)
        out[9, i] = charm
        out[10, i] = (pv_up - 2.0 * p0 + pv_down) / (dv * dv)


@kernel
def _spot_price(lanes, rows, count, spot, strike, is_call, bump, scheme, h_nodes, w, bits,
                prices, boundary_years):  # fmt: skip
    """Prices at spot·(1 + bump) (the put-equivalent's strike for a call)."""
    for b in range(lanes):
        i = rows[min(b, count - 1)]
        s = spot[i] * (1.0 + bump)
        if is_call[i]:
            w[L_S, b] = strike[i]
            w[L_K, b] = s
        else:
            w[L_S, b] = s
            w[L_K, b] = strike[i]
    block_put_price_shorter(lanes, scheme, h_nodes, w, bits, prices, boundary_years)


@kernel
def table_iv_queue(rows_todo, target, start_vol, start_vega, spot, strike, years, rate,
                   div_yield, is_call, scheme, coefficients, log_x, lanes, w, bits, h_nodes,
                   state, rows, vol_out):  # fmt: skip
    """Vols in [SIGMA_LO, SIGMA_HI] at which the chain's table prices target[i], for the
    rows `rows_todo` (NaN outside the table): the safeguarded secant of the scalar chain
    engine (bracket [SIGMA_LO, SIGMA_HI], ends priced only when reached) per lane,
    lanes refilled from the queue."""
    todo = rows_todo.shape[0]
    if todo == 0:
        return
    prices = np.empty(lanes)
    x = state[0]
    lo = state[1]
    hi = state[2]
    x_prev = state[3]
    f_prev = state[4]
    flags = state[5]  # bit 1: lo checked, bit 2: hi checked
    seed = state[6]
    steps = state[7]
    for b in range(lanes):
        rows[b] = -1
    first = rows_todo[0]
    for b in range(lanes):
        _lane_option(w, b, spot[first], strike[first], years[first], rate[first],
                     div_yield[first], 0.3, is_call[first])  # fmt: skip
    carry = w[L_R, 0] - w[L_Q, 0]
    taken = 0
    while True:
        busy = 0
        for b in range(lanes):
            if rows[b] < 0 and taken < todo:
                i = rows_todo[taken]
                taken += 1
                rows[b] = i
                if start_vol.shape[0] > 0 and start_vol[i] > 0.0:
                    v = start_vol[i]
                    seed[b] = start_vega[i]
                else:
                    guess, code, _ = implied_vol_scalar(target[i], spot[i], strike[i], years[i],
                                                        rate[i], div_yield[i],
                                                        is_call[i])  # fmt: skip
                    v = guess if code == STATUS_OK else 0.3
                    seed[b] = 0.0
                x[b] = min(max(v, SIGMA_LO), SIGMA_HI)
                lo[b] = SIGMA_LO
                hi[b] = SIGMA_HI
                x_prev[b] = math.nan
                f_prev[b] = math.nan
                flags[b] = 0.0
                steps[b] = 0.0
                _lane_option(w, b, spot[i], strike[i], years[i], rate[i], div_yield[i], x[b],
                             is_call[i])  # fmt: skip
            if rows[b] >= 0:
                busy += 1
                w[L_V, b] = x[b]
        if busy == 0:
            return
        _interpolate(coefficients, log_x, carry, lanes, h_nodes, w)
        block_put_price(lanes, scheme, h_nodes, w, bits, prices)
        for b in range(lanes):
            i = rows[b]
            if i < 0:
                continue
            v = x[b]
            value = prices[b] - target[i]
            result = math.nan
            done = False
            if v == SIGMA_LO:
                flags[b] = float(int(flags[b]) | 1)
                if value > 0.0:
                    done = True  # below the table
            if v == SIGMA_HI:
                flags[b] = float(int(flags[b]) | 2)
                if value < 0.0:
                    done = True  # above the table
            if not done and value == 0.0:
                result = v
                done = True
            if not done:
                if value > 0.0:
                    hi[b] = v
                else:
                    lo[b] = v
                if math.isnan(x_prev[b]):
                    slope = seed[b]
                    if not slope > 0.0:
                        sd = v * math.sqrt(years[i])
                        slope = (
                            spot[i] * math.sqrt(years[i]) * 0.3989422804014327
                            * math.exp(-0.125 * sd * sd)
                        )  # fmt: skip
                else:
                    slope = (value - f_prev[b]) / (v - x_prev[b])
                step = -value / slope if slope > 0.0 else math.nan
                if math.isfinite(step) and abs(step) <= 1e-10 * v and lo[b] < v + step < hi[b]:
                    result = v + step
                    done = True
                else:
                    candidate = v + step
                    if not (lo[b] < candidate < hi[b]):
                        if hi[b] == SIGMA_HI and not (int(flags[b]) & 2):
                            candidate = SIGMA_HI
                        elif lo[b] == SIGMA_LO and not (int(flags[b]) & 1):
                            candidate = SIGMA_LO
                        else:
                            candidate = 0.5 * (lo[b] + hi[b])
                    x_prev[b] = v
                    f_prev[b] = value
                    x[b] = candidate
                    steps[b] += 1.0
                    if hi[b] - lo[b] <= 1e-12 * hi[b] or steps[b] >= 40.0:
                        result = candidate
                        done = True
            if done:
                vol_out[i] = result
                rows[b] = -1


@kernel
def quote_needs_engine(quote, spot, strike, years, rate, div_yield, is_call) -> bool:
    """Whether an American quote has an implied vol to solve for (positive, below the
    maximum, more than MIN_TIME_VALUE above a positive exercise value)."""
    if not american_iv_screen(quote, spot, strike, years, rate, div_yield, is_call)[2]:
        return False
    return quote_has_vol(quote, exercise_floor(spot, strike, years, rate, div_yield, is_call))


@kernel
def _greeks_and_sides(solved, spot, strike, years, rate, div_yield, is_call, bid, ask, scheme,
                      lanes, w, bits, tables, log_x, out, status):  # fmt: skip
    """Greeks at out[1] (the mid's vol) and the bid/ask vols of the rows `solved`, status OK.
    On the chain's `tables` if it has rows, else on the engine's own boundaries."""
    m = solved.shape[0]
    if m == 0:
        return
    nodes = scheme.tau_fraction.shape[0]
    h0 = np.empty((nodes, lanes))
    h_up = np.empty((nodes, lanes))
    h_down = np.empty((nodes, lanes))
    h_rate = np.empty((nodes, lanes))
    prices = np.empty(lanes)
    work = np.empty((20, lanes))
    scratch_nodes = np.empty(lanes)
    for start in range(0, m, lanes):
        count = min(lanes, m - start)
        greeks_block(solved[start : start + count], count, out[1], spot, strike, years, rate,
                     div_yield, is_call, scheme, lanes, w, bits, tables, log_x, h0, h_up,
                     h_down, h_rate, prices, work, scratch_nodes, out)  # fmt: skip
    # Bid and ask, started from the mid's vol and vega.
    state = np.empty((IV_STATE_ROWS, lanes))
    lane_rows = np.empty(lanes, dtype=np.int64)
    todo = np.empty(m, dtype=np.int64)
    codes = np.empty(0, dtype=np.uint8)
    if tables.shape[0] == 0:
        codes = np.empty(spot.shape[0], dtype=np.uint8)
    for side in range(2):
        quotes = bid if side == 0 else ask
        column = 0 if side == 0 else 2
        k = 0
        for i in solved:
            out[column, i] = math.nan
            if quote_needs_engine(quotes[i], spot[i], strike[i], years[i], rate[i],
                                  div_yield[i], is_call[i]):  # fmt: skip
                todo[k] = i
                k += 1
        if tables.shape[0] > 0:
            table_iv_queue(todo[:k], quotes, out[1], out[5], spot, strike, years, rate,
                           div_yield, is_call, scheme, tables[0], log_x[0], lanes, w, bits, h0,
                           state, lane_rows, out[column])  # fmt: skip
        else:
            implied_vol_queue(todo[:k], quotes, spot, strike, years, rate, div_yield, is_call,
                              scheme, lanes, w, bits, h0, state, lane_rows, out[column], codes,
                              out[1], out[5])  # fmt: skip
            for i in todo[:k]:
                if codes[i] != STATUS_OK:
                    out[column, i] = math.nan
    for i in solved:
        status[i] = 1


def _chain_loop(order, starts, spot, strike, years, rate, div_yield, is_call, mid, bid, ask,
                lanes, out, status):  # fmt: skip
    """Rows order[starts[g]:starts[g+1]] (status PENDING, same T, r, q and right) priced on
    their chain's tables; rows whose vol leaves the table stay PENDING."""
    scheme = CHAIN_SCHEME
    nodes = scheme.tau_fraction.shape[0]
    no_start = np.empty(0)
    for g in prange(starts.shape[0] - 1):
        group = order[starts[g] : starts[g + 1]]
        count = group.shape[0]
        lanes_g = max(8, min(lanes, (count + 7) // 8 * 8))
        width = _width(scheme, max(lanes_g, 2 * SIGMA_NODES))
        w = np.empty((WORK_ROWS, width))
        bits = np.empty(width, dtype=np.int64)
        h_table = np.empty((nodes, 2 * SIGMA_NODES))
        tables = np.empty((2, SIGMA_NODES, nodes))
        log_x = np.empty(2)
        first = group[0]
        call = is_call[first]
        put_rate = div_yield[first] if call else rate[first]
        put_yield = rate[first] if call else div_yield[first]
        build_tables(years[first], put_rate, put_yield, not call, scheme, tables, log_x, w,
                     bits, h_table)  # fmt: skip
        state = np.empty((IV_STATE_ROWS, lanes_g))
        lane_rows = np.empty(lanes_g, dtype=np.int64)
        h0 = np.empty((nodes, lanes_g))
        table_iv_queue(group, mid, no_start, no_start, spot, strike, years, rate, div_yield,
                       is_call, scheme, tables[0], log_x[0], lanes_g, w, bits, h0, state,
                       lane_rows, out[1])  # fmt: skip
        solved = np.empty(count, dtype=np.int64)
        m = 0
        for i in group:
            if SIGMA_LO < out[1, i] < SIGMA_HI:
                solved[m] = i
                m += 1
            else:
                out[1, i] = math.nan
        _greeks_and_sides(solved[:m], spot, strike, years, rate, div_yield, is_call, bid, ask,
                          scheme, lanes_g, w, bits, tables, log_x, out, status)  # fmt: skip


_chain_serial = kernel(_chain_loop)
_chain_parallel = kernel(_chain_loop, parallel=True)


def _singles_loop(rows, spot, strike, years, rate, div_yield, is_call, mid, bid, ask, lanes,
                  chunk, out, status):  # fmt: skip
    """Rows (status PENDING) on the fast engine's own boundaries; their status becomes OK or
    the mid's implied vol status."""
    scheme = FAST_SCHEME
    nodes = scheme.tau_fraction.shape[0]
    count = rows.shape[0]
    no_start = np.empty(0)
    codes = np.empty(spot.shape[0], dtype=np.uint8)
    for c in prange((count + chunk - 1) // chunk):
        part = rows[c * chunk : min(count, (c + 1) * chunk)]
        lanes_c = max(8, min(lanes, (part.shape[0] + 7) // 8 * 8))
        width = _width(scheme, lanes_c)
        w = np.empty((WORK_ROWS, width))
        bits = np.empty(width, dtype=np.int64)
        h0 = np.empty((nodes, lanes_c))
        state = np.empty((IV_STATE_ROWS, lanes_c))
        lane_rows = np.empty(lanes_c, dtype=np.int64)
        todo = np.empty(part.shape[0], dtype=np.int64)
        k = 0
        for i in part:
            _v, code, needs_engine = american_iv_screen(mid[i], spot[i], strike[i], years[i],
                                                       rate[i], div_yield[i],
                                                       is_call[i])  # fmt: skip
            if needs_engine:
                todo[k] = i
                k += 1
            else:
                codes[i] = code
        implied_vol_queue(todo[:k], mid, spot, strike, years, rate, div_yield, is_call, scheme,
                          lanes_c, w, bits, h0, state, lane_rows, out[1], codes, no_start,
                          no_start)  # fmt: skip
        solved = np.empty(part.shape[0], dtype=np.int64)
        m = 0
        for i in part:
            if codes[i] == STATUS_OK:
                solved[m] = i
                m += 1
            else:
                out[1, i] = math.nan
                status[i] = side_status(codes[i])
        empty_tables = np.empty((0, SIGMA_NODES, nodes))
        _greeks_and_sides(solved[:m], spot, strike, years, rate, div_yield, is_call, bid, ask,
                          scheme, lanes_c, w, bits, empty_tables, np.empty(2), out,
                          status)  # fmt: skip


_singles_serial = kernel(_singles_loop)
_singles_parallel = kernel(_singles_loop, parallel=True)


@kernel
def side_status(code: int) -> int:
    """ImpliedVolStatus -> PricingStatus (equal codes, except a non-positive price)."""
    if code == STATUS_NON_POSITIVE_PRICE:
        return 2  # NO_QUOTE
    return code


def price_american_rows(rows, spot, strike, years, rate, div_yield, is_call, bid, ask, out,
                        status, *, parallel=False):  # fmt: skip
    """Fill out (the 12 float rows of `fused.OUTPUT_NAMES`) and status for the American rows
    `rows` that can be exercised early and passed `fused`'s checks (a quote, a mid with a
    vol): chains on their tables first, the rest on the engine."""
    if rows.size == 0:
        return
    bid0 = np.where(bid[rows] > 0.0, bid[rows], 0.0)
    mid = np.full(spot.shape[0], np.nan)
    mid[rows] = 0.5 * (bid0 + ask[rows])
    status[rows] = PENDING
    pending = np.zeros(spot.shape[0], dtype=np.bool_)
    pending[rows] = True
    order, starts = chain_groups(years, rate, div_yield, is_call, pending)
    lanes = block_lanes(FAST_SCHEME)
    if order.size:
        loop = _chain_parallel if parallel else _chain_serial
        loop(order, starts, spot, strike, years, rate, div_yield, is_call, mid, bid, ask, lanes,
             out, status)  # fmt: skip
    singles = rows[status[rows] == PENDING].astype(np.int64)
    if singles.size:
        loop = _singles_parallel if parallel else _singles_serial
        loop(singles, spot, strike, years, rate, div_yield, is_call, mid, bid, ask, lanes,
             _SINGLES_CHUNK, out, status)  # fmt: skip


_SINGLES_CHUNK = 1024
