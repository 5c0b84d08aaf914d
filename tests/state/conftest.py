"""Fixtures of the state tests: a small listing of SPY calls."""

from __future__ import annotations

import numpy as np
import pytest

ROWS = 1000


def make_listings(n: int = ROWS):
    option_static = {
        "osi": np.array([f"SPY   251219C{i * 1000:08d}".encode() for i in range(n)]),
        "underlying_id": np.zeros(n, np.uint32),
        "expiry": np.full(n, 20441, np.int32),
        "strike": np.arange(n, dtype=np.float64),
        "right": np.ones(n, np.uint8),
        "style": np.zeros(n, np.uint8),
        "multiplier": np.full(n, 100, np.float32),
    }
    underlying_static = {
        "symbol": np.array([b"SPY"]),
        "style": np.zeros(1, np.uint8),
        "div_yield": np.array([0.012]),
    }
    return option_static, underlying_static


@pytest.fixture
def listings():
    """`listings(n=1000)` -> (option_static, underlying_static) for n SPY calls."""
    return make_listings
