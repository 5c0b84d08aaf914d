"""The one declaration of the market state's schema.

Every view of the state derives from the column lists below: the shared-memory layout
(`segment_layout`), the Cython kernels' pointers (looked up by column name and offset), the
REST/hub/CLI contract row (`flashalpha.state.rows`), the journal's record types and the SQL
tables. Add a column here and it appears everywhere; nothing else repeats a field list.

Units, following NautilusTrader's conventions: prices and strikes in dollars (float64),
timestamps `ts_*` in uint64 nanoseconds since the Unix epoch (UTC), expiries as int32 days
since 1970-01-01, sizes in contracts, vols as decimals (0.20 = 20%), greeks per the pricing
module's docstrings (vega per 1.00 of vol, theta per year).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import numpy as np

#: Bumped whenever the binary layout changes in a way the hash below would not capture.
LAYOUT_VERSION = 1
#: "FLASHALP" as a little-endian uint64: the first eight bytes of every segment.
SEGMENT_MAGIC = int.from_bytes(b"FLASHALP", "little")
#: Rows guarded by one seqlock. Smaller chunks mean fewer reader retries, more lock words.
CHUNK_ROWS = 256
#: Byte alignment of every column inside the segment (a cache line).
ALIGNMENT = 64
#: Width of the OSI symbol column (the OCC symbol is exactly 21 characters).
OSI_WIDTH = 21
#: Width of an underlying's symbol.
UNDERLYING_SYMBOL_WIDTH = 16
#: Bytes reserved for the daemon's status document (msgspec JSON) inside the segment.
STATUS_BYTES = 64 * 1024


class Right(enum.IntEnum):
    """Option right as stored in the `right` column."""

    PUT = 0
    CALL = 1


class ExerciseStyle(enum.IntEnum):
    """Exercise style as stored in the `style` columns."""

    AMERICAN = 0
    EUROPEAN = 1


class PricingStatus(enum.IntEnum):
    """Outcome of the last pricing of a row (`pricing_status` column)."""

    UNPRICED = 0
    OK = 1
    NO_QUOTE = 2
    BELOW_INTRINSIC = 3
    ABOVE_MAXIMUM = 4
    EXPIRED = 5
    BAD_INPUT = 6


class Group(enum.Enum):
    """Who writes a column: the registry at listing time, the feed path, or the pricing path."""

    STATIC = "static"
    MARKET = "market"
    GREEKS = "greeks"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the state: its name, numpy dtype, writer group and unit."""

    name: str
    dtype: str
    group: Group
    unit: str
    #: Float columns whose value is "missing" until written carry NaN; this is their fill.
    nullable: bool = False

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


def _c(name: str, dtype: str, group: Group, unit: str, nullable: bool = False) -> Column:
    return Column(name, dtype, group, unit, nullable)


S, M, G, X = Group.STATIC, Group.MARKET, Group.GREEKS, Group.INTERNAL

#: Per-option columns, in segment order.
OPTION_COLUMNS: tuple[Column, ...] = (
    _c("osi", f"S{OSI_WIDTH}", S, "21-character OCC/OSI symbol, ASCII"),
    _c("underlying_id", "<u4", S, "row of the underlying in the underlying columns"),
    _c("expiry", "<i4", S, "days since 1970-01-01"),
    _c("strike", "<f8", S, "dollars"),
    _c("right", "u1", S, "Right: 0 put, 1 call"),
    _c("style", "u1", S, "ExerciseStyle: 0 American, 1 European"),
    _c("multiplier", "<f4", S, "shares per contract"),
    _c("bid", "<f8", M, "dollars", nullable=True),
    _c("ask", "<f8", M, "dollars", nullable=True),
    _c("bid_size", "<u4", M, "contracts"),
    _c("ask_size", "<u4", M, "contracts"),
    _c("bid_exchange", "u1", M, "exchange code"),
    _c("ask_exchange", "u1", M, "exchange code"),
    _c("last", "<f8", M, "dollars", nullable=True),
    _c("last_size", "<u4", M, "contracts"),
    _c("last_exchange", "u1", M, "exchange code"),
    _c("last_condition", "<u2", M, "trade condition code"),
    _c("volume", "<u8", M, "contracts traded today"),
    _c("open_interest", "<u4", M, "contracts"),
    _c("ts_quote", "<u8", M, "ns since epoch, exchange time of the quote"),
    _c("ts_trade", "<u8", M, "ns since epoch, exchange time of the last trade"),
    _c("iv_bid", "<f8", G, "implied vol of the bid, decimal", nullable=True),
    _c("iv", "<f8", G, "implied vol of the mid, decimal", nullable=True),
    _c("iv_ask", "<f8", G, "implied vol of the ask, decimal", nullable=True),
    _c("delta", "<f8", G, "per $1 of spot", nullable=True),
    _c("gamma", "<f8", G, "per $1 of spot, per $1 of spot", nullable=True),
    _c("vega", "<f8", G, "dollars per 1.00 of vol", nullable=True),
    _c("theta", "<f8", G, "dollars per year", nullable=True),
    _c("rho", "<f8", G, "dollars per 1.00 of rate", nullable=True),
    _c("vanna", "<f8", G, "delta per 1.00 of vol", nullable=True),
    _c("charm", "<f8", G, "delta per year", nullable=True),
    _c("vomma", "<f8", G, "vega per 1.00 of vol", nullable=True),
    _c("theo", "<f8", G, "theoretical value, dollars", nullable=True),
    _c("ts_greeks", "<u8", G, "ns since epoch of the pricing"),
    _c("pricing_status", "u1", G, "PricingStatus"),
    _c("seq", "<u8", X, "global seq of the last market write to this row"),
    _c("seq_greeks", "<u8", X, "global seq of the market state the greeks were priced from"),
)

#: Per-underlying columns, in segment order.
UNDERLYING_COLUMNS: tuple[Column, ...] = (
    _c("symbol", f"S{UNDERLYING_SYMBOL_WIDTH}", S, "ticker, ASCII"),
    _c("style", "u1", S, "ExerciseStyle of its options"),
    _c("spot", "<f8", M, "dollars", nullable=True),
    _c("ts_spot", "<u8", M, "ns since epoch"),
    _c("rate", "<f8", M, "continuously compounded risk-free rate, decimal per year"),
    _c("div_yield", "<f8", M, "continuous dividend yield, decimal per year"),
    _c("contracts", "<u4", X, "listed option rows of this underlying"),
    _c("seq", "<u8", X, "global seq of the last write to this row"),
)

OPTION_COLUMN_BY_NAME = {column.name: column for column in OPTION_COLUMNS}
UNDERLYING_COLUMN_BY_NAME = {column.name: column for column in UNDERLYING_COLUMNS}

#: One option row as a record, e.g. what `StateReader.read_rows` returns.
OPTION_ROW_DTYPE = np.dtype([(c.name, c.dtype) for c in OPTION_COLUMNS])
#: One underlying row as a record.
UNDERLYING_ROW_DTYPE = np.dtype([(c.name, c.dtype) for c in UNDERLYING_COLUMNS])


# --- normalized events: what every feed produces and the journal records -------------------

#: A top-of-book quote for one option row. `row` is the registry's dense row id.
QUOTE_DTYPE = np.dtype(
    [
        ("row", "<u4"),
        ("bid_size", "<u4"),
        ("ask_size", "<u4"),
        ("bid_exchange", "u1"),
        ("ask_exchange", "u1"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("ts", "<u8"),
    ],
    align=True,
)

#: One option trade. `condition` is our condition code (see feeds.normalize).
TRADE_DTYPE = np.dtype(
    [
        ("row", "<u4"),
        ("size", "<u4"),
        ("exchange", "u1"),
        ("condition", "<u2"),
        ("price", "<f8"),
        ("ts", "<u8"),
    ],
    align=True,
)

#: A price of an underlying (last trade or mid), by underlying id.
UNDERLYING_TICK_DTYPE = np.dtype(
    [("underlying", "<u4"), ("price", "<f8"), ("ts", "<u8")],
    align=True,
)

#: Open interest as published once a day (or by a REST snapshot).
OPEN_INTEREST_DTYPE = np.dtype(
    [("row", "<u4"), ("open_interest", "<u4"), ("ts", "<u8")],
    align=True,
)


class RejectKind(enum.IntEnum):
    """Why an event was refused by the state. Values index the header's reject counters."""

    CROSSED = 0  # bid > ask
    NEGATIVE = 1  # negative price or size
    NOT_FINITE = 2  # NaN or inf price
    UNKNOWN_ROW = 3  # row id not registered
    STALE = 4  # older than the event already held for that contract
    MALFORMED = 5  # could not be decoded at the edge (counted by feeds)
    UNKNOWN_SYMBOL = 6  # symbol did not parse (counted by feeds)


#: Counters kept in the header. Event counts first, then rejects by RejectKind.
class Counter(enum.IntEnum):
    QUOTES = 0
    TRADES = 1
    UNDERLYING_TICKS = 2
    OPEN_INTEREST = 3
    BATCHES = 4
    REJECT_BASE = 16  # + RejectKind


COUNTER_SLOTS = 64

#: The segment header. Fixed-size, at offset 0, padded to one page.
HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u8"),
        ("layout_version", "<u4"),
        ("chunk_rows", "<u4"),
        ("layout_hash", "<u8"),
        ("capacity", "<u8"),
        ("count", "<u8"),
        ("underlying_capacity", "<u8"),
        ("underlying_count", "<u8"),
        ("seq", "<u8"),
        ("writer_pid", "<u8"),
        ("ts_heartbeat", "<u8"),
        ("ts_created", "<u8"),
        ("ts_last_event", "<u8"),
        ("status_seqlock", "<u8"),
        ("status_length", "<u8"),
        ("counters", "<u8", (COUNTER_SLOTS,)),
    ]
)
HEADER_BYTES = 4096
assert HEADER_DTYPE.itemsize <= HEADER_BYTES


def layout_hash() -> int:
    """A 64-bit fingerprint of every declaration above; readers refuse a segment that differs."""
    text = repr(
        (
            LAYOUT_VERSION,
            CHUNK_ROWS,
            ALIGNMENT,
            STATUS_BYTES,
            [(c.name, c.dtype) for c in OPTION_COLUMNS],
            [(c.name, c.dtype) for c in UNDERLYING_COLUMNS],
            HEADER_DTYPE.descr,
        )
    )
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _align(offset: int) -> int:
    return (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


@dataclass(frozen=True, slots=True)
class SegmentLayout:
    """Byte offsets of every region of a segment of a given capacity."""

    capacity: int
    underlying_capacity: int
    status_offset: int
    chunk_locks_offset: int
    underlying_lock_offset: int
    option_offsets: dict[str, int]
    underlying_offsets: dict[str, int]
    size: int

    @property
    def chunks(self) -> int:
        return (self.capacity + CHUNK_ROWS - 1) // CHUNK_ROWS


def segment_layout(capacity: int, underlying_capacity: int) -> SegmentLayout:
    """Lay out a segment: header, status document, seqlocks, option columns, underlying columns."""
    if capacity <= 0 or underlying_capacity <= 0:
        raise ValueError(
            f"capacities must be positive, got capacity={capacity} "
            f"underlying_capacity={underlying_capacity}"
        )
    offset = HEADER_BYTES
    status_offset = offset
    offset = _align(offset + STATUS_BYTES)
    chunk_locks_offset = offset
    chunks = (capacity + CHUNK_ROWS - 1) // CHUNK_ROWS
    offset = _align(offset + chunks * 8)
    underlying_lock_offset = offset
    offset = _align(offset + 8)
    option_offsets = {}
    for column in OPTION_COLUMNS:
        option_offsets[column.name] = offset
        offset = _align(offset + capacity * column.np_dtype.itemsize)
    underlying_offsets = {}
    for column in UNDERLYING_COLUMNS:
        underlying_offsets[column.name] = offset
        offset = _align(offset + underlying_capacity * column.np_dtype.itemsize)
    return SegmentLayout(
        capacity=capacity,
        underlying_capacity=underlying_capacity,
        status_offset=status_offset,
        chunk_locks_offset=chunk_locks_offset,
        underlying_lock_offset=underlying_lock_offset,
        option_offsets=option_offsets,
        underlying_offsets=underlying_offsets,
        size=offset,
    )


def option_row_bytes() -> int:
    """Bytes of shared memory one option row costs (columns only, excluding alignment)."""
    return sum(c.np_dtype.itemsize for c in OPTION_COLUMNS) + 8 / CHUNK_ROWS
