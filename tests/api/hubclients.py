"""Hub clients for tests: pysignalr (a real SignalR client from PyPI) and a raw WebSocket client.

`PySignalRClient` is what a Python user would run. `RawHubClient` speaks the wire protocol by
hand over a real WebSocket (the `websockets` library) so that tests can do what well-behaved
clients never do: skip the handshake, stop reading, send garbage, use MessagePack.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

import msgspec
import websockets
from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage


class PySignalRClient:
    """pysignalr connected to /hubs/market, collecting `update` messages."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        self.client = SignalRClient(base_url + "/hubs/market", **kwargs)
        self.updates: list[dict] = []
        self.received = asyncio.Event()
        self.errors: list[str] = []
        self._opened = asyncio.Event()
        self._task: asyncio.Task | None = None

        async def on_update(arguments: list) -> None:
            self.updates.append(arguments[0])
            self.received.set()

        async def on_open() -> None:
            self._opened.set()

        async def on_error(message: CompletionMessage) -> None:
            self.errors.append(message.error)

        self.client.on("update", on_update)
        self.client.on_open(on_open)
        self.client.on_error(on_error)

    async def __aenter__(self) -> PySignalRClient:
        self._task = asyncio.get_running_loop().create_task(self.client.run())
        opened = asyncio.ensure_future(self._opened.wait())
        await asyncio.wait({opened, self._task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            opened.cancel()
            self._task.result()  # raises why it stopped
        if not self._opened.is_set():
            raise TimeoutError("pysignalr did not connect")
        return self

    async def __aexit__(self, *exc: object) -> None:
        websocket = self.client._transport._ws  # pysignalr has no public close
        if websocket is not None:
            await websocket.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def invoke(self, method: str, *arguments: Any, timeout: float = 10) -> CompletionMessage:
        done: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_completion(message: CompletionMessage) -> None:
            if not done.done():
                done.set_result(message)

        await self.client.send(method, list(arguments), on_invocation=on_completion)
        return await asyncio.wait_for(done, timeout)

    async def wait_updates(self, count: int, timeout: float = 10, topic: str | None = None) -> list:
        """Wait until at least `count` updates (of `topic`, if given) arrived; return them."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [u for u in self.updates if topic is None or u["topic"] == topic]
            if len(matching) >= count:
                return matching
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(matching)} of {count} updates arrived")
            self.received.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.received.wait(), remaining)


def _decode_msgpack_frame(data: bytes) -> list[dict]:
    messages, offset = [], 0
    while offset < len(data):
        size = shift = 0
        while True:
            byte = data[offset]
            offset += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        raw = msgspec.msgpack.decode(data[offset : offset + size])
        offset += size
        kind = raw[0]
        if kind == 1:
            messages.append({"type": 1, "target": raw[3], "arguments": raw[4]})
        elif kind == 3:
            message = {"type": 3, "invocationId": raw[2]}
            if raw[3] == 1:
                message["error"] = raw[4]
            elif raw[3] == 3:
                message["result"] = raw[4]
            messages.append(message)
        elif kind == 7:
            messages.append({"type": 7, "error": raw[1], "allowReconnect": raw[2]})
        else:
            messages.append({"type": kind})
    return messages


class RawHubClient:
    """The SignalR wire protocol by hand over a real WebSocket."""

    def __init__(self, websocket: Any, protocol: str) -> None:
        self.websocket = websocket
        self.protocol = protocol
        self.inbox: list[dict] = []
        self.frames: list[str | bytes] = []
        self._ids = itertools.count(1)

    @classmethod
    async def connect(
        cls,
        ws_url: str,
        query: str = "",
        protocol: str = "json",
        handshake: bool = True,
        **kwargs: Any,
    ) -> RawHubClient:
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("compression", None)
        websocket = await websockets.connect(f"{ws_url}/hubs/market{query}", **kwargs)
        client = cls(websocket, protocol)
        if handshake:
            response = await client.handshake()
            assert response == {}, response
        return client

    async def handshake(self, protocol: str | None = None) -> dict:
        request = {"protocol": protocol or self.protocol, "version": 1}
        await self.websocket.send(json.dumps(request) + "\x1e")
        frame = await asyncio.wait_for(self.websocket.recv(), 10)
        data = frame.encode() if isinstance(frame, str) else frame
        end = data.index(b"\x1e")
        rest = data[end + 1 :]
        if rest:
            self.inbox.extend(self._decode(rest))
        return json.loads(data[:end])

    def _decode(self, data: str | bytes) -> list[dict]:
        if self.protocol == "messagepack":
            return _decode_msgpack_frame(data)
        if isinstance(data, bytes):
            data = data.decode()
        return [json.loads(record) for record in data.split("\x1e") if record]

    async def send(self, message: Any) -> None:
        if self.protocol == "messagepack":
            body = msgspec.msgpack.encode(message)
            size, prefix = len(body), bytearray()
            while True:
                prefix.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
                size >>= 7
                if not size:
                    break
            await self.websocket.send(bytes(prefix) + body)
        else:
            await self.websocket.send(json.dumps(message) + "\x1e")

    async def next(self, timeout: float = 10) -> dict:
        """The next message (pings included)."""
        if not self.inbox:
            frame = await asyncio.wait_for(self.websocket.recv(), timeout)
            self.frames.append(frame)
            self.inbox.extend(self._decode(frame))
        return self.inbox.pop(0)

    async def invoke(self, target: str, *arguments: Any, timeout: float = 10) -> dict:
        """Invoke and return the completion; messages received meanwhile stay in `held`."""
        invocation_id = str(next(self._ids))
        if self.protocol == "messagepack":
            await self.send([1, {}, invocation_id, target, list(arguments), []])
        else:
            await self.send(
                {
                    "type": 1,
                    "invocationId": invocation_id,
                    "target": target,
                    "arguments": list(arguments),
                }
            )
        held = []
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(deadline - time.monotonic(), 0.01))
            if message.get("type") == 3 and message.get("invocationId") == invocation_id:
                self.inbox[:0] = held
                return message
            held.append(message)

    async def update(self, timeout: float = 10, topic: str | None = None) -> dict:
        """The next `update` argument (of `topic`, if given), skipping pings."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(deadline - time.monotonic(), 0.01))
            if message.get("type") == 1 and message.get("target") == "update":
                payload = message["arguments"][0]
                if topic is None or payload["topic"] == topic:
                    return payload

    async def close(self) -> None:
        await self.websocket.close()
