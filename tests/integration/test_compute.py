"""The pricing fleet end to end: real daemons, real worker processes, real sockets.

One daemon with a local fleet of two; one with none, whose workers connect over tcp as remote
pods would, and are killed, stopped and impersonated by garbage-sending peers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import msgspec
import numpy as np
import pytest
import zmq

from flashalpha.compute import protocol
from flashalpha.compute.protocol import Kind
from flashalpha.state.layout import PricingStatus
from flashalpha.state.reader import StateReader

pytestmark = pytest.mark.integration

FLASHALPHA = [sys.executable, "-m", "flashalpha.cli"]


def compute_status(daemon) -> dict:
    result = daemon.cli("status", "--json", "--interval", "0")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["daemon"]["services"]["compute"]


def wait_status(daemon, predicate, timeout: float = 60.0) -> dict:
    """Poll `flashalpha status` until `predicate(compute_status)`; fail with the log."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(f"daemon exited with {daemon.process.returncode}:\n{daemon.log()}")
        try:
            status = compute_status(daemon)
        except (AssertionError, KeyError, json.JSONDecodeError):
            status = {}
        if status and predicate(status):
            return status
        time.sleep(0.2)
    pytest.fail(f"compute status never matched within {timeout}s: {status}\n{daemon.log()}")


def worker_entry(status: dict, pid: int) -> dict | None:
    return next((w for w in status["worker_list"] if w["pid"] == pid), None)


def all_rows(daemon) -> np.ndarray:
    with StateReader.attach(daemon.shm_name) as reader:
        return reader.read_rows(np.arange(reader.count, dtype=np.uint32))


def start_worker(endpoint: str, tmp_path, name: str) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [*FLASHALPHA, "worker", "--connect", endpoint, "--heartbeat-interval", "0.5"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_two_local_workers_price_the_demo_market(daemon_factory):
    daemon = daemon_factory(
        ["--capacity", "200000", "--workers", "2"],
        env={"FLASHALPHA_COMPUTE_BIND": "tcp://127.0.0.1:*"},
    ).start(ready_contracts=1000)
    status = wait_status(daemon, lambda s: s["workers"] == 2 and s["sweeps_completed"] >= 1)
    assert status["local_fleet"]["running"] == 2 and status["rejects"] == 0
    assert status["full_sweep_s"] > 0
    table = daemon.cli("status", "--interval", "0")
    assert table.returncode == 0 and "compute     workers 2" in table.stdout, table.stdout
    # The first sweep may run before the feed's first spots and quotes (BAD_INPUT, NO_QUOTE):
    # wait for the chain to be priced from them.
    deadline = time.monotonic() + 180
    while True:
        result = daemon.cli("snapshot", "SPY", "--json")
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)["rows"]
        priced = [r for r in rows if r["iv"] is not None]
        if len(priced) > 0.8 * len(rows) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(priced) > 0.8 * len(rows), compute_status(daemon)
    for row in priced:
        assert 0.0 <= row["iv"] < 50.0  # far wings of penny quotes do reach high vols
        # (American greeks are finite differences of the engine: deep in the money they
        # overshoot the bounds by up to ~1e-6.)
        assert -1.0 - 1e-5 <= row["delta"] <= 1.0 + 1e-5
        assert row["gamma"] >= -1e-5 and row["vega"] >= -1e-5
        assert row["theo"] is not None and row["greeks_ts"] is not None
        assert (row["delta"] >= 0) == (row["right"] == "C") or abs(row["delta"]) < 1e-9
    # Calls' vols sit around the synthetic smile, not anywhere.
    assert 0.05 < float(np.median([r["iv"] for r in priced])) < 1.0
    # Live: greeks keep being refreshed.
    first = {r["symbol"]: r["greeks_ts"] for r in priced}
    deadline = time.monotonic() + 120
    refreshed = 0
    while not refreshed and time.monotonic() < deadline:
        time.sleep(1)
        again = json.loads(daemon.cli("snapshot", "SPY", "--json").stdout)["rows"]
        refreshed = sum(
            r["greeks_ts"] != first.get(r["symbol"]) for r in again if r["iv"] is not None
        )
    assert refreshed > 0

    # A local worker killed -9 is restarted by the fleet.
    victim = status["local_fleet"]["pids"][0]
    os.kill(victim, signal.SIGKILL)
    restarted = wait_status(
        daemon,
        lambda s: (
            s["local_fleet"]["restarts"] >= 1
            and s["workers"] == 2
            and victim not in s["local_fleet"]["pids"]
        ),
    )
    assert restarted["local_fleet"]["running"] == 2
    assert daemon.stop() == 0


@pytest.fixture
def tcp_daemon(daemon_factory):
    """A daemon without local workers, its dispatcher on a free tcp port; sweeps every second
    in small batches, so that there is always work in flight to kill or stop."""
    daemon = daemon_factory(
        ["--capacity", "200000", "--workers", "0"],
        env={
            "FLASHALPHA_COMPUTE_BIND": "tcp://127.0.0.1:*",
            "FLASHALPHA_COMPUTE_SWEEP_INTERVAL": "1",
            "FLASHALPHA_COMPUTE_MAX_BATCH": "2048",
            "FLASHALPHA_COMPUTE_INITIAL_BATCH": "2048",
            "FLASHALPHA_COMPUTE_HEARTBEAT_INTERVAL": "0.5",
            # 20 s: a worker we SIGSTOP must not be declared dead meanwhile. A killed one is
            # found at once (its connection drops).
            "FLASHALPHA_COMPUTE_HEARTBEAT_LIVENESS": "40",
            "FLASHALPHA_COMPUTE_BATCH_TIMEOUT": "60",
        },
    ).start(ready_contracts=1000)
    status = wait_status(daemon, lambda s: any(e.startswith("tcp://") for e in s["endpoints"]))
    endpoint = next(e for e in status["endpoints"] if e.startswith("tcp://"))
    return daemon, endpoint


def test_remote_workers_join_die_leave_and_garbage_is_refused(tcp_daemon, tmp_path):
    daemon, endpoint = tcp_daemon
    workers: list[subprocess.Popen] = []
    try:
        # A worker started after the daemon, over tcp, joins and gets work.
        first = start_worker(endpoint, tmp_path, "first")
        workers.append(first)
        status = wait_status(
            daemon,
            lambda s: (w := worker_entry(s, first.pid)) is not None and w["completed"] > 0,
        )
        wait_status(daemon, lambda s: s["sweeps_completed"] >= 1)

        # kill -9 a worker while it holds part of a sweep: its batches are requeued and every
        # contract is still priced.
        doomed = start_worker(endpoint, tmp_path, "doomed")
        workers.append(doomed)
        wait_status(daemon, lambda s: worker_entry(s, doomed.pid) is not None)
        os.kill(doomed.pid, signal.SIGSTOP)
        wait_status(daemon, lambda s: (worker_entry(s, doomed.pid) or {}).get("in_flight", 0) > 0)
        killed_ns = time.time_ns()
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
        status = wait_status(daemon, lambda s: s["requeues_by_reason"].get("dead", 0) >= 1)
        assert any(
            d["pid"] == doomed.pid and d["reason"].startswith("dead") for d in status["departed"]
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = all_rows(daemon)
            if (rows["ts_greeks"] > killed_ns).all():
                break
            time.sleep(0.5)
        assert (rows["ts_greeks"] > killed_ns).all(), "some contracts were not repriced"
        assert (rows["pricing_status"] != PricingStatus.UNPRICED).all()

        # SIGTERM while it holds batches: it finishes them and leaves; nothing is lost.
        polite = start_worker(endpoint, tmp_path, "polite")
        workers.append(polite)
        wait_status(daemon, lambda s: worker_entry(s, polite.pid) is not None)
        os.kill(polite.pid, signal.SIGSTOP)
        held = wait_status(
            daemon, lambda s: (worker_entry(s, polite.pid) or {}).get("in_flight", 0) > 0
        )
        entry = worker_entry(held, polite.pid)
        before = {k: held["requeues_by_reason"].get(k, 0) for k in ("dead", "late", "disconnect")}
        os.kill(polite.pid, signal.SIGTERM)
        os.kill(polite.pid, signal.SIGCONT)
        assert polite.wait(30) == 0
        status = wait_status(daemon, lambda s: any(d["pid"] == polite.pid for d in s["departed"]))
        gone = next(d for d in status["departed"] if d["pid"] == polite.pid)
        assert gone["reason"] == "disconnect"
        # Every batch it held was either answered or handed back at its DISCONNECT (those
        # still in transit when it stopped); none was lost to a timeout.
        after = {k: status["requeues_by_reason"].get(k, 0) for k in ("dead", "late", "disconnect")}
        answered = gone["completed"] - entry["completed"]
        assert answered + after["disconnect"] - before["disconnect"] >= entry["in_flight"]
        assert (after["dead"], after["late"]) == (before["dead"], before["late"])

        # Garbage from a peer: rejected, dropped (told DISCONNECT), the daemon goes on.
        rejects = status["rejects"]
        for garbage in ("wrong version", "unknown kind", "wrong lengths", "NaN frames"):
            assert garbage_peer(endpoint, garbage)
            rejects += 1
            wait_status(daemon, lambda s, n=rejects: s["rejects"] == n)
        status = compute_status(daemon)
        assert worker_entry(status, first.pid) is not None  # the honest worker still serves
        assert daemon.process.poll() is None
        priced = status["rows_priced"]
        wait_status(daemon, lambda s: s["rows_priced"] > priced)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.kill()
                worker.wait(10)


def garbage_peer(endpoint: str, garbage: str) -> bool:
    """Say READY, take a batch, answer it with `garbage`; True if told DISCONNECT."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(
            protocol.encode(Kind.READY, protocol.Ready(f"garbage-{garbage}", 0, 1, 1.0))
        )
        batch = _receive(sock, Kind.BATCH)
        rows = batch.header.rows
        outputs = {name: np.full(rows, 0.2, dtype) for name, dtype in protocol.RESULT_COLUMNS}
        outputs["pricing_status"][:] = PricingStatus.OK
        result = [
            bytes(memoryview(f)) for f in protocol.encode_result(batch.header.batch, 1, outputs)
        ]
        if garbage == "wrong version":
            frames = [b"\x07", *result[1:]]
        elif garbage == "unknown kind":
            frames = [b"\x01", b"\x63", msgspec.msgpack.encode({"batch": batch.header.batch})]
        elif garbage == "wrong lengths":
            frames = [*result[:4], result[4][:-3], *result[5:]]
        else:  # NaN frames: NaN greeks on rows it calls OK
            outputs["delta"][:] = np.nan
            frames = protocol.encode_result(batch.header.batch, 1, outputs)
        sock.send_multipart(frames)
        return _receive(sock, Kind.DISCONNECT) is not None
    finally:
        sock.close(0)


def _receive(sock, kind: Kind, timeout: float = 30.0) -> protocol.Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            message = protocol.decode(sock.recv_multipart())
            if message.kind is kind:
                return message
    raise TimeoutError(f"no {kind.name} within {timeout}s")
