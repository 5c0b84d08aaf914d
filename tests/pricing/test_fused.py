"""price_contracts: the pricing worker's entry point."""

from __future__ import annotations

import numpy as np

from flashalpha.pricing import (
    PricedContracts,
    american_greeks,
    american_price,
    bsm_greeks,
    bsm_price,
    fused,
    implied_vol,
    price_contracts,
)
from flashalpha.state.layout import PricingStatus

from .samples import random_options


def test_status_codes_are_the_states():
    assert [fused.UNPRICED, fused.OK, fused.NO_QUOTE, fused.BELOW_INTRINSIC,
            fused.ABOVE_MAXIMUM, fused.EXPIRED, fused.BAD_INPUT] == [
        PricingStatus.UNPRICED, PricingStatus.OK, PricingStatus.NO_QUOTE,
        PricingStatus.BELOW_INTRINSIC, PricingStatus.ABOVE_MAXIMUM, PricingStatus.EXPIRED,
        PricingStatus.BAD_INPUT,
    ]  # fmt: skip


def _market(n, seed):
    sample = random_options(n, seed=seed)
    rng = np.random.default_rng(seed)
    sample["is_american"] = rng.random(n) < 0.5
    args = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "vol", "is_call")]
    theo = np.where(sample["is_american"], american_price(*args, method="fast"), bsm_price(*args))
    sample["bid"] = theo * 0.98
    sample["ask"] = theo * 1.02
    return sample


def _price(sample, **kwargs):
    return price_contracts(
        *(sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "is_call",
                              "is_american", "bid", "ask")),
        **kwargs,
    )  # fmt: skip


def test_european_and_american_rows_match_the_single_purpose_functions():
    sample = _market(400, seed=41)
    result = _price(sample)
    quoted = result.status == PricingStatus.OK
    assert quoted.mean() > 0.95
    base = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield")]
    mid = 0.5 * (sample["bid"] + sample["ask"])
    euro = ~sample["is_american"]
    # (American calls without dividends are priced as European: exact either way.)
    euro_vol = implied_vol(mid, *base, sample["is_call"])
    np.testing.assert_array_equal(result.iv_mid[euro], euro_vol[euro])
    np.testing.assert_array_equal(
        result.iv_bid[euro], implied_vol(sample["bid"], *base, sample["is_call"])[euro]
    )
    greeks = bsm_greeks(*base, result.iv_mid, sample["is_call"])
    for name in ("delta", "gamma", "vega", "theta", "rho", "vanna", "charm", "vomma"):
        np.testing.assert_allclose(getattr(result, name)[euro], getattr(greeks, name)[euro],
                                   rtol=1e-12, atol=1e-12, err_msg=name)  # fmt: skip
    np.testing.assert_allclose(result.theo[euro], mid[euro], rtol=1e-12)
    # American rows: rows of one chain share a table of boundaries over vol
    # (american_chain); others solve their own. Either way the mid's vol reprices the mid on
    # the accurate engine to the fast engines' 1e-3, and the greeks agree with the per-row
    # engine's (american_greeks) to their finite-difference accuracy.
    intrinsic = np.maximum(np.where(sample["is_call"], 100.0 - sample["strike"],
                                    sample["strike"] - 100.0), 0.0)  # fmt: skip
    american = sample["is_american"] & quoted & (mid - intrinsic > 0.01)
    repriced = american_price(*base, result.iv_mid, sample["is_call"], method="accurate")
    np.testing.assert_allclose(repriced[american], mid[american], atol=1e-3)
    am_greeks = american_greeks(*base, result.iv_mid, sample["is_call"])
    for name, rtol, atol in [("delta", 0.0, 1e-3), ("vega", 0.02, 0.05), ("theta", 0.03, 0.02),
                             ("rho", 0.03, 0.05)]:  # fmt: skip
        np.testing.assert_allclose(getattr(result, name)[american],
                                   getattr(am_greeks, name)[american], rtol=rtol,
                                   atol=atol, err_msg=name)  # fmt: skip
    ok = quoted & (result.iv_bid > 0)
    assert (result.iv_bid[ok] <= result.iv_mid[ok] + 1e-12).all()
    assert (result.iv_mid[ok] <= result.iv_ask[ok] + 1e-12).all()


def test_chain_table_reproduces_directly_solved_boundaries():
    # The chain engine's boundary interpolated over vol prices within 5e-5 of the boundary
    # solved directly at that vol with the same scheme (FP-A), on spot 100.
    from flashalpha.pricing import american, american_chain

    scheme = american_chain.CHAIN_SCHEME
    nodes = scheme.tau_fraction.shape[0]
    coefficients = np.empty((american_chain.SIGMA_NODES, nodes))
    values = np.empty((american_chain.SIGMA_NODES, nodes))
    h_table, h_direct = np.empty(nodes), np.empty(nodes)
    work = np.empty(american.work_size(scheme))
    rng = np.random.default_rng(43)
    worst = 0.0
    for _ in range(10):
        years, rate, q = rng.uniform(0.01, 2.0), rng.uniform(0.005, 0.05), rng.uniform(0.0, 0.03)
        log_x = american_chain.build_table(years, rate, q, scheme, coefficients, h_table, work,
                                           values)  # fmt: skip
        for vol in np.exp(rng.uniform(np.log(0.03), np.log(3.0), 6)):
            american_chain.table_boundary(coefficients, vol, h_table)
            american.put_boundary(1.0, years, rate, q, vol, scheme, h_direct, work, 1)
            for strike in (70.0, 100.0, 130.0):
                table = american.put_price(100.0, strike, years, rate, q, vol, scheme, h_table,
                                           log_x)  # fmt: skip
                direct = american.put_price(100.0, strike, years, rate, q, vol, scheme,
                                            h_direct, log_x)  # fmt: skip
                worst = max(worst, abs(table - direct))
    assert worst <= 5e-5


def test_statuses_of_bad_rows_and_out_arrays():
    spot = np.array([100.0, 100.0, np.nan, 100.0, 100.0, 100.0, 100.0, 100.0])
    years = np.array([0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5])
    bid = np.array([4.0, np.nan, 4.0, 4.0, 5.0, 40.0, 100.0, 0.0])
    ask = np.array([4.2, np.nan, 4.2, 4.2, 4.0, 41.0, 101.0, 0.05])
    strike = np.array([100.0, 100.0, 100.0, 90.0, 100.0, 50.0, 100.0, 160.0])
    out = PricedContracts.empty(8)
    result = price_contracts(spot, strike, years, 0.03, 0.0, True, False, bid, ask, out=out)
    assert result is out
    assert list(out.status) == [
        PricingStatus.OK,
        PricingStatus.NO_QUOTE,
        PricingStatus.BAD_INPUT,
        PricingStatus.EXPIRED,
        PricingStatus.BAD_INPUT,  # crossed
        PricingStatus.BELOW_INTRINSIC,  # 40.5 for a call 50 in the money
        PricingStatus.ABOVE_MAXIMUM,
        PricingStatus.OK,  # bid 0: the mid of (0, ask) still has a vol
    ]
    assert out.theo[3] == 10.0
    assert out.delta[3] == 1.0
    assert np.isnan(out.iv_bid[7])
    assert np.isfinite(out.iv_ask[7])
    assert np.isnan(out.iv_mid[1:7]).all()


def test_deep_in_the_money_american_at_exercise_value_has_no_vol():
    # Seen live: deep in-the-money American puts quoted at their exercise value came back with
    # iv 0.0 and delta -1.000 (status OK). Below the exercise boundary the American price is
    # K - S for every vol up to some level, so a price at (or within a cent of) the exercise
    # value has no meaningful vol: NaN and BELOW_INTRINSIC, on both the per-row engine (small
    # groups) and the chain tables (groups of at least american_chain.MIN_GROUP rows).
    from flashalpha.pricing import american_chain

    for count in (3, american_chain.MIN_GROUP + 4):
        strike = np.linspace(125.0, 170.0, count)
        intrinsic = strike - 100.0
        for time_value in (0.0, 0.003, 0.01):
            mid = intrinsic + time_value
            result = price_contracts(100.0, strike, 0.5, 0.05, 0.01, False, True, mid - 0.05,
                                     mid + 0.05)  # fmt: skip
            assert (result.status == PricingStatus.BELOW_INTRINSIC).all(), (count, time_value)
            for name in ("iv_bid", "iv_mid", "delta", "gamma", "vega", "theta", "theo"):
                assert np.isnan(getattr(result, name)).all(), (count, time_value, name)
        # More than a cent of time value: a vol, and a delta short of -1.
        mid = intrinsic + 0.05
        result = price_contracts(100.0, strike, 0.5, 0.05, 0.01, False, True, mid - 0.05,
                                 mid + 0.05)  # fmt: skip
        assert (result.status == PricingStatus.OK).all()
        assert (result.iv_mid > 0.05).all()
        assert (result.delta > -1.0).all() and (result.delta < -0.9).all()
        # The bid at the exercise value has no vol; the ask above it has one.
        assert np.isnan(result.iv_bid).all()
        assert (result.iv_ask > result.iv_mid).all()


def test_american_implied_vol_at_the_exercise_value_is_below_intrinsic():
    from flashalpha.pricing import ImpliedVolStatus, american_implied_vol

    vol, status = american_implied_vol(50.0, 100.0, 150.0, 0.5, 0.05, 0.0, False, True)
    assert np.isnan(vol)
    assert status == ImpliedVolStatus.BELOW_INTRINSIC


def test_american_chain_tables_agree_with_the_per_row_engine():
    # The same American chain priced as one group (boundary tables over vol, CHAIN_SCHEME)
    # and row by row (each alone: the fast engine's own boundaries): the two engines differ
    # only by their discretizations (≤ ~5e-4 in price), so vols by ~1e-3 at worst.
    from flashalpha.pricing import american_chain

    count = 3 * american_chain.MIN_GROUP
    strike = np.linspace(70.0, 135.0, count)
    for is_call, q in ((False, 0.01), (True, 0.03)):
        theo = american_price(100.0, strike, 0.4, 0.045, q, 0.3, is_call, method="fast")
        bid, ask = theo - 0.02, theo + 0.02
        chain = price_contracts(100.0, strike, 0.4, 0.045, q, is_call, True, bid, ask)
        rows = [price_contracts(100.0, strike[i], 0.4, 0.045, q, is_call, True, bid[i], ask[i])
                for i in range(count)]  # fmt: skip
        # (deep in the money, a mid within a cent of the exercise value has no vol either way)
        np.testing.assert_array_equal(chain.status, [int(r.status) for r in rows])
        ok = chain.status == PricingStatus.OK
        assert ok.sum() >= count - 2
        for name, tolerance in (("iv_mid", 2e-3), ("iv_bid", 2e-3), ("iv_ask", 2e-3),
                                ("delta", 2e-3), ("theo", 1e-3)):  # fmt: skip
            single = np.array([float(getattr(r, name)) for r in rows])
            np.testing.assert_allclose(getattr(chain, name)[ok], single[ok], atol=tolerance,
                                       err_msg=name)  # fmt: skip
        np.testing.assert_allclose(chain.iv_mid[ok], 0.3, atol=2e-3)
