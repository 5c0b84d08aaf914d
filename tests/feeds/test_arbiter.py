"""The arbiter: newest quote per contract, every print exactly once, health and leader."""

from __future__ import annotations

import numpy as np
import pytest

from flashalpha.config import PolygonConfig, ThetaDataConfig
from flashalpha.feeds.arbiter import Arbiter, TradeDeduplicator, trade_keys
from flashalpha.feeds.polygon import PolygonFeed
from flashalpha.feeds.thetadata import ThetaDataFeed
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import QUOTE_DTYPE, TRADE_DTYPE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def quotes(rows, ts, bid=1.0):
    records = np.zeros(len(rows), QUOTE_DTYPE)
    records["row"], records["ts"], records["bid"], records["ask"] = rows, ts, bid, bid + 0.1
    return TickBatch(quotes=records)


def trades(rows, ts, price=1.0, size=1):
    records = np.zeros(len(rows), TRADE_DTYPE)
    records["row"], records["ts"], records["price"], records["size"] = rows, ts, price, size
    return TickBatch(trades=records)


@pytest.fixture
def arbiter():
    registry = InstrumentRegistry(1000, 10)
    feeds = [
        PolygonFeed(registry, PolygonConfig(api_key="k"), ("SPY",)),
        ThetaDataFeed(registry, ThetaDataConfig(), ("SPY",)),
    ]
    clock = Clock()
    arbiter = Arbiter(feeds, failover_after=2.0, duplicate_window=10.0, clock=clock)
    arbiter.clock = clock
    return arbiter


def test_newest_quote_wins_and_copies_are_dropped(arbiter):
    first = arbiter.merge(0, quotes([1, 2], [100, 100]))
    assert first.quotes["row"].tolist() == [1, 2]
    copy = arbiter.merge(1, quotes([1, 2], [100, 100]))  # the other feed, same events
    assert len(copy.quotes) == 0
    mixed = arbiter.merge(1, quotes([1, 2, 3], [150, 90, 100]))
    assert mixed.quotes["row"].tolist() == [1, 3]  # newer, older (dropped), new contract
    assert arbiter.duplicates == [0, 2] and arbiter.older == [0, 1]
    assert arbiter.merge(0, quotes([1], [120])).quotes.size == 0  # older than feed 1's 150


def test_each_print_passes_once_even_when_identical_prints_repeat(arbiter):
    # two genuine identical prints from feed 0, then feed 1's copies of both and one more
    assert len(arbiter.merge(0, trades([5, 5], [10**9, 10**9])).trades) == 2
    assert len(arbiter.merge(1, trades([5, 5, 5], [10**9, 10**9, 10**9])).trades) == 1
    assert len(arbiter.merge(0, trades([5], [10**9])).trades) == 0  # feed 1 already gave the 3rd
    assert len(arbiter.merge(0, trades([5], [2 * 10**9])).trades) == 1  # another millisecond


def test_trades_differing_in_any_field_are_distinct():
    records = np.zeros(5, TRADE_DTYPE)
    records["row"] = [1, 2, 1, 1, 1]
    records["ts"] = [10**9, 10**9, 2 * 10**9, 10**9, 10**9]
    records["price"] = [1.0, 1.0, 1.0, 1.05, 1.0]
    records["size"] = [1, 1, 1, 1, 2]
    assert len(set(trade_keys(records).tolist())) == 5
    same_ms = records[[0]].copy()
    same_ms["ts"] += 999_999  # same millisecond (ThetaData and Polygon both stamp ms)
    assert trade_keys(same_ms)[0] == trade_keys(records[[0]])[0]


def test_dedup_window_forgets_old_prints():
    clock = Clock()
    dedup = TradeDeduplicator(2, window=4.0, clock=clock)
    keys = np.array([42], np.uint64)
    assert dedup.accept(0, keys).tolist() == [True]
    clock.now += 3.0
    assert dedup.accept(1, keys).tolist() == [False]  # within the window
    clock.now += 10.0
    dedup.accept(0, np.array([7], np.uint64))
    clock.now += 10.0
    assert dedup.accept(1, keys).tolist() == [True]  # forgotten: a new print


def test_coverage_and_leader(arbiter):
    arbiter.merge(0, quotes([1, 2, 3], [1, 1, 1]))
    arbiter.clock.now += 1.0
    arbiter.merge(1, quotes([3, 4], [2, 2]))
    assert arbiter.covered_rows(0).tolist() == [1, 2, 3]
    arbiter.clock.now += 1.5
    assert arbiter.covered_rows(0).tolist() == []  # silent for longer than failover_after
    assert arbiter.covered_rows(1).tolist() == [3, 4]
    arbiter.check()  # neither feed is connected: no leader
    assert arbiter.leader is None
    status = arbiter.status()
    assert set(status["feeds"]) == {"polygon", "thetadata"}
    assert status["feeds"]["polygon"]["passed"] == 3
    assert status["feeds"]["thetadata"]["duplicates_dropped"] == 0


def test_backfill_records_pass_through(arbiter):
    batch = TickBatch(open_interest=np.zeros(3, TickBatch.empty().open_interest.dtype))
    assert len(arbiter.merge(1, batch).open_interest) == 3
