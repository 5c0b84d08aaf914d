"""`MarketState`: the single writer of the shared-memory market state.

Only the daemon's loop thread calls it. Each `apply` takes the next global sequence number,
runs the compiled kernels over the batch (rejecting and counting bad events), then publishes
the sequence number with a release store, so a reader that sees seq N sees every row of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from flashalpha import _state_kernels
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    OPTION_COLUMNS,
    QUOTE_DTYPE,
    STATUS_BYTES,
    UNDERLYING_COLUMNS,
    UNDERLYING_TICK_DTYPE,
    Counter,
    Group,
    RejectKind,
)
from flashalpha.state.segment import Segment, create_segment, header_offset

_EMPTY_IDS = np.empty(0, np.uint32)

for _kind, _code in _state_kernels.REJECT_CODES.items():  # pragma: no branch
    if RejectKind[_kind] != _code:  # pragma: no cover - build/schema mismatch
        raise ImportError(f"compiled reject code {_kind}={_code} differs from layout.RejectKind")

_RECORD_SIZES = _state_kernels.record_sizes()


@dataclass(slots=True)
class Changes:
    """What one applied batch changed: ids of applied events (duplicates possible), by kind."""

    seq: int
    quote_rows: np.ndarray = field(default_factory=lambda: _EMPTY_IDS)
    trade_rows: np.ndarray = field(default_factory=lambda: _EMPTY_IDS)
    underlying_ids: np.ndarray = field(default_factory=lambda: _EMPTY_IDS)
    open_interest_rows: np.ndarray = field(default_factory=lambda: _EMPTY_IDS)
    rejected: int = 0

    def __len__(self) -> int:
        return (
            len(self.quote_rows)
            + len(self.trade_rows)
            + len(self.underlying_ids)
            + len(self.open_interest_rows)
        )


class MarketState:
    """Writer of one segment. Create with `MarketState.create(...)`; `close()` unlinks it."""

    def __init__(self, segment: Segment) -> None:
        if not segment.writable:
            raise ValueError(f"segment '{segment.name}' is attached read-only")
        self.segment = segment
        self.layout = segment.layout
        self._kernels = _state_kernels.StateKernels(
            segment.address,
            segment.layout,
            {name: header_offset(name) for name in ("seq", "count", "underlying_count")},
        )
        self._rejects = segment.counters[Counter.REJECT_BASE : Counter.REJECT_BASE + 8]
        self._seq = 0
        self._count = 0
        self._underlying_count = 0
        capacity = max(segment.layout.capacity, segment.layout.underlying_capacity)
        self._changed = np.empty(capacity, np.uint32)
        self._columns = {c.name: segment.option_column(c.name) for c in OPTION_COLUMNS}
        self._underlying_columns = {
            c.name: segment.underlying_column(c.name) for c in UNDERLYING_COLUMNS
        }

    @classmethod
    def create(
        cls,
        name: str,
        capacity: int = 2_000_000,
        underlying_capacity: int = 16_384,
        stale_after: float = 5.0,
    ) -> MarketState:
        """Create (or replace a stale) segment `name` and become its writer."""
        return cls(create_segment(name, capacity, underlying_capacity, stale_after))

    # -- properties --------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Global sequence number of the last applied batch."""
        return self._seq

    @property
    def count(self) -> int:
        """Option rows visible to readers."""
        return self._count

    @property
    def underlying_count(self) -> int:
        return self._underlying_count

    @property
    def capacity(self) -> int:
        return self.layout.capacity

    def column(self, name: str) -> np.ndarray:
        """Writer's view of an option column over the registered rows. Do not write to it."""
        return self._columns[name][: self._count]

    def underlying_column(self, name: str) -> np.ndarray:
        """Writer's view of an underlying column over the registered underlyings."""
        return self._underlying_columns[name][: self._underlying_count]

    def rejects(self) -> dict[RejectKind, int]:
        """Cumulative rejected events by kind (state-side kinds plus those feeds count)."""
        return {kind: int(self._rejects[kind]) for kind in RejectKind}

    def count_reject(self, kind: RejectKind, n: int = 1) -> None:
        """Count events refused before they reached the state (decode errors, bad symbols)."""
        self._rejects[kind] += n

    # -- listings ----------------------------------------------------------------------------

    def add_listings(
        self,
        option_static: dict[str, np.ndarray],
        underlying_static: dict[str, np.ndarray],
        rate: float | np.ndarray = 0.0,
    ) -> tuple[range, range]:
        """Append newly listed rows: static columns, nulls in the market and greeks columns.

        `option_static` holds the STATIC option columns for rows [count, count + n), and
        `underlying_static` the STATIC underlying columns plus `div_yield` for new underlyings.
        The rows become visible to readers only after everything is written (release store).
        Returns the new option and underlying id ranges.
        """
        new_rows = self._append(self._columns, option_static, self._count, OPTION_COLUMNS)
        new_underlyings = self._append(
            self._underlying_columns,
            underlying_static,
            self._underlying_count,
            UNDERLYING_COLUMNS,
        )
        if len(new_underlyings):
            self._underlying_columns["rate"][new_underlyings.start : new_underlyings.stop] = rate
        if len(new_rows):
            listed = np.bincount(
                self._columns["underlying_id"][new_rows.start : new_rows.stop],
                minlength=new_underlyings.stop,
            )
            self._underlying_columns["contracts"][: len(listed)] += listed.astype(np.uint32)
        self._count = new_rows.stop
        self._underlying_count = new_underlyings.stop
        self._kernels.publish_count(self._count, self._underlying_count)
        return new_rows, new_underlyings

    def _append(self, columns, static, start, declared) -> range:
        lengths = {len(values) for values in static.values()}
        if len(lengths) > 1:
            raise ValueError(f"static columns of unequal lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        stop = start + n
        capacity = len(next(iter(columns.values())))
        if stop > capacity:
            raise OverflowError(f"state is full: {stop} rows requested, capacity {capacity}")
        if n == 0:
            return range(start, start)
        missing = [c.name for c in declared if c.group is Group.STATIC and c.name not in static]
        if missing:
            raise ValueError(f"listing lacks static columns {missing}")
        unknown = sorted(set(static) - {c.name for c in declared})
        if unknown:
            raise ValueError(f"listing has unknown columns {unknown}")
        for column in declared:
            target = columns[column.name][start:stop]
            if column.name in static:
                target[:] = static[column.name]
            elif column.nullable:
                target[:] = np.nan
            else:
                target[:] = 0
        return range(start, stop)

    def set_underlying_rates(self, rates: np.ndarray | float) -> None:
        """Set the risk-free rate column of every registered underlying (decimal per year)."""
        self._underlying_columns["rate"][: self._underlying_count] = rates

    # -- the tick path -----------------------------------------------------------------------

    def next_seq(self) -> int:
        """The sequence number the next applied batch will carry."""
        return self._seq + 1

    def apply(self, batch: TickBatch) -> Changes:
        """Apply one normalized batch under a new sequence number; return what changed.

        Bad events are rejected, counted in the header and skipped; the rest of the batch is
        applied. An empty batch does not consume a sequence number.
        """
        if len(batch) == 0:
            return Changes(self._seq)
        seq = self._seq + 1
        before = int(self._rejects.sum())
        changes = Changes(seq)
        kernels = self._kernels
        counters = self.segment.counters
        if len(batch.underlyings):
            changes.underlying_ids = self._run(kernels.apply_underlyings, batch.underlyings, seq)
            counters[Counter.UNDERLYING_TICKS] += len(changes.underlying_ids)
        if len(batch.quotes):
            changes.quote_rows = self._run(kernels.apply_quotes, batch.quotes, seq)
            counters[Counter.QUOTES] += len(changes.quote_rows)
        if len(batch.trades):
            changes.trade_rows = self._run(kernels.apply_trades, batch.trades, seq)
            counters[Counter.TRADES] += len(changes.trade_rows)
        if len(batch.open_interest):
            changes.open_interest_rows = self._run(
                kernels.apply_open_interest, batch.open_interest, seq
            )
            counters[Counter.OPEN_INTEREST] += len(changes.open_interest_rows)
        counters[Counter.BATCHES] += 1
        changes.rejected = int(self._rejects.sum()) - before
        self.segment.header["ts_last_event"] = batch.ts_received
        self._seq = seq
        kernels.publish_seq(seq)
        return changes

    def reset_session(self) -> Changes:
        """Start a new trading day: clear the day's trade columns of every row that has any.

        Volume, last price, size, exchange, condition and trade time go back to "no trade
        today" under one new sequence number (each row's `seq` too, so readers and hub clients
        see the change); quotes, open interest and spots are kept. Returns the cleared rows as
        `trade_rows`; when no row has traded, nothing changes and no seq is consumed.
        """
        count = self._count
        columns = self._columns
        traded = (columns["volume"][:count] > 0) | (columns["ts_trade"][:count] > 0)
        rows = np.flatnonzero(traded).astype(np.uint32)
        if not len(rows):
            return Changes(self._seq)
        seq = self._seq + 1
        zeros = np.zeros(len(rows), np.uint64)
        self.write_columns(
            rows,
            {
                "last": np.full(len(rows), np.nan),
                "last_size": zeros,
                "last_exchange": zeros,
                "last_condition": zeros,
                "volume": zeros,
                "ts_trade": zeros,
                "seq": np.full(len(rows), seq, np.uint64),
            },
        )
        self._seq = seq
        self._kernels.publish_seq(seq)
        return Changes(seq, trade_rows=rows)

    def session_carry(self, ts_received: int) -> TickBatch:
        """What a new day's journal starts from: every held quote, spot and open interest.

        Replayed into an empty state after the day's listings, it rebuilds what
        `reset_session` leaves (the exchange timestamps are the held ones, so applying it to
        this state changes no value).
        """
        count, underlyings = self._count, self._underlying_count
        columns, spots = self._columns, self._underlying_columns
        bid, ask, ts = columns["bid"][:count], columns["ask"][:count], columns["ts_quote"][:count]
        rows = np.flatnonzero((ts > 0) & np.isfinite(bid) & np.isfinite(ask))
        quotes = np.zeros(len(rows), QUOTE_DTYPE)
        quotes["row"] = rows
        for field_name, column in (
            ("bid", "bid"),
            ("ask", "ask"),
            ("bid_size", "bid_size"),
            ("ask_size", "ask_size"),
            ("bid_exchange", "bid_exchange"),
            ("ask_exchange", "ask_exchange"),
            ("ts", "ts_quote"),
        ):
            quotes[field_name] = columns[column][rows]
        spot, ts_spot = spots["spot"][:underlyings], spots["ts_spot"][:underlyings]
        ids = np.flatnonzero((ts_spot > 0) & np.isfinite(spot))
        ticks = np.zeros(len(ids), UNDERLYING_TICK_DTYPE)
        ticks["underlying"], ticks["price"], ticks["ts"] = ids, spot[ids], ts_spot[ids]
        held = np.flatnonzero(columns["open_interest"][:count] > 0)
        open_interest = np.zeros(len(held), OPEN_INTEREST_DTYPE)
        open_interest["row"] = held
        open_interest["open_interest"] = columns["open_interest"][held]
        open_interest["ts"] = ts_received
        return TickBatch(
            quotes=quotes,
            underlyings=ticks,
            open_interest=open_interest,
            source="session-carry",
            ts_received=ts_received,
        )

    def _run(self, kernel, records: np.ndarray, seq: int) -> np.ndarray:
        changed = (
            self._changed
            if len(records) <= len(self._changed)
            else np.empty(len(records), np.uint32)
        )
        applied = kernel(records.ctypes.data, len(records), seq, changed, self._rejects)
        return changed[:applied].copy()

    def write_columns(
        self,
        rows: np.ndarray,
        values: dict[str, np.ndarray],
        computed_at_seq: np.ndarray | None = None,
    ) -> int:
        """Write option columns (e.g. greeks) for `rows` under the row seqlocks.

        With `computed_at_seq` (one seq per row), a row whose market data changed after that
        seq keeps its current values: the result was computed from inputs it no longer holds.
        Returns the number of rows written.
        """
        rows = np.ascontiguousarray(rows, np.uint32)
        if len(rows) and int(rows.max()) >= self._count:
            raise IndexError(f"row {int(rows.max())} is not registered (count {self._count})")
        names = list(values)
        arrays = []
        for name in names:
            dtype = self._columns[name].dtype
            array = np.ascontiguousarray(values[name], dtype)
            if array.shape != rows.shape:
                raise ValueError(f"column {name} has {len(array)} values for {len(rows)} rows")
            arrays.append(array)
        destinations = np.array([self._columns[n].ctypes.data for n in names], np.int64)
        sources = np.array([a.ctypes.data for a in arrays], np.int64)
        itemsizes = np.array([a.dtype.itemsize for a in arrays], np.int64)
        skip = computed_at_seq is not None
        seqs = np.ascontiguousarray(computed_at_seq, np.uint64) if skip else None
        return _state_kernels.write_columns(
            self.segment.address + self.layout.chunk_locks_offset,
            rows,
            destinations,
            sources,
            itemsizes,
            skip,
            self._columns["seq"].ctypes.data,
            seqs,
        )

    # -- housekeeping ------------------------------------------------------------------------

    def heartbeat(self, now_ns: int | None = None) -> None:
        """Tell readers and the next daemon that this writer is alive."""
        self.segment.header["ts_heartbeat"] = time.time_ns() if now_ns is None else now_ns

    def set_status(self, document: bytes) -> None:
        """Publish the daemon's status document (JSON) for `flashalpha status`."""
        if len(document) > STATUS_BYTES:
            raise ValueError(f"status document of {len(document)} bytes exceeds {STATUS_BYTES}")
        payload = np.frombuffer(document, np.uint8)
        length = np.array([len(document)], np.uint64)
        base = self.segment.address
        _state_kernels.write_locked_block(
            base + header_offset("status_seqlock"),
            np.array(
                [base + self.layout.status_offset, base + header_offset("status_length")], np.int64
            ),
            np.array([len(document), 8], np.int64),
            np.array([payload.ctypes.data if len(payload) else 0, length.ctypes.data], np.int64),
        )

    def close(self, unlink: bool = True) -> None:
        """Release the segment; with `unlink` (a clean daemon exit) remove it too."""
        self._columns.clear()
        self._underlying_columns.clear()
        if unlink:
            self.segment.unlink()
        self.segment.close()
