"""Polygon's options WebSocket (`wss://socket.polygon.io/options`) and chain snapshot REST API.

The protocol, as Polygon's documentation and official client (polygon-io/client-python,
``polygon/websocket``) speak it:

1. The server greets with ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``.
2. The client sends ``{"action":"auth","params":KEY}``; the server answers ``auth_success`` or
   ``auth_failed`` (then closes).
3. The client sends ``{"action":"subscribe","params":"Q.O:SPY251219C00650000,T.O:..."}`` (and
   ``unsubscribe``), comma-joined topics; the server confirms with ``success`` statuses.
4. Every frame is a JSON array of events: trades ``{"ev":"T","sym","x","p","s","c","t","q"}``,
   quotes ``{"ev":"Q","sym","bx","ax","bp","ap","bs","as","t","q"}``, aggregates ``A``/``AM``
   and ``status`` events (``max_connections``, ``force_disconnect``, ``slow_consumer``, ...).
   Times are Unix milliseconds; exchanges and conditions are Polygon's ids.

Quotes are limited to 1,000 contracts per connection, so `plan_quotes` ranks the contracts of
the followed underlyings (nearest expiries, strikes around the money) and the plan is spread over
`connections` links. Trades are subscribed per contract (or ``T.*``).

On every (re)connect the feed backfills the underlyings from ``/v3/snapshot/options/{underlying}``
(pages followed by ``next_url``, rate limited): it lists the contracts (registering new ones),
and brings quotes, open interest and the underlying's price up to date. Last trades are not
backfilled: the state adds every trade to the day's volume, so a replayed trade would count twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np

from flashalpha.feeds.base import (
    AuthError,
    FeedError,
    LinkSettings,
    LinkState,
    RestClient,
    RestError,
    Secret,
    WebSocketLink,
    plan_quotes,
    resolve_secret,
)
from flashalpha.feeds.normalize import (
    POLYGON_CONDITIONS,
    POLYGON_EXCHANGES,
    ContractResolver,
    RejectSink,
    build_open_interest,
    build_quotes,
    build_trades,
    build_underlyings,
    date_to_days,
    map_codes,
)
from flashalpha.instruments import InstrumentRegistry, parse_polygon
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import RejectKind

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "POLYGON_API_KEY"
NS_PER_MS = 1_000_000

Size = Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)]
Code = Annotated[int, msgspec.Meta(ge=0)]
Millis = Annotated[int, msgspec.Meta(ge=0)]


# --- wire types ----------------------------------------------------------------------------


class PolygonQuote(msgspec.Struct, tag_field="ev", tag="Q", gc=False):
    """An option NBBO quote (channel ``Q.``)."""

    sym: str
    bx: Code
    ax: Code
    bp: float
    ap: float
    bs: Size
    as_: Size = msgspec.field(name="as")
    t: Millis = 0
    q: int = 0


class PolygonTrade(msgspec.Struct, tag_field="ev", tag="T", gc=False):
    """An option trade (channel ``T.``)."""

    sym: str
    x: Code
    p: float
    s: Size
    t: Millis
    c: list[Code] = []
    q: int = 0


class PolygonAggregate(msgspec.Struct, tag_field="ev", tag="A", gc=False):
    """A per-second aggregate bar (channel ``A.``)."""

    sym: str
    v: int = 0
    o: float = 0.0
    c: float = 0.0
    h: float = 0.0
    l: float = 0.0  # noqa: E741 - Polygon's field name
    s: int = 0
    e: int = 0


class PolygonMinuteAggregate(PolygonAggregate, tag="AM"):
    """A per-minute aggregate bar (channel ``AM.``)."""


class PolygonStatus(msgspec.Struct, tag_field="ev", tag="status", gc=False):
    status: str
    message: str = ""


PolygonEvent = (
    PolygonQuote | PolygonTrade | PolygonAggregate | PolygonMinuteAggregate | PolygonStatus
)

_FRAMES = msgspec.json.Decoder(list[list[PolygonEvent]])
_FRAME = msgspec.json.Decoder(list[PolygonEvent])
_RAW_FRAME = msgspec.json.Decoder(list[msgspec.Raw])
_EVENT = msgspec.json.Decoder(PolygonEvent)
_ENCODER = msgspec.json.Encoder()

_QUOTE_FIELDS = attrgetter("bp", "ap", "bs", "as_", "bx", "ax", "t")
_QUOTE_ROW = np.dtype(
    [
        ("bp", "f8"),
        ("ap", "f8"),
        ("bs", "u4"),
        ("as", "u4"),
        ("bx", "i8"),
        ("ax", "i8"),
        ("t", "u8"),
    ]
)
_TRADE_FIELDS = attrgetter("p", "s", "x", "t")
_TRADE_ROW = np.dtype([("p", "f8"), ("s", "u4"), ("x", "i8"), ("t", "u8")])
_SYM = attrgetter("sym")


def _first_condition(trade: PolygonTrade) -> int:
    conditions = trade.c
    return conditions[0] if conditions else 209  # no condition: an automatic execution


# --- decoding + normalization --------------------------------------------------------------


class PolygonDecoder:
    """Frames (JSON arrays of events) into a `TickBatch` plus the status events among them.

    The fast path decodes a burst of frames in one msgspec call into typed structs and builds
    the record arrays with numpy. A frame that fails (malformed JSON, a wrong type, an unknown
    event) is decoded again event by event: the bad events are rejected and counted
    (`RejectKind.MALFORMED`, the message naming the value), the good ones kept.
    """

    def __init__(self, registry: InstrumentRegistry, reject: RejectSink, source: str = "polygon"):
        self.source = source
        self.reject = reject
        self.resolver = ContractResolver(registry, parse_polygon, reject, source)
        self.decode_errors = 0
        self.aggregates = 0

    def decode(self, frames: list[bytes | str], received_ns: int) -> tuple[TickBatch, list]:
        """Decode a burst; return the batch and the `PolygonStatus` events, in order."""
        events = self._events(frames)
        quotes: list[PolygonQuote] = []
        trades: list[PolygonTrade] = []
        statuses: list[PolygonStatus] = []
        for event in events:
            kind = event.__class__
            if kind is PolygonQuote:
                quotes.append(event)
            elif kind is PolygonTrade:
                trades.append(event)
            elif kind is PolygonStatus:
                statuses.append(event)
            else:
                self.aggregates += 1
        batch = TickBatch(
            quotes=self._quotes(quotes) if quotes else TickBatch.empty().quotes,
            trades=self._trades(trades) if trades else TickBatch.empty().trades,
            source=self.source,
            ts_received=received_ns,
        )
        return batch, statuses

    def _events(self, frames: list[bytes | str]) -> list:
        if len(frames) == 1:
            frame = frames[0]
            try:
                return _FRAME.decode(frame)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return self._salvage(frame)
        encoded = [f.encode() if isinstance(f, str) else f for f in frames]
        try:
            nested = _FRAMES.decode(b"[" + b",".join(encoded) + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            nested = []
            for frame in encoded:
                try:
                    nested.append(_FRAME.decode(frame))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    nested.append(self._salvage(frame))
        return [event for frame_events in nested for event in frame_events]

    def _salvage(self, frame: bytes | str) -> list:
        """Decode a frame that failed as a whole, event by event; count what stays bad."""
        try:
            raws = _RAW_FRAME.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self._malformed(f"frame is not a JSON array of events ({error}): {_excerpt(frame)}")
            return []
        events = []
        for raw in raws:
            try:
                events.append(_EVENT.decode(raw))
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                self._malformed(f"event rejected ({error}): {_excerpt(bytes(raw))}")
        return events

    def _malformed(self, message: str) -> None:
        self.decode_errors += 1
        self.reject(RejectKind.MALFORMED, f"{self.source}: {message}", 1)

    def _quotes(self, quotes: list[PolygonQuote]) -> np.ndarray:
        n = len(quotes)
        rows = self.resolver.rows(list(map(_SYM, quotes)), n)
        fields = np.fromiter(map(_QUOTE_FIELDS, quotes), _QUOTE_ROW, n)
        return build_quotes(
            rows,
            fields["bp"],
            fields["ap"],
            fields["bs"],
            fields["as"],
            map_codes(POLYGON_EXCHANGES, fields["bx"]),
            map_codes(POLYGON_EXCHANGES, fields["ax"]),
            fields["t"] * NS_PER_MS,
        )

    def _trades(self, trades: list[PolygonTrade]) -> np.ndarray:
        n = len(trades)
        rows = self.resolver.rows(list(map(_SYM, trades)), n)
        fields = np.fromiter(map(_TRADE_FIELDS, trades), _TRADE_ROW, n)
        conditions = np.fromiter(map(_first_condition, trades), np.int64, n)
        return build_trades(
            rows,
            fields["p"],
            fields["s"],
            map_codes(POLYGON_EXCHANGES, fields["x"]),
            map_codes(POLYGON_CONDITIONS, conditions),
            fields["t"] * NS_PER_MS,
        )


def _excerpt(frame: bytes | str, limit: int = 120) -> str:
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- REST snapshot -------------------------------------------------------------------------


class SnapshotQuote(msgspec.Struct):
    bid: float | None = None
    ask: float | None = None
    bid_size: Size = 0
    ask_size: Size = 0
    bid_exchange: Code = 0
    ask_exchange: Code = 0
    last_updated: int = 0  # ns


class SnapshotDetails(msgspec.Struct):
    ticker: str
    contract_type: str = ""
    expiration_date: str = ""
    strike_price: float = 0.0
    shares_per_contract: float = 100.0
    exercise_style: str = ""


class SnapshotUnderlying(msgspec.Struct):
    ticker: str = ""
    price: float | None = None
    last_updated: int = 0  # ns


class SnapshotResult(msgspec.Struct):
    details: SnapshotDetails
    last_quote: SnapshotQuote | None = None
    open_interest: Size | None = None
    underlying_asset: SnapshotUnderlying | None = None


class SnapshotPage(msgspec.Struct):
    results: list[SnapshotResult] = []
    next_url: str | None = None
    status: str = ""
    request_id: str = ""


_SNAPSHOT = msgspec.json.Decoder(SnapshotPage)


def normalize_snapshot(
    page: SnapshotPage,
    registry: InstrumentRegistry,
    resolver: ContractResolver,
    now_ns: int,
    source: str = "polygon",
) -> TickBatch:
    """One snapshot page as a batch: quotes, open interest and the underlying's price.

    Contracts are listed through `resolver` (new ones registered with the page's multiplier).
    """
    results = page.results
    n = len(results)
    rows = np.full(n, -1, np.int64)
    for index, result in enumerate(results):  # once per contract per backfill, not per tick
        details = result.details
        multiplier = details.shares_per_contract
        if multiplier > 0 and multiplier != 100.0:
            # Adjusted contracts deliver other than 100 shares: list them with it first.
            try:
                contract = parse_polygon(details.ticker)
                if registry.get_row(contract.compact()) < 0:
                    registry.add(contract, multiplier)
            except ValueError:
                pass  # the resolver below rejects and counts it
        rows[index] = resolver.row(details.ticker)
    quote_at = [i for i, r in enumerate(results) if r.last_quote is not None and rows[i] >= 0]
    quotes = TickBatch.empty().quotes
    if quote_at:
        q = [results[i].last_quote for i in quote_at]
        bid = np.array([x.bid if x.bid is not None else np.nan for x in q], np.float64)
        ask = np.array([x.ask if x.ask is not None else np.nan for x in q], np.float64)
        ts = np.array([x.last_updated for x in q], np.uint64)
        usable = np.isfinite(bid) & np.isfinite(ask) & (ts > 0)
        quotes = build_quotes(
            np.where(usable, rows[quote_at], -1),
            bid,
            ask,
            np.array([x.bid_size for x in q], np.uint32),
            np.array([x.ask_size for x in q], np.uint32),
            map_codes(POLYGON_EXCHANGES, np.array([x.bid_exchange for x in q])),
            map_codes(POLYGON_EXCHANGES, np.array([x.ask_exchange for x in q])),
            ts,
        )
    oi_at = [i for i, r in enumerate(results) if r.open_interest is not None and rows[i] >= 0]
    open_interest = TickBatch.empty().open_interest
    if oi_at:
        open_interest = build_open_interest(
            rows[oi_at],
            np.array([results[i].open_interest for i in oi_at], np.uint32),
            np.full(len(oi_at), now_ns, np.uint64),
        )
    underlyings = TickBatch.empty().underlyings
    for result in results[-1:]:
        asset = result.underlying_asset
        if asset is not None and asset.price is not None and asset.price > 0 and rows[-1] >= 0:
            uid = int(registry.underlying_ids[rows[-1]])
            underlyings = build_underlyings(
                np.array([uid], np.uint32),
                np.array([asset.price], np.float64),
                np.array([asset.last_updated or now_ns], np.uint64),
            )
    return TickBatch(
        quotes=quotes,
        open_interest=open_interest,
        underlyings=underlyings,
        source=f"{source}-rest",
        ts_received=now_ns,
    )


# --- the feed ------------------------------------------------------------------------------


def link_settings(config: Any) -> LinkSettings:
    """`LinkSettings` from a provider config section's timing fields."""
    return LinkSettings(
        stale_after=config.stale_after,
        backoff_initial=config.backoff_initial,
        backoff_max=config.backoff_max,
        healthy_after=config.healthy_after,
        open_timeout=config.open_timeout,
    )


class PolygonLink(WebSocketLink):
    """One connection: connected -> auth -> subscribe its share of the plan -> stream."""

    def __init__(self, feed: PolygonFeed, index: int) -> None:
        super().__init__(f"polygon[{index}]", feed.config.url, feed.settings)
        self.feed = feed
        self.index = index
        #: Topics this link holds; sent again on every session.
        self.topics: list[str] = []
        self.statuses: dict[str, int] = {}

    async def session(self, ws: Any) -> None:
        feed = self.feed
        self._set_state(LinkState.AUTHENTICATING)
        greeting = await self._statuses(ws, "the 'connected' status")
        if "connected" not in greeting:
            self._handle_statuses(greeting)
            raise FeedError(f"unexpected greeting {sorted(greeting)}: expected 'connected'")
        await ws.send(_ENCODER.encode({"action": "auth", "params": feed.api_key.reveal()}))
        while True:
            answer = await self._statuses(ws, "an authentication answer")
            if "auth_success" in answer:
                break
            if "auth_failed" in answer:
                raise AuthError(
                    f"authentication failed: {answer['auth_failed'] or 'key refused'} "
                    f"(check the API key: polygon.api_key or {API_KEY_VARIABLE})"
                )
            self._handle_statuses(answer)
        self._set_state(LinkState.SUBSCRIBING)
        connected_at = time.monotonic()
        # The first backfill (which lists the contracts) covers sessions opened before it ends.
        initial = not feed.plan_ready.is_set()
        await feed.plan_ready.wait()
        self.topics = feed.topics_for(self.index)
        await self.send_topics(ws, "subscribe", self.topics)
        if not initial and feed.last_backfill_started < connected_at:
            feed.request_backfill()
        await self.stream(ws, self._on_frames)

    async def _statuses(self, ws: Any, what: str) -> dict[str, str]:
        frame = await self.recv_within(ws, what)
        try:
            events = _FRAME.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise FeedError(f"malformed {what}: {error}: {_excerpt(frame)}") from None
        self.metrics.statuses += len(events)
        return {e.status: e.message for e in events if isinstance(e, PolygonStatus)}

    async def send_topics(self, ws: Any, action: str, topics: list[str]) -> None:
        """Send comma-joined `topics`, `subscribe_batch` per message."""
        size = max(1, self.feed.config.subscribe_batch)
        for start in range(0, len(topics), size):
            params = ",".join(topics[start : start + size])
            await ws.send(_ENCODER.encode({"action": action, "params": params}))

    def _on_frames(self, frames: list, received_ns: int) -> None:
        statuses = self.feed.on_frames(self, frames, received_ns)
        if statuses:
            self._handle_statuses({s.status: s.message for s in statuses})

    def _handle_statuses(self, statuses: dict[str, str]) -> None:
        self.metrics.statuses += len(statuses)
        for status, message in statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == "max_connections":
                # More connections than the plan allows: retrying quickly only makes it worse.
                self.backoff.escalate()
                self.session_reason = f"max_connections: {message}"
                log.error(
                    "%s: the server refused another connection (max_connections: %s); lower "
                    "polygon.connections or close other clients",
                    self.name,
                    message,
                )
            elif status == "force_disconnect":
                self.session_reason = f"force_disconnect: {message}"
                log.warning("%s: the server is disconnecting us: %s", self.name, message)
            elif status == "slow_consumer":
                self.last_error = f"slow_consumer: {message}"
                log.warning("%s: the server says we read too slowly: %s", self.name, message)
            elif status in ("error", "auth_timeout"):
                self.last_error = f"{status}: {message}"
                log.warning("%s: server status %s: %s", self.name, status, message)
            else:
                log.debug("%s: status %s: %s", self.name, status, message)

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "topics": len(self.topics),
            "server_statuses": dict(self.statuses),
        }


class PolygonFeed:
    """`--feed polygon`: options quotes and trades from Polygon, backfilled from REST."""

    name = "polygon"

    def __init__(
        self,
        registry: InstrumentRegistry,
        config: Any,
        underlyings: tuple[str, ...],
        settings: LinkSettings | None = None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        if not underlyings and config.trades != "all":
            raise ValueError(
                "the polygon feed needs underlyings to follow: --underlyings SPY,QQQ,... "
                "(or feed.underlyings in the config)"
            )
        self.registry = registry
        self.config = config
        self.underlyings = tuple(u.upper() for u in underlyings)
        self.settings = settings or link_settings(config)
        self.api_key: Secret = resolve_secret(config.api_key, API_KEY_VARIABLE)
        if not self.api_key:
            raise ValueError(
                f"no Polygon API key: set {API_KEY_VARIABLE} or polygon.api_key in the config"
            )
        if config.connections < 1:
            raise ValueError(f"polygon.connections must be >= 1, got {config.connections}")
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._daemon: Any = None
        self._reject_counts: dict[str, int] = {}
        self.decoder = PolygonDecoder(registry, self._reject)
        self.links = [PolygonLink(self, i) for i in range(config.connections)]
        self.plan_ready = asyncio.Event()
        self.quote_rows = np.empty(0, np.uint32)
        self._topics: list[list[str]] = [[] for _ in self.links]
        #: Rows quoted as cover for a stale feed (`cover`), by the link that holds them.
        self.covering: dict[int, int] = {}
        self.covered = 0
        self.released = 0
        self._session_change: asyncio.Future | None = None
        self._backfill_wanted = asyncio.Event()
        self._rest_spots: dict[int, float] = {}
        self.last_backfill_started = 0.0
        self.backfill_error: str | None = None
        self.backfilled_contracts = 0
        self._emit: Callable[[TickBatch], None] | None = None
        self.rest: RestClient | None = None

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, daemon: Any) -> None:
        """Report rejects to the daemon (counted in the state) and read its quote times."""
        self._daemon = daemon

    def _reject(self, kind: RejectKind, message: str, n: int) -> None:
        self._reject_counts[kind.name.lower()] = self._reject_counts.get(kind.name.lower(), 0) + n
        if self._daemon is not None and self._daemon.state is not None:
            self._daemon.count_reject(kind, message, n)
        else:
            log.warning("%s", message)

    # -- running -----------------------------------------------------------------------------

    async def run(self, emit: Callable[[TickBatch], None]) -> None:
        self._emit = emit
        self.rest = RestClient(
            self.config.rest_url,
            self.config.rest_rate,
            headers={"Authorization": f"Bearer {self.api_key.reveal()}"},
            timeout=self.settings.open_timeout,
        )
        tasks = [asyncio.create_task(self._backfills(), name="polygon-backfill")]
        tasks += [asyncio.create_task(link.run(), name=link.name) for link in self.links]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.rest.close()

    def on_frames(self, link: PolygonLink, frames: list, received_ns: int) -> list:
        """Decode and emit one burst of a link; return its status events."""
        errors = self.decoder.decode_errors
        batch, statuses = self.decoder.decode(frames, received_ns)
        metrics = link.metrics
        metrics.decode_errors += self.decoder.decode_errors - errors
        if len(batch):
            metrics.quotes += len(batch.quotes)
            metrics.trades += len(batch.trades)
            newest = max(
                int(batch.quotes["ts"].max()) if len(batch.quotes) else 0,
                int(batch.trades["ts"].max()) if len(batch.trades) else 0,
            )
            metrics.record_events(len(batch), newest, received_ns)
            self._emit(batch)
        return statuses

    # -- subscriptions -----------------------------------------------------------------------

    def topics_for(self, index: int) -> list[str]:
        return list(self._topics[index])

    def make_plan(self) -> None:
        """Rank the contracts, spread quote topics over the links, put trades on the first."""
        registry, config = self.registry, self.config
        uids = []
        for underlying in self.underlyings:
            try:
                uids.append(registry.underlying_id(underlying))
            except KeyError:
                log.warning("polygon: no contracts listed for %s", underlying)
        spots = self._spots(uids)
        today = date_to_days(self._today())
        capacity = config.quotes_per_connection * len(self.links)
        self.quote_rows = plan_quotes(
            registry,
            uids,
            spots,
            today,
            capacity,
            max_expiries=config.quote_expiries,
            strikes_per_side=config.quote_strikes,
            order=config.quote_order,
        )
        symbols = [
            f"O:{s.decode().replace(' ', '')}" for s in registry.osi_symbols[self.quote_rows]
        ]
        topics: list[list[str]] = [[] for _ in self.links]
        per = config.quotes_per_connection
        for index in range(len(self.links)):
            topics[index] = [f"Q.{s}" for s in symbols[index * per : (index + 1) * per]]
        if config.trades == "all":
            topics[0].append("T.*")
        elif config.trades == "contracts":
            followed = [
                f"T.O:{s.decode().replace(' ', '')}"
                for uid in uids
                for s in registry.osi_symbols[self._live_rows(uid, today)]
            ]
            topics[0].extend(followed)
        if config.aggregates != "none":
            prefix = "A." if config.aggregates == "second" else "AM."
            topics[0].extend(f"{prefix}{s}" for s in symbols)
        self._topics = topics
        log.info(
            "polygon plan: %d quote contracts over %d connection(s), %d topics in all",
            len(self.quote_rows),
            len(self.links),
            sum(len(t) for t in topics),
        )

    def cover(self, rows: np.ndarray) -> int:
        """Also quote `rows` (another feed went stale for them), as far as the links have room.

        Returns how many were added. Added topics stay for the links' later sessions, until
        `uncover` releases them.
        """
        planned = set(self.quote_rows.tolist())
        wanted = [int(r) for r in rows.tolist() if int(r) not in planned]
        per = self.config.quotes_per_connection
        added = 0
        for index, link in enumerate(self.links):
            room = per - sum(1 for t in self._topics[index] if t.startswith("Q."))
            take, wanted = wanted[: max(room, 0)], wanted[max(room, 0) :]
            if not take:
                continue
            topics = [f"Q.O:{self.registry.contract(r).compact()}" for r in take]
            self._topics[index].extend(topics)
            self.quote_rows = np.concatenate([self.quote_rows, np.array(take, np.uint32)])
            self.covering.update(dict.fromkeys(take, index))
            added += len(take)
            self._change_session(link, "subscribe", topics)
        if added:
            self.covered += added
            log.warning("polygon: now also quoting %d contracts for a stale feed", added)
        return added

    def uncover(self, rows: np.ndarray) -> int:
        """Stop quoting those of `rows` that `cover` added (the stale feed is back).

        Rows of the plan are never released. Returns how many were released.
        """
        by_link: dict[int, list[int]] = {}
        for row in rows.tolist():
            index = self.covering.pop(int(row), None)
            if index is not None:
                by_link.setdefault(index, []).append(int(row))
        if not by_link:
            return 0
        released = []
        for index, taken in sorted(by_link.items()):
            topics = [f"Q.O:{self.registry.contract(r).compact()}" for r in taken]
            gone = set(topics)
            self._topics[index] = [t for t in self._topics[index] if t not in gone]
            released.extend(taken)
            self._change_session(self.links[index], "unsubscribe", topics)
        self.quote_rows = self.quote_rows[~np.isin(self.quote_rows, released)]
        self.released += len(released)
        log.info("polygon: no longer quoting %d contracts covered for a stale feed", len(released))
        return len(released)

    def _change_session(self, link: PolygonLink, action: str, topics: list[str]) -> None:
        """(Un)subscribe `topics` on `link`'s open session, if any, in the order of the calls.

        A session still subscribing sends the topics it copied at its start; the change is sent
        once it streams, for the topics that copy lacks (subscribe) or holds (unsubscribe).
        Without a session there is nothing to send: the next one subscribes `_topics`.
        """
        ws = link.ws
        if ws is None:
            return
        previous = self._session_change

        async def send() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            while link.ws is ws and link.state is not LinkState.STREAMING:
                await asyncio.sleep(0.05)
            if link.ws is not ws:
                return
            held = set(link.topics)
            if action == "subscribe":
                todo = [t for t in topics if t not in held]
                link.topics.extend(todo)
            else:
                todo = [t for t in topics if t in held]
                gone = set(todo)
                link.topics = [t for t in link.topics if t not in gone]
            if todo:
                await link.send_topics(ws, action, todo)

        task = asyncio.ensure_future(send())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._session_change = task

    def _live_rows(self, uid: int, today: int) -> np.ndarray:
        rows = self.registry.rows_of_underlying(uid)
        return rows[self.registry.expiry_days[rows] >= today]

    def _spots(self, uids: list[int]) -> dict[int, float]:
        """Spot by underlying id: the last snapshot's, else the state's."""
        spots = dict(self._rest_spots)
        daemon = self._daemon
        if daemon is not None and daemon.state is not None:
            held = daemon.state.underlying_column("spot")
            for uid in uids:
                if uid not in spots and uid < len(held) and np.isfinite(held[uid]):
                    spots[uid] = float(held[uid])
        return spots

    # -- backfill ----------------------------------------------------------------------------

    def request_backfill(self) -> None:
        self._backfill_wanted.set()

    async def _backfills(self) -> None:
        """The first backfill lists the contracts and makes the plan; later ones refresh."""
        delay = self.settings.backoff_initial
        while True:
            try:
                await self.backfill()
                break
            except (AuthError, RestError) as error:
                self.backfill_error = str(error)
                log.error("polygon: initial snapshot failed: %s; retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(self.settings.backoff_max, delay * 2)
        self.make_plan()
        self.plan_ready.set()
        self._backfill_wanted.clear()
        while True:
            await self._backfill_wanted.wait()
            self._backfill_wanted.clear()
            try:
                await self.backfill()
            except (AuthError, RestError) as error:
                self.backfill_error = str(error)
                log.error("polygon: backfill failed: %s", error)

    async def backfill(self) -> int:
        """Snapshot every followed underlying into the state; return the contracts seen."""
        self.last_backfill_started = time.monotonic()
        total = 0
        for underlying in self.underlyings:
            total += await self._backfill_underlying(underlying)
        self.backfilled_contracts = total
        self.backfill_error = None
        for link in self.links:
            link.metrics.backfills += 1
        log.info("polygon: backfilled %d contracts of %s", total, ",".join(self.underlyings))
        return total

    async def _backfill_underlying(self, underlying: str) -> int:
        assert self.rest is not None
        url: str | None = f"/v3/snapshot/options/{underlying}"
        params: dict[str, Any] | None = {"limit": self.config.rest_page_limit}
        seen = 0
        while url:
            body = await self.rest.get(url, params)
            params = None  # next_url carries the cursor and every parameter
            try:
                page = _SNAPSHOT.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                self._reject(
                    RejectKind.MALFORMED,
                    f"polygon: snapshot page of {underlying} rejected ({error})",
                    1,
                )
                break
            batch = normalize_snapshot(page, self.registry, self.decoder.resolver, time.time_ns())
            seen += len(page.results)
            if len(batch.underlyings):
                uid = int(batch.underlyings["underlying"][0])
                self._rest_spots[uid] = float(batch.underlyings["price"][0])
            batch = self._drop_older_quotes(batch)
            if len(batch) and self._emit is not None:
                self._emit(batch)
            url = page.next_url
        return seen

    def _drop_older_quotes(self, batch: TickBatch) -> TickBatch:
        """Keep snapshot quotes newer than what the state holds (live data may have won)."""
        daemon = self._daemon
        if daemon is None or daemon.state is None or not len(batch.quotes):
            return batch
        held = daemon.state.column("ts_quote")
        rows = batch.quotes["row"]
        known = rows < len(held)
        newer = ~known
        newer[known] = batch.quotes["ts"][known] > held[rows[known]]
        if newer.all():
            return batch
        batch.quotes = batch.quotes[newer]
        return batch

    # -- status ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return any(link.healthy() for link in self.links)

    def status(self) -> dict[str, Any]:
        links = [link.status() for link in self.links]
        return {
            "name": self.name,
            "healthy": self.healthy(),
            "underlyings": list(self.underlyings),
            "quote_contracts": len(self.quote_rows),
            "covering": len(self.covering),
            "covered": self.covered,
            "released": self.released,
            "contracts_listed": len(self.decoder.resolver),
            "registered_on_the_fly": self.decoder.resolver.registered,
            "aggregates": self.decoder.aggregates,
            "rejects": dict(self._reject_counts),
            "backfilled_contracts": self.backfilled_contracts,
            "backfill_error": self.backfill_error,
            "rest_requests": 0 if self.rest is None else self.rest.requests,
            "events_per_s": round(sum(link["events_per_s"] for link in links), 1),
            "links": links,
        }
