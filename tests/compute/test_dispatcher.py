"""The dispatcher in-process over real ZeroMQ sockets, against peers speaking the protocol.

The peers here are test programs on DEALER sockets (what any worker implementation is to the
dispatcher); they answer with values derived from each row's own inputs, so a result written
to the wrong row, or a result that should have been dropped, is visible in the state.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import numpy as np
import pytest
import zmq
import zmq.asyncio

from flashalpha.compute import protocol
from flashalpha.compute.dispatcher import Dispatcher
from flashalpha.compute.protocol import Kind
from flashalpha.config import ComputeConfig
from flashalpha.state.events import EventKind
from flashalpha.state.layout import PricingStatus

from .conftest import make_market, quote_market

FAST = ComputeConfig(
    heartbeat_interval=0.2,
    heartbeat_liveness=10,  # 2 s: generous for a loaded test machine
    batch_timeout=3.0,
    deadline_factor=1.0,
    sweep_interval=3600,
    min_batch=16,
    initial_batch=64,
    max_batch=64,
)


def answer(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs that identify the row they were computed for: iv = strike / 1000."""
    n = len(inputs["strike"])
    out = {name: np.full(n, 0.5) for name, _ in protocol.RESULT_COLUMNS}
    out["iv"] = inputs["strike"] / 1000
    out["theo"] = inputs["spot"] + inputs["years"]
    out["pricing_status"] = np.full(n, PricingStatus.OK, np.uint8)
    return out


class Peer:
    """A worker written against docs/PROTOCOL.md, driven step by step by the test."""

    def __init__(self, endpoint: str, credit: int = 2, name: str = "peer") -> None:
        self.context = zmq.asyncio.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.credit = credit
        self.name = name
        self.silent = False
        self._beats = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(FAST.heartbeat_interval / 2)
            if not self.silent:
                await self.heartbeat()

    async def send(self, frames: list) -> None:
        await self.socket.send_multipart(frames)

    async def ready(self) -> None:
        await self.send(
            protocol.encode(
                Kind.READY, protocol.Ready(self.name, 1, self.credit, FAST.heartbeat_interval)
            )
        )

    async def receive(self, kinds=(Kind.BATCH,), timeout: float = 5.0) -> protocol.Message:
        """The next message of one of `kinds` (heartbeats answered on the way)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {kinds} within {timeout}s")
            if not await self.socket.poll(int(left * 1000)):
                continue
            message = protocol.decode(await self.socket.recv_multipart())
            if message.kind in kinds:
                return message

    async def heartbeat(self) -> None:
        await self.send(protocol.encode(Kind.HEARTBEAT, protocol.Heartbeat(time.time_ns())))

    async def reply(self, batch: protocol.Message, outputs=None) -> None:
        outputs = answer(batch.arrays) if outputs is None else outputs
        await self.send(protocol.encode_result(batch.header.batch, 1000, outputs))

    async def serve(self, until, timeout: float = 30.0) -> int:
        """Answer batches until `until()`; return how many."""
        served = 0
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: condition not met within {timeout}s")
            try:
                batch = await self.receive(timeout=0.2)
            except TimeoutError:
                continue
            await self.reply(batch)
            served += 1
        return served

    def close(self) -> None:
        self._beats.cancel()
        self.socket.close(0)


@pytest.fixture
async def fleet(market_state):
    """(dispatcher, published events, make_peer) around a running dispatcher task."""
    published: list[tuple[EventKind, int, np.ndarray]] = []
    dispatcher = Dispatcher(
        FAST, market_state, lambda kind, seq, ids: published.append((kind, seq, ids.copy()))
    )
    endpoint = dispatcher.bind("tcp://127.0.0.1:*")
    task = asyncio.get_running_loop().create_task(dispatcher.run())
    peers: list[Peer] = []

    def make_peer(**kwargs) -> Peer:
        peer = Peer(endpoint, **kwargs)
        peers.append(peer)
        return peer

    yield dispatcher, published, make_peer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for peer in peers:
        peer.close()
    dispatcher.close()


async def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def all_priced(state) -> bool:
    return bool((state.column("pricing_status") == PricingStatus.OK).all())


async def test_a_sweep_prices_every_row_with_its_own_result(fleet, market_state):
    dispatcher, published, make_peer = fleet
    make_market(market_state, 300)
    peer = make_peer(credit=3)
    await peer.ready()
    served = await peer.serve(lambda: dispatcher.queue.sweeps_completed >= 1)
    state = market_state
    assert served >= 300 // FAST.max_batch
    np.testing.assert_array_equal(state.column("iv"), state.column("strike") / 1000)
    np.testing.assert_array_equal(state.column("theo") > 100.0, True)
    assert (state.column("seq_greeks") == state.seq).all()
    assert (state.column("ts_greeks") > 0).all()
    greeks = np.concatenate([ids for kind, _, ids in published if kind is EventKind.GREEKS])
    assert sorted(greeks.tolist()) == list(range(300))
    status = dispatcher.status()
    assert status["rows_priced"] == 300 and status["full_sweep_s"] is not None
    assert status["repricing_lag_s"] == 0.0 and status["batches_in_flight"] == 0


async def test_credit_bounds_the_batches_a_worker_holds(fleet, market_state):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 1000)
    slow = make_peer(credit=2, name="slow")
    await slow.ready()
    held = [await slow.receive(), await slow.receive()]
    with pytest.raises(TimeoutError):
        await slow.receive(timeout=0.4)
    assert dispatcher.status()["batches_in_flight"] == 2
    await slow.reply(held[0])
    await slow.receive()  # one answered, one more granted


async def test_a_late_batch_is_requeued_and_its_late_result_discarded(fleet, market_state):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 40)
    late = make_peer(credit=1, name="late")
    await late.ready()
    batch = await late.receive()
    assert batch.header.rows == 40
    # It keeps heartbeating but sits on the batch past its deadline.
    await wait_for(lambda: dispatcher.requeues_by_reason.get("late") == 1)
    prompt = make_peer(credit=1, name="prompt")
    await prompt.ready()
    await prompt.serve(lambda: all_priced(market_state))
    iv = market_state.column("iv").copy()
    # The late answer, with values that would show if it were written.
    outputs = answer(batch.arrays)
    outputs["iv"][:] = 9.0
    await late.reply(batch, outputs)
    await wait_for(lambda: dispatcher.late_results == 1)
    np.testing.assert_array_equal(market_state.column("iv"), iv)
    assert dispatcher.rejects == 0
    # Its credit is back: it gets work again.
    dispatcher.mark_rows(np.arange(5, dtype=np.uint32))
    assert (await late.receive()).header.rows == 5


async def test_a_silent_worker_is_declared_dead_and_its_batches_go_to_others(fleet, market_state):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 200)
    silent = make_peer(credit=2, name="silent")
    silent.silent = True
    await silent.ready()
    await silent.receive()
    await wait_for(lambda: dispatcher.requeues_by_reason.get("dead", 0) >= 1, timeout=20)
    assert dispatcher.status()["workers"] == 0
    assert dispatcher.departed[-1]["reason"].startswith("dead")
    survivor = make_peer(credit=2, name="survivor")
    await survivor.ready()
    await survivor.serve(lambda: dispatcher.queue.sweeps_completed >= 1)
    assert all_priced(market_state)


GARBAGE = {
    "wrong version": lambda batch: [
        b"\x09",
        *protocol.encode_result(batch.header.batch, 1, answer(batch.arrays))[1:],
    ],
    "unknown kind": lambda batch: [b"\x01", b"\x2a", msgspec.msgpack.encode({})],
    "wrong lengths": lambda batch: [
        *protocol.encode_result(batch.header.batch, 1, answer(batch.arrays))[:-1],
        b"\x01",
    ],
    "NaN frames": lambda batch: protocol.encode_result(
        batch.header.batch, 1, {**answer(batch.arrays), "delta": np.full(batch.header.rows, np.nan)}
    ),
    "rows of another batch": lambda batch: protocol.encode_result(
        batch.header.batch, 1, {k: v[:-1] for k, v in answer(batch.arrays).items()}
    ),
    "batch it does not hold": lambda batch: protocol.encode_result(
        batch.header.batch + 1000, 1, answer(batch.arrays)
    ),
    "undecodable header": lambda batch: [b"\x01", b"\x04", b"\xff\xfe"],
}


@pytest.mark.parametrize("garbage", list(GARBAGE))
async def test_garbage_is_rejected_the_worker_dropped_and_its_batch_requeued(
    fleet, market_state, garbage
):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 100)
    bad = make_peer(credit=1, name="bad")
    await bad.ready()
    batch = await bad.receive()
    await bad.send(GARBAGE[garbage](batch))
    disconnect = await bad.receive(kinds=(Kind.DISCONNECT,))
    assert disconnect.header.reason
    status = dispatcher.status()
    assert status["rejects"] == 1 and status["workers"] == 0
    assert status["requeues_by_reason"] == {"rejected": 1}
    assert "bad" in status["last_reject"]
    # Nothing it sent was written, and the fleet goes on with an honest worker.
    assert not (market_state.column("pricing_status") == PricingStatus.OK).any()
    good = make_peer(name="good")
    await good.ready()
    await good.serve(lambda: dispatcher.queue.sweeps_completed >= 1)
    np.testing.assert_array_equal(market_state.column("iv"), market_state.column("strike") / 1000)


async def test_an_unknown_worker_is_told_to_say_ready(fleet, market_state):
    _, _, make_peer = fleet
    stranger = make_peer(name="stranger")
    await stranger.heartbeat()
    message = await stranger.receive(kinds=(Kind.DISCONNECT,))
    assert "READY" in message.header.reason


async def test_a_row_quoted_while_in_flight_keeps_its_greeks_and_is_priced_again(
    fleet, market_state
):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 50)
    peer = make_peer(credit=1)
    await peer.ready()
    await peer.serve(lambda: dispatcher.queue.sweeps_completed >= 1)
    first_seq = int(market_state.column("seq_greeks")[7])
    dispatcher.mark_rows(np.arange(50, dtype=np.uint32))
    batch = await peer.receive()
    assert batch.header.rows == 50
    # Row 7 gets a new quote after the batch was cut; its greeks are fresh (< max_greeks_age).
    seq = quote_market(market_state, np.array([7], np.uint32), np.array([3.0]), 100.0)
    await peer.reply(batch)
    await wait_for(lambda: dispatcher.rows_changed == 1)
    assert market_state.column("seq_greeks")[7] == first_seq  # the stale result was dropped
    assert dispatcher.queue.since[7] >= batch.header.ts  # stale since the change after the cut
    assert market_state.column("seq_greeks")[6] == batch.header.seq
    await peer.serve(lambda: market_state.column("seq_greeks")[7] == seq)
    assert market_state.column("iv")[7] == market_state.column("strike")[7] / 1000
    assert dispatcher.rows_behind_quote == 0


async def test_a_contract_ticking_faster_than_it_is_priced_still_gets_greeks(fleet, market_state):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 50)
    peer = make_peer(credit=1)
    await peer.ready()
    batch = await peer.receive()
    # Row 7 ticks while its first pricing is in flight: it has no greeks at all yet.
    seq = quote_market(market_state, np.array([7], np.uint32), np.array([3.0]), 100.0)
    await peer.reply(batch)
    await wait_for(lambda: dispatcher.rows_behind_quote == 1)
    assert market_state.column("seq_greeks")[7] == batch.header.seq  # written, and says so
    assert market_state.column("pricing_status")[7] == PricingStatus.OK
    await peer.serve(lambda: market_state.column("seq_greeks")[7] == seq)  # and priced again


async def test_an_older_result_never_overwrites_newer_greeks(fleet, market_state):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 20)
    peer = make_peer(credit=4)
    await peer.ready()
    older = [await peer.receive(), await peer.receive()]  # the sweep, cut in two
    assert sum(b.header.rows for b in older) == 20
    # The spot moves (no quote changes): every row is due again, priced at a newer seq.
    seq = quote_market(market_state, np.empty(0, np.uint32), np.empty(0), 101.0)
    dispatcher.mark_underlyings(np.array([0], np.uint32))
    newer = [await peer.receive(), await peer.receive()]
    assert {b.header.seq for b in newer} == {seq} and {b.header.seq for b in older} == {seq - 1}
    for batch in newer:
        await peer.reply(batch)
    await wait_for(lambda: dispatcher.rows_priced == 20)
    theo = market_state.column("theo").copy()
    assert (theo > 101.0).all()
    for batch in older:
        await peer.reply(batch)
    await wait_for(lambda: dispatcher.rows_superseded == 20)
    np.testing.assert_array_equal(market_state.column("theo"), theo)
    assert (market_state.column("seq_greeks") == seq).all()


async def test_a_worker_that_disconnects_returns_its_batches(fleet, market_state):
    dispatcher, _, make_peer = fleet
    make_market(market_state, 100)
    leaving = make_peer(credit=2, name="leaving")
    await leaving.ready()
    await leaving.receive()
    await leaving.send(protocol.encode(Kind.DISCONNECT, protocol.Disconnect("stopping")))
    await wait_for(lambda: dispatcher.requeues_by_reason.get("disconnect", 0) >= 1)
    assert dispatcher.departed[-1]["reason"] == "disconnect"
    stayer = make_peer(name="stayer")
    await stayer.ready()
    await stayer.serve(lambda: dispatcher.queue.sweeps_completed >= 1)
    assert all_priced(market_state)


def test_binding_a_busy_address_is_reported_not_fatal_unless_required(market_state):
    first = Dispatcher(FAST, market_state, lambda *a: None)
    endpoint = first.bind("tcp://127.0.0.1:*")
    second = Dispatcher(FAST, market_state, lambda *a: None)
    try:
        assert second.bind(endpoint, required=False) is None
        assert "cannot bind" in second.status()["bind_errors"][0]
        with pytest.raises(ValueError, match=f"cannot bind {endpoint}"):
            second.bind(endpoint)
    finally:
        first.close()
        second.close()


def test_an_underlying_move_queues_its_rows_including_ones_listed_later(market_state):
    make_market(market_state, 100)
    dispatcher = Dispatcher(FAST, market_state, lambda *a: None)
    try:
        dispatcher.mark_underlyings(np.array([0], np.uint32))
        assert sorted(dispatcher.queue.take(1000, 0).row_ids().tolist()) == list(range(100))
        option_static = {
            "osi": np.array([b"SPY   270115C00999000"] * 3),
            "underlying_id": np.zeros(3, np.uint32),
            "expiry": np.full(3, 20_500, np.int32),
            "strike": np.full(3, 99.0),
            "right": np.ones(3, np.uint8),
            "style": np.ones(3, np.uint8),
            "multiplier": np.full(3, 100, np.float32),
        }
        market_state.add_listings(option_static, {})
        dispatcher.mark_underlyings(np.array([0, 5], np.uint32))  # 5: no such underlying
        assert sorted(dispatcher.queue.take(1000, 0).row_ids().tolist()) == list(range(103))
    finally:
        dispatcher.close()
