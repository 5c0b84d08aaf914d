# Typed views of the normalized event records (state.layout's *_DTYPE, align=True) and of the
# segment's columns. The C structs must match numpy's aligned layout; `record_sizes()` lets the
# Python side check it at import.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t


cdef extern from "seqlock.h" nogil:
    void fa_write_begin(uint64_t *lock)
    void fa_write_end(uint64_t *lock)
    uint64_t fa_read_begin(const uint64_t *lock)
    int fa_read_retry(const uint64_t *lock, uint64_t begin)
    void fa_store_release(uint64_t *address, uint64_t value)
    uint64_t fa_load_acquire(const uint64_t *address)
    void fa_cpu_relax()


ctypedef struct QuoteRecord:
    uint32_t row
    uint32_t bid_size
    uint32_t ask_size
    uint8_t bid_exchange
    uint8_t ask_exchange
    double bid
    double ask
    uint64_t ts

ctypedef struct TradeRecord:
    uint32_t row
    uint32_t size
    uint8_t exchange
    uint16_t condition
    double price
    uint64_t ts

ctypedef struct UnderlyingTickRecord:
    uint32_t underlying
    double price
    uint64_t ts

ctypedef struct OpenInterestRecord:
    uint32_t row
    uint32_t open_interest
    uint64_t ts


cdef class StateKernels:
    cdef uint64_t *locks
    cdef uint64_t *underlying_lock
    cdef uint64_t *header_seq
    cdef uint64_t *header_count
    cdef uint64_t *header_underlying_count
    cdef Py_ssize_t capacity
    cdef Py_ssize_t underlying_capacity
    # option columns written by the feed path
    cdef double *bid
    cdef double *ask
    cdef uint32_t *bid_size
    cdef uint32_t *ask_size
    cdef uint8_t *bid_exchange
    cdef uint8_t *ask_exchange
    cdef double *last
    cdef uint32_t *last_size
    cdef uint8_t *last_exchange
    cdef uint16_t *last_condition
    cdef uint64_t *volume
    cdef uint32_t *open_interest
    cdef uint64_t *ts_quote
    cdef uint64_t *ts_trade
    cdef uint64_t *row_seq
    # underlying columns written by the feed path
    cdef double *spot
    cdef uint64_t *ts_spot
    cdef uint64_t *underlying_seq
