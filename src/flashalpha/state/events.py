"""The events dispatcher: routes "what changed" to subscribers without ever waiting for them.

The daemon publishes after the state write (journal → state → seq → publish), so a handler
always reads a state that already holds the event it reacts to. Publishing only appends the
changed ids to each interested subscription's pending set and wakes its task; the handler runs
later in that task with everything that accumulated meanwhile, de-duplicated. A slow subscriber
therefore sees fewer, larger (coalesced) events, and the tick path never awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import numpy as np

from flashalpha.state.engine import Changes
from flashalpha.state.layout import TRADE_DTYPE

log = logging.getLogger(__name__)


class EventKind(enum.Enum):
    """Kinds of change a subscriber can ask for. Ids are option rows unless noted."""

    QUOTE = "quote"
    TRADE = "trade"
    UNDERLYING = "underlying"  # ids are underlying ids
    VOLUME_SPIKE = "volume_spike"
    OPEN_INTEREST = "open_interest"
    GREEKS = "greeks"


@dataclass(frozen=True, slots=True)
class Event:
    """Changes of one kind since the subscriber's previous event.

    `ids` are unique and sorted; `seq` is the state's sequence number of the newest change
    included; `coalesced` counts how many publications were merged into this event.
    """

    kind: EventKind
    seq: int
    ids: np.ndarray
    coalesced: int


Handler = Callable[[Event], Awaitable[None] | None]

#: Compact a pending set once it holds this many ids (duplicates included).
_COMPACT_AT = 1 << 20


class Subscription:
    """One subscriber's pending changes per kind, and the task that delivers them."""

    def __init__(self, name: str, kinds: frozenset[EventKind], handler: Handler) -> None:
        self.name = name
        self.kinds = kinds
        self._handler = handler
        self._pending: dict[EventKind, list[np.ndarray]] = {kind: [] for kind in kinds}
        self._pending_size: dict[EventKind, int] = dict.fromkeys(kinds, 0)
        self._pending_count: dict[EventKind, int] = dict.fromkeys(kinds, 0)
        self._seq = dict.fromkeys(kinds, 0)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.delivered = 0
        self.coalesced = 0
        self.errors = 0

    @property
    def pending(self) -> int:
        """Ids waiting for delivery (duplicates included)."""
        return sum(self._pending_size.values())

    def offer(self, kind: EventKind, seq: int, ids: np.ndarray) -> None:
        parts = self._pending[kind]
        parts.append(ids)
        self._pending_size[kind] += len(ids)
        self._pending_count[kind] += 1
        self._seq[kind] = seq
        if self._pending_size[kind] > _COMPACT_AT:
            merged = np.unique(np.concatenate(parts))
            parts[:] = [merged]
            self._pending_size[kind] = len(merged)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"events:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _take(self) -> list[Event]:
        events = []
        for kind, parts in self._pending.items():
            if not parts:
                continue
            ids = np.unique(np.concatenate(parts)) if len(parts) > 1 else np.unique(parts[0])
            count = self._pending_count[kind]
            events.append(Event(kind, self._seq[kind], ids, count))
            parts.clear()
            self._pending_size[kind] = 0
            self._pending_count[kind] = 0
            self.coalesced += count - 1
        return events

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for event in self._take():
                try:
                    result = self._handler(event)
                    if result is not None:
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.errors += 1
                    log.exception("event handler %s failed on %s", self.name, event.kind.value)
                self.delivered += 1
            # Let the tick path run before the next delivery; it may add more to coalesce.
            await asyncio.sleep(0)


class EventDispatcher:
    """Registry of subscriptions; `publish` is what the daemon calls after each state write."""

    def __init__(self, volume_spike_min_size: int = 500, volume_spike_oi_fraction: float = 0.25):
        self._subscriptions: list[Subscription] = []
        self._by_kind: dict[EventKind, list[Subscription]] = {kind: [] for kind in EventKind}
        self._running = False
        self.volume_spike_min_size = volume_spike_min_size
        self.volume_spike_oi_fraction = volume_spike_oi_fraction
        self.published = dict.fromkeys(EventKind, 0)

    def subscribe(self, name: str, kinds: Iterable[EventKind], handler: Handler) -> Subscription:
        """Register `handler` (sync or async) for `kinds`; it runs in its own task."""
        subscription = Subscription(name, frozenset(kinds), handler)
        self._subscriptions.append(subscription)
        for kind in subscription.kinds:
            self._by_kind[kind].append(subscription)
        if self._running:
            subscription.start()
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)
        for kind in subscription.kinds:
            self._by_kind[kind].remove(subscription)
        await subscription.stop()

    def start(self) -> None:
        """Start delivery tasks (needs a running loop)."""
        self._running = True
        for subscription in self._subscriptions:
            subscription.start()

    async def stop(self) -> None:
        self._running = False
        for subscription in self._subscriptions:
            await subscription.stop()

    def publish(self, kind: EventKind, seq: int, ids: np.ndarray) -> None:
        """Hand changed ids of one kind to every interested subscriber. Never blocks."""
        if len(ids) == 0:
            return
        self.published[kind] += 1
        for subscription in self._by_kind[kind]:
            subscription.offer(kind, seq, ids)

    def publish_changes(
        self, changes: Changes, trades: np.ndarray | None, open_interest: np.ndarray
    ) -> None:
        """Publish everything one applied batch changed, volume spikes included.

        `trades` are the batch's trade records and `open_interest` the state's open interest
        column (for the spike threshold).
        """
        seq = changes.seq
        self.publish(EventKind.UNDERLYING, seq, changes.underlying_ids)
        self.publish(EventKind.QUOTE, seq, changes.quote_rows)
        self.publish(EventKind.TRADE, seq, changes.trade_rows)
        self.publish(EventKind.OPEN_INTEREST, seq, changes.open_interest_rows)
        if trades is not None and len(changes.trade_rows) and self._by_kind[EventKind.VOLUME_SPIKE]:
            spikes = volume_spikes(
                trades,
                open_interest,
                self.volume_spike_min_size,
                self.volume_spike_oi_fraction,
            )
            self.publish(EventKind.VOLUME_SPIKE, seq, spikes)

    def stats(self) -> list[dict]:
        """Per-subscription queue depth and delivery counters (for `flashalpha status`)."""
        return [
            {
                "name": s.name,
                "pending": s.pending,
                "delivered": s.delivered,
                "coalesced": s.coalesced,
                "errors": s.errors,
            }
            for s in self._subscriptions
        ]


def volume_spikes(
    trades: np.ndarray, open_interest: np.ndarray, min_size: int, oi_fraction: float
) -> np.ndarray:
    """Rows with a trade of at least `min_size` contracts and `oi_fraction` of open interest.

    A block that is large in absolute terms but small against a deep open interest is routine;
    one that is large against both is the "unusual activity" traders scan for.
    """
    if trades.dtype != TRADE_DTYPE:
        raise TypeError(f"trades must have TRADE_DTYPE, got {trades.dtype}")
    rows = trades["row"]
    known = rows < len(open_interest)
    rows, sizes = rows[known], trades["size"][known]
    threshold = np.maximum(min_size, oi_fraction * open_interest[rows])
    return np.unique(rows[sizes >= threshold]).astype(np.uint32)
