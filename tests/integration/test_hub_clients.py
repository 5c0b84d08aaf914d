"""Real SignalR clients against the real daemon (`flashalpha run`, synthetic market).

pysignalr (PyPI) and the official `@microsoft/signalr` client under Node (JSON and MessagePack,
negotiated and direct) subscribe to `chain:SPY`, get the snapshot, then `update` messages whose
seq only grows. A client that stops reading is coalesced, then closed, while the others keep
receiving.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from tests.api.hubclients import PySignalRClient, RawHubClient

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).with_name("node")
DEMO = ["--capacity", "200000", "--workers", "0"]
#: Small per-connection limits so that a client that stops reading is caught in seconds.
HUB_ENV = {
    "FLASHALPHA_HUB_SEND_BUFFER_BYTES": "262144",
    "FLASHALPHA_HUB_SLOW_CLIENT_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.integration.conftest import DaemonProcess

    name = f"fa-test-hub-{uuid.uuid4().hex[:8]}"
    daemon = DaemonProcess(tmp_path_factory.mktemp("hub"), name, DEMO, env=HUB_ENV)
    daemon.start(ready_contracts=50_000)
    yield daemon
    assert daemon.stop() == 0, daemon.log()


@pytest.fixture(scope="session")
def node_client() -> Path:
    """The Node client's directory with its dependencies installed (`npm ci`)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the official SignalR client test")
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return NODE_DIR


def metrics(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(\S+) ([0-9.e+-]+)$", text, re.MULTILINE)
    }


def assert_growing(snapshot_seq: int, seqs: list[int]) -> None:
    """Past the snapshot, never backwards, and moving (docs/PROTOCOL.md: two updates may share
    a seq when a change reaches the hub just after it read an unchanged state)."""
    assert seqs, "no updates"
    assert seqs[0] > snapshot_seq
    assert all(a <= b for a, b in itertools.pairwise(seqs)), seqs
    assert len(seqs) < 3 or seqs[-1] > seqs[0], seqs


async def test_pysignalr_snapshot_then_growing_updates(live):
    async with PySignalRClient(live.url, max_size=None) as client:
        snapshot = (await client.invoke("Subscribe", "chain:SPY", timeout=30)).result
        assert snapshot["topic"] == "chain:SPY" and len(snapshot["rows"]) > 1000
        assert snapshot["underlying"]["symbol"] == "SPY" and snapshot["underlying"]["spot"] > 0
        symbols = {r["symbol"] for r in snapshot["rows"]}
        updates = await client.wait_updates(8, timeout=60)
    assert_growing(snapshot["seq"], [u["seq"] for u in updates])
    rows = [r for u in updates for r in u["rows"]]
    assert rows and {r["symbol"] for r in rows} <= symbols
    for update in updates:  # conflated: one row per contract per update
        assert len({r["symbol"] for r in update["rows"]}) == len(update["rows"])
        assert all(r["seq"] <= update["seq"] for r in update["rows"])


@pytest.mark.parametrize(
    "flags",
    [[], ["--msgpack"], ["--skip-negotiation"]],
    ids=["json", "messagepack", "skip-negotiation"],
)
def test_official_signalr_client_under_node(live, node_client, flags):
    result = subprocess.run(
        ["node", "hub_client.js", live.url, "chain:SPY", "6", *flags],
        cwd=node_client,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + live.log()[-2000:]
    report = json.loads(result.stdout)
    snapshot = report["snapshot"]
    assert snapshot["topic"] == "chain:SPY" and snapshot["rows"] > 1000
    assert snapshot["first"]["symbol"].startswith("O:SPY") and snapshot["underlying"]["spot"] > 0
    assert_growing(snapshot["seq"], [u["seq"] for u in report["updates"]])
    assert all(u["spot"] > 0 for u in report["updates"])
    assert report["protocol"] == ("messagepack" if "--msgpack" in flags else "json")
    if "--skip-negotiation" not in flags:
        assert report["connectionId"]  # set by negotiate


async def test_slow_client_is_coalesced_then_closed_while_others_keep_receiving(live):
    port = int(live.url.rsplit(":", 1)[1])
    before = metrics(live.url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    slow = await RawHubClient.connect(live.url.replace("http", "ws"), sock=sock, max_queue=1)
    await slow.invoke("Subscribe", "chain:SPY", timeout=30)  # then it reads nothing more
    async with PySignalRClient(live.url, max_size=None) as fast:
        snapshot = (await fast.invoke("Subscribe", "chain:SPY", timeout=30)).result
        closed = before.get("flashalpha_hub_slow_closes_total", 0)
        for _ in range(120):
            await asyncio.sleep(0.5)
            now = metrics(live.url)
            if now["flashalpha_hub_slow_closes_total"] > closed:
                break
        assert now["flashalpha_hub_slow_closes_total"] == closed + 1
        assert now["flashalpha_hub_conflated_total"] > before["flashalpha_hub_conflated_total"]
        # The fast client kept receiving through it all, and still does.
        count = len(fast.updates)
        updates = await fast.wait_updates(count + 5, timeout=60)
        assert_growing(snapshot["seq"], [u["seq"] for u in updates])
    # Reading again, the slow client finds its (coalesced) updates, then the Close message.
    seen = []
    while (message := await slow.next(timeout=30))["type"] != 7:
        seen.append(message)
    assert "read nothing" in message["error"] and message["allowReconnect"] is True
    seqs = [m["arguments"][0]["seq"] for m in seen if m.get("type") == 1]
    assert seqs == sorted(seqs)
    with pytest.raises(websockets.ConnectionClosed):
        await slow.websocket.recv()
    # Reconnecting: a new snapshot, and updates continue from its seq.
    async with PySignalRClient(live.url, max_size=None) as again:
        resumed = (await again.invoke("Subscribe", "chain:SPY", timeout=30)).result
        assert resumed["seq"] > snapshot["seq"]
        assert_growing(resumed["seq"], [u["seq"] for u in await again.wait_updates(2)])
