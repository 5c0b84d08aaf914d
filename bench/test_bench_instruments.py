"""Instrument registry: building a full market's registry, per-event lookups, memory per row.

Run: .venv/bin/python -m pytest bench/test_bench_instruments.py --benchmark-only
"""

from __future__ import annotations

import string

import numpy as np
import pytest

from flashalpha.instruments import InstrumentRegistry

UNDERLYINGS = 5_000
PER_UNDERLYING = 360  # 5,000 x 360 = 1.8M contracts, the size of the US option market


def _tickers(count: int) -> np.ndarray:
    letters = np.array(list(string.ascii_uppercase))
    index = np.arange(count)
    parts = [letters[index // 26**power % 26] for power in (3, 2, 1, 0)]
    return np.strings.add(np.strings.add(parts[0], parts[1]), np.strings.add(parts[2], parts[3]))


@pytest.fixture(scope="module")
def full_market() -> tuple[np.ndarray, ...]:
    """Roots, expiry days, strikes (1/1000 dollars) and rights of 1.8M distinct contracts."""
    k = np.tile(np.arange(PER_UNDERLYING), UNDERLYINGS)
    roots = np.repeat(_tickers(UNDERLYINGS), PER_UNDERLYING)
    expiries = 20_500 + (k // 40) * 7
    strikes = (k % 40 // 2 + 1) * 2_500 + np.repeat(np.arange(UNDERLYINGS), PER_UNDERLYING) * 10
    rights = k % 2
    return roots, expiries, strikes, rights


@pytest.fixture(scope="module")
def full_registry(full_market) -> InstrumentRegistry:
    registry = InstrumentRegistry()
    registry.add_many(*full_market)
    return registry


def test_build_registry_of_1_8m_contracts(benchmark, full_market):
    def build() -> InstrumentRegistry:
        registry = InstrumentRegistry()
        registry.add_many(*full_market)
        return registry

    registry = benchmark.pedantic(build, rounds=3, iterations=1)
    assert registry.count == UNDERLYINGS * PER_UNDERLYING
    benchmark.extra_info["contracts"] = registry.count
    benchmark.extra_info["contracts_per_second"] = registry.count / benchmark.stats["median"]


def test_get_row_per_event(benchmark, full_registry):
    """What a feed pays per event to turn a compact symbol into a row (1,000 lookups a round)."""
    picks = np.random.default_rng(0).integers(0, full_registry.count, 1_000)
    symbols = [s.decode().replace(" ", "") for s in full_registry.osi_symbols[picks]]
    get_row = full_registry.get_row

    def look_up() -> int:
        found = 0
        for symbol in symbols:
            found += get_row(symbol) >= 0
        return found

    assert benchmark(look_up) == len(symbols)
    benchmark.extra_info["lookups_per_second"] = len(symbols) / benchmark.stats["median"]


def test_get_rows_batch(benchmark, full_registry):
    """Vectorized lookups: 100,000 compact symbols a round."""
    picks = np.random.default_rng(1).integers(0, full_registry.count, 100_000)
    symbols = [s.decode().replace(" ", "") for s in full_registry.osi_symbols[picks]]
    rows = benchmark(full_registry.get_rows, symbols)
    assert np.array_equal(rows, picks)
    benchmark.extra_info["lookups_per_second"] = len(symbols) / benchmark.stats["median"]


def test_registry_bytes_per_row(benchmark, full_registry):
    """Reports the registry's memory per option row (budget: well under 250 bytes)."""
    total = benchmark.pedantic(full_registry.memory_bytes, rounds=1, iterations=1)
    per_row = total / full_registry.count
    benchmark.extra_info["bytes_per_row"] = round(per_row, 1)
    benchmark.extra_info["array_bytes_per_row"] = round(
        full_registry.nbytes() / full_registry.count, 1
    )
    print(f"\nregistry: {per_row:.1f} bytes per option row ({full_registry.count:,} rows)")
    assert per_row < 250
