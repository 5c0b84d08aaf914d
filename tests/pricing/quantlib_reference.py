"""QuantLib as the independent reference: flat curves, ACT/365 fixed, whole days to expiry."""

from __future__ import annotations

import QuantLib as ql

TODAY = ql.Date(15, ql.January, 2025)
DAY_COUNT = ql.Actual365Fixed()


def process(spot: float, rate: float, div_yield: float, vol: float) -> ql.BlackScholesMertonProcess:
    ql.Settings.instance().evaluationDate = TODAY
    return ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, div_yield, DAY_COUNT)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, rate, DAY_COUNT)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(TODAY, ql.NullCalendar(), vol, DAY_COUNT)
        ),
    )


def option(strike: float, days: int, is_call: bool, american: bool = False) -> ql.VanillaOption:
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    expiry = TODAY + int(days)
    exercise = ql.AmericanExercise(TODAY, expiry) if american else ql.EuropeanExercise(expiry)
    return ql.VanillaOption(payoff, exercise)


def european(spot, strike, days, rate, div_yield, vol, is_call) -> dict[str, float]:
    """Price and the greeks QuantLib's analytic engine offers, in our units."""
    opt = option(strike, days, is_call)
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(process(spot, rate, div_yield, vol)))
    return {
        "price": opt.NPV(),
        "delta": opt.delta(),
        "gamma": opt.gamma(),
        "vega": opt.vega(),
        "theta": opt.theta(),
        "rho": opt.rho(),
        "epsilon": opt.dividendRho(),
        "dual_delta": opt.strikeSensitivity(),
        "elasticity": opt.elasticity(),
    }
