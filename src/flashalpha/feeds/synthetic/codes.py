"""Which exchanges and trade conditions the synthetic market stamps on its events, how often.

The codes themselves are the platform's (`feeds.normalize.Exchange`, `TradeCondition`): OPRA
participant letters as ASCII codes, and OPRA's last-sale categories.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from flashalpha.feeds.normalize import Exchange, TradeCondition

#: The options exchanges (OPRA itself and UNKNOWN aside) and how often they post the best
#: price: rough market shares.
EXCHANGES: Final = np.array(
    [e for e in Exchange if e not in (Exchange.UNKNOWN, Exchange.OPRA)], np.uint8
)
EXCHANGE_SHARES: Final = np.array(
    [6, 5, 14, 4, 6, 2, 6, 2, 6, 7, 5, 7, 2, 2, 3, 3, 9, 11], np.float64
)
EXCHANGE_SHARES /= EXCHANGE_SHARES.sum()

#: Conditions of ordinary-sized trades and how often they print.
CONDITIONS: Final = np.array(
    [
        TradeCondition.REGULAR,
        TradeCondition.INTERMARKET_SWEEP,
        TradeCondition.SINGLE_LEG_AUCTION,
        TradeCondition.MULTI_LEG,
        TradeCondition.SINGLE_LEG_FLOOR,
        TradeCondition.STOCK_OPTIONS,
    ],
    np.uint16,
)
CONDITION_SHARES: Final = np.array([0.66, 0.10, 0.07, 0.12, 0.03, 0.02])
#: Conditions of block trades.
BLOCK_CONDITIONS: Final = np.array(
    [TradeCondition.SINGLE_LEG_CROSS, TradeCondition.SINGLE_LEG_FLOOR, TradeCondition.MULTI_LEG],
    np.uint16,
)
BLOCK_CONDITION_SHARES: Final = np.array([0.5, 0.3, 0.2])
