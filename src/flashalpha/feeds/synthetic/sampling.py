"""Weighted sampling of contracts whose weights drift, refreshed a slice at a time.

The feed draws the contracts to requote in proportion to their activity, which follows spot
and time. Recomputing 1.8M weights and their cumulative sum at once stalls the event loop for
tens of milliseconds; instead the contracts are cut into blocks of `BLOCK` and each call to
`advance` refreshes the next few blocks, so a full sweep is spread over many batches.

A draw picks a block by the blocks' total weights, then a contract inside it by the block's
cumulative weights. Both steps are one `searchsorted`: each contract's key is its block number
plus its cumulative share of the block's weight, a single array ascending across all blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

#: Contracts per block: a block is the unit of refresh.
BLOCK: Final = 4096


class ActivitySampler:
    """Draws contracts 0..count-1 in proportion to `weigh(local, now_ns)` (non-negative)."""

    def __init__(
        self,
        count: int,
        weigh: Callable[[np.ndarray, int], np.ndarray],
        sweep_calls: int,
    ) -> None:
        """`sweep_calls`: how many `advance` calls one refresh of every block takes."""
        self._count = count
        self._weigh = weigh
        self._blocks = max(1, -(-count // BLOCK))
        self._blocks_per_call = max(1, -(-self._blocks // max(1, sweep_calls)))
        self._cursor = 0
        self._keys = np.zeros(count)
        self._block_totals = np.zeros(self._blocks)

    def refresh_all(self, now_ns: int) -> None:
        """Recompute every weight (at start)."""
        self._refresh(0, self._blocks, now_ns)
        self._cursor = 0

    def advance(self, now_ns: int) -> None:
        """Recompute the next slice of blocks, wrapping around."""
        start = self._cursor
        stop = min(start + self._blocks_per_call, self._blocks)
        self._refresh(start, stop, now_ns)
        self._cursor = 0 if stop == self._blocks else stop

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """About `count` distinct contracts (ascending), drawn with replacement then deduplicated;
        busy contracts repeat, so the shortfall is drawn again, twice at most."""
        cumulative = np.cumsum(self._block_totals)
        if count <= 0 or cumulative[-1] <= 0.0:
            return np.empty(0, np.int64)
        picked = np.empty(0, np.int64)
        for _ in range(3):
            draws = rng.random(count - picked.shape[0]) * cumulative[-1]
            block = np.minimum(np.searchsorted(cumulative, draws, side="right"), self._blocks - 1)
            block_start = cumulative[block] - self._block_totals[block]
            fraction = np.clip((draws - block_start) / self._block_totals[block], 0.0, 1 - 1e-12)
            found = np.searchsorted(self._keys, block + fraction, side="right")
            picked = np.union1d(picked, np.minimum(found, self._count - 1))
            if picked.shape[0] >= 0.97 * count:
                break
        return picked

    def _refresh(self, first_block: int, stop_block: int, now_ns: int) -> None:
        start, stop = first_block * BLOCK, min(stop_block * BLOCK, self._count)
        if start >= stop:
            return
        weights = np.maximum(self._weigh(np.arange(start, stop), now_ns), 0.0)
        running = np.cumsum(weights)
        # Cumulative weight within each block: subtract the running total before the block.
        block_starts = np.arange(0, stop - start, BLOCK)
        before = np.concatenate(([0.0], running[block_starts[1:] - 1]))
        lengths = np.diff(np.append(block_starts, stop - start))
        within = running - np.repeat(before, lengths)
        totals = within[np.append(block_starts[1:], stop - start) - 1]
        share = np.divide(
            within,
            np.repeat(totals, lengths),
            out=np.zeros_like(within),
            where=np.repeat(totals, lengths) > 0.0,
        )
        self._keys[start:stop] = np.repeat(np.arange(first_block, stop_block), lengths) + share
        self._block_totals[first_block:stop_block] = totals
