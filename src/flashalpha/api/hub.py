"""The market hub: SignalR connections at /hubs/market, topics, conflated pushes.

Data flow (docs/PROTOCOL.md, "Hub protocol"): the EventDispatcher hands the hub changed option
rows (quotes, trades, open interest, greeks) and underlying ids. The hub only collects them and
schedules a flush, at most one per `push_interval_ms`. A flush maps the changed rows to topics
with numpy (row → underlying id → subscribed chain), reads the affected rows once through the
StateReader, renders each topic's update once, encodes it once per protocol, and offers the same
bytes to every subscriber.

Every connection has its own writer task and a bounded queue. A connection whose queue holds
`send_buffer_bytes` or more stops queueing: its updates are conflated per contract (the row ids
are remembered, the values are read again when the writer catches up, so the client gets the
latest value of each contract in one coalesced update). A connection whose writer makes no
progress for `slow_client_timeout` seconds is sent a Close message and dropped. Nothing on
this path awaits a client; the flush is synchronous and bounded by the number of changed rows
and subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from flashalpha.api.schemas import contract_structs, underlying_rows
from flashalpha.api.signalr import (
    HubMessage,
    HubProtocol,
    MessageType,
    ProtocolError,
    handshake_response,
    negotiate_response,
    new_connection_id,
    parse_handshake,
    protocol_for,
    split_handshake,
)
from flashalpha.config import HubConfig
from flashalpha.instruments import parse_symbol
from flashalpha.state.events import Event, EventDispatcher, EventKind
from flashalpha.state.reader import StateReader
from flashalpha.state.rows import sort_chain

if TYPE_CHECKING:
    from litestar import WebSocket

log = logging.getLogger(__name__)

#: Event kinds that change what the hub shows.
HUB_EVENT_KINDS = (
    EventKind.QUOTE,
    EventKind.TRADE,
    EventKind.UNDERLYING,
    EventKind.GREEKS,
    EventKind.OPEN_INTEREST,
)
TOPIC_KINDS = ("chain", "contract", "underlying")
_TOPIC_HELP = "expected chain:UNDERLYING, contract:SYMBOL or underlying:SYMBOL"
_METHODS = ("Subscribe", "Unsubscribe")
#: A negotiated connection token stays valid this long before it is used (and after its
#: connection ended, so that clients which reconnect with the same id get a new connection).
TOKEN_TTL = 60.0
MAX_TOKENS = 100_000
#: Seconds a server-initiated close may wait for a client to read its Close message.
CLOSE_TIMEOUT = 10.0
_EMPTY = np.empty(0, np.uint32)


class HubError(Exception):
    """An invocation failed; the message goes back to the client in the completion."""


@dataclass(eq=False)
class Topic:
    """A subscribable stream: `chain` (key: underlying id), `contract` (row), `underlying` (id)."""

    name: str
    kind: str
    key: int
    subscribers: dict[Connection, None] = field(default_factory=dict)


class Frame:
    """One update of one topic, encoded once per protocol and shared by its subscribers."""

    __slots__ = ("_events", "greeks", "ids", "payload", "seq", "topic")

    def __init__(self, topic: Topic, seq: int, greeks: bool, ids: np.ndarray, payload: dict):
        self.topic = topic
        self.seq = seq
        self.greeks = greeks
        self.ids = ids
        self.payload = payload
        self._events: dict[str, tuple[dict, int]] = {}

    def event(self, protocol: HubProtocol) -> tuple[dict, int]:
        cached = self._events.get(protocol.name)
        if cached is None:
            cached = _send_event(protocol, protocol.invocation("update", [self.payload]))
            self._events[protocol.name] = cached
        return cached


class Snapshot:
    """A topic's snapshot payload, encoded once per protocol and shared while the state holds
    it (same seq, no greeks written since): a reconnect storm renders each chain once."""

    __slots__ = ("_encoded", "greeks", "payload", "seq")

    def __init__(self, payload: dict, greeks: int) -> None:
        self.payload = payload
        self.seq: int = payload["seq"]
        self.greeks = greeks
        self._encoded: dict[str, bytes] = {}

    def encoded(self, protocol: HubProtocol) -> bytes:
        data = self._encoded.get(protocol.name)
        if data is None:
            data = self._encoded[protocol.name] = protocol.encode_argument(self.payload)
        return data


def _send_event(protocol: HubProtocol, data: bytes) -> tuple[dict, int]:
    """The ASGI send event of one frame (text for JSON, binary for MessagePack), its size."""
    if protocol.binary:
        return {"type": "websocket.send", "bytes": data}, len(data)
    return {"type": "websocket.send", "text": data.decode()}, len(data)


@dataclass
class HubStats:
    """Cumulative counters (the /metrics endpoint and `flashalpha status` read them)."""

    connections_opened: int = 0
    connections_closed: int = 0
    slow_closed: int = 0
    timed_out: int = 0
    protocol_errors: int = 0
    invocations: int = 0
    snapshots: int = 0
    snapshots_shared: int = 0
    invocation_errors: int = 0
    flushes: int = 0
    flush_seconds: float = 0.0
    updates: int = 0
    conflated: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0


class Connection:
    """One SignalR connection: protocol, subscriptions, bounded queue, writer task."""

    def __init__(self, hub: MarketHub, socket: WebSocket, connection_id: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        self.hub = hub
        self.socket = socket
        self.id = connection_id
        self.token = token
        self.protocol: HubProtocol | None = None
        self._handshake = b""
        #: Subscribed topics → seq of the snapshot the client got: updates no newer than it
        #: (and without greeks) hold nothing the snapshot did not.
        self.topics: dict[Topic, int] = {}
        self.queue: deque[tuple[dict, int]] = deque()
        self.queued_bytes = 0
        #: Conflated updates waiting for the writer: topic → changed ids.
        self.pending: dict[Topic, list[np.ndarray]] = {}
        self.opened = self.last_received = self.last_sent = loop.time()
        #: When the send in progress started (None when the writer is idle).
        self.sending_since: float | None = None
        self.closing = False
        self.finished: asyncio.Future = loop.create_future()
        self._wake = asyncio.Event()
        self.writer = loop.create_task(self._write_loop(), name=f"hub-writer-{connection_id}")
        self._closer: asyncio.Task | None = None

    # -- outgoing -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue one encoded frame (handshake, completion, ping), never refused."""
        if self.closing:
            return
        event, size = _send_event(self.protocol, data)
        self._enqueue(event, size)

    def _enqueue(self, event: dict, size: int) -> None:
        self.queue.append((event, size))
        self.queued_bytes += size
        self._wake.set()

    def offer(self, frame: Frame) -> None:
        """Queue a shared update frame, or conflate it if this connection is behind."""
        topic = frame.topic
        held = self.topics.get(topic)
        if held is None or self.closing:
            return
        if frame.seq <= held and not frame.greeks:
            # Every change in it happened at or before the snapshot's seq, and the snapshot
            # was read from a state that held them. (Only the snapshot's seq may be used so:
            # a later frame can carry changes delivered late at an unchanged seq.)
            return
        if self.pending or self.queued_bytes >= self.hub.config.send_buffer_bytes:
            self.pending.setdefault(topic, []).append(frame.ids)
            self.hub.stats.conflated += 1
            self._wake.set()
            return
        event, size = frame.event(self.protocol)
        self.hub.stats.updates += 1
        self._enqueue(event, size)

    def _render_pending(self) -> None:
        pending, self.pending = self.pending, {}
        for topic, parts in pending.items():
            if topic not in self.topics:
                continue
            ids = np.unique(np.concatenate(parts)) if parts else _EMPTY
            payload = self.hub.render(topic, ids)
            event, size = _send_event(self.protocol, self.protocol.invocation("update", [payload]))
            self.hub.stats.updates += 1
            self._enqueue(event, size)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.hub.stats
        try:
            while True:
                if not self.queue:
                    if self.pending:
                        self._render_pending()
                        continue
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                event, size = self.queue.popleft()
                self.sending_since = loop.time()
                await self.socket.send(event)
                self.sending_since = None
                self.queued_bytes -= size
                self.last_sent = loop.time()
                stats.messages_sent += 1
                stats.bytes_sent += size
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the peer went away; the reader sees the disconnect
            log.debug("hub connection %s send failed: %r", self.id, error)
            self.close_now()

    # -- closing --------------------------------------------------------------------------------

    def close(self, error: str | None = None, allow_reconnect: bool = False) -> None:
        """Server-initiated close: drop queued updates, send a Close message, close the socket."""
        if self.closing:
            return
        self.closing = True
        self.hub.unsubscribe_all(self)
        self.queue.clear()
        self.pending.clear()
        self.writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(
            self._close(error, allow_reconnect), name=f"hub-close-{self.id}"
        )

    async def _close(self, error: str | None, allow_reconnect: bool) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer
        try:
            if self.protocol is not None:
                event, _ = _send_event(self.protocol, self.protocol.close(error, allow_reconnect))
                await asyncio.wait_for(self.socket.send(event), CLOSE_TIMEOUT)
            await asyncio.wait_for(self.socket.close(code=1000), CLOSE_TIMEOUT)
        except Exception as exception:
            log.debug("hub connection %s did not close cleanly: %r", self.id, exception)
        finally:
            self.close_now()

    def close_now(self) -> None:
        """Stop serving this connection (its reader returns)."""
        if not self.finished.done():
            self.finished.set_result(None)

    @property
    def closed_task(self) -> asyncio.Task | None:
        return self._closer


class MarketHub:
    """Topics, connections and the flush that fans updates out to them."""

    def __init__(self, reader: StateReader, dispatcher: EventDispatcher, config: HubConfig) -> None:
        self.reader = reader
        self.dispatcher = dispatcher
        self.config = config
        self.stats = HubStats()
        self.connections: dict[str, Connection] = {}
        self.topics: dict[str, Topic] = {}
        self._chains: dict[int, Topic] = {}
        self._contracts: dict[int, Topic] = {}
        self._underlyings: dict[int, Topic] = {}
        segment = reader.segment
        self._row_underlying = segment.option_column("underlying_id")
        self._chain_mask = np.zeros(segment.layout.underlying_capacity, bool)
        self._contract_keys = _EMPTY
        self._tokens: dict[str, tuple[str, float]] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._greeks_written = 0
        self._rows: list[np.ndarray] = []
        self._greeks: list[np.ndarray] = []
        self._uids: list[np.ndarray] = []
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        self._interval = config.push_interval_ms / 1000.0
        self._subscription = None
        self._housekeeping: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._subscription = self.dispatcher.subscribe("hub", HUB_EVENT_KINDS, self._on_event)
        self._housekeeping = self._loop.create_task(self._keep_house(), name="hub-housekeeping")

    async def stop(self) -> None:
        """Close every connection (Close message, allowReconnect) and leave the dispatcher."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        connections = list(self.connections.values())
        for connection in connections:
            connection.close("Server is shutting down.", allow_reconnect=True)
        closers = [c.closed_task for c in connections if c.closed_task is not None]
        if closers:
            await asyncio.wait(closers, timeout=2.0)
        if self._subscription is not None:
            await self.dispatcher.unsubscribe(self._subscription)
            self._subscription = None

    def status(self) -> dict:
        stats = self.stats
        return {
            "connections": len(self.connections),
            "topics": len(self.topics),
            "subscriptions": sum(len(t.subscribers) for t in self.topics.values()),
            "updates": stats.updates,
            "conflated": stats.conflated,
            "messages_sent": stats.messages_sent,
            "bytes_sent": stats.bytes_sent,
            "slow_closed": stats.slow_closed,
        }

    # -- negotiate ------------------------------------------------------------------------------

    def negotiate(self, version: int) -> dict:
        """Reserve a connection; the client connects with `id` = its token (v1) or id (v0)."""
        connection_id = new_connection_id()
        token = new_connection_id() if version >= 1 else connection_id
        if len(self._tokens) >= MAX_TOKENS:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[token] = (connection_id, time.monotonic() + TOKEN_TTL)
        return negotiate_response(version, connection_id, token)

    def _claim(self, token: str | None) -> tuple[str, str] | int:
        """(connection id, token) for a WebSocket, or the HTTP status refusing it."""
        if token is None:  # skipNegotiation: a new connection
            connection_id = new_connection_id()
            return connection_id, connection_id
        if token in self.connections:
            return 409
        entry = self._tokens.pop(token, None)
        if entry is None or entry[1] < time.monotonic():
            return 404
        return entry[0], token

    # -- topics ---------------------------------------------------------------------------------

    def resolve(self, name: object) -> tuple[str, str, int]:
        """(canonical name, kind, key) of a topic; HubError naming what is wrong."""
        if not isinstance(name, str):
            raise HubError(f"topic must be a string, got {type(name).__name__}: {_TOPIC_HELP}")
        kind, sep, key = name.partition(":")
        kind = kind.strip().lower()
        key = key.strip()
        if not sep or not key or kind not in TOPIC_KINDS:
            raise HubError(f"unknown topic '{name}': {_TOPIC_HELP}")
        if kind == "contract":
            try:
                contract = parse_symbol(key)
            except ValueError as error:
                raise HubError(f"invalid contract in topic '{name}': {error}") from None
            try:
                row = self.reader.row_of_osi(contract.osi())
            except KeyError:
                raise HubError(
                    f"unknown contract '{contract.polygon()}' in topic '{name}'"
                ) from None
            return f"contract:{contract.polygon()}", kind, row
        symbol = key.upper()
        try:
            uid = self.reader.underlying_id(symbol)
        except KeyError:
            raise HubError(f"unknown underlying '{symbol}' in topic '{name}'") from None
        return f"{kind}:{symbol}", kind, uid

    def _topic(self, name: str, kind: str, key: int) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic(name, kind, key)
            if kind == "chain":
                self._chains[key] = topic
                self._chain_mask[key] = True
            elif kind == "contract":
                self._contracts[key] = topic
                self._contract_keys = np.array(sorted(self._contracts), np.uint32)
            else:
                self._underlyings[key] = topic
        return topic

    def _release(self, topic: Topic) -> None:
        if topic.subscribers or self.topics.get(topic.name) is not topic:
            return
        del self.topics[topic.name]
        self._snapshots.pop(topic.name, None)
        if topic.kind == "chain":
            del self._chains[topic.key]
            self._chain_mask[topic.key] = False
        elif topic.kind == "contract":
            del self._contracts[topic.key]
            self._contract_keys = np.array(sorted(self._contracts), np.uint32)
        else:
            del self._underlyings[topic.key]

    def subscribe(self, connection: Connection, name: object) -> Snapshot:
        """Subscribe and return the snapshot `{topic, seq, rows}` (plus `underlying` for chains)."""
        topic = self._topic(*self.resolve(name))
        snapshot = self._snapshots.get(topic.name)
        if (
            snapshot is not None
            and snapshot.seq == self.reader.seq
            and snapshot.greeks == self._greeks_written
        ):
            self.stats.snapshots_shared += 1
        else:
            snapshot = Snapshot(self.snapshot(topic), self._greeks_written)
            self._snapshots[topic.name] = snapshot
            self.stats.snapshots += 1
        topic.subscribers[connection] = None
        connection.topics[topic] = snapshot.seq
        connection.pending.pop(topic, None)
        return snapshot

    def unsubscribe(self, connection: Connection, name: object) -> None:
        canonical, _, _ = self.resolve(name)
        topic = self.topics.get(canonical)
        if topic is None:
            return
        topic.subscribers.pop(connection, None)
        connection.topics.pop(topic, None)
        connection.pending.pop(topic, None)
        self._release(topic)

    def unsubscribe_all(self, connection: Connection) -> None:
        for topic in list(connection.topics):
            topic.subscribers.pop(connection, None)
            self._release(topic)
        connection.topics.clear()

    # -- rendering ------------------------------------------------------------------------------

    def _underlying_symbols(self) -> np.ndarray:
        reader = self.reader
        return np.asarray(reader.segment.underlying_column("symbol")[: reader.underlying_count])

    def snapshot(self, topic: Topic) -> dict:
        """Every row of a topic, consistent, at the current seq (chains ordered as traders read)."""
        reader = self.reader
        seq = reader.seq
        if topic.kind == "underlying":
            return {"topic": topic.name, "seq": seq, "rows": self._underlying(topic.key)}
        if topic.kind == "contract":
            rows = np.array([topic.key], np.uint32)
            records = reader.read_rows(rows)
            return {
                "topic": topic.name,
                "seq": seq,
                "rows": contract_structs(records, self._underlying_symbols()),
            }
        records = sort_chain(reader.read_rows(reader.rows_of_underlying(topic.key)))
        return {
            "topic": topic.name,
            "seq": seq,
            "underlying": self._underlying(topic.key)[0],
            "rows": contract_structs(records, self._underlying_symbols()),
        }

    def render(self, topic: Topic, ids: np.ndarray) -> dict:
        """An update of `topic` with the current values of `ids` (a conflated update)."""
        reader = self.reader
        seq = reader.seq
        if topic.kind == "underlying":
            return {"topic": topic.name, "seq": seq, "rows": self._underlying(topic.key)}
        rows = ids[ids < reader.count].astype(np.uint32)
        records = reader.read_rows(rows)
        payload: dict[str, Any] = {"topic": topic.name, "seq": seq}
        if topic.kind == "chain":
            payload["underlying"] = self._underlying(topic.key)[0]
        payload["rows"] = contract_structs(records, self._underlying_symbols())
        return payload

    def _underlying(self, uid: int) -> list[dict]:
        return underlying_rows(self.reader.read_underlyings()[uid : uid + 1])

    # -- the push path --------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Dispatcher handler: remember what changed, schedule a flush. Never blocks."""
        if event.kind is EventKind.GREEKS:
            self._greeks_written += 1  # greeks do not move the seq: snapshots must know
        if not self.topics:
            return
        if event.kind is EventKind.UNDERLYING:
            self._uids.append(event.ids)
        elif event.kind is EventKind.GREEKS:
            self._greeks.append(event.ids)
        else:
            self._rows.append(event.ids)
        if self._flush_handle is None:
            loop = self._loop
            due = self._last_flush + self._interval
            if due <= loop.time():
                self._flush_handle = loop.call_soon(self.flush)
            else:
                self._flush_handle = loop.call_at(due, self.flush)

    def flush(self) -> None:
        """Render every topic touched since the last flush once, offer it to subscribers."""
        self._flush_handle = None
        self._last_flush = self._loop.time() if self._loop else 0.0
        started = time.perf_counter()
        rows, greeks, uids = _take(self._rows), _take(self._greeks), _take(self._uids)
        if not self.topics:
            return
        try:
            frames = self._frames(rows, greeks, uids)
        except Exception:
            log.exception("hub flush failed; its changes are dropped")
            return
        for frame in frames:
            for connection in frame.topic.subscribers:
                connection.offer(frame)
        self.stats.flushes += 1
        self.stats.flush_seconds += time.perf_counter() - started

    def _frames(self, rows: np.ndarray, greeks: np.ndarray, uids: np.ndarray) -> list[Frame]:
        reader = self.reader
        seq = reader.seq
        if len(greeks):
            rows = np.union1d(rows, greeks).astype(np.uint32)
        if len(rows):
            wanted = self._chain_mask[self._row_underlying[rows]]
            if self._contracts:
                wanted |= np.isin(rows, self._contract_keys)
            rows = rows[wanted]
        chain_uids = [int(u) for u in uids if int(u) in self._chains] if self._chains else []
        frames: list[Frame] = []
        if not len(rows) and not chain_uids and not (self._underlyings and len(uids)):
            return frames
        records = reader.read_rows(rows)
        rendered = contract_structs(records, self._underlying_symbols()) if len(rows) else []
        greek_rows = np.isin(rows, greeks) if len(greeks) else np.zeros(len(rows), bool)
        underlyings = reader.read_underlyings()

        def underlying(uid: int) -> dict:
            return underlying_rows(underlyings[uid : uid + 1])[0]

        if self._chains:
            row_uids = records["underlying_id"]
            order = np.argsort(row_uids, kind="stable")
            group_uids, starts = np.unique(row_uids[order], return_index=True)
            ends = np.append(starts[1:], len(order)) if len(starts) else starts
            groups = {
                int(uid): order[start:end]
                for uid, start, end in zip(group_uids, starts, ends, strict=True)
                if int(uid) in self._chains
            }
            for uid in chain_uids:
                groups.setdefault(uid, np.empty(0, np.intp))
            for uid, index in groups.items():
                topic = self._chains[uid]
                payload = {
                    "topic": topic.name,
                    "seq": seq,
                    "underlying": underlying(uid),
                    "rows": [rendered[i] for i in index.tolist()],
                }
                frames.append(
                    Frame(topic, seq, bool(greek_rows[index].any()), rows[index], payload)
                )
        if self._contracts and len(rows):
            positions = np.flatnonzero(np.isin(rows, self._contract_keys))
            for position in positions.tolist():
                topic = self._contracts[int(rows[position])]
                payload = {"topic": topic.name, "seq": seq, "rows": [rendered[position]]}
                frames.append(
                    Frame(
                        topic,
                        seq,
                        bool(greek_rows[position]),
                        rows[position : position + 1],
                        payload,
                    )
                )
        if self._underlyings and len(uids):
            for uid in uids.tolist():
                topic = self._underlyings.get(uid)
                if topic is not None:
                    payload = {"topic": topic.name, "seq": seq, "rows": [underlying(uid)]}
                    frames.append(Frame(topic, seq, False, _EMPTY, payload))
        return frames

    # -- connections ----------------------------------------------------------------------------

    async def serve(self, socket: WebSocket) -> None:
        """Run one WebSocket connection to the end (the /hubs/market route handler)."""
        claimed = self._claim(socket.query_params.get("id"))
        if isinstance(claimed, int):
            detail = (
                "No Connection with that ID" if claimed == 404 else "Connection ID already in use"
            )
            await reject(socket, claimed, detail)
            return
        connection_id, token = claimed
        await socket.accept()
        connection = Connection(self, socket, connection_id, token)
        self.connections[token] = connection
        self.stats.connections_opened += 1
        try:
            await self._read(connection)
        finally:
            self._drop(connection)

    def _drop(self, connection: Connection) -> None:
        self.unsubscribe_all(connection)
        connection.writer.cancel()
        connection.closing = True
        if self.connections.get(connection.token) is connection:
            del self.connections[connection.token]
            self._tokens[connection.token] = (connection.id, time.monotonic() + TOKEN_TTL)
        self.stats.connections_closed += 1

    async def _read(self, connection: Connection) -> None:
        socket = connection.socket
        loop = asyncio.get_running_loop()
        limit = self.config.max_message_bytes
        while not connection.finished.done():
            receive = loop.create_task(socket.receive())
            await asyncio.wait({receive, connection.finished}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                return
            event = receive.result()
            if event["type"] != "websocket.receive":
                return  # websocket.disconnect
            data = event.get("bytes")
            if data is None:
                data = (event.get("text") or "").encode()
            connection.last_received = loop.time()
            try:
                if connection.protocol is None:
                    data = self._handshake(connection, data)
                    if connection.protocol is None:
                        continue
                messages = connection.protocol.feed(data) if data else []
                if connection.protocol.buffered > limit:
                    raise ProtocolError(f"message larger than {limit} bytes")
            except ProtocolError as error:
                self.stats.protocol_errors += 1
                log.info("hub connection %s: %s", connection.id, error)
                if connection.protocol is None:
                    # The handshake failed: answer it with the error, then close.
                    await _send_handshake_error(socket, str(error))
                    connection.close_now()
                    connection.closing = True
                    with contextlib.suppress(Exception):
                        await socket.close(code=1000)
                    return
                connection.close(f"Connection closed with an error. {error}")
                continue
            for message in messages:
                self._dispatch(connection, message)

    def _handshake(self, connection: Connection, data: bytes) -> bytes:
        """Consume the handshake request; returns the data after it (empty while incomplete)."""
        buffered = connection._handshake + data
        record, rest = split_handshake(buffered)
        if record is None:
            if len(buffered) > self.config.max_message_bytes:
                raise ProtocolError("handshake request too large")
            connection._handshake = buffered
            return b""
        connection._handshake = b""
        protocol = protocol_for(parse_handshake(record))
        connection.protocol = protocol
        connection.send(handshake_response())
        return rest

    def _dispatch(self, connection: Connection, message: HubMessage) -> None:
        kind = message.type
        if kind == MessageType.INVOCATION:
            self._invoke(connection, message)
        elif kind == MessageType.STREAM_INVOCATION:
            if message.invocation_id is not None:
                connection.send(
                    connection.protocol.completion(
                        message.invocation_id,
                        error=f"'{message.target}' is not a streaming method: use invoke, not stream",
                    )
                )
        elif kind == MessageType.CLOSE:
            connection.close()
        # Ping keeps the connection alive (last_received); acks, sequence messages, stream
        # items, cancellations and unknown types are ignored, as HubProtocol.md allows.

    def _invoke(self, connection: Connection, message: HubMessage) -> None:
        if connection.closing:
            return
        self.stats.invocations += 1
        target = message.target or ""
        method = target.lower()
        protocol = connection.protocol
        try:
            if method not in ("subscribe", "unsubscribe"):
                raise HubError(f"unknown hub method '{target}': expected {' or '.join(_METHODS)}")
            if len(message.arguments) != 1:
                raise HubError(
                    f"{target} takes one argument (the topic), got {len(message.arguments)}"
                )
            if method == "subscribe":
                result = self.subscribe(connection, message.arguments[0])
            else:
                self.unsubscribe(connection, message.arguments[0])
                result = None
        except HubError as error:
            self.stats.invocation_errors += 1
            if message.invocation_id is not None:
                connection.send(protocol.completion(message.invocation_id, error=str(error)))
            return
        except Exception:
            self.stats.invocation_errors += 1
            log.exception("hub method %s failed", target)
            if message.invocation_id is not None:
                connection.send(
                    protocol.completion(
                        message.invocation_id,
                        error=f"An unexpected error occurred invoking '{target}' on the server.",
                    )
                )
            return
        if result is None:
            if message.invocation_id is not None:
                connection.send(protocol.completion(message.invocation_id))
        elif message.invocation_id is not None:
            connection.send(
                protocol.completion_raw(message.invocation_id, result.encoded(protocol))
            )
        else:
            # A fire-and-forget Subscribe (connection.send) gets its snapshot as an update.
            connection.send(protocol.invocation_raw("update", result.encoded(protocol)))

    # -- housekeeping ---------------------------------------------------------------------------

    async def _keep_house(self) -> None:
        config = self.config
        period = min(0.5, config.keep_alive_interval / 2, config.slow_client_timeout / 2)
        while True:
            await asyncio.sleep(period)
            try:
                self.check_connections()
            except Exception:
                log.exception("hub housekeeping failed")

    def check_connections(self) -> None:
        """Pings, handshake and client timeouts, slow clients, expired tokens."""
        config = self.config
        now = self._loop.time()
        for connection in list(self.connections.values()):
            if connection.closing:
                continue
            if connection.protocol is None:
                if now - connection.opened > config.handshake_timeout:
                    self.stats.timed_out += 1
                    connection.close("Handshake was not received in time.")
                continue
            if now - connection.last_received > config.client_timeout:
                self.stats.timed_out += 1
                connection.close(
                    "Server timeout elapsed without receiving a message from the client."
                )
            elif (
                connection.sending_since is not None
                and now - connection.sending_since > config.slow_client_timeout
            ):
                self.stats.slow_closed += 1
                log.info(
                    "hub connection %s closed: no progress sending for %.1f s",
                    connection.id,
                    now - connection.sending_since,
                )
                connection.close(
                    f"Connection closed: the client read nothing for "
                    f"{config.slow_client_timeout:g} s and fell behind; reconnect and "
                    "subscribe again to continue from a new snapshot.",
                    allow_reconnect=True,
                )
            elif (
                not connection.queue
                and connection.sending_since is None
                and now - connection.last_sent >= config.keep_alive_interval
            ):
                connection.send(connection.protocol.ping())
        if self._tokens:
            clock = time.monotonic()
            for token in [t for t, (_, expires) in self._tokens.items() if expires < clock]:
                del self._tokens[token]


def _take(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return _EMPTY
    merged = np.unique(np.concatenate(parts)) if len(parts) > 1 else np.unique(parts[0])
    parts.clear()
    return merged.astype(np.uint32, copy=False)


async def _send_handshake_error(socket: WebSocket, error: str) -> None:
    with contextlib.suppress(Exception):
        await socket.send({"type": "websocket.send", "text": handshake_response(error).decode()})


async def reject(socket: WebSocket, status: int, detail: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP response if the server can send one."""
    if "websocket.http.response" in (socket.scope.get("extensions") or {}):
        body = detail.encode()
        await socket.send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await socket.send({"type": "websocket.http.response.body", "body": body})
    else:
        await socket.close(code=1008, reason=detail[:120])
