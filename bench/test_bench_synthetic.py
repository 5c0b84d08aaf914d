"""Synthetic feed: how many events per second `next_batch` generates, and the initial state.

Run: .venv/bin/python -m pytest bench/test_bench_synthetic.py --benchmark-only
"""

from __future__ import annotations

import datetime
import itertools

import pytest

from flashalpha.feeds.synthetic import SyntheticFeed
from flashalpha.instruments import InstrumentRegistry

TRADING_DATE = datetime.date(2026, 3, 10)
START_NS = 1_773_153_000 * 1_000_000_000  # 2026-03-10 10:30 New York
TICK_INTERVAL = 0.05


def _feed(universe: str) -> tuple[SyntheticFeed, itertools.count]:
    clock = itertools.count(START_NS, round(TICK_INTERVAL * 1e9))
    feed = SyntheticFeed(
        InstrumentRegistry(),
        universe,  # type: ignore[arg-type]
        seed=0,
        events_per_second=20_000,
        tick_interval=TICK_INTERVAL,
        clock=clock.__next__,
        trading_date=TRADING_DATE,
    )
    return feed, clock


@pytest.mark.parametrize("universe", ["demo", "full"])
def test_next_batch_events_per_second(benchmark, universe):
    """One batch is 0.05 s of market at 20,000 events/s: about 1,000 events."""
    feed, clock = _feed(universe)
    for _ in range(50):  # past the first activity refresh, into the steady state
        feed.next_batch(next(clock))
    events_before = feed.events
    benchmark.pedantic(lambda: feed.next_batch(next(clock)), rounds=200, iterations=1)
    events_per_batch = (feed.events - events_before) / 200
    benchmark.extra_info["events_per_batch"] = events_per_batch
    benchmark.extra_info["generated_events_per_second"] = round(
        events_per_batch / benchmark.stats["mean"]
    )
    # The generator must outrun the rate it is asked for, with room for the daemon.
    assert events_per_batch / benchmark.stats["mean"] > 10 * 20_000


def test_initial_state_of_the_full_market(benchmark):
    """Every quote and open interest of ~1.8M contracts, the feed's first emission."""
    feed, clock = _feed("full")

    def emit_all() -> int:
        return sum(len(batch) for batch in feed.initial_batches(next(clock)))

    events = benchmark.pedantic(emit_all, rounds=3, iterations=1)
    benchmark.extra_info["events"] = events
    benchmark.extra_info["events_per_second"] = round(events / benchmark.stats["mean"])
