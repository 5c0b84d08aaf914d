"""Random option samples shared by the pricing tests (the ranges of the issue)."""

from __future__ import annotations

import numpy as np


def random_options(n: int, seed: int, *, whole_days: bool = False) -> dict[str, np.ndarray]:
    """spot 100, strikes 50-150, 1 day-2 years, vol 5%-150%, rates 0-5%, yields 0-3%."""
    rng = np.random.default_rng(seed)
    days = rng.integers(1, 731, n) if whole_days else rng.uniform(1.0, 730.0, n)
    return {
        "spot": np.full(n, 100.0),
        "strike": rng.uniform(50.0, 150.0, n),
        "years": days / 365.0,
        "rate": rng.uniform(0.0, 0.05, n),
        "div_yield": rng.uniform(0.0, 0.03, n),
        "vol": rng.uniform(0.05, 1.5, n),
        "is_call": rng.random(n) < 0.5,
        "days": days,
    }
