"""A fake Theta Terminal: its stream (``/v1/events``) and the REST snapshots the feed uses.

Stream: a ``STATUS`` message (``CONNECTED``) every `heartbeat_interval` seconds; requests
``STREAM`` (QUOTE / TRADE for one contract, ``add`` true or false) and ``STREAM_BULK`` (TRADE:
the full trade stream, which sends the contract's last quote and an OHLC before each trade),
each answered by a ``REQ_RESPONSE`` carrying the request's ``id``: ``SUBSCRIBED``, ``ERROR``
(a malformed request), ``MAX_STREAMS_REACHED`` (beyond `max_streams` quote streams) or
``INVALID_PERMS`` (a ``sec_type`` other than OPTION). Like the Terminal, requests in Python's
dict notation (the documentation's samples send ``str(dict)``) are understood too. Data
messages carry the contract block and times as ``ms_of_day`` (New York) and ``date``.

REST: ``/v2/bulk_snapshot/option/quote``, ``/v2/bulk_snapshot/option/open_interest`` (``root``,
``exp=0``) and ``/v2/snapshot/stock/quote`` (``root``), in the Terminal's header + response form.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
from websockets.datastructures import Headers
from websockets.http11 import Response

from flashalpha.feeds.fakes.market import MarketSource
from flashalpha.feeds.fakes.server import FakeServer, Session, json_response
from flashalpha.feeds.normalize import THETADATA_CONDITIONS, THETADATA_EXCHANGES, TradeCondition
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import Right

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
#: Our exchange code -> ThetaData's.
EXCHANGE_CODES = np.zeros(256, np.int64)
for _code, _ours in enumerate(THETADATA_EXCHANGES.tolist()):
    if _ours and not EXCHANGE_CODES[_ours]:
        EXCHANGE_CODES[_ours] = _code
#: Our trade condition -> a ThetaData condition of that category.
CONDITION_CODES = np.zeros(256, np.int64)
for _ours, _code in {
    TradeCondition.REGULAR: 18,
    TradeCondition.INTERMARKET_SWEEP: 95,
    TradeCondition.SINGLE_LEG_AUCTION: 125,
    TradeCondition.SINGLE_LEG_CROSS: 127,
    TradeCondition.SINGLE_LEG_FLOOR: 129,
    TradeCondition.MULTI_LEG: 130,
    TradeCondition.STOCK_OPTIONS: 138,
    TradeCondition.LATE: 2,
    TradeCondition.EXTENDED_HOURS: 148,
}.items():
    CONDITION_CODES[_ours] = _code
assert all(THETADATA_CONDITIONS[c] == o for o, c in enumerate(CONDITION_CODES.tolist()) if c)

QUOTE_FORMAT = [
    "ms_of_day",
    "bid_size",
    "bid_exchange",
    "bid",
    "bid_condition",
    "ask_size",
    "ask_exchange",
    "ask",
    "ask_condition",
    "date",
]
_ENCODER = msgspec.json.Encoder()
_STATUS = _ENCODER.encode({"header": {"type": "STATUS", "status": "CONNECTED"}})


def eastern_clock(ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(date YYYYMMDD, ms_of_day) in New York time of UTC nanosecond timestamps."""
    ts_ns = np.asarray(ts_ns, np.int64)
    dates = np.zeros(len(ts_ns), np.int64)
    ms = np.zeros(len(ts_ns), np.int64)
    for second in np.unique(ts_ns // 1_000_000_000).tolist():  # one zone lookup per second
        local = dt.datetime.fromtimestamp(second, NEW_YORK)
        at = ts_ns // 1_000_000_000 == second
        dates[at] = local.year * 10_000 + local.month * 100 + local.day
        midnight_ms = (local.hour * 3600 + local.minute * 60 + local.second) * 1000
        ms[at] = midnight_ms + (ts_ns[at] // 1_000_000) % 1000
    return dates, ms


def parse_request(text: str | bytes) -> dict:
    """A request in JSON or in Python's dict notation (which the Terminal accepts too)."""
    try:
        request = msgspec.json.decode(text)
    except msgspec.DecodeError:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        lenient = text.replace("'", '"').replace("True", "true").replace("False", "false")
        request = msgspec.json.decode(lenient)
    if not isinstance(request, dict):
        raise ValueError("request is not an object")
    return request


class ThetaSession(Session):
    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self.quote_mask = np.zeros(0, bool)
        self.trade_mask = np.zeros(0, bool)
        self.bulk_trades = False
        self.requests = 0


class FakeThetaTerminal(FakeServer):
    """The Theta Terminal's stream and REST API over a market source."""

    rest_prefixes = ("/v2/", "/v3/")

    def __init__(
        self,
        market: MarketSource,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_streams: int = 10_000,
        heartbeat_interval: float = 1.0,
        tick_interval: float = 0.05,
        use_symbol: bool = False,
    ) -> None:
        super().__init__(market, host, port, tick_interval)
        self.max_streams = max_streams
        self.heartbeat_interval = heartbeat_interval
        #: Newer Terminals name the root "symbol" in contract blocks.
        self.use_symbol = use_symbol
        self.requests: list[dict] = []
        self._contracts: list[bytes] = []

    # -- contracts ---------------------------------------------------------------------------

    def contract_blocks(self) -> list[bytes]:
        """The encoded contract block of every market row, extended as rows appear."""
        registry = self.market.registry
        key = "symbol" if self.use_symbol else "root"
        for row in range(len(self._contracts), registry.count):
            block = registry.contract(row).thetadata()
            block = {
                "security_type": "OPTION",
                key: block["root"],
                **{k: v for k, v in block.items() if k != "root"},
            }
            self._contracts.append(_ENCODER.encode(block))
        return self._contracts

    def row_of(self, contract: Any) -> int:
        from flashalpha.instruments import parse_thetadata

        try:
            return self.market.registry.get_row(parse_thetadata(contract).compact())
        except ValueError:
            return -1

    # -- stream ------------------------------------------------------------------------------

    def new_session(self, connection: Any) -> ThetaSession:
        return ThetaSession(connection)

    async def session(self, session: ThetaSession) -> None:  # type: ignore[override]
        heartbeat = asyncio.create_task(self._heartbeat(session))
        try:
            async for message in session.connection:
                await self._on_request(session, message)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, session: ThetaSession) -> None:
        while True:
            if not self.stalled:
                with contextlib.suppress(Exception):
                    await session.send(_STATUS)
            await asyncio.sleep(self.heartbeat_interval)

    async def _respond(self, session: ThetaSession, req_id: Any, response: str) -> None:
        if self.stalled:
            return
        header = {"type": "REQ_RESPONSE", "status": "CONNECTED", "response": response}
        header["req_id"] = req_id if isinstance(req_id, int) else -1
        await session.send(_ENCODER.encode({"header": header}))

    async def _on_request(self, session: ThetaSession, message: str | bytes) -> None:
        try:
            request = parse_request(message)
        except (msgspec.DecodeError, ValueError):
            await self._respond(session, -1, "ERROR")
            return
        self.requests.append(request)
        session.requests += 1
        req_id = request.get("id")
        msg_type, req_type = request.get("msg_type"), request.get("req_type")
        add = request.get("add", True) is not False
        if request.get("sec_type") != "OPTION":
            await self._respond(session, req_id, "INVALID_PERMS")
            return
        count = self.market.registry.count
        for name in ("quote_mask", "trade_mask"):
            mask = getattr(session, name)
            if len(mask) < count:
                setattr(session, name, np.concatenate([mask, np.zeros(count - len(mask), bool)]))
        if msg_type == "STREAM_BULK" and req_type == "TRADE":
            session.bulk_trades = add
            await self._respond(session, req_id, "SUBSCRIBED")
            return
        if msg_type != "STREAM" or req_type not in ("QUOTE", "TRADE"):
            await self._respond(session, req_id, "ERROR")
            return
        contract = request.get("contract")
        if not isinstance(contract, dict):
            await self._respond(session, req_id, "ERROR")
            return
        contract = {**contract}
        for field in ("expiration", "strike"):
            if isinstance(contract.get(field), str) and contract[field].isdigit():
                contract[field] = int(contract[field])
        row = self.row_of(contract)
        if req_type == "QUOTE":
            full = int(session.quote_mask.sum()) >= self.max_streams
            if add and row >= 0 and not session.quote_mask[row] and full:
                await self._respond(session, req_id, "MAX_STREAMS_REACHED")
                return
            if row >= 0:
                session.quote_mask[row] = add
        elif row >= 0:
            session.trade_mask[row] = add
        # Like the Terminal: SUBSCRIBED even for a contract that does not exist.
        await self._respond(session, req_id, "SUBSCRIBED")

    async def broadcast(self, batch: TickBatch) -> None:
        blocks = self.contract_blocks()
        for session in list(self.sessions):
            frames = self._frames(session, batch, blocks)
            for frame in frames:
                try:
                    await session.send(frame)
                except Exception:
                    break
            session.sent_events += len(frames)

    def _quote_frames(self, quotes: np.ndarray, blocks: list[bytes]) -> list[bytes]:
        dates, ms = eastern_clock(quotes["ts"])
        frames = []
        for row, m, bs, bx, bid, as_, ax, ask, date in zip(
            quotes["row"].tolist(),
            ms.tolist(),
            quotes["bid_size"].tolist(),
            EXCHANGE_CODES[quotes["bid_exchange"]].tolist(),
            quotes["bid"].tolist(),
            quotes["ask_size"].tolist(),
            EXCHANGE_CODES[quotes["ask_exchange"]].tolist(),
            quotes["ask"].tolist(),
            dates.tolist(),
            strict=True,
        ):
            quote = _ENCODER.encode(
                {
                    "ms_of_day": m,
                    "bid_size": bs,
                    "bid_exchange": bx,
                    "bid": bid,
                    "bid_condition": 50,
                    "ask_size": as_,
                    "ask_exchange": ax,
                    "ask": ask,
                    "ask_condition": 50,
                    "date": date,
                }
            )
            frames.append(
                b'{"header":{"type":"QUOTE","status":"CONNECTED"},"contract":'
                + blocks[row]
                + b',"quote":'
                + quote
                + b"}"
            )
        return frames

    def _frames(self, session: ThetaSession, batch: TickBatch, blocks: list[bytes]) -> list[bytes]:
        frames: list[bytes] = []
        quotes = batch.quotes
        if len(quotes) and len(session.quote_mask):
            rows = quotes["row"]
            size = len(session.quote_mask)
            frames += self._quote_frames(
                quotes[(rows < size) & session.quote_mask[np.minimum(rows, size - 1)]], blocks
            )
        trades = batch.trades
        if len(trades) and (session.bulk_trades or len(session.trade_mask)):
            if not session.bulk_trades:
                rows = trades["row"]
                size = len(session.trade_mask)
                trades = trades[(rows < size) & session.trade_mask[np.minimum(rows, size - 1)]]
            dates, ms = eastern_clock(trades["ts"])
            for index, (row, m, size_, cond, price, exch, date) in enumerate(
                zip(
                    trades["row"].tolist(),
                    ms.tolist(),
                    trades["size"].tolist(),
                    CONDITION_CODES[np.minimum(trades["condition"], 255)].tolist(),
                    trades["price"].tolist(),
                    EXCHANGE_CODES[trades["exchange"]].tolist(),
                    dates.tolist(),
                    strict=True,
                )
            ):
                if session.bulk_trades:
                    # The full trade stream sends the last quote and an OHLC before a trade.
                    held = self.book.quotes[row : row + 1]
                    if held["ts"][0]:
                        frames += self._quote_frames(held, blocks)
                    ohlc = _ENCODER.encode(
                        {"ms_of_day": m, "open": price, "high": price, "low": price,
                         "close": price, "volume": size_, "count": 1, "date": date}
                    )  # fmt: skip
                    frames.append(
                        b'{"header":{"type":"OHLC","status":"CONNECTED"},"contract":'
                        + blocks[row]
                        + b',"ohlc":'
                        + ohlc
                        + b"}"
                    )
                trade = _ENCODER.encode(
                    {
                        "ms_of_day": m,
                        "sequence": index,
                        "size": size_,
                        "condition": cond,
                        "price": price,
                        "exchange": exch,
                        "date": date,
                    }
                )
                frames.append(
                    b'{"header":{"type":"TRADE","status":"CONNECTED"},"contract":'
                    + blocks[row]
                    + b',"trade":'
                    + trade
                    + b"}"
                )
        return frames

    async def wait_for_sessions(self, count: int, timeout: float = 10.0) -> None:
        async def connected() -> None:
            while len(self.sessions) < count:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(connected(), timeout)

    # -- REST --------------------------------------------------------------------------------

    def _header(self, columns: list[str]) -> dict:
        return {
            "latency_ms": 1,
            "error_type": "null",
            "error_msg": "null",
            "next_page": "null",
            "format": columns,
        }

    def rest(self, path: str, query: dict[str, str], headers: Headers, base: str) -> Response:
        root = query.get("root", "").upper()
        book, registry = self.book, self.market.registry
        if path == "/v2/snapshot/stock/quote":
            try:
                uid = registry.underlying_id(root)
            except KeyError:
                return json_response(
                    200,
                    {
                        "header": {**self._header(QUOTE_FORMAT), "error_type": "NO_DATA"},
                        "response": [],
                    },
                )
            spot = float(book.spot[uid])
            date, ms = eastern_clock(np.array([book.ts_spot[uid]], np.int64))
            tick = [
                int(ms[0]),
                100,
                5,
                round(spot - 0.01, 2),
                0,
                100,
                5,
                round(spot + 0.01, 2),
                0,
                int(date[0]),
            ]
            return json_response(200, {"header": self._header(QUOTE_FORMAT), "response": [tick]})
        if path not in ("/v2/bulk_snapshot/option/quote", "/v2/bulk_snapshot/option/open_interest"):
            return json_response(404, {"header": {**self._header([]), "error_type": "INVALID_URL"}})
        if query.get("exp", "0") != "0":
            return json_response(
                400, {"header": {**self._header([]), "error_type": "UNSUPPORTED_EXP"}}
            )
        rows = book.rows_of(root)
        response = []
        if path.endswith("/quote"):
            quotes = book.quotes[rows]
            dates, ms = eastern_clock(quotes["ts"])
            for i, row in enumerate(rows.tolist()):
                q = quotes[i]
                if not q["ts"]:
                    continue
                contract = registry.contract(row).thetadata()
                tick = [int(ms[i]), int(q["bid_size"]), int(EXCHANGE_CODES[q["bid_exchange"]]),
                        float(q["bid"]), 50, int(q["ask_size"]),
                        int(EXCHANGE_CODES[q["ask_exchange"]]), float(q["ask"]), 50,
                        int(dates[i])]  # fmt: skip
                response.append({"ticks": [tick], "contract": contract})
            return json_response(200, {"header": self._header(QUOTE_FORMAT), "response": response})
        today = dt.datetime.now(NEW_YORK)
        date = today.year * 10_000 + today.month * 100 + today.day
        for row in rows.tolist():
            contract = registry.contract(row).thetadata()
            tick = [23_400_000, int(book.open_interest[row]), date]
            response.append({"ticks": [tick], "contract": contract})
        return json_response(
            200,
            {"header": self._header(["ms_of_day", "open_interest", "date"]), "response": response},
        )


__all__ = ["FakeThetaTerminal", "Right", "eastern_clock", "parse_request"]
