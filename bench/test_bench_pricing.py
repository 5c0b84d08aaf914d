"""Pricing kernels against their peers, side by side (DESIGN.md §6, issue 4).

Random options of the issue's ranges (spot 100, strikes 50-150, 1 day-2 years, vol 5-150%,
rates 0-5%, yields 0-3%), whole days to expiry so that QuantLib sees the same times. Ours run
on 1M options (fewer for the trees and the American engine), peers on fewer (their per-option
rates are what the table compares). One thread, and all of numba's threads (`parallel=True`).

Budgets per core: implied vol ≥ 5M/s and ≥ 3x py_vollib_vectorized; price + all greeks
≥ 15M/s; CRR 200 steps ≥ 100k/s and ≥ 20x QuantLib's BinomialVanillaEngine("crr", 200);
fast American ≥ 2M/s; American implied vol ≥ 200k/s.

Run: `make bench BENCH_ARGS="-k pricing"` or
`.venv/bin/python -m pytest bench/test_bench_pricing.py --benchmark-only`; the rates table
(bench/conftest.py) is printed at the end and written to .benchmarks/rates.md.
"""

from __future__ import annotations

import os
import warnings

import numba
import numpy as np
import pytest
import QuantLib as ql

from flashalpha.pricing import (
    american_implied_vol,
    american_price,
    bsm_greeks,
    bsm_price,
    crr_tree,
    implied_vol,
    price_contracts,
)

warnings.filterwarnings("ignore", module="py_vollib_vectorized")
import py_vollib_vectorized as pvv  # noqa: E402

THREADS = numba.get_num_threads()
#: FLASHALPHA_BENCH_PRICING_N shrinks every sample (a quick check of the harness).
SCALE = int(os.environ.get("FLASHALPHA_BENCH_PRICING_N", 1_000_000)) / 1_000_000
N = int(1_000_000 * SCALE)


def _n(count: int) -> int:
    return max(int(count * SCALE), 10)


TODAY = ql.Date(15, ql.January, 2025)
DAY_COUNT = ql.Actual365Fixed()


def _options(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = rng.integers(1, 731, n)
    sample = {
        "spot": np.full(n, 100.0),
        "strike": rng.uniform(50.0, 150.0, n),
        "years": days / 365.0,
        "rate": rng.uniform(0.0, 0.05, n),
        "div_yield": rng.uniform(0.0, 0.03, n),
        "vol": rng.uniform(0.05, 1.5, n),
        "is_call": rng.random(n) < 0.5,
        "days": days,
    }
    sample["price"] = bsm_price(*(sample[k] for k in BSM_ARGS))
    forward_gap = sample["spot"] * np.exp(-sample["div_yield"] * sample["years"]) - sample[
        "strike"
    ] * np.exp(-sample["rate"] * sample["years"])
    intrinsic = np.maximum(np.where(sample["is_call"], forward_gap, -forward_gap), 0.0)
    sample["quotable"] = (sample["price"] >= 0.01) & (sample["price"] - intrinsic >= 0.005)
    return sample


BSM_ARGS = ("spot", "strike", "years", "rate", "div_yield", "vol", "is_call")
IV_ARGS = ("price", "spot", "strike", "years", "rate", "div_yield", "is_call")


@pytest.fixture(scope="module")
def market() -> dict[str, np.ndarray]:
    return _options(N, seed=2024)


def _head(sample, n):
    return {k: v[:n] for k, v in sample.items()}


def _flags(sample):
    return np.where(sample["is_call"], "c", "p")


class _QuantLibMarket:
    """One set of relinkable quotes re-used across options (QuantLib's cheapest Python path)."""

    def __init__(self):
        ql.Settings.instance().evaluationDate = TODAY
        self.spot, self.rate, self.div = (
            ql.SimpleQuote(100.0),
            ql.SimpleQuote(0.0),
            ql.SimpleQuote(0.0),
        )
        self.vol = ql.SimpleQuote(0.2)
        self.process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(self.spot),
            ql.YieldTermStructureHandle(ql.FlatForward(TODAY, ql.QuoteHandle(self.div), DAY_COUNT)),
            ql.YieldTermStructureHandle(
                ql.FlatForward(TODAY, ql.QuoteHandle(self.rate), DAY_COUNT)
            ),
            ql.BlackVolTermStructureHandle(
                ql.BlackConstantVol(TODAY, ql.NullCalendar(), ql.QuoteHandle(self.vol), DAY_COUNT)
            ),
        )

    def option(self, sample, i, american=False):
        self.spot.setValue(float(sample["spot"][i]))
        self.rate.setValue(float(sample["rate"][i]))
        self.div.setValue(float(sample["div_yield"][i]))
        self.vol.setValue(float(sample["vol"][i]))
        payoff = ql.PlainVanillaPayoff(
            ql.Option.Call if sample["is_call"][i] else ql.Option.Put, float(sample["strike"][i])
        )
        expiry = TODAY + int(sample["days"][i])
        exercise = ql.AmericanExercise(TODAY, expiry) if american else ql.EuropeanExercise(expiry)
        return ql.VanillaOption(payoff, exercise)


# --- implied volatility ----------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True], ids=["1thread", "threads"])
def test_implied_vol_flashalpha(benchmark, market, parallel):
    args = [market[k] for k in IV_ARGS]
    implied_vol(*(a[:10] for a in args), parallel=parallel)
    vol = benchmark(implied_vol, *args, parallel=parallel)
    error = np.max(np.abs(vol[market["quotable"]] - market["vol"][market["quotable"]]))
    benchmark.extra_info.update(
        items=N, unit="options", threads=THREADS if parallel else 1, compare="implied vol",
        budget=5e6, budget_ratio=3.0, note=f"max vol error, quotable: {error:.1e}",
    )  # fmt: skip


def test_implied_vol_py_vollib_vectorized(benchmark, market):
    n = _n(200_000)
    sample = _head(market, n)
    flags = _flags(sample)

    def run():
        return pvv.vectorized_implied_volatility(
            sample["price"], sample["spot"], sample["strike"], sample["years"], sample["rate"],
            flags, q=sample["div_yield"], model="black_scholes_merton", return_as="numpy",
            on_error="ignore",
        )  # fmt: skip

    run()
    vol = benchmark(run)
    error = np.nanmax(np.abs(vol[sample["quotable"]] - sample["vol"][sample["quotable"]]))
    benchmark.extra_info.update(
        items=n, unit="options", compare="implied vol", baseline=True,
        note=f"max vol error, quotable: {error:.1e}",
    )  # fmt: skip


def test_implied_vol_quantlib(benchmark, market):
    n = _n(2_000)
    sample = _head(market, n)
    quant = _QuantLibMarket()
    options = [quant.option(sample, i) for i in range(n)]
    for opt in options:
        opt.setPricingEngine(ql.AnalyticEuropeanEngine(quant.process))

    def run():
        out = np.empty(n)
        for i, opt in enumerate(options):
            try:
                out[i] = opt.impliedVolatility(
                    float(sample["price"][i]), quant.process, 1e-12, 200, 1e-4, 10.0
                )
            except RuntimeError:
                out[i] = np.nan
        return out

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(
        items=n, unit="options", compare="implied vol", note="impliedVolatility(), Brent"
    )


# --- price + all greeks ----------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True], ids=["1thread", "threads"])
def test_greeks_flashalpha(benchmark, market, parallel):
    args = [market[k] for k in BSM_ARGS]
    bsm_greeks(*(a[:10] for a in args), parallel=parallel)
    benchmark(bsm_greeks, *args, parallel=parallel)
    benchmark.extra_info.update(
        items=N, unit="options", threads=THREADS if parallel else 1,
        compare="price + greeks", budget=15e6, note="price and 17 greeks",
    )  # fmt: skip


def test_greeks_py_vollib_vectorized(benchmark, market):
    n = _n(200_000)
    sample = _head(market, n)
    flags = _flags(sample)

    def run():
        args = (flags, sample["spot"], sample["strike"], sample["years"], sample["rate"])
        kwargs = dict(q=sample["div_yield"], model="black_scholes_merton")
        price = pvv.vectorized_black_scholes_merton(
            flags, sample["spot"], sample["strike"], sample["years"], sample["rate"],
            sample["vol"], sample["div_yield"], return_as="numpy",
        )  # fmt: skip
        return price, pvv.get_all_greeks(*args, sample["vol"], return_as="dict", **kwargs)

    run()
    benchmark(run)
    benchmark.extra_info.update(
        items=n, unit="options", compare="price + greeks", baseline=True,
        note="price + delta, gamma, theta, vega, rho",
    )  # fmt: skip


def test_greeks_quantlib(benchmark, market):
    n = _n(5_000)
    sample = _head(market, n)
    quant = _QuantLibMarket()
    options = [quant.option(sample, i) for i in range(n)]
    engine = ql.AnalyticEuropeanEngine(quant.process)
    for opt in options:
        opt.setPricingEngine(engine)

    def run():
        out = np.empty((8, n))
        for i, opt in enumerate(options):
            quant.vol.setValue(float(sample["vol"][i]))
            quant.rate.setValue(float(sample["rate"][i]))
            quant.div.setValue(float(sample["div_yield"][i]))
            out[:, i] = (
                opt.NPV(), opt.delta(), opt.gamma(), opt.vega(), opt.theta(), opt.rho(),
                opt.dividendRho(), opt.elasticity(),
            )  # fmt: skip
        return out

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(
        items=n, unit="options", compare="price + greeks", note="AnalyticEuropeanEngine, 8 outputs"
    )


# --- CRR trees -------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True], ids=["1thread", "threads"])
def test_crr200_flashalpha(benchmark, market, parallel):
    n = _n(50_000)
    sample = _head(market, n)
    args = [sample[k] for k in BSM_ARGS]
    crr_tree(*(a[:10] for a in args), parallel=parallel)
    benchmark(crr_tree, *args, steps=200, parallel=parallel)
    benchmark.extra_info.update(
        items=n, unit="options", threads=THREADS if parallel else 1, compare="CRR 200 steps",
        budget=1e5, budget_ratio=20.0, note="price, delta, gamma, theta",
    )  # fmt: skip


def test_crr200_quantlib(benchmark, market):
    n = _n(1_000)
    sample = _head(market, n)
    quant = _QuantLibMarket()
    options = [quant.option(sample, i, american=True) for i in range(n)]
    engine = ql.BinomialVanillaEngine(quant.process, "crr", 200)
    for opt in options:
        opt.setPricingEngine(engine)

    def run():
        out = np.empty(n)
        for i, opt in enumerate(options):
            quant.vol.setValue(float(sample["vol"][i]))
            quant.rate.setValue(float(sample["rate"][i]))
            quant.div.setValue(float(sample["div_yield"][i]))
            out[i] = opt.NPV()
        return out

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(
        items=n, unit="options", compare="CRR 200 steps", baseline=True,
        note='BinomialVanillaEngine("crr", 200), NPV',
    )  # fmt: skip


# --- fast American engine --------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True], ids=["1thread", "threads"])
def test_american_fast_flashalpha(benchmark, market, parallel):
    n = _n(100_000)
    sample = _head(market, n)
    args = [sample[k] for k in BSM_ARGS]
    american_price(*(a[:10] for a in args), method="fast", parallel=parallel)
    benchmark(american_price, *args, method="fast", parallel=parallel)
    benchmark.extra_info.update(
        items=n, unit="options", threads=THREADS if parallel else 1, compare="fast American",
        budget=2e6, note="ALO n=5 l=5 m=3 p=10, QD+ start, 128-option SIMD blocks",
    )  # fmt: skip


@pytest.mark.parametrize("scheme", ["fastScheme", "accurateScheme"])
def test_american_fast_quantlib(benchmark, market, scheme):
    n = _n(1_000)
    sample = _head(market, n)
    quant = _QuantLibMarket()
    options = [quant.option(sample, i, american=True) for i in range(n)]
    engine = ql.QdFpAmericanEngine(quant.process, getattr(ql.QdFpAmericanEngine, scheme)())
    for opt in options:
        opt.setPricingEngine(engine)

    def run():
        out = np.empty(n)
        for i, opt in enumerate(options):
            quant.vol.setValue(float(sample["vol"][i]))
            quant.rate.setValue(float(sample["rate"][i]))
            quant.div.setValue(float(sample["div_yield"][i]))
            out[i] = opt.NPV()
        return out

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info.update(
        items=n, unit="options", compare="fast American", baseline=scheme == "fastScheme",
        note=f"QdFpAmericanEngine {scheme}",
    )  # fmt: skip


@pytest.mark.parametrize("parallel", [False, True], ids=["1thread", "threads"])
def test_american_implied_vol_flashalpha(benchmark, market, parallel):
    n = _n(20_000)
    sample = _head(market, n)
    price = american_price(*(sample[k] for k in BSM_ARGS), method="fast")
    args = [price] + [sample[k] for k in IV_ARGS[1:]]
    american_implied_vol(*(a[:10] for a in args), parallel=parallel)
    benchmark(american_implied_vol, *args, parallel=parallel)
    benchmark.extra_info.update(
        items=n, unit="options", threads=THREADS if parallel else 1,
        compare="American implied vol", budget=2e5,
    )  # fmt: skip


def test_american_implied_vol_quantlib(benchmark, market):
    n = _n(200)
    sample = _head(market, n)
    quant = _QuantLibMarket()
    options = [quant.option(sample, i, american=True) for i in range(n)]
    prices = []
    for i, opt in enumerate(options):
        quant.vol.setValue(float(sample["vol"][i]))
        quant.rate.setValue(float(sample["rate"][i]))
        quant.div.setValue(float(sample["div_yield"][i]))
        opt.setPricingEngine(
            ql.QdFpAmericanEngine(quant.process, ql.QdFpAmericanEngine.fastScheme())
        )
        prices.append(opt.NPV())

    def run():
        out = np.empty(n)
        for i, opt in enumerate(options):
            quant.rate.setValue(float(sample["rate"][i]))
            quant.div.setValue(float(sample["div_yield"][i]))
            try:
                out[i] = opt.impliedVolatility(prices[i], quant.process, 1e-8, 200, 1e-4, 10.0)
            except RuntimeError:
                out[i] = np.nan
        return out

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(
        items=n, unit="options", compare="American implied vol", baseline=True,
        note="impliedVolatility() on QdFp fastScheme",
    )  # fmt: skip


# --- the workers' fused entry point ----------------------------------------------------------


@pytest.mark.parametrize("style", ["european", "american"])
def test_price_contracts(benchmark, market, style):
    n = N if style == "european" else _n(5_000)
    sample = _head(market, n)
    american = np.full(n, style == "american")
    theo = (
        american_price(*(sample[k] for k in BSM_ARGS), method="fast")
        if style == "american"
        else sample["price"]
    )
    args = [sample[k] for k in ("spot", "strike", "years", "rate", "div_yield", "is_call")]
    bid, ask = theo * 0.99, theo * 1.01
    price_contracts(*(a[:10] for a in args), american[:10], bid[:10], ask[:10])
    benchmark(price_contracts, *args, american, bid, ask)
    benchmark.extra_info.update(
        items=n, unit="contracts", compare=f"price_contracts ({style})",
        note="3 implied vols + 8 greeks + theo + status",
    )  # fmt: skip


def test_price_contracts_american_chains(benchmark):
    # What a worker's batch looks like: whole chains (one underlying, one expiry, both rights,
    # 50 strikes each), so that American rows share boundary tables (american_chain).
    rng = np.random.default_rng(7)
    expiries, strikes = max(_n(80), 2), 50
    years = np.repeat(rng.integers(1, 731, expiries) / 365.0, 2 * strikes)
    rate = np.repeat(rng.uniform(0.001, 0.05, expiries), 2 * strikes)
    div_yield = np.repeat(rng.uniform(0.0, 0.03, expiries), 2 * strikes)
    strike = np.tile(np.repeat(np.linspace(60.0, 140.0, strikes), 2), expiries)
    is_call = np.tile([True, False], expiries * strikes)
    vol = 0.2 + 0.3 * np.abs(np.log(strike / 100.0))
    n = years.size
    theo = american_price(100.0, strike, years, rate, div_yield, vol, is_call, method="fast")
    american = np.ones(n, dtype=bool)
    args = (100.0, strike, years, rate, div_yield, is_call, american, theo * 0.99, theo * 1.01)
    price_contracts(*args)
    benchmark(price_contracts, *args)
    benchmark.extra_info.update(
        items=n, unit="contracts", compare="price_contracts (american chains)",
        note=f"{expiries} chains x {2 * strikes} rows, boundary tables shared",
    )  # fmt: skip
