"""`TickBatch`: the normalized unit of work every feed produces and the state consumes.

A batch is a handful of numpy record arrays, one per event kind, each with a dtype declared in
`state.layout`. Feeds decode and normalize at the edge; the daemon journals the batch, applies it
to the state, bumps the sequence and publishes, in that order (DESIGN.md §2, rule 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_TICK_DTYPE,
)

_EMPTY_QUOTES = np.empty(0, QUOTE_DTYPE)
_EMPTY_TRADES = np.empty(0, TRADE_DTYPE)
_EMPTY_UNDERLYINGS = np.empty(0, UNDERLYING_TICK_DTYPE)
_EMPTY_OPEN_INTEREST = np.empty(0, OPEN_INTEREST_DTYPE)


@dataclass(slots=True)
class TickBatch:
    """Normalized events of one feed read, ready for the journal and the state.

    Every array is a contiguous record array of its layout dtype; rows refer to the daemon's
    `InstrumentRegistry`. `ts_received` is when the feed read the bytes (ns since epoch).
    """

    quotes: np.ndarray = field(default_factory=lambda: _EMPTY_QUOTES)
    trades: np.ndarray = field(default_factory=lambda: _EMPTY_TRADES)
    underlyings: np.ndarray = field(default_factory=lambda: _EMPTY_UNDERLYINGS)
    open_interest: np.ndarray = field(default_factory=lambda: _EMPTY_OPEN_INTEREST)
    source: str = ""
    ts_received: int = field(default_factory=time.time_ns)

    def __post_init__(self) -> None:
        for name, dtype in (
            ("quotes", QUOTE_DTYPE),
            ("trades", TRADE_DTYPE),
            ("underlyings", UNDERLYING_TICK_DTYPE),
            ("open_interest", OPEN_INTEREST_DTYPE),
        ):
            array = getattr(self, name)
            if array.dtype != dtype:
                raise TypeError(f"TickBatch.{name} has dtype {array.dtype}, expected {dtype}")
            if not array.flags.c_contiguous:
                setattr(self, name, np.ascontiguousarray(array))

    def __len__(self) -> int:
        return len(self.quotes) + len(self.trades) + len(self.underlyings) + len(self.open_interest)

    @classmethod
    def empty(cls, source: str = "") -> TickBatch:
        return cls(source=source)
