# cython: language_level=3
"""Compiled kernels of the Market State Engine.

`StateKernels` holds typed pointers into one shared-memory segment (laid out by
`flashalpha.state.layout.segment_layout`) and applies normalized event batches to it without the
GIL, inside per-chunk seqlocks. `read_rows` and `read_underlyings` copy consistent rows out of a
segment written by another process and never block the writer.

Every function takes addresses (ints) rather than Python objects so that the same code serves the
writer, in-process readers and attach-only readers; the Python wrappers in `flashalpha.state`
own the buffers and keep them alive.
"""

from libc.math cimport isfinite
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy

import numpy as np

# Indices into the reject counter array; must equal flashalpha.state.layout.RejectKind.
cdef enum:
    CROSSED = 0
    NEGATIVE = 1
    NOT_FINITE = 2
    UNKNOWN_ROW = 3
    STALE = 4

# Rows per seqlock chunk is 1 << CHUNK_SHIFT; must equal flashalpha.state.layout.CHUNK_ROWS.
cdef enum:
    CHUNK_SHIFT = 8

# A reader spins this many times on one chunk before deciding its writer died mid-write.
cdef enum:
    MAX_READ_SPINS = 50000000

CHUNK_ROWS = 1 << CHUNK_SHIFT
REJECT_CODES = {"CROSSED": CROSSED, "NEGATIVE": NEGATIVE, "NOT_FINITE": NOT_FINITE,
                "UNKNOWN_ROW": UNKNOWN_ROW, "STALE": STALE}


def record_sizes():
    """sizeof() of each C record, for the import-time check against the numpy dtypes."""
    return {
        "quote": sizeof(QuoteRecord),
        "trade": sizeof(TradeRecord),
        "underlying_tick": sizeof(UnderlyingTickRecord),
        "open_interest": sizeof(OpenInterestRecord),
    }


cdef inline void* _address(dict offsets, str name, uintptr_t base):
    return <void*>(base + <uintptr_t>offsets[name])


cdef class StateKernels:
    """Writer-side kernels over one segment. Only the daemon's loop thread may call them.

    Args:
        base: address of the first byte of the segment.
        layout: a `SegmentLayout` (offsets of every region).
        header_offsets: byte offsets of the header fields `seq`, `count`, `underlying_count`.
    """

    def __init__(self, uintptr_t base, object layout, dict header_offsets):
        cdef dict options = layout.option_offsets
        cdef dict underlyings = layout.underlying_offsets
        self.capacity = layout.capacity
        self.underlying_capacity = layout.underlying_capacity
        self.locks = <uint64_t*>(base + <uintptr_t>layout.chunk_locks_offset)
        self.underlying_lock = <uint64_t*>(base + <uintptr_t>layout.underlying_lock_offset)
        self.header_seq = <uint64_t*>(base + <uintptr_t>header_offsets["seq"])
        self.header_count = <uint64_t*>(base + <uintptr_t>header_offsets["count"])
        self.header_underlying_count = <uint64_t*>(
            base + <uintptr_t>header_offsets["underlying_count"]
        )
        self.bid = <double*>_address(options, "bid", base)
        self.ask = <double*>_address(options, "ask", base)
        self.bid_size = <uint32_t*>_address(options, "bid_size", base)
        self.ask_size = <uint32_t*>_address(options, "ask_size", base)
        self.bid_exchange = <uint8_t*>_address(options, "bid_exchange", base)
        self.ask_exchange = <uint8_t*>_address(options, "ask_exchange", base)
        self.last = <double*>_address(options, "last", base)
        self.last_size = <uint32_t*>_address(options, "last_size", base)
        self.last_exchange = <uint8_t*>_address(options, "last_exchange", base)
        self.last_condition = <uint16_t*>_address(options, "last_condition", base)
        self.volume = <uint64_t*>_address(options, "volume", base)
        self.open_interest = <uint32_t*>_address(options, "open_interest", base)
        self.ts_quote = <uint64_t*>_address(options, "ts_quote", base)
        self.ts_trade = <uint64_t*>_address(options, "ts_trade", base)
        self.row_seq = <uint64_t*>_address(options, "seq", base)
        self.spot = <double*>_address(underlyings, "spot", base)
        self.ts_spot = <uint64_t*>_address(underlyings, "ts_spot", base)
        self.underlying_seq = <uint64_t*>_address(underlyings, "seq", base)

    def apply_quotes(
        self,
        uintptr_t records,
        Py_ssize_t n,
        uint64_t seq,
        uint32_t[::1] changed,
        int64_t[::1] rejects,
    ):
        """Apply `n` QuoteRecords; return how many were applied (their rows go to `changed`).

        Rejected, never applied: non-finite or negative prices, bid > ask, a row at or past
        the registered count, a quote older than the one held. Rejects are added to `rejects`
        (indexed by RejectKind).
        """
        cdef const QuoteRecord *quotes = <const QuoteRecord*>records
        cdef const QuoteRecord *q
        cdef Py_ssize_t i, applied = 0
        cdef uint64_t count = fa_load_acquire(self.header_count)
        cdef uint32_t row
        cdef uint64_t *lock
        with nogil:
            for i in range(n):
                q = &quotes[i]
                row = q.row
                if row >= count:
                    rejects[UNKNOWN_ROW] += 1
                    continue
                if not (isfinite(q.bid) and isfinite(q.ask)):
                    rejects[NOT_FINITE] += 1
                    continue
                if q.bid < 0.0 or q.ask < 0.0:
                    rejects[NEGATIVE] += 1
                    continue
                if q.bid > q.ask:
                    rejects[CROSSED] += 1
                    continue
                if q.ts < self.ts_quote[row]:
                    rejects[STALE] += 1
                    continue
                lock = &self.locks[row >> CHUNK_SHIFT]
                fa_write_begin(lock)
                self.bid[row] = q.bid
                self.ask[row] = q.ask
                self.bid_size[row] = q.bid_size
                self.ask_size[row] = q.ask_size
                self.bid_exchange[row] = q.bid_exchange
                self.ask_exchange[row] = q.ask_exchange
                self.ts_quote[row] = q.ts
                self.row_seq[row] = seq
                fa_write_end(lock)
                changed[applied] = row
                applied += 1
        return applied

    def apply_trades(
        self,
        uintptr_t records,
        Py_ssize_t n,
        uint64_t seq,
        uint32_t[::1] changed,
        int64_t[::1] rejects,
    ):
        """Apply `n` TradeRecords: cumulative volume always, last price/size if not older.

        A late trade report still counts toward the day's volume but does not replace a newer
        last price. Non-finite, non-positive prices, zero sizes and unknown rows are rejected.
        """
        cdef const TradeRecord *trades = <const TradeRecord*>records
        cdef const TradeRecord *t
        cdef Py_ssize_t i, applied = 0
        cdef uint64_t count = fa_load_acquire(self.header_count)
        cdef uint32_t row
        cdef uint64_t *lock
        with nogil:
            for i in range(n):
                t = &trades[i]
                row = t.row
                if row >= count:
                    rejects[UNKNOWN_ROW] += 1
                    continue
                if not isfinite(t.price):
                    rejects[NOT_FINITE] += 1
                    continue
                if t.price <= 0.0 or t.size == 0:
                    rejects[NEGATIVE] += 1
                    continue
                lock = &self.locks[row >> CHUNK_SHIFT]
                fa_write_begin(lock)
                self.volume[row] += t.size
                if t.ts >= self.ts_trade[row]:
                    self.last[row] = t.price
                    self.last_size[row] = t.size
                    self.last_exchange[row] = t.exchange
                    self.last_condition[row] = t.condition
                    self.ts_trade[row] = t.ts
                self.row_seq[row] = seq
                fa_write_end(lock)
                changed[applied] = row
                applied += 1
        return applied

    def apply_underlyings(
        self,
        uintptr_t records,
        Py_ssize_t n,
        uint64_t seq,
        uint32_t[::1] changed,
        int64_t[::1] rejects,
    ):
        """Apply `n` UnderlyingTickRecords (spot prices); same reject rules as quotes."""
        cdef const UnderlyingTickRecord *ticks = <const UnderlyingTickRecord*>records
        cdef const UnderlyingTickRecord *u
        cdef Py_ssize_t i, applied = 0
        cdef uint64_t count = fa_load_acquire(self.header_underlying_count)
        cdef uint32_t underlying
        with nogil:
            fa_write_begin(self.underlying_lock)
            for i in range(n):
                u = &ticks[i]
                underlying = u.underlying
                if underlying >= count:
                    rejects[UNKNOWN_ROW] += 1
                    continue
                if not isfinite(u.price):
                    rejects[NOT_FINITE] += 1
                    continue
                if u.price <= 0.0:
                    rejects[NEGATIVE] += 1
                    continue
                if u.ts < self.ts_spot[underlying]:
                    rejects[STALE] += 1
                    continue
                self.spot[underlying] = u.price
                self.ts_spot[underlying] = u.ts
                self.underlying_seq[underlying] = seq
                changed[applied] = underlying
                applied += 1
            fa_write_end(self.underlying_lock)
        return applied

    def apply_open_interest(
        self,
        uintptr_t records,
        Py_ssize_t n,
        uint64_t seq,
        uint32_t[::1] changed,
        int64_t[::1] rejects,
    ):
        """Apply `n` OpenInterestRecords."""
        cdef const OpenInterestRecord *records_ = <const OpenInterestRecord*>records
        cdef Py_ssize_t i, applied = 0
        cdef uint64_t count = fa_load_acquire(self.header_count)
        cdef uint32_t row
        cdef uint64_t *lock
        with nogil:
            for i in range(n):
                row = records_[i].row
                if row >= count:
                    rejects[UNKNOWN_ROW] += 1
                    continue
                lock = &self.locks[row >> CHUNK_SHIFT]
                fa_write_begin(lock)
                self.open_interest[row] = records_[i].open_interest
                self.row_seq[row] = seq
                fa_write_end(lock)
                changed[applied] = row
                applied += 1
        return applied

    def publish_seq(self, uint64_t seq):
        """Make `seq` the state's global sequence number (release store)."""
        fa_store_release(self.header_seq, seq)

    def publish_count(self, uint64_t count, uint64_t underlying_count):
        """Expose rows below `count` to readers, after their static columns were written."""
        fa_store_release(self.header_underlying_count, underlying_count)
        fa_store_release(self.header_count, count)


def write_columns(
    uintptr_t locks,
    const uint32_t[::1] rows,
    const int64_t[::1] destinations,
    const int64_t[::1] sources,
    const int64_t[::1] itemsizes,
    bint skip_older_seq=False,
    uintptr_t seq_column=0,
    const uint64_t[::1] seqs=None,
):
    """Scatter `len(rows)` values of several columns into the segment under the row seqlocks.

    `destinations[c]` is the address of column c in the segment, `sources[c]` the address of a
    contiguous array holding one value per entry of `rows`, `itemsizes[c]` its width in bytes.
    With `skip_older_seq`, a row whose `seq_column` value is newer than `seqs[i]` is left
    untouched (a result computed from older inputs than the ones the row now holds).
    Returns the number of rows written.
    """
    cdef Py_ssize_t i, c, n = rows.shape[0], columns = destinations.shape[0]
    cdef Py_ssize_t written = 0
    cdef uint64_t *lock_base = <uint64_t*>locks
    cdef uint64_t *row_seqs = <uint64_t*>seq_column
    cdef uint64_t *lock
    cdef uint32_t row
    cdef size_t width
    with nogil:
        for i in range(n):
            row = rows[i]
            if skip_older_seq and row_seqs[row] > seqs[i]:
                continue
            lock = &lock_base[row >> CHUNK_SHIFT]
            fa_write_begin(lock)
            for c in range(columns):
                width = <size_t>itemsizes[c]
                memcpy(
                    <void*>(<uintptr_t>destinations[c] + row * width),
                    <const void*>(<uintptr_t>sources[c] + i * width),
                    width,
                )
            fa_write_end(lock)
            written += 1
    return written


def read_rows(
    uintptr_t locks,
    const uint32_t[::1] rows,
    const int64_t[::1] sources,
    const int64_t[::1] itemsizes,
    const int64_t[::1] field_offsets,
    uintptr_t out,
    Py_ssize_t out_itemsize,
):
    """Copy whole rows out of a segment that another process may be writing.

    Runs of consecutive entries of `rows` in the same chunk are copied under one seqlock read
    and retried as a unit until the chunk's counter is even and unchanged, so every copied row
    is one the writer completed. Never writes to the segment; never blocks the writer.
    Raises RuntimeError if a chunk stays locked for ~50M spins (its writer died mid-write).
    """
    cdef Py_ssize_t n = rows.shape[0], columns = sources.shape[0]
    cdef Py_ssize_t start = 0, stop, i, c
    cdef uint64_t *lock_base = <uint64_t*>locks
    cdef uint64_t *lock
    cdef uint64_t begin, chunk = 0
    cdef uint32_t row
    cdef size_t width
    cdef int64_t spins
    cdef bint stuck = False
    with nogil:
        while start < n:
            chunk = rows[start] >> CHUNK_SHIFT
            stop = start + 1
            while stop < n and (rows[stop] >> CHUNK_SHIFT) == chunk:
                stop += 1
            lock = &lock_base[chunk]
            spins = 0
            while True:
                begin = fa_read_begin(lock)
                if begin & 1:
                    fa_cpu_relax()
                    spins += 1
                    if spins > MAX_READ_SPINS:
                        stuck = True
                        break
                    continue
                for i in range(start, stop):
                    row = rows[i]
                    for c in range(columns):
                        width = <size_t>itemsizes[c]
                        memcpy(
                            <void*>(out + i * out_itemsize + field_offsets[c]),
                            <const void*>(<uintptr_t>sources[c] + row * width),
                            width,
                        )
                if not fa_read_retry(lock, begin):
                    break
                spins += 1
            if stuck:
                break
            start = stop
    if stuck:
        raise RuntimeError(f"chunk {chunk} of the state stayed write-locked; is its writer dead?")


def read_locked_block(
    uintptr_t lock_address,
    const int64_t[::1] sources,
    const int64_t[::1] lengths,
    const int64_t[::1] destinations,
):
    """Copy several byte ranges guarded by one seqlock (the underlying rows, the status doc)."""
    cdef uint64_t *lock = <uint64_t*>lock_address
    cdef uint64_t begin
    cdef Py_ssize_t c, columns = sources.shape[0]
    cdef int64_t spins = 0
    cdef bint done = False
    with nogil:
        while spins <= MAX_READ_SPINS:
            begin = fa_read_begin(lock)
            if begin & 1:
                fa_cpu_relax()
                spins += 1
                continue
            for c in range(columns):
                memcpy(
                    <void*><uintptr_t>destinations[c],
                    <const void*><uintptr_t>sources[c],
                    <size_t>lengths[c],
                )
            if not fa_read_retry(lock, begin):
                done = True
                break
            spins += 1
    if done:
        return
    raise RuntimeError("a state block stayed write-locked; is its writer dead?")


def write_locked_block(
    uintptr_t lock_address,
    const int64_t[::1] destinations,
    const int64_t[::1] lengths,
    const int64_t[::1] sources,
):
    """Write several byte ranges under one seqlock (the writer side of read_locked_block)."""
    cdef uint64_t *lock = <uint64_t*>lock_address
    cdef Py_ssize_t c, columns = sources.shape[0]
    with nogil:
        fa_write_begin(lock)
        for c in range(columns):
            memcpy(
                <void*><uintptr_t>destinations[c],
                <const void*><uintptr_t>sources[c],
                <size_t>lengths[c],
            )
        fa_write_end(lock)


def load_acquire(uintptr_t address):
    """Atomically read the uint64 at `address` (acquire)."""
    return fa_load_acquire(<const uint64_t*>address)


def store_release(uintptr_t address, uint64_t value):
    """Atomically write the uint64 at `address` (release)."""
    fa_store_release(<uint64_t*>address, value)
