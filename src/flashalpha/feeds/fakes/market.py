"""The market a fake provider serves: a source of `TickBatch`es and the book they build.

A source is anything with a `registry` (`InstrumentRegistry` of its own contracts) and
`next_batch(now_ns) -> TickBatch` (rows of that registry); `initial_batches(now_ns)` is used
when present. The synthetic market (`feeds.synthetic.SyntheticFeed`) is one; `ScriptedMarket`
is a small deterministic one for tests. `MarketBook` keeps the latest quote, open interest and
spot of every contract, which is what the fakes' REST snapshots return.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from flashalpha.feeds.normalize import Exchange, TradeCondition
from flashalpha.instruments import InstrumentRegistry, OptionContract
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import OPEN_INTEREST_DTYPE, QUOTE_DTYPE, TRADE_DTYPE, Right

log = logging.getLogger(__name__)

_EXCHANGES = np.array(
    [e.value for e in Exchange if e not in (Exchange.UNKNOWN, Exchange.OPRA)], np.uint8
)
_CONDITIONS = np.array(
    [
        TradeCondition.REGULAR,
        TradeCondition.INTERMARKET_SWEEP,
        TradeCondition.SINGLE_LEG_AUCTION,
        TradeCondition.MULTI_LEG,
    ],
    np.uint16,
)


class MarketSource(Protocol):
    registry: InstrumentRegistry

    def next_batch(self, now_ns: int) -> TickBatch: ...


class ScriptedMarket:
    """A small reproducible option market: a few underlyings, expiries and strikes.

    Spots follow a seeded random walk; each batch quotes `quotes_per_batch` contracts (every
    contract in turn, so each one updates regularly) and prints `trades_per_batch` trades at the
    fresh quotes. Quotes are intrinsic value plus a time value that shrinks with moneyness.
    """

    def __init__(
        self,
        underlyings: dict[str, float] | None = None,
        *,
        expiries: int = 3,
        strikes_per_side: int = 5,
        strike_step: float = 5.0,
        quotes_per_batch: int = 50,
        trades_per_batch: int = 5,
        seed: int = 7,
        today: dt.date | None = None,
        first_expiry: dt.date | None = None,
    ) -> None:
        self.registry = InstrumentRegistry(100_000, 256)
        self.spots = dict(underlyings or {"SPY": 500.0})
        self._rng = np.random.default_rng(seed)
        self.quotes_per_batch = quotes_per_batch
        self.trades_per_batch = trades_per_batch
        today = today or dt.datetime.now(dt.UTC).date()
        start = first_expiry or today + dt.timedelta(days=1)
        for symbol, spot in self.spots.items():
            center = round(spot / strike_step) * strike_step
            for e in range(expiries):
                expiry = start + dt.timedelta(days=7 * e)
                for k in range(-strikes_per_side, strikes_per_side + 1):
                    strike = center + k * strike_step
                    if strike <= 0:
                        continue
                    for right in (Right.CALL, Right.PUT):
                        self.registry.add(
                            OptionContract(symbol, expiry, round(strike * 1000), right)
                        )
        self._uids = np.array([self.registry.underlying_id(s) for s in self.spots], np.int64)
        self._spot = np.array(list(self.spots.values()), np.float64)
        self._cursor = 0
        self.open_interest = self._rng.integers(0, 5000, self.registry.count).astype(np.uint32)

    @property
    def contracts(self) -> int:
        return self.registry.count

    def _spot_of_rows(self, rows: np.ndarray) -> np.ndarray:
        lookup = np.zeros(self.registry.underlying_count, np.float64)
        lookup[self._uids] = self._spot
        return lookup[self.registry.underlying_ids[rows]]

    def _quotes(self, rows: np.ndarray, now_ns: int) -> np.ndarray:
        spot = self._spot_of_rows(rows)
        strike = self.registry.strikes[rows]
        is_call = self.registry.rights[rows] == Right.CALL
        intrinsic = np.where(is_call, np.maximum(spot - strike, 0), np.maximum(strike - spot, 0))
        time_value = 2.0 * np.exp(-np.abs(spot - strike) / (0.05 * spot))
        mid = np.round(intrinsic + time_value + 0.05, 2)
        half = np.maximum(0.01, np.round(0.01 + 0.005 * mid, 2))
        quotes = np.zeros(len(rows), QUOTE_DTYPE)
        quotes["row"] = rows
        quotes["bid"] = np.maximum(0.0, np.round(mid - half, 2))
        quotes["ask"] = np.round(mid + half, 2)
        quotes["bid_size"] = self._rng.integers(1, 500, len(rows))
        quotes["ask_size"] = self._rng.integers(1, 500, len(rows))
        quotes["bid_exchange"] = self._rng.choice(_EXCHANGES, len(rows))
        quotes["ask_exchange"] = self._rng.choice(_EXCHANGES, len(rows))
        quotes["ts"] = now_ns
        return quotes

    def _underlyings(self, now_ns: int) -> np.ndarray:
        ticks = TickBatch.empty().underlyings
        ticks = np.zeros(len(self._uids), ticks.dtype)
        ticks["underlying"] = self._uids
        ticks["price"] = self._spot
        ticks["ts"] = now_ns
        return ticks

    def initial_batches(self, now_ns: int) -> Iterator[TickBatch]:
        rows = np.arange(self.registry.count, dtype=np.uint32)
        oi = np.zeros(len(rows), OPEN_INTEREST_DTYPE)
        oi["row"] = rows
        oi["open_interest"] = self.open_interest
        oi["ts"] = now_ns
        yield TickBatch(
            quotes=self._quotes(rows, now_ns),
            underlyings=self._underlyings(now_ns),
            open_interest=oi,
            source="scripted",
            ts_received=now_ns,
        )

    def next_batch(self, now_ns: int) -> TickBatch:
        self._spot *= np.exp(self._rng.normal(0.0, 0.0005, len(self._spot)))
        count = min(self.quotes_per_batch, self.registry.count)
        rows = (self._cursor + np.arange(count)) % self.registry.count
        self._cursor = int((self._cursor + count) % self.registry.count)
        quotes = self._quotes(rows.astype(np.uint32), now_ns)
        trade_count = min(self.trades_per_batch, count)
        picked = quotes[self._rng.choice(count, trade_count, replace=False)] if count else quotes
        trades = np.zeros(len(picked), TRADE_DTYPE)
        trades["row"] = picked["row"]
        trades["price"] = np.where(
            self._rng.random(len(picked)) < 0.5, picked["bid"], picked["ask"]
        )
        trades["price"] = np.maximum(trades["price"], 0.01)
        trades["size"] = self._rng.integers(1, 50, len(picked))
        trades["exchange"] = picked["bid_exchange"]
        trades["condition"] = self._rng.choice(_CONDITIONS, len(picked))
        trades["ts"] = now_ns
        return TickBatch(
            quotes=quotes,
            trades=trades,
            underlyings=self._underlyings(now_ns),
            source="scripted",
            ts_received=now_ns,
        )


def synthetic_market(
    underlyings: Sequence[str] = (), seed: int = 0, events_per_second: float = 5_000.0
) -> Any:
    """The synthetic market (`feeds.synthetic`), restricted to `underlyings` if given."""
    from flashalpha.feeds.synthetic import SyntheticFeed

    registry = InstrumentRegistry(2_000_000, 16_384)
    return SyntheticFeed(
        registry,
        universe="demo",
        seed=seed,
        events_per_second=events_per_second,
        underlyings=tuple(underlyings),
    )


class MarketBook:
    """The latest quote, open interest and spot of every contract of a source's registry."""

    def __init__(self, registry: InstrumentRegistry) -> None:
        self.registry = registry
        self.quotes = np.zeros(0, QUOTE_DTYPE)
        self.open_interest = np.zeros(0, np.uint32)
        self.spot = np.full(0, np.nan)
        self.ts_spot = np.zeros(0, np.uint64)
        self._grow()

    def _grow(self) -> None:
        n, u = self.registry.count, self.registry.underlying_count
        if len(self.quotes) < n:
            quotes = np.zeros(n, QUOTE_DTYPE)
            quotes["bid"] = np.nan
            quotes["ask"] = np.nan
            quotes[: len(self.quotes)] = self.quotes
            self.quotes = quotes
            self.open_interest = np.concatenate(
                [self.open_interest, np.zeros(n - len(self.open_interest), np.uint32)]
            )
        if len(self.spot) < u:
            self.spot = np.concatenate([self.spot, np.full(u - len(self.spot), np.nan)])
            self.ts_spot = np.concatenate(
                [self.ts_spot, np.zeros(u - len(self.ts_spot), np.uint64)]
            )

    def apply(self, batch: TickBatch) -> None:
        self._grow()
        if len(batch.quotes):
            self.quotes[batch.quotes["row"]] = batch.quotes
        if len(batch.open_interest):
            self.open_interest[batch.open_interest["row"]] = batch.open_interest["open_interest"]
        if len(batch.underlyings):
            ids = batch.underlyings["underlying"]
            self.spot[ids] = batch.underlyings["price"]
            self.ts_spot[ids] = batch.underlyings["ts"]

    def rows_of(self, underlying: str) -> np.ndarray:
        try:
            uid = self.registry.underlying_id(underlying)
        except KeyError:
            return np.empty(0, np.uint32)
        return self.registry.rows_of_underlying(uid)
