"""Which rows need repricing, conflated: each stale row is queued once however often it ticks.

Two sources of work:

- hot rows: a quote changed or the underlying moved (events), or a batch came back unusable
  (its worker died or was late, or the row changed while it was priced). Queued in arrival
  order, requeues in front, each row at most once (`queued` flags).
- the sweep: every row at least every `sweep_interval` seconds, so that time to expiry and
  theta stay current for contracts that do not trade. A cursor walks rows [0, count) as
  contiguous slices (cheap to copy); a sweep is complete when every row it handed out has come
  back priced or was requeued and then came back.

`since[row]` is when the row became stale (0 = fresh); the repricing lag is now minus the
oldest of those.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

_EMPTY = np.empty(0, np.uint32)


@dataclass(slots=True)
class Work:
    """Rows cut for one batch: an index array, or a slice of the sweep when `rows` is None."""

    rows: np.ndarray | None
    start: int
    stop: int
    #: How many of the rows belong to the current sweep (they count toward its completion).
    sweep_rows: int

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else self.stop - self.start

    def row_ids(self) -> np.ndarray:
        if self.rows is None:
            return np.arange(self.start, self.stop, dtype=np.uint32)
        return self.rows

    def index(self) -> np.ndarray | slice:
        """What to index the state's columns with."""
        return slice(self.start, self.stop) if self.rows is None else self.rows


class RepricingQueue:
    def __init__(self, capacity: int, sweep_interval: float) -> None:
        self.queued = np.zeros(capacity, np.bool_)
        self.since = np.zeros(capacity, np.uint64)
        self.sweep_interval_ns = int(sweep_interval * 1e9)
        # hot chunks: (rows, from_sweep)
        self._chunks: deque[tuple[np.ndarray, bool]] = deque()
        self.hot_rows = 0
        # sweep state
        self.sweep_active = False
        self.sweep_start_ns = 0
        self.sweep_cursor = 0
        self.sweep_end = 0
        self.sweep_outstanding = 0
        self.next_sweep_ns = 0
        self.sweeps_completed = 0
        self.last_sweep_seconds: float | None = None

    # -- adding work -------------------------------------------------------------------------

    def mark(self, rows: np.ndarray, now_ns: int) -> int:
        """Rows whose inputs changed; returns how many were not queued already."""
        if len(rows) == 0:
            return 0
        rows = np.asarray(rows, np.uint32)
        since = self.since[rows]
        self.since[rows] = np.where(since == 0, np.uint64(now_ns), since)
        fresh = rows[~self.queued[rows]]
        if len(fresh):
            fresh = np.unique(fresh)
            self.queued[fresh] = True
            self._chunks.append((fresh, False))
            self.hot_rows += len(fresh)
        return len(fresh)

    def requeue(self, work: Work) -> None:
        """Put back the rows of a batch that did not come back usable, in front of the queue.

        Rows queued again meanwhile (by a newer event) are not repeated; sweep rows among them
        leave the sweep's count, since the hot path now prices them.
        """
        rows = work.row_ids()
        keep = ~self.queued[rows]
        back = rows[keep]
        sweep_rows = work.sweep_rows
        if sweep_rows:
            # Sweep rows are the tail of a batch (hot rows first, then the sweep slice).
            sweep_part = np.zeros(len(rows), np.bool_)
            sweep_part[len(rows) - sweep_rows :] = True
            self.sweep_outstanding -= int((sweep_part & ~keep).sum())
            hot_back = rows[keep & ~sweep_part]
            sweep_back = rows[keep & sweep_part]
        else:
            hot_back, sweep_back = back, _EMPTY
        self.queued[back] = True
        for part, from_sweep in ((sweep_back, True), (hot_back, False)):
            if len(part):
                self._chunks.appendleft((part, from_sweep))
                self.hot_rows += len(part)

    # -- the sweep ---------------------------------------------------------------------------

    def maybe_start_sweep(self, count: int, now_ns: int) -> bool:
        """Start a sweep over rows [0, count) if one is due; True if it started."""
        if self.sweep_active or count == 0 or now_ns < self.next_sweep_ns:
            return False
        self.sweep_active = True
        self.sweep_start_ns = now_ns
        self.sweep_cursor = 0
        self.sweep_end = count
        self.sweep_outstanding = 0
        since = self.since[:count]
        since[since == 0] = np.uint64(now_ns)
        return True

    def _finish_sweep_if_done(self, now_ns: int) -> None:
        if (
            self.sweep_active
            and self.sweep_cursor >= self.sweep_end
            and self.sweep_outstanding <= 0
        ):
            self.sweep_active = False
            self.sweeps_completed += 1
            self.last_sweep_seconds = (now_ns - self.sweep_start_ns) / 1e9
            self.next_sweep_ns = self.sweep_start_ns + self.sweep_interval_ns

    @property
    def sweep_overdue(self) -> bool:
        return self.sweep_active and self.sweep_cursor < self.sweep_end

    def pending(self) -> int:
        """Distinct rows waiting to be cut into a batch (hot, or ahead of the sweep's cursor).

        A row both queued hot and ahead of the cursor is counted once (it will be cut twice:
        the sweep slice does not skip it). Costs a pass over the sweep's remaining flags.
        """
        if not self.sweep_active or self.sweep_cursor >= self.sweep_end:
            return self.hot_rows
        ahead = self.queued[self.sweep_cursor : self.sweep_end]
        return self.hot_rows + len(ahead) - int(np.count_nonzero(ahead))

    # -- cutting batches ---------------------------------------------------------------------

    def take(self, limit: int, now_ns: int) -> Work | None:
        """Up to `limit` rows for one batch: hot rows first, then the sweep.

        A sweep running longer than its interval gets at least half of each batch, so a
        saturated hot path cannot starve it.
        """
        if limit <= 0:
            return None
        sweep_left = self.sweep_end - self.sweep_cursor if self.sweep_active else 0
        if self.hot_rows == 0:
            if sweep_left == 0:
                return None
            start = self.sweep_cursor
            stop = start + min(limit, sweep_left)
            self.sweep_cursor = stop
            self.sweep_outstanding += stop - start
            return Work(None, start, stop, stop - start)
        hot_limit = limit
        late = sweep_left and now_ns - self.sweep_start_ns > self.sweep_interval_ns
        if late:
            hot_limit = max(1, limit // 2)
        parts, sweep_rows, taken = [], 0, 0
        while self._chunks and taken < hot_limit:
            rows, from_sweep = self._chunks[0]
            room = hot_limit - taken
            if len(rows) > room:
                self._chunks[0] = (rows[room:], from_sweep)
                rows = rows[:room]
            else:
                self._chunks.popleft()
            parts.append((rows, from_sweep))
            taken += len(rows)
        self.hot_rows -= taken
        # Sweep rows go last (see `requeue`): requeued sweep rows first, then the cursor.
        hot = [rows for rows, from_sweep in parts if not from_sweep]
        swept = [rows for rows, from_sweep in parts if from_sweep]
        sweep_rows = sum(len(rows) for rows in swept)
        for rows, _ in parts:
            self.queued[rows] = False
        if late and taken < limit:
            start = self.sweep_cursor
            stop = start + min(limit - taken, sweep_left)
            self.sweep_cursor = stop
            self.sweep_outstanding += stop - start
            swept.append(np.arange(start, stop, dtype=np.uint32))
            sweep_rows += stop - start
        rows = np.concatenate(hot + swept) if len(hot) + len(swept) > 1 else (hot + swept)[0]
        return Work(rows, 0, 0, sweep_rows)

    # -- outcomes ----------------------------------------------------------------------------

    def done(self, work: Work, priced: np.ndarray | None, now_ns: int) -> None:
        """A batch came back: `priced` rows (None = all of them) are fresh unless queued again.

        Rows not priced (changed while in flight) must be requeued by the caller first.
        """
        rows = work.row_ids() if priced is None else priced
        if len(rows):
            since = self.since[rows]
            self.since[rows] = np.where(self.queued[rows], since, np.uint64(0))
        if work.sweep_rows:
            self.sweep_outstanding -= work.sweep_rows
        self._finish_sweep_if_done(now_ns)

    def tick(self, now_ns: int) -> None:
        """Housekeeping: a sweep with nothing outstanding completes."""
        self._finish_sweep_if_done(now_ns)

    def lag_seconds(self, now_ns: int, count: int) -> float:
        """Now minus the time the oldest stale row became stale (0 if none is)."""
        since = self.since[:count]
        stale = since[since > 0]
        if len(stale) == 0:
            return 0.0
        return max(0.0, (now_ns - int(stale.min())) / 1e9)
