"""Start the real daemon as a subprocess, each test with its own shared memory and data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flashalpha.state.reader import StateReader
from flashalpha.state.segment import StateUnavailableError

FLASHALPHA = str(Path(sys.executable).with_name("flashalpha"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaemonProcess:
    """One `flashalpha run` subprocess; logs go to `<tmp>/daemon.log`."""

    def __init__(self, tmp_path: Path, shm_name: str, args: list[str], env: dict | None = None):
        self.tmp_path = tmp_path
        self.shm_name = shm_name
        self.data_dir = tmp_path / "data"
        self.http_port = free_port()
        self.log_path = tmp_path / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self.env = {
            **os.environ,
            "FLASHALPHA_STATE_SHM_NAME": shm_name,
            "FLASHALPHA_DATA_DIR": str(self.data_dir),
            # Parallel test daemons must not contend for the default broker port.
            "FLASHALPHA_COMPUTE_BIND": "tcp://127.0.0.1:*",
            **(env or {}),
        }
        self.args = args
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run another `flashalpha` command against this daemon's segment."""
        return subprocess.run(
            [FLASHALPHA, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, ready_contracts: int = 1, timeout: float = 120) -> DaemonProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [FLASHALPHA, "run", "--http", f"127.0.0.1:{self.http_port}", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_until(lambda r: r.count >= ready_contracts and r.seq > 0, timeout)
        return self

    def wait_until(self, predicate, timeout: float = 60):
        """Poll the daemon's state until `predicate(reader)` is true; fail with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                with StateReader.attach(self.shm_name) as reader:
                    if reader.writer_pid == self.process.pid and predicate(reader):
                        return
            except StateUnavailableError:
                pass
            time.sleep(0.1)
        pytest.fail(f"daemon not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        """kill -9: no cleanup runs, the segment stays behind."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        # The local fleet's workers (if any) exit on their own when the daemon is gone.

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def daemon_factory(tmp_path, shm_name):
    """Make daemons: `daemon_factory(args, env=...)`; killed at teardown if still running."""
    made: list[DaemonProcess] = []

    def make(args: list[str] | None = None, env: dict | None = None, name: str | None = None):
        daemon = DaemonProcess(tmp_path, name or shm_name, args or [], env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.__exit__()


@pytest.fixture(scope="session", autouse=True)
def _pricing_kernels_compiled(compiled_pricing_kernels):
    """Worker processes start from numba's cache (see tests/conftest.py)."""
