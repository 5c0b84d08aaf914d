"""The synthetic market's price processes and its quote, trade and open-interest models.

Underlyings follow geometric Brownian motion with Merton jumps, in trading time (a year of
252 days x 6.5 hours, so a wall-clock second moves a stock as a real second would). Each
underlying's implied vol level is stochastic: a mean-reverting log factor that scales its whole
SSVI surface (`smile`), correlated with spot returns through the smile's skew (spot down, vols
up for equities; spot up, vols up for VIX), and lifted by jumps.

An option's quote is its Black-Scholes-Merton value at the smile vol plus a little noise (what
market makers disagree on), floored at intrinsic value for American-style contracts, wrapped in
a spread that widens with price, vega, distance from the money and illiquidity, and rounded out
to the tick grid so that bid <= value <= ask and bid < ask always. A few quotes are stale
(priced off a spot seconds old) or wide. Trades print at the bid, the ask or the mid of a fresh
quote, with lognormal sizes, occasional blocks, and exchange and condition codes.

Everything is vectorized over arrays of contracts; randomness comes from one seeded
`numpy.random.Generator`, so a seed and a sequence of clock readings reproduce every event.
Years to expiry are ACT/365 from `now` to 16:00 New York on the expiry date.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from flashalpha.feeds.synthetic import calendar, codes, smile
from flashalpha.feeds.synthetic.universe import Universe
from flashalpha.instruments import InstrumentRegistry, am_settled
from flashalpha.pricing import bsm_price
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_TICK_DTYPE,
    ExerciseStyle,
    Right,
)

#: Seconds in a trading year: diffusion runs in trading time.
TRADING_SECONDS_PER_YEAR: Final = 252 * 6.5 * 3600
#: The ATM maturity whose vol drives the underlying's instantaneous vol, years.
INSTANTANEOUS_VOL_YEARS: Final = 1.0 / 12
#: Market-wide jumps: (per trading year, mean log size, std) for an underlying of vol
#: MARKET_VOL and market correlation 1; others move in proportion to correlation and vol.
MARKET_JUMPS: Final = (0.5, -0.04, 0.02)
MARKET_VOL: Final = 0.16
#: Mean reversion (per trading year) and volatility of the log vol level.
VOL_REVERSION: Final = 4.0
VOL_OF_VOL: Final = 1.0
#: How much a jump of log size j lifts the log vol level: 1.5 |j|.
VOL_JUMP_RESPONSE: Final = 1.5
VOL_LEVEL_BOUNDS: Final = (-0.7, 1.2)
#: Relative noise of a quote's vol around the smile (market makers' disagreement).
VOL_NOISE: Final = 0.004
#: Spread model, dollars: (BASE + PRICE x value + VEGA x vega per vol point)
#: x (1 + MONEYNESS x |standardized moneyness|) / sqrt(liquidity).
SPREAD_BASE: Final = 0.01
SPREAD_PRICE: Final = 0.003
SPREAD_VEGA: Final = 0.02
SPREAD_MONEYNESS: Final = 0.15
#: Share of quotes priced off a stale spot, and of quotes 3-8x wider than usual.
STALE_SHARE: Final = 0.002
WIDE_SHARE: Final = 0.003
#: Stale quotes use the spot from this many seconds ago (refreshed in steps).
STALE_SECONDS: Final = 2.0
#: Ticks below $3 and from $3, indexed by TickClass.
TICK_BELOW_3: Final = np.array([0.01, 0.01, 0.05])
TICK_FROM_3: Final = np.array([0.01, 0.05, 0.10])
#: Share of trades at the mid (auctions); the rest hit the bid or lift the ask evenly.
MID_TRADE_SHARE: Final = 0.10
#: Distances from the money (for spreads, sizes, activity) are measured in expected moves over
#: at least this many years.
MONEYNESS_MIN_YEARS: Final = 7 / 365
#: Quote activity grows by BOOST / sqrt(days to expiry + 0.5) toward expiry.
ACTIVITY_EXPIRY_BOOST: Final = 8.0
BLOCK_SHARE: Final = 0.004


class SyntheticMarket:
    """Simulated underlyings and the option quotes, trades and open interest they imply.

    Contracts are addressed by their local index i into the universe's rows (0..contracts-1);
    events carry the registry row `universe.rows[i]`. `rate` is the flat continuously
    compounded risk-free rate, decimal per year.
    """

    def __init__(
        self, universe: Universe, registry: InstrumentRegistry, *, rate: float, seed: int
    ) -> None:
        self.universe = universe
        self.rate = rate
        self._rng = np.random.default_rng([seed, 0x0A7E])
        rows = universe.rows
        self.rows = rows
        self.row_underlying = universe.row_underlying
        self.strike = registry.strikes[rows]
        expiry_days = registry.expiry_days[rows]
        #: Each contract's expiry instant: the close, or the opening for a.m.-settled roots.
        self.expiry_ns = calendar.expiry_instant_ns(
            expiry_days, am_settled(registry.osi_symbols[rows])
        )
        self.is_call = registry.rights[rows] == Right.CALL
        self.american = registry.styles[rows] == ExerciseStyle.AMERICAN
        self.spot = universe.spot.copy()
        self.lagged_spot = universe.spot.copy()
        #: Log multiplier of each underlying's ATM vols (0 = the universe's levels).
        self.vol_level = np.zeros(universe.underlying_count)
        self._stale_clock = 0.0

    @property
    def contract_count(self) -> int:
        return int(self.rows.shape[0])

    # -- underlyings --------------------------------------------------------------------------

    def quoted_spot(self) -> np.ndarray:
        """Spot as published, rounded to the cent; options are priced off this."""
        return np.round(self.spot, 2)

    def step(self, seconds: float) -> None:
        """Advance every underlying by `seconds` of trading time.

        Spot and vol-level shocks mix a market factor (weight: the underlying's market
        correlation) with the underlying's own; the vol-level shock also leans on the spot
        shock through the smile's skew (leverage). Market jumps hit every underlying in
        proportion to its correlation and vol; own jumps hit one.
        """
        universe = self.universe
        rng = self._rng
        count = universe.underlying_count
        dt = seconds / TRADING_SECONDS_PER_YEAR
        own = rng.standard_normal((2, count))
        market = rng.standard_normal(2)
        beta = universe.market_correlation
        spot_shock = beta * market[0] + np.sqrt(1.0 - beta**2) * own[0]
        common_vol_shock = np.abs(beta) * market[1] + np.sqrt(1.0 - beta**2) * own[1]
        leverage = np.clip(universe.skew, -0.9, 0.9)
        vol_shock = leverage * spot_shock + np.sqrt(1.0 - leverage**2) * common_vol_shock
        sigma = self.atm_vol(np.full(count, INSTANTANEOUS_VOL_YEARS))

        jumps = np.zeros(count)
        own_jumps = rng.poisson(universe.jump_intensity * dt)
        jumped = np.flatnonzero(own_jumps)
        if jumped.size:
            n = own_jumps[jumped]
            jumps[jumped] = n * universe.jump_mean[jumped] + np.sqrt(n) * universe.jump_std[
                jumped
            ] * rng.standard_normal(jumped.size)
        intensity, mean, std = MARKET_JUMPS
        market_jumps = rng.poisson(intensity * dt)
        market_scale = beta * sigma / MARKET_VOL
        if market_jumps:
            size = market_jumps * mean + np.sqrt(market_jumps) * std * rng.standard_normal()
            jumps += market_scale * size
        # The compensators keep the discounted spot a martingale despite the jumps.
        compensator = universe.jump_intensity * (
            np.exp(universe.jump_mean + 0.5 * universe.jump_std**2) - 1.0
        ) + intensity * (np.exp(market_scale * mean + 0.5 * (market_scale * std) ** 2) - 1.0)
        drift = (self.rate - universe.div_yield - compensator - 0.5 * sigma**2) * dt
        self.spot = np.maximum(
            self.spot * np.exp(drift + sigma * np.sqrt(dt) * spot_shock + jumps), 0.01
        )
        self.vol_level = np.clip(
            self.vol_level
            - VOL_REVERSION * self.vol_level * dt
            + VOL_OF_VOL * np.sqrt(dt) * vol_shock
            + VOL_JUMP_RESPONSE * np.abs(jumps),
            *VOL_LEVEL_BOUNDS,
        )
        self._stale_clock += seconds
        if self._stale_clock >= STALE_SECONDS:
            self.lagged_spot = self.spot.copy()
            self._stale_clock = 0.0

    def atm_vol(self, years: np.ndarray, underlying: np.ndarray | None = None) -> np.ndarray:
        """ATM implied vol (decimal) at `years` for underlyings `underlying` (default: all)."""
        u = slice(None) if underlying is None else underlying
        level = np.exp(self.vol_level[u])
        return level * smile.atm_vol(years, self.universe.short_vol[u], self.universe.long_vol[u])

    def underlying_ticks(self, underlying: np.ndarray, now_ns: int) -> np.ndarray:
        """Ticks of underlyings `underlying` (indexes u) at their published spot."""
        ticks = np.empty(underlying.shape[0], UNDERLYING_TICK_DTYPE)
        ticks["underlying"] = self.universe.underlying_ids[underlying]
        ticks["price"] = self.quoted_spot()[underlying]
        ticks["ts"] = now_ns
        return ticks

    # -- options ------------------------------------------------------------------------------

    def years(self, local: np.ndarray, now_ns: int) -> np.ndarray:
        """ACT/365 years from `now_ns` to each contract's expiry (negative once expired)."""
        return (self.expiry_ns[local] - now_ns) / calendar.NS_PER_YEAR

    def model_vol(
        self, local: np.ndarray, now_ns: int, spot: np.ndarray | None = None
    ) -> np.ndarray:
        """The smile's implied vol (decimal) of contracts `local`, at the published spot."""
        return self._smile(local, now_ns, spot)[1]

    def _smile(
        self, local: np.ndarray, now_ns: int, spot: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(years, smile vol, ATM vol, spot) of contracts `local` at `now_ns`."""
        u = self.row_underlying[local]
        if spot is None:
            spot = self.quoted_spot()[u]
        years = np.maximum(self.years(local, now_ns), smile.MIN_YEARS)
        carry = self.rate - self.universe.div_yield[u]
        log_moneyness = np.log(self.strike[local] / spot) - carry * years
        atm = self.atm_vol(years, u)
        vol = smile.implied_vol(
            log_moneyness, years, atm, self.universe.skew[u], self.universe.curvature[u]
        )
        return years, vol, atm, spot

    def quotes(self, local: np.ndarray, now_ns: int) -> np.ndarray:
        """Fresh quotes (QUOTE_DTYPE records) of contracts `local` at `now_ns`."""
        rng = self._rng
        count = local.shape[0]
        u = self.row_underlying[local]
        spot = self.quoted_spot()[u]
        stale = rng.random(count) < STALE_SHARE
        spot[stale] = np.round(self.lagged_spot[u[stale]], 2)
        years, vol, atm, spot = self._smile(local, now_ns, spot)
        vol = vol * (1.0 + VOL_NOISE * rng.standard_normal(count))
        strike = self.strike[local]
        is_call = self.is_call[local]
        div_yield = self.universe.div_yield[u]
        value = np.asarray(bsm_price(spot, strike, years, self.rate, div_yield, vol, is_call))
        intrinsic = np.maximum(np.where(is_call, spot - strike, strike - spot), 0.0)
        value = np.where(self.american[local], np.maximum(value, intrinsic), value)
        # Spread: price, vega and distance from the money widen it; liquidity tightens it.
        deviation = vol * np.sqrt(years)
        d1 = (np.log(spot / strike) + (self.rate - div_yield + 0.5 * vol * vol) * years) / deviation
        vega = (
            spot
            * np.exp(-div_yield * years)
            * np.exp(-0.5 * d1 * d1)
            / np.sqrt(2 * np.pi)
            * np.sqrt(years)
        )
        # In expected moves over at least a week: a 0DTE's deep in-the-money strikes are not
        # a hundred "sigmas" away for the market makers quoting them.
        moneyness = np.abs(np.log(strike / spot)) / (
            atm * np.sqrt(np.maximum(years, MONEYNESS_MIN_YEARS))
        )
        width = (
            (SPREAD_BASE + SPREAD_PRICE * value + SPREAD_VEGA * vega / 100.0)
            * (1.0 + SPREAD_MONEYNESS * moneyness)
            / np.sqrt(self.universe.liquidity[u])
        )
        wide = rng.random(count) < WIDE_SHARE
        width[wide] *= rng.uniform(3.0, 8.0, int(wide.sum()))
        tick = tick_size(value, self.universe.tick_class[u])
        # Round outward so that bid <= value <= ask; the epsilon absorbs float noise.
        bid = np.maximum(np.floor((value - 0.5 * width) / tick + 1e-9) * tick, 0.0)
        ask = np.maximum(np.ceil((value + 0.5 * width) / tick - 1e-9) * tick, bid + tick)
        liquidity_size = 5.0 + 400.0 * self.universe.liquidity[u] * np.exp(-0.125 * moneyness**2)
        sizes = np.ceil(liquidity_size * rng.lognormal(0.0, 0.7, (2, count)))
        quotes = np.empty(count, QUOTE_DTYPE)
        quotes["row"] = self.rows[local]
        quotes["bid"] = np.round(bid, 2)
        quotes["ask"] = np.round(ask, 2)
        quotes["bid_size"] = np.where(quotes["bid"] > 0.0, sizes[0], 0.0)
        quotes["ask_size"] = sizes[1]
        exchanges = rng.choice(codes.EXCHANGES, size=(2, count), p=codes.EXCHANGE_SHARES)
        quotes["bid_exchange"] = exchanges[0]
        quotes["ask_exchange"] = exchanges[1]
        quotes["ts"] = now_ns
        return quotes

    def trades(self, quotes: np.ndarray, count: int, now_ns: int) -> np.ndarray:
        """`count` trades against distinct quotes among `quotes` (just published)."""
        rng = self._rng
        count = min(count, quotes.shape[0])
        picked = quotes[rng.choice(quotes.shape[0], size=count, replace=False)]
        side = rng.random(count)
        at_mid = (side < MID_TRADE_SHARE) & (picked["bid"] > 0.0)  # no mid without a bid
        buy = ~at_mid & (
            (side < MID_TRADE_SHARE + (1 - MID_TRADE_SHARE) / 2) | (picked["bid"] <= 0.0)
        )
        sell = ~at_mid & ~buy
        trades = np.empty(count, TRADE_DTYPE)
        trades["row"] = picked["row"]
        trades["price"] = np.where(
            at_mid,
            np.round(0.5 * (picked["bid"] + picked["ask"]), 2),
            np.where(buy, picked["ask"], picked["bid"]),
        )
        block = rng.random(count) < BLOCK_SHARE
        ordinary_size = np.minimum(1 + np.floor(rng.lognormal(0.5, 1.0, count)), 1_000)
        trades["size"] = np.where(block, 50 * rng.integers(10, 101, count), ordinary_size)
        trades["exchange"] = np.where(
            buy,
            picked["ask_exchange"],
            np.where(
                sell,
                picked["bid_exchange"],
                rng.choice(codes.EXCHANGES, size=count, p=codes.EXCHANGE_SHARES),
            ),
        )
        condition = rng.choice(codes.CONDITIONS, size=count, p=codes.CONDITION_SHARES)
        condition[at_mid] = codes.TradeCondition.SINGLE_LEG_AUCTION
        block_condition = rng.choice(
            codes.BLOCK_CONDITIONS, size=count, p=codes.BLOCK_CONDITION_SHARES
        )
        trades["condition"] = np.where(block, block_condition, condition)
        trades["ts"] = now_ns
        return trades

    def open_interest(self, local: np.ndarray, now_ns: int) -> np.ndarray:
        """Open interest (OPEN_INTEREST_DTYPE) of contracts `local`: heaviest near the money,
        at near expiries and at the standard monthlies."""
        u = self.row_underlying[local]
        years = np.maximum(self.years(local, now_ns), MONEYNESS_MIN_YEARS)
        atm = self.atm_vol(years, u)
        moneyness = np.log(self.strike[local] / self.quoted_spot()[u]) / (atm * np.sqrt(years))
        expiry_days = (self.expiry_ns[local] // (86_400 * calendar.NS_PER_SECOND)).astype(
            "datetime64[D]"
        )
        monthly = calendar.is_standard_monthly(expiry_days)
        level = (
            20_000.0
            * self.universe.liquidity[u]
            * np.exp(-0.5 * (moneyness / 1.3) ** 2)
            * (1.0 + 2.0 * monthly)
            / (1.0 + 2.0 * years)
        )
        records = np.empty(local.shape[0], OPEN_INTEREST_DTYPE)
        records["row"] = self.rows[local]
        records["open_interest"] = np.floor(level * self._rng.lognormal(0.0, 0.8, local.shape[0]))
        records["ts"] = now_ns
        return records

    def activity(self, local: np.ndarray, now_ns: int) -> np.ndarray:
        """Relative quote activity of contracts `local`: liquid names, near the money and near
        expiry are busiest; expired contracts are silent."""
        u = self.row_underlying[local]
        years = self.years(local, now_ns)
        alive = years > 0.0
        # Distance from the money in expected moves of at least a week, so that a 0DTE's
        # whole near-the-money band stays busy rather than only its one or two ATM strikes.
        horizon = np.maximum(years, MONEYNESS_MIN_YEARS)
        atm = self.atm_vol(horizon, u)
        moneyness = np.log(self.strike[local] / self.quoted_spot()[u]) / (atm * np.sqrt(horizon))
        days = 365.0 * np.maximum(years, 0.0)
        weight = (
            self.universe.liquidity[u]
            * (np.exp(-0.5 * (moneyness / 1.2) ** 2) + 0.01)
            * (1.0 + ACTIVITY_EXPIRY_BOOST / np.sqrt(days + 0.5))
        )
        return np.where(alive, weight, 0.0)


def tick_size(value: np.ndarray, tick_class: np.ndarray) -> np.ndarray:
    """Minimum price increment (dollars) of an option worth `value` of TickClass `tick_class`."""
    return np.where(value < 3.0, TICK_BELOW_3[tick_class], TICK_FROM_3[tick_class])
