"""Both feeds at once behind the arbiter: duplicates dropped, failover keeps every contract live."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from tests.fakes import FAST_LINKS, FakePolygonServer, FakeThetaTerminal, LiveDaemon, ScriptedMarket

from flashalpha.cli import _feed_lines
from flashalpha.instruments import parse_thetadata

pytestmark = pytest.mark.integration
KEY = "failover-key"


def both(data_dir, shm_name, polygon, terminal, nearest=None, **arbiter):
    """The daemon on both fakes; `nearest` names the feed that quotes only the nearest expiry."""
    only_nearest = {"quote_expiries": 1}
    return LiveDaemon(
        data_dir,
        shm_name,
        feed={"kind": "polygon,thetadata", "underlyings": ["SPY"]},
        polygon={
            "url": polygon.ws_url("/options"),
            "rest_url": polygon.http_url,
            "api_key": KEY,
            **(only_nearest if nearest == "polygon" else {}),
            **FAST_LINKS,
        },
        thetadata={
            "url": terminal.ws_url("/v1/events"),
            **(only_nearest if nearest == "thetadata" else {}),
            **FAST_LINKS,
        },
        arbiter={"failover_after": 1.0, **arbiter},
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

    stop = asyncio.Event()
    async with polygon, terminal, both(data_dir, shm_name, polygon, terminal, "polygon") as live:
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


def symbols_of(registry, rows) -> set[str]:
    return {registry.contract(int(r)).compact() for r in rows}


def released_symbols(polygon, terminal, covering: str) -> list[str]:
    """What the covering feed's server was asked to stop, in the providers' own protocols."""
    if covering == "polygon":
        return [
            topic.removeprefix("Q.O:")
            for message in polygon.subscribe_messages
            if message.startswith("unsubscribe:")
            for topic in message.removeprefix("unsubscribe:").split(",")
        ]
    return [
        parse_thetadata(request["contract"]).compact()
        for request in terminal.requests
        if request.get("req_type") == "QUOTE" and request.get("add") is False
    ]


def quoted_symbols(polygon, terminal, covering: str, market) -> set[str]:
    """What the covering feed's current session on its server is subscribed to for quotes."""
    server = polygon if covering == "polygon" else terminal
    mask = server.sessions[-1].quote_mask
    return symbols_of(market.registry, np.flatnonzero(mask))


@pytest.mark.parametrize("stalled", ["thetadata", "polygon"])
async def test_covered_contracts_are_handed_back_when_the_stale_feed_resumes(
    data_dir, shm_name, stalled
):
    """One feed quotes the nearest expiry (22 contracts), the other all 66. The complete one
    stalls (and flaps: it reconnects to a server that says nothing); the other covers its 44
    extra contracts. The stalled one resumes: exactly those 44 are unsubscribed again, never
    a contract of the covering feed's own plan, and every contract updates throughout."""
    covering = "polygon" if stalled == "thetadata" else "thetadata"
    market = ScriptedMarket({"SPY": 500.0}, quotes_per_batch=66, trades_per_batch=2)
    polygon = FakePolygonServer(market, api_key=KEY, tick_interval=None)
    terminal = FakeThetaTerminal(market, tick_interval=None, heartbeat_interval=0.2)
    stop = asyncio.Event()
    hand_back = {"release_after": 2.0}
    async with (
        polygon,
        terminal,
        both(data_dir, shm_name, polygon, terminal, covering, **hand_back) as live,
    ):
        arbiter = live.feed
        names = [feed.name for feed in arbiter.feeds]
        cover, gone = arbiter.feeds[names.index(covering)], arbiter.feeds[names.index(stalled)]
        registry = live.daemon.registry
        await live.wait_for(lambda d: all(f.healthy() for f in arbiter.feeds))
        plan = cover.quote_rows.copy()
        assert len(plan) == 22 and len(gone.quote_rows) == 66
        driver = asyncio.create_task(drive(market, [polygon, terminal], stop))
        rows = rows_of(live, market)

        async def every_contract_updates() -> None:
            stamp = live.state.column("ts_quote")[rows].copy()
            await live.wait_for(
                lambda d: (d.state.column("ts_quote")[rows] > stamp).all(), timeout=30
            )

        await live.wait_for(lambda d: gone.links[0].metrics.quotes > 66 * 3)  # streaming
        await live.wait_for(lambda d: arbiter.leader is not None and all(arbiter._healthy))
        (polygon if stalled == "polygon" else terminal).stall()
        await live.wait_for(lambda d: arbiter.failovers >= 1, timeout=30)
        await live.wait_for(lambda d: len(cover.covering) == 44, timeout=30)
        covered = symbols_of(registry, cover.covering)
        assert covered == symbols_of(registry, np.setdiff1d(rows, plan))
        await live.wait_for(
            lambda d: (
                quoted_symbols(polygon, terminal, covering, market) == symbols_of(registry, rows)
            ),
            timeout=30,
        )
        await every_contract_updates()
        lines = _feed_lines(live.daemon.status()["feed"])  # as `flashalpha status` prints them
        assert f"  {covering:<12} covering 44 for {stalled}  handed back 0" in lines
        await asyncio.sleep(3.0)  # longer than release_after: a stalled feed gets nothing back
        assert len(cover.covering) == 44 and released_symbols(polygon, terminal, covering) == []
        await every_contract_updates()

        (polygon if stalled == "polygon" else terminal).resume()
        await live.wait_for(lambda d: cover.released == 44, timeout=60)
        await every_contract_updates()
        released = released_symbols(polygon, terminal, covering)
        assert sorted(released) == sorted(covered)  # each exactly once
        assert not set(released) & symbols_of(registry, plan)
        assert cover.quote_rows.tolist() == plan.tolist() and not cover.covering
        await live.wait_for(
            lambda d: (
                quoted_symbols(polygon, terminal, covering, market) == symbols_of(registry, plan)
            ),
            timeout=30,
        )
        status = live.daemon.status()["feed"]["feeds"][covering]
        assert status["covering_for"] == {} and status["rows_handed_back"] == 44
        assert status["covered"] == 44 and status["released"] == 44
        lines = _feed_lines(live.daemon.status()["feed"])
        assert f"  {covering:<12} covering none  handed back 44" in lines
        await every_contract_updates()
        stop.set()
        await driver
