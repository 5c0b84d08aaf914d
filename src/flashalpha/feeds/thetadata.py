"""ThetaData through the Theta Terminal: its local stream (``ws://127.0.0.1:25520/v1/events``).

The Terminal holds the connection to ThetaData's servers and the credentials; we talk to it
locally. As ThetaData's streaming documentation and Python client describe it:

- Requests, one JSON object per message, ``id`` incremented per request::

      {"msg_type": "STREAM", "sec_type": "OPTION", "req_type": "QUOTE" | "TRADE", "add": true,
       "id": 7, "contract": {"root": "SPY", "expiration": 20260320, "strike": 600000, "right": "C"}}
      {"msg_type": "STREAM_BULK", "sec_type": "OPTION", "req_type": "TRADE", "add": true, "id": 8}

  ``add: false`` unsubscribes. Strikes are in 1/1000 dollars.
- Responses, one JSON object per message, typed by ``header.type``: ``STATUS`` (about once a
  second; ``header.status`` CONNECTED while the Terminal is connected upstream: our heartbeat),
  ``REQ_RESPONSE`` (``response`` SUBSCRIBED / ERROR / MAX_STREAMS_REACHED / INVALID_PERMS for
  ``req_id``), and ``QUOTE`` / ``TRADE`` / ``OHLC`` with a ``contract`` block (``root``, or
  ``symbol`` in newer Terminals) and a ``quote`` / ``trade`` / ``ohlc`` block whose time is
  ``ms_of_day`` (New York wall clock) on ``date`` (YYYYMMDD).

Exchange and condition codes are ThetaData's (`normalize.THETADATA_EXCHANGES`, `..._CONDITIONS`).
Contracts are discovered and backfilled from the Terminal's REST API
(``/v2/bulk_snapshot/option/quote``, ``/v2/bulk_snapshot/option/open_interest``,
``/v2/snapshot/stock/quote`` for the spot) on every (re)connect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from flashalpha import _thetadata_scan
from flashalpha.feeds.base import (
    AuthError,
    FeedError,
    LinkSettings,
    LinkState,
    RestClient,
    RestError,
    WebSocketLink,
    plan_quotes,
)
from flashalpha.feeds.normalize import (
    THETADATA_CONDITIONS,
    THETADATA_EXCHANGES,
    ContractResolver,
    RejectSink,
    build_open_interest,
    build_quotes,
    build_trades,
    build_underlyings,
    date_to_days,
    eastern_to_utc_ns,
    map_codes,
    valid_dates,
)
from flashalpha.feeds.polygon import link_settings
from flashalpha.instruments import InstrumentRegistry, OptionContract, parse_thetadata
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import RejectKind

log = logging.getLogger(__name__)

Size = Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)]
Code = Annotated[int, msgspec.Meta(ge=0)]
MsOfDay = Annotated[int, msgspec.Meta(ge=0, lt=86_400_000 + 3_600_000)]
Date = Annotated[int, msgspec.Meta(ge=19700101, le=20991231)]


# --- wire types ----------------------------------------------------------------------------


class ThetaHeader(msgspec.Struct, gc=False):
    # A literal decodes without allocating; an unknown type fails the fast path and is then
    # rejected message by message.
    type: Literal["QUOTE", "TRADE", "OHLC", "STATUS", "REQ_RESPONSE"]
    status: str = ""
    response: str | None = None
    req_id: int | None = None


class ThetaContract(msgspec.Struct, frozen=True, gc=False):
    """A contract block; frozen, so that it is hashable and keys the row cache directly."""

    security_type: str = "OPTION"
    root: str | None = None
    symbol: str | None = None
    expiration: int | None = None
    strike: int | None = None
    right: str | None = None


class ThetaQuote(msgspec.Struct, gc=False):
    ms_of_day: MsOfDay
    bid_size: Size
    bid: float
    ask_size: Size
    ask: float
    date: Date
    bid_exchange: Code = 0
    bid_condition: int = 0
    ask_exchange: Code = 0
    ask_condition: int = 0


class ThetaTrade(msgspec.Struct, gc=False):
    ms_of_day: MsOfDay
    size: Size
    price: float
    date: Date
    sequence: int = 0
    condition: Code = 0
    exchange: Code = 0


class ThetaOhlc(msgspec.Struct, gc=False):
    ms_of_day: MsOfDay = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    volume: int = 0
    count: int = 0
    date: int = 0


_NO_CONTRACT = msgspec.Raw(b"null")


class ThetaMessage(msgspec.Struct, gc=False):
    header: ThetaHeader
    #: Kept raw: its bytes key the row cache, and are parsed only for a contract not seen yet.
    contract: msgspec.Raw = _NO_CONTRACT
    quote: ThetaQuote | None = None
    trade: ThetaTrade | None = None
    ohlc: ThetaOhlc | None = None


_MESSAGES = msgspec.json.Decoder(list[ThetaMessage])
_MESSAGE = msgspec.json.Decoder(ThetaMessage)
_ENCODER = msgspec.json.Encoder()

_CONTRACT_BLOCK = msgspec.json.Decoder(ThetaContract | None)


def parse_contract(contract: ThetaContract | bytes | None) -> OptionContract:
    """ThetaData's contract block (``root`` or ``symbol``) as an `OptionContract`.

    Takes the decoded block or its raw JSON bytes; ValueError naming what is wrong.
    """
    if isinstance(contract, bytes):
        try:
            contract = _CONTRACT_BLOCK.decode(contract)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise ValueError(f"malformed contract block {contract!r}: {error}") from None
    if contract is None:
        raise ValueError("message has no contract block")
    if contract.security_type != "OPTION":
        raise ValueError(f"contract {contract!r} is a {contract.security_type}, not an OPTION")
    return parse_thetadata(
        {
            "root": contract.root if contract.root is not None else contract.symbol,
            "expiration": contract.expiration,
            "strike": contract.strike,
            "right": contract.right,
        }
    )


# --- decoding + normalization --------------------------------------------------------------


#: One quote or trade as the scanner (`_thetadata_scan.EventRecord`) and the msgspec path fill
#: it: a quote's bid, ask, bid_size, ask_size, bid_exchange, ask_exchange are price, ask, size,
#: ask_size, exchange, code; a trade's price, size, exchange, condition are price, size,
#: exchange, code. Prices in dollars; codes ThetaData's; ms_of_day and date (YYYYMMDD) as sent.
EVENT_DTYPE = np.dtype(
    [
        ("row", "i8"),
        ("price", "f8"),
        ("ask", "f8"),
        ("size", "i8"),
        ("ask_size", "i8"),
        ("exchange", "i8"),
        ("code", "i8"),
        ("ms_of_day", "i8"),
        ("date", "i8"),
    ]
)
if EVENT_DTYPE.itemsize != _thetadata_scan.record_size():  # pragma: no cover
    raise ImportError("flashalpha._thetadata_scan is stale: rebuild it (make install)")

_KIND_DEFERRED = _thetadata_scan.KIND_DEFERRED
_KIND_QUOTE = _thetadata_scan.KIND_QUOTE
_KIND_TRADE = _thetadata_scan.KIND_TRADE
_KIND_OHLC = _thetadata_scan.KIND_OHLC
#: Exchange and condition codes are unbounded ints on the wire; beyond the tables they are all
#: unknown, so the msgspec path clips them to fit the int64 column.
_CODE_LIMIT = 2**63 - 1


class ThetaDecoder:
    """Stream messages (one JSON object each) into a `TickBatch` plus the control messages.

    A burst is scanned in one call by a compiled scanner (`flashalpha._thetadata_scan`) that
    reads QUOTE, TRADE and OHLC messages of the Terminal's shape straight into records. Every
    frame it does not take (control messages, anything unusual or malformed) is decoded by
    msgspec into the `ThetaMessage` structs, which accept it or reject and count it
    (`RejectKind.MALFORMED`, naming the value). Contract blocks key the resolver's cache by
    their exact bytes; a block not seen yet is parsed, registered or rejected there.
    """

    def __init__(self, registry: InstrumentRegistry, reject: RejectSink, source: str = "thetadata"):
        self.source = source
        self.reject = reject
        self.resolver = ContractResolver(registry, parse_contract, reject, source)
        self.decode_errors = 0
        self.ohlc = 0

    def decode(self, frames: list[bytes | str], received_ns: int) -> tuple[TickBatch, list]:
        """Return the batch and the STATUS / REQ_RESPONSE messages, in order."""
        frames = frames if isinstance(frames, list) else list(frames)
        n = len(frames)
        events = np.empty(n, EVENT_DTYPE)
        kinds = np.empty(n, np.uint8)
        missing_at, missing_keys = _thetadata_scan.scan_messages(
            frames, self.resolver.cache, events, kinds
        )
        control: list[ThetaMessage] = []
        deferred = np.flatnonzero(kinds == _KIND_DEFERRED)
        if len(deferred):
            for index, key in self._decode_deferred(
                frames, deferred.tolist(), events, kinds, control
            ):
                missing_at.append(index)
                missing_keys.append(key)
        if missing_keys:
            events["row"][missing_at] = self.resolver.rows(missing_keys, len(missing_keys))
        self.ohlc += int(np.count_nonzero(kinds == _KIND_OHLC))
        is_quote = kinds == _KIND_QUOTE
        is_trade = kinds == _KIND_TRADE
        batch = TickBatch(
            quotes=self._quotes(events[is_quote]) if is_quote.any() else TickBatch.empty().quotes,
            trades=self._trades(events[is_trade]) if is_trade.any() else TickBatch.empty().trades,
            source=self.source,
            ts_received=received_ns,
        )
        return batch, control

    def _decode_deferred(
        self,
        frames: list[bytes | str],
        at: list[int],
        events: np.ndarray,
        kinds: np.ndarray,
        control: list[ThetaMessage],
    ) -> list[tuple[int, bytes]]:
        """Decode the frames the scanner left (`at`) into `events` / `control` with msgspec.

        Returns (index, contract block) of the quotes and trades among them (rows to resolve).
        """
        keys = []
        for index, message in self._messages(frames, at):
            kind = message.header.type
            if kind == "QUOTE" and message.quote is not None:
                q = message.quote
                events[index] = (
                    -1, q.bid, q.ask, q.bid_size, q.ask_size,
                    min(q.bid_exchange, _CODE_LIMIT), min(q.ask_exchange, _CODE_LIMIT),
                    q.ms_of_day, q.date,
                )  # fmt: skip
                kinds[index] = _KIND_QUOTE
                keys.append((index, bytes(message.contract)))
            elif kind == "TRADE" and message.trade is not None:
                t = message.trade
                events[index] = (
                    -1, t.price, 0.0, t.size, 0,
                    min(t.exchange, _CODE_LIMIT), min(t.condition, _CODE_LIMIT),
                    t.ms_of_day, t.date,
                )  # fmt: skip
                kinds[index] = _KIND_TRADE
                keys.append((index, bytes(message.contract)))
            elif kind == "OHLC":
                kinds[index] = _KIND_OHLC
            elif kind in ("STATUS", "REQ_RESPONSE"):
                control.append(message)
            else:
                self._malformed(f"unknown or incomplete message of type {kind!r}")
        return keys

    def _messages(self, frames: list[bytes | str], at: list[int]) -> list[tuple[int, ThetaMessage]]:
        """(index, message) of the frames at `at`: in one msgspec call, else one by one."""
        encoded = [f.encode() if isinstance(f, str) else f for f in map(frames.__getitem__, at)]
        if len(encoded) > 1:
            try:
                joined = b"[" + b",".join(encoded) + b"]"
                return list(zip(at, _MESSAGES.decode(joined), strict=True))
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
        messages = []
        for index, frame in zip(at, encoded, strict=True):
            try:
                messages.append((index, _MESSAGE.decode(frame)))
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                self._malformed(f"message rejected ({error}): {_excerpt(frame)}")
        return messages

    def _malformed(self, message: str) -> None:
        self.decode_errors += 1
        self.reject(RejectKind.MALFORMED, f"{self.source}: {message}", 1)

    def _times(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """UTC ns of (date, ms_of_day), and the mask of events whose date is a real date."""
        dates = events["date"]
        ok = valid_dates(dates)
        if not ok.all():
            bad = int((~ok).sum())
            first = int(dates[~ok][0])
            self.decode_errors += bad
            self.reject(
                RejectKind.MALFORMED,
                f"{self.source}: date {first} is not a calendar date YYYYMMDD ({bad} events)",
                bad,
            )
        ts = np.zeros(len(events), np.uint64)
        ts[ok] = eastern_to_utc_ns(dates[ok], events["ms_of_day"][ok])
        return ts, ok

    def _quotes(self, events: np.ndarray) -> np.ndarray:
        ts, ok = self._times(events)
        return build_quotes(
            np.where(ok, events["row"], -1),
            events["price"],
            events["ask"],
            events["size"],
            events["ask_size"],
            map_codes(THETADATA_EXCHANGES, events["exchange"]),
            map_codes(THETADATA_EXCHANGES, events["code"]),
            ts,
        )

    def _trades(self, events: np.ndarray) -> np.ndarray:
        ts, ok = self._times(events)
        return build_trades(
            np.where(ok, events["row"], -1),
            events["price"],
            events["size"],
            map_codes(THETADATA_EXCHANGES, events["exchange"]),
            map_codes(THETADATA_CONDITIONS, events["code"]),
            ts,
        )


def _excerpt(frame: bytes | str, limit: int = 120) -> str:
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- REST snapshots ------------------------------------------------------------------------


class RestHeader(msgspec.Struct):
    format: list[str] | None = None
    next_page: str | None = None
    error_type: str | None = None
    error_msg: str | None = None


class BulkItem(msgspec.Struct):
    ticks: list[list[float]]
    contract: ThetaContract


class BulkResponse(msgspec.Struct):
    header: RestHeader
    response: list[BulkItem] = []


class TickResponse(msgspec.Struct):
    header: RestHeader
    response: list[list[float]] = []


_BULK = msgspec.json.Decoder(BulkResponse)
_TICKS = msgspec.json.Decoder(TickResponse)


def _column(header: RestHeader, name: str) -> int:
    if not header.format or name not in header.format:
        raise ValueError(f"REST response lacks the {name!r} column (format {header.format})")
    return header.format.index(name)


def _next_page(header: RestHeader) -> str | None:
    page = header.next_page
    return None if page in (None, "", "null") else page


# --- the feed ------------------------------------------------------------------------------


def default_rest_url(stream_url: str) -> str:
    """The Terminal's REST base for a stream URL: port 25510 beside the default 25520."""
    parts = urllib.parse.urlsplit(stream_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port
    if port is None or port == 25520:
        port = 25510
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{host}:{port}"


class ThetaLink(WebSocketLink):
    """The one connection to the Terminal: send every stream request, then stream."""

    def __init__(self, feed: ThetaDataFeed) -> None:
        super().__init__("thetadata", feed.config.url, feed.settings)
        self.feed = feed
        self.next_id = 0
        self.requests: dict[int, tuple[str, str]] = {}
        self.responses: dict[str, int] = {}
        self.upstream = "UNKNOWN"
        self.streams = 0
        self.max_streams_hit = False
        #: The session's task requesting every planned stream (`_subscribe`).
        self.subscriber: asyncio.Task | None = None

    async def session(self, ws: Any) -> None:
        feed = self.feed
        self._set_state(LinkState.SUBSCRIBING)
        connected_at = time.monotonic()
        # The first backfill (which lists the contracts) covers sessions opened before it ends.
        initial = not feed.plan_ready.is_set()
        self.max_streams_hit = False
        await feed.plan_ready.wait()
        sender = self.subscriber = asyncio.create_task(
            self._subscribe(ws), name="thetadata-subscribe"
        )
        if not initial and feed.last_backfill_started < connected_at:
            feed.request_backfill()
        try:
            await self.stream(ws, self._on_frames)
        finally:
            sender.cancel()

    def request(self, msg_type: str, req_type: str, add: bool, contract: dict | None) -> bytes:
        request: dict[str, Any] = {
            "msg_type": msg_type,
            "sec_type": "OPTION",
            "req_type": req_type,
            "add": add,
            "id": self.next_id,
        }
        if contract is not None:
            request["contract"] = contract
        label = req_type if contract is None else f"{req_type} {contract}"
        self.requests[self.next_id] = (req_type, label)
        self.next_id += 1
        return _ENCODER.encode(request)

    async def _subscribe(self, ws: Any) -> None:
        """Request every planned stream (the Terminal forgets them with the connection)."""
        feed = self.feed
        self.streams = 0
        for index, contract in enumerate(feed.quote_contracts):
            if self.max_streams_hit:
                break
            await ws.send(self.request("STREAM", "QUOTE", True, contract))
            self.streams += 1
            if index % 256 == 255:
                await asyncio.sleep(0)
        if feed.config.trades == "bulk":
            await ws.send(self.request("STREAM_BULK", "TRADE", True, None))
        elif feed.config.trades == "contracts":
            for index, contract in enumerate(feed.trade_contracts):
                await ws.send(self.request("STREAM", "TRADE", True, contract))
                if index % 256 == 255:
                    await asyncio.sleep(0)
        log.info(
            "thetadata: requested %d quote streams, trades=%s", self.streams, feed.config.trades
        )

    def _on_frames(self, frames: list, received_ns: int) -> None:
        control = self.feed.on_frames(self, frames, received_ns)
        for message in control:
            header = message.header
            self.metrics.statuses += 1
            if header.type == "STATUS":
                if header.status != self.upstream:
                    level = logging.INFO if header.status == "CONNECTED" else logging.WARNING
                    log.log(level, "thetadata: terminal status %s", header.status)
                    self.upstream = header.status
                continue
            response = header.response or "UNKNOWN"
            self.responses[response] = self.responses.get(response, 0) + 1
            request = self.requests.pop(header.req_id, ("?", f"request {header.req_id}"))
            if response == "SUBSCRIBED":
                continue
            if response == "MAX_STREAMS_REACHED":
                if not self.max_streams_hit:
                    log.warning(
                        "thetadata: MAX_STREAMS_REACHED at %s: the subscription allows no more "
                        "streams (lower thetadata.quote_streams)",
                        request[1],
                    )
                self.max_streams_hit = True
                self.last_error = "MAX_STREAMS_REACHED"
            elif response == "INVALID_PERMS":
                self.last_error = f"INVALID_PERMS for {request[1]}"
                log.error("thetadata: no permission for %s (INVALID_PERMS)", request[1])
            else:
                self.last_error = f"{response} for {request[1]}"
                log.warning("thetadata: request %s answered %s", request[1], response)

    def healthy(self) -> bool:
        return super().healthy() and self.upstream in ("CONNECTED", "UNKNOWN")

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "terminal": self.upstream,
            "streams_requested": self.streams,
            "responses": dict(self.responses),
            "max_streams_reached": self.max_streams_hit,
        }


class ThetaDataFeed:
    """`--feed thetadata`: option quotes and trades from a local Theta Terminal."""

    name = "thetadata"

    def __init__(
        self,
        registry: InstrumentRegistry,
        config: Any,
        underlyings: tuple[str, ...],
        settings: LinkSettings | None = None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        if not underlyings and config.trades != "bulk":
            raise ValueError(
                "the thetadata feed needs underlyings to follow: --underlyings SPY,QQQ,... "
                "(or feed.underlyings in the config)"
            )
        self.registry = registry
        self.config = config
        self.underlyings = tuple(u.upper() for u in underlyings)
        self.settings = settings or link_settings(config)
        self.rest_url = config.rest_url or default_rest_url(config.url)
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._daemon: Any = None
        self._reject_counts: dict[str, int] = {}
        self.decoder = ThetaDecoder(registry, self._reject)
        self.link = ThetaLink(self)
        self.links = [self.link]
        self.plan_ready = asyncio.Event()
        self.quote_rows = np.empty(0, np.uint32)
        self.quote_contracts: list[dict] = []
        self.trade_contracts: list[dict] = []
        #: Rows streamed as cover for a stale feed (`cover`).
        self.covering: set[int] = set()
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

    def attach(self, daemon: Any) -> None:
        self._daemon = daemon

    def _reject(self, kind: RejectKind, message: str, n: int) -> None:
        self._reject_counts[kind.name.lower()] = self._reject_counts.get(kind.name.lower(), 0) + n
        if self._daemon is not None and self._daemon.state is not None:
            self._daemon.count_reject(kind, message, n)
        else:
            log.warning("%s", message)

    async def run(self, emit: Callable[[TickBatch], None]) -> None:
        self._emit = emit
        self.rest = RestClient(
            self.rest_url, self.config.rest_rate, timeout=self.settings.open_timeout
        )
        tasks = [
            asyncio.create_task(self._backfills(), name="thetadata-backfill"),
            asyncio.create_task(self.link.run(), name="thetadata"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.rest.close()

    def on_frames(self, link: ThetaLink, frames: list, received_ns: int) -> list:
        errors = self.decoder.decode_errors
        batch, control = self.decoder.decode(frames, received_ns)
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
        return control

    # -- plan --------------------------------------------------------------------------------

    def _uids(self) -> list[int]:
        uids = []
        for underlying in self.underlyings:
            try:
                uids.append(self.registry.underlying_id(underlying))
            except KeyError:
                log.warning("thetadata: no contracts listed for %s", underlying)
        return uids

    def make_plan(self) -> None:
        registry, config = self.registry, self.config
        uids = self._uids()
        spots = dict(self._rest_spots)
        daemon = self._daemon
        if daemon is not None and daemon.state is not None:
            held = daemon.state.underlying_column("spot")
            for uid in uids:
                if uid not in spots and uid < len(held) and np.isfinite(held[uid]):
                    spots[uid] = float(held[uid])
        today = date_to_days(self._today())
        self.quote_rows = plan_quotes(
            registry,
            uids,
            spots,
            today,
            config.quote_streams,
            max_expiries=config.quote_expiries,
            strikes_per_side=config.quote_strikes,
            order=config.quote_order,
        )
        self.quote_contracts = [registry.contract(int(r)).thetadata() for r in self.quote_rows]
        trade_rows = []
        if config.trades == "contracts":
            for uid in uids:
                rows = registry.rows_of_underlying(uid)
                trade_rows.extend(rows[registry.expiry_days[rows] >= today].tolist())
        self.trade_contracts = [registry.contract(r).thetadata() for r in trade_rows]
        log.info(
            "thetadata plan: %d quote streams, %d trade streams (trades=%s)",
            len(self.quote_contracts),
            len(self.trade_contracts),
            config.trades,
        )

    def cover(self, rows: np.ndarray) -> int:
        """Also stream quotes of `rows` (another feed went stale for them), within the limit.

        Returns how many were added; they stay for later sessions until `uncover`.
        """
        planned = set(self.quote_rows.tolist())
        room = self.config.quote_streams - len(self.quote_contracts)
        take = [int(r) for r in rows.tolist() if int(r) not in planned][: max(room, 0)]
        if not take:
            return 0
        contracts = [self.registry.contract(r).thetadata() for r in take]
        self.quote_contracts.extend(contracts)
        self.quote_rows = np.concatenate([self.quote_rows, np.array(take, np.uint32)])
        self.covering.update(take)
        self.covered += len(take)
        if self.link.state is LinkState.STREAMING:
            self._change_session(True, contracts)
        log.warning(
            "thetadata: now also streaming quotes of %d contracts for a stale feed", len(take)
        )
        return len(take)

    def uncover(self, rows: np.ndarray) -> int:
        """Stop the quote streams of those of `rows` that `cover` added (the stale feed is
        back): ``add: false`` requests. Rows of the plan are never released; returns how many
        were released."""
        release = {int(r) for r in rows.tolist()} & self.covering
        if not release:
            return 0
        self.covering -= release
        gone = np.isin(self.quote_rows, np.fromiter(release, np.int64, len(release))).tolist()
        contracts = [c for c, drop in zip(self.quote_contracts, gone, strict=True) if drop]
        # A new list: a session's subscriber may be iterating the old one (see below).
        self.quote_contracts = [
            c for c, drop in zip(self.quote_contracts, gone, strict=True) if not drop
        ]
        self.quote_rows = self.quote_rows[~np.asarray(gone, bool)]
        self.released += len(release)
        self._change_session(False, contracts)
        log.info(
            "thetadata: stopped the quote streams of %d contracts covered for a stale feed",
            len(release),
        )
        return len(release)

    def _change_session(self, add: bool, contracts: list[dict]) -> None:
        """Request (`add`) or stop quote streams on the open session, in the order of calls.

        A stop waits for the session's own subscriber, which may still be requesting the list
        it started with, so that the stop comes after that stream's request.
        """
        link = self.link
        ws = link.ws
        if ws is None:
            return  # the next session requests `quote_contracts` as they are then
        previous = self._session_change
        subscriber = link.subscriber

        async def send() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            if not add and subscriber is not None and not subscriber.done():
                await asyncio.wait({subscriber})
            for index, contract in enumerate(contracts):
                if link.ws is not ws:
                    return
                await ws.send(link.request("STREAM", "QUOTE", add, contract))
                if index % 256 == 255:
                    await asyncio.sleep(0)

        task = asyncio.ensure_future(send())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._session_change = task

    # -- backfill ----------------------------------------------------------------------------

    def request_backfill(self) -> None:
        self._backfill_wanted.set()

    async def _backfills(self) -> None:
        delay = self.settings.backoff_initial
        while True:
            try:
                await self.backfill()
                break
            except (AuthError, RestError) as error:
                self.backfill_error = str(error)
                log.error("thetadata: initial snapshot failed: %s; retrying in %.1fs", error, delay)
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
                log.error("thetadata: backfill failed: %s", error)

    async def backfill(self) -> int:
        self.last_backfill_started = time.monotonic()
        total = 0
        for underlying in self.underlyings:
            total += await self._backfill_quotes(underlying)
            await self._backfill_open_interest(underlying)
            await self._backfill_spot(underlying)
        self.backfilled_contracts = total
        self.backfill_error = None
        self.link.metrics.backfills += 1
        log.info("thetadata: backfilled %d contracts of %s", total, ",".join(self.underlyings))
        return total

    async def _pages(self, path: str, params: dict[str, Any]):
        assert self.rest is not None
        url: str | None = path
        while url:
            body = await self.rest.get(url, params)
            params = None
            try:
                page = _BULK.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                self._reject(RejectKind.MALFORMED, f"thetadata: REST {path} rejected ({error})", 1)
                return
            yield page
            url = _next_page(page.header)

    def _rows(self, items: list[BulkItem]) -> np.ndarray:
        return self.decoder.resolver.rows([item.contract for item in items], len(items))

    async def _backfill_quotes(self, underlying: str) -> int:
        seen = 0
        async for page in self._pages(
            "/v2/bulk_snapshot/option/quote", {"root": underlying, "exp": 0}
        ):
            items = [item for item in page.response if item.ticks]
            seen += len(items)
            if not items:
                continue
            try:
                columns = [
                    _column(page.header, name)
                    for name in (
                        "ms_of_day", "bid_size", "bid_exchange", "bid",
                        "ask_size", "ask_exchange", "ask", "date",
                    )
                ]  # fmt: skip
            except ValueError as error:
                self._reject(RejectKind.MALFORMED, f"thetadata: {error}", 1)
                return seen
            ticks = np.array([item.ticks[-1] for item in items], np.float64)[:, columns]
            rows = self._rows(items)
            ms, dates = ticks[:, 0].astype(np.int64), ticks[:, 7].astype(np.int64)
            ok = valid_dates(dates) & (dates > 0)
            ts = np.zeros(len(items), np.uint64)
            ts[ok] = eastern_to_utc_ns(dates[ok], ms[ok])
            usable = ok & (ticks[:, 3] > 0) | ok & (ticks[:, 6] > 0)
            quotes = build_quotes(
                np.where(usable, rows, -1),
                ticks[:, 3],
                ticks[:, 6],
                ticks[:, 1].astype(np.uint32),
                ticks[:, 4].astype(np.uint32),
                map_codes(THETADATA_EXCHANGES, ticks[:, 2]),
                map_codes(THETADATA_EXCHANGES, ticks[:, 5]),
                ts,
            )
            self._emit_backfill(TickBatch(quotes=self._newer(quotes), source="thetadata-rest"))
        return seen

    async def _backfill_open_interest(self, underlying: str) -> None:
        async for page in self._pages(
            "/v2/bulk_snapshot/option/open_interest", {"root": underlying, "exp": 0}
        ):
            items = [item for item in page.response if item.ticks]
            if not items:
                continue
            try:
                column = _column(page.header, "open_interest")
            except ValueError as error:
                self._reject(RejectKind.MALFORMED, f"thetadata: {error}", 1)
                return
            values = np.array([item.ticks[-1][column] for item in items], np.float64)
            records = build_open_interest(
                self._rows(items),
                np.clip(values, 0, 4_294_967_295).astype(np.uint32),
                np.full(len(items), time.time_ns(), np.uint64),
            )
            self._emit_backfill(TickBatch(open_interest=records, source="thetadata-rest"))

    async def _backfill_spot(self, underlying: str) -> None:
        assert self.rest is not None
        try:
            body = await self.rest.get("/v2/snapshot/stock/quote", {"root": underlying})
            page = _TICKS.decode(body)
            bid = page.response[-1][_column(page.header, "bid")]
            ask = page.response[-1][_column(page.header, "ask")]
        except (
            RestError,
            msgspec.DecodeError,
            msgspec.ValidationError,
            ValueError,
            IndexError,
        ) as error:
            log.info("thetadata: no spot for %s from the terminal (%s)", underlying, error)
            return
        try:
            uid = self.registry.underlying_id(underlying)
        except KeyError:
            return
        if bid > 0 and ask >= bid:
            spot = (bid + ask) / 2
            self._rest_spots[uid] = spot
            ticks = build_underlyings(
                np.array([uid], np.uint32),
                np.array([spot], np.float64),
                np.array([time.time_ns()], np.uint64),
            )
            self._emit_backfill(TickBatch(underlyings=ticks, source="thetadata-rest"))

    def _newer(self, quotes: np.ndarray) -> np.ndarray:
        daemon = self._daemon
        if daemon is None or daemon.state is None or not len(quotes):
            return quotes
        held = daemon.state.column("ts_quote")
        rows = quotes["row"]
        known = rows < len(held)
        keep = ~known
        keep[known] = quotes["ts"][known] > held[rows[known]]
        return quotes[keep]

    def _emit_backfill(self, batch: TickBatch) -> None:
        if self._emit is not None and len(batch):
            self._emit(batch)

    # -- status ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return self.link.healthy()

    def status(self) -> dict[str, Any]:
        link = self.link.status()
        return {
            "name": self.name,
            "healthy": self.healthy(),
            "underlyings": list(self.underlyings),
            "quote_contracts": len(self.quote_contracts),
            "covering": len(self.covering),
            "covered": self.covered,
            "released": self.released,
            "trade_contracts": len(self.trade_contracts),
            "contracts_listed": len(self.decoder.resolver),
            "registered_on_the_fly": self.decoder.resolver.registered,
            "ohlc": self.decoder.ohlc,
            "rejects": dict(self._reject_counts),
            "backfilled_contracts": self.backfilled_contracts,
            "backfill_error": self.backfill_error,
            "rest_url": self.rest_url,
            "events_per_s": link["events_per_s"],
            "links": [link],
        }


__all__ = ["FeedError", "ThetaDataFeed", "ThetaDecoder", "default_rest_url", "parse_contract"]
