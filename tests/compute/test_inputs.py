"""Pricing inputs: years to 16:00 New York (DST-aware, ACT/365), rate curves, gathering."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from flashalpha.compute.inputs import (
    NS_PER_YEAR,
    ExpiryClock,
    RateCurve,
    expiry_close_ns,
    gather_inputs,
)

from .conftest import make_market


def days(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days


def utc_ns(*args) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_expiry_is_four_pm_new_york_on_both_sides_of_daylight_saving():
    assert expiry_close_ns(days(dt.date(2026, 7, 17))) == utc_ns(2026, 7, 17, 20)  # EDT
    assert expiry_close_ns(days(dt.date(2026, 12, 18))) == utc_ns(2026, 12, 18, 21)  # EST
    # 2026-03-08 and 2026-11-01 are the transition Sundays.
    assert expiry_close_ns(days(dt.date(2026, 3, 6))) == utc_ns(2026, 3, 6, 21)
    assert expiry_close_ns(days(dt.date(2026, 3, 9))) == utc_ns(2026, 3, 9, 20)
    assert expiry_close_ns(days(dt.date(2026, 10, 30))) == utc_ns(2026, 10, 30, 20)
    assert expiry_close_ns(days(dt.date(2026, 11, 2))) == utc_ns(2026, 11, 2, 21)


def test_years_are_act_365_to_the_close_and_never_negative():
    clock = ExpiryClock()
    now = utc_ns(2026, 12, 17, 21)  # one day before the 18th's close
    expiries = np.array(
        [days(dt.date(2026, 12, 18)), days(dt.date(2026, 12, 17)), days(dt.date(2027, 12, 17))],
        np.int32,
    )
    years = clock.years(expiries, now)
    assert years[0] == pytest.approx(1 / 365, abs=1e-15)
    assert years[1] == 0.0  # expired at 16:00 today
    assert years[2] == (utc_ns(2027, 12, 17, 21) - now) / NS_PER_YEAR
    # The table grows in both directions.
    earlier = np.array([days(dt.date(2020, 1, 3))], np.int32)
    assert clock.years(earlier, now)[0] == 0.0
    assert clock.years(expiries, now).tolist() == years.tolist()


def test_rate_curve_interpolates_by_expiry_and_is_flat_beyond_its_ends():
    curve = RateCurve([(365, 0.05), (30, 0.04)])
    rates = curve.rates(np.array([0.0, 30 / 365, (30 + 365) / 2 / 365, 1.0, 5.0]))
    np.testing.assert_allclose(rates, [0.04, 0.04, 0.045, 0.05, 0.05])
    assert not RateCurve() and RateCurve().rates(np.zeros(2)) is None
    with pytest.raises(ValueError, match="repeated days"):
        RateCurve([(30, 0.04), (30, 0.05)])
    with pytest.raises(ValueError, match="days >= 0"):
        RateCurve([(-1, 0.04)])


def test_gather_copies_inputs_out_of_shared_memory(market_state):
    state = market_state
    make_market(state, 8)
    now = time.time_ns()
    clock = ExpiryClock()
    by_slice = gather_inputs(state, slice(2, 6), now, clock, RateCurve())
    by_index = gather_inputs(state, np.arange(2, 6, dtype=np.uint32), now, clock, RateCurve())
    shared = state.segment.bytes_view
    for name, values in by_slice.items():
        np.testing.assert_array_equal(values, by_index[name])
        assert not np.shares_memory(values, shared), name
        assert not np.shares_memory(by_index[name], shared), name
    assert by_slice["rate"].tolist() == [0.04] * 4
    assert by_slice["div_yield"].tolist() == [0.01] * 4
    assert by_slice["spot"].tolist() == [100.0] * 4
    np.testing.assert_array_equal(by_slice["strike"], state.column("strike")[2:6])
    curve = gather_inputs(state, slice(0, 2), now, clock, RateCurve([(1, 0.01), (2, 0.02)]))
    assert curve["rate"].tolist() == [0.02, 0.02]
    # A later write to the state does not show in what was gathered.
    strike = float(by_slice["strike"][0])
    state.write_columns(np.array([2], np.uint32), {"strike": np.array([999.0])})
    assert by_slice["strike"][0] == strike


def test_am_settled_series_expire_at_the_opening(market_state):
    """SPX monthlies settle on the expiry day's opening prices; SPXW and SPY at the close."""
    state = market_state
    expiry = days(dt.date(2026, 12, 18))  # a third Friday, EST
    roots = ["SPX   ", "SPXW  ", "SPY   ", "VIX   "]
    state.add_listings(
        {
            "osi": np.array([f"{root}261218C06000000".encode() for root in roots]),
            "underlying_id": np.array([0, 0, 1, 2], np.uint32),
            "expiry": np.full(4, expiry, np.int32),
            "strike": np.full(4, 6000.0),
            "right": np.ones(4, np.uint8),
            "style": np.array([1, 1, 0, 1], np.uint8),
            "multiplier": np.full(4, 100, np.float32),
        },
        {
            "symbol": np.array([b"SPX", b"SPY", b"VIX"]),
            "style": np.array([1, 0, 1], np.uint8),
            "div_yield": np.zeros(3),
        },
        rate=0.04,
    )
    clock = ExpiryClock()
    assert clock.am_settled(state).tolist() == [True, False, False, True]
    now = utc_ns(2026, 12, 17, 21)  # Thursday's close: the SPX monthly's last trading day
    years = gather_inputs(state, slice(0, 4), now, clock, RateCurve())["years"]
    opening, close = utc_ns(2026, 12, 18, 14, 30), utc_ns(2026, 12, 18, 21)
    assert years.tolist() == [
        (opening - now) / NS_PER_YEAR,
        (close - now) / NS_PER_YEAR,
        (close - now) / NS_PER_YEAR,
        (opening - now) / NS_PER_YEAR,
    ]
    # On the expiry day, between the opening and the close, only the a.m. series has expired.
    midday = gather_inputs(state, np.arange(4, dtype=np.uint32), utc_ns(2026, 12, 18, 17), clock,
                           RateCurve())["years"]  # fmt: skip
    assert midday[0] == midday[3] == 0.0 and midday[1] == midday[2] > 0
