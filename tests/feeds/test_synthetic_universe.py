"""The synthetic universe: listings registered, sizes, expiries and strike grids."""

from __future__ import annotations

import datetime
import re

import numpy as np
import pytest

from flashalpha.feeds.synthetic import build_universe
from flashalpha.feeds.synthetic.universe import DEMO_SPECS
from flashalpha.instruments import InstrumentRegistry, underlying_of_root
from flashalpha.state.layout import ExerciseStyle

TRADING_DATE = datetime.date(2026, 3, 10)
EPOCH = np.datetime64("1970-01-01", "D")


@pytest.fixture(scope="module")
def demo():
    registry = InstrumentRegistry(capacity=200_000)
    return registry, build_universe("demo", registry, TRADING_DATE, seed=0)


def roots_of(registry: InstrumentRegistry, rows: np.ndarray) -> np.ndarray:
    return np.strings.strip(np.strings.slice(registry.osi_symbols[rows], 0, 6))


def test_demo_size_and_registration(demo):
    registry, universe = demo
    assert 50_000 <= universe.contract_count <= 100_000
    assert universe.underlying_count == len(DEMO_SPECS) == 20
    assert registry.count == universe.contract_count
    assert np.array_equal(np.sort(universe.rows), np.arange(registry.count))
    for u, symbol in enumerate(universe.symbols):
        uid = universe.underlying_ids[u]
        assert registry.underlying_symbol(uid) == symbol
        assert registry.underlying_div_yield(uid) == universe.div_yield[u]
        rows = registry.rows_of_underlying(uid)
        assert np.array_equal(np.sort(universe.rows[universe.row_underlying == u]), rows)
        assert len(rows) > 200, symbol


def test_styles_and_roots(demo):
    registry, _ = demo
    styles = registry.underlying_styles
    for symbol in ("SPX", "XSP", "VIX"):
        assert styles[registry.underlying_id(symbol)] == ExerciseStyle.EUROPEAN
    for symbol in ("SPY", "AAPL", "QQQ"):
        assert styles[registry.underlying_id(symbol)] == ExerciseStyle.AMERICAN
    spx_rows = registry.rows_of_underlying(registry.underlying_id("SPX"))
    roots = roots_of(registry, spx_rows)
    assert set(roots.tolist()) == {b"SPX", b"SPXW"}
    # AM-settled SPX lists the standard monthlies and LEAPS; SPXW the dailies and the rest.
    spx_days = np.unique(registry.expiry_days[spx_rows[roots == b"SPX"]]).astype("datetime64[D]")
    assert all(d.item().weekday() == 4 and 15 <= d.item().day <= 21 for d in spx_days)
    spxw_days = np.unique(registry.expiry_days[spx_rows[roots == b"SPXW"]])
    assert spxw_days.min() == (np.datetime64(TRADING_DATE) - EPOCH).astype(int)
    assert set(
        roots_of(registry, registry.rows_of_underlying(registry.underlying_id("VIX"))).tolist()
    ) == {
        b"VIX",
        b"VIXW",
    }
    assert all(
        underlying_of_root(listing.root) == spec.symbol
        for spec in DEMO_SPECS
        for listing in spec.listings
    )


def test_expiries_are_business_days_from_the_trading_date(demo):
    registry, _ = demo
    days = np.unique(registry.expiry_days).astype("datetime64[D]")
    assert days.min() == np.datetime64(TRADING_DATE)
    assert np.all(np.is_busday(days))
    spy_days = np.unique(
        registry.expiry_days[registry.rows_of_underlying(registry.underlying_id("SPY"))]
    ).astype("datetime64[D]")
    two_weeks = spy_days[spy_days < np.datetime64(TRADING_DATE) + 14]
    assert len(two_weeks) == 10  # dailies: every weekday
    leaps = [d.item() for d in spy_days if d.item().year >= TRADING_DATE.year + 2]
    assert [d.month for d in leaps] == [1, 1]
    assert (spy_days.max() - np.datetime64(TRADING_DATE)).astype(int) > 2.5 * 365


def _chain(registry, symbol: str, expiry_rank: int, root: str | None = None):
    rows = registry.rows_of_underlying(registry.underlying_id(symbol))
    if root is not None:
        rows = rows[roots_of(registry, rows) == root.encode()]
    days = np.unique(registry.expiry_days[rows])
    chain = rows[registry.expiry_days[rows] == days[expiry_rank]]
    return np.unique(registry.strikes[chain])


@pytest.mark.parametrize(
    ("symbol", "spot", "steps", "root"),
    [("SPY", 660.0, (1, 5, 10), None), ("SPX", 6600.0, (5, 25, 50), "SPXW")],
)
def test_strike_grids_widen_away_from_the_money(demo, symbol, spot, steps, root):
    registry, _ = demo
    for rank in (0, 5, -1):  # 0DTE, a few weeks, the last LEAPS or quarterly
        strikes = _chain(registry, symbol, rank, root)
        below = np.diff(strikes[strikes <= spot])[::-1]  # moving down from the money
        above = np.diff(strikes[strikes >= spot])  # moving up
        for side in (below, above):
            assert np.all(np.diff(side) >= 0), f"{symbol} steps shrink away from the money"
            assert side[0] == steps[0]
            assert side[-1] == steps[2]
        assert spot in strikes
    near = _chain(registry, symbol, 0, root)
    far = _chain(registry, symbol, -1, root)
    assert far.max() - far.min() > 2 * (near.max() - near.min())
    assert near.min() > 0.6 * spot and near.max() < 1.3 * spot


def test_underlyings_filter_and_unknown_names():
    registry = InstrumentRegistry(capacity=50_000)
    universe = build_universe("demo", registry, TRADING_DATE, underlyings=["SPY", "AAPL"])
    assert universe.symbols == ("SPY", "AAPL")
    assert registry.underlying_count == 2
    with pytest.raises(ValueError, match=r"\['NOPE'\]"):
        build_universe("demo", InstrumentRegistry(100), TRADING_DATE, underlyings=["SPY", "NOPE"])
    with pytest.raises(ValueError, match="'tiny'"):
        build_universe("tiny", InstrumentRegistry(100), TRADING_DATE)  # type: ignore[arg-type]


def test_building_twice_is_idempotent(demo):
    registry, universe = demo
    again = build_universe("demo", registry, TRADING_DATE, seed=0)
    assert np.array_equal(again.rows, universe.rows)
    assert registry.count == universe.contract_count


@pytest.mark.slow
def test_full_universe():
    registry = InstrumentRegistry()
    universe = build_universe("full", registry, TRADING_DATE, seed=3)
    assert 1_650_000 <= universe.contract_count <= 1_950_000
    assert universe.underlying_count == registry.underlying_count == 5_000
    assert registry.count == universe.contract_count
    symbols = list(universe.symbols)
    assert len(set(symbols)) == len(symbols)
    assert all(re.fullmatch(r"[A-Z]{1,5}", s) for s in symbols)
    assert symbols[: len(DEMO_SPECS)] == [s.symbol for s in DEMO_SPECS]
    per_underlying = np.bincount(universe.row_underlying, minlength=universe.underlying_count)
    assert per_underlying.min() > 0
    days = np.unique(registry.expiry_days).astype("datetime64[D]")
    assert days.min() >= np.datetime64(TRADING_DATE)
    assert np.all(np.is_busday(days))
    assert np.all(registry.strikes > 0)
    # The same seed lists the same market.
    twin = build_universe("full", InstrumentRegistry(), TRADING_DATE, seed=3)
    assert twin.symbols == universe.symbols
    assert np.array_equal(twin.spot, universe.spot)
