"""An in-process daemon with the API service on a free port, fed by the test itself.

`market` runs the real `Daemon` (state in shared memory, dispatcher, services) on the test's
event loop with a `ScriptedFeed`: the test lists a small universe and emits batches when it
wants, so every value the API serves is known. HTTP goes over a real socket (httpx), hub
connections over real WebSockets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from flashalpha.api.service import ApiService
from flashalpha.config import load_config
from flashalpha.daemon import Daemon
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import QUOTE_DTYPE, UNDERLYING_TICK_DTYPE

EXPIRIES = (dt.date(2030, 1, 18), dt.date(2030, 2, 15))
SPY_STRIKES = np.arange(640, 660, 2.0)  # 10 strikes × 2 expiries × C/P = 40 SPY contracts
QQQ_STRIKES = np.arange(500, 505, 1.0)  # 5 × 2 × 2 = 20 QQQ contracts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScriptedFeed:
    """Lists SPY and QQQ contracts; emits only what the test asks for."""

    name = "scripted"

    def __init__(self, registry: InstrumentRegistry) -> None:
        self.registry = registry
        self.rows: dict[str, np.ndarray] = {}
        for root, strikes in (("SPY", SPY_STRIKES), ("QQQ", QQQ_STRIKES)):
            registry.add_underlying(root, div_yield=0.01)
            grid = np.array(
                [(e, s, r) for e in EXPIRIES for s in strikes for r in (0, 1)], dtype=object
            )
            self.rows[root] = registry.add_many(
                root,
                np.array([np.datetime64(e, "D") for e in grid[:, 0]]),
                np.array([round(s * 1000) for s in grid[:, 1]], np.int64),
                grid[:, 2].astype(np.uint8),
            )
        self.emit: Callable[[TickBatch], None] | None = None

    async def run(self, emit: Callable[[TickBatch], None]) -> None:
        self.emit = emit
        await asyncio.Event().wait()


class Market:
    """The running daemon, its API and helpers to move the market."""

    def __init__(self, daemon: Daemon, service: ApiService, feed: ScriptedFeed) -> None:
        self.daemon = daemon
        self.service = service
        self.feed = feed
        self.url = service.url
        self.ws_url = service.url.replace("http://", "ws://")
        self._ts = time.time_ns()

    def _next_ts(self) -> int:
        self._ts = max(self._ts + 1, time.time_ns())
        return self._ts

    def quote(self, rows, bid: float, ask: float, size: int = 10) -> int:
        """Apply quotes to `rows` through the daemon's tick path; return the new seq."""
        rows = np.atleast_1d(np.asarray(rows, np.uint32))
        quotes = np.zeros(len(rows), QUOTE_DTYPE)
        quotes["row"], quotes["bid"], quotes["ask"] = rows, bid, ask
        quotes["bid_size"] = quotes["ask_size"] = size
        quotes["ts"] = self._next_ts()
        self.feed.emit(TickBatch(quotes=quotes))
        return self.daemon.state.seq

    def spot(self, symbol: str, price: float) -> int:
        ticks = np.zeros(1, UNDERLYING_TICK_DTYPE)
        ticks["underlying"] = self.daemon.registry.underlying_id(symbol)
        ticks["price"], ticks["ts"] = price, self._next_ts()
        self.feed.emit(TickBatch(underlyings=ticks))
        return self.daemon.state.seq

    def symbol(self, row) -> str:
        """The Polygon symbol of a row."""
        return self.daemon.registry.contract(int(row)).polygon()

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, **kwargs)


async def start_market(shm_name: str, tmp_path, **sections) -> tuple[Market, asyncio.Task]:
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "state": {"shm_name": shm_name, "capacity": 4096, "underlying_capacity": 16},
        "journal": {"enabled": False},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "log_level": "WARNING",
    }
    overrides.update(sections)
    config = load_config(overrides=overrides, environ={})
    feeds: list[ScriptedFeed] = []

    def make_feed(config, registry):
        feeds.append(ScriptedFeed(registry))
        return feeds[0]

    daemon = Daemon(config, feed_factory=make_feed)
    service = ApiService()
    daemon.services.append(service)
    task = asyncio.get_running_loop().create_task(daemon.run())
    for _ in range(500):
        if task.done():
            await task
        if feeds and feeds[0].emit is not None and service.url:
            break
        await asyncio.sleep(0.01)
    else:
        raise TimeoutError("in-process daemon did not start")
    return Market(daemon, service, feeds[0]), task


async def stop_market(market: Market, task: asyncio.Task) -> None:
    market.daemon.request_stop()
    await asyncio.wait_for(task, 20)


@pytest.fixture
async def market(shm_name, tmp_path):
    market, task = await start_market(shm_name, tmp_path)
    yield market
    await stop_market(market, task)


@pytest.fixture
async def market_factory(shm_name, tmp_path):
    """`await market_factory(api={...}, hub={...})`: a daemon with other settings."""
    started: list[tuple[Market, asyncio.Task]] = []

    async def make(**sections) -> Market:
        market, task = await start_market(shm_name, tmp_path, **sections)
        started.append((market, task))
        return market

    yield make
    for market, task in started:
        await stop_market(market, task)
