"""REST over a real socket against an in-process daemon: every endpoint, errors, auth, CORS, UI."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from flashalpha.state.rows import ROW_FIELDS

from .conftest import start_market, stop_market


async def test_health_counts_and_seq(market):
    async with market.client() as http:
        before = (await http.get("/api/v1/health")).json()
        seq = market.quote(market.feed.rows["SPY"][0], 1.0, 1.1)
        after = (await http.get("/api/v1/health")).json()
    assert before["status"] == "ok" and before["contracts"] == 60 and before["underlyings"] == 2
    assert after["seq"] == seq == before["seq"] + 1
    assert after["feed_running"] is True and after["hub_connections"] == 0


async def test_underlyings_with_spot_and_contract_counts(market):
    market.spot("SPY", 651.25)
    async with market.client() as http:
        response = await http.get("/api/v1/underlyings")
    assert response.status_code == 200
    by_symbol = {u["symbol"]: u for u in response.json()}
    spy, qqq = by_symbol["SPY"], by_symbol["QQQ"]
    assert spy["spot"] == 651.25 and spy["spot_ts"] > 0 and spy["contracts"] == 40
    assert qqq["spot"] is None and qqq["spot_ts"] is None and qqq["contracts"] == 20
    assert spy["rate"] == pytest.approx(0.045) and spy["div_yield"] == pytest.approx(0.01)


async def test_chain_rows_ordered_and_filtered_by_expiry(market):
    rows = market.feed.rows["SPY"]
    seq = market.quote(rows[:4], 2.5, 2.75, size=7)
    async with market.client() as http:
        chain = (await http.get("/api/v1/chains/spy")).json()
        one = (await http.get("/api/v1/chains/SPY", params={"expiry": "2030-02-15"})).json()
        none = (await http.get("/api/v1/chains/SPY", params={"expiry": "2031-01-17"})).json()
    assert len(chain) == 40 and list(chain[0]) == list(ROW_FIELDS)
    keys = [(r["expiry"], r["strike"], r["right"] != "C") for r in chain]
    assert keys == sorted(keys)  # expiry, strike, calls before puts
    quoted = [r for r in chain if r["bid"] is not None]
    assert len(quoted) == 4
    assert all(r["bid"] == 2.5 and r["ask"] == 2.75 and r["bid_size"] == 7 for r in quoted)
    assert all(r["seq"] == seq and r["quote_ts"] > 0 for r in quoted)
    unquoted = next(r for r in chain if r["bid"] is None)
    assert unquoted["iv"] is None and unquoted["greeks_ts"] is None and unquoted["seq"] == 0
    assert len(one) == 20 and {r["expiry"] for r in one} == {"2030-02-15"}
    assert none == []


async def test_large_chains_render_off_the_loop_with_the_same_rows(shm_name, tmp_path, monkeypatch):
    from flashalpha.api import routes

    threads = []
    render = routes._render_chain

    def spy(*args):
        threads.append(threading.current_thread().name)
        return render(*args)

    monkeypatch.setattr(routes, "_render_chain", spy)
    bodies = []
    for off_loop_rows in (4096, 10):  # SPY has 40 contracts, QQQ 20
        market, task = await start_market(shm_name, tmp_path, api={"off_loop_rows": off_loop_rows})
        try:
            market.quote(market.feed.rows["SPY"][:6], 1.5, 1.6)
            async with market.client() as http:
                chain = await http.get("/api/v1/chains/SPY")
                small = await http.get("/api/v1/chains/QQQ?expiry=2030-02-15")
        finally:
            await stop_market(market, task)
        bodies.append([(row["symbol"], row["bid"], row["ask"]) for row in chain.json()])
        assert len(small.json()) == 10
        assert market.service.app.state.renders.renders == (0 if off_loop_rows > 40 else 1)
    assert bodies[0] == bodies[1] and len(bodies[0]) == 40
    assert threads[:2] == [threading.main_thread().name] * 2
    assert threads[2].startswith("flashalpha-render") and threads[3] == threads[0]


async def test_contract_by_polygon_osi_and_compact_symbol(market):
    row = market.feed.rows["QQQ"][3]
    market.quote(row, 0.5, 0.55)
    osi = market.daemon.registry.contract(int(row)).osi()
    polygon = market.symbol(row)
    async with market.client() as http:
        by_polygon = (await http.get(f"/api/v1/contracts/{polygon}")).json()
        by_osi = (await http.get(f"/api/v1/contracts/{osi.replace(' ', '%20')}")).json()
        by_compact = (await http.get(f"/api/v1/contracts/{polygon[2:]}")).json()
    assert by_polygon == by_osi == by_compact
    assert by_polygon["symbol"] == polygon and by_polygon["osi"] == osi
    assert by_polygon["underlying"] == "QQQ" and by_polygon["bid"] == 0.5


@pytest.mark.parametrize(
    ("path", "status", "named"),
    [
        ("/api/v1/chains/NOPE", 404, "unknown underlying 'NOPE'"),
        ("/api/v1/contracts/O:SPY300118C00999000", 404, "unknown contract 'O:SPY300118C00999000'"),
        ("/api/v1/contracts/O:SPY301318C00640000", 400, "expiry month 13"),
        ("/api/v1/contracts/banana", 400, "'banana'"),
        ("/api/v1/chains/SPY?expiry=2030-13-01", 400, "invalid expiry '2030-13-01'"),
        ("/api/v1/chains/SPY?expiry=soon", 400, "invalid expiry 'soon'"),
        ("/api/v1/nothing", 404, "Not Found"),
    ],
)
async def test_errors_name_the_value_and_never_leak_a_trace(market, path, status, named):
    async with market.client() as http:
        response = await http.get(path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"status_code", "detail"} and body["status_code"] == status
    assert named in body["detail"]
    assert "Traceback" not in response.text


async def test_metrics_in_prometheus_text_format(market):
    market.quote(market.feed.rows["SPY"][:5], 1.0, 1.1)
    await asyncio.sleep(0.05)  # a few wake-ups of the loop-lag timer
    async with market.client() as http:
        await http.get("/api/v1/chains/NOPE")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    values = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(\S+) ([0-9.e+-]+)$", text, re.MULTILINE)
    }
    assert values["flashalpha_seq"] == 1
    assert values["flashalpha_contracts"] == 60
    assert values['flashalpha_events_total{kind="quotes"}'] == 5
    assert values['flashalpha_rejects_total{kind="crossed"}'] == 0
    assert values['flashalpha_events_published_total{kind="quote"}'] == 1
    assert values["flashalpha_hub_connections"] == 0
    assert values['flashalpha_http_responses_total{code="404"}'] == 1
    assert "# TYPE flashalpha_hub_bytes_sent_total counter" in text
    lags = [values[f'flashalpha_loop_lag_seconds{{quantile="{q}"}}'] for q in ("0.5", "0.99", "1")]
    assert 0 <= lags[0] <= lags[1] <= lags[2]


async def test_openapi_schema_and_local_docs_page(market):
    async with market.client() as http:
        schema = (await http.get("/schema/openapi.json")).json()
        page = await http.get("/schema")
        assets = [await http.get(url) for url in re.findall(r'(?:src|href)="(/[^"]+)"', page.text)]
    paths = schema["paths"]
    for path in (
        "/api/v1/health",
        "/api/v1/underlyings",
        "/api/v1/chains/{underlying}",
        "/api/v1/contracts/{symbol}",
        "/metrics",
        "/hubs/market/negotiate",
    ):
        assert path in paths
    row = schema["components"]["schemas"]["ContractRow"]
    assert set(row["properties"]) == set(ROW_FIELDS)
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    # Nothing from the internet: every script, style and icon comes from this server.
    assert not re.search(r"(src|href)=[\"']?https?://", page.text)
    assert len(assets) == 4 and all(a.status_code == 200 and a.content for a in assets)


async def test_hub_endpoints_over_plain_http(market):
    async with market.client() as http:
        v1 = (await http.post("/hubs/market/negotiate", params={"negotiateVersion": 1})).json()
        v0 = (await http.post("/hubs/market/negotiate")).json()
        bad = await http.post("/hubs/market/negotiate", params={"negotiateVersion": "x"})
        plain = await http.get("/hubs/market")
    assert v1["negotiateVersion"] == 1 and v1["connectionToken"] != v1["connectionId"]
    assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0
    assert v1["availableTransports"][0]["transport"] == "WebSockets"
    # As ASP.NET Core answers it: 200 with an error the SignalR clients raise.
    assert bad.status_code == 200 and "negotiateVersion 'x'" in bad.json()["error"]
    assert plain.status_code == 400 and "WebSockets" in plain.json()["detail"]


async def test_api_keys_guard_api_and_hubs_only(market_factory):
    market = await market_factory(api={"keys": ["k-one", "k-two"]})
    async with market.client() as http:
        missing = await http.get("/api/v1/health")
        wrong = await http.get("/api/v1/health", headers={"X-Api-Key": "nope"})
        header = await http.get("/api/v1/health", headers={"X-Api-Key": "k-two"})
        bearer = await http.get("/api/v1/underlyings", headers={"Authorization": "Bearer k-one"})
        query_on_api = await http.get("/api/v1/health", params={"access_token": "k-one"})
        negotiate = await http.post("/hubs/market/negotiate", params={"access_token": "k-one"})
        negotiate_missing = await http.post("/hubs/market/negotiate")
        metrics = await http.get("/metrics")
        ui = await http.get("/")
        schema = (await http.get("/schema/openapi.json")).json()
    assert missing.status_code == wrong.status_code == 401
    assert "X-Api-Key" in missing.json()["detail"]
    assert header.status_code == bearer.status_code == 200
    assert query_on_api.status_code == 401  # access_token is for /hubs (WebSockets) only
    assert negotiate.status_code == 200 and negotiate_missing.status_code == 401
    assert metrics.status_code == 200 and ui.status_code == 200
    assert schema["security"] == [{"ApiKey": []}]


async def test_cors_when_configured(market_factory):
    market = await market_factory(api={"cors_origins": ["http://localhost:5173"]})
    origin = {"Origin": "http://localhost:5173"}
    async with market.client() as http:
        simple = await http.get("/api/v1/health", headers=origin)
        preflight = await http.options(
            "/hubs/market/negotiate",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-requested-with,x-signalr-user-agent",
            },
        )
        other = await http.get("/api/v1/health", headers={"Origin": "http://evil.example"})
    assert simple.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert preflight.status_code in (200, 204)
    assert "x-signalr-user-agent" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_by_default(market):
    async with market.client() as http:
        response = await http.get("/api/v1/health", headers={"Origin": "http://localhost:5173"})
    assert "access-control-allow-origin" not in response.headers


async def test_ui_build_index_assets_and_deep_links(market_factory, tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>flashalpha ui</title>")
    (dist / "assets" / "app-1234.js").write_text("console.log('ui')")
    (tmp_path / "secret.txt").write_text("outside the build")
    market = await market_factory(api={"ui_dir": str(dist)})
    async with market.client() as http:
        index = await http.get("/")
        asset = await http.get("/assets/app-1234.js")
        deep = await http.get("/chain/SPY")
        escape = await http.get("/..%2Fsecret.txt")
        api_typo = await http.get("/api/v2/health")
    assert index.status_code == 200 and "flashalpha ui" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert asset.status_code == 200 and asset.text == "console.log('ui')"
    assert "javascript" in asset.headers["content-type"]
    assert "immutable" in asset.headers["cache-control"]
    assert deep.status_code == 200 and "flashalpha ui" in deep.text
    assert escape.status_code == 200 and "outside the build" not in escape.text
    assert api_typo.status_code == 404 and api_typo.json()["status_code"] == 404


async def test_without_a_build_the_root_says_how_to_make_one(market_factory, tmp_path):
    market = await market_factory(api={"ui_dir": str(tmp_path / "nowhere")})
    async with market.client() as http:
        root = await http.get("/")
        deep = await http.get("/chain/SPY")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    assert "make install" in root.text and str(tmp_path / "nowhere") in root.text
    assert deep.status_code == 200 and "make install" in deep.text
