"""The daemon in-process: ordering, rejects, journal, recovery and replay equality."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

from flashalpha.config import load_config
from flashalpha.daemon import Daemon, LoopLag, make_feed
from flashalpha.instruments import InstrumentRegistry, parse_compact
from flashalpha.journal import read_entries, trading_day
from flashalpha.state.batch import TickBatch
from flashalpha.state.events import EventKind
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    OPTION_COLUMNS,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_TICK_DTYPE,
    Group,
    RejectKind,
)
from flashalpha.state.reader import StateReader

SYMBOLS = [f"SPY261218{'CP'[i % 2]}{(500 + i // 2) * 1000:08d}" for i in range(40)]
MARKET_COLUMNS = [c.name for c in OPTION_COLUMNS if c.group in (Group.STATIC, Group.MARKET)]


class ScriptedFeed:
    """A test exchange: lists contracts (some mid-stream) and emits scripted batches."""

    name = "scripted"

    def __init__(self, registry: InstrumentRegistry, batches: int = 30, seed: int = 1):
        self.registry = registry
        self.batches = batches
        self.rng = np.random.default_rng(seed)
        self.done = asyncio.Event()
        registry.add_underlying("SPY", div_yield=0.013)
        for symbol in SYMBOLS[:30]:
            registry.add(parse_compact(symbol))

    def make_batch(self, i: int) -> TickBatch:
        if i == self.batches // 2:  # new listings arrive while the market runs
            for symbol in SYMBOLS[30:]:
                self.registry.add(parse_compact(symbol))
        n = self.registry.count
        ts = time.time_ns()
        quotes = np.zeros(8, QUOTE_DTYPE)
        quotes["row"] = self.rng.integers(0, n, 8)
        quotes["bid"] = self.rng.uniform(1, 5, 8).round(2)
        quotes["ask"] = quotes["bid"] + 0.1
        quotes["ts"] = ts
        quotes["bid"][0] = quotes["ask"][0] + 1  # crossed: rejected and counted
        quotes["row"][1] = 10_000  # unknown row
        trades = np.zeros(2, TRADE_DTYPE)
        trades["row"] = self.rng.integers(0, n, 2)
        trades["price"], trades["size"], trades["ts"] = 2.5, 600, ts
        spot = np.zeros(1, UNDERLYING_TICK_DTYPE)
        spot["price"], spot["ts"] = 600 + i * 0.1, ts
        return TickBatch(quotes=quotes, trades=trades, underlyings=spot, source="scripted")

    async def run(self, emit) -> None:
        for i in range(self.batches):
            emit(self.make_batch(i))
            await asyncio.sleep(0)
        self.done.set()
        await asyncio.Event().wait()  # a live feed runs until cancelled


def config_for(data_dir, shm_name, **feed):
    return load_config(
        overrides={
            "data_dir": str(data_dir),
            "state": {"shm_name": shm_name, "capacity": 4096, "underlying_capacity": 16},
            "journal": {"fsync": "never"},
            "feed": feed,
        },
        environ={},
    )


def snapshot(daemon: Daemon) -> np.ndarray:
    reader = StateReader(daemon.state.segment)
    return reader.read_rows(np.arange(daemon.state.count, dtype=np.uint32))


async def run_until(daemon: Daemon, condition, timeout: float = 30.0):
    task = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + timeout
    while not (daemon.state is not None and daemon.feed is not None and condition(daemon)):
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)
    return task


async def test_live_run_journals_counts_rejects_and_publishes(data_dir, shm_name):
    config = config_for(data_dir, shm_name)
    daemon = Daemon(config, feed_factory=lambda c, r: ScriptedFeed(r))
    events = []
    daemon.dispatcher.subscribe("test", [EventKind.QUOTE, EventKind.VOLUME_SPIKE], events.append)
    task = await run_until(daemon, lambda d: d.feed.done.is_set())
    await asyncio.sleep(0.05)
    assert daemon.state.seq == 30 and daemon.state.count == 40
    rejects = daemon.state.rejects()
    assert rejects[RejectKind.CROSSED] == 30 and rejects[RejectKind.UNKNOWN_ROW] == 30
    assert {e.kind for e in events} == {EventKind.QUOTE, EventKind.VOLUME_SPIKE}
    assert daemon.status()["state"]["seq"] == 30
    daemon.request_stop()
    await task
    journals = list((data_dir / "journal").glob("*.journal"))
    assert len(journals) == 1 and journals[0].stat().st_size > 0
    assert not os.path.exists(f"/dev/shm/{shm_name}")  # a clean exit unlinks the segment


async def test_replay_and_recovery_rebuild_the_live_state(data_dir, shm_name):
    live = Daemon(config_for(data_dir, shm_name), feed_factory=lambda c, r: ScriptedFeed(r))
    task = await run_until(live, lambda d: d.feed.done.is_set())
    held = snapshot(live)
    held_spot = StateReader(live.state.segment).read_underlyings()
    live.request_stop()
    await task
    journal = next((data_dir / "journal").glob("*.journal"))

    # 1. --feed replay:PATH into another daemon (its own data dir, nothing to recover).
    replay_config = config_for(
        data_dir / "replay", shm_name + "-r", kind=f"replay:{journal}", replay_speed=0
    )
    replayed = Daemon(replay_config, feed_factory=make_feed)
    task = await run_until(replayed, lambda d: d.feed.finished)
    rebuilt = snapshot(replayed)
    assert replayed.state.seq == 30
    replayed.request_stop()
    await task

    # 2. A restart on the same data dir recovers today's journal before its feed starts.
    recovered = Daemon(
        config_for(data_dir, shm_name), feed_factory=lambda c, r: ScriptedFeed(r, batches=0)
    )
    task = await run_until(recovered, lambda d: d.feed.done.is_set())
    restored = snapshot(recovered)
    restored_spot = StateReader(recovered.state.segment).read_underlyings()
    assert recovered.status()["state"]["recovered_batches"] == 30
    recovered.request_stop()
    await task

    for copy in (rebuilt, restored):
        assert len(copy) == len(held) == 40
        for column in MARKET_COLUMNS:
            np.testing.assert_array_equal(copy[column], held[column], err_msg=column)
    np.testing.assert_array_equal(restored_spot["spot"], held_spot["spot"])
    # The restarted daemon appended to today's file without listing everything again.
    entries = list(read_entries(journal))
    listings = [e for e in entries if e.option_listings is not None]
    assert sum(len(e.option_listings) for e in listings) == 40


async def test_unknown_feed_is_a_clear_error(data_dir, shm_name):
    from flashalpha.config import ConfigError

    daemon = Daemon(config_for(data_dir, shm_name, kind="carrier-pigeon"))
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        await daemon.run()
    assert not os.path.exists(f"/dev/shm/{shm_name}")


async def test_loop_lag_sees_a_blocked_loop():
    lag = LoopLag(interval=0.005, window=64)
    assert lag.stats() == {"samples": 0}
    task = asyncio.get_running_loop().create_task(lag.run())
    await asyncio.sleep(0.03)
    time.sleep(0.08)  # what a long render on the loop thread does to every other task
    await asyncio.sleep(0.03)
    task.cancel()
    stats = lag.stats()
    assert stats["samples"] >= 3
    assert stats["max_ms"] >= 70 and stats["max_since_start_ms"] == stats["max_ms"]
    assert stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]


class TwoDayFeed(ScriptedFeed):
    """The scripted market over New York midnight: half the batches yesterday, half today."""

    DAY_NS = 86_400 * 10**9

    def make_batch(self, i: int) -> TickBatch:
        batch = super().make_batch(i)
        shift = self.DAY_NS if i < self.batches // 2 else 0
        for records in (batch.quotes, batch.trades, batch.underlyings):
            records["ts"] -= shift
        batch.ts_received -= shift
        if i == 0:  # yesterday's open interest, carried into today
            batch.open_interest = np.zeros(3, OPEN_INTEREST_DTYPE)
            batch.open_interest["row"] = [0, 1, 2]
            batch.open_interest["open_interest"] = [100, 200, 300]
            batch.open_interest["ts"] = batch.ts_received
        return batch


async def test_a_new_trading_day_clears_trades_and_its_journal_rebuilds_the_state(
    data_dir, shm_name
):
    feed = None

    def make(config, registry):
        nonlocal feed
        feed = TwoDayFeed(registry, batches=40)
        return feed

    live = Daemon(config_for(data_dir, shm_name), feed_factory=make)
    trades = []
    live.dispatcher.subscribe("test", [EventKind.TRADE], trades.append)
    task = await run_until(live, lambda d: d.feed.done.is_set())
    await asyncio.sleep(0.05)
    held = snapshot(live)
    held_spot = StateReader(live.state.segment).read_underlyings()
    live.request_stop()
    await task

    yesterday, today = sorted((data_dir / "journal").glob("*.journal"))
    assert yesterday.stem == trading_day(time.time_ns() - TwoDayFeed.DAY_NS).isoformat()
    assert today.stem == trading_day(time.time_ns()).isoformat()
    # Volume and last trades are today's only; yesterday's quotes, spot and OI carry over.
    batches = [e.batch for e in read_entries(today) if e.batch is not None]
    carry = batches[0]  # the head of the new day's file: what the state carried into it
    assert len(carry.trades) == 0 and len(carry.quotes) > 0 and len(carry.underlyings) == 1
    assert list(carry.open_interest["open_interest"]) == [100, 200, 300]
    today_trades = [batch.trades for batch in batches[1:]]
    volume = np.zeros(len(held), np.uint64)
    for records in today_trades:
        np.add.at(volume, records["row"], records["size"])
    np.testing.assert_array_equal(held["volume"], volume)
    assert np.isnan(held["last"][volume == 0]).all() and (held["ts_trade"][volume == 0] == 0).all()
    first_today = min(int(r["ts"].min()) for r in today_trades)
    assert (held["ts_trade"][volume > 0] >= first_today).all()
    carried = (held["ts_quote"] > 0) & (held["ts_quote"] < first_today)
    assert carried.any() and np.isfinite(held["bid"][carried]).all()
    assert list(held["open_interest"][:3]) == [100, 200, 300]
    assert any(e.seq > 20 for e in trades)  # the cleared rows were published

    # A restart today recovers from today's file alone and holds the same market.
    recovered = Daemon(
        config_for(data_dir, shm_name), feed_factory=lambda c, r: ScriptedFeed(r, batches=0)
    )
    task = await run_until(recovered, lambda d: d.feed.done.is_set())
    restored = snapshot(recovered)
    restored_spot = StateReader(recovered.state.segment).read_underlyings()
    recovered.request_stop()
    await task
    for column in MARKET_COLUMNS:
        np.testing.assert_array_equal(restored[column], held[column], err_msg=column)
    np.testing.assert_array_equal(restored_spot["spot"], held_spot["spot"])
