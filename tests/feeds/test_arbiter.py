"""The arbiter: newest quote per contract, every print exactly once, health and leader."""

from __future__ import annotations

import numpy as np
import pytest

from flashalpha.config import PolygonConfig, ThetaDataConfig
from flashalpha.feeds.arbiter import Arbiter, TradeDeduplicator, trade_keys
from flashalpha.feeds.fakes import ScriptedMarket
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


# -- handing covered contracts back -----------------------------------------------------------


@pytest.fixture
def market():
    """66 SPY contracts (3 expiries x 11 strikes x 2 rights), as the fake servers list them."""
    return ScriptedMarket({"SPY": 500.0})


def planned(feed):
    feed.make_plan()
    return feed.quote_rows.copy()


def live_quotes(rows, ts):
    batch = quotes(rows, [ts] * len(rows))
    batch.source = "live"
    return batch


def test_a_covered_row_is_handed_back_once_the_stale_feed_quotes_it_again(market):
    clock = Clock()
    polygon = PolygonFeed(market.registry, PolygonConfig(api_key="k", quote_expiries=1), ("SPY",))
    theta = ThetaDataFeed(market.registry, ThetaDataConfig(), ("SPY",))
    own, everything = planned(polygon), planned(theta)
    assert len(own) == 22 and len(everything) == 66
    arbiter = Arbiter([polygon, theta], failover_after=2.0, clock=clock, release_after=10.0)
    arbiter.observe([True, True])
    arbiter.merge(0, live_quotes(own, 1))
    arbiter.merge(1, live_quotes(everything, 1))
    extra = np.setdiff1d(everything, own)

    clock.now += 1.0
    arbiter.observe([True, False])  # thetadata went stale: polygon covers the other 44
    assert sorted(polygon.covering) == extra.tolist()
    assert arbiter.status()["feeds"]["polygon"]["covering_for"] == {"thetadata": 44}

    # Flapping: back for a moment, stale again; nothing is handed back or asked twice.
    for _ in range(3):
        clock.now += 1.0
        arbiter.observe([True, True])
        clock.now += 1.0
        arbiter.observe([True, False])
    assert len(polygon.covering) == 44 and polygon.covered == 44 and arbiter.released == [0, 0]

    clock.now += 1.0
    arbiter.observe([True, True])
    back = clock.now
    requoted, only_polygon = extra[:22], extra[22:33]  # extra[33:]: quiet, nobody quotes them
    clock.now += 1.0
    arbiter.merge(1, live_quotes(requoted, 2))
    arbiter.merge(0, live_quotes(np.concatenate([own, requoted, only_polygon]), 3))
    clock.now = back + 9.9
    arbiter.observe([True, True])  # within the hold-off
    assert len(polygon.covering) == 44
    clock.now = back + 10.1
    arbiter.observe([True, True])
    # Re-quoted and quiet rows go back; a row only the cover still delivers stays covered.
    assert sorted(polygon.covering) == only_polygon.tolist()
    assert arbiter.released == [33, 0] and polygon.released == 33
    assert set(own.tolist()) <= set(polygon.quote_rows.tolist())

    clock.now += 1.0
    arbiter.merge(1, live_quotes(only_polygon, 4))
    arbiter.observe([True, True])
    assert polygon.covering == {} and polygon.quote_rows.tolist() == own.tolist()
    status = arbiter.status()["feeds"]["polygon"]
    assert status["covering_for"] == {} and status["covering"] == 0
    assert status["rows_handed_back"] == 44 and status["released"] == 44 and status["covered"] == 44
    assert polygon.topics_for(0)[:22] == [t for t in polygon.topics_for(0) if t.startswith("Q.")]


def test_a_row_covered_for_two_stale_feeds_goes_back_when_neither_needs_it(market):
    clock = Clock()
    polygon = PolygonFeed(market.registry, PolygonConfig(api_key="k", quote_expiries=1), ("SPY",))
    theta = ThetaDataFeed(market.registry, ThetaDataConfig(), ("SPY",))
    other = ThetaDataFeed(market.registry, ThetaDataConfig(), ("SPY",))
    other.name = "thetadata-2"
    own, everything = planned(polygon), planned(theta)
    planned(other)
    extra = np.setdiff1d(everything, own)
    arbiter = Arbiter([polygon, theta, other], failover_after=2.0, clock=clock, release_after=5.0)
    arbiter.observe([True, True, True])
    for index in (1, 2):
        arbiter.merge(index, live_quotes(everything, 1))
    clock.now += 1.0
    arbiter.observe([True, False, False])
    assert sorted(polygon.covering) == extra.tolist()
    covering = arbiter.status()["feeds"]["polygon"]["covering_for"]
    assert covering == {"thetadata": 44, "thetadata-2": 44}

    arbiter.observe([True, True, False])
    clock.now += 1.0
    arbiter.merge(1, live_quotes(everything, 2))
    arbiter.merge(0, live_quotes(extra, 2))  # the cover delivers them: not quiet
    clock.now += 10.0
    arbiter.observe([True, True, False])  # thetadata is back, thetadata-2 still needs them
    assert len(polygon.covering) == 44 and arbiter.released[0] == 0
    assert arbiter.status()["feeds"]["polygon"]["covering_for"] == {"thetadata-2": 44}

    arbiter.observe([True, True, True])
    clock.now += 1.0
    arbiter.merge(2, live_quotes(everything, 3))
    clock.now += 10.0
    arbiter.observe([True, True, True])
    assert polygon.covering == {} and arbiter.released[0] == 44


def test_uncover_releases_only_covered_rows_never_the_plan(market):
    polygon = PolygonFeed(
        market.registry,
        PolygonConfig(api_key="k", quote_expiries=1, connections=2, quotes_per_connection=33),
        ("SPY",),
    )
    theta = ThetaDataFeed(market.registry, ThetaDataConfig(quote_expiries=1), ("SPY",))
    everything = np.arange(market.registry.count, dtype=np.uint32)
    for feed in (polygon, theta):
        own = planned(feed)
        contracts = list(getattr(feed, "quote_contracts", []))
        assert feed.cover(everything) == 44  # polygon: 11 more on link 0, 33 on link 1
        assert feed.uncover(own) == 0
        assert feed.uncover(everything) == 44 and feed.uncover(everything) == 0
        assert feed.quote_rows.tolist() == own.tolist() and feed.covering in ({}, set())
        assert feed.status()["released"] == 44 and feed.status()["covering"] == 0
        if feed is theta:
            assert feed.quote_contracts == contracts
    assert [len([t for t in polygon.topics_for(i) if t.startswith("Q.")]) for i in (0, 1)] == [
        22,
        0,
    ]


def test_a_reconnect_between_two_checks_starts_the_hold_off_again(market):
    clock = Clock()
    polygon = PolygonFeed(market.registry, PolygonConfig(api_key="k", quote_expiries=1), ("SPY",))
    theta = ThetaDataFeed(market.registry, ThetaDataConfig(), ("SPY",))
    planned(polygon)
    everything = planned(theta)
    arbiter = Arbiter([polygon, theta], failover_after=2.0, clock=clock, release_after=10.0)
    arbiter.observe([True, True], [1, 1])
    arbiter.merge(1, live_quotes(everything, 1))
    clock.now += 1.0
    arbiter.observe([True, False], [1, 1])
    assert len(polygon.covering) == 44
    arbiter.observe([True, True], [1, 2])
    for step in range(2, 8):  # re-quoting, but reconnecting unseen between checks
        clock.now += 3.0
        arbiter.merge(1, live_quotes(everything, step))
        arbiter.observe([True, True], [1, 2 + step])
    assert len(polygon.covering) == 44 and arbiter.released == [0, 0]
    clock.now += 3.0
    arbiter.merge(1, live_quotes(everything, 9))
    clock.now += 8.0
    arbiter.observe([True, True], [1, 9])  # no reconnect for 11 s, quoting all along
    assert polygon.covering == {} and arbiter.released == [44, 0]
