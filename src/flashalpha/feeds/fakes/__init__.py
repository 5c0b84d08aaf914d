"""Fake Polygon and ThetaData servers speaking the providers' real wire protocols.

They serve a market source (the synthetic market for `flashalpha fake-feed`, a small scripted
one in tests) over WebSocket and REST on one port, so that the live connectors can be tried and
tested without reaching the providers. `tests/fakes/` re-exports them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from flashalpha.feeds.fakes.market import MarketBook, MarketSource, ScriptedMarket
from flashalpha.feeds.fakes.polygon_server import FakePolygonServer
from flashalpha.feeds.fakes.thetadata_server import FakeThetaTerminal

__all__ = [
    "FakePolygonServer",
    "FakeThetaTerminal",
    "MarketBook",
    "MarketSource",
    "ScriptedMarket",
    "serve_fake",
]

log = logging.getLogger(__name__)


def _market(underlyings: Sequence[str], seed: int, events_per_second: float, scripted: bool):
    if not scripted:
        try:
            from flashalpha.feeds.fakes.market import synthetic_market

            return synthetic_market(underlyings, seed, events_per_second)
        except ImportError as error:  # the synthetic market is optional for the fakes
            log.warning("synthetic market unavailable (%s); serving the scripted one", error)
    return ScriptedMarket(
        dict.fromkeys(underlyings or ("SPY",), 500.0),
        quotes_per_batch=max(1, int(events_per_second * 0.05 * 0.9)),
        trades_per_batch=max(1, int(events_per_second * 0.05 * 0.1)),
        seed=seed,
    )


async def serve_fake(
    kind: str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    underlyings: Sequence[str] = (),
    api_key: str | None = None,
    seed: int = 0,
    events_per_second: float = 2_000.0,
    scripted: bool = False,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the market as `kind` ("polygon" or "thetadata") until SIGINT/SIGTERM."""
    market = _market(underlyings, seed, events_per_second, scripted)
    if kind == "polygon":
        server = FakePolygonServer(market, host, port, api_key=api_key)
        path = "/options"
    elif kind == "thetadata":
        server = FakeThetaTerminal(market, host, port)
        path = "/v1/events"
    else:
        raise ValueError(f"unknown fake feed {kind!r}: expected polygon or thetadata")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        contracts = market.registry.count
        print(
            f"fake {kind} serving {contracts} contracts: WebSocket {server.ws_url(path)}  "
            f"REST {server.http_url}",
            flush=True,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
