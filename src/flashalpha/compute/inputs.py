"""What a worker needs to price a row, read from the state: years to expiry, rates, spots.

Years are ACT/365 from now to the expiry instant, 16:00 New York time on the expiry date
(daylight saving handled by the tz database), or 09:30 for the a.m.-settled index series
(`instruments.AM_SETTLED_ROOTS`: SPX monthlies, not SPXW), and never negative. The rate of a row is the
configured curve interpolated at its years (flat beyond the ends), or without a curve the
underlying's `rate` column (the configured flat rate). Dividend yields are the underlying's
`div_yield` column.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

from flashalpha.compute.protocol import INPUT_COLUMNS
from flashalpha.instruments import AM_SETTLEMENT_LEAD_NS, am_settled
from flashalpha.state.engine import MarketState

NEW_YORK = ZoneInfo("America/New_York")
EXPIRY_TIME = dt.time(16, 0)
NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
_EPOCH = dt.date(1970, 1, 1)


def expiry_close_ns(days: int) -> int:
    """16:00 New York on the date `days` since 1970-01-01, in ns since the epoch (UTC)."""
    date = _EPOCH + dt.timedelta(days=int(days))
    local = dt.datetime.combine(date, EXPIRY_TIME, NEW_YORK)
    return int(local.timestamp()) * 1_000_000_000


class ExpiryClock:
    """Years to expiry for arrays of expiry days, through a table of close instants, and which
    rows settle a.m. (derived from their OSI roots once, as rows are listed)."""

    def __init__(self) -> None:
        self._first = 0
        self._close = np.empty(0, np.int64)
        self._am = np.zeros(0, bool)
        self._am_rows = 0

    def am_settled(self, state: MarketState) -> np.ndarray:
        """Per option row of `state`: does it settle a.m.? (Listed rows never change.)"""
        count = state.count
        if len(self._am) < state.capacity:
            self._am = np.zeros(state.capacity, bool)
            self._am_rows = 0
        if self._am_rows < count:
            self._am[self._am_rows : count] = am_settled(state.column("osi")[self._am_rows : count])
            self._am_rows = count
        return self._am[:count]

    def close_ns(self, expiry_days: np.ndarray) -> np.ndarray:
        """Close instant (ns) of each expiry day."""
        if len(expiry_days) == 0:
            return np.empty(0, np.int64)
        low, high = int(expiry_days.min()), int(expiry_days.max())
        if len(self._close) == 0 or low < self._first or high >= self._first + len(self._close):
            self._extend(low, high)
        return self._close[expiry_days - self._first]

    def _extend(self, low: int, high: int) -> None:
        if len(self._close):
            low = min(low, self._first)
            high = max(high, self._first + len(self._close) - 1)
        self._close = np.array([expiry_close_ns(d) for d in range(low, high + 1)], np.int64)
        self._first = low

    def years(
        self, expiry_days: np.ndarray, now_ns: int, am: np.ndarray | None = None
    ) -> np.ndarray:
        """ACT/365 years from `now_ns` to each expiry instant, floored at 0: the close, or the
        opening where `am` (a.m. settlement) is True."""
        remaining = self.close_ns(expiry_days) - np.int64(now_ns)
        if am is not None:
            remaining = remaining - am * np.int64(AM_SETTLEMENT_LEAD_NS)
        return np.maximum(remaining, 0).astype(np.float64) / NS_PER_YEAR


class RateCurve:
    """Continuously compounded rates by years to expiry: linear between points, flat beyond.

    `points` are (days to expiry, rate) pairs; an empty curve means "use each underlying's
    rate column" (`rates` returns None).
    """

    def __init__(self, points: tuple[tuple[float, float], ...] | list = ()) -> None:
        points = sorted((float(days), float(rate)) for days, rate in points)
        for days, rate in points:
            if not (np.isfinite(days) and days >= 0 and np.isfinite(rate)):
                raise ValueError(f"rate curve point ({days}, {rate}): days >= 0 and finite rate")
        if len({days for days, _ in points}) != len(points):
            raise ValueError(f"rate curve has repeated days: {points}")
        self._years = np.array([days / 365.0 for days, _ in points])
        self._rates = np.array([rate for _, rate in points])

    def __bool__(self) -> bool:
        return len(self._years) > 0

    def rates(self, years: np.ndarray) -> np.ndarray | None:
        if not self:
            return None
        return np.interp(years, self._years, self._rates)


def gather_inputs(
    state: MarketState,
    rows: np.ndarray | slice,
    now_ns: int,
    clock: ExpiryClock,
    curve: RateCurve,
) -> dict[str, np.ndarray]:
    """Copy the pricing inputs of `rows` (an index array or a slice) out of the state.

    Runs on the writer's thread, so the columns cannot change while they are read. Every array
    returned is a fresh copy in the protocol's dtype, safe to send with copy=False.
    """
    column = state.column
    uid = column("underlying_id")[rows]
    expiry = column("expiry")[rows]
    years = clock.years(expiry, now_ns, clock.am_settled(state)[rows])
    rates = curve.rates(years)
    if rates is None:
        rates = state.underlying_column("rate")[uid]
    out = {
        "spot": state.underlying_column("spot")[uid],
        "strike": column("strike")[rows],
        "years": years,
        "rate": rates,
        "div_yield": state.underlying_column("div_yield")[uid],
        "bid": column("bid")[rows],
        "ask": column("ask")[rows],
        "right": column("right")[rows],
        "style": column("style")[rows],
    }
    if isinstance(rows, slice):
        # Slices of the state's columns are views of shared memory: copy them.
        for name in ("strike", "bid", "ask", "right", "style"):
            out[name] = out[name].copy()
    return {name: np.ascontiguousarray(out[name], dtype) for name, dtype in INPUT_COLUMNS}
