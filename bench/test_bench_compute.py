"""Compute fleet benchmarks (DESIGN.md §6).

- full market: BSM implied vols (bid, mid, ask) plus greeks for 1.8M contracts through the
  dispatcher and 2 local workers (budget ≤ 1.0 s wall on 2 cores);
- the same with American-style contracts on the fast American engine (budget ≤ 5 s);
- the same kernels in-process, one thread, for comparison (transport overhead as a ratio);
- the dispatcher's write-back of 1.8M results into the state (its share of the sweep);
- tick-to-greeks latency p50/p99 on the demo market at its default rate (a real daemon).

Run: `make bench BENCH_ARGS="-k compute"` or
`.venv/bin/python -m pytest bench/test_bench_compute.py --benchmark-only -s`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from flashalpha import pricing
from flashalpha.compute import protocol
from flashalpha.compute.dispatcher import Dispatcher
from flashalpha.compute.fleet import LocalFleet
from flashalpha.compute.inputs import ExpiryClock, RateCurve, gather_inputs
from flashalpha.compute.pricer import price_batch
from flashalpha.config import ComputeConfig
from flashalpha.state.batch import TickBatch
from flashalpha.state.engine import MarketState
from flashalpha.state.layout import (
    QUOTE_DTYPE,
    UNDERLYING_TICK_DTYPE,
    ExerciseStyle,
    PricingStatus,
)

#: FLASHALPHA_BENCH_COMPUTE_ROWS makes a quick check of the harness possible.
ROWS = int(os.environ.get("FLASHALPHA_BENCH_COMPUTE_ROWS", 1_800_000))
UNDERLYINGS = 5_000
WORKERS = 2
TODAY = int((np.datetime64("today") - np.datetime64("1970-01-01")).astype(int))
CONFIG = ComputeConfig(sweep_interval=3600, max_batch=131_072, initial_batch=65_536)


def build_market(style: ExerciseStyle) -> tuple[MarketState, np.ndarray]:
    """1.8M contracts listed chain by chain, as a registry lists them: 5,000 underlyings x
    18 expiries x 2 rights x 10 strikes around the spot (a chain shares expiry, right, rate and
    yield: the fast American engine shares work along it). Quoted a cent around their price at
    known vols."""
    rng = np.random.default_rng(7)
    name = f"fa-bench-compute-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    state = MarketState.create(name, capacity=ROWS, underlying_capacity=UNDERLYINGS)
    expiries, strikes = 18, ROWS // (UNDERLYINGS * 18 * 2)
    underlying = np.repeat(np.arange(UNDERLYINGS, dtype=np.uint32), expiries * 2 * strikes)
    spots = rng.uniform(20, 500, UNDERLYINGS)
    days = np.sort(rng.choice(np.arange(1, 730), (UNDERLYINGS, expiries)), axis=1)
    expiry = (TODAY + np.repeat(days.ravel(), 2 * strikes)).astype(np.int32)
    right = np.tile(np.repeat(np.array([1, 0], np.uint8), strikes), UNDERLYINGS * expiries)
    moneyness = np.tile(np.linspace(0.7, 1.3, strikes), UNDERLYINGS * expiries * 2)
    strike = np.round(spots[underlying] * moneyness, 1)
    assert len(strike) == ROWS
    state.add_listings(
        {
            "osi": np.full(ROWS, b"BENCH 270115C00100000"),
            "underlying_id": underlying,
            "expiry": expiry,
            "strike": strike,
            "right": right,
            "style": np.full(ROWS, style, np.uint8),
            "multiplier": np.full(ROWS, 100, np.float32),
        },
        {
            "symbol": np.array([f"U{i}".encode() for i in range(UNDERLYINGS)]),
            "style": np.full(UNDERLYINGS, style, np.uint8),
            "div_yield": rng.uniform(0, 0.03, UNDERLYINGS),
        },
        rate=0.04,
    )
    vols = rng.uniform(0.15, 0.8, ROWS)
    years = (expiry - TODAY) / 365.0
    div = state.underlying_column("div_yield")[underlying]
    args = (spots[underlying], strike, years, 0.04, div, vols, right == 1)
    if style == ExerciseStyle.AMERICAN:
        price = pricing.american_price(*args, method="fast")
    else:
        price = pricing.bsm_price(*args)
    now = time.time_ns()
    ticks = np.zeros(UNDERLYINGS, UNDERLYING_TICK_DTYPE)
    ticks["underlying"] = np.arange(UNDERLYINGS)
    ticks["price"], ticks["ts"] = spots, now
    quotes = np.zeros(ROWS, QUOTE_DTYPE)
    quotes["row"] = np.arange(ROWS)
    quotes["bid"] = np.maximum(price - 0.01, 0.0)
    quotes["ask"] = price + 0.01
    quotes["bid_size"] = quotes["ask_size"] = 10
    quotes["ts"] = now
    state.apply(TickBatch(quotes=quotes, underlyings=ticks))
    return state, vols


class Fleet:
    """The dispatcher on its own loop and two `flashalpha worker` processes (the local fleet)."""

    def __init__(self, state: MarketState) -> None:
        self.loop = asyncio.new_event_loop()
        self.dispatcher = Dispatcher(CONFIG, state, lambda *args: None)
        endpoint = self.dispatcher.bind(f"ipc://@fa-bench-{uuid.uuid4().hex[:8]}")
        self.task = self.loop.create_task(self.dispatcher.run())
        self.fleet = LocalFleet(WORKERS, endpoint, CONFIG.heartbeat_interval)
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.fleet.start()
        while len(self.dispatcher.workers) < WORKERS:
            await asyncio.sleep(0.05)
        await self._wait_sweep(self.dispatcher.queue.sweeps_completed)  # the warm-up sweep

    async def _wait_sweep(self, completed: int) -> None:
        while self.dispatcher.queue.sweeps_completed <= completed:
            await asyncio.sleep(0.001)

    def sweep(self) -> float:
        """One full sweep of every contract; returns its duration in seconds."""
        queue = self.dispatcher.queue
        completed = queue.sweeps_completed
        queue.next_sweep_ns = 0
        self.loop.run_until_complete(self._wait_sweep(completed))
        return queue.last_sweep_seconds

    def close(self) -> None:
        self.loop.run_until_complete(self.fleet.stop())
        self.task.cancel()
        self.loop.run_until_complete(asyncio.gather(self.task, return_exceptions=True))
        self.dispatcher.close()
        self.loop.close()


def report(benchmark, state: MarketState, vols: np.ndarray, sweeps: list[float]) -> None:
    status = state.column("pricing_status")
    ok = status == PricingStatus.OK
    error = np.abs(state.column("iv")[ok] - vols[ok])
    benchmark.extra_info.update(
        rows=ROWS,
        workers=WORKERS,
        sweep_seconds=[round(s, 3) for s in sweeps],
        rows_ok=int(ok.sum()),
        statuses={PricingStatus(s).name: int(n) for s, n in enumerate(np.bincount(status)) if n},
        median_iv_error=float(np.median(error)),
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")


@pytest.fixture(scope="module")
def european():
    state, vols = build_market(ExerciseStyle.EUROPEAN)
    yield state, vols
    state.close()


@pytest.fixture(scope="module")
def american():
    try:
        pricing.american_price(100.0, 100.0, 1.0, 0.04, 0.0, 0.2, True, method="fast")
    except NotImplementedError:
        pytest.skip("the fast American engine has not landed in flashalpha.pricing")
    state, vols = build_market(ExerciseStyle.AMERICAN)
    yield state, vols
    state.close()


def _fleet_benchmark(benchmark, market, rounds: int = 3) -> None:
    state, vols = market
    fleet = Fleet(state)
    sweeps: list[float] = []
    try:
        benchmark.pedantic(lambda: sweeps.append(fleet.sweep()), rounds=rounds, iterations=1)
    finally:
        fleet.close()
    report(benchmark, state, vols, sweeps)


def _in_process_benchmark(benchmark, market, rows: int = ROWS) -> None:
    """The worker's pricing function on `rows` contracts in this process, one thread."""
    state, _ = market
    inputs = gather_inputs(state, slice(0, rows), time.time_ns(), ExpiryClock(), RateCurve())
    price_batch({k: v[:1000] for k, v in inputs.items()})
    outputs = benchmark.pedantic(price_batch, args=(inputs,), rounds=2, iterations=1)
    ok = outputs["pricing_status"] == PricingStatus.OK
    seconds = benchmark.stats.stats.min
    benchmark.extra_info.update(
        rows=rows,
        threads=1,
        rows_ok=int(ok.sum()),
        rows_per_s=round(rows / seconds),
        full_market_seconds_one_core=round(ROWS / (rows / seconds), 3),
    )
    print(f"\n{benchmark.name}: {benchmark.extra_info}")


def test_bench_compute_full_market_bsm_fleet(benchmark, european):
    _fleet_benchmark(benchmark, european)


def test_bench_compute_full_market_bsm_in_process(benchmark, european):
    _in_process_benchmark(benchmark, european)


def test_bench_compute_full_market_american_fleet(benchmark, american):
    _fleet_benchmark(benchmark, american, rounds=1)


def test_bench_compute_full_market_american_in_process(benchmark, american):
    # A tenth of the market (one core would take minutes for all of it); the full-market
    # figure is extrapolated in extra_info.
    _in_process_benchmark(benchmark, american, rows=ROWS // 10)


def test_bench_compute_write_back(benchmark, european):
    """The dispatcher's state write of 1.8M results (15 columns, seq-checked), alone."""
    state, _ = european
    seq = state.seq
    outputs = {name: np.zeros(ROWS, dtype) for name, dtype in protocol.RESULT_COLUMNS}
    outputs["pricing_status"][:] = PricingStatus.OK
    outputs["ts_greeks"] = np.full(ROWS, time.time_ns(), np.uint64)
    outputs["seq_greeks"] = np.full(ROWS, seq, np.uint64)
    rows = np.arange(ROWS, dtype=np.uint32)
    seqs = np.full(ROWS, seq, np.uint64)
    written = benchmark.pedantic(
        state.write_columns, args=(rows, outputs), kwargs={"computed_at_seq": seqs}, rounds=3
    )
    assert written == ROWS
    benchmark.extra_info.update(rows=ROWS, columns=len(outputs))


def test_bench_compute_tick_to_greeks_latency_demo(benchmark, tmp_path):
    """A real daemon on the demo market at its default rate with 2 local workers: the
    dispatcher's tick-to-greeks percentiles (now - the newest quote/spot time of each repriced
    row, at the moment its greeks are written) after 30 s."""
    shm = f"fa-bench-latency-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "FLASHALPHA_STATE_SHM_NAME": shm,
        "FLASHALPHA_DATA_DIR": str(tmp_path / "data"),
        "FLASHALPHA_COMPUTE_BIND": "tcp://127.0.0.1:*",
    }
    flashalpha = [str(Path(sys.executable).with_name("flashalpha"))]
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [*flashalpha, "run", "--capacity", "200000", "--workers", "2", "--http", "127.0.0.1:0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def status() -> dict:
        result = subprocess.run(
            [*flashalpha, "status", "--json", "--interval", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode:
            return {}
        return json.loads(result.stdout)["daemon"].get("services", {}).get("compute", {})

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not status().get("sweeps_completed"):
            time.sleep(0.5)
        time.sleep(30)
        compute = benchmark.pedantic(status, rounds=1, iterations=1)
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
    latency = compute["tick_to_greeks_ms"]
    assert latency["samples"] > 0, (tmp_path / "daemon.log").read_text()[-3000:]
    benchmark.extra_info.update(
        tick_to_greeks_ms=latency,
        full_sweep_s=compute["full_sweep_s"],
        repricing_lag_s=compute["repricing_lag_s"],
        rows_priced=compute["rows_priced"],
    )
    print(f"\ntick-to-greeks on the demo market: {benchmark.extra_info}")
