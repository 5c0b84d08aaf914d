"""Hub and REST benchmarks on the real daemon (DESIGN.md §6).

- tick → hub frame on the wire with 500 concurrent WebSocket clients, each subscribed to one
  chain (round robin over the demo market's 20 underlyings): p50/p99 of (receive time − the
  quote's exchange timestamp) over every row quoted since the client's previous frame; budget
  p99 ≤ push interval + 20 ms;
- fan-out: update messages/s and bytes/s the daemon writes (its /metrics) and the clients read;
- REST: `GET /api/v1/chains/IWM`, a 5,210-contract chain, rendered and encoded; and
  `GET /api/v1/chains/SPX` (~24k contracts) rendered off the loop or on it, with the daemon's
  loop lag while it is served.

The daemon runs as `flashalpha run` (synthetic feed at its default 20,000 events/s, no
pricing workers); the clients run in another process (aiohttp WebSockets, JSON hub protocol,
msgspec decoding only the fields measured). Both share the machine's two cores.

Run: `make bench BENCH_ARGS="-k hub"` or
`.venv/bin/python -m pytest bench/test_bench_hub.py --benchmark-only -s`.
FLASHALPHA_BENCH_HUB_CLIENTS, _SECONDS and _EVENTS scale the run down for a quick check.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

CLIENTS = int(os.environ.get("FLASHALPHA_BENCH_HUB_CLIENTS", 500))
SECONDS = float(os.environ.get("FLASHALPHA_BENCH_HUB_SECONDS", 20))
EVENTS_PER_SECOND = float(os.environ.get("FLASHALPHA_BENCH_HUB_EVENTS", 20_000))
PUSH_INTERVAL_MS = 100
FLASHALPHA = str(Path(sys.executable).with_name("flashalpha"))

# The client process: N WebSocket clients on one asyncio loop. Each records, per update frame,
# the receive time and the quote timestamps of its rows; a row counts once, in the first frame
# after its quote (quote_ts newer than the client's previous frame).
CLIENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import aiohttp, msgspec
    import numpy as np

    class Row(msgspec.Struct):
        quote_ts: int | None = None

    class Payload(msgspec.Struct):
        seq: int
        rows: list[Row]

    class Message(msgspec.Struct):
        type: int
        arguments: list[Payload] | None = None
        invocationId: str | None = None

    decoder = msgspec.json.Decoder(Message)
    url, clients, seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    topics = sys.argv[5].split(",")
    latencies, frames, payload_bytes, seq_errors = [], 0, 0, 0
    ready = 0

    async def client(index, session, start, stop):
        global frames, payload_bytes, seq_errors, ready
        async with session.ws_connect(url + "/hubs/market", max_msg_size=0, compress=0) as ws:
            await ws.send_str('{"protocol":"json","version":1}\\x1e')
            await ws.receive()
            topic = topics[index % len(topics)]
            await ws.send_str(json.dumps(
                {"type": 1, "invocationId": "1", "target": "Subscribe", "arguments": [topic]}
            ) + "\\x1e")
            previous, last_seq = 0, 0
            subscribed = False
            while True:
                message = await ws.receive()
                received = time.time_ns()
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                for record in message.data.split("\\x1e"):
                    if not record:
                        continue
                    decoded = decoder.decode(record)
                    if decoded.type == 3 and not subscribed:
                        subscribed = True
                        ready += 1
                        previous = received
                        last_seq = 0
                        continue
                    if decoded.type != 1 or not decoded.arguments:
                        continue
                    payload = decoded.arguments[0]
                    if payload.seq < last_seq:  # equal is allowed (docs/PROTOCOL.md)
                        seq_errors += 1
                    last_seq = payload.seq
                    if start.is_set() and not stop.is_set():
                        frames += 1
                        payload_bytes += len(record)
                        fresh = [r.quote_ts for r in payload.rows
                                 if r.quote_ts is not None and r.quote_ts > previous]
                        if fresh:
                            latencies.append(received - np.array(fresh, np.int64))
                    previous = received
                if stop.is_set():
                    return

    async def main():
        start, stop = asyncio.Event(), asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = []
            for i in range(clients):
                tasks.append(asyncio.create_task(client(i, session, start, stop)))
                if i % 50 == 49:
                    await asyncio.sleep(0.2)
            while ready < clients:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # let the snapshots' backlog drain
            print(json.dumps({"event": "ready"}), flush=True)
            start.set()
            began = time.monotonic()
            await asyncio.sleep(seconds)
            stop.set()
            elapsed = time.monotonic() - began
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        values = np.concatenate(latencies) if latencies else np.zeros(0, np.int64)
        np.save(out, values)
        print(json.dumps({"event": "done", "frames": frames, "bytes": payload_bytes,
                          "elapsed": elapsed, "seq_errors": seq_errors,
                          "samples": int(len(values))}), flush=True)

    asyncio.run(main())
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(\S+) ([0-9.e+-]+)$", text, re.MULTILINE)
    }


@contextlib.contextmanager
def _run_daemon(tmp: Path, **env: str):
    """`flashalpha run` on the demo market (no workers); yields its URL and pid."""
    port = _free_port()
    name = f"fa-bench-hub-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "FLASHALPHA_STATE_SHM_NAME": name,
        "FLASHALPHA_HUB_PUSH_INTERVAL_MS": str(PUSH_INTERVAL_MS),
        **env,
    }
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            FLASHALPHA,
            "run",
            "--workers",
            "0",
            "--capacity",
            "200000",
            "--data-dir",
            str(tmp / "data"),
            "--http",
            f"127.0.0.1:{port}",
            "--events-per-second",
            str(EVENTS_PER_SECOND),
            "--no-recover",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp / "daemon.log").read_text()
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=5).json()["contracts"] > 50_000:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.2)
        time.sleep(2)  # past the initial listing burst
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with _run_daemon(tmp_path_factory.mktemp("bench-hub")) as running:
        yield running


@pytest.mark.parametrize("render", ["off_loop", "on_loop"])
def test_rest_chain_spx_loop_lag(benchmark, tmp_path, render):
    """GET /api/v1/chains/SPX (~24k contracts, ~10 MB) every 0.2 s for ~10 s, and what it does to
    the daemon's loop: the loop-lag p99/max over that time (the window of its 1,024 samples of a
    10 ms timer), with the chain rendered on the render thread (`api.off_loop_rows`, default) or
    on the loop itself."""
    rows = "4096" if render == "off_loop" else "100000000"
    with _run_daemon(tmp_path, FLASHALPHA_API_OFF_LOOP_ROWS=rows) as (url, _):
        with httpx.Client(base_url=url, timeout=30) as http:
            contracts = len(http.get("/api/v1/chains/SPX").json())
            assert contracts > 10_000

            def get_chain():
                response = http.get("/api/v1/chains/SPX")
                assert response.status_code == 200
                return response

            benchmark.pedantic(
                get_chain, setup=lambda: time.sleep(0.2), rounds=40, iterations=1, warmup_rounds=1
            )
        metrics = _metrics(url)
        lag = {
            q: round(metrics[f'flashalpha_loop_lag_seconds{{quantile="{q}"}}'] * 1e3, 1)
            for q in ("0.5", "0.99", "1")
        }
        benchmark.extra_info.update(
            contracts=contracts, loop_lag_p50_ms=lag["0.5"], loop_lag_p99_ms=lag["0.99"],
            loop_lag_max_ms=lag["1"],
        )  # fmt: skip
        print(f"\nSPX chain rendered {render}: {contracts} contracts, loop lag {lag} ms")


def test_rest_chain_5k_contracts(benchmark, daemon):
    """GET /api/v1/chains/IWM (5,210 contracts) on the live market."""
    url, _ = daemon
    with httpx.Client(base_url=url, timeout=30) as http:
        rows = http.get("/api/v1/chains/IWM").json()
        assert len(rows) > 5000

        def get_chain():
            response = http.get("/api/v1/chains/IWM")
            assert response.status_code == 200
            return response

        response = benchmark.pedantic(get_chain, rounds=40, iterations=1, warmup_rounds=3)
    benchmark.extra_info["contracts"] = len(rows)
    benchmark.extra_info["bytes"] = len(response.content)


def test_tick_to_frame_500_clients(benchmark, daemon, tmp_path):
    """Tick → frame on the wire for CLIENTS WebSocket clients, one chain each."""
    daemon, daemon_pid = daemon
    underlyings = [u["symbol"] for u in httpx.get(f"{daemon}/api/v1/underlyings").json()]
    topics = ",".join(f"chain:{symbol}" for symbol in underlyings)
    out = tmp_path / "latencies.npy"

    def run() -> dict:
        clients = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT_SCRIPT,
                daemon,
                str(CLIENTS),
                str(SECONDS),
                str(out),
                topics,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = json.loads(clients.stdout.readline())
        assert ready["event"] == "ready"
        before, t0 = _metrics(daemon), time.monotonic()
        cpu0 = _cpu_seconds(daemon_pid), _cpu_seconds(clients.pid)
        time.sleep(SECONDS)
        cpu1 = _cpu_seconds(daemon_pid), _cpu_seconds(clients.pid)
        after, t1 = _metrics(daemon), time.monotonic()
        done = json.loads(clients.stdout.readline())
        assert clients.wait(120) == 0
        cpu = [round(100 * (b - a) / (t1 - t0)) for a, b in zip(cpu0, cpu1, strict=True)]
        return {"done": done, "before": before, "after": after, "seconds": t1 - t0, "cpu": cpu}

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    done, before, after, seconds = (
        result["done"],
        result["before"],
        result["after"],
        result["seconds"],
    )
    latencies_ms = np.load(out) / 1e6
    assert done["seq_errors"] == 0 and len(latencies_ms) > 1000

    def rate(name: str) -> float:
        return (after[name] - before[name]) / seconds

    flushes = after["flashalpha_hub_flushes_total"] - before["flashalpha_hub_flushes_total"]
    flush_seconds = (
        after["flashalpha_hub_flush_seconds_total"] - before["flashalpha_hub_flush_seconds_total"]
    )
    figures = {
        "clients": CLIENTS,
        "events_per_second": EVENTS_PER_SECOND,
        "push_interval_ms": PUSH_INTERVAL_MS,
        "latency_p50_ms": round(float(np.percentile(latencies_ms, 50)), 1),
        "latency_p99_ms": round(float(np.percentile(latencies_ms, 99)), 1),
        "latency_max_ms": round(float(latencies_ms.max()), 1),
        "latency_samples": len(latencies_ms),
        "server_updates_per_s": round(rate("flashalpha_hub_updates_total")),
        "server_messages_per_s": round(rate("flashalpha_hub_messages_sent_total")),
        "server_mbytes_per_s": round(rate("flashalpha_hub_bytes_sent_total") / 1e6, 1),
        "client_frames_per_s": round(done["frames"] / done["elapsed"]),
        "client_mbytes_per_s": round(done["bytes"] / done["elapsed"] / 1e6, 1),
        "flush_ms_mean": round(flush_seconds / max(flushes, 1) * 1e3, 2),
        "conflated_per_s": round(rate("flashalpha_hub_conflated_total"), 1),
        "slow_closes": after["flashalpha_hub_slow_closes_total"],
        "daemon_cpu_percent": result["cpu"][0],
        "clients_cpu_percent": result["cpu"][1],
    }
    benchmark.extra_info.update(figures)
    print("\nhub fan-out:", json.dumps(figures, indent=1))
