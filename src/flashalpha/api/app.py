"""The Litestar application: REST, hub endpoints, metrics, docs and UI, auth, CORS, errors.

`create_app(daemon, hub)` builds it around a running daemon's reader, dispatcher and config;
`ApiService` serves it with uvicorn on the daemon's loop. Every error response is
`{"status_code", "detail"}` (`ErrorBody`), never a stack trace.
"""

from __future__ import annotations

import hmac
import logging
from collections import Counter
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, WebSocket, get, post, websocket
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.params import QueryParameter
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send

from flashalpha import __version__
from flashalpha.api import metrics
from flashalpha.api.hub import MarketHub, reject
from flashalpha.api.routes import ROUTES, RenderPool
from flashalpha.api.signalr import ProtocolError, negotiate_version
from flashalpha.api.ui import (
    DOCS_ASSETS_PATH,
    LocalSwaggerPlugin,
    docs_assets_directory,
    ui,
    ui_index,
)

log = logging.getLogger(__name__)

#: Path prefixes that need an API key when keys are configured.
PROTECTED_PREFIXES = ("/api/", "/hubs/")
API_KEY_HEADER = "x-api-key"
ACCESS_TOKEN_QUERY = "access_token"


# -- hub endpoints --------------------------------------------------------------------------------


@post(
    "/hubs/market/negotiate",
    status_code=200,
    tags=["hub"],
    summary="SignalR negotiate (versions 0 and 1): reserve a connection for the WebSocket",
    sync_to_thread=False,
)
def negotiate(
    state: State,
    negotiate_version_: Annotated[
        str | None,
        QueryParameter(
            name="negotiateVersion",
            description="Negotiate protocol version the client speaks (an integer; missing "
            "means 0, above 1 is answered with 1). Like ASP.NET Core, an unusable version is "
            'answered with `{"error": ...}`, which SignalR clients raise.',
        ),
    ] = None,
) -> dict[str, Any]:
    try:
        version = negotiate_version(negotiate_version_)
    except ProtocolError as error:
        return {"error": str(error)}
    return state.hub.negotiate(version)


@websocket("/hubs/market")
async def market_hub(socket: WebSocket) -> None:
    await socket.app.state.hub.serve(socket)


@get("/hubs/market", include_in_schema=False, sync_to_thread=False, status_code=400)
def market_hub_http() -> Response[dict]:
    return Response(
        {
            "status_code": 400,
            "detail": "the market hub speaks SignalR over WebSockets only: connect a SignalR "
            "client to /hubs/market (POST /hubs/market/negotiate first, or skip negotiation)",
        },
        status_code=400,
    )


@get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics (text exposition format)",
    media_type=metrics.CONTENT_TYPE,
    sync_to_thread=False,
)
def metrics_endpoint(state: State) -> bytes:
    return metrics.render(state.metrics)


# -- auth, request counting, errors ------------------------------------------------------------


class ApiKeyMiddleware(ASGIMiddleware):
    """When keys are configured, every /api and /hubs request must carry one.

    Accepted: `X-Api-Key: KEY`, `Authorization: Bearer KEY`, and on /hubs (where browsers cannot
    set WebSocket headers) the `access_token` query parameter, as SignalR clients send it.
    """

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = tuple(key.encode() for key in keys)

    def _presented(self, scope: Scope, path: str) -> list[bytes]:
        found = []
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                found.append(value)
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                found.append(value[7:].strip())
        if path.startswith("/hubs/") or path == "/hubs":
            from urllib.parse import parse_qs

            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            found.extend(v.encode("latin-1") for v in query.get(ACCESS_TOKEN_QUERY, ()))
        return found

    def _allowed(self, presented: list[bytes]) -> bool:
        return any(hmac.compare_digest(p, key) for p in presented for key in self.keys)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = scope.get("path", "")
        protected = path.startswith(PROTECTED_PREFIXES) or path in ("/api", "/hubs")
        if (
            not self.keys
            or not protected
            or scope.get("method") == "OPTIONS"
            or self._allowed(self._presented(scope, path))
        ):
            await next_app(scope, receive, send)
            return
        detail = (
            "missing or invalid API key: send the X-Api-Key header "
            "(or access_token=KEY in the query string of /hubs requests)"
        )
        if scope["type"] == ScopeType.WEBSOCKET:
            await reject(WebSocket(scope, receive, send), 401, detail)
            return
        body = msgspec.json.encode({"status_code": 401, "detail": detail})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'ApiKey header="X-Api-Key"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ResponseCounter(ASGIMiddleware):
    """Counts HTTP responses by status code for /metrics."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, counts: Counter) -> None:
        self.counts = counts

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.counts[message["status"]] += 1
            await send(message)

        await next_app(scope, receive, counting_send)


def _error_response(request: Request, error: Exception) -> Response:
    if isinstance(error, HTTPException):
        status, detail = error.status_code, error.detail
        extra = error.extra if isinstance(error.extra, list) else None
        if extra and status == 400:
            # Litestar's own validation: name the parameter and what is wrong with it.
            parts = [
                f"invalid {getattr(item.get('source'), 'value', item.get('source'))} parameter "
                f"'{item.get('key')}': {item.get('message')}"
                for item in extra
                if isinstance(item, dict)
            ]
            detail = "; ".join(parts) or detail
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, detail = 500, "internal server error (logged by the daemon)"
    return Response(
        {"status_code": status, "detail": detail},
        status_code=status,
        media_type=MediaType.JSON,
        headers=getattr(error, "headers", None) or None,
    )


# -- the app --------------------------------------------------------------------------------------


def create_app(daemon: Any, hub: MarketHub) -> Litestar:
    """The Litestar app serving `daemon`'s state and `hub`."""
    config = daemon.config.api
    responses: Counter = Counter()
    security = [{"ApiKey": []}] if config.keys else None
    openapi = OpenAPIConfig(
        title="flashalpha",
        version=__version__,
        description=(
            "Live US option chains with implied vols and greeks. Streaming: the SignalR hub "
            "at /hubs/market (docs/PROTOCOL.md). Errors are `{status_code, detail}`."
        ),
        path="/schema",
        render_plugins=[LocalSwaggerPlugin(path="/swagger")],
        tags=[
            Tag(name="market", description="Chains, contracts and underlyings"),
            Tag(name="hub", description="SignalR negotiate for the market hub"),
            Tag(name="operations", description="Metrics"),
        ],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="apiKey", name="X-Api-Key", security_scheme_in="header"
                )
            }
        ),
        security=security,
    )
    cors = None
    if config.cors_origins:
        cors = CORSConfig(
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "X-Api-Key",
                "Authorization",
                "Content-Type",
                "X-Requested-With",
                "X-SignalR-User-Agent",
            ],
            allow_credentials="*" not in config.cors_origins,
        )
    docs_assets = create_static_files_router(
        path=DOCS_ASSETS_PATH,
        directories=[docs_assets_directory()],
        include_in_schema=False,
        name="docs-assets",
    )
    app = Litestar(
        route_handlers=[
            *ROUTES,
            negotiate,
            market_hub,
            market_hub_http,
            metrics_endpoint,
            docs_assets,
            ui_index,
            ui,
        ],
        state=State(
            {
                "daemon": daemon,
                "hub": hub,
                "metrics": metrics.metrics_registry(daemon, hub, responses),
                "renders": RenderPool(),
            }
        ),
        openapi_config=openapi,
        cors_config=cors,
        middleware=[ResponseCounter(responses), ApiKeyMiddleware(config.keys)],
        exception_handlers={Exception: _error_response},
        logging_config=None,
        debug=False,
    )
    return app
