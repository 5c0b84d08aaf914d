"""CurveZMQ end to end: a real daemon with `compute.curve_*` set, real worker processes.

Its local fleet (plain ipc) prices as before; an authorized remote worker joins over tcp and
prices; a worker with an unknown key and a plaintext one are refused at the handshake, say so
in their logs, and are counted in `flashalpha status`; bad settings stop the daemon at start
with the path named.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from flashalpha.compute.curve import create_keys

from .conftest import FLASHALPHA
from .test_compute import wait_status, worker_entry

pytestmark = pytest.mark.integration

WORKER = [sys.executable, "-m", "flashalpha.cli", "worker"]


@pytest.fixture
def keys(tmp_path):
    root = tmp_path / "keys"
    create_keys(root, ["pod", "stranger"])
    (root / "authorized" / "stranger.key").unlink()
    return root


def curve_env(keys) -> dict:
    return {
        "FLASHALPHA_COMPUTE_BIND": "tcp://127.0.0.1:*",
        "FLASHALPHA_COMPUTE_CURVE_SECRET_KEY": str(keys / "server.key_secret"),
        "FLASHALPHA_COMPUTE_CURVE_AUTHORIZED_KEYS": str(keys / "authorized"),
        "FLASHALPHA_COMPUTE_SWEEP_INTERVAL": "2",
        "FLASHALPHA_COMPUTE_HEARTBEAT_INTERVAL": "0.5",
        "FLASHALPHA_COMPUTE_HEARTBEAT_LIVENESS": "20",
    }


def start_worker(endpoint: str, log_path, env: dict | None = None) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [*WORKER, "--connect", endpoint, "--heartbeat-interval", "0.5"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def wait_log(path, text: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    pytest.fail(f"'{text}' never appeared in {path}:\n{path.read_text(errors='replace')}")


@pytest.mark.timeout(900)
def test_curve_lets_authorized_workers_price_and_refuses_the_others(daemon_factory, keys, tmp_path):
    daemon = daemon_factory(["--capacity", "200000", "--workers", "1"], env=curve_env(keys)).start(
        ready_contracts=1000
    )
    status = wait_status(
        daemon,
        lambda s: s["workers"] == 1 and any(e.startswith("tcp://") for e in s["endpoints"]),
        timeout=300,
    )
    endpoint = next(e for e in status["endpoints"] if e.startswith("tcp://"))
    assert status["curve"]["authorized_keys"] == 1
    workers = []
    try:
        # The keys by environment, as a pod gets them.
        pod = start_worker(
            endpoint,
            tmp_path / "pod.log",
            {
                "FLASHALPHA_WORKER_CURVE_SERVER_KEY": str(keys / "server.key"),
                "FLASHALPHA_WORKER_CURVE_KEY": str(keys / "pod.key_secret"),
            },
        )
        stranger = start_worker(
            endpoint,
            tmp_path / "stranger.log",
            {
                "FLASHALPHA_WORKER_CURVE_SERVER_KEY": str(keys / "server.key"),
                "FLASHALPHA_WORKER_CURVE_KEY": str(keys / "stranger.key_secret"),
            },
        )
        plain = start_worker(endpoint, tmp_path / "plain.log")
        workers += [pod, stranger, plain]

        # The authorized pod and the local (ipc) worker both price.
        status = wait_status(
            daemon,
            lambda s: (w := worker_entry(s, pod.pid)) is not None and w["completed"] > 0,
            timeout=300,  # generous: kernels compile first when numba's cache does not match
        )
        assert worker_entry(status, pod.pid)["key"] == "pod"
        local = status["local_fleet"]["pids"][0]
        wait_status(
            daemon,
            lambda s: (w := worker_entry(s, local)) is not None and w["completed"] > 0,
            timeout=300,
        )

        # The others are refused at the handshake: never READY, they log why, it is counted.
        wait_log(tmp_path / "stranger.log", "does not authorize this worker's CURVE key")
        wait_log(tmp_path / "plain.log", "it requires CurveZMQ")
        status = wait_status(
            daemon,
            lambda s: (
                s["handshake_failures_by_reason"]["auth"] >= 1
                and s["handshake_failures"] >= 2
                and s["curve"]["denied_keys"] >= 1
            ),
        )
        assert worker_entry(status, stranger.pid) is None
        assert worker_entry(status, plain.pid) is None
        assert not any(d["pid"] in (stranger.pid, plain.pid) for d in status["departed"])
        table = daemon.cli("status", "--interval", "0").stdout
        assert "compute     security curve  authorized keys 1" in table, table

        # iv and greeks in the state, from the fleet behind CURVE.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            result = daemon.cli("snapshot", "SPY", "--json")
            assert result.returncode == 0, result.stderr
            rows = json.loads(result.stdout)["rows"]
            if sum(r["iv"] is not None for r in rows) > 0.8 * len(rows):
                break
            time.sleep(1)
        priced = [r for r in rows if r["iv"] is not None]
        assert len(priced) > 0.8 * len(rows)
        assert all(r["delta"] is not None and r["greeks_ts"] is not None for r in priced)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
    assert daemon.stop() == 0


def test_bad_curve_settings_stop_the_daemon_at_start_naming_them(daemon_factory, keys, tmp_path):
    daemon = daemon_factory(["--workers", "0"])
    missing = tmp_path / "absent"
    for env, named in (
        (
            {"FLASHALPHA_COMPUTE_CURVE_SECRET_KEY": str(keys / "server.key_secret")},
            "compute.curve_authorized_keys is not",
        ),
        (
            {**curve_env(keys), "FLASHALPHA_COMPUTE_CURVE_AUTHORIZED_KEYS": str(missing)},
            str(missing),
        ),
        ({**curve_env(keys), "FLASHALPHA_COMPUTE_CURVE_SECRET_KEY": str(missing)}, str(missing)),
    ):
        result = subprocess.run(
            [FLASHALPHA, "run", "--workers", "0", "--http", "127.0.0.1:0"],
            env={**daemon.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr[-2000:]
        assert named in result.stderr, result.stderr[-2000:]
