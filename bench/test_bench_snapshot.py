"""Wall time of `flashalpha snapshot SPY --json` against a running demo daemon.

A new process maps the segment, finds SPY's rows, copies them consistently and prints JSON:
what a script polling the chain pays per call. Run:
`.venv/bin/python -m pytest bench/test_bench_snapshot.py --benchmark-only`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from flashalpha.state.reader import StateReader
from flashalpha.state.segment import StateUnavailableError

FLASHALPHA = str(Path(sys.executable).with_name("flashalpha"))


@pytest.fixture(scope="module")
def demo_daemon():
    name = f"fa-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "FLASHALPHA_STATE_SHM_NAME": name, "FLASHALPHA_DATA_DIR": data_dir}
        process = subprocess.Popen(
            [FLASHALPHA, "run", "--capacity", "200000", "--workers", "0", "--http", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with StateReader.attach(name) as reader:
                    if reader.writer_pid == process.pid and reader.seq > 10:
                        break
            except StateUnavailableError:
                pass
            time.sleep(0.2)
        else:
            process.kill()
            pytest.fail("demo daemon did not start")
        yield env
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_snapshot_spy_json_wall_time(benchmark, demo_daemon):
    def snapshot():
        result = subprocess.run(
            [FLASHALPHA, "snapshot", "SPY", "--json"], env=demo_daemon, capture_output=True
        )
        assert result.returncode == 0, result.stderr
        return len(result.stdout)

    size = benchmark.pedantic(snapshot, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info["json_bytes"] = size
