"""Both feeds at once behind the arbiter: duplicates dropped, failover keeps every contract live."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from tests.fakes import FAST_LINKS, FakePolygonServer, FakeThetaTerminal, LiveDaemon, ScriptedMarket

pytestmark = pytest.mark.integration
KEY = "failover-key"


def both(data_dir, shm_name, polygon, terminal):
    return LiveDaemon(
        data_dir,
        shm_name,
        feed={"kind": "polygon,thetadata", "underlyings": ["SPY"]},
        polygon={
            "url": polygon.ws_url("/options"),
            "rest_url": polygon.http_url,
            "api_key": KEY,
            **FAST_LINKS,
        },
        thetadata={"url": terminal.ws_url("/v1/events"), **FAST_LINKS},
        arbiter={"failover_after": 1.0},
    )


async def drive(market, servers, stop: asyncio.Event, interval=0.05):
    """One market served by both fakes: identical events, like OPRA through two vendors."""
    while not stop.is_set():
        batch = market.next_batch(time.time_ns())
        for server in servers:
            if server._server is not None:
                await server.publish(batch)
        await asyncio.sleep(interval)


def rows_of(live, market):
    symbols = [s.decode().replace(" ", "") for s in market.registry.osi_symbols.tolist()]
    return live.daemon.registry.get_rows(symbols)


async def test_failover_keeps_every_contract_updating(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0}, quotes_per_batch=66, trades_per_batch=8)
    polygon = FakePolygonServer(market, api_key=KEY, tick_interval=None)
    terminal = FakeThetaTerminal(market, tick_interval=None, heartbeat_interval=0.2)
    stop = asyncio.Event()
    async with polygon, terminal, both(data_dir, shm_name, polygon, terminal) as live:
        arbiter = live.feed
        await live.wait_for(lambda d: all(f.healthy() for f in arbiter.feeds))
        await live.wait_for(lambda d: d.state.count == market.registry.count)
        rows = rows_of(live, market)

        # Both feeds carry the same events: the slower copy of each is dropped.
        driver = asyncio.create_task(drive(market, [polygon, terminal], stop))
        await live.wait_for(lambda d: sum(arbiter.duplicates) > 100)
        arbiter.check()
        status = live.daemon.status()["feed"]
        assert status["leading"] in ("polygon", "thetadata")
        assert status["feeds"]["polygon"]["healthy"] and status["feeds"]["thetadata"]["healthy"]

        # Polygon dies: ThetaData alone keeps every contract updating.
        await polygon.kill()
        await live.wait_for(lambda d: arbiter.failovers >= 1, timeout=5)
        stamp = live.state.column("ts_quote")[rows].copy()
        await live.wait_for(lambda d: (d.state.column("ts_quote")[rows] > stamp).all(), timeout=5)
        assert arbiter.leader == "thetadata"
        assert not live.daemon.status()["feed"]["feeds"]["polygon"]["healthy"]

        # Polygon is back and ThetaData dies: Polygon carries every contract.
        await polygon.start()
        await live.wait_for(lambda d: arbiter.feeds[0].healthy())
        await terminal.kill()
        await live.wait_for(lambda d: arbiter.failovers >= 2, timeout=5)
        stamp = live.state.column("ts_quote")[rows].copy()
        await live.wait_for(lambda d: (d.state.column("ts_quote")[rows] > stamp).all(), timeout=5)
        await live.wait_for(lambda d: arbiter.leader == "polygon", timeout=5)
        stop.set()
        await driver


async def test_duplicate_prints_count_once(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0}, quotes_per_batch=66, trades_per_batch=10)
    polygon = FakePolygonServer(market, api_key=KEY, tick_interval=None)
    terminal = FakeThetaTerminal(market, tick_interval=None, heartbeat_interval=0.2)
    async with polygon, terminal, both(data_dir, shm_name, polygon, terminal) as live:
        await live.wait_for(lambda d: all(f.healthy() for f in d.feed.feeds))
        await live.wait_for(lambda d: d.state.count == market.registry.count)
        await asyncio.sleep(0.3)
        before = int(live.state.column("volume").sum())
        sizes = 0
        for _ in range(20):
            batch = market.next_batch(time.time_ns())
            sizes += int(batch.trades["size"].sum())
            await polygon.publish(batch)
            await terminal.publish(batch)
            await asyncio.sleep(0.02)
        await live.wait_for(lambda d: int(d.state.column("volume").sum()) - before >= sizes)
        await asyncio.sleep(0.5)  # any late duplicate would show up now
        assert int(live.state.column("volume").sum()) - before == sizes
        feeds = live.feed.status()["feeds"]
        assert feeds["polygon"]["duplicates_dropped"] + feeds["thetadata"]["duplicates_dropped"] > 0
        assert np.all(live.state.column("ts_quote")[rows_of(live, market)] > 0)


async def test_a_stale_feeds_contracts_are_taken_over(data_dir, shm_name):
    """ThetaData quotes every contract, Polygon only the nearest expiry; ThetaData dies and
    Polygon subscribes the rest, so every contract keeps updating."""
    market = ScriptedMarket({"SPY": 500.0}, quotes_per_batch=66, trades_per_batch=2)
    polygon = FakePolygonServer(market, api_key=KEY, tick_interval=None)
    terminal = FakeThetaTerminal(market, tick_interval=None, heartbeat_interval=0.2)

    def daemon():  # after the fakes listen: their ports are known then
        return LiveDaemon(
            data_dir,
            shm_name,
            feed={"kind": "polygon,thetadata", "underlyings": ["SPY"]},
            polygon={
                "url": polygon.ws_url("/options"),
                "rest_url": polygon.http_url,
                "api_key": KEY,
                "quote_expiries": 1,
                **FAST_LINKS,
            },
            thetadata={"url": terminal.ws_url("/v1/events"), **FAST_LINKS},
            arbiter={"failover_after": 1.0},
        )

    stop = asyncio.Event()
    async with polygon, terminal, daemon() as live:
        arbiter = live.feed
        await live.wait_for(lambda d: all(f.healthy() for f in arbiter.feeds))
        assert len(arbiter.feeds[0].quote_rows) == 22
        driver = asyncio.create_task(drive(market, [polygon, terminal], stop))
        rows = rows_of(live, market)
        theta = arbiter.feeds[1].link
        await live.wait_for(lambda d: theta.metrics.quotes > 66 * 3)  # streaming, not backfill
        await live.wait_for(lambda d: arbiter.leader is not None and all(arbiter._healthy))
        await terminal.kill()
        await live.wait_for(lambda d: arbiter.failovers >= 1, timeout=5)
        await live.wait_for(lambda d: len(polygon.sessions[0].topics) >= 66 + 66, timeout=5)
        stamp = live.state.column("ts_quote")[rows].copy()
        await live.wait_for(lambda d: (d.state.column("ts_quote")[rows] > stamp).all(), timeout=5)
        assert len(arbiter.feeds[0].quote_rows) == 66
        stop.set()
        await driver
