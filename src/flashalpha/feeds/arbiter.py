"""Redundant feeds (`--feed polygon,thetadata`): one merged stream, newest event per contract.

Both providers carry the same OPRA events, usually with the same exchange timestamps (Polygon
in milliseconds, ThetaData in milliseconds of the New York day). The arbiter sits between the
feeds and the daemon and passes on, per contract:

- **quotes** only when newer (by exchange time) than the newest quote already passed on: the
  faster feed wins each update, the slower one's copy is a duplicate and dropped;
- **trades** exactly once: the n-th copy of a (contract, time, price, size) print from one feed
  matches the n-th copy from the other, so two genuine identical prints still count twice
  while the second feed's duplicates are dropped (the state adds every trade to the volume);
- everything else (REST backfills: open interest, spots) as is.

Failover needs no switch: when one feed goes stale, the other's events are the newest and pass.
The arbiter watches each feed's health and, per contract, which feed delivered it last; a feed
that turns stale is reported (`failovers`), and if the healthy feed can widen its subscriptions
(`cover(rows)`) it is asked to take over the stale feed's contracts. `status()` shows each
feed's health and which one is leading (the healthy one delivering most of the passed events).

Covering is handed back: the arbiter records, per covering feed, which rows it holds on behalf
of which stale feed. Once that feed has been healthy without a break (a reconnect between two
checks is one) for `release_after` seconds, a row is released (`uncover(rows)`) when the feed
quotes it again, or when nothing came through the cover since the feed came back (a quiet
contract). A row that only the covering feed still quotes stays covered. A row covered for
several stale feeds is released when none of them needs it, and never a row of the covering
feed's own plan. The hold-off is the hysteresis: a feed that flaps (reconnects, streams a
little, goes stale again) never stays healthy long enough to be handed back, so the cover is
not dropped and requested again on every flap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flashalpha.state.batch import TickBatch

log = logging.getLogger(__name__)

_MIX = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0x27D4EB2F165667C5),
)


def trade_keys(trades: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint of each trade's (row, millisecond, price in 1/10000 $, size)."""
    with np.errstate(over="ignore"):
        row = trades["row"].astype(np.uint64) * _MIX[0]
        ms = (trades["ts"] // np.uint64(1_000_000)).astype(np.uint64) * _MIX[1]
        price = np.round(trades["price"] * 10_000).astype(np.int64).astype(np.uint64) * _MIX[2]
        size = trades["size"].astype(np.uint64) * _MIX[3]
        key = row ^ (ms + price) ^ (size * _MIX[0] + ms)
        return key ^ (key >> np.uint64(29))


class TradeDeduplicator:
    """Passes each print once across feeds; remembers prints for `window` seconds."""

    def __init__(self, feeds: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.feeds = feeds
        self.window = window
        self._clock = clock
        self._current: dict[int, list[int]] = {}
        self._previous: dict[int, list[int]] = {}
        self._rotated = clock()

    def accept(self, feed: int, keys: np.ndarray) -> np.ndarray:
        """Mask of the prints (by key) of `feed` that no other feed delivered before."""
        now = self._clock()
        if now - self._rotated >= self.window / 2:
            self._previous, self._current = self._current, {}
            self._rotated = now
        current, previous = self._current, self._previous
        accepted = np.empty(len(keys), bool)
        slot = feed + 1
        for index, key in enumerate(keys.tolist()):  # trades only: a small share of events
            entry = current.get(key)
            if entry is None:
                entry = previous.pop(key, None) or [0] * (self.feeds + 1)
                current[key] = entry
            entry[slot] += 1
            if entry[slot] > entry[0]:
                entry[0] = entry[slot]
                accepted[index] = True
            else:
                accepted[index] = False
        return accepted


class Arbiter:
    """Runs several feeds and merges their batches into one stream for the daemon."""

    name = "arbiter"

    def __init__(
        self,
        feeds: Sequence[Any],
        failover_after: float = 5.0,
        duplicate_window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        release_after: float = 30.0,
    ) -> None:
        if len(feeds) < 1:
            raise ValueError("the arbiter needs at least one feed")
        self.feeds = list(feeds)
        self.failover_after = failover_after
        self._clock = clock
        self._trades = TradeDeduplicator(len(feeds), duplicate_window, clock)
        self._quote_ts = np.zeros(0, np.uint64)
        self._last_seen = [np.zeros(0, np.float64) for _ in feeds]
        self.passed = [0] * len(feeds)
        self.duplicates = [0] * len(feeds)
        self.older = [0] * len(feeds)
        self._recent = [0.0] * len(feeds)
        self._recent_at = clock()
        self.failovers = 0
        self.leader: str | None = None
        self._healthy = [False] * len(feeds)
        self.release_after = release_after
        #: When each feed last turned healthy (arbiter clock); None while it is not.
        self._healthy_since: list[float | None] = [None] * len(feeds)
        self._sessions = [0] * len(feeds)
        #: Per covering feed: stale feed -> rows (sorted uint32) it covers on that one's behalf.
        self._covering: list[dict[int, np.ndarray]] = [{} for _ in feeds]
        #: Rows each feed handed back (`uncover`).
        self.released = [0] * len(feeds)
        self._emit: Callable[[TickBatch], None] | None = None

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, daemon: Any) -> None:
        for feed in self.feeds:
            attach = getattr(feed, "attach", None)
            if callable(attach):
                attach(daemon)

    async def run(self, emit: Callable[[TickBatch], None]) -> None:
        self._emit = emit
        tasks = [
            asyncio.create_task(feed.run(self._emitter(index)), name=f"feed-{feed.name}")
            for index, feed in enumerate(self.feeds)
        ]
        tasks.append(asyncio.create_task(self._watch(), name="arbiter-watch"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _emitter(self, index: int) -> Callable[[TickBatch], None]:
        def emit(batch: TickBatch) -> None:
            merged = self.merge(index, batch)
            if len(merged) and self._emit is not None:
                self._emit(merged)

        return emit

    # -- merging -----------------------------------------------------------------------------

    def _grow(self, rows: int) -> None:
        if len(self._quote_ts) < rows:
            size = max(rows, len(self._quote_ts) * 3 // 2, 4096)
            grown = np.zeros(size, np.uint64)
            grown[: len(self._quote_ts)] = self._quote_ts
            self._quote_ts = grown
            for index, seen in enumerate(self._last_seen):
                bigger = np.zeros(size, np.float64)
                bigger[: len(seen)] = seen
                self._last_seen[index] = bigger

    def merge(self, index: int, batch: TickBatch) -> TickBatch:
        """What of feed `index`'s batch goes on: newer quotes, first copies of trades."""
        now = self._clock()
        quotes, trades = batch.quotes, batch.trades
        top = 0
        if len(quotes):
            top = int(quotes["row"].max()) + 1
        if len(trades):
            top = max(top, int(trades["row"].max()) + 1)
        self._grow(top)
        passed = 0
        if len(quotes):
            rows, ts = quotes["row"], quotes["ts"]
            if not batch.source.endswith("-rest"):  # a snapshot is not coverage
                self._last_seen[index][rows] = now
            held = self._quote_ts[rows]
            newer = ts > held
            self.duplicates[index] += int((ts == held).sum())
            self.older[index] += int((ts < held).sum())
            if not newer.all():
                quotes = quotes[newer]
            np.maximum.at(self._quote_ts, quotes["row"], quotes["ts"])
            passed += len(quotes)
        if len(trades):
            # Coverage is about quotes: a feed may carry every trade but only some quotes.
            first = self._trades.accept(index, trade_keys(trades))
            self.duplicates[index] += int((~first).sum())
            if not first.all():
                trades = trades[first]
            passed += len(trades)
        passed += len(batch.underlyings) + len(batch.open_interest)
        self.passed[index] += passed
        self._recent[index] += passed
        return TickBatch(
            quotes=quotes,
            trades=trades,
            underlyings=batch.underlyings,
            open_interest=batch.open_interest,
            source=batch.source,
            ts_received=batch.ts_received,
        )

    # -- health and failover -----------------------------------------------------------------

    def covered_rows(self, index: int) -> np.ndarray:
        """Rows feed `index` delivered quotes for within `failover_after` seconds."""
        seen = self._last_seen[index]
        return np.flatnonzero(seen > self._clock() - self.failover_after).astype(np.uint32)

    def check(self) -> None:
        """Update health and the leader; fail over a stale feed's contracts, hand them back."""
        self.observe(
            [bool(feed.healthy()) for feed in self.feeds],
            [
                sum(getattr(link, "sessions", 0) for link in getattr(feed, "links", ()))
                for feed in self.feeds
            ],
        )

    def observe(self, healthy: Sequence[bool], sessions: Sequence[int] | None = None) -> None:
        """`check` with each feed's health given (True: streaming and not stale), and the
        sessions its links opened so far: a feed that reconnected between two checks was
        not healthy all along, even if both checks found it healthy."""
        healthy = list(healthy)
        sessions = list(sessions) if sessions is not None else list(self._sessions)
        now = self._clock()
        for index, feed in enumerate(self.feeds):
            if self._healthy[index] and not healthy[index]:
                self.failovers += 1
                self._healthy_since[index] = None
                self._fail_over(index, healthy)
            elif healthy[index] and not self._healthy[index]:
                self._healthy_since[index] = now
                if self.failovers:
                    log.info("arbiter: %s is healthy again", feed.name)
            elif healthy[index] and sessions[index] != self._sessions[index]:
                self._healthy_since[index] = now  # the hold-off starts again
        self._healthy = healthy
        self._sessions = sessions
        self._hand_back(healthy)
        elapsed = max(now - self._recent_at, 1e-9)
        rates = [count / elapsed for count in self._recent]
        if elapsed >= self.failover_after:
            self._recent = [0.0] * len(self.feeds)
            self._recent_at = now
        candidates = [i for i in range(len(self.feeds)) if healthy[i]]
        if candidates:
            best = max(candidates, key=lambda i: (rates[i], -i))
            self.leader = self.feeds[best].name
        else:
            self.leader = None

    def _fail_over(self, stale: int, healthy: list[bool]) -> None:
        rows = np.flatnonzero(
            self._last_seen[stale] > self._clock() - 4 * self.failover_after
        ).astype(np.uint32)
        survivors = [i for i, ok in enumerate(healthy) if ok and i != stale]
        names = ", ".join(self.feeds[i].name for i in survivors) or "none"
        log.warning(
            "arbiter: %s went stale; failing over its %d contracts to %s",
            self.feeds[stale].name,
            len(rows),
            names,
        )
        for index in survivors:
            feed = self.feeds[index]
            mine = self._last_seen[index][rows] > self._clock() - self.failover_after
            missing = rows[~mine]
            cover = getattr(feed, "cover", None)
            if len(missing) and callable(cover):
                cover(missing)
            # Every row of the stale feed this one holds as cover, including rows it already
            # covers for another stale feed: each is released only when neither needs it.
            held = _cover_rows(feed)
            if held is not None and len(rows):
                taken = rows[np.isin(rows, held)]
                if len(taken):
                    covering = self._covering[index]
                    before = covering.get(stale, np.empty(0, np.uint32))
                    covering[stale] = np.union1d(before, taken).astype(np.uint32)

    def _hand_back(self, healthy: list[bool]) -> None:
        """Release covered rows of feeds that came back (see the module docstring)."""
        now = self._clock()
        for index, covering in enumerate(self._covering):
            done: dict[int, np.ndarray] = {}
            for stale, rows in covering.items():
                since = self._healthy_since[stale]
                if not healthy[stale] or since is None or now - since < self.release_after:
                    continue
                quoted_again = self._last_seen[stale][rows] >= since
                quiet = self._last_seen[index][rows] < since
                done[stale] = quoted_again | quiet
            if not any(mask.any() for mask in done.values()):
                continue
            finished = np.concatenate([covering[s][mask] for s, mask in done.items()])
            for stale, mask in done.items():
                covering[stale] = covering[stale][~mask]
            needed = [rows for rows in covering.values() if len(rows)]
            release = np.unique(finished)
            if needed:
                release = np.setdiff1d(release, np.concatenate(needed)).astype(np.uint32)
            for stale in [s for s, rows in covering.items() if not len(rows)]:
                del covering[stale]
            feed = self.feeds[index]
            held = _cover_rows(feed)
            uncover = getattr(feed, "uncover", None)
            if held is None or not callable(uncover):
                continue
            release = release[np.isin(release, held)]  # never a row of its own plan
            if len(release):
                released = int(uncover(release))
                self.released[index] += released
                log.info("arbiter: %s handed back %d covered contracts", feed.name, released)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.failover_after / 4))
            try:
                self.check()
            except Exception:
                log.exception("arbiter check failed")

    def healthy(self) -> bool:
        return any(feed.healthy() for feed in self.feeds)

    def status(self) -> dict[str, Any]:
        feeds = {}
        for index, feed in enumerate(self.feeds):
            feeds[feed.name] = {
                **feed.status(),
                "passed": self.passed[index],
                "duplicates_dropped": self.duplicates[index],
                "older_dropped": self.older[index],
                # Rows it quotes for each stale feed (its own "covering": rows held in all).
                "covering_for": {
                    self.feeds[stale].name: len(rows)
                    for stale, rows in self._covering[index].items()
                },
                "rows_handed_back": self.released[index],
            }
        return {
            "name": self.name,
            "leading": self.leader,
            "failovers": self.failovers,
            "healthy": self.healthy(),
            "feeds": feeds,
        }


def make_live_feed(config: Any, registry: Any, kinds: Sequence[str]) -> Any:
    """The Polygon and/or ThetaData feed(s) named by `kinds`, behind an arbiter if several."""
    feeds = []
    underlyings = tuple(config.feed.underlyings)
    for kind in kinds:
        if kind == "polygon":
            from flashalpha.feeds.polygon import PolygonFeed

            feeds.append(PolygonFeed(registry, config.polygon, underlyings))
        elif kind == "thetadata":
            from flashalpha.feeds.thetadata import ThetaDataFeed

            feeds.append(ThetaDataFeed(registry, config.thetadata, underlyings))
        else:
            raise ValueError(f"unknown live feed {kind!r}: expected polygon or thetadata")
    if len({feed.name for feed in feeds}) != len(feeds):
        raise ValueError(f"feed listed twice in {','.join(kinds)!r}")
    if len(feeds) == 1:
        return feeds[0]
    return Arbiter(
        feeds,
        config.arbiter.failover_after,
        config.arbiter.duplicate_window,
        release_after=config.arbiter.release_after,
    )


def _cover_rows(feed: Any) -> np.ndarray | None:
    """The rows `feed` quotes as cover for other feeds (`feed.covering`), None if it cannot
    hand rows back."""
    covering = getattr(feed, "covering", None)
    if covering is None:
        return None
    return np.fromiter(covering, np.int64, len(covering))
