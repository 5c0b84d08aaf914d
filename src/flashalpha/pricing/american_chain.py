"""American options of one chain: one table of exercise boundaries over vol, shared by every
strike and both sides of the quote.

The fast engine's boundary (see `american`) depends on the rate, the dividend yield, the time
to expiry and the vol, but not on the strike (it is proportional to it) nor on the spot. The
options of one expiry of one underlying (the bulk of a pricing worker's batch) share the first
three, and their implied vols, bid/ask vols and vol-bumped greeks only move the fourth. So for
each group of rows with the same (T, r, q) and right, the boundary is solved once on a
Chebyshev grid of vols, σ_k in [SIGMA_LO, SIGMA_HI] (log scale), and interpolated in between:
each price is then only the early exercise premium integral. The interpolated quantity is
√H/σ = ln(X/B)/σ, smooth in ln σ; 24 nodes reproduce the directly solved boundary's prices to
3e-5 on spot 100 (FP-A everywhere, which is smooth across the whole vol range). A second table
at r + 1e-4 gives rho.

Rows whose implied vol falls outside the table, or whose group is too small for a table to pay
off (MIN_GROUP rows), are left to the per-row engine. The pricing itself (tables built on all
their vols at once, implied vols and greeks a block of rows at a time) is in
`american_quotes`; `build_table` and `table_boundary` here are the scalar reference.
"""

from __future__ import annotations

import math

import numpy as np

from flashalpha.pricing._jit import kernel
from flashalpha.pricing.american import (
    Scheme,
    make_scheme,
    put_boundary,
)

#: The chain tables' scheme: finer than FAST_SCHEME, the cost is shared by the chain.
CHAIN_SCHEME = make_scheme(nodes=6, node_quadrature=8, iterations=4, price_quadrature=12)
SIGMA_LO = 0.02
SIGMA_HI = 4.0
SIGMA_NODES = 24
#: Rows sharing (T, r, q, right) from which a table is cheaper than per-row boundaries.
MIN_GROUP = 8
_RATE_BUMP = 1e-4
_LOG_LO = math.log(SIGMA_LO)
_LOG_HI = math.log(SIGMA_HI)

_K = np.arange(SIGMA_NODES)
_ZETA = np.cos(_K * np.pi / (SIGMA_NODES - 1))
SIGMA_GRID = np.exp(0.5 * (_LOG_LO + _LOG_HI) + 0.5 * (_LOG_HI - _LOG_LO) * _ZETA)
_HALF = np.where((_K == 0) | (_K == SIGMA_NODES - 1), 0.5, 1.0)
SIGMA_MATRIX = np.ascontiguousarray(
    (2.0 / (SIGMA_NODES - 1)) * np.cos(np.outer(_K, _K) * np.pi / (SIGMA_NODES - 1)) * _HALF
)


@kernel
def build_table(
    years: float,
    rate: float,
    div_yield: float,
    scheme: Scheme,
    coefficients: np.ndarray,
    h_nodes: np.ndarray,
    work: np.ndarray,
    values: np.ndarray,
) -> float:
    """Chebyshev coefficients in ln σ of √H_j/σ for a put with unit strike into
    `coefficients` (SIGMA_NODES, n + 1); returns ln X. `values` is (SIGMA_NODES, n + 1) work."""
    nodes = h_nodes.shape[0]
    log_x = 0.0
    for k in range(SIGMA_NODES):
        sigma = SIGMA_GRID[k]
        log_x = put_boundary(1.0, years, rate, div_yield, sigma, scheme, h_nodes, work, 1)
        for j in range(nodes):
            values[k, j] = math.sqrt(max(h_nodes[j], 0.0)) / sigma
    for m in range(SIGMA_NODES):
        for j in range(nodes):
            acc = 0.0
            for k in range(SIGMA_NODES):
                acc += SIGMA_MATRIX[m, k] * values[k, j]
            coefficients[m, j] = acc
    return log_x


@kernel
def table_boundary(coefficients: np.ndarray, sigma: float, h_nodes: np.ndarray) -> None:
    """H_j at `sigma` (within the table's range) from the coefficients."""
    zeta = (2.0 * math.log(sigma) - _LOG_LO - _LOG_HI) / (_LOG_HI - _LOG_LO)
    zeta = min(max(zeta, -1.0), 1.0)
    n = SIGMA_NODES - 1
    for j in range(h_nodes.shape[0]):
        b1 = 0.5 * coefficients[n, j]
        b2 = 0.0
        for m in range(n - 1, 0, -1):
            b1, b2 = 2.0 * zeta * b1 - b2 + coefficients[m, j], b1
        g = zeta * b1 - b2 + 0.5 * coefficients[0, j]
        h_nodes[j] = (g * sigma) ** 2


def chain_groups(years, rate, div_yield, is_call, eligible):
    """Rows of `eligible` grouped by (T, r, q, right): (order, starts) of the groups with at
    least MIN_GROUP rows; order lists row indices group by group."""
    rows = np.flatnonzero(eligible)
    if rows.size < MIN_GROUP:
        return np.zeros(0, np.int64), np.zeros(1, np.int64)
    keys = np.stack(
        [years[rows], rate[rows], div_yield[rows], is_call[rows].astype(np.float64)], axis=1
    )
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    big = counts[inverse] >= MIN_GROUP
    rows, inverse = rows[big], inverse[big]
    sort = np.argsort(inverse, kind="stable")
    order = rows[sort].astype(np.int64)
    labels = inverse[sort]
    boundaries = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], boundaries, [order.size]]).astype(np.int64)
    return order, starts


__all__ = ["CHAIN_SCHEME", "MIN_GROUP", "build_table", "chain_groups", "table_boundary"]
