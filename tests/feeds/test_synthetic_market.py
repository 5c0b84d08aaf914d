"""The synthetic market's quotes, trades, open interest and price processes."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from flashalpha.feeds.synthetic import SyntheticMarket, build_universe
from flashalpha.feeds.synthetic.market import tick_size
from flashalpha.instruments import InstrumentRegistry
from flashalpha.pricing import bsm_price

TRADING_DATE = datetime.date(2026, 3, 10)
#: 2026-03-10 10:30 New York.
NOW_NS = 1_773_153_000 * 1_000_000_000
RATE = 0.045


@pytest.fixture(scope="module")
def registry():
    return InstrumentRegistry(capacity=200_000)


@pytest.fixture(scope="module")
def market(registry):
    universe = build_universe("demo", registry, TRADING_DATE, seed=0)
    return SyntheticMarket(universe, registry, rate=RATE, seed=0)


@pytest.fixture(scope="module")
def all_quotes(market):
    return market.quotes(np.arange(market.contract_count), NOW_NS)


def implied_vols(price, spot, strike, years, div_yield, is_call):
    """European implied vols: the pricing library's solver, or bisection until it lands."""
    try:
        from flashalpha.pricing import implied_vol

        return np.asarray(implied_vol(price, spot, strike, years, RATE, div_yield, is_call))
    except NotImplementedError:
        low, high = np.full(price.shape, 1e-4), np.full(price.shape, 6.0)
        for _ in range(60):
            middle = 0.5 * (low + high)
            below = bsm_price(spot, strike, years, RATE, div_yield, middle, is_call) < price
            low, high = np.where(below, middle, low), np.where(below, high, middle)
        return 0.5 * (low + high)


def test_quotes_are_never_crossed_negative_or_missing(market, all_quotes):
    quotes = all_quotes
    assert quotes.shape[0] == market.contract_count
    assert np.array_equal(quotes["row"], market.rows)
    assert np.all(np.isfinite(quotes["bid"])) and np.all(np.isfinite(quotes["ask"]))
    assert np.all(quotes["bid"] >= 0.0)
    assert np.all(quotes["ask"] > quotes["bid"])
    assert np.all(quotes["ask_size"] > 0)
    assert np.all((quotes["bid_size"] > 0) == (quotes["bid"] > 0))
    assert np.all(quotes["ts"] == NOW_NS)
    assert np.all(np.isin(quotes["bid_exchange"], [ord(c) for c in "ABCDEHIJMNPQSTUWXZ"]))


def test_quotes_sit_on_the_tick_grid(market, all_quotes):
    u = market.row_underlying
    tick_class = market.universe.tick_class[u]
    for side in ("bid", "ask"):
        price = all_quotes[side]
        tick = tick_size(price, tick_class)
        # a quote at or above $3 may sit on the smaller grid only if the other side is below $3
        on_grid = np.isclose(np.round(price / tick) * tick, price, atol=1e-9)
        on_small_grid = np.isclose(np.round(price / 0.01) * 0.01, price, atol=1e-9)
        assert np.all(on_small_grid)
        assert np.mean(on_grid) > 0.98
    spy = np.flatnonzero(np.asarray(market.universe.symbols) == "SPY")[0]
    spy_asks = all_quotes["ask"][(u == spy) & (all_quotes["ask"] > 3)]
    assert np.any(~np.isclose(np.round(spy_asks / 0.05) * 0.05, spy_asks))  # pennies above $3


def test_zero_dte_quotes_an_hour_before_the_close_stay_sane(market):
    an_hour_before_close = NOW_NS + int(4.5 * 3600) * 1_000_000_000
    years = market.years(np.arange(market.contract_count), an_hour_before_close)
    spy = market.universe.symbols.index("SPY")
    zero_dte = np.flatnonzero((market.row_underlying == spy) & (years < 1 / 365))
    quotes = market.quotes(zero_dte, an_hour_before_close)
    spot = market.quoted_spot()[spy]
    deep = np.abs(np.log(market.strike[zero_dte] / spot)) > 0.05
    assert deep.sum() > 10
    assert np.all(quotes["ask"] > quotes["bid"])
    assert np.all(quotes["ask"][deep] - quotes["bid"][deep] < 1.5)
    otm_deep = deep & (quotes["bid"] == 0)
    assert np.all(quotes["ask"][otm_deep] <= 0.05)


def test_am_settled_series_expire_at_the_opening(market, registry):
    """SPX monthlies expire at 09:30 New York on their expiry date, SPXW at 16:00: the same
    instants the pricing fleet uses (compute.inputs), so the demo's vols come back exactly."""
    roots = registry.osi_symbols[market.rows].astype("S6")
    seconds = (market.expiry_ns // 10**9) % 86_400  # UTC seconds of day; March 2026 is EST/EDT
    day = market.expiry_ns // (86_400 * 10**9)
    for root, hour_ny in ((b"SPX   ", 9.5), (b"SPXW  ", 16.0), (b"SPY   ", 16.0)):
        chosen = roots == root
        assert chosen.any(), root
        for offset in np.unique(seconds[chosen] / 3600 - hour_ny):
            assert offset in (4.0, 5.0), (root, offset)  # EDT or EST
    spx, spxw = np.flatnonzero(roots == b"SPX   "), np.flatnonzero(roots == b"SPXW  ")
    shared = np.intersect1d(day[spx], day[spxw])
    assert len(shared)  # third Fridays list both series
    same_day = day[spx] == shared[0]
    gap = market.expiry_ns[spxw][day[spxw] == shared[0]][0] - market.expiry_ns[spx][same_day][0]
    assert gap == (6 * 3600 + 30 * 60) * 10**9


def test_spreads_widen_with_price_and_illiquidity(market, all_quotes):
    spread = all_quotes["ask"] - all_quotes["bid"]
    symbols = np.asarray(market.universe.symbols)
    u = market.row_underlying
    spy, xsp = (np.flatnonzero(symbols == s)[0] for s in ("SPY", "XSP"))
    same_contracts = np.median(spread[u == xsp]) > np.median(spread[u == spy])
    assert same_contracts  # XSP is SPY's size but a fraction of its liquidity
    cheap = all_quotes["ask"] < 1.0
    dear = all_quotes["bid"] > 20.0
    assert np.median(spread[dear]) > np.median(spread[cheap])


def test_implied_vols_bracket_the_smile_and_show_skew(market, all_quotes):
    """European inversion of bid and ask brackets the model vol (quotes are priced at the
    smile vol plus 0.4% noise, then rounded outward); mids sit near it."""
    local = np.arange(market.contract_count)
    years = market.years(local, NOW_NS)
    u = market.row_underlying
    spot = market.quoted_spot()[u]
    strike = market.strike
    intrinsic = np.maximum(np.where(market.is_call, spot - strike, strike - spot), 0.0)
    otm = intrinsic == 0.0
    # American-style values are floored at intrinsic: only OTM contracts invert as European.
    usable = (years > 5 / 365) & (all_quotes["bid"] > 0.5) & (otm | ~market.american)
    sample = np.flatnonzero(usable)[:: max(1, usable.sum() // 4000)]
    model = market.model_vol(sample, NOW_NS)
    args = (spot[sample], strike[sample], years[sample], market.universe.div_yield[u[sample]])
    call = market.is_call[sample]
    # A deep in-the-money bid may sit below the no-arbitrage floor, where no vol exists.
    bid_vol = np.nan_to_num(implied_vols(all_quotes["bid"][sample], *args, call), nan=0.0)
    ask_vol = implied_vols(all_quotes["ask"][sample], *args, call)
    mid_vol = implied_vols(
        0.5 * (all_quotes["bid"][sample] + all_quotes["ask"][sample]), *args, call
    )
    assert np.all(bid_vol <= model * 1.02 + 1e-6)
    assert np.all(ask_vol >= model * 0.98 - 1e-6)
    # Out of the money, where time value is the whole price, the mid pins the smile down.
    error = np.abs(mid_vol - model)[otm[sample]]
    assert np.median(error) < 0.005
    assert np.mean(error < 0.02) > 0.95

    def smile_at(symbol: str, moneyness: float) -> float:
        """Recovered mid vol of the ~30-day contract nearest strike = moneyness x spot."""
        index = market.universe.symbols.index(symbol)
        candidates = np.flatnonzero((u == index) & (np.abs(years - 30 / 365) < 8 / 365))
        target = moneyness * market.quoted_spot()[index]
        otm_side = market.is_call[candidates] == (moneyness > 1)
        candidates = candidates[otm_side]
        best = candidates[np.argmin(np.abs(strike[candidates] - target))]
        quote = all_quotes[best]
        return float(
            implied_vols(
                np.array([0.5 * (quote["bid"] + quote["ask"])]),
                spot[best],
                strike[best],
                years[best],
                market.universe.div_yield[index],
                np.array([market.is_call[best]]),
            )[0]
        )

    for index_symbol in ("SPX", "SPY"):  # equity indexes: OTM puts richer than OTM calls
        assert smile_at(index_symbol, 0.92) > smile_at(index_symbol, 1.0) + 0.02
        assert smile_at(index_symbol, 0.92) > smile_at(index_symbol, 1.08) + 0.05
    assert smile_at("VIX", 1.3) > smile_at("VIX", 0.85)  # VIX: call skew


def test_american_quotes_are_not_below_intrinsic(market, all_quotes):
    u = market.row_underlying
    spot = market.quoted_spot()[u]
    intrinsic = np.maximum(np.where(market.is_call, spot - market.strike, market.strike - spot), 0)
    american = market.american
    assert american.any() and (~american).any()
    assert np.all(all_quotes["ask"][american] >= intrinsic[american])
    styles = market.universe.symbols.index("SPX"), market.universe.symbols.index("AAPL")
    assert not market.american[u == styles[0]].any()
    assert market.american[u == styles[1]].all()


def test_trades_print_inside_fresh_quotes(market):
    local = np.arange(0, market.contract_count, 7)
    quotes = market.quotes(local, NOW_NS)
    trades = market.trades(quotes, 5_000, NOW_NS)
    assert trades.shape[0] == 5_000
    assert len(np.unique(trades["row"])) == 5_000
    by_row = dict(zip(quotes["row"].tolist(), range(quotes.shape[0]), strict=True))
    matched = quotes[[by_row[r] for r in trades["row"].tolist()]]
    assert np.all(trades["price"] >= matched["bid"] - 1e-9)
    assert np.all(trades["price"] <= matched["ask"] + 1e-9)
    assert np.all(trades["price"] > 0)
    at_bid = np.isclose(trades["price"], matched["bid"])
    at_ask = np.isclose(trades["price"], matched["ask"])
    assert 0.3 < at_bid.mean() < 0.6 and 0.3 < at_ask.mean() < 0.6
    assert np.all(trades["size"] >= 1)
    assert trades["size"].max() >= 500  # a block or two among 5,000 trades
    assert np.median(trades["size"]) <= 5
    assert set(np.unique(trades["condition"]).tolist()) <= set(range(7))
    assert np.all(trades["ts"] == NOW_NS)
    assert market.trades(quotes[:3], 10, NOW_NS).shape[0] == 3


def test_open_interest_gathers_near_the_money_and_near_expiry(market):
    local = np.arange(market.contract_count)
    records = market.open_interest(local, NOW_NS)
    assert np.array_equal(records["row"], market.rows)
    oi = records["open_interest"].astype(np.float64)
    u = market.row_underlying
    spy = market.universe.symbols.index("SPY")
    years = market.years(local, NOW_NS)
    distance = np.abs(np.log(market.strike / market.quoted_spot()[u]))
    on_spy = u == spy
    month = on_spy & (np.abs(years - 30 / 365) < 8 / 365)
    near = month & (distance < 0.02)
    far = month & (distance > 0.15)
    assert oi[near].mean() > 10 * oi[far].mean()
    soon = on_spy & (years < 0.1) & (distance < 0.05)
    later = on_spy & (years > 1.0) & (distance < 0.05)
    assert oi[soon].mean() > oi[later].mean()


def test_index_trackers_move_together_and_vols_stay_bounded():
    registry = InstrumentRegistry(capacity=200_000)
    universe = build_universe("demo", registry, TRADING_DATE, seed=0)
    market = SyntheticMarket(universe, registry, rate=RATE, seed=5)
    spy, spx, xsp, vix = (universe.symbols.index(s) for s in ("SPY", "SPX", "XSP", "VIX"))
    start = market.spot.copy()
    for _ in range(2_000):
        market.step(1.0)
    assert market.spot[spx] == pytest.approx(10 * market.spot[spy], rel=1e-9)
    assert market.spot[xsp] == pytest.approx(market.spot[spy], rel=1e-9)
    assert np.all(market.spot > 0)
    assert not np.allclose(market.spot, start)
    # two thousand seconds of trading move an index by a fraction of a percent, not more
    assert abs(np.log(market.spot[spy] / start[spy])) < 0.05
    assert np.all(np.abs(market.vol_level) <= 1.2)
    returns = np.log(market.spot / start)
    assert np.sign(returns[vix]) != np.sign(returns[spy]) or abs(returns[spy]) < 1e-3


def test_same_seed_same_market():
    def run(seed: int) -> np.ndarray:
        registry = InstrumentRegistry(capacity=200_000)
        universe = build_universe("demo", registry, TRADING_DATE, seed=0, underlyings=["SPY"])
        market = SyntheticMarket(universe, registry, rate=RATE, seed=seed)
        market.step(0.05)
        return market.quotes(np.arange(0, market.contract_count, 3), NOW_NS)

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
