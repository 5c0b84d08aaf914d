"""What both fake providers share: one port for WebSocket and REST, a market clock, controls.

`FakeServer` listens with `websockets`; plain HTTP GETs (the REST API) are answered from
`process_request`, upgrades become protocol sessions. Every `tick_interval` it draws a batch
from its market source, updates its `MarketBook` and hands the batch to `broadcast`.

Controls for tests and demos: `stall()` stops every byte to clients while keeping their sockets
open (a silent stall), `resume()` undoes it, `inject(frame)` sends raw text to every session,
`publish(batch)` serves a batch drawn
elsewhere (two fakes can then serve one market), `kill()` drops every connection without a closing handshake and stops listening, and `start()`
listens again (on the same port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from flashalpha.feeds.fakes.market import MarketBook, MarketSource
from flashalpha.state.batch import TickBatch

log = logging.getLogger(__name__)


def json_response(status: int, document: Any) -> Response:
    body = msgspec.json.encode(document)
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
        status, "Error"
    )
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status, reason, headers, body)


class Session:
    """One client connection of a fake server."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.sent_frames = 0
        self.sent_events = 0

    async def send(self, frame: str | bytes) -> None:
        await self.connection.send(frame)
        self.sent_frames += 1


class FakeServer:
    """Base of the fake Polygon and ThetaData servers."""

    #: Path prefixes answered as REST (everything else upgrades to WebSocket).
    rest_prefixes: tuple[str, ...] = ()

    def __init__(
        self,
        market: MarketSource,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_interval: float | None = 0.05,
    ) -> None:
        self.market = market
        self.book = MarketBook(market.registry)
        self.host = host
        self.port = port
        self.tick_interval = tick_interval
        self.sessions: list[Session] = []
        self.connections = 0
        self.rest_requests: list[str] = []
        self.stalled = False
        self.batches = 0
        self.events = 0
        self._server: Server | None = None
        self._ticker: asyncio.Task | None = None
        self._initialised = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeServer:
        if not self._initialised:
            self._initialised = True
            initial = getattr(self.market, "initial_batches", None)
            if initial is not None:
                for batch in initial(time.time_ns()):
                    self.book.apply(batch)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=None,
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.tick_interval is not None and (self._ticker is None or self._ticker.done()):
            self._ticker = asyncio.create_task(self._tick(), name="fake-market")
        log.info("%s listening on %s:%d", type(self).__name__, self.host, self.port)
        return self

    async def kill(self) -> None:
        """Drop every connection abruptly (no closing handshake) and stop listening."""
        if self._server is None:
            return
        for session in list(self.sessions):
            session.connection.transport.abort()
        self._server.close(close_connections=False)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None
        self.sessions.clear()

    async def stop(self) -> None:
        await self.kill()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"

    # -- controls ----------------------------------------------------------------------------

    def stall(self) -> None:
        """Send nothing more (data, statuses, heartbeats) until `resume()`; sockets stay open."""
        self.stalled = True

    def resume(self) -> None:
        self.stalled = False

    async def inject(self, frame: str | bytes) -> None:
        """Send a raw frame to every session (malformed input for tests)."""
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.send(frame)

    # -- plumbing ----------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request):
        path = request.path
        if not path.startswith(self.rest_prefixes):
            return None
        self.rest_requests.append(path)
        parsed = urllib.parse.urlsplit(path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        host = request.headers.get("Host", f"{self.host}:{self.port}")
        try:
            return self.rest(parsed.path, query, request.headers, f"http://{host}")
        except Exception as error:  # a fake must answer, not hang
            log.exception("fake REST %s failed", path)
            return json_response(500, {"status": "ERROR", "error": repr(error)})

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        session = self.new_session(connection)
        self.sessions.append(session)
        try:
            await self.session(session)
        except Exception as error:
            log.debug("fake session ended: %r", error)
        finally:
            if session in self.sessions:
                self.sessions.remove(session)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += self.tick_interval
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if loop.time() - deadline > 5 * self.tick_interval:
                deadline = loop.time()
            await self.publish(self.market.next_batch(time.time_ns()))

    async def publish(self, batch: TickBatch) -> None:
        """Book a batch and send it to the subscribed sessions (the ticker calls this; with
        `tick_interval=None` a test calls it, e.g. to serve one market from two fakes)."""
        self.book.apply(batch)
        self.batches += 1
        self.events += len(batch)
        if self.stalled or not self.sessions:
            return
        try:
            await self.broadcast(batch)
        except Exception:
            log.exception("fake broadcast failed")

    # -- to implement ------------------------------------------------------------------------

    def new_session(self, connection: ServerConnection) -> Session:
        return Session(connection)

    async def session(self, session: Session) -> None:
        raise NotImplementedError

    async def broadcast(self, batch: TickBatch) -> None:
        raise NotImplementedError

    def rest(self, path: str, query: dict[str, str], headers: Headers, base: str) -> Response:
        return json_response(404, {"status": "NOT_FOUND", "error": f"no route {path}"})
