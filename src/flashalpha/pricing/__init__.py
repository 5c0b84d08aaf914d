"""Numba pricing kernels: Black-Scholes-Merton prices and greeks, implied volatility,
American options (binomial tree and a fast engine) and the fused entry point of the pricing
workers. Arrays in, arrays out; scalars broadcast. See docs/PRICING.md for methods and units.
"""

from __future__ import annotations

from flashalpha.pricing.american import (
    AmericanGreeks,
    american_greeks,
    american_implied_vol,
    american_price,
)
from flashalpha.pricing.binomial import TreeResult, crr_tree
from flashalpha.pricing.black_scholes import bsm_price
from flashalpha.pricing.fused import PricedContracts, price_contracts
from flashalpha.pricing.greeks import GREEK_NAMES, Greeks, bsm_greeks, theta_per_day
from flashalpha.pricing.implied_vol import QuoteVols, implied_vol, implied_vol_quotes
from flashalpha.pricing.status import ImpliedVolStatus

__all__ = [
    "GREEK_NAMES",
    "AmericanGreeks",
    "Greeks",
    "ImpliedVolStatus",
    "PricedContracts",
    "QuoteVols",
    "TreeResult",
    "american_greeks",
    "american_implied_vol",
    "american_price",
    "bsm_greeks",
    "bsm_price",
    "crr_tree",
    "implied_vol",
    "implied_vol_quotes",
    "price_contracts",
    "theta_per_day",
]
