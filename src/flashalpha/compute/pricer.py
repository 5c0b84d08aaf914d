"""What a worker computes for one batch: the pricing kernels over the batch's columns.

Inputs and outputs are the protocol's columns (`protocol.INPUT_COLUMNS` → `RESULT_COLUMNS`).
No pricing math lives here: implied vols, prices and greeks all come from `flashalpha.pricing`.
"""

from __future__ import annotations

import numpy as np

from flashalpha import pricing
from flashalpha.compute.protocol import INPUT_COLUMNS, RESULT_COLUMNS
from flashalpha.state.layout import ExerciseStyle, PricingStatus, Right


def price_batch(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bid/mid/ask implied vols, greeks at the mid vol, theoretical value and a status.

    One call of the fused kernel `pricing.price_contracts`: European rows under
    Black-Scholes-Merton, American rows on the fast American engine.
    """
    priced = pricing.price_contracts(
        inputs["spot"],
        inputs["strike"],
        inputs["years"],
        inputs["rate"],
        inputs["div_yield"],
        inputs["right"] == Right.CALL,
        inputs["style"] == ExerciseStyle.AMERICAN,
        inputs["bid"],
        inputs["ask"],
    )
    out = {
        "iv_bid": priced.iv_bid,
        "iv": priced.iv_mid,
        "iv_ask": priced.iv_ask,
        "delta": priced.delta,
        "gamma": priced.gamma,
        "vega": priced.vega,
        "theta": priced.theta,
        "rho": priced.rho,
        "vanna": priced.vanna,
        "charm": priced.charm,
        "vomma": priced.vomma,
        "theo": priced.theo,
        "pricing_status": priced.status,
    }
    return {name: np.ascontiguousarray(out[name], dtype) for name, dtype in RESULT_COLUMNS}


def warm_up() -> None:
    """Run every kernel once on a small batch (compiles or loads numba's cache): European rows,
    single American rows, and one American chain long enough to share a boundary table
    (`american_chain.MIN_GROUP`), so that a worker's first real batch compiles nothing."""
    strikes = np.arange(80.0, 122.0, 3.0)  # 14 American puts of one chain
    chain = len(strikes)
    n = 4 + chain
    inputs = {name: np.zeros(n, dtype) for name, dtype in INPUT_COLUMNS}
    chain_theo = pricing.american_price(100.0, strikes, 0.25, 0.04, 0.01, 0.3, False, method="fast")
    inputs.update(
        spot=np.full(n, 100.0),
        strike=np.concatenate([[90.0, 100.0, 110.0, 100.0], strikes]),
        years=np.full(n, 0.25),
        rate=np.full(n, 0.04),
        div_yield=np.full(n, 0.01),
        bid=np.concatenate([[10.5, 4.0, 1.0, 3.5], chain_theo - 0.05]),
        ask=np.concatenate([[11.0, 4.2, 1.2, 3.7], chain_theo + 0.05]),
        right=np.array([1, 1, 1] + [0] * (1 + chain), np.uint8),
        style=np.array(
            [ExerciseStyle.EUROPEAN] * 2 + [ExerciseStyle.AMERICAN] * (2 + chain), np.uint8
        ),
    )
    result = price_batch(inputs)
    if not (result["pricing_status"] == PricingStatus.OK).any():  # pragma: no cover
        raise RuntimeError(f"pricing kernels failed their warm-up: {result}")
