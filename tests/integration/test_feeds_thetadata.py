"""The ThetaData connector against the fake Theta Terminal, end to end into the daemon's state."""

from __future__ import annotations

import numpy as np
import pytest
from tests.fakes import FAST_LINKS, FakeThetaTerminal, LiveDaemon, ScriptedMarket

pytestmark = pytest.mark.integration


def theta_daemon(data_dir, shm_name, terminal, **thetadata):
    return LiveDaemon(
        data_dir,
        shm_name,
        feed={"kind": "thetadata", "underlyings": ["SPY"]},
        thetadata={"url": terminal.ws_url("/v1/events"), **FAST_LINKS, **thetadata},
    )


def terminal(**kwargs) -> FakeThetaTerminal:
    return FakeThetaTerminal(ScriptedMarket({"SPY": 500.0}), heartbeat_interval=0.2, **kwargs)


@pytest.mark.parametrize("use_symbol", [False, True], ids=["root", "symbol"])
async def test_streams_into_the_state_with_exchange_times(data_dir, shm_name, use_symbol):
    fake = terminal(use_symbol=use_symbol)
    async with fake, theta_daemon(data_dir, shm_name, fake) as live:
        link = live.feed.link
        await live.wait_for(lambda d: d.state.count == fake.market.registry.count)
        await live.wait_for(lambda d: link.metrics.trades > 10 and link.metrics.quotes > 100)
        # the state holds the fake's quotes at their exchange times, to the millisecond
        registry, book = live.daemon.registry, fake.book
        osi = fake.market.registry.osi_symbols
        rows = registry.get_rows([s.decode().replace(" ", "") for s in osi.tolist()])
        held = live.state.column("ts_quote")[rows]
        assert (held > 0).all()
        fresh = held == book.quotes["ts"] // 1_000_000 * 1_000_000
        assert fresh.mean() > 0.5  # the rest were requoted since
        assert np.abs(held.astype(np.int64) - book.quotes["ts"].astype(np.int64)).max() < 5e9
        assert link.upstream == "CONNECTED" and link.responses["SUBSCRIBED"] >= 2 * len(rows)
        assert live.rejects()["MALFORMED"] == 0
        status = live.daemon.status()["feed"]
        assert status["healthy"] and status["links"][0]["terminal"] == "CONNECTED"


async def test_full_trade_stream(data_dir, shm_name):
    fake = terminal()
    async with fake, theta_daemon(data_dir, shm_name, fake, trades="bulk") as live:
        link = live.feed.link
        await live.wait_for(lambda d: link.metrics.trades > 10)
        assert any(r.get("msg_type") == "STREAM_BULK" for r in fake.requests)
        assert live.feed.decoder.ohlc >= link.metrics.trades  # an OHLC precedes each trade
        assert not any(r.get("req_type") == "TRADE" and "contract" in r for r in fake.requests)


async def test_missing_heartbeats_are_detected(data_dir, shm_name):
    fake = terminal()
    async with fake, theta_daemon(data_dir, shm_name, fake) as live:
        link = live.feed.link
        await live.wait_for(lambda d: link.metrics.quotes > 50)
        fake.stall()
        await live.wait_for(lambda d: link.metrics.stalls >= 1, timeout=5)
        assert not link.healthy()
        fake.resume()
        requests = len(fake.requests)
        await live.wait_for(lambda d: link.healthy() and link.sessions >= 2)
        # everything is requested again on the new connection
        await live.wait_for(lambda d: len(fake.requests) >= 2 * requests)


async def test_killed_terminal_reconnect_resubscribe_backfill(data_dir, shm_name):
    fake = terminal()
    await fake.start()
    try:
        async with theta_daemon(data_dir, shm_name, fake) as live:
            link = live.feed.link
            await live.wait_for(lambda d: link.metrics.quotes > 50)
            rest = len(fake.rest_requests)
            await fake.kill()
            await live.wait_for(lambda d: link.state.value in ("backoff", "connecting"))
            await fake.start()
            await live.wait_for(lambda d: link.healthy() and link.sessions >= 2)
            await live.wait_for(lambda d: len(fake.rest_requests) > rest)
            await live.wait_for(lambda d: int(fake.sessions[0].quote_mask.sum()) == 66)
    finally:
        await fake.stop()


async def test_max_streams_reached(data_dir, shm_name):
    fake = terminal(max_streams=10)
    async with fake, theta_daemon(data_dir, shm_name, fake, trades="none") as live:
        link = live.feed.link
        await live.wait_for(lambda d: link.max_streams_hit)
        assert link.responses["MAX_STREAMS_REACHED"] >= 1
        assert link.responses["SUBSCRIBED"] == 10
        assert int(fake.sessions[0].quote_mask.sum()) == 10
        assert live.daemon.status()["feed"]["links"][0]["max_streams_reached"]
        await live.wait_for(lambda d: link.metrics.quotes > 20)  # the 10 still stream


async def test_bad_messages_are_rejected_without_dropping_the_link(data_dir, shm_name):
    fake = terminal()
    async with fake, theta_daemon(data_dir, shm_name, fake) as live:
        link = live.feed.link
        await live.wait_for(lambda d: link.metrics.quotes > 20)
        contract = (
            '{"security_type":"OPTION","root":"SPY","expiration":20991231,"strike":1,"right":"Q"}'
        )
        for frame in (
            "{nope",
            '{"header":{"type":"QUOTE","status":"CONNECTED"},"contract":{"root":"SPY"',
            '{"header":{"type":"QUOTE","status":"CONNECTED"},"contract":' + contract
            + ',"quote":{"ms_of_day":1,"bid_size":1,"bid":1.0,"ask_size":1,"ask":"x","date":20260101}}',
            '{"header":{"type":"NEWS","status":"CONNECTED"}}',
            '{"header":{"type":"QUOTE","status":"CONNECTED"},"contract":' + contract
            + ',"quote":{"ms_of_day":1,"bid_size":1,"bid":1.0,"ask_size":1,"ask":1.1,"date":20260101}}',
        ):  # fmt: skip
            await fake.inject(frame)
        await live.wait_for(lambda d: live.rejects()["MALFORMED"] == 4)
        await live.wait_for(lambda d: live.rejects()["UNKNOWN_SYMBOL"] == 1)
        assert link.sessions == 1
        before = link.metrics.quotes
        await live.wait_for(lambda d: link.metrics.quotes > before + 20)
