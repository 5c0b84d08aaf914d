"""The synthetic universe: which underlyings and contracts exist, and each underlying's market.

`build_universe` registers listings in the `InstrumentRegistry` and returns a `Universe`: the
per-underlying parameters the price and quote models run on, and the registry rows it listed.

- ``"demo"``: twenty liquid names (SPY, QQQ, IWM, SPX with its SPXW weeklies, single stocks,
  sector and bond ETFs, VIX) with their real series: dailies, weeklies, monthlies, quarterlies
  and LEAPS; about 75,000 contracts.
- ``"full"``: the demo names plus about 5,000 synthetic tickers in three liquidity tiers,
  about 1.8M contracts, the size of the US option market; built vectorized in seconds.

Spots and vol levels are plausible, not live. Everything random derives from `seed`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from typing import Final, Literal

import msgspec
import numpy as np

from flashalpha.feeds.synthetic import calendar
from flashalpha.feeds.synthetic.calendar import Schedule
from flashalpha.feeds.synthetic.smile import atm_vol
from flashalpha.feeds.synthetic.strikes import default_steps, strike_grid
from flashalpha.instruments import (
    EUROPEAN_UNDERLYINGS,
    ROOT_UNDERLYINGS,
    InstrumentRegistry,
    am_settled_roots,
    underlying_of_root,
)
from flashalpha.state.layout import ExerciseStyle, Right


class TickClass(enum.IntEnum):
    """Minimum price increments of an underlying's options."""

    PENNY_ALL = 0  # $0.01 at every price (SPY, QQQ, IWM)
    PENNY = 1  # $0.01 below $3, $0.05 from $3 (the penny program)
    NICKEL = 2  # $0.05 below $3, $0.10 from $3 (everything else, SPX)


class RootListing(msgspec.Struct, frozen=True):
    """One option root of an underlying and the expiry series it lists."""

    root: str
    series: tuple[tuple[Schedule, int], ...]


class UnderlyingSpec(msgspec.Struct, frozen=True):
    """One underlying's market. Vols, rates and yields are decimals per year."""

    symbol: str
    spot: float  # dollars
    short_vol: float  # ATM implied vol of the shortest expiries
    long_vol: float  # ATM implied vol far out (term structure: see smile.atm_vol)
    skew: float  # SSVI rho in (-1, 1): negative = puts richer
    curvature: float  # SSVI eta; eta (1 + |rho|) <= 2 keeps the smile arbitrage-free
    jump_intensity: float  # Merton jumps per year
    jump_mean: float  # mean log jump
    jump_std: float  # std of the log jump
    market_correlation: float  # of spot and vol-level shocks with the market's; 1 = an index
    div_yield: float  # continuous
    liquidity: float  # 1.0 = SPY; scales quote activity, sizes, open interest, spreads
    tick_class: TickClass
    strike_steps: tuple[float, float, float]  # dollars: near, middle, far from the money
    listings: tuple[RootListing, ...]
    style: ExerciseStyle | None = None  # None: the registry's default for the symbol


_INDEX_DAILIES: Final = (
    (Schedule.DAILY, 10),
    (Schedule.WEEKLY, 6),
    (Schedule.MONTHLY, 12),
    (Schedule.QUARTERLY, 4),
    (Schedule.LEAPS, 2),
)
_STOCK: Final = ((Schedule.WEEKLY, 6), (Schedule.MONTHLY, 9), (Schedule.LEAPS, 2))
_ETF: Final = (
    (Schedule.WEEKLY, 4),
    (Schedule.MONTHLY, 9),
    (Schedule.QUARTERLY, 4),
    (Schedule.LEAPS, 1),
)


def _spec(
    symbol: str,
    spot: float,
    vols: tuple[float, float],
    smile: tuple[float, float],
    div_yield: float,
    liquidity: float,
    market_correlation: float,
    tick_class: TickClass,
    steps: tuple[float, float, float],
    series: tuple[tuple[Schedule, int], ...],
    jumps: tuple[float, float, float] = (4.0, -0.02, 0.05),
    roots: tuple[RootListing, ...] = (),
) -> UnderlyingSpec:
    """A demo spec: `vols` = (short, long) ATM vols, `smile` = (skew, curvature), `jumps` =
    (intensity, mean, std) of its own jumps; `roots` overrides the single root named like the
    symbol."""
    return UnderlyingSpec(
        symbol=symbol,
        spot=spot,
        short_vol=vols[0],
        long_vol=vols[1],
        skew=smile[0],
        curvature=smile[1],
        jump_intensity=jumps[0],
        jump_mean=jumps[1],
        jump_std=jumps[2],
        market_correlation=market_correlation,
        div_yield=div_yield,
        liquidity=liquidity,
        tick_class=tick_class,
        strike_steps=steps,
        listings=roots or (RootListing(symbol, series),),
    )


#: Indexes jump only with the market (see market.MARKET_JUMPS), never on their own.
_INDEX_JUMPS: Final = (0.0, 0.0, 0.0)
_SPX_ROOTS: Final = (
    RootListing("SPX", ((Schedule.MONTHLY, 12), (Schedule.LEAPS, 2))),
    RootListing(
        "SPXW",
        (
            (Schedule.DAILY, 10),
            (Schedule.WEEKLY, 6),
            (Schedule.MONTHLY, 12),
            (Schedule.QUARTERLY, 4),
        ),
    ),
)
_XSP: Final = (
    (Schedule.DAILY, 10),
    (Schedule.WEEKLY, 6),
    (Schedule.MONTHLY, 6),
    (Schedule.QUARTERLY, 4),
)
_VIX_ROOTS: Final = (
    RootListing("VIX", ((Schedule.VIX_MONTHLY, 8),)),
    RootListing("VIXW", ((Schedule.VIX_WEEKLY, 5),)),
)
_ALL = TickClass.PENNY_ALL
_PENNY = TickClass.PENNY
_NICKEL = TickClass.NICKEL

# fmt: off
#: The demo universe: liquid names with their real listing patterns. SPY, SPX and XSP are one
#: index (market correlation 1, same vols), so their prices stay in a 1 : 10 : 1 ratio.
#: symbol, spot, (short, long) ATM vol, (skew, curvature), div yield, liquidity, market
#: correlation, tick class, strike steps near/middle/far, series[, own jumps][, roots]
DEMO_SPECS: Final[tuple[UnderlyingSpec, ...]] = (
    _spec("SPY", 660.0, (0.14, 0.18), (-0.72, 1.15), 0.012, 1.00, 1.0, _ALL, (1, 5, 10), _INDEX_DAILIES, _INDEX_JUMPS),
    _spec("QQQ", 600.0, (0.18, 0.21), (-0.60, 1.20), 0.006, 0.90, 0.92, _ALL, (1, 5, 10), _INDEX_DAILIES, _INDEX_JUMPS),
    _spec("IWM", 240.0, (0.21, 0.23), (-0.55, 1.20), 0.011, 0.70, 0.85, _ALL, (1, 2.5, 5), _INDEX_DAILIES, _INDEX_JUMPS),
    _spec("SPX", 6600.0, (0.14, 0.18), (-0.72, 1.15), 0.012, 0.90, 1.0, _NICKEL, (5, 25, 50), (), _INDEX_JUMPS, _SPX_ROOTS),
    _spec("XSP", 660.0, (0.14, 0.18), (-0.72, 1.15), 0.012, 0.25, 1.0, _PENNY, (1, 5, 10), _XSP, _INDEX_JUMPS),
    _spec("AAPL", 250.0, (0.24, 0.26), (-0.40, 1.30), 0.004, 0.80, 0.65, _PENNY, (2.5, 5, 10), _STOCK),
    _spec("MSFT", 500.0, (0.22, 0.24), (-0.40, 1.30), 0.007, 0.60, 0.70, _PENNY, (5, 10, 25), _STOCK),
    _spec("NVDA", 180.0, (0.42, 0.44), (-0.30, 1.40), 0.0002, 0.85, 0.60, _PENNY, (2.5, 5, 10), _STOCK),
    _spec("TSLA", 420.0, (0.58, 0.55), (-0.20, 1.50), 0.0, 0.85, 0.45, _PENNY, (2.5, 5, 10), _STOCK, (6.0, -0.03, 0.07)),
    _spec("AMZN", 225.0, (0.30, 0.32), (-0.35, 1.30), 0.0, 0.60, 0.65, _PENNY, (2.5, 5, 10), _STOCK),
    _spec("META", 720.0, (0.33, 0.35), (-0.35, 1.30), 0.003, 0.55, 0.60, _PENNY, (5, 10, 25), _STOCK),
    _spec("GOOGL", 250.0, (0.29, 0.31), (-0.35, 1.30), 0.003, 0.50, 0.60, _PENNY, (2.5, 5, 10), _STOCK),
    _spec("AMD", 220.0, (0.48, 0.50), (-0.30, 1.40), 0.0, 0.55, 0.55, _PENNY, (2.5, 5, 10), _STOCK, (6.0, -0.03, 0.07)),
    _spec("NFLX", 110.0, (0.36, 0.38), (-0.30, 1.30), 0.0, 0.40, 0.50, _PENNY, (1, 2.5, 5), _STOCK),
    _spec("DIA", 470.0, (0.13, 0.17), (-0.65, 1.15), 0.016, 0.15, 0.95, _PENNY, (1, 5, 10), _ETF, _INDEX_JUMPS),
    _spec("GLD", 380.0, (0.17, 0.19), (0.10, 1.20), 0.0, 0.30, 0.05, _PENNY, (1, 5, 10), _ETF, (1.0, 0.01, 0.03)),
    _spec("TLT", 90.0, (0.13, 0.15), (-0.10, 1.20), 0.040, 0.30, -0.20, _PENNY, (0.5, 1, 2.5), _ETF, (1.0, 0.0, 0.02)),
    _spec("XLF", 52.0, (0.17, 0.20), (-0.50, 1.20), 0.015, 0.25, 0.80, _PENNY, (0.5, 1, 2.5), _ETF, _INDEX_JUMPS),
    _spec("VIX", 17.0, (0.95, 0.70), (0.60, 1.20), 0.0, 0.50, -0.80, _PENNY, (1, 2.5, 5), (), (12.0, 0.10, 0.15), _VIX_ROOTS),
    _spec("COIN", 320.0, (0.68, 0.65), (-0.20, 1.50), 0.0, 0.40, 0.45, _PENNY, (2.5, 5, 10), _STOCK, (8.0, -0.04, 0.09)),
)

#: Liquidity tiers of the synthetic names of the full universe: (name, share of names, listing
#: series, liquidity range, tick class, strike-step scale).
_FULL_TIERS: Final = (
    ("weekly", 0.08, ((Schedule.WEEKLY, 4), (Schedule.MONTHLY, 7), (Schedule.LEAPS, 2)), (0.04, 0.3), _PENNY, 1.0),
    ("monthly", 0.28, ((Schedule.MONTHLY, 6), (Schedule.LEAPS, 1)), (0.01, 0.05), _NICKEL, 1.0),
    ("thin", 0.64, ((Schedule.MONTHLY, 4),), (0.002, 0.012), _NICKEL, 1.75),
)
# fmt: on
FULL_UNDERLYINGS: Final = 5_000

_RESERVED: Final = frozenset(
    {s.symbol for s in DEMO_SPECS}
    | {listing.root for s in DEMO_SPECS for listing in s.listings}
    | set(ROOT_UNDERLYINGS)
    | EUROPEAN_UNDERLYINGS
    | {"OEX"}
)


class Universe(msgspec.Struct, frozen=True, eq=False):
    """The synthetic market's underlyings (index u = 0..n-1) and its contracts' registry rows.

    Per-underlying arrays are indexed by u; `rows` are registry row ids and `row_underlying`
    their u. Vols, yields and rates are decimals per year; spots dollars.
    """

    name: str
    trading_date: datetime.date
    symbols: tuple[str, ...]
    underlying_ids: np.ndarray  # uint32 registry underlying id, by u
    spot: np.ndarray  # float64 initial spot
    short_vol: np.ndarray
    long_vol: np.ndarray
    skew: np.ndarray
    curvature: np.ndarray
    jump_intensity: np.ndarray
    jump_mean: np.ndarray
    jump_std: np.ndarray
    market_correlation: np.ndarray
    div_yield: np.ndarray
    liquidity: np.ndarray
    tick_class: np.ndarray  # uint8 TickClass
    rows: np.ndarray  # uint32 registry rows of the universe's contracts
    row_underlying: np.ndarray  # int32 u of each row

    @property
    def underlying_count(self) -> int:
        return len(self.symbols)

    @property
    def contract_count(self) -> int:
        return int(self.rows.shape[0])


def build_universe(
    name: Literal["demo", "full"],
    registry: InstrumentRegistry,
    trading_date: datetime.date,
    seed: int = 0,
    underlyings: Sequence[str] = (),
) -> Universe:
    """Register a universe's listings in `registry` and return its market parameters.

    `underlyings` restricts the universe to those symbols (ValueError naming unknown ones).
    Expiries start at `trading_date` (0DTE included) and skip weekends.
    """
    if name == "demo":
        specs = list(DEMO_SPECS)
    elif name == "full":
        specs = list(DEMO_SPECS) + _synthetic_specs(FULL_UNDERLYINGS - len(DEMO_SPECS), seed)
    else:
        raise ValueError(f"unknown universe {name!r}: expected 'demo' or 'full'")
    if underlyings:
        wanted = set(underlyings)
        known = {spec.symbol for spec in specs}
        if unknown := sorted(wanted - known):
            raise ValueError(f"underlyings {unknown} are not in the {name!r} universe")
        specs = [spec for spec in specs if spec.symbol in wanted]
    return _register(name, specs, registry, trading_date)


def _synthetic_specs(count: int, seed: int) -> list[UnderlyingSpec]:
    """`count` synthetic tickers (four letters, none a real root we list), tiered by liquidity."""
    rng = np.random.default_rng([seed, 0x5EED])
    codes = rng.choice(26**4, size=count + len(_RESERVED), replace=False)
    letters = np.stack([codes // 26**p % 26 for p in (3, 2, 1, 0)], axis=1) + ord("A")
    tickers = [
        t for t in letters.astype(np.uint8).view("S4").ravel().astype(str) if t not in _RESERVED
    ]
    tickers = tickers[:count]
    spot = np.round(np.clip(np.exp(rng.normal(np.log(45.0), 0.9, count)), 3.0, 900.0), 2)
    long_vol = np.clip(np.exp(rng.normal(np.log(0.38), 0.35, count)), 0.15, 1.5)
    short_vol = long_vol * rng.uniform(0.9, 1.2, count)
    skew = rng.uniform(-0.65, -0.15, count)
    curvature = rng.uniform(0.6, 1.0, count) * 2.0 / (1.0 + np.abs(skew))
    jump_intensity = rng.uniform(1.0, 6.0, count)
    jump_mean = rng.normal(-0.02, 0.01, count)
    jump_std = rng.uniform(0.03, 0.08, count)
    market_correlation = rng.uniform(0.2, 0.7, count)
    div_yield = np.where(rng.random(count) < 0.4, 0.0, np.round(rng.uniform(0.005, 0.05, count), 4))
    shares = np.array([tier[1] for tier in _FULL_TIERS])
    tier_of = np.minimum(
        np.searchsorted(np.cumsum(shares), rng.random(count)), len(_FULL_TIERS) - 1
    )
    specs = []
    for index, ticker in enumerate(tickers):  # one per underlying, not per contract
        _, _, series, (low, high), tick_class, step_scale = _FULL_TIERS[tier_of[index]]
        steps = default_steps(np.array([spot[index] * step_scale]))[0]
        specs.append(
            UnderlyingSpec(
                symbol=ticker,
                spot=float(spot[index]),
                short_vol=float(short_vol[index]),
                long_vol=float(long_vol[index]),
                skew=float(skew[index]),
                curvature=float(curvature[index]),
                jump_intensity=float(jump_intensity[index]),
                jump_mean=float(jump_mean[index]),
                jump_std=float(jump_std[index]),
                market_correlation=float(market_correlation[index]),
                div_yield=float(div_yield[index]),
                liquidity=float(rng.uniform(low, high)),
                tick_class=tick_class,
                strike_steps=(float(steps[0]), float(steps[1]), float(steps[2])),
                listings=(RootListing(ticker, series),),
            )
        )
    return specs


def _register(
    name: str,
    specs: list[UnderlyingSpec],
    registry: InstrumentRegistry,
    trading_date: datetime.date,
) -> Universe:
    underlying_ids = np.array(
        [registry.add_underlying(s.symbol, s.style, s.div_yield) for s in specs], np.uint32
    )
    column = {
        field: np.array([getattr(s, field) for s in specs], np.float64)
        for field in (
            "spot",
            "short_vol",
            "long_vol",
            "skew",
            "curvature",
            "jump_intensity",
            "jump_mean",
            "jump_std",
            "market_correlation",
            "div_yield",
            "liquidity",
        )
    }
    # Chains (underlying, root, expiry), grouped by identical listing series so that each group
    # is one vectorized product of its underlyings and its expiries.
    groups: dict[tuple[tuple[Schedule, int], ...], list[tuple[int, str]]] = {}
    for index, spec in enumerate(specs):
        for listing in spec.listings:
            if underlying_of_root(listing.root) != spec.symbol:
                raise ValueError(f"root {listing.root!r} does not belong to {spec.symbol!r}")
            groups.setdefault(listing.series, []).append((index, listing.root))
    chain_underlying, chain_root, chain_expiry = [], [], []
    for series, members in groups.items():
        expiries = calendar.expiries(trading_date, series)
        indexes = np.array([m[0] for m in members])
        roots = np.array([m[1] for m in members], "S6")
        chain_underlying.append(np.repeat(indexes, expiries.shape[0]))
        chain_root.append(np.repeat(roots, expiries.shape[0]))
        chain_expiry.append(np.tile(expiries, len(members)))
    underlying_of_chain = np.concatenate(chain_underlying)
    root_of_chain = np.concatenate(chain_root)
    expiry_of_chain = np.concatenate(chain_expiry)

    # Strike grids sized by each chain's expected move as of the trading date's open.
    listing_ns = calendar.open_ns(trading_date)
    expiry_ns = calendar.expiry_instant_ns(
        expiry_of_chain.astype(np.int64), am_settled_roots(root_of_chain)
    )
    years_to_close = (expiry_ns - listing_ns) / calendar.NS_PER_YEAR
    years = np.maximum(years_to_close, 1.0 / 365)
    vol = atm_vol(
        years, column["short_vol"][underlying_of_chain], column["long_vol"][underlying_of_chain]
    )
    steps = np.array([s.strike_steps for s in specs], np.float64)[underlying_of_chain]
    chain_of_strike, strike_milli = strike_grid(
        column["spot"][underlying_of_chain], vol * np.sqrt(years), steps
    )
    # Every strike lists a put and a call, in (chain, strike, right) order.
    chain_of_contract = np.repeat(chain_of_strike, 2)
    rows = registry.add_many(
        root_of_chain[chain_of_contract],
        expiry_of_chain[chain_of_contract],
        np.repeat(strike_milli, 2),
        np.tile(np.array([Right.PUT, Right.CALL], np.uint8), strike_milli.shape[0]),
    )
    return Universe(
        name=name,
        trading_date=trading_date,
        symbols=tuple(s.symbol for s in specs),
        underlying_ids=underlying_ids,
        tick_class=np.array([s.tick_class for s in specs], np.uint8),
        rows=rows,
        row_underlying=underlying_of_chain[chain_of_contract].astype(np.int32),
        **column,
    )
