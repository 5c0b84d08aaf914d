"""REST of the real daemon (`flashalpha run`, synthetic market): endpoints, errors, auth, and a
bounded schemathesis run against its OpenAPI document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

DEMO = ["--capacity", "200000", "--workers", "0"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One daemon for the module (starting the demo market takes seconds)."""
    import uuid

    from tests.integration.conftest import DaemonProcess

    name = f"fa-test-api-{uuid.uuid4().hex[:8]}"
    daemon = DaemonProcess(tmp_path_factory.mktemp("api"), name, DEMO)
    daemon.start(ready_contracts=50_000)
    yield daemon
    assert daemon.stop() == 0, daemon.log()


def test_rest_endpoints_on_the_live_market(live):
    with httpx.Client(base_url=live.url, timeout=30) as http:
        health = http.get("/api/v1/health").json()
        underlyings = {u["symbol"]: u for u in http.get("/api/v1/underlyings").json()}
        chain = http.get("/api/v1/chains/SPY").json()
        expiry = chain[0]["expiry"]
        one_expiry = http.get("/api/v1/chains/SPY", params={"expiry": expiry}).json()
        contract = http.get(f"/api/v1/contracts/{chain[0]['symbol']}").json()
        unknown = http.get("/api/v1/chains/NOPE")
        malformed = http.get("/api/v1/contracts/O:SPY2612")
    assert health["status"] == "ok" and health["seq"] > 0 and health["feed_running"]
    assert health["contracts"] >= 50_000
    assert underlyings["SPY"]["spot"] > 0 and underlyings["SPY"]["contracts"] == len(chain)
    assert len(chain) > 1000 and all(r["underlying"] == "SPY" for r in chain)
    quoted = [r for r in chain if r["bid"] is not None]
    assert len(quoted) > 0.9 * len(chain) and all(r["bid"] <= r["ask"] for r in quoted)
    assert 0 < len(one_expiry) < len(chain) and {r["expiry"] for r in one_expiry} == {expiry}
    assert contract["symbol"] == chain[0]["symbol"] and contract["osi"] == chain[0]["osi"]
    assert unknown.status_code == 404 and "'NOPE'" in unknown.json()["detail"]
    assert malformed.status_code == 400 and "O:SPY2612" in malformed.json()["detail"]


def test_metrics_follow_the_market(live):
    with httpx.Client(base_url=live.url, timeout=30) as http:
        text = http.get("/metrics").text
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(values["flashalpha_seq"]) > 0
    assert float(values['flashalpha_events_total{kind="quotes"}']) > 10_000
    assert 'flashalpha_rejects_total{kind="crossed"}' in values
    assert "flashalpha_hub_connections" in values


def test_api_keys_from_the_environment(daemon_factory):
    daemon = daemon_factory(DEMO, env={"FLASHALPHA_API_KEYS": "alpha,beta"}).start()
    with httpx.Client(base_url=daemon.url, timeout=30) as http:
        refused = http.get("/api/v1/health")
        allowed = http.get("/api/v1/health", headers={"X-Api-Key": "beta"})
        metrics = http.get("/metrics")
    assert refused.status_code == 401 and allowed.status_code == 200
    assert metrics.status_code == 200
    assert daemon.stop() == 0


def test_openapi_contract_holds_under_schemathesis(live):
    """A bounded schemathesis run (examples, coverage and fuzzing phases, every check): no
    server error, every status and body as documented, invalid input refused."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{live.url}/schema/openapi.json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
