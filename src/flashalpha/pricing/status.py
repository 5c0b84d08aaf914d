"""Why an implied volatility could not be found, per row.

The values equal those of `flashalpha.state.layout.PricingStatus` where the meanings meet, so a
status array can be stored in the state's `pricing_status` column as it is.
"""

from __future__ import annotations

import enum


class ImpliedVolStatus(enum.IntEnum):
    """Outcome of inverting one price (the `status` array of `implied_vol`)."""

    #: A volatility was found (0.0 when the price equals the lower bound exactly).
    OK = 1
    #: The price is zero or negative (PricingStatus.NO_QUOTE).
    NON_POSITIVE_PRICE = 2
    #: The price is below the no-arbitrage minimum (discounted intrinsic value of the forward).
    BELOW_INTRINSIC = 3
    #: The price is at or above the no-arbitrage maximum (S·e^(-qT) for a call, K·e^(-rT) for a put).
    ABOVE_MAXIMUM = 4
    #: The option has no time left (years == 0): the volatility is undefined.
    ZERO_TIME = 5
    #: NaN, infinite or negative spot/strike/years, non-finite rates.
    BAD_INPUT = 6


# Plain ints for the numba kernels.
STATUS_OK = int(ImpliedVolStatus.OK)
STATUS_NON_POSITIVE_PRICE = int(ImpliedVolStatus.NON_POSITIVE_PRICE)
STATUS_BELOW_INTRINSIC = int(ImpliedVolStatus.BELOW_INTRINSIC)
STATUS_ABOVE_MAXIMUM = int(ImpliedVolStatus.ABOVE_MAXIMUM)
STATUS_ZERO_TIME = int(ImpliedVolStatus.ZERO_TIME)
STATUS_BAD_INPUT = int(ImpliedVolStatus.BAD_INPUT)
