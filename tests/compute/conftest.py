"""A small priced-able market in a real shared-memory state, for the compute tests."""

from __future__ import annotations

import time

import numpy as np
import pytest

from flashalpha.pricing import bsm_price
from flashalpha.state.batch import TickBatch
from flashalpha.state.engine import MarketState
from flashalpha.state.layout import (
    QUOTE_DTYPE,
    UNDERLYING_TICK_DTYPE,
    ExerciseStyle,
)

EPOCH_TODAY = int((np.datetime64("today") - np.datetime64("1970-01-01")).astype(int))


def make_market(state: MarketState, n: int, seed: int = 1, spot: float = 100.0) -> np.ndarray:
    """List n European SPY options (strikes 60..140, 1 day..2 years), tick the spot and quote
    each one a cent around its BSM price at a known vol; return those vols."""
    rng = np.random.default_rng(seed)
    strike = np.round(rng.uniform(60, 140, n), 1)
    expiry = (EPOCH_TODAY + rng.integers(1, 730, n)).astype(np.int32)
    right = rng.integers(0, 2, n).astype(np.uint8)
    option_static = {
        "osi": np.array([f"SPY   270115C{i:08d}".encode() for i in range(n)]),
        "underlying_id": np.zeros(n, np.uint32),
        "expiry": expiry,
        "strike": strike,
        "right": right,
        "style": np.full(n, ExerciseStyle.EUROPEAN, np.uint8),
        "multiplier": np.full(n, 100, np.float32),
    }
    underlying_static = {
        "symbol": np.array([b"SPY"]),
        "style": np.full(1, ExerciseStyle.EUROPEAN, np.uint8),
        "div_yield": np.array([0.01]),
    }
    state.add_listings(option_static, underlying_static, rate=0.04)
    vols = rng.uniform(0.15, 0.6, n)
    years = (expiry - EPOCH_TODAY) / 365.0
    price = bsm_price(spot, strike, years, 0.04, 0.01, vols, right == 1)
    quote_market(state, np.arange(n, dtype=np.uint32), price, spot)
    return vols


def quote_market(state: MarketState, rows: np.ndarray, price: np.ndarray, spot: float) -> int:
    """Apply one batch: the spot and a quote two cents wide around `price` for each row."""
    now = time.time_ns()
    underlying = np.zeros(1, UNDERLYING_TICK_DTYPE)
    underlying["price"], underlying["ts"] = spot, now
    quotes = np.zeros(len(rows), QUOTE_DTYPE)
    quotes["row"] = rows
    quotes["bid"] = np.maximum(price - 0.01, 0.0)
    quotes["ask"] = price + 0.01
    quotes["bid_size"] = quotes["ask_size"] = 10
    quotes["ts"] = now
    return state.apply(TickBatch(quotes=quotes, underlyings=underlying)).seq


@pytest.fixture
def market_state(shm_name):
    state = MarketState.create(shm_name, capacity=4096, underlying_capacity=4)
    yield state
    state.close()


@pytest.fixture(scope="session", autouse=True)
def _pricing_kernels_compiled(compiled_pricing_kernels):
    """Worker processes start from numba's cache (see tests/conftest.py)."""
