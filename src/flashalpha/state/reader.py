"""`StateReader`: consistent, lock-free reads of the market state from any process.

Attaches read-only to the daemon's segment (or wraps the writer's own segment in-process) and
copies rows under the per-chunk seqlocks, retrying a chunk the writer touched meanwhile. The
writer never waits for a reader. Static columns (symbol, expiry, strike, ...) are written before
a row is published and never change, so they are read directly.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np

from flashalpha import _state_kernels
from flashalpha.state.layout import (
    OPTION_COLUMNS,
    OPTION_ROW_DTYPE,
    STATUS_BYTES,
    UNDERLYING_COLUMNS,
    UNDERLYING_ROW_DTYPE,
    Counter,
    RejectKind,
)
from flashalpha.state.segment import (
    Segment,
    StateUnavailableError,
    attach_segment,
    header_offset,
    writer_alive,
)


class StateReader:
    """Read-only access to a state segment.

    `StateReader.attach(name)` maps the daemon's segment read-only; `StateReader(segment)`
    reads a segment this process already maps (the daemon's own API and hub use that).
    """

    def __init__(self, segment: Segment, owns_segment: bool = False) -> None:
        self.segment = segment
        self._owns = owns_segment
        self._option_sources = np.array(
            [segment.address + segment.layout.option_offsets[c.name] for c in OPTION_COLUMNS],
            np.int64,
        )
        self._option_itemsizes = np.array([c.np_dtype.itemsize for c in OPTION_COLUMNS], np.int64)
        self._option_fields = np.array(
            [OPTION_ROW_DTYPE.fields[c.name][1] for c in OPTION_COLUMNS], np.int64
        )
        self._underlying_ids: np.ndarray | None = None
        self._symbol_index: dict[str, int] = {}
        self._indexed_rows = 0

    @classmethod
    def attach(cls, name: str) -> StateReader:
        """Attach read-only to the segment `name`; `StateUnavailableError` if there is none."""
        return cls(attach_segment(name), owns_segment=True)

    def close(self) -> None:
        if self._owns:
            self.segment.close()

    def __enter__(self) -> StateReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- header ------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Global sequence number of the last batch the writer completed."""
        return self.segment.load("seq")

    @property
    def count(self) -> int:
        return self.segment.load("count")

    @property
    def underlying_count(self) -> int:
        return self.segment.load("underlying_count")

    @property
    def writer_pid(self) -> int:
        return int(self.segment.header["writer_pid"])

    def heartbeat_age(self) -> float:
        """Seconds since the writer last said it was alive."""
        return (time.time_ns() - int(self.segment.header["ts_heartbeat"])) / 1e9

    def writer_running(self, stale_after: float = 5.0) -> bool:
        """Whether the writer process exists and its heartbeat is fresh."""
        return writer_alive(self.writer_pid) and self.heartbeat_age() < stale_after

    def counters(self) -> dict[str, int]:
        """Cumulative event counters and rejects by kind."""
        raw = self.segment.counters.copy()
        result = {
            name.lower(): int(raw[counter])
            for name, counter in Counter.__members__.items()
            if counter is not Counter.REJECT_BASE
        }
        for kind in RejectKind:
            result[f"rejected_{kind.name.lower()}"] = int(raw[Counter.REJECT_BASE + kind])
        return result

    def status(self) -> dict:
        """The daemon's last published status document ({} before the first one)."""
        base = self.segment.address
        length = np.zeros(1, np.uint64)
        # Copy the length and the whole region under the lock, then cut to the length.
        payload = np.empty(STATUS_BYTES, np.uint8)
        _state_kernels.read_locked_block(
            base + header_offset("status_seqlock"),
            np.array(
                [base + header_offset("status_length"), base + self.segment.layout.status_offset],
                np.int64,
            ),
            np.array([8, STATUS_BYTES], np.int64),
            np.array([length.ctypes.data, payload.ctypes.data], np.int64),
        )
        size = int(length[0])
        if size == 0:
            return {}
        return msgspec.json.decode(payload[:size].tobytes())

    # -- rows --------------------------------------------------------------------------------

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Copy option rows (a record array of `OPTION_ROW_DTYPE`), each one consistent.

        Rows at or past `count` raise IndexError. Sorted rows read fastest (one seqlock read
        per run of rows in the same chunk).
        """
        rows = np.ascontiguousarray(rows, np.uint32)
        count = self.count
        if len(rows) and int(rows.max()) >= count:
            raise IndexError(f"row {int(rows.max())} is not in the state (count {count})")
        out = np.empty(len(rows), OPTION_ROW_DTYPE)
        if len(rows):
            _state_kernels.read_rows(
                self.segment.address + self.segment.layout.chunk_locks_offset,
                rows,
                self._option_sources,
                self._option_itemsizes,
                self._option_fields,
                out.ctypes.data,
                OPTION_ROW_DTYPE.itemsize,
            )
        return out

    def read_underlyings(self) -> np.ndarray:
        """Copy every registered underlying row (`UNDERLYING_ROW_DTYPE`), consistently."""
        count = self.underlying_count
        layout = self.segment.layout
        base = self.segment.address
        columns = {c.name: np.empty(count, c.np_dtype) for c in UNDERLYING_COLUMNS}
        if count:
            _state_kernels.read_locked_block(
                base + layout.underlying_lock_offset,
                np.array([base + layout.underlying_offsets[n] for n in columns], np.int64),
                np.array([a.nbytes for a in columns.values()], np.int64),
                np.array([a.ctypes.data for a in columns.values()], np.int64),
            )
        out = np.empty(count, UNDERLYING_ROW_DTYPE)
        for name, values in columns.items():
            out[name] = values
        return out

    # -- lookups (static columns, no lock needed) --------------------------------------------

    def underlying_id(self, symbol: str) -> int:
        """Id of an underlying by ticker; KeyError naming it if the state has none."""
        count = self.underlying_count
        symbols = self.segment.underlying_column("symbol")[:count]
        matches = np.flatnonzero(symbols == symbol.upper().encode())
        if len(matches) == 0:
            raise KeyError(f"unknown underlying '{symbol}'")
        return int(matches[0])

    def rows_of_underlying(self, underlying_id: int) -> np.ndarray:
        """Option rows of one underlying, in row order."""
        count = self.count
        ids = self.segment.option_column("underlying_id")[:count]
        return np.flatnonzero(ids == underlying_id).astype(np.uint32)

    def row_of_osi(self, osi: str) -> int:
        """Row of a contract by its 21-character OSI symbol; KeyError naming it if unknown."""
        count = self.count
        if count > self._indexed_rows:
            symbols = self.segment.option_column("osi")[self._indexed_rows : count]
            for offset, symbol in enumerate(symbols.tolist()):
                self._symbol_index[symbol.decode()] = self._indexed_rows + offset
            self._indexed_rows = count
        try:
            return self._symbol_index[osi]
        except KeyError:
            raise KeyError(f"unknown contract '{osi.strip()}'") from None


def require_running(reader: StateReader, stale_after: float = 5.0) -> None:
    """Raise `StateUnavailableError` unless the segment's writer is alive."""
    if not reader.writer_running(stale_after):
        raise StateUnavailableError(
            f"no flashalpha daemon is running: segment '{reader.segment.name}' was left by "
            f"pid {reader.writer_pid}, last heartbeat {reader.heartbeat_age():.0f}s ago"
        )
