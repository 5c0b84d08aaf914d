"""`flashalpha worker` as a real process: health probes, reconnect backoff, orphan exit."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

WORKER = [sys.executable, "-m", "flashalpha.cli", "worker"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_probe(port: int, path: str, code: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = probe(port, path)
            if status == code:
                return body
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{path} never answered {code}")


@pytest.mark.integration
def test_probes_follow_the_connection_and_backoff_doubles(tmp_path):
    """No dispatcher: alive but not ready, and reconnecting 1 s, 2 s, ... apart."""
    port = free_port()
    dead_end = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                *WORKER,
                "--connect",
                dead_end,
                "--heartbeat-interval",
                "0.05",
                "--liveness",
                "2",
                "--health",
                f"127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        body = wait_probe(port, "/healthz", 200)
        assert body["connected"] is False
        assert probe(port, "/readyz")[0] == 503
        assert probe(port, "/nowhere")[0] == 404
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "reconnecting in 2s" not in log.read_text():
            time.sleep(0.1)
        text = log.read_text()
        assert text.index("reconnecting in 1s") < text.index("reconnecting in 2s")
    finally:
        process.terminate()
        assert process.wait(30) == 0


@pytest.mark.integration
async def test_ready_while_a_dispatcher_answers(market_state):
    import asyncio

    from flashalpha.compute.dispatcher import Dispatcher
    from flashalpha.config import ComputeConfig

    dispatcher = Dispatcher(ComputeConfig(heartbeat_interval=0.1), market_state, lambda *a: None)
    endpoint = dispatcher.bind("tcp://127.0.0.1:*")
    task = asyncio.get_running_loop().create_task(dispatcher.run())
    port = free_port()
    process = subprocess.Popen(
        [
            *WORKER,
            "--connect",
            endpoint,
            "--heartbeat-interval",
            "0.1",
            "--health",
            f"127.0.0.1:{port}",
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            try:
                status, body = await asyncio.to_thread(probe, port, "/readyz")
            except (urllib.error.URLError, ConnectionError):
                continue
            if status == 200:
                break
        assert status == 200 and body["connected"] is True
        assert len(dispatcher.workers) == 1
    finally:
        process.terminate()
        while process.poll() is None:
            await asyncio.sleep(0.05)
        assert process.returncode == 0
        await asyncio.sleep(0.2)
        assert dispatcher.departed[-1]["reason"] == "disconnect"
        task.cancel()
        dispatcher.close()


def test_an_orphaned_local_worker_exits():
    """A worker whose daemon (--parent-pid) is gone stops by itself."""
    process = subprocess.run(
        [*WORKER, "--connect", "tcp://127.0.0.1:9", "--parent-pid", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0
    assert "is gone; exiting" in process.stderr


def test_bad_arguments_are_refused_by_name():
    for argv, fragment in (
        (["--connect", "http://x:1"], "expected tcp://HOST:PORT, got 'http://x:1'"),
        (["--connect", "tcp://x"], "expected tcp://HOST:PORT, got 'tcp://x'"),
        (["--connect", "tcp://x:1", "--credit", "0"], "expected a positive integer, got '0'"),
        (["--connect", "tcp://x:1", "--heartbeat-interval", "0"], "--heartbeat-interval 0.0"),
    ):
        result = subprocess.run([*WORKER, *argv], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
