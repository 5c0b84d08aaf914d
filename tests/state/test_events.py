"""The events dispatcher: publish never waits; slow subscribers get coalesced, unique ids."""

from __future__ import annotations

import asyncio

import numpy as np

from flashalpha.state.engine import Changes
from flashalpha.state.events import EventDispatcher, EventKind, volume_spikes
from flashalpha.state.layout import TRADE_DTYPE


async def test_handlers_get_events_after_publish():
    dispatcher = EventDispatcher()
    received = []
    dispatcher.subscribe("quotes", [EventKind.QUOTE], received.append)
    dispatcher.start()
    dispatcher.publish(EventKind.QUOTE, 1, np.array([3, 1, 3], np.uint32))
    dispatcher.publish(EventKind.TRADE, 1, np.array([9], np.uint32))  # not subscribed
    await asyncio.sleep(0.01)
    assert len(received) == 1
    assert received[0].kind is EventKind.QUOTE
    assert received[0].ids.tolist() == [1, 3] and received[0].seq == 1
    await dispatcher.stop()


async def test_slow_subscriber_is_coalesced_and_never_awaited():
    dispatcher = EventDispatcher()
    gate = asyncio.Event()
    slow, fast = [], []

    async def slow_handler(event):
        slow.append(event)
        await gate.wait()

    dispatcher.subscribe("slow", [EventKind.QUOTE], slow_handler)
    dispatcher.subscribe("fast", [EventKind.QUOTE], fast.append)
    dispatcher.start()
    dispatcher.publish(EventKind.QUOTE, 1, np.array([1], np.uint32))
    await asyncio.sleep(0.01)
    assert len(slow) == 1  # now blocked inside its handler
    for seq in range(2, 102):  # the tick path keeps publishing without waiting
        dispatcher.publish(EventKind.QUOTE, seq, np.array([seq % 7], np.uint32))
        await asyncio.sleep(0)
    assert len(fast) > 1
    assert dispatcher.stats()[0]["pending"] == 100
    gate.set()
    await asyncio.sleep(0.01)
    assert len(slow) == 2
    merged = slow[1]
    assert merged.seq == 101 and merged.coalesced == 100
    assert merged.ids.tolist() == list(range(7))
    await dispatcher.stop()


async def test_failing_handler_is_counted_and_keeps_receiving():
    dispatcher = EventDispatcher()
    calls = []

    def handler(event):
        calls.append(event)
        raise RuntimeError("boom")

    subscription = dispatcher.subscribe("bad", [EventKind.TRADE], handler)
    dispatcher.start()
    dispatcher.publish(EventKind.TRADE, 1, np.array([1], np.uint32))
    await asyncio.sleep(0.01)
    dispatcher.publish(EventKind.TRADE, 2, np.array([2], np.uint32))
    await asyncio.sleep(0.01)
    assert len(calls) == 2 and subscription.errors == 2
    await dispatcher.stop()


async def test_publish_changes_routes_every_kind_and_spikes():
    dispatcher = EventDispatcher(volume_spike_min_size=100, volume_spike_oi_fraction=0.5)
    got = {}
    dispatcher.subscribe("all", list(EventKind), lambda e: got.__setitem__(e.kind, e.ids.tolist()))
    dispatcher.start()
    trades = np.zeros(3, TRADE_DTYPE)
    trades["row"], trades["size"] = [0, 1, 2], [150, 150, 10]
    open_interest = np.array([100, 1000, 0], np.uint32)
    changes = Changes(
        5,
        quote_rows=np.array([4], np.uint32),
        trade_rows=np.array([0, 1, 2], np.uint32),
        underlying_ids=np.array([0], np.uint32),
    )
    dispatcher.publish_changes(changes, trades, open_interest)
    await asyncio.sleep(0.01)
    assert got[EventKind.QUOTE] == [4]
    assert got[EventKind.TRADE] == [0, 1, 2]
    assert got[EventKind.UNDERLYING] == [0]
    assert got[EventKind.VOLUME_SPIKE] == [0]  # row 1 is small against its open interest
    await dispatcher.stop()


def test_volume_spikes_ignore_unknown_rows():
    trades = np.zeros(2, TRADE_DTYPE)
    trades["row"], trades["size"] = [0, 99], [1000, 1000]
    assert volume_spikes(trades, np.zeros(1, np.uint32), 500, 0.25).tolist() == [0]
