"""The Polygon connector against the fake Polygon server, end to end into the daemon's state."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from tests.fakes import FAST_LINKS, FakePolygonServer, LiveDaemon, ScriptedMarket

from flashalpha.feeds.polygon import PolygonFeed

pytestmark = pytest.mark.integration

KEY = "test-key-7f3a"


def polygon_daemon(data_dir, shm_name, server, key=KEY, **polygon):
    return LiveDaemon(
        data_dir,
        shm_name,
        feed={"kind": "polygon", "underlyings": ["SPY", "QQQ"]},
        polygon={
            "url": server.ws_url("/options"),
            "rest_url": server.http_url,
            "api_key": key,
            "rest_page_limit": 25,
            **FAST_LINKS,
            **polygon,
        },
    )


def quote_times(live, server):
    """ts_quote of every contract the fake lists, as the daemon holds them (0 = none)."""
    registry = live.daemon.registry
    symbols = [s.removeprefix("O:") for s in server.symbols()]
    rows = registry.get_rows(symbols)
    held = live.state.column("ts_quote")
    return np.where((rows >= 0) & (rows < len(held)), held[np.clip(rows, 0, None)], 0)


async def test_streams_quotes_and_trades_into_the_state(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0, "QQQ": 400.0}, quotes_per_batch=40)
    async with (
        FakePolygonServer(market, api_key=KEY) as server,
        polygon_daemon(data_dir, shm_name, server) as live,
    ):
        await live.wait_for(lambda d: d.state.count == market.registry.count)
        await live.wait_for(lambda d: d.feed.links[0].metrics.trades > 20)
        # every contract got a quote (backfill, then live) and the state matches the book
        await live.wait_for(lambda d: (quote_times(live, server) > 0).all())
        status = live.daemon.status()["feed"]
        assert status["healthy"] and status["links"][0]["state"] == "streaming"
        assert status["quote_contracts"] == market.registry.count
        assert int(live.state.column("volume").sum()) > 0
        assert live.rejects()["MALFORMED"] == 0
        # the plan subscribed quotes and trades of every contract, comma-joined
        topics = {t for m in server.subscribe_messages for t in m.split(":", 1)[1].split(",")}
        assert len([t for t in topics if t.startswith("Q.")]) == market.registry.count
        assert len([t for t in topics if t.startswith("T.")]) == market.registry.count


async def test_long_subscriptions_are_split_and_spread_over_connections(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0, "QQQ": 400.0})  # 132 contracts
    async with (
        FakePolygonServer(market, api_key=KEY, max_connections=2, quote_limit=50) as server,
        polygon_daemon(
            data_dir,
            shm_name,
            server,
            connections=2,
            quotes_per_connection=50,
            subscribe_batch=30,
            trades="none",
        ) as live,
    ):
        await server.wait_for_sessions(2)
        await live.wait_for(lambda d: all(len(s.topics) == 50 for s in server.sessions))
        planned = live.feed.quote_rows
        assert len(planned) == 100
        # nearest expiries first: both underlyings' first two expiries (88 contracts),
        # then the strikes nearest the money of the third
        registry = live.daemon.registry
        expiries = np.unique(registry.expiry_days[planned])
        assert len(expiries) == 3
        assert (registry.expiry_days[planned[:88]] <= expiries[1]).all()
        third = planned[88:]
        centers = np.where(
            registry.underlying_ids[third] == registry.underlying_id("SPY"), 500, 400
        )
        assert np.abs(registry.strikes[third] - centers).max() <= 10
        assert all(len(m.split(":", 1)[1].split(",")) <= 30 for m in server.subscribe_messages)
        held = set().union(*(s.topics for s in server.sessions))
        assert len(held) == 100  # no contract on both connections
        assert not any("error" in str(m) for m in server.subscribe_messages)


async def test_auth_failure_is_reported_and_retried_with_backoff(data_dir, shm_name, caplog):
    caplog.set_level(logging.INFO)
    market = ScriptedMarket({"SPY": 500.0})
    async with FakePolygonServer(market, api_key=KEY) as server:
        wrong = "wrong-key-d41d8cd9"
        async with polygon_daemon(data_dir, shm_name, server, key=wrong) as live:
            link = live.feed.links[0]
            await live.wait_for(lambda d: link.metrics.auth_failures >= 3)
            assert "authentication failed" in link.last_error
            assert "POLYGON_API_KEY" in link.last_error
            assert server.auth_failures >= 3
            assert link.backoff.attempt >= 3
            assert link.state.value in ("backoff", "connecting", "authenticating")
    assert wrong not in caplog.text and KEY not in caplog.text
    assert "authentication failed" in caplog.text


async def test_force_disconnect_reconnects_resubscribes_and_backfills(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0})
    async with (
        FakePolygonServer(market, api_key=KEY) as server,
        polygon_daemon(data_dir, shm_name, server) as live,
    ):
        link = live.feed.links[0]
        await live.wait_for(lambda d: link.metrics.quotes > 50)
        subscribes, snapshots = len(server.subscribe_messages), server.snapshot_requests
        await server.force_disconnect()
        await live.wait_for(lambda d: link.sessions >= 2 and link.metrics.quotes > 0)
        await live.wait_for(lambda d: len(server.subscribe_messages) >= 2 * subscribes)
        await live.wait_for(lambda d: server.snapshot_requests > snapshots)
        assert link.statuses.get("force_disconnect") == 1
        before = link.metrics.quotes
        await live.wait_for(lambda d: link.metrics.quotes > before + 50)
        assert link.metrics.reconnects >= 1


async def test_killed_server_leads_to_reconnect_resubscribe_and_backfill(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0})
    server = await FakePolygonServer(market, api_key=KEY).start()
    try:
        async with polygon_daemon(data_dir, shm_name, server) as live:
            link = live.feed.links[0]
            await live.wait_for(lambda d: link.metrics.quotes > 50)
            await server.kill()
            await live.wait_for(lambda d: link.state.value in ("backoff", "connecting"))
            await asyncio.sleep(0.5)  # down for a while: several failed attempts
            snapshots = server.snapshot_requests
            await server.start()  # same port
            await live.wait_for(lambda d: link.healthy() and link.sessions >= 2)
            await live.wait_for(lambda d: server.snapshot_requests > snapshots)
            await live.wait_for(
                lambda d: len(server.sessions[0].topics) == market.registry.count * 2
            )
            stamp = int(live.state.column("ts_quote").max())
            await live.wait_for(lambda d: int(d.state.column("ts_quote").max()) > stamp)
            assert link.metrics.reconnects >= 2
    finally:
        await server.stop()


async def test_silent_stall_is_detected(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0})
    async with (
        FakePolygonServer(market, api_key=KEY) as server,
        polygon_daemon(data_dir, shm_name, server) as live,
    ):
        link = live.feed.links[0]
        await live.wait_for(lambda d: link.metrics.quotes > 20)
        server.stall()
        await live.wait_for(lambda d: link.metrics.stalls >= 1, timeout=5)
        assert "link considered dead" in link.last_error
        server.resume()
        await live.wait_for(lambda d: link.healthy() and link.sessions >= 2)


async def test_bad_frames_are_rejected_and_counted_without_dropping_the_link(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0})
    async with (
        FakePolygonServer(market, api_key=KEY) as server,
        polygon_daemon(data_dir, shm_name, server) as live,
    ):
        link = live.feed.links[0]
        await live.wait_for(lambda d: link.metrics.quotes > 20)
        good = server.symbols()[0]
        for frame in (
            "{not json",
            '[{"ev":"Q","sym":"' + good + '","bx":302,"ax":302,"bp":1.0',  # partial
            '[{"ev":"Q","sym":"' + good + '","bx":302,"ax":302,"bp":"1.0","ap":1.1,'
            '"bs":1,"as":1,"t":1}]',  # wrong type
            '[{"ev":"ZZ","sym":"' + good + '"}]',  # unknown event
            '[{"ev":"Q","sym":"O:NOPE","bx":302,"ax":302,"bp":1.0,"ap":1.1,"bs":1,'
            '"as":1,"t":1}]',  # unknown, unparseable symbol
        ):
            await server.inject(frame)
        await live.wait_for(lambda d: live.rejects()["MALFORMED"] == 4)
        await live.wait_for(lambda d: live.rejects()["UNKNOWN_SYMBOL"] == 1)
        assert link.sessions == 1 and link.metrics.decode_errors == 4
        before = link.metrics.quotes
        await live.wait_for(lambda d: link.metrics.quotes > before + 20)
        assert any("O:NOPE" in error for error in live.daemon.last_errors)


async def test_max_connections_and_slow_consumer_statuses(data_dir, shm_name):
    market = ScriptedMarket({"SPY": 500.0})
    async with (
        FakePolygonServer(market, api_key=KEY, max_connections=1) as server,
        polygon_daemon(data_dir, shm_name, server, connections=2) as live,
    ):
        links = live.feed.links
        await live.wait_for(lambda d: any(k.statuses.get("max_connections") for k in links))
        refused = next(k for k in links if k.statuses.get("max_connections"))
        assert "max_connections" in refused.last_error
        assert refused.backoff.attempt >= 3  # escalated: no hammering
        await server.slow_consumer()
        await live.wait_for(lambda d: any(k.statuses.get("slow_consumer") for k in links))
        await live.wait_for(lambda d: any(k.healthy() for k in links))


def test_missing_key_is_a_clear_error(monkeypatch):
    from flashalpha.config import PolygonConfig
    from flashalpha.instruments import InstrumentRegistry

    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    with pytest.raises(ValueError, match="POLYGON_API_KEY"):
        PolygonFeed(InstrumentRegistry(10, 10), PolygonConfig(), ("SPY",))
    with pytest.raises(ValueError, match="--underlyings"):
        PolygonFeed(InstrumentRegistry(10, 10), PolygonConfig(api_key="k"), ())
