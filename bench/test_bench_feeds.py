"""Feeds: decode + normalize of Polygon and ThetaData frames, and end to end from a fake server.

Run: .venv/bin/python -m pytest bench/test_bench_feeds.py --benchmark-only -s
Budget (DESIGN.md §6): Polygon/ThetaData JSON frames -> normalized batch >= 1M events/s/core.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import numpy as np
import pytest

from flashalpha.feeds.polygon import PolygonDecoder
from flashalpha.feeds.thetadata import ThetaDecoder
from flashalpha.instruments import InstrumentRegistry, OptionContract
from flashalpha.state.layout import Right

CONTRACTS = 2_000
EVENTS = 20_000  # per decode call: a burst of frames as one read returns them
TRADE_SHARE = 0.1
BUDGET = 1_000_000


def _contracts() -> list[OptionContract]:
    import datetime as dt

    out = []
    for i in range(CONTRACTS):
        expiry = dt.date(2026, 12, 18) + dt.timedelta(days=7 * (i // 200))
        strike = (400 + (i % 200) // 2 * 2) * 1000
        out.append(OptionContract("SPY", expiry, strike, Right.CALL if i % 2 else Right.PUT))
    return out


def _polygon_frames(rng) -> list[bytes]:
    contracts = _contracts()
    events = []
    for i in range(EVENTS):
        contract = contracts[int(rng.integers(CONTRACTS))]
        t = 1_766_000_000_000 + i
        if rng.random() < TRADE_SHARE:
            events.append({"ev": "T", "sym": contract.polygon(), "x": 302, "p": 1.25, "s": 3,
                           "c": [209], "t": t, "q": i})  # fmt: skip
        else:
            events.append({"ev": "Q", "sym": contract.polygon(), "bx": 302, "ax": 313,
                           "bp": 1.2, "ap": 1.3, "bs": 10, "as": 12, "t": t, "q": i})  # fmt: skip
    return [msgspec.json.encode(events[i : i + 500]) for i in range(0, EVENTS, 500)]


def _theta_frames(rng) -> list[bytes]:
    contracts = _contracts()
    frames = []
    for i in range(EVENTS):
        block = {"security_type": "OPTION", **contracts[int(rng.integers(CONTRACTS))].thetadata()}
        ms = 34_200_000 + i
        if rng.random() < TRADE_SHARE:
            body = {"ms_of_day": ms, "sequence": i, "size": 3, "condition": 18, "price": 1.25,
                    "exchange": 5, "date": 20261201}  # fmt: skip
            frames.append(msgspec.json.encode(
                {"header": {"type": "TRADE", "status": "CONNECTED"}, "contract": block, "trade": body}
            ))  # fmt: skip
        else:
            body = {"ms_of_day": ms, "bid_size": 10, "bid_exchange": 5, "bid": 1.2,
                    "bid_condition": 50, "ask_size": 12, "ask_exchange": 42, "ask": 1.3,
                    "ask_condition": 50, "date": 20261201}  # fmt: skip
            frames.append(msgspec.json.encode(
                {"header": {"type": "QUOTE", "status": "CONNECTED"}, "contract": block, "quote": body}
            ))  # fmt: skip
    return frames


def _report(benchmark, label: str) -> float:
    rate = EVENTS / benchmark.stats.stats.min
    benchmark.extra_info["events_per_s"] = round(rate)
    print(f"\n{label}: {rate / 1e6:.2f}M events/s (best of {benchmark.stats.stats.rounds})")
    return rate


def test_polygon_decode_normalize(benchmark):
    decoder = PolygonDecoder(InstrumentRegistry(100_000, 100), lambda *a: None)
    frames = _polygon_frames(np.random.default_rng(1))
    batch, _ = decoder.decode(frames, 0)  # warm: contracts registered, caches filled
    assert len(batch) == EVENTS
    benchmark(decoder.decode, frames, 0)
    assert _report(benchmark, "polygon decode+normalize") >= BUDGET


def test_thetadata_decode_normalize(benchmark):
    decoder = ThetaDecoder(InstrumentRegistry(100_000, 100), lambda *a: None)
    frames = _theta_frames(np.random.default_rng(2))
    batch, _ = decoder.decode(frames, 0)
    assert len(batch) == EVENTS
    benchmark(decoder.decode, frames, 0)
    # One JSON object of ~310 bytes per event, four nested objects: msgspec alone peaked near
    # 0.5M/s; the compiled scanner (flashalpha._thetadata_scan) reads them straight into records.
    assert _report(benchmark, "thetadata decode+normalize") >= BUDGET


def test_thetadata_decode_normalize_with_control_and_rejects(benchmark):
    """The same burst with 1% of frames left to msgspec: heartbeats, responses, bad messages."""
    decoder = ThetaDecoder(InstrumentRegistry(100_000, 100), lambda *a: None)
    frames = _theta_frames(np.random.default_rng(2))
    a_quote = next(f for f in frames if b'"QUOTE"' in f)
    a_trade = next(f for f in frames if b'"TRADE"' in f)
    odd = [
        b'{"header":{"type":"STATUS","status":"CONNECTED"}}',
        b'{"header":{"type":"REQ_RESPONSE","status":"CONNECTED","response":"SUBSCRIBED",'
        b'"req_id":1}}',
        a_quote[:-40],  # truncated
        a_trade.replace(b'"size":3', b'"size":-3'),  # out of range
        a_quote.replace(b'"bid":1.2', b'"bid":"1.2"'),  # wrong type
    ]
    for index in range(0, EVENTS, 100):
        frames[index] = odd[index // 100 % len(odd)]
    decoder.decode(frames, 0)
    benchmark(decoder.decode, frames, 0)
    assert _report(benchmark, "thetadata decode+normalize, 1% control/bad") >= BUDGET


# --- end to end: a fake provider in another process, the daemon in this one ------------------

_SERVER = """
import asyncio, sys
from flashalpha.feeds.fakes import FakePolygonServer, FakeThetaTerminal, ScriptedMarket

async def main(kind, port, per_batch):
    market = ScriptedMarket({"SPY": 500.0, "QQQ": 400.0}, expiries=10, strikes_per_side=50,
                            quotes_per_batch=per_batch, trades_per_batch=per_batch // 10)
    if kind == "polygon":
        server = FakePolygonServer(market, port=port, api_key="bench", tick_interval=0.02)
    else:
        server = FakeThetaTerminal(market, port=port, tick_interval=0.02)
    async with server:
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def _end_to_end(kind: str, per_batch: int, seconds: float, tmp_path) -> dict:
    import os
    import socket
    import subprocess
    import sys
    import uuid

    from flashalpha.config import load_config
    from flashalpha.daemon import Daemon

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, kind, str(port), str(per_batch)],
        stdout=subprocess.PIPE,
        text=True,
    )
    shm = f"fa-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        assert server.stdout.readline().strip() == "ready"
        sections = (
            {
                "polygon": {
                    "url": f"ws://127.0.0.1:{port}/options",
                    "rest_url": f"http://127.0.0.1:{port}",
                    "api_key": "bench",
                    "quotes_per_connection": 100_000,
                    "rest_page_limit": 250,
                }
            }
            if kind == "polygon"
            else {
                "thetadata": {"url": f"ws://127.0.0.1:{port}/v1/events", "quote_streams": 100_000}
            }
        )

        config = load_config(
            None,
            {
                "data_dir": str(tmp_path),
                "state": {"shm_name": shm, "capacity": 50_000, "underlying_capacity": 64},
                "journal": {"fsync": "never"},
                "feed": {"kind": kind, "underlyings": ["SPY", "QQQ"]},
                **sections,
            },
            environ={},
        )

        async def measure() -> dict:
            daemon = Daemon(config)
            task = asyncio.create_task(daemon.run())
            try:
                while daemon.feed is None or daemon.feed.links[0].metrics.events < 10 * per_batch:
                    assert not task.done(), "daemon stopped"
                    await asyncio.sleep(0.05)
                link = daemon.feed.links[0]
                counters = daemon.state.segment.counters
                start_events = int(counters[0] + counters[1])
                start = time.monotonic()
                link.metrics._lag_count = 0  # percentiles over the measured window only
                await asyncio.sleep(seconds)
                events = int(counters[0] + counters[1]) - start_events
                elapsed = time.monotonic() - start
                return {"events_per_s": events / elapsed, **link.metrics.lag_percentiles()}
            finally:
                daemon.request_stop()
                await task

        return asyncio.run(measure())
    finally:
        server.kill()
        server.wait(10)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/{shm}")


@pytest.mark.parametrize(("kind", "per_batch"), [("polygon", 4_000), ("thetadata", 1_000)])
def test_end_to_end_from_a_fake_server(benchmark, tmp_path, kind, per_batch):
    result = benchmark.pedantic(
        _end_to_end, args=(kind, per_batch, 5.0, tmp_path), rounds=1, iterations=1
    )
    benchmark.extra_info.update({k: v for k, v in result.items()})
    print(
        f"\n{kind} end to end: {result['events_per_s']:,.0f} events/s sustained into the state "
        f"(offered {per_batch * 1.1 / 0.02:,.0f}/s), lag p50 {result['p50']}s p99 {result['p99']}s"
    )
    assert result["events_per_s"] > 0
