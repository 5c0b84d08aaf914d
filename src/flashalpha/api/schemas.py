"""Public shapes of the HTTP API and the hub, derived from the state's one schema.

`ContractRow` is built from `flashalpha.state.rows` (field names) and `state.layout` (column
dtypes), so the OpenAPI document, REST and the hub describe exactly what `contract_rows`
renders. `underlying_rows` renders the per-underlying record the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec
import numpy as np

from flashalpha.state.layout import OPTION_COLUMN_BY_NAME, ExerciseStyle, Right
from flashalpha.state.rows import COLUMN_FIELDS, ROW_FIELDS


def _field_type(public: str, column: str) -> Any:
    spec = OPTION_COLUMN_BY_NAME[column]
    kind = spec.np_dtype.kind
    if kind == "f":
        return float | None if spec.nullable else float
    if column.startswith("ts_"):
        return int | None  # 0 (never written) is rendered as null
    return int


_DERIVED: dict[str, Any] = {
    "symbol": str,
    "osi": str,
    "underlying": str,
    "expiry": dt.date,
    "right": Literal["C", "P"],
}

#: One contract as REST and the hub serve it (DESIGN.md §5).
ContractRow = msgspec.defstruct(
    "ContractRow",
    [
        (name, _DERIVED[name] if name in _DERIVED else _field_type(name, COLUMN_FIELDS[name]))
        for name in ROW_FIELDS
    ],
    # Rows hold only str, int, float and None: no cycles, so the garbage collector need not
    # track them (a flush creates thousands; tracked, they would trigger collections).
    gc=False,
)
ContractRow.__doc__ = (
    "One option contract: static fields, top of book, last trade, implied vols and greeks. "
    "Prices in dollars, vols as decimals, timestamps in ns since the Unix epoch (UTC), "
    "`seq` the state sequence number of the row's last market write; null where unknown."
)


_EPOCH = dt.date(1970, 1, 1)


def _as_list(values: np.ndarray, column: str) -> list:
    """Column values as Python objects; NaN floats and 0 timestamps (ts_*) as None."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
    elif column.startswith("ts_"):
        missing = values == 0
    else:
        return values.tolist()
    if not missing.any():
        return values.tolist()
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


def contract_structs(records: np.ndarray, underlying_symbols: np.ndarray) -> list:
    """`OPTION_ROW_DTYPE` records as `ContractRow` structs, ready for msgspec to encode.

    Exactly the rows of `flashalpha.state.rows.contract_rows` (tests/api/test_schemas.py checks
    it field by field), about five times faster: columns are converted with numpy (missing
    values masked at once, each distinct expiry formatted once) and each row is one C-level
    struct construction instead of a dict built field by field. The hub renders every changed
    row of every flush with it; REST renders chains with it.
    """
    if len(records) == 0:
        return []
    osi = [symbol.decode() for symbol in records["osi"].tolist()]
    symbols = ["O:" + s[:6].rstrip() + s[6:] for s in osi]
    ids, id_index = np.unique(records["underlying_id"], return_inverse=True)
    names = [underlying_symbols[i].decode() for i in ids.tolist()]
    underlyings = [names[i] for i in id_index.tolist()]
    days, day_index = np.unique(records["expiry"], return_inverse=True)
    dates = [(_EPOCH + dt.timedelta(days=d)).isoformat() for d in days.tolist()]
    expiries = [dates[i] for i in day_index.tolist()]
    rights = np.where(records["right"] == Right.CALL, "C", "P").tolist()
    columns = [symbols, osi, underlyings, expiries, rights]
    columns += [_as_list(records[column], column) for column in COLUMN_FIELDS.values()]
    return [ContractRow(*values) for values in zip(*columns, strict=True)]


class UnderlyingRow(msgspec.Struct, kw_only=True):
    """One underlying: spot and the parameters its options are priced with."""

    symbol: str
    spot: float | None
    spot_ts: int | None
    rate: float | None
    div_yield: float | None
    style: Literal["american", "european"]
    contracts: int
    seq: int


class Health(msgspec.Struct, kw_only=True):
    """Liveness and the state's sequence number."""

    status: Literal["ok"]
    seq: int
    contracts: int
    underlyings: int
    version: str
    uptime_s: float
    feed: str
    feed_running: bool
    hub_connections: int


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response: the HTTP status and a sentence naming the offending value."""

    status_code: int
    detail: str


_STYLES = {ExerciseStyle.AMERICAN: "american", ExerciseStyle.EUROPEAN: "european"}


def _nan_to_none(value: float) -> float | None:
    return None if value != value else value


def underlying_rows(records: np.ndarray) -> list[dict]:
    """Turn `UNDERLYING_ROW_DTYPE` records into public underlying rows (JSON-ready dicts)."""
    symbols = np.char.decode(records["symbol"], "ascii").tolist()
    return [
        {
            "symbol": symbol,
            "spot": _nan_to_none(spot),
            "spot_ts": ts or None,
            "rate": _nan_to_none(rate),
            "div_yield": _nan_to_none(div_yield),
            "style": _STYLES.get(style, "american"),
            "contracts": contracts,
            "seq": seq,
        }
        for symbol, spot, ts, rate, div_yield, style, contracts, seq in zip(
            symbols,
            records["spot"].tolist(),
            records["ts_spot"].tolist(),
            records["rate"].tolist(),
            records["div_yield"].tolist(),
            records["style"].tolist(),
            records["contracts"].tolist(),
            records["seq"].tolist(),
            strict=True,
        )
    ]
