"""CurveZMQ on the dispatcher's tcp endpoint: real sockets, real `flashalpha worker` processes.

An authorized worker joins; one with an unknown key and a plaintext one are refused at the
handshake (never READY at the dispatcher), log why, and are counted; a key added to the
authorized directory lets its worker in without a restart, a key removed drops it; the plain
ipc endpoint of the local fleet is unaffected, whichever was bound first.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from flashalpha.compute import protocol
from flashalpha.compute.curve import AuthorizedKeys, ClientKeys, create_keys
from flashalpha.compute.dispatcher import Dispatcher
from flashalpha.compute.protocol import Kind
from flashalpha.config import ComputeConfig, ConfigError

WORKER = [sys.executable, "-m", "flashalpha.cli", "worker"]


@pytest.fixture
def keys(tmp_path) -> Path:
    """server.key[_secret], good.key[_secret] (authorized), stranger.key[_secret] (not)."""
    root = tmp_path / "keys"
    create_keys(root, ["good", "stranger"])
    (root / "authorized" / "stranger.key").unlink()
    return root


def curve_config(keys: Path, **overrides) -> ComputeConfig:
    return ComputeConfig(
        heartbeat_interval=0.2,
        heartbeat_liveness=25,  # 5 s: generous for a loaded machine
        sweep_interval=3600,
        curve_secret_key=str(keys / "server.key_secret"),
        curve_authorized_keys=str(keys / "authorized"),
        **overrides,
    )


async def wait_for(condition, timeout: float = 240.0, what: str = "condition") -> None:
    """Poll `condition`. The deadline is generous: a worker compiles its kernels before it
    connects when numba's cache does not match, which takes a minute on a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.05)


def start_worker(endpoint: str, log: Path, *curve: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*WORKER, "--connect", endpoint, "--heartbeat-interval", "0.2", *curve],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def curve_args(keys: Path, name: str) -> list[str]:
    return [
        "--curve-server-key",
        str(keys / "server.key"),
        "--curve-key",
        f"{keys}/{name}.key_secret",
    ]


async def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait()


def worker_pids(dispatcher: Dispatcher) -> set[int]:
    return {w.pid for w in dispatcher.workers.values()}


def plain_peer(endpoint: str) -> zmq.Socket:
    """A keyless DEALER, connected. On a CURVE endpoint its handshake is refused, and libzmq
    may drop its pipe until it reconnects: nothing can be sent then, nor needs to be."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 10_000)  # a send that cannot queue fails instead of hanging
    sock.connect(endpoint)
    return sock


def plain_peer_ready(endpoint: str, name: str) -> zmq.Socket:
    """A keyless DEALER that says READY on a plain endpoint (the send only queues)."""
    sock = plain_peer(endpoint)
    sock.send_multipart(protocol.encode(Kind.READY, protocol.Ready(name, 4242, 1, 0.2)))
    return sock


@pytest.fixture
async def curve_dispatcher(market_state, keys):
    """A running dispatcher: the plain ipc endpoint bound first (as the service does), then
    the CURVE tcp endpoint."""
    dispatcher = Dispatcher(curve_config(keys), market_state, lambda *a: None)
    ipc = dispatcher.bind(f"ipc://@flashalpha-test-curve-{id(dispatcher):x}", secure=False)
    tcp = dispatcher.bind("tcp://127.0.0.1:*")
    task = asyncio.get_running_loop().create_task(dispatcher.run())
    yield dispatcher, ipc, tcp
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    dispatcher.close()


@pytest.mark.integration
@pytest.mark.timeout(900)
async def test_only_authorized_workers_get_in_and_the_refused_say_why(
    curve_dispatcher, keys, tmp_path
):
    dispatcher, ipc, tcp = curve_dispatcher
    assert dispatcher.status()["curve"]["authorized_keys"] == 1
    processes = []
    try:
        good = start_worker(tcp, tmp_path / "good.log", *curve_args(keys, "good"))
        processes.append(good)
        await wait_for(lambda: good.pid in worker_pids(dispatcher), what="good worker READY")
        # (Started once the first one compiled the kernels, if numba's cache was stale.)
        stranger = start_worker(tcp, tmp_path / "stranger.log", *curve_args(keys, "stranger"))
        plain = start_worker(tcp, tmp_path / "plain.log")
        processes += [stranger, plain]
        assert next(iter(dispatcher.workers.values())).key_name == "good"

        # The local fleet's endpoint is still plain (NULL): a keyless peer gets in there.
        local = plain_peer_ready(ipc, "local")
        try:
            await wait_for(lambda: 4242 in worker_pids(dispatcher), what="ipc peer READY")
        finally:
            local.close(0)

        def logged(path: Path, text: str) -> bool:
            return text in path.read_text(errors="replace")

        await wait_for(
            lambda: logged(tmp_path / "stranger.log", "does not authorize this worker's CURVE key"),
            what="stranger's log",
        )
        await wait_for(
            lambda: logged(tmp_path / "plain.log", "it requires CurveZMQ"), what="plain's log"
        )
        # (The dispatcher reads its monitor on its next turn.)
        await wait_for(
            lambda: (
                dispatcher.handshake_failures["auth"] >= 1
                and sum(dispatcher.handshake_failures.values()) >= 2
            ),
            what="handshake failures counted",
        )
        status = dispatcher.status()
        assert status["curve"]["denied_keys"] >= 1
        stranger_key = ClientKeys.load(keys / "server.key", keys / "stranger.key_secret").public
        assert stranger_key.decode() in status["curve"]["last_denied_key"]
        assert not {stranger.pid, plain.pid} & worker_pids(dispatcher)
        assert stranger.poll() is None and plain.poll() is None  # they retry, with backoff

        # Its key added to the directory, the refused worker gets in at its next attempt:
        # no restart of anything.
        shutil.copy(keys / "stranger.key", keys / "authorized" / "stranger.key")
        await wait_for(lambda: stranger.pid in worker_pids(dispatcher), what="stranger READY")
        assert plain.pid not in worker_pids(dispatcher)

        # Its key removed, the worker is dropped, and cannot come back.
        (keys / "authorized" / "stranger.key").unlink()
        await wait_for(lambda: stranger.pid not in worker_pids(dispatcher), what="revocation")
        assert any(d["reason"] == "CURVE key no longer authorized" for d in dispatcher.departed)
        denied = dispatcher.curve_server.authorized.denied
        await wait_for(
            lambda: dispatcher.curve_server.authorized.denied > denied, what="stranger refused"
        )
        assert stranger.pid not in worker_pids(dispatcher)
        assert good.pid in worker_pids(dispatcher)
    finally:
        for process in processes:
            await stop(process)


async def test_the_plain_endpoint_stays_plain_whichever_is_bound_first(market_state, keys):
    """libzmq copies the security options into each endpoint when it is bound."""
    dispatcher = Dispatcher(curve_config(keys), market_state, lambda *a: None)
    tcp = dispatcher.bind("tcp://127.0.0.1:*")
    ipc = dispatcher.bind(f"ipc://@flashalpha-test-order-{id(dispatcher):x}", secure=False)
    task = asyncio.get_running_loop().create_task(dispatcher.run())
    peers = []
    try:
        peers.append(plain_peer(tcp))  # its handshake alone is refused
        # (A plaintext peer on a CURVE endpoint fails as `protocol` or `no_detail`.)
        await wait_for(lambda: sum(dispatcher.handshake_failures.values()) >= 1, what="refusal")
        assert not dispatcher.workers
        peers.append(plain_peer_ready(ipc, "plain-over-ipc"))
        await wait_for(lambda: len(dispatcher.workers) == 1, what="ipc peer READY")
        assert next(iter(dispatcher.workers.values())).name == "plain-over-ipc"
    finally:
        for peer in peers:
            peer.close(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        dispatcher.close()


def test_bad_certificates_fail_at_start_naming_the_path(market_state, keys, tmp_path):
    missing = tmp_path / "nowhere.key_secret"
    cases = [
        ({"curve_secret_key": str(missing)}, str(missing)),
        # The public half where the secret one belongs.
        ({"curve_secret_key": str(keys / "server.key")}, "holds no secret-key"),
        ({"curve_authorized_keys": str(tmp_path / "no-dir")}, str(tmp_path / "no-dir")),
    ]
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "bad.key").write_text("not a certificate\n")
    cases.append(({"curve_authorized_keys": str(garbage)}, str(garbage / "bad.key")))
    base = curve_config(keys)
    for change, named in cases:
        config = ComputeConfig(
            curve_secret_key=change.get("curve_secret_key", base.curve_secret_key),
            curve_authorized_keys=change.get("curve_authorized_keys", base.curve_authorized_keys),
        )
        with pytest.raises(ConfigError) as raised:
            Dispatcher(config, market_state, lambda *a: None)
        assert named in str(raised.value)


def test_a_bad_certificate_added_later_is_skipped_not_fatal(keys):
    authorized = AuthorizedKeys(keys / "authorized")
    authorized.load_strict()
    good = ClientKeys.load(keys / "server.key", keys / "good.key_secret").public
    assert authorized.callback("*", good)
    (keys / "authorized" / "broken.key").write_text("garbage\n")
    assert authorized.callback("*", good)
    assert "broken.key" in authorized.errors[0]
    shutil.rmtree(keys / "authorized")
    # Fail closed: a directory that is gone authorizes nobody.
    assert not authorized.callback("*", good)


def test_worker_options_are_checked_by_name(keys, tmp_path):
    endpoint = ["--connect", "tcp://127.0.0.1:9"]
    for argv, fragment in (
        (["--curve-key", str(keys / "good.key_secret")], "--curve-server-key is missing"),
        (
            ["--curve-server-key", str(keys / "server.key"), "--curve-key", str(tmp_path / "x")],
            str(tmp_path / "x"),
        ),
        (
            ["--curve-server-key", str(keys / "server.key"), "--curve-key", str(keys / "good.key")],
            "holds no secret-key",
        ),
    ):
        result = subprocess.run(
            [*WORKER, *endpoint, *argv], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and fragment in result.stderr, result.stderr


def test_compute_keys_writes_certificates_and_says_how_to_use_them(tmp_path):
    directory = tmp_path / "curve"
    command = [sys.executable, "-m", "flashalpha.cli", "compute-keys", str(directory)]
    result = subprocess.run(
        [*command, "--worker", "pod"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "curve_secret_key" in result.stdout and "--curve-server-key" in result.stdout
    for name in ("server.key", "server.key_secret", "pod.key", "pod.key_secret"):
        assert (directory / name).is_file()
    assert (directory / "authorized" / "pod.key").read_bytes() == (
        directory / "pod.key"
    ).read_bytes()
    assert (directory / "pod.key_secret").stat().st_mode & 0o077 == 0
    server = (directory / "server.key_secret").read_bytes()
    # Another worker later: the server's keys are kept, an existing name is refused.
    again = subprocess.run(
        [*command, "--worker", "pod2"], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and (directory / "server.key_secret").read_bytes() == server
    twice = subprocess.run(
        [*command, "--worker", "pod"], capture_output=True, text=True, timeout=60
    )
    assert twice.returncode == 2 and "pod.key" in twice.stderr
