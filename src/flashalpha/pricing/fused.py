"""The pricing workers' entry point: quotes in, implied vols, greeks and status out, in one pass.

`price_contracts` takes a batch of contracts as the state holds them (spot, strike, years,
rate, dividend yield, right, exercise style, bid, ask) and returns, per row, the implied vols of
the bid, the mid and the ask, the greeks at the mid's vol, the theoretical value there, and a
`flashalpha.state.layout.PricingStatus` code. European rows use Black-Scholes-Merton
(`implied_vol`'s block solver and `bsm_greeks` over all of them: their results to the bit, in
one call per output rather than row by row); American rows the fast American engine (`american`): its implied
vol, and greeks by finite differences of the engine; rows of one chain (same expiry, rate,
yield and right, at least `american_chain.MIN_GROUP` of them) share one table of boundaries
over vol (`american_chain`), the others solve their own. American calls without dividend
yield and American puts at non-positive rates are never exercised early: priced as European.

Status per row (the state's codes): OK; NO_QUOTE when there is no positive ask; BAD_INPUT for
non-finite or non-positive spot/strike, negative time, or a crossed quote (bid > ask); EXPIRED
at zero time (theo is then the intrinsic value, delta its 0/±1, other outputs NaN);
BELOW_INTRINSIC / ABOVE_MAXIMUM when the mid has no implied vol (for American rows that can be
exercised early, also a mid at most `american.MIN_TIME_VALUE` = one cent above the exercise
value: the price is flat in vol there, see `american.quote_has_vol`; bid and ask likewise get
no vol). Vols and greeks are NaN
wherever they do not exist; a bad row never affects another.

Units: vols decimal; delta per $1; gamma per $1 per $1; vega per 1.00 vol; theta per year;
rho per 1.00 rate; vanna delta per 1.00 vol; charm delta per year; vomma vega per 1.00 vol;
theo dollars.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from flashalpha.pricing._arrays import flat_inputs
from flashalpha.pricing._jit import kernel
from flashalpha.pricing.american import (
    early_exercise_matters,
    exercise_floor,
    quote_has_vol,
)
from flashalpha.pricing.american_quotes import PENDING, price_american_rows
from flashalpha.pricing.greeks import bsm_greeks
from flashalpha.pricing.implied_vol import implied_vol
from flashalpha.pricing.status import (
    STATUS_NON_POSITIVE_PRICE,
    STATUS_OK,
)

# flashalpha.state.layout.PricingStatus, as plain ints for the kernel (checked by the tests).
UNPRICED, OK, NO_QUOTE, BELOW_INTRINSIC, ABOVE_MAXIMUM, EXPIRED, BAD_INPUT = range(7)

OUTPUT_NAMES = (
    "iv_bid",
    "iv_mid",
    "iv_ask",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
    "vanna",
    "charm",
    "vomma",
    "theo",
    "status",
)


class PricedContracts(NamedTuple):
    """Outputs of `price_contracts`, one array per field (units in the module docstring)."""

    iv_bid: np.ndarray
    iv_mid: np.ndarray
    iv_ask: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray
    vanna: np.ndarray
    charm: np.ndarray
    vomma: np.ndarray
    theo: np.ndarray
    status: np.ndarray

    @classmethod
    def empty(cls, n: int) -> PricedContracts:
        """Preallocated outputs for `n` rows (float64, status uint8)."""
        return cls(*(np.empty(n) for _ in range(12)), np.empty(n, dtype=np.uint8))


#: Transient status of rows `_price_row` leaves to `_price_european_rows`.
EUROPEAN = 254


@kernel
def _price_row(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    div_yield: float,
    is_call: bool,
    is_american: bool,
    bid: float,
    ask: float,
    out: np.ndarray,
    i: int,
) -> int:
    """Set out[0:12, i] (the float outputs in OUTPUT_NAMES order) to NaN, settle the rows that
    need no solver (bad input, expired, no quote, crossed, American at its exercise value) and
    return their status; EUROPEAN for rows priced by Black-Scholes-Merton and PENDING for
    American rows that can be exercised early, which are priced a block at a time
    (`_price_european_rows`, `american_quotes.price_american_rows`)."""
    for g in range(12):
        out[g, i] = math.nan
    if not (
        0.0 < spot < math.inf
        and 0.0 < strike < math.inf
        and 0.0 <= years < math.inf
        and math.isfinite(rate)
        and math.isfinite(div_yield)
    ):
        return BAD_INPUT
    if years == 0.0:
        intrinsic = max((spot - strike) if is_call else (strike - spot), 0.0)
        out[11, i] = intrinsic
        out[3, i] = (1.0 if is_call else -1.0) if intrinsic > 0.0 else 0.0
        return EXPIRED
    if not (ask > 0.0 and ask < math.inf):
        return NO_QUOTE
    if math.isnan(bid) or bid < 0.0:
        bid = 0.0
    if bid > ask:
        return BAD_INPUT
    mid = 0.5 * (bid + ask)
    early = is_american and early_exercise_matters(div_yield if is_call else rate, years)
    if early:
        floor = exercise_floor(spot, strike, years, rate, div_yield, is_call)
        if not quote_has_vol(mid, floor):
            return BELOW_INTRINSIC  # at (or within a cent of) the exercise value: no vol
        return PENDING  # for american_quotes, a block at a time
    return EUROPEAN  # for _price_european_rows, a block at a time


def _price_loop(spot, strike, years, rate, div_yield, is_call, is_american, bid, ask, out,
                status):  # fmt: skip
    n = spot.shape[0]
    chunk = 256
    for c in prange((n + chunk - 1) // chunk):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            status[i] = _price_row(
                spot[i], strike[i], years[i], rate[i], div_yield[i], is_call[i],
                is_american[i], bid[i], ask[i], out, i,
            )  # fmt: skip


_price_serial = kernel(_price_loop)
_price_parallel = kernel(_price_loop, parallel=True)


#: Matrix rows of the greeks `price_contracts` keeps, with their `Greeks` fields.
_GREEK_ROWS = (
    (11, "price"),
    (3, "delta"),
    (4, "gamma"),
    (5, "vega"),
    (6, "theta"),
    (7, "rho"),
    (8, "vanna"),
    (9, "charm"),
    (10, "vomma"),
)


def _price_european_rows(rows, s, k, t, r, q, c, bid, ask, matrix, status, parallel) -> None:
    """Black-Scholes-Merton rows (`EUROPEAN`): the mid's vol, the greeks there, then the bid's
    and the ask's vols, each over the whole set of rows with the array kernels (`implied_vol`'s
    block solver, `bsm_greeks`), so the results are those functions' to the bit."""
    if not len(rows):
        return
    s, k, t, r, q, c = s[rows], k[rows], t[rows], r[rows], q[rows], c[rows]
    bid, ask = bid[rows], ask[rows]
    bid = np.where(np.isnan(bid) | (bid < 0.0), 0.0, bid)  # as `_price_row` checked it
    vol, code = implied_vol(0.5 * (bid + ask), s, k, t, r, q, c, True, parallel=parallel)
    matrix[1, rows] = vol
    ok = code == STATUS_OK
    status[rows] = np.where(code == STATUS_NON_POSITIVE_PRICE, NO_QUOTE, code)  # equal codes
    good = rows[ok]
    s, k, t, r, q, c, vol, bid, ask = (
        s[ok],
        k[ok],
        t[ok],
        r[ok],
        q[ok],
        c[ok],
        vol[ok],
        bid[ok],
        ask[ok],
    )
    greeks = bsm_greeks(s, k, t, r, q, vol, c, parallel=parallel)
    for index, name in _GREEK_ROWS:
        matrix[index, good] = getattr(greeks, name)
    for index, quote in ((0, bid), (2, ask)):
        quoted = quote > 0.0
        side, side_code = implied_vol(
            quote[quoted], s[quoted], k[quoted], t[quoted], r[quoted], q[quoted], c[quoted],
            True, parallel=parallel,
        )  # fmt: skip
        matrix[index, good[quoted]] = np.where(side_code == STATUS_OK, side, np.nan)


def price_contracts(
    spot,
    strike,
    years,
    rate,
    div_yield,
    is_call,
    is_american,
    bid,
    ask,
    *,
    out: PricedContracts | None = None,
    parallel: bool = False,
) -> PricedContracts:
    """Implied vols (bid, mid, ask), greeks at the mid vol, theo and PricingStatus per contract.

    Arrays (or scalars) broadcast to one length; `out` may hold preallocated 1-D arrays of that
    length (e.g. views of the state's columns), which are filled and returned. See the module
    docstring for units and statuses.
    """
    shape, (s, k, t, r, q, b, a), (c, am) = flat_inputs(
        (spot, strike, years, rate, div_yield, bid, ask), (is_call, is_american)
    )
    n = s.shape[0]
    matrix = np.empty((12, n))
    status = np.empty(n, dtype=np.uint8) if out is None else out.status
    if status.shape != (n,):
        raise ValueError(f"out arrays must have shape ({n},), status has {status.shape}")
    (_price_parallel if parallel else _price_serial)(s, k, t, r, q, c, am, b, a, matrix, status)
    european = np.flatnonzero(status == EUROPEAN)
    _price_european_rows(european, s, k, t, r, q, c, b, a, matrix, status, parallel)
    american = np.flatnonzero(status == PENDING)
    price_american_rows(american, s, k, t, r, q, c, b, a, matrix, status, parallel=parallel)
    if out is None:
        return PricedContracts(*(row.reshape(shape) for row in matrix), status.reshape(shape))
    for target, row in zip(out[:12], matrix, strict=True):
        target[...] = row
    return out
