"""`flashalpha run`: the daemon that wires feed → journal → state → events on one uvloop loop.

Every state mutation happens on the loop thread in one order (DESIGN.md §2): the feed hands a
normalized `TickBatch` to `on_batch`, which journals new listings and the batch, applies it to
the shared-memory state under the next sequence number, then publishes the changes. Nothing on
that path awaits a consumer.

Components that join later (pricing fleet, HTTP/hub, feeds with their own tasks) implement the
`Service` protocol and are started after the state is up and stopped before it goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import numpy as np

from flashalpha import __version__, systemd
from flashalpha.config import Config, ConfigError
from flashalpha.instruments import InstrumentRegistry
from flashalpha.journal import (
    OPTION_LISTING_DTYPE,
    UNDERLYING_LISTING_DTYPE,
    BlockKind,
    JournalWriter,
    journal_file,
    trading_day,
)
from flashalpha.logs import RateLimitedLog
from flashalpha.state.batch import TickBatch
from flashalpha.state.engine import MarketState
from flashalpha.state.events import EventDispatcher
from flashalpha.state.layout import RejectKind
from flashalpha.state.reader import StateReader

log = logging.getLogger(__name__)


class Feed(Protocol):
    """A source of normalized batches. `run` emits until cancelled (or the source ends)."""

    name: str

    async def run(self, emit: Callable[[TickBatch], None]) -> None: ...


class LoopLag:
    """How late the loop runs a timer: the stall every task on the loop (ingest, hub, REST) saw.

    A task sleeps `interval` seconds in a loop and records by how much each wake-up overshot,
    measured with `perf_counter` (uvloop's `loop.time()` is cached per iteration and would hide
    the stall). The last `window` samples give the percentiles; the maximum is also kept since
    start. 100 wake-ups a second cost a few microseconds each.
    """

    def __init__(self, interval: float = 0.01, window: int = 1024) -> None:
        self.interval = interval
        self._samples = np.zeros(window)
        self._count = 0
        self.max_since_start = 0.0

    async def run(self) -> None:
        samples, window = self._samples, len(self._samples)
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.perf_counter() - started - self.interval)
            samples[self._count % window] = lag
            self._count += 1
            self.max_since_start = max(self.max_since_start, lag)

    def stats(self) -> dict:
        """p50/p99/max over the last `window` wake-ups (≈ window × interval seconds), in ms."""
        recent = self._samples[: min(self._count, len(self._samples))]
        if not len(recent):
            return {"samples": 0}
        p50, p99 = np.percentile(recent, [50, 99]) * 1e3
        return {
            "samples": len(recent),
            "p50_ms": round(float(p50), 2),
            "p99_ms": round(float(p99), 2),
            "max_ms": round(float(recent.max()) * 1e3, 2),
            "max_since_start_ms": round(self.max_since_start * 1e3, 2),
        }


class Service(Protocol):
    """A component with its own tasks (HTTP server, pricing fleet, ...)."""

    name: str

    async def start(self, daemon: Daemon) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict: ...


def make_feed(config: Config, registry: InstrumentRegistry) -> Feed:
    """The feed named by `config.feed.kind`; ConfigError naming it if unknown."""
    kind = config.feed.kind
    if kind == "synthetic":
        from flashalpha.feeds.synthetic import SyntheticFeed

        return SyntheticFeed(
            registry,
            universe=config.feed.universe,
            seed=config.feed.seed,
            events_per_second=config.feed.events_per_second,
            tick_interval=config.feed.tick_interval,
            rate=config.market.rate,
            underlyings=config.feed.underlyings,
        )
    if kind.startswith("replay:"):
        from flashalpha.feeds.replay import ReplayFeed

        path = kind.removeprefix("replay:")
        try:
            return ReplayFeed(path, registry, speed=config.feed.replay_speed)
        except FileNotFoundError as error:
            raise ConfigError(str(error)) from None
    live = [part.strip() for part in kind.split(",") if part.strip()]
    if live and all(part in ("polygon", "thetadata") for part in live):
        from flashalpha.feeds.arbiter import make_live_feed

        try:
            return make_live_feed(config, registry, live)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    raise ConfigError(
        f"unknown feed '{kind}': expected synthetic, polygon, thetadata, polygon,thetadata "
        "or replay:PATH"
    )


class Daemon:
    """Owns the state, registry, journal, dispatcher, feed and services of one process."""

    def __init__(self, config: Config, feed_factory: Callable[..., Feed] = make_feed) -> None:
        self.config = config
        self._feed_factory = feed_factory
        self.registry = InstrumentRegistry(config.state.capacity, config.state.underlying_capacity)
        self.state: MarketState | None = None
        self.reader: StateReader | None = None
        self.journal: JournalWriter | None = None
        self.feed: Feed | None = None
        self.dispatcher = EventDispatcher(
            config.events.volume_spike_min_size, config.events.volume_spike_oi_fraction
        )
        self.services: list[Service] = []
        self.started_ns = time.time_ns()
        self.loop_lag = LoopLag()
        self.last_errors: list[str] = []
        self._journaled_rows = 0
        self._journaled_underlyings = 0
        self._new_session = False
        self._stop = asyncio.Event()
        self._feed_task: asyncio.Task | None = None
        self._rate_limited = RateLimitedLog(log)
        self._recovered_batches = 0

    # -- the tick path -----------------------------------------------------------------------

    def on_batch(self, batch: TickBatch) -> None:
        """Journal, apply and publish one batch (the feed's emit callback)."""
        state = self.state
        assert state is not None
        if self.journal is not None:
            self.journal.ensure_file(batch.ts_received)
            self._journal_listings(batch.ts_received)
            if self._new_session:
                self._new_session = False
                self._roll_session(batch.ts_received)
        self._state_listings()
        if self.journal is not None:
            self.journal.append_batch(batch, state.next_seq())
        changes = state.apply(batch)
        if changes.rejected:
            self._report_rejects()
        self.dispatcher.publish_changes(changes, batch.trades, state.column("open_interest"))

    def _journal_listings(self, ts_received: int) -> None:
        """Journal what was listed since the last call, in the file of `ts_received`'s day."""
        registry, journal = self.registry, self.journal
        rows, underlyings = registry.count, registry.underlying_count
        if rows == self._journaled_rows and underlyings == self._journaled_underlyings:
            return
        blocks = []
        if underlyings > self._journaled_underlyings:
            start = self._journaled_underlyings
            records = np.zeros(underlyings - start, UNDERLYING_LISTING_DTYPE)
            static = registry.underlying_static(start, underlyings)
            records["underlying_id"] = np.arange(start, underlyings)
            records["symbol"] = static["symbol"]
            records["style"] = static["style"]
            records["div_yield"] = static["div_yield"]
            blocks.append((BlockKind.UNDERLYING_LISTINGS, records))
        if rows > self._journaled_rows:
            start = self._journaled_rows
            records = np.zeros(rows - start, OPTION_LISTING_DTYPE)
            static = registry.option_static(start, rows)
            records["row"] = np.arange(start, rows)
            records["osi"] = static["osi"]
            records["underlying_id"] = static["underlying_id"]
            records["multiplier"] = static["multiplier"]
            blocks.append((BlockKind.OPTION_LISTINGS, records))
        journal.append_blocks(blocks, self.state.seq, ts_received)
        self._journaled_rows, self._journaled_underlyings = rows, underlyings

    def _state_listings(self) -> None:
        state, registry = self.state, self.registry
        if registry.count == state.count and registry.underlying_count == state.underlying_count:
            return
        new_rows, new_underlyings = state.add_listings(
            registry.option_static(state.count, registry.count),
            registry.underlying_static(state.underlying_count, registry.underlying_count),
            rate=self.config.market.rate,
        )
        log.info(
            "listed contracts=%d underlyings=%d total=%d",
            len(new_rows),
            len(new_underlyings),
            state.count,
        )

    def _report_rejects(self) -> None:
        rejects = self.state.rejects()
        for kind, count in rejects.items():
            if count:
                self._rate_limited.warning(
                    kind.name.lower(), "rejected events kind=%s total=%d", kind.name.lower(), count
                )

    def count_reject(self, kind: RejectKind, message: str, n: int = 1) -> None:
        """Count events refused at the edge (decode errors, bad symbols) and log them, limited."""
        self.state.count_reject(kind, n)
        if self._rate_limited.warning(kind.name.lower(), "%s", message):
            self.last_errors = [*self.last_errors[-9:], f"{time.strftime('%H:%M:%S')} {message}"]

    # -- lifecycle ---------------------------------------------------------------------------

    def _on_rotate(self, journal: JournalWriter) -> None:
        # A new day's file must be self-contained: journal every listing again, and the state
        # carried into the day (`_roll_session`).
        if not journal.resumed:
            self._journaled_rows = self._journaled_underlyings = 0
            self._new_session = True

    def _roll_session(self, ts_received: int) -> None:
        """A new trading day's journal was opened: start the day's session in the state.

        The day's trade columns (volume, last trade) are cleared and published, then the
        quotes, spots and open interest the state carries into the day are journaled at the
        head of the new file and applied like any batch (no value changes: same timestamps).
        Recovery from that file alone therefore rebuilds the same market columns as this
        daemon holds, whether it ran through midnight or was restarted today.
        """
        state = self.state
        self._state_listings()
        cleared = state.reset_session()
        if len(cleared):
            self.dispatcher.publish_changes(cleared, None, state.column("open_interest"))
        carry = state.session_carry(ts_received)
        if len(carry):
            self.journal.append_batch(carry, state.next_seq())
            self.dispatcher.publish_changes(state.apply(carry), None, state.column("open_interest"))
        log.info(
            "new trading session journal=%s cleared_trades=%d carried_quotes=%d "
            "carried_spots=%d carried_open_interest=%d",
            self.journal.path,
            len(cleared.trade_rows),
            len(carry.quotes),
            len(carry.underlyings),
            len(carry.open_interest),
        )

    def recover(self) -> int:
        """Rebuild the state from today's journal; return the number of batches replayed."""
        from flashalpha.feeds.replay import JournalReplay

        path = journal_file(self.config.journal_path, trading_day(time.time_ns()))
        if not path.exists():
            return 0
        started = time.perf_counter()
        replay = JournalReplay(path, self.registry)
        for batch in replay.batches():
            self._state_listings()
            self.state.apply(batch)
        self._state_listings()
        # Everything registered so far is in today's file already.
        self._journaled_rows = self.registry.count
        self._journaled_underlyings = self.registry.underlying_count
        log.info(
            "recovered from journal path=%s batches=%d events=%d seconds=%.2f seq=%d",
            path,
            replay.batches_replayed,
            replay.events_replayed,
            time.perf_counter() - started,
            self.state.seq,
        )
        return replay.batches_replayed

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (or `request_stop`), then shut down cleanly."""
        config = self.config
        config.data_path.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        self.state = MarketState.create(
            config.state.shm_name,
            config.state.capacity,
            config.state.underlying_capacity,
            config.state.stale_after,
        )
        self.reader = StateReader(self.state.segment)
        try:
            is_replay = config.feed.kind.startswith("replay:")
            if config.journal.enabled and config.journal.recover and not is_replay:
                self._recovered_batches = self.recover()
            if config.journal.enabled:
                self.journal = JournalWriter(
                    config.journal_path, config.journal.fsync, config.journal.fsync_interval
                )
                self.journal.on_rotate = self._on_rotate
            self.feed = self._feed_factory(config, self.registry)
            attach = getattr(self.feed, "attach", None)
            if callable(attach):  # live feeds count edge rejects in the state
                attach(self)
            self._state_listings()
            self.dispatcher.start()
            for service in self.services:
                await service.start(self)
            self._feed_task = loop.create_task(self._run_feed(), name="feed")
            heartbeat = loop.create_task(self._heartbeat(), name="heartbeat")
            loop_lag = loop.create_task(self.loop_lag.run(), name="loop-lag")
            log.info(
                "daemon running pid=%d feed=%s shm=%s contracts=%d seq=%d",
                os.getpid(),
                config.feed.kind,
                config.state.shm_name,
                self.state.count,
                self.state.seq,
            )
            # systemd (Type=notify): up once the state and services (the fleet) are.
            systemd.notify(
                "READY=1", f"STATUS=running, {self.state.count} contracts", f"MAINPID={os.getpid()}"
            )
            watchdog_interval = systemd.watchdog_interval()
            watchdog = (
                loop.create_task(self._watchdog(watchdog_interval), name="watchdog")
                if watchdog_interval
                else None
            )
            await self._stop.wait()
            log.info("stopping")
            systemd.notify("STOPPING=1")
            heartbeat.cancel()
            loop_lag.cancel()
            if watchdog is not None:
                watchdog.cancel()
            await _cancel(self._feed_task)
            for service in reversed(self.services):
                await service.stop()
            await self.dispatcher.stop()
        finally:
            if self.journal is not None:
                self.journal.close()
            self.reader = None
            self.state.close(unlink=True)
            log.info("stopped")

    async def _run_feed(self) -> None:
        try:
            await self.feed.run(self.on_batch)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A feed failure is logged and reported; the daemon keeps serving what it has.
            log.exception("feed %s failed", self.config.feed.kind)
            self.last_errors = [*self.last_errors[-9:], f"feed failed: {error!r}"]

    async def _heartbeat(self) -> None:
        interval = self.config.state.heartbeat_interval
        while True:
            self.state.heartbeat()
            try:
                self.state.set_status(msgspec.json.encode(self.status()))
            except Exception:
                log.exception("status document failed")
            await asyncio.sleep(interval)

    async def _watchdog(self, interval: float) -> None:
        """WATCHDOG=1 while the loop turns and every service says it is healthy."""
        while True:
            if all(getattr(s, "healthy", lambda: True)() for s in self.services):
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def status(self) -> dict:
        """What `flashalpha status` shows; services add their own sections."""
        state = self.state
        feed_status = getattr(self.feed, "status", None)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "feed": {
                "kind": self.config.feed.kind,
                "running": self._feed_task is not None and not self._feed_task.done(),
                **(feed_status() if callable(feed_status) else {}),
            },
            "state": {
                "shm_name": self.config.state.shm_name,
                "seq": state.seq,
                "contracts": state.count,
                "underlyings": state.underlying_count,
                "capacity": state.capacity,
                "recovered_batches": self._recovered_batches,
            },
            "journal": None
            if self.journal is None
            else {
                "path": str(self.journal.path),
                "bytes_written": self.journal.bytes_written,
                "fsync": self.journal.fsync,
            },
            "loop_lag": self.loop_lag.stats(),
            "events": self.dispatcher.stats(),
            "services": {service.name: service.status() for service in self.services},
            "last_errors": self.last_errors,
        }


async def _cancel(task: asyncio.Task | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_daemon(config: Config) -> int:
    """Run the daemon on uvloop in the foreground; return the process exit code."""
    import uvloop

    from flashalpha.api.service import ApiService
    from flashalpha.compute.service import ComputeService

    daemon = Daemon(config)
    daemon.services.append(ComputeService(config))
    # HTTP last: started once everything it serves is up, stopped first.
    daemon.services.append(ApiService())
    uvloop.run(daemon.run())
    return 0
