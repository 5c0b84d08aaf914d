"""`ComputeService`: the pricing fleet as a daemon service (dispatcher + local workers).

On start it binds the dispatcher to a private ipc endpoint for the local fleet and to
`compute.bind` for remote workers (a busy address is reported, not fatal: the local fleet
still prices), subscribes to QUOTE and UNDERLYING events, starts the local workers and waits
(up to `compute.ready_timeout`) until they said READY, so that "the daemon is up" (systemd's
READY=1) means "the market is being priced". With `compute.curve_*` set, `compute.bind` speaks
CurveZMQ (compute/curve.py); bad certificates fail the start with a ConfigError naming them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING

from flashalpha.compute.dispatcher import Dispatcher
from flashalpha.compute.fleet import LocalFleet
from flashalpha.config import Config
from flashalpha.state.events import Event, EventKind

if TYPE_CHECKING:
    from flashalpha.daemon import Daemon

log = logging.getLogger(__name__)


def local_worker_count(config: Config) -> int:
    """`workers` from the config; None means one per CPU."""
    if config.workers is None:
        return os.cpu_count() or 1
    if config.workers < 0:
        raise ValueError(f"workers must be >= 0, got {config.workers}")
    return config.workers


class ComputeService:
    name = "compute"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers = local_worker_count(config)
        self.dispatcher: Dispatcher | None = None
        self.fleet: LocalFleet | None = None
        self._task: asyncio.Task | None = None
        self._subscription = None
        self.local_endpoint: str | None = None

    async def start(self, daemon: Daemon) -> None:
        config = self.config.compute
        dispatcher = self.dispatcher = Dispatcher(config, daemon.state, daemon.dispatcher.publish)
        # Abstract unix socket: no file, no path length or permission trouble. It stays
        # plain (NULL) when the tcp endpoint speaks CURVE: the local fleet holds no keys.
        self.local_endpoint = dispatcher.bind(
            f"ipc://@flashalpha-compute-{os.getpid()}-{uuid.uuid4().hex[:8]}", secure=False
        )
        dispatcher.bind(config.bind, required=False)
        self._subscription = daemon.dispatcher.subscribe(
            "compute", (EventKind.QUOTE, EventKind.UNDERLYING), self._on_event
        )
        self._task = asyncio.get_running_loop().create_task(dispatcher.run(), name="compute")
        if self.workers:
            self.fleet = LocalFleet(
                self.workers,
                self.local_endpoint,
                config.heartbeat_interval,
                threads=config.worker_threads,
                log_level=self.config.log_level,
            )
            self.fleet.start()
            await self._wait_for_workers(config.ready_timeout)

    async def _wait_for_workers(self, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        while len(self.dispatcher.workers) < self.workers and time.monotonic() < deadline:
            if self._task.done():
                break
            await asyncio.sleep(0.05)
        ready = len(self.dispatcher.workers)
        if ready < self.workers:
            log.error(
                "only %d of %d local workers ready after %.0fs; going on",
                ready,
                self.workers,
                timeout,
            )
        else:
            log.info("local fleet ready workers=%d seconds=%.2f", ready, time.monotonic() - started)

    def _on_event(self, event: Event) -> None:
        if event.kind is EventKind.QUOTE:
            self.dispatcher.mark_rows(event.ids)
        elif event.kind is EventKind.UNDERLYING:
            self.dispatcher.mark_underlyings(event.ids)

    async def stop(self) -> None:
        # Workers first, while the dispatcher still takes their last results.
        if self.fleet is not None:
            await self.fleet.stop(grace=max(5.0, 3 * self.config.compute.heartbeat_interval))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.dispatcher is not None:
            self.dispatcher.close()

    def healthy(self) -> bool:
        """The dispatcher's task is alive (for the systemd watchdog)."""
        return self._task is not None and not self._task.done()

    def status(self) -> dict:
        if self.dispatcher is None:
            return {}
        status = self.dispatcher.status()
        status["local_fleet"] = None if self.fleet is None else self.fleet.status()
        return status
