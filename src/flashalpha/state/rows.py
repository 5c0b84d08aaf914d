"""The public contract row (DESIGN.md §5), derived from the state's record arrays.

REST, the hub and `flashalpha snapshot` all serve this shape. `contract_rows` is the plain,
readable rendering; `flashalpha.api.schemas.contract_structs` renders the same rows as msgspec
structs about five times faster and is what the CLI, REST and the hub use (a test checks the two
agree field by field). Fields map one to one onto layout
columns (renamed where the public name differs) plus a few derived ones (symbol forms, the
underlying's ticker, the expiry as a date, the right as a letter). Missing values are null.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from flashalpha.state.layout import OPTION_COLUMN_BY_NAME, Right

#: Public name → layout column, in the order rows are rendered.
COLUMN_FIELDS: dict[str, str] = {
    "strike": "strike",
    "bid": "bid",
    "ask": "ask",
    "bid_size": "bid_size",
    "ask_size": "ask_size",
    "last": "last",
    "volume": "volume",
    "open_interest": "open_interest",
    "iv": "iv",
    "iv_bid": "iv_bid",
    "iv_ask": "iv_ask",
    "delta": "delta",
    "gamma": "gamma",
    "vega": "vega",
    "theta": "theta",
    "rho": "rho",
    "vanna": "vanna",
    "charm": "charm",
    "vomma": "vomma",
    "theo": "theo",
    "quote_ts": "ts_quote",
    "greeks_ts": "ts_greeks",
    "seq": "seq",
}
assert all(column in OPTION_COLUMN_BY_NAME for column in COLUMN_FIELDS.values())

#: Every field of a contract row, in order.
ROW_FIELDS: tuple[str, ...] = (
    "symbol",
    "osi",
    "underlying",
    "expiry",
    "right",
    *COLUMN_FIELDS,
)

_EPOCH = dt.date(1970, 1, 1)


def _nullable(values: np.ndarray) -> list:
    """Values as Python objects, NaN (float) or 0 timestamps (ts_*) as None."""
    out = values.tolist()
    if values.dtype.kind == "f":
        return [None if v != v else v for v in out]  # NaN is the only value not equal to itself
    return out


def contract_rows(records: np.ndarray, underlying_symbols: np.ndarray) -> list[dict]:
    """Turn `OPTION_ROW_DTYPE` records into public contract rows (dicts, JSON-ready).

    `underlying_symbols` is the state's underlying `symbol` column (bytes), indexed by
    `underlying_id`.
    """
    n = len(records)
    if n == 0:
        return []
    osi = np.char.decode(records["osi"], "ascii").tolist()
    compact = [symbol[:6].rstrip() + symbol[6:] for symbol in osi]
    underlyings = np.char.decode(underlying_symbols[records["underlying_id"]], "ascii").tolist()
    expiries = [
        (_EPOCH + dt.timedelta(days=days)).isoformat() for days in records["expiry"].tolist()
    ]
    rights = np.where(records["right"] == Right.CALL, "C", "P").tolist()
    columns = {}
    for field, column in COLUMN_FIELDS.items():
        values = records[column]
        columns[field] = _nullable(values)
        if column.startswith("ts_"):
            columns[field] = [None if v == 0 else v for v in columns[field]]
    fields = list(COLUMN_FIELDS)
    column_lists = [columns[f] for f in fields]
    rows = []
    for i in range(n):
        row = {
            "symbol": "O:" + compact[i],
            "osi": osi[i],
            "underlying": underlyings[i],
            "expiry": expiries[i],
            "right": rights[i],
        }
        for field, values in zip(fields, column_lists, strict=True):
            row[field] = values[i]
        rows.append(row)
    return rows


def sort_chain(records: np.ndarray) -> np.ndarray:
    """Order a chain by expiry, strike, then calls before puts (as a trader reads it)."""
    order = np.lexsort((-records["right"].astype(np.int16), records["strike"], records["expiry"]))
    return records[order]


def expiry_days(expiry: dt.date) -> int:
    """An expiry date as the state's `expiry` value (days since 1970-01-01)."""
    return (expiry - _EPOCH).days
