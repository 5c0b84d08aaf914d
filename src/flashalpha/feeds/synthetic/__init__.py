"""The synthetic option market: the daemon's embedded default feed.

`build_universe` lists a realistic universe in the registry (``"demo"``: twenty liquid names,
~78k contracts; ``"full"``: 5,000 underlyings, ~1.8M contracts); `SyntheticMarket` runs the
price processes (GBM with Merton jumps and a stochastic vol level), an SSVI smile, and the
quote, trade and open-interest models; `SyntheticFeed` emits them as `TickBatch`es.
"""

from flashalpha.feeds.synthetic.feed import SyntheticFeed, SyntheticFeedConfig
from flashalpha.feeds.synthetic.market import SyntheticMarket
from flashalpha.feeds.synthetic.universe import (
    TickClass,
    UnderlyingSpec,
    Universe,
    build_universe,
)

__all__ = [
    "SyntheticFeed",
    "SyntheticFeedConfig",
    "SyntheticMarket",
    "TickClass",
    "UnderlyingSpec",
    "Universe",
    "build_universe",
]
