"""Strike grids that widen away from the money, vectorized over many chains at once.

A chain (one underlying, one expiry) lists strikes in five bands of log-moneyness around the
spot: a fine band at the money, medium bands beyond it, coarse bands in the wings, e.g. SPY $1
near the money, $5 further out, $10 far; SPX $5 / $25 / $50. Band widths grow with the
expected move, ATM vol x sqrt(years), within floors and caps, so a 0DTE lists a tight grid and a
LEAPS a wide one; puts reach further than calls, as listed equity grids do.

Strikes are integers in 1/1000 dollars (the OSI unit), multiples of their band's step.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Half-widths of the bands in log-moneyness: (multiple of the expected move, floor, cap).
NEAR_BAND: Final = (1.25, 0.025, 0.06)
MIDDLE_BAND: Final = (3.0, 0.08, 0.35)
PUT_WING: Final = (5.0, 0.20, 1.6)
CALL_WING: Final = (3.5, 0.15, 1.1)
#: The ladder of listed strike increments, dollars.
STEP_LADDER: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)


def default_steps(spot: np.ndarray) -> np.ndarray:
    """Fine, middle and far strike increments (dollars) for each spot: shape (n, 3).

    The fine step is the smallest ladder rung at least 0.8% of spot; the next two rungs follow.
    """
    ladder = np.asarray(STEP_LADDER)
    fine = np.searchsorted(ladder, np.asarray(spot, np.float64) * 0.008)
    fine = np.minimum(fine, len(ladder) - 3)
    return ladder[fine[:, None] + np.arange(3)]


def strike_grid(
    spot: np.ndarray, expected_move: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Strikes of many chains at once.

    spot: dollars per chain; expected_move: ATM vol x sqrt(years) per chain (decimal);
    steps: (chains, 3) fine/middle/far increments in dollars.
    Returns (chain index per strike, strike in 1/1000 dollars), ascending within each chain.
    """
    spot = np.asarray(spot, np.float64)
    move = np.asarray(expected_move, np.float64)
    step_milli = np.round(np.asarray(steps, np.float64) * 1000).astype(np.int64)
    near = _half_width(move, NEAR_BAND)
    middle = np.maximum(_half_width(move, MIDDLE_BAND), near)
    put_wing = np.maximum(_half_width(move, PUT_WING), middle)
    call_wing = np.maximum(_half_width(move, CALL_WING), middle)

    def edge(log_moneyness: np.ndarray) -> np.ndarray:
        return np.round(spot * np.exp(log_moneyness) * 1000).astype(np.int64)

    # Five half-open bands [low, high) per chain, in ascending strike order.
    lows = np.stack(
        [edge(-put_wing), edge(-middle), edge(-near), edge(near) + 1, edge(middle) + 1], axis=1
    )
    highs = np.stack(
        [edge(-middle), edge(-near), edge(near) + 1, edge(middle) + 1, edge(call_wing) + 1],
        axis=1,
    )
    band_steps = step_milli[:, [2, 1, 0, 1, 2]]
    first = -(-np.maximum(lows, 1) // band_steps)  # ceiling division: first multiple >= low
    end = -(-highs // band_steps)
    counts = np.maximum(end - first, 0).ravel()
    segment = np.repeat(np.arange(counts.shape[0]), counts)
    offsets = np.arange(segment.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    strikes = (first.ravel()[segment] + offsets) * band_steps.ravel()[segment]
    return segment // 5, strikes


def _half_width(move: np.ndarray, band: tuple[float, float, float]) -> np.ndarray:
    multiple, floor, cap = band
    return np.clip(multiple * move, floor, cap)
