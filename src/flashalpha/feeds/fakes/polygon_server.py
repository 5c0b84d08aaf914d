"""A fake of Polygon's options WebSocket cluster and option chain snapshot, message for message.

WebSocket (any path, e.g. ``/options``): greets with the ``connected`` status, takes
``{"action":"auth","params":KEY}`` (``auth_success`` / ``auth_failed`` then close),
``subscribe`` / ``unsubscribe`` with comma-joined topics (``Q.O:...``, ``T.O:...``, ``T.*``,
``A.``/``AM.``), one ``success`` status per topic, at most `quote_limit` quote contracts per
connection (beyond: an ``error`` status naming the topic). Events are sent as JSON arrays of
``Q`` and ``T`` events with Polygon's exchange and condition ids and millisecond times.
At most `max_connections` authenticated connections: one more gets ``max_connections`` and is
closed. `force_disconnect()` and `slow_consumer()` send those statuses.

REST: ``GET /v3/snapshot/options/{underlying}?limit=N`` (key as ``Authorization: Bearer`` or
``apiKey``), pages linked by an absolute ``next_url`` with a ``cursor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

import msgspec
import numpy as np
from websockets.datastructures import Headers
from websockets.http11 import Response

from flashalpha.feeds.fakes.market import MarketSource
from flashalpha.feeds.fakes.server import FakeServer, Session, json_response
from flashalpha.feeds.normalize import POLYGON_EXCHANGES, TradeCondition
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import ExerciseStyle, Right

log = logging.getLogger(__name__)

#: Our exchange code -> Polygon's id.
EXCHANGE_IDS = np.zeros(256, np.int64)
for _polygon_id, _ours in enumerate(POLYGON_EXCHANGES.tolist()):
    if _ours:
        EXCHANGE_IDS[_ours] = _polygon_id
#: Our trade condition -> a Polygon condition id of that category.
CONDITION_IDS = np.full(256, 209, np.int64)
for _ours, _polygon_id in {
    TradeCondition.REGULAR: 209,
    TradeCondition.INTERMARKET_SWEEP: 219,
    TradeCondition.SINGLE_LEG_AUCTION: 227,
    TradeCondition.SINGLE_LEG_CROSS: 229,
    TradeCondition.SINGLE_LEG_FLOOR: 231,
    TradeCondition.MULTI_LEG: 232,
    TradeCondition.STOCK_OPTIONS: 240,
    TradeCondition.LATE: 204,
    TradeCondition.EXTENDED_HOURS: 248,
}.items():
    CONDITION_IDS[_ours] = _polygon_id

EVENTS_PER_FRAME = 500
_ENCODER = msgspec.json.Encoder()


def status_frame(status: str, message: str) -> bytes:
    return _ENCODER.encode([{"ev": "status", "status": status, "message": message}])


class PolygonSession(Session):
    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.authenticated = False
        self.topics: set[str] = set()
        self.quote_mask = np.zeros(0, bool)
        self.trade_mask = np.zeros(0, bool)
        self.all_trades = False


class FakePolygonServer(FakeServer):
    """Polygon's options cluster and REST snapshot, over a market source."""

    rest_prefixes = ("/v3/", "/v2/", "/v1/")

    def __init__(
        self,
        market: MarketSource,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        max_connections: int = 1,
        quote_limit: int = 1000,
        tick_interval: float = 0.05,
    ) -> None:
        super().__init__(market, host, port, tick_interval)
        self.api_key = api_key
        self.max_connections = max_connections
        self.quote_limit = quote_limit
        self.auth_attempts = 0
        self.auth_failures = 0
        self.subscribe_messages: list[str] = []
        self.snapshot_requests = 0
        self._symbols: list[str] = []
        self._sequence = 0

    # -- symbols -----------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        """Polygon tickers ("O:SPY251219C00650000") by market row, extended as rows appear."""
        registry = self.market.registry
        if len(self._symbols) < registry.count:
            osi = registry.osi_symbols[len(self._symbols) :]
            text = b"\n".join(osi.tolist()).replace(b" ", b"").decode()
            self._symbols.extend("O:" + s for s in text.split("\n"))
        return self._symbols

    def row_of(self, ticker: str) -> int:
        return self.market.registry.get_row(ticker.removeprefix("O:"))

    # -- WebSocket ---------------------------------------------------------------------------

    def new_session(self, connection: Any) -> PolygonSession:
        return PolygonSession(connection)

    async def session(self, session: PolygonSession) -> None:  # type: ignore[override]
        await session.send(status_frame("connected", "Connected Successfully"))
        async for message in session.connection:
            await self._on_message(session, message)

    def _key_ok(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        return self.api_key is None or key == self.api_key

    async def _on_message(self, session: PolygonSession, message: str | bytes) -> None:
        try:
            request = msgspec.json.decode(message)
            action, params = request["action"], request.get("params", "")
        except (msgspec.DecodeError, KeyError, TypeError):
            await session.send(status_frame("error", f"invalid message: {message!r:.80}"))
            return
        if action == "auth":
            self.auth_attempts += 1
            if not self._key_ok(params):
                self.auth_failures += 1
                await session.send(status_frame("auth_failed", "authentication failed"))
                await session.connection.close(1008, "authentication failed")
                return
            live = sum(1 for s in self.sessions if s is not session and s.authenticated)
            if live >= self.max_connections:
                await session.send(
                    status_frame(
                        "max_connections",
                        "Maximum number of websocket connections exceeded. You have reached "
                        "the connection limit for your account.",
                    )
                )
                await session.connection.close(1008, "max connections")
                return
            session.authenticated = True
            await session.send(status_frame("auth_success", "authenticated"))
            return
        if not session.authenticated:
            await session.send(status_frame("error", "not authorized"))
            return
        if action not in ("subscribe", "unsubscribe") or not isinstance(params, str):
            await session.send(status_frame("error", f"unknown action {action!r}"))
            return
        self.subscribe_messages.append(f"{action}:{params}")
        statuses = []
        for topic in filter(None, (t.strip() for t in params.split(","))):
            statuses.append(self._apply(session, action, topic))
        for start in range(0, len(statuses), EVENTS_PER_FRAME):
            await session.send(_ENCODER.encode(statuses[start : start + EVENTS_PER_FRAME]))

    def _apply(self, session: PolygonSession, action: str, topic: str) -> dict:
        channel, _, symbol = topic.partition(".")
        if channel not in ("Q", "T", "A", "AM") or not symbol:
            return {"ev": "status", "status": "error", "message": f"invalid topic: {topic}"}
        count = self.market.registry.count
        for name in ("quote_mask", "trade_mask"):
            mask = getattr(session, name)
            if len(mask) < count:
                setattr(session, name, np.concatenate([mask, np.zeros(count - len(mask), bool)]))
        adding = action == "subscribe"
        if symbol == "*":
            if channel == "Q":
                return {"ev": "status", "status": "error", "message": "Q.* is not allowed"}
            if channel == "T":
                session.all_trades = adding
        else:
            row = self.row_of(symbol)
            if channel == "Q" and row >= 0:
                full = int(session.quote_mask.sum()) >= self.quote_limit
                if adding and not session.quote_mask[row] and full:
                    return {
                        "ev": "status",
                        "status": "error",
                        "message": f"quote subscription limit ({self.quote_limit}) reached: {topic}",
                    }
                session.quote_mask[row] = adding
            elif channel == "T" and row >= 0:
                session.trade_mask[row] = adding
        if adding:
            session.topics.add(topic)
        else:
            session.topics.discard(topic)
        verb = "subscribed to" if adding else "unsubscribed to"
        return {"ev": "status", "status": "success", "message": f"{verb}: {topic}"}

    async def broadcast(self, batch: TickBatch) -> None:
        symbols = self.symbols()
        for session in list(self.sessions):
            if not session.authenticated:
                continue
            events = self._events(session, batch, symbols)
            for start in range(0, len(events), EVENTS_PER_FRAME):
                with contextlib.suppress(Exception):
                    await session.send(_ENCODER.encode(events[start : start + EVENTS_PER_FRAME]))
            session.sent_events += len(events)

    def _events(self, session: PolygonSession, batch: TickBatch, symbols: list[str]) -> list:
        events: list[dict] = []
        quotes = batch.quotes
        if len(quotes) and len(session.quote_mask):
            rows = quotes["row"]
            quotes = quotes[
                (rows < len(session.quote_mask))
                & session.quote_mask[np.minimum(rows, len(session.quote_mask) - 1)]
            ]
            for row, bx, ax, bp, ap, bs, as_, t in zip(
                quotes["row"].tolist(),
                EXCHANGE_IDS[quotes["bid_exchange"]].tolist(),
                EXCHANGE_IDS[quotes["ask_exchange"]].tolist(),
                quotes["bid"].tolist(),
                quotes["ask"].tolist(),
                quotes["bid_size"].tolist(),
                quotes["ask_size"].tolist(),
                (quotes["ts"] // 1_000_000).tolist(),
                strict=True,
            ):
                self._sequence += 1
                events.append(
                    {
                        "ev": "Q",
                        "sym": symbols[row],
                        "bx": bx,
                        "ax": ax,
                        "bp": bp,
                        "ap": ap,
                        "bs": bs,
                        "as": as_,
                        "t": t,
                        "q": self._sequence,
                    }
                )
        trades = batch.trades
        if len(trades) and (session.all_trades or len(session.trade_mask)):
            if not session.all_trades:
                rows = trades["row"]
                size = len(session.trade_mask)
                trades = trades[(rows < size) & session.trade_mask[np.minimum(rows, size - 1)]]
            for row, x, p, s, c, t in zip(
                trades["row"].tolist(),
                EXCHANGE_IDS[trades["exchange"]].tolist(),
                trades["price"].tolist(),
                trades["size"].tolist(),
                CONDITION_IDS[np.minimum(trades["condition"], 255)].tolist(),
                (trades["ts"] // 1_000_000).tolist(),
                strict=True,
            ):
                self._sequence += 1
                events.append(
                    {
                        "ev": "T",
                        "sym": symbols[row],
                        "x": x,
                        "p": p,
                        "s": s,
                        "c": [c],
                        "t": t,
                        "q": self._sequence,
                    }
                )
        return events

    # -- controls ----------------------------------------------------------------------------

    async def force_disconnect(self) -> None:
        """Tell every client it is being disconnected, then close its connection."""
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.send(status_frame("force_disconnect", "Forced disconnect"))
                await session.connection.close(1000, "force disconnect")

    async def slow_consumer(self) -> None:
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.send(
                    status_frame("slow_consumer", "Your connection is reading too slowly")
                )

    async def wait_for_sessions(self, count: int, timeout: float = 10.0) -> None:
        async def authenticated() -> None:
            while sum(1 for s in self.sessions if s.authenticated) < count:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(authenticated(), timeout)

    # -- REST --------------------------------------------------------------------------------

    def rest(self, path: str, query: dict[str, str], headers: Headers, base: str) -> Response:
        key = query.get("apiKey")
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            key = authorization.removeprefix("Bearer ")
        if not self._key_ok(key):
            return json_response(
                401, {"status": "ERROR", "request_id": "fake", "error": "Unknown API Key"}
            )
        prefix = "/v3/snapshot/options/"
        if not path.startswith(prefix) or path.count("/") != 4:
            return json_response(404, {"status": "NOT_FOUND", "error": f"no route {path}"})
        underlying = path.removeprefix(prefix).upper()
        self.snapshot_requests += 1
        try:
            limit = min(250, max(1, int(query.get("limit", "10"))))
            offset = int(query.get("cursor", "0"))
        except ValueError:
            return json_response(400, {"status": "ERROR", "error": "bad limit or cursor"})
        rows = self.book.rows_of(underlying)
        page = rows[offset : offset + limit]
        document: dict[str, Any] = {
            "status": "OK",
            "request_id": f"fake-{self.snapshot_requests}",
            "results": self._snapshot_results(page, underlying),
        }
        if offset + limit < len(rows):
            document["next_url"] = (
                f"{base}{prefix}{underlying}?cursor={offset + limit}&limit={limit}"
            )
        return json_response(200, document)

    def _snapshot_results(self, rows: np.ndarray, underlying: str) -> list[dict]:
        registry, book = self.market.registry, self.book
        symbols = self.symbols()
        results = []
        for row in rows.tolist():
            uid = int(registry.underlying_ids[row])
            expiry = dt.date(1970, 1, 1) + dt.timedelta(days=int(registry.expiry_days[row]))
            quote = book.quotes[row]
            spot = float(book.spot[uid])
            result: dict[str, Any] = {
                "break_even_price": None,
                "day": {},
                "details": {
                    "contract_type": "call" if registry.rights[row] == Right.CALL else "put",
                    "exercise_style": "european"
                    if registry.styles[row] == ExerciseStyle.EUROPEAN
                    else "american",
                    "expiration_date": expiry.isoformat(),
                    "shares_per_contract": int(registry.multipliers[row]),
                    "strike_price": float(registry.strikes[row]),
                    "ticker": symbols[row],
                },
                "greeks": {},
                "open_interest": int(book.open_interest[row]),
                "underlying_asset": {
                    "ticker": underlying,
                    "price": None if spot != spot else spot,
                    "last_updated": int(book.ts_spot[uid]),
                    "timeframe": "REAL-TIME",
                },
            }
            if quote["bid"] == quote["bid"] and quote["ts"]:
                result["last_quote"] = {
                    "ask": float(quote["ask"]),
                    "ask_size": int(quote["ask_size"]),
                    "ask_exchange": int(EXCHANGE_IDS[quote["ask_exchange"]]),
                    "bid": float(quote["bid"]),
                    "bid_size": int(quote["bid_size"]),
                    "bid_exchange": int(EXCHANGE_IDS[quote["bid_exchange"]]),
                    "last_updated": int(quote["ts"]),
                    "midpoint": round((float(quote["bid"]) + float(quote["ask"])) / 2, 4),
                    "timeframe": "REAL-TIME",
                }
            results.append(result)
        return results
