"""`SyntheticFeed`: the simulated option market as a feed of `TickBatch`es.

On construction it lists its universe in the registry (so the daemon can size and fill the
state before the first event). `run` first emits the initial state, every live contract's quote
and open interest and every underlying's price, in chunks, then every `tick_interval` seconds
one batch of about `events_per_second x tick_interval` events: quote updates concentrated near
the money and near expiry, trades against those fresh quotes, and the ticks of the underlyings
those quotes were priced from (plus a periodic refresh of quiet underlyings).

Each batch advances the simulation by exactly `tick_interval`, whatever the wall clock did, so
a seed reproduces the same events; the clock only stamps `ts` and sets years to expiry.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Literal

import msgspec
import numpy as np

from flashalpha.feeds.synthetic.calendar import NS_PER_SECOND, trading_date_at
from flashalpha.feeds.synthetic.market import SyntheticMarket
from flashalpha.feeds.synthetic.sampling import ActivitySampler
from flashalpha.feeds.synthetic.universe import Universe, build_universe
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.batch import TickBatch

#: Share of a batch's events that are trades; underlying ticks are counted, quotes fill the rest.
TRADE_SHARE: Final = 0.07
#: Quiet underlyings get a tick at least this often, seconds.
UNDERLYING_REFRESH_SECONDS: Final = 10.0
#: Quote activity weights follow spot and time decay: one sweep over every contract takes
#: this many seconds of simulation, a slice per batch (see sampling.ActivitySampler).
ACTIVITY_REFRESH_SECONDS: Final = 2.0
#: Contracts per initial-state batch (bounds the memory of the vectorized pricing).
INITIAL_CHUNK: Final = 250_000
#: When the event loop falls this many ticks behind, the schedule resets instead of bursting.
MAX_TICKS_BEHIND: Final = 5
SOURCE: Final = "synthetic"


class SyntheticFeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the synthetic feed. Rates are decimals per year; intervals seconds."""

    universe: Literal["demo", "full"] = "demo"
    seed: int = 0
    events_per_second: float = 20_000.0
    tick_interval: float = 0.05
    rate: float = 0.045
    #: Restrict the universe to these underlyings; empty means all of it.
    underlyings: tuple[str, ...] = ()
    #: The listing date; None means the trading date at the clock's first reading.
    trading_date: datetime.date | None = None

    def __post_init__(self) -> None:
        if not (self.events_per_second >= 0 and math.isfinite(self.events_per_second)):
            raise ValueError(
                f"events_per_second must be a finite number >= 0, got {self.events_per_second!r}"
            )
        if not (self.tick_interval > 0 and math.isfinite(self.tick_interval)):
            raise ValueError(f"tick_interval must be positive seconds, got {self.tick_interval!r}")
        if not math.isfinite(self.rate):
            raise ValueError(f"rate must be finite, got {self.rate!r}")


class SyntheticFeed:
    """The daemon's default feed: a simulated, internally consistent option market."""

    name = SOURCE

    def __init__(
        self,
        registry: InstrumentRegistry,
        universe: Literal["demo", "full"] | Universe = "demo",
        seed: int = 0,
        events_per_second: float = 20_000.0,
        tick_interval: float = 0.05,
        rate: float = 0.045,
        clock: Callable[[], int] = time.time_ns,
        *,
        underlyings: Sequence[str] = (),
        trading_date: datetime.date | None = None,
    ) -> None:
        prebuilt = universe if isinstance(universe, Universe) else None
        self.config = SyntheticFeedConfig(
            universe=prebuilt.name if prebuilt is not None else universe,  # type: ignore[arg-type]
            seed=seed,
            events_per_second=events_per_second,
            tick_interval=tick_interval,
            rate=rate,
            underlyings=tuple(underlyings),
            trading_date=prebuilt.trading_date if prebuilt is not None else trading_date,
        )
        self.registry = registry
        self._clock = clock
        if prebuilt is None:
            prebuilt = build_universe(
                self.config.universe,
                registry,
                self.config.trading_date or trading_date_at(clock()),
                seed,
                self.config.underlyings,
            )
        self.universe = prebuilt
        self.market = SyntheticMarket(prebuilt, registry, rate=rate, seed=seed)
        self._rng = np.random.default_rng([seed, 0xFEED])
        self._tick_ns = round(tick_interval * NS_PER_SECOND)
        self._sampler = ActivitySampler(
            self.market.contract_count,
            self.market.activity,
            sweep_calls=max(1, round(ACTIVITY_REFRESH_SECONDS / tick_interval)),
        )
        self._sampler_ready = False
        self._last_tick_ns = np.zeros(prebuilt.underlying_count, np.int64)
        self._ticks_per_batch = 0.0
        self.batches = 0
        self.events = 0
        self._started_ns = 0

    # -- the event stream ---------------------------------------------------------------------

    def initial_batches(self, now_ns: int) -> Iterator[TickBatch]:
        """The market as it stands: every underlying's price, every live contract's quote and
        every contract's open interest, in batches of at most `INITIAL_CHUNK` contracts."""
        market = self.market
        everyone = np.arange(self.universe.underlying_count)
        self._last_tick_ns[:] = now_ns
        ticks = market.underlying_ticks(everyone, now_ns)
        for start in range(0, max(market.contract_count, 1), INITIAL_CHUNK):
            local = np.arange(start, min(start + INITIAL_CHUNK, market.contract_count))
            alive = local[market.years(local, now_ns) > 0.0]
            batch = TickBatch(
                quotes=market.quotes(alive, now_ns),
                underlyings=ticks,
                open_interest=market.open_interest(local, now_ns),
                source=SOURCE,
                ts_received=now_ns,
            )
            ticks = TickBatch.empty().underlyings
            self._count(batch)
            yield batch

    def next_batch(self, now_ns: int) -> TickBatch:
        """Advance the market by one `tick_interval` and return its events, stamped `now_ns`."""
        market = self.market
        rng = self._rng
        market.step(self.config.tick_interval)
        if self._sampler_ready:
            self._sampler.advance(now_ns)
        else:
            self._sampler.refresh_all(now_ns)
            self._sampler_ready = True
        budget = self.config.events_per_second * self.config.tick_interval
        trade_count = int(rng.poisson(budget * TRADE_SHARE))
        quote_count = int(rng.poisson(max(budget * (1 - TRADE_SHARE) - self._ticks_per_batch, 0.0)))
        local = self._sampler.sample(rng, quote_count)
        quotes = market.quotes(local, now_ns)
        trades = market.trades(quotes, trade_count, now_ns)
        # Ticks of the underlyings just priced, so that readers see the spot behind each quote.
        touched = np.unique(market.row_underlying[local])
        quiet = np.flatnonzero(
            now_ns - self._last_tick_ns >= UNDERLYING_REFRESH_SECONDS * NS_PER_SECOND
        )
        ticking = np.union1d(touched, quiet)
        self._last_tick_ns[ticking] = now_ns
        self._ticks_per_batch = 0.9 * self._ticks_per_batch + 0.1 * ticking.shape[0]
        batch = TickBatch(
            quotes=quotes,
            trades=trades,
            underlyings=market.underlying_ticks(ticking, now_ns),
            source=SOURCE,
            ts_received=now_ns,
        )
        self._count(batch)
        return batch

    def _count(self, batch: TickBatch) -> None:
        self.batches += 1
        self.events += len(batch)

    async def run(self, emit: Callable[[TickBatch], None]) -> None:
        """Emit the initial state, then a batch every `tick_interval` until cancelled."""
        loop = asyncio.get_running_loop()
        self._started_ns = self._clock()
        for batch in self.initial_batches(self._started_ns):
            emit(batch)
            await asyncio.sleep(0)  # let the loop serve others between large batches
        interval = self.config.tick_interval
        deadline = loop.time()
        while True:
            deadline += interval
            delay = deadline - loop.time()
            if delay < -MAX_TICKS_BEHIND * interval:
                deadline = loop.time()  # overloaded: drop the backlog rather than burst
            await asyncio.sleep(max(delay, 0.0))
            emit(self.next_batch(self._clock()))

    def status(self) -> dict:
        """What `flashalpha status` shows for this feed."""
        elapsed = (self._clock() - self._started_ns) / NS_PER_SECOND if self._started_ns else 0.0
        return {
            "universe": self.universe.name,
            "trading_date": self.universe.trading_date.isoformat(),
            "underlyings": self.universe.underlying_count,
            "contracts": self.universe.contract_count,
            "events_per_second_target": self.config.events_per_second,
            "tick_interval": self.config.tick_interval,
            "batches": self.batches,
            "events": self.events,
            "events_per_second": round(self.events / elapsed, 1) if elapsed > 0 else 0.0,
        }
