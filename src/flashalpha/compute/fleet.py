"""The local fleet of `flashalpha run --workers N`: N `flashalpha worker` child processes.

Each child connects to the dispatcher's private endpoint and exits by itself when the daemon
dies (it watches its parent pid). A child that exits is restarted after a backoff that doubles
from 1 s up to 32 s and resets once a child has run for a minute. On stop, children get
SIGTERM (they finish their batches and say DISCONNECT), then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 32.0
#: A child that ran this long was healthy: its next crash restarts without delay build-up.
HEALTHY_AFTER = 60.0


@dataclass(slots=True)
class Slot:
    index: int
    process: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = BACKOFF_INITIAL
    restart_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None


class LocalFleet:
    def __init__(
        self,
        count: int,
        endpoint: str,
        heartbeat_interval: float,
        threads: int = 1,
        log_level: str = "INFO",
    ) -> None:
        self.count = count
        self.endpoint = endpoint
        self.heartbeat_interval = heartbeat_interval
        self.threads = threads
        self.log_level = log_level
        self.slots = [Slot(i) for i in range(count)]
        self._task: asyncio.Task | None = None
        self._stopping = False

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flashalpha.cli",
            "worker",
            "--connect",
            self.endpoint,
            "--threads",
            str(self.threads),
            "--heartbeat-interval",
            str(self.heartbeat_interval),
            "--parent-pid",
            str(os.getpid()),
            "--log-level",
            self.log_level,
        ]

    def _spawn(self, slot: Slot) -> None:
        env = {**os.environ, "NUMBA_NUM_THREADS": str(self.threads)}
        slot.process = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL)
        slot.started = time.monotonic()
        slot.restart_at = None
        log.info("local worker started slot=%d pid=%d", slot.index, slot.process.pid)

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="fleet")

    async def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            for slot in self.slots:
                process = slot.process
                if process is not None and process.poll() is not None:
                    slot.last_exit = process.returncode
                    ran = now - slot.started
                    if ran >= HEALTHY_AFTER:
                        slot.backoff = BACKOFF_INITIAL
                    log.warning(
                        "local worker exited slot=%d pid=%d code=%s ran=%.1fs; restart in %.0fs",
                        slot.index,
                        process.pid,
                        process.returncode,
                        ran,
                        slot.backoff,
                    )
                    slot.process = None
                    slot.restart_at = now + slot.backoff
                    slot.backoff = min(slot.backoff * 2, BACKOFF_MAX)
                if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                    slot.restarts += 1
                    self._spawn(slot)
            await asyncio.sleep(0.2)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None]

    def running(self) -> int:
        return sum(1 for s in self.slots if s.process is not None and s.process.poll() is None)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every child, wait up to `grace` seconds, SIGKILL the rest."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        processes = [s.process for s in self.slots if s.process is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for process in processes:
            if process.poll() is None:
                log.warning("local worker pid=%d did not stop; killing it", process.pid)
                process.kill()
                process.wait()

    def status(self) -> dict:
        return {
            "target": self.count,
            "running": self.running(),
            "pids": self.pids(),
            "restarts": sum(s.restarts for s in self.slots),
            "last_exit_codes": [s.last_exit for s in self.slots if s.last_exit is not None],
        }
