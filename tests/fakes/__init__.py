"""Fake providers for the feed tests (the package's fakes: they ship with `fake-feed`), and a
daemon running in-process against them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from flashalpha.config import load_config
from flashalpha.daemon import Daemon
from flashalpha.feeds.fakes import (
    FakePolygonServer,
    FakeThetaTerminal,
    MarketBook,
    ScriptedMarket,
)

__all__ = [
    "FAST_LINKS",
    "FakePolygonServer",
    "FakeThetaTerminal",
    "LiveDaemon",
    "MarketBook",
    "ScriptedMarket",
]

#: Link timings that make reconnects and stall detection take a fraction of a second.
FAST_LINKS = {
    "stale_after": 1.0,
    "backoff_initial": 0.1,
    "backoff_max": 0.4,
    "healthy_after": 0.5,
    "open_timeout": 2.0,
}


class LiveDaemon:
    """The real daemon (journal, shared-memory state) on this loop, fed by live connectors."""

    def __init__(self, data_dir, shm_name: str, **sections: Any) -> None:
        overrides = {
            "data_dir": str(data_dir),
            "state": {"shm_name": shm_name, "capacity": 20_000, "underlying_capacity": 64},
            "journal": {"fsync": "never"},
            **sections,
        }
        self.config = load_config(None, overrides, environ={})
        self.daemon = Daemon(self.config)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> LiveDaemon:
        self._task = asyncio.create_task(self.daemon.run())
        await self.wait_for(lambda d: d.state is not None and d.feed is not None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 10)

    @property
    def feed(self) -> Any:
        return self.daemon.feed

    @property
    def state(self) -> Any:
        return self.daemon.state

    async def wait_for(self, predicate: Callable[[Daemon], Any], timeout: float = 15.0) -> None:
        """Poll until `predicate(daemon)` holds; fail naming the daemon's feed status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._task is not None and self._task.done():
                self._task.result()
                raise AssertionError("the daemon stopped")
            try:
                if predicate(self.daemon):
                    return
            except (AttributeError, IndexError, KeyError, TypeError):
                pass
            await asyncio.sleep(0.02)
        status = self.daemon.status() if self.daemon.state is not None else None
        raise AssertionError(f"condition not met within {timeout}s; status: {status}")

    def rejects(self) -> dict:
        return {kind.name: count for kind, count in self.state.rejects().items()}
