"""The synthetic market's implied volatility surface: SSVI (Gatheral & Jacquier, 2014).

Total implied variance w = sigma^2 x years at log-moneyness k = ln(strike / forward):

    w(k) = theta / 2 x (1 + rho phi k + sqrt((phi k + rho)^2 + 1 - rho^2))
    phi(theta) = eta / (theta^gamma (1 + theta)^(1 - gamma))

theta = ATM total variance, from an ATM term structure that relaxes from a short-dated level to
a long-dated one: atm(T) = long + (short - long) exp(-T / TERM_DECAY_YEARS). rho sets the skew
(negative for equities and indexes: OTM puts richer than OTM calls; positive for VIX), eta the
curvature. The surface is free of calendar arbitrage for gamma in (0, 1] and of butterfly
arbitrage when eta (1 + |rho|) <= 2, which `universe` respects. SSVI is also what the analytics'
SVI fitter can recover exactly, which makes the synthetic market a clean test bench.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: How fast the ATM term structure moves from its short-dated to its long-dated level, years.
TERM_DECAY_YEARS: Final = 0.25
#: SSVI's power-law exponent.
GAMMA: Final = 0.5
#: Below this many years the surface is evaluated as if at it (keeps 0DTE vols finite).
MIN_YEARS: Final = 1.0 / (365 * 24 * 60)  # one minute


def atm_vol(years: np.ndarray, short_vol: np.ndarray, long_vol: np.ndarray) -> np.ndarray:
    """ATM implied vol (decimal) at `years`, between the short- and long-dated levels."""
    return long_vol + (short_vol - long_vol) * np.exp(-np.asarray(years) / TERM_DECAY_YEARS)


def implied_vol(
    log_moneyness: np.ndarray,
    years: np.ndarray,
    atm: np.ndarray,
    rho: np.ndarray,
    eta: np.ndarray,
) -> np.ndarray:
    """SSVI implied vol (decimal) at log-moneyness ln(K/F), for ATM vol `atm` at `years`."""
    years = np.maximum(years, MIN_YEARS)
    theta = atm * atm * years
    phi = eta / (theta**GAMMA * (1.0 + theta) ** (1.0 - GAMMA))
    x = phi * log_moneyness
    total_variance = 0.5 * theta * (1.0 + rho * x + np.sqrt((x + rho) ** 2 + 1.0 - rho * rho))
    return np.sqrt(total_variance / years)
