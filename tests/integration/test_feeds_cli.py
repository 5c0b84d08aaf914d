"""As a user tries it: `flashalpha fake-feed` in one terminal, `flashalpha run` in another."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import free_port

pytestmark = pytest.mark.integration

FLASHALPHA = str(Path(sys.executable).with_name("flashalpha"))


class FakeFeedProcess:
    def __init__(self, provider: str, port: int, log: Path):
        self.provider, self.port, self.log_path = provider, port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> FakeFeedProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill()
        self.process = subprocess.Popen(
            [FLASHALPHA, "fake-feed", self.provider, "--port", str(self.port), "--scripted",
             "--underlyings", "SPY"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while "serving" not in self.log_path.read_text():
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "fake-feed did not start"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """kill -9: the server vanishes without closing its connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
            self._log.close()


def status(daemon) -> dict:
    result = daemon.cli("status", "--json", "--interval", "0.2")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["daemon"]["feed"]


def wait_for_status(daemon, condition, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not condition(feed := status(daemon)):
        assert time.monotonic() < deadline, feed
        time.sleep(0.2)
    return feed


@pytest.mark.parametrize("provider", ["polygon", "thetadata"])
def test_fake_feed_and_run_as_a_user_would(daemon_factory, tmp_path, provider):
    port = free_port()
    fake = FakeFeedProcess(provider, port, tmp_path / "fake.log").start()
    try:
        if provider == "polygon":
            args = ["--polygon-url", f"ws://127.0.0.1:{port}/options",
                    "--polygon-rest-url", f"http://127.0.0.1:{port}"]  # fmt: skip
            env = {"POLYGON_API_KEY": "demo-key", "FLASHALPHA_POLYGON_BACKOFF_MAX": "1",
                   "FLASHALPHA_POLYGON_HEALTHY_AFTER": "1"}  # fmt: skip
        else:
            args = ["--thetadata-url", f"ws://127.0.0.1:{port}/v1/events"]
            env = {"FLASHALPHA_THETADATA_BACKOFF_MAX": "1",
                   "FLASHALPHA_THETADATA_HEALTHY_AFTER": "1"}  # fmt: skip
        daemon = daemon_factory(
            ["--feed", provider, "--underlyings", "SPY", "--workers", "1", "--capacity", "20000",
             *args],
            env=env,
        ).start(ready_contracts=66)  # fmt: skip
        daemon.wait_until(lambda r: r.counters()["quotes"] > 200, timeout=30)
        # The status document is rewritten every heartbeat: it may still show the link
        # subscribing when the first quotes are already in the state.
        feed = wait_for_status(daemon, lambda feed: feed["healthy"], timeout=15)
        assert feed["kind"] == provider and feed["healthy"]
        assert feed["links"][0]["state"] == "streaming"
        assert "demo-key" not in daemon.log()

        table = daemon.cli("status", "--interval", "0.2")
        assert "streaming" in table.stdout and "healthy True" in table.stdout

        fake.kill()  # a killed server: the daemon keeps running and retries
        wait_for_status(daemon, lambda feed: not feed["healthy"], timeout=20)
        fake = FakeFeedProcess(provider, port, tmp_path / "fake2.log").start()
        feed = wait_for_status(
            daemon,
            lambda feed: (
                feed["healthy"]
                and feed["links"][0]["sessions"] >= 2
                and feed["links"][0]["backfills"] >= 2
            ),
            timeout=30,
        )
        assert feed["links"][0]["reconnects"] >= 1
        quotes = daemon.cli("status", "--json").stdout
        assert json.loads(quotes)["totals"]["quotes"] > 0
        snapshot = daemon.cli("snapshot", "SPY", "--json")
        assert snapshot.returncode == 0 and len(json.loads(snapshot.stdout)["rows"]) == 66
        assert daemon.stop() == 0
    finally:
        fake.kill()
