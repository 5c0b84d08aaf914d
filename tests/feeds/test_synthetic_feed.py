"""SyntheticFeed: initial state, batches, event rate, determinism, the asyncio loop."""

from __future__ import annotations

import asyncio
import datetime

import numpy as np
import pytest

from flashalpha.feeds.synthetic import SyntheticFeed, SyntheticFeedConfig
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_TICK_DTYPE,
)

TRADING_DATE = datetime.date(2026, 3, 10)
#: 2026-03-10 10:30 New York.
START_NS = 1_773_153_000 * 1_000_000_000
TICK_NS = 50_000_000


class FakeClock:
    """A clock that advances one tick per reading, from `start`."""

    def __init__(self, start: int = START_NS) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += TICK_NS
        return self.now


def make_feed(seed: int = 0, clock=None, **options) -> SyntheticFeed:
    registry = InstrumentRegistry(capacity=200_000)
    return SyntheticFeed(
        registry,
        "demo",
        seed=seed,
        clock=clock or FakeClock(),
        trading_date=TRADING_DATE,
        **options,
    )


@pytest.fixture(scope="module")
def feed() -> SyntheticFeed:
    return make_feed()


def test_construction_lists_the_universe(feed):
    assert feed.registry.count == feed.universe.contract_count > 50_000
    assert feed.universe.trading_date == TRADING_DATE
    assert feed.name == "synthetic"
    assert feed.status()["contracts"] == feed.universe.contract_count


def test_the_trading_date_defaults_to_the_clocks():
    saturday_noon = 1_773_504_000 * 1_000_000_000  # 2026-03-14 12:00 New York
    feed = SyntheticFeed(
        InstrumentRegistry(capacity=50_000), underlyings=["SPY"], clock=lambda: saturday_noon
    )
    assert feed.universe.trading_date == datetime.date(2026, 3, 16)


def test_initial_state_covers_every_contract_and_underlying(feed):
    batches = list(feed.initial_batches(START_NS))
    quotes = np.concatenate([b.quotes for b in batches])
    interest = np.concatenate([b.open_interest for b in batches])
    ticks = np.concatenate([b.underlyings for b in batches])
    assert np.array_equal(np.sort(quotes["row"]), np.arange(feed.registry.count))
    assert np.array_equal(np.sort(interest["row"]), np.arange(feed.registry.count))
    assert np.array_equal(np.sort(ticks["underlying"]), np.arange(feed.registry.underlying_count))
    assert np.all(quotes["ask"] > quotes["bid"])
    assert interest["open_interest"].sum() > 1_000_000
    for batch in batches:
        assert batch.quotes.dtype == QUOTE_DTYPE
        assert batch.open_interest.dtype == OPEN_INTEREST_DTYPE
        assert batch.ts_received == START_NS
        assert batch.source == "synthetic"
    spx = feed.registry.underlying_id("SPX")
    assert ticks["price"][ticks["underlying"] == spx][0] == pytest.approx(6600.0)


def test_batches_are_well_formed_and_at_the_configured_rate():
    feed = make_feed(events_per_second=20_000, tick_interval=0.05)
    clock = FakeClock()
    list(feed.initial_batches(clock()))
    batches = [feed.next_batch(clock()) for _ in range(100)]
    events = sum(len(b) for b in batches)
    seconds = 100 * 0.05
    assert events / seconds == pytest.approx(20_000, rel=0.15)
    for batch in batches:
        assert batch.quotes.dtype == QUOTE_DTYPE and batch.trades.dtype == TRADE_DTYPE
        assert batch.underlyings.dtype == UNDERLYING_TICK_DTYPE
        quotes = batch.quotes
        assert np.all(quotes["ask"] > quotes["bid"]) and np.all(quotes["bid"] >= 0)
        assert np.all(np.isfinite(quotes["bid"])) and np.all(np.isfinite(quotes["ask"]))
        assert len(np.unique(quotes["row"])) == len(quotes)
        assert np.all(np.isin(batch.trades["row"], quotes["row"]))
        assert np.all(quotes["ts"] == batch.ts_received)
        # every quoted contract's underlying ticks in the same batch
        quoted_underlyings = np.unique(feed.registry.underlying_ids[quotes["row"]])
        assert np.all(np.isin(quoted_underlyings, batch.underlyings["underlying"]))
    trades = np.concatenate([b.trades for b in batches])
    quotes = np.concatenate([b.quotes for b in batches])
    assert 0.04 < len(trades) / events < 0.10
    assert len(quotes) / events > 0.8
    slow = make_feed(events_per_second=2_000, tick_interval=0.1)
    slow_events = sum(len(slow.next_batch(START_NS + i * 10**8)) for i in range(50))
    assert slow_events / 5.0 == pytest.approx(2_000, rel=0.2)


def test_quotes_concentrate_near_the_money_and_near_expiry(feed):
    market = feed.market
    clock = FakeClock()
    quoted = np.concatenate([feed.next_batch(clock()).quotes["row"] for _ in range(40)])
    local_of_row = np.empty(feed.registry.count, np.int64)
    local_of_row[market.rows] = np.arange(market.contract_count)
    every = np.arange(market.contract_count)
    busy = local_of_row[quoted]

    def distance(local):
        u = market.row_underlying[local]
        return np.abs(np.log(market.strike[local] / market.quoted_spot()[u]))

    years = market.years(every, clock.now)
    assert np.median(distance(busy)) < 0.5 * np.median(distance(every))
    assert np.mean(years[busy] < 30 / 365) > 1.5 * np.mean(years < 30 / 365)
    assert np.mean(years[busy] < 1 / 365) > 3 * np.mean(years < 1 / 365)  # 0DTE


def test_same_seed_same_events():
    def stream(seed: int, offset_ns: int = 0) -> list[TickBatch]:
        feed = make_feed(seed=seed, clock=FakeClock(START_NS + offset_ns))
        clock = FakeClock(START_NS + offset_ns)
        return [*feed.initial_batches(clock()), *(feed.next_batch(clock()) for _ in range(20))]

    first, second = stream(7), stream(7)
    for a, b in zip(first, second, strict=True):
        for name in ("quotes", "trades", "underlyings", "open_interest"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
    # The clock stamps events and sets years to expiry; it does not change what happens.
    shifted = stream(7, offset_ns=1_000_000)
    for a, b in zip(first, shifted, strict=True):
        assert np.array_equal(a.quotes["row"], b.quotes["row"])
        assert np.array_equal(a.quotes["bid_size"], b.quotes["bid_size"])
        assert np.array_equal(a.trades["size"], b.trades["size"])
        assert np.all(b.quotes["ts"] == a.quotes["ts"] + 1_000_000)
        assert np.mean(a.quotes["bid"] == b.quotes["bid"]) > 0.95
    other = stream(8)
    assert not np.array_equal(first[-1].quotes["row"], other[-1].quotes["row"])


def test_the_config_rejects_nonsense():
    with pytest.raises(ValueError, match="tick_interval"):
        SyntheticFeedConfig(tick_interval=0)
    with pytest.raises(ValueError, match="events_per_second"):
        SyntheticFeedConfig(events_per_second=-1)
    with pytest.raises(ValueError, match="events_per_second"):
        SyntheticFeedConfig(events_per_second=float("nan"))


async def test_run_emits_the_initial_state_then_ticks_until_cancelled():
    feed = make_feed(events_per_second=5_000, tick_interval=0.01, underlyings=["SPY", "SPX"])
    emitted: list[TickBatch] = []
    task = asyncio.create_task(feed.run(emitted.append))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(emitted) >= 5
    initial = emitted[0]
    assert len(initial.open_interest) == feed.universe.contract_count
    assert len(initial.underlyings) == 2
    ticks = emitted[1:]
    assert all(len(b.open_interest) == 0 for b in ticks)
    assert sum(len(b.quotes) for b in ticks) > 0
    assert feed.status()["batches"] == len(emitted)
    assert feed.status()["events"] == sum(len(b) for b in emitted)
