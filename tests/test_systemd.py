"""sd_notify spoken by hand, the daemon speaking it under a test NOTIFY_SOCKET, and the unit
files checked by `systemd-analyze verify` where it exists."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flashalpha import systemd

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "systemd").glob("*.service"))
FLASHALPHA = str(Path(sys.executable).with_name("flashalpha"))


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(0.5)
    yield sock, str(path)
    sock.close()


def receive_all(sock, until, timeout: float) -> list[str]:
    """Datagrams until one contains `until` (or the timeout)."""
    messages, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if until in messages[-1]:
            break
    return messages


def test_notify_sends_one_datagram_of_assignments(notify_socket, monkeypatch):
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify("READY=1", "STATUS=up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_notify_reaches_an_abstract_socket(monkeypatch):
    name = f"fa-notify-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_outside_systemd_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not systemd.notify("READY=1")


def test_watchdog_interval_is_half_the_timeout_for_this_process(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0


@pytest.mark.integration
@pytest.mark.usefixtures("compiled_pricing_kernels")  # its local worker starts from the cache
def test_daemon_speaks_sd_notify(notify_socket, tmp_path, shm_name):
    sock, path = notify_socket
    env = {
        **os.environ,
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": "400000",  # WATCHDOG=1 every 0.2 s
        "FLASHALPHA_STATE_SHM_NAME": shm_name,
        "FLASHALPHA_DATA_DIR": str(tmp_path / "data"),
        "FLASHALPHA_COMPUTE_BIND": "tcp://127.0.0.1:*",
    }
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [FLASHALPHA, "run", "--capacity", "200000", "--workers", "1", "--http", "127.0.0.1:0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started = receive_all(sock, "READY=1", timeout=120)
        assert started and "READY=1" in started[-1], (tmp_path / "daemon.log").read_text()
        ready = dict(line.split("=", 1) for line in started[-1].splitlines())
        assert ready["MAINPID"] == str(process.pid)
        assert "contracts" in ready["STATUS"]
        # The local fleet was up before READY=1: the log says so, in this order.
        text = (tmp_path / "daemon.log").read_text()
        assert "local fleet ready workers=1" in text
        pings = [m for m in receive_all(sock, "never", timeout=1.5) if m == "WATCHDOG=1"]
        assert len(pings) >= 3
        process.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in receive_all(sock, "STOPPING=1", timeout=30)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_units_exist_and_declare_what_operations_rely_on():
    names = [unit.name for unit in UNITS]
    assert names == ["flashalpha-worker@.service", "flashalpha.service"]
    daemon = (ROOT / "systemd" / "flashalpha.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "StateDirectory=flashalpha",
        "Environment=FLASHALPHA_DATA_DIR=/var/lib/flashalpha",
        "ExecStart=/usr/local/bin/flashalpha run",
    ):
        assert line in daemon, line
    assert "MemoryDenyWriteExecute=yes" not in daemon  # numba needs W+X pages
    worker = (ROOT / "systemd" / "flashalpha-worker@.service").read_text()
    assert "ExecStart=/usr/local/bin/flashalpha worker --connect ${FLASHALPHA_BROKER}" in worker


def test_unit_commands_parse_with_the_real_cli():
    from flashalpha.cli import build_parser

    parser = build_parser()
    for unit in UNITS:
        exec_start = next(
            line.split("=", 1)[1]
            for line in unit.read_text().splitlines()
            if line.startswith("ExecStart=")
        )
        argv = exec_start.split()[1:]
        argv = [
            {
                "${FLASHALPHA_BROKER}": "tcp://127.0.0.1:5557",
                "${FLASHALPHA_WORKER_THREADS}": "1",
            }.get(a, a)
            for a in argv
        ]
        args = parser.parse_args(argv)
        assert args.command in ("run", "worker")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    # verify checks that ExecStart's binary exists: point it at this environment's.
    for unit in UNITS:
        text = unit.read_text().replace("/usr/local/bin/flashalpha", FLASHALPHA)
        (tmp_path / unit.name).write_text(text)
    instance = tmp_path / "flashalpha-worker@1.service"
    instance.write_text((tmp_path / "flashalpha-worker@.service").read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "flashalpha.service"), str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = [
        line for line in result.stderr.splitlines() if str(tmp_path) in line or "flashalpha" in line
    ]
    assert result.returncode == 0 and not ours, result.stderr
