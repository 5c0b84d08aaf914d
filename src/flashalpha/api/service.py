"""`ApiService`: the HTTP server and the market hub as a daemon Service, on the daemon's loop.

uvicorn's `Server` runs as a task of the daemon's uvloop loop (no thread, no second loop), on
a socket this service binds itself so that a taken port is a clear startup error. The daemon's
own signal handlers stay in charge: uvicorn's are disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from flashalpha.config import ConfigError

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; ConfigError naming the address if it is taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on http://{host}:{port}: {error.strerror} "
            "(choose another address with --http HOST:PORT)"
        ) from None
    sock.setblocking(False)
    return sock


class ApiService:
    """REST + hub + UI on `config.http` (DESIGN.md §5)."""

    name = "api"

    def __init__(self) -> None:
        self.hub = None
        self.app = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    async def start(self, daemon: Any) -> None:
        from flashalpha.api.app import create_app
        from flashalpha.api.hub import MarketHub

        config = daemon.config
        self._socket = bind(config.http.host, config.http.port)
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{_url_host(host)}:{port}"
        self.hub = MarketHub(daemon.reader, daemon.dispatcher, config.hub)
        await self.hub.start()
        self.app = create_app(daemon, self.hub)
        if config.log_level.upper() != "DEBUG":
            # Per-connection INFO lines ("WebSocket /hubs/market [accepted]") are noise here.
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        server_config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            # Compressing every frame for every client would cost more CPU than the fan-out.
            ws_per_message_deflate=False,
            ws_max_size=max(config.hub.max_message_bytes, 1024),
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=3,
        )
        self._server = _EmbeddedServer(server_config)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._serve(), name="http")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        log.info(
            "http listening url=%s docs=%s/schema hub=%s/hubs/market", self.url, self.url, self.url
        )

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._socket])
        except SystemExit as error:  # uvicorn exits on startup failures
            raise RuntimeError(f"HTTP server failed to start (exit {error.code})") from None

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._server.force_exit = True
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception:
                log.exception("HTTP server failed while stopping")
        if self.app is not None:
            await self.app.state.renders.close()  # before the daemon unmaps the state
        if self._socket is not None:
            self._socket.close()

    def healthy(self) -> bool:
        """The HTTP server is serving (the daemon's systemd watchdog asks)."""
        return self._task is not None and not self._task.done()

    def status(self) -> dict:
        return {"url": self.url, **(self.hub.status() if self.hub is not None else {})}


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
