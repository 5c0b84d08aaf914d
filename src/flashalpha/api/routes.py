"""REST routes of DESIGN.md §5: health, underlyings, chains, contracts.

Handlers run on the daemon's loop and read the state through the daemon's `StateReader`
(lock-free, consistent per row). Rows are rendered by `api.schemas.contract_structs` (the
rows of `state.rows.contract_rows`, faster) and encoded with msgspec straight to bytes; the
return annotations only document the shapes in the OpenAPI schema. Bad parameters are refused
with 400, unknown symbols with 404, each with a `detail` naming the value.

A chain of more than `api.off_loop_rows` contracts (SPX has ~24k: 10 MB of JSON, ~0.1 s of
rendering) is read and rendered on the `RenderPool` thread instead of the loop, so ingest and
hub pushes keep running while it is built: the thread holds the GIL for at most the
interpreter's switch interval at a time, instead of the loop stalling for the whole render.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

import msgspec
import numpy as np
from litestar import Response, get
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.exceptions import ClientException, NotFoundException
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

from flashalpha import __version__
from flashalpha.api.schemas import (
    ContractRow,
    ErrorBody,
    Health,
    UnderlyingRow,
    contract_structs,
    underlying_rows,
)
from flashalpha.instruments import parse_symbol
from flashalpha.state.rows import expiry_days, sort_chain

#: The shapes `parse_symbol` accepts (documentation only: the parser gives the precise error).
SYMBOL_PATTERN = r"^(O:[A-Z0-9]{1,6}|[A-Z0-9]{1,6}|[A-Z0-9 ]{6})[0-9]{6}[CP][0-9]{8}$"

_T = TypeVar("_T")

_ERRORS = {
    400: "a parameter is malformed; `detail` names it",
    404: "unknown symbol; `detail` names it",
}


class RenderPool:
    """One thread that renders large responses off the daemon's loop.

    One thread is enough: renders hold the GIL, so a second one would not add throughput, only
    take more of the loop's share. `close` waits for a render still running, so the state is
    never unmapped under it.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flashalpha-render")
        self.renders = 0

    async def run(self, render: Callable[..., _T], *args: Any) -> _T:
        self.renders += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, render, *args)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)


def _json(payload: object) -> Response:
    return Response(msgspec.json.encode(payload), media_type=MediaType.JSON)


def _documented_errors(*codes: int) -> dict:
    from litestar.openapi.datastructures import ResponseSpec

    return {
        code: ResponseSpec(data_container=ErrorBody, description=_ERRORS[code]) for code in codes
    }


@get(
    "/api/v1/health",
    tags=["market"],
    summary="Liveness and the state's sequence number",
    sync_to_thread=False,
)
def health(state: State) -> Health:
    daemon, hub = state.daemon, state.hub
    reader = daemon.reader
    feed = daemon.status()["feed"]
    return Health(
        status="ok",
        seq=reader.seq,
        contracts=reader.count,
        underlyings=reader.underlying_count,
        version=__version__,
        uptime_s=round((time.time_ns() - daemon.started_ns) / 1e9, 3),
        feed=feed["kind"],
        feed_running=bool(feed["running"]),
        hub_connections=len(hub.connections),
    )


@get(
    "/api/v1/underlyings",
    tags=["market"],
    summary="Every underlying with its spot and number of listed contracts",
    sync_to_thread=False,
)
def underlyings(state: State) -> Response[list[UnderlyingRow]]:
    hub = state.hub
    return _json(underlying_rows(hub.reader.read_underlyings()))


@get(
    "/api/v1/chains/{underlying:str}",
    tags=["market"],
    summary="The option chain of one underlying, by expiry, strike, calls first",
    responses=_documented_errors(400, 404),
)
async def chain(
    state: State,
    underlying: Annotated[
        str,
        PathParameter(description="Ticker of the underlying", examples=[Example(value="SPY")]),
    ],
    expiry: Annotated[
        str | None,
        QueryParameter(
            description="Only contracts expiring on this day (YYYY-MM-DD)", format="date"
        ),
    ] = None,
) -> Response[list[ContractRow]]:
    reader = state.daemon.reader
    day = None
    if expiry is not None:
        try:
            day = dt.date.fromisoformat(expiry)
        except ValueError:
            raise ClientException(
                detail=f"invalid expiry '{expiry}': expected a date YYYY-MM-DD"
            ) from None
    symbol = underlying.strip().upper()
    try:
        uid = reader.underlying_id(symbol)
    except (KeyError, UnicodeEncodeError):
        raise NotFoundException(detail=f"unknown underlying '{underlying}'") from None
    rows = reader.rows_of_underlying(uid)
    if day is not None:
        rows = rows[reader.segment.option_column("expiry")[rows] == expiry_days(day)]
    if len(rows) > state.daemon.config.api.off_loop_rows:
        body = await state.renders.run(_render_chain, reader, rows)
    else:
        body = _render_chain(reader, rows)
    return Response(body, media_type=MediaType.JSON)


#: Rows encoded per msgspec call off the loop: each call holds the GIL throughout (~1 ms here).
_ENCODE_ROWS = 1024


def _render_chain(reader: Any, rows: np.ndarray) -> bytes:
    """The chain's rows read from the state, sorted, rendered and encoded as a JSON array.

    Encoded in slices of `_ENCODE_ROWS` joined into one array, so that a thread rendering a
    large chain lets the loop take the GIL between slices.
    """
    records = sort_chain(reader.read_rows(rows))
    symbols = np.asarray(reader.segment.underlying_column("symbol")[: reader.underlying_count])
    structs = contract_structs(records, symbols)
    if len(structs) <= _ENCODE_ROWS:
        return msgspec.json.encode(structs)
    encode = msgspec.json.encode
    parts = [
        encode(structs[i : i + _ENCODE_ROWS])[1:-1] for i in range(0, len(structs), _ENCODE_ROWS)
    ]
    return b"[" + b",".join(parts) + b"]"


@get(
    "/api/v1/contracts/{symbol:str}",
    tags=["market"],
    summary="One contract by symbol (Polygon O:SPY251219C00650000, OSI or compact form)",
    responses=_documented_errors(400, 404),
    sync_to_thread=False,
)
def contract(
    state: State,
    symbol: Annotated[
        str,
        PathParameter(
            description="Contract symbol: Polygon `O:SPY251219C00650000`, OSI (21 characters, "
            "space-padded root) or compact `SPY251219C00650000`; a well-formed symbol with an "
            "impossible date or strike is refused with 400",
            schema_extra={"pattern": SYMBOL_PATTERN},
        ),
    ],
) -> Response[ContractRow]:
    reader = state.daemon.reader
    try:
        parsed = parse_symbol(symbol)
    except ValueError as error:
        raise ClientException(detail=f"invalid contract symbol: {error}") from None
    try:
        row = reader.row_of_osi(parsed.osi())
    except KeyError:
        raise NotFoundException(detail=f"unknown contract '{symbol}'") from None
    records = reader.read_rows(np.array([row], np.uint32))
    symbols = np.asarray(reader.segment.underlying_column("symbol")[: reader.underlying_count])
    return _json(contract_structs(records, symbols)[0])


ROUTES = [health, underlyings, chain, contract]
