"""REST routes of DESIGN.md §5: health, underlyings, chains, contracts.

Handlers run on the daemon's loop and read the state through the daemon's `StateReader`
(lock-free, consistent per row). Rows are rendered by `api.schemas.contract_structs` (the
rows of `state.rows.contract_rows`, faster) and encoded with msgspec straight to bytes; the
return annotations only document the shapes in the OpenAPI schema. Bad parameters are refused with 400, unknown symbols with 404, each
with a `detail` naming the value.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

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

_ERRORS = {
    400: "a parameter is malformed; `detail` names it",
    404: "unknown symbol; `detail` names it",
}


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
    return _json(underlying_rows(hub.reader.read_underlyings(), hub.contract_counts()))


@get(
    "/api/v1/chains/{underlying:str}",
    tags=["market"],
    summary="The option chain of one underlying, by expiry, strike, calls first",
    responses=_documented_errors(400, 404),
    sync_to_thread=False,
)
def chain(
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
    records = sort_chain(reader.read_rows(rows))
    symbols = np.asarray(reader.segment.underlying_column("symbol")[: reader.underlying_count])
    return _json(contract_structs(records, symbols))


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
