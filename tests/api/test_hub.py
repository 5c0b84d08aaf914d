"""The market hub against an in-process daemon, over real WebSockets.

pysignalr (a SignalR client from PyPI) covers what users do; `RawHubClient` covers the wire
protocol's corners (negotiate ids, MessagePack, errors, timeouts, a client that stops reading).
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
import websockets
from tests.api.hubclients import PySignalRClient, RawHubClient


async def test_snapshot_then_updates_conflated_per_contract(market):
    rows = market.feed.rows["SPY"]
    market.quote(rows[:40], 1.0, 1.5)
    market.spot("SPY", 650.0)
    async with PySignalRClient(market.url) as client:
        completion = await client.invoke("Subscribe", "chain:SPY")
        snapshot = completion.result
        assert completion.error is None
        assert snapshot["topic"] == "chain:SPY" and snapshot["seq"] == market.daemon.state.seq
        assert len(snapshot["rows"]) == 40
        keys = [(r["expiry"], r["strike"], r["right"] != "C") for r in snapshot["rows"]]
        assert keys == sorted(keys)
        assert snapshot["underlying"]["symbol"] == "SPY" and snapshot["underlying"]["spot"] == 650.0
        # Five batches on the same three contracts before the hub flushes: one update, three
        # rows, each with its latest quote.
        for step in range(5):
            seq = market.quote(rows[3:6], 2.0 + step, 2.5 + step)
        (update,) = await client.wait_updates(1)
        assert update["topic"] == "chain:SPY" and update["seq"] == seq
        assert [r["symbol"] for r in update["rows"]] == [market.symbol(r) for r in rows[3:6]]
        assert {(r["bid"], r["ask"]) for r in update["rows"]} == {(6.0, 6.5)}
        assert update["underlying"]["spot"] == 650.0
        # Spot alone moves the chain's underlying, with no rows.
        spot_seq = market.spot("SPY", 651.0)
        updates = await client.wait_updates(2)
        assert updates[1]["seq"] == spot_seq and updates[1]["rows"] == []
        assert updates[1]["underlying"]["spot"] == 651.0
        # Other underlyings never reach this topic; seq only grows.
        market.quote(market.feed.rows["QQQ"][:5], 1.0, 1.1)
        last = market.quote(rows[0], 9.0, 9.5)
        updates = await client.wait_updates(3)
        assert updates[2]["seq"] == last and [r["bid"] for r in updates[2]["rows"]] == [9.0]
        seqs = [u["seq"] for u in client.updates]
        assert seqs == sorted(seqs) and seqs[0] > snapshot["seq"] and seqs[-1] == last


async def test_updates_flushed_at_most_once_per_push_interval(market_factory):
    market = await market_factory(hub={"push_interval_ms": 60_000})
    rows = market.feed.rows["SPY"]
    client = await RawHubClient.connect(market.ws_url)
    await client.invoke("Subscribe", "chain:SPY")
    first = market.quote(rows[0], 1.0, 1.1)  # after a quiet spell: flushed at once
    assert (await client.update())["seq"] == first
    market.quote(rows[1], 1.0, 1.1)  # within the interval: held back
    with pytest.raises(TimeoutError):
        await client.update(timeout=0.5)
    assert market.service.hub.stats.flushes == 1
    await client.close()


async def test_a_change_the_hub_learns_of_late_is_still_sent(market_factory):
    """A flush can read the state after a batch was applied but before the dispatcher handed
    its changes to the hub; the next flush reads the same seq and must still send them."""
    market = await market_factory(hub={"push_interval_ms": 60_000})  # flushes by hand here
    hub, rows = market.service.hub, market.feed.rows["SPY"]
    client = await RawHubClient.connect(market.ws_url)
    await client.invoke("Subscribe", "chain:SPY")
    hub.flush()  # a flush just happened: the timer will not fire during the test
    market.quote(rows[0], 1.0, 1.1)
    await asyncio.sleep(0.05)  # delivered to the hub
    seq = market.quote(rows[1], 2.0, 2.1)  # applied, not yet delivered
    hub.flush()
    first = await client.update()
    assert first["seq"] == seq and [r["symbol"] for r in first["rows"]] == [market.symbol(rows[0])]
    await asyncio.sleep(0.05)  # now delivered; the state is still at `seq`
    hub.flush()
    late = await client.update()
    assert late["seq"] == seq and [(r["symbol"], r["bid"]) for r in late["rows"]] == [
        (market.symbol(rows[1]), 2.0)
    ]
    await client.close()


async def test_contract_and_underlying_topics(market):
    polygon = market.symbol(market.feed.rows["QQQ"][2])
    client = await RawHubClient.connect(market.ws_url)
    contract = (await client.invoke("subscribe", f"contract:{polygon[2:]}"))["result"]
    underlying = (await client.invoke("Subscribe", "underlying:qqq"))["result"]
    assert contract["topic"] == f"contract:{polygon}"  # canonical: Polygon form
    assert [r["symbol"] for r in contract["rows"]] == [polygon]
    assert underlying["topic"] == "underlying:QQQ" and underlying["rows"][0]["contracts"] == 20
    market.quote(market.feed.rows["QQQ"][:5], 3.0, 3.2)  # row 2 among them
    update = await client.update(topic=contract["topic"])
    assert [(r["symbol"], r["bid"]) for r in update["rows"]] == [(polygon, 3.0)]
    seq = market.spot("QQQ", 502.5)
    update = await client.update(topic="underlying:QQQ")
    assert update["seq"] == seq and update["rows"][0]["spot"] == 502.5
    await client.close()


@pytest.mark.parametrize(
    ("target", "arguments", "named"),
    [
        ("Subscribe", ["quotes:SPY"], "unknown topic 'quotes:SPY'"),
        ("Subscribe", ["chain:NOPE"], "unknown underlying 'NOPE'"),
        ("Subscribe", ["contract:O:SPY300118C00999000"], "unknown contract 'O:SPY300118C00999000'"),
        ("Subscribe", ["contract:O:SPY301318C00640000"], "expiry month 13"),
        ("Subscribe", [42], "topic must be a string"),
        ("Subscribe", ["chain:SPY", "chain:QQQ"], "one argument"),
        ("Unsubscribe", ["chain:"], "unknown topic 'chain:'"),
        ("Buy", ["chain:SPY"], "unknown hub method 'Buy'"),
    ],
)
async def test_invocation_errors_name_what_is_wrong(market, target, arguments, named):
    client = await RawHubClient.connect(market.ws_url)
    completion = await client.invoke(target, *arguments)
    assert named in completion["error"] and "result" not in completion
    # The connection keeps working.
    assert (await client.invoke("Subscribe", "chain:SPY"))["result"]["topic"] == "chain:SPY"
    await client.close()


async def test_streaming_invocation_is_refused_by_completion(market):
    client = await RawHubClient.connect(market.ws_url)
    await client.send(
        {"type": 4, "invocationId": "s1", "target": "Subscribe", "arguments": ["chain:SPY"]}
    )
    completion = await client.next()
    assert completion["invocationId"] == "s1" and "not a streaming method" in completion["error"]
    await client.close()


async def test_snapshots_are_shared_while_the_state_holds_them(market):
    hub = market.service.hub
    json_client = await RawHubClient.connect(market.ws_url)
    msgpack_client = await RawHubClient.connect(market.ws_url, protocol="messagepack")
    first = (await json_client.invoke("Subscribe", "chain:SPY"))["result"]
    same = (await msgpack_client.invoke("Subscribe", "chain:SPY"))["result"]
    assert same == first and (hub.stats.snapshots, hub.stats.snapshots_shared) == (1, 1)
    seq = market.quote(market.feed.rows["SPY"][0], 7.0, 7.5)
    fresh = (await json_client.invoke("Subscribe", "chain:SPY"))["result"]
    assert fresh["seq"] == seq and hub.stats.snapshots == 2
    symbol = market.symbol(market.feed.rows["SPY"][0])
    assert next(r for r in fresh["rows"] if r["symbol"] == symbol)["bid"] == 7.0
    for client in (json_client, msgpack_client):
        await client.close()


async def test_unsubscribe_stops_updates(market):
    client = await RawHubClient.connect(market.ws_url)
    await client.invoke("Subscribe", "chain:SPY")
    await client.invoke("Subscribe", "chain:QQQ")
    unsubscribed = await client.invoke("Unsubscribe", "chain:spy")
    assert "error" not in unsubscribed and "result" not in unsubscribed
    market.quote(market.feed.rows["SPY"][:3], 1.0, 1.1)
    seq = market.quote(market.feed.rows["QQQ"][:3], 1.0, 1.1)
    update = await client.update()
    assert update["topic"] == "chain:QQQ" and update["seq"] == seq
    assert set(market.service.hub.topics) == {"chain:QQQ"}
    await client.close()


async def test_fire_and_forget_subscribe_gets_its_snapshot_as_an_update(market):
    client = await RawHubClient.connect(market.ws_url)
    await client.send({"type": 1, "target": "Subscribe", "arguments": ["chain:QQQ"]})
    snapshot = await client.update()
    assert snapshot["topic"] == "chain:QQQ" and len(snapshot["rows"]) == 20
    await client.close()


async def test_messagepack_protocol(market):
    client = await RawHubClient.connect(market.ws_url, protocol="messagepack")
    snapshot = (await client.invoke("Subscribe", "chain:SPY"))["result"]
    assert len(snapshot["rows"]) == 40
    seq = market.quote(market.feed.rows["SPY"][7], 4.0, 4.25)
    update = await client.update()
    assert update["seq"] == seq and update["rows"][0]["ask"] == 4.25
    assert all(isinstance(frame, bytes) for frame in client.frames)  # binary frames
    error = await client.invoke("Subscribe", "chain:NOPE")
    assert "unknown underlying 'NOPE'" in error["error"]
    await client.close()


async def test_negotiate_versions_and_connection_ids(market):
    async with httpx.AsyncClient(base_url=market.url) as http:
        v1 = (await http.post("/hubs/market/negotiate?negotiateVersion=1")).json()
        v0 = (await http.post("/hubs/market/negotiate")).json()
    # v1 connects with the token, v0 with the connection id.
    with_token = await RawHubClient.connect(market.ws_url, f"?id={v1['connectionToken']}")
    with_id = await RawHubClient.connect(market.ws_url, f"?id={v0['connectionId']}")
    assert set(market.service.hub.connections) >= {v1["connectionToken"], v0["connectionId"]}
    # A second socket for a live connection: 409; an id never negotiated: 404.
    with pytest.raises(websockets.InvalidStatus) as conflict:
        await RawHubClient.connect(market.ws_url, f"?id={v1['connectionToken']}", handshake=False)
    with pytest.raises(websockets.InvalidStatus) as unknown:
        await RawHubClient.connect(market.ws_url, "?id=never-negotiated", handshake=False)
    assert conflict.value.response.status_code == 409
    assert unknown.value.response.status_code == 404
    assert b"No Connection with that ID" in unknown.value.response.body
    # skipNegotiation: a WebSocket without id is a new connection.
    direct = await RawHubClient.connect(market.ws_url)
    assert (await direct.invoke("Subscribe", "underlying:SPY"))["result"]["rows"]
    for client in (with_token, with_id, direct):
        await client.close()


async def test_handshake_with_an_unknown_protocol_is_answered_and_closed(market):
    client = await RawHubClient.connect(market.ws_url, handshake=False)
    response = await client.handshake(protocol="xml")
    assert response == {"error": "Requested protocol 'xml' is not available."}
    with pytest.raises(websockets.ConnectionClosed):
        await client.websocket.recv()


async def test_garbage_after_the_handshake_closes_with_an_error(market):
    client = await RawHubClient.connect(market.ws_url)
    await client.websocket.send("{this is not json\x1e")
    close = await client.next()
    assert close["type"] == 7 and "invalid JSON hub message" in close["error"]
    with pytest.raises(websockets.ConnectionClosed):
        await client.websocket.recv()


async def test_pings_and_client_timeout(market_factory):
    market = await market_factory(hub={"keep_alive_interval": 0.1, "client_timeout": 0.8})
    client = await RawHubClient.connect(market.ws_url)
    assert (await client.next())["type"] == 6  # server keep-alive ping
    while (message := await client.next())["type"] == 6:
        pass  # the client never sends anything
    assert message["type"] == 7 and "Server timeout elapsed" in message["error"]
    with pytest.raises(websockets.ConnectionClosed):
        await client.websocket.recv()
    assert market.service.hub.stats.timed_out == 1


async def test_client_pings_keep_the_connection(market_factory):
    market = await market_factory(hub={"client_timeout": 0.5})
    client = await RawHubClient.connect(market.ws_url)
    for _ in range(8):
        await client.send({"type": 6})
        await asyncio.sleep(0.15)
    assert (await client.invoke("Subscribe", "chain:QQQ"))["result"]["topic"] == "chain:QQQ"
    await client.close()


async def test_handshake_timeout(market_factory):
    market = await market_factory(hub={"handshake_timeout": 0.3})
    client = await RawHubClient.connect(market.ws_url, handshake=False)
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(client.websocket.recv(), 10)
    assert market.service.hub.stats.timed_out == 1


async def test_api_keys_on_the_hub(market_factory):
    market = await market_factory(api={"keys": ["hub-key"]})
    with pytest.raises(websockets.InvalidStatus) as refused:
        await RawHubClient.connect(market.ws_url, handshake=False)
    assert refused.value.response.status_code == 401
    by_query = await RawHubClient.connect(market.ws_url, "?access_token=hub-key")
    by_header = await RawHubClient.connect(
        market.ws_url, additional_headers={"X-Api-Key": "hub-key"}
    )
    async with PySignalRClient(market.url, headers={"X-Api-Key": "hub-key"}) as client:
        assert (await client.invoke("Subscribe", "chain:QQQ")).result["rows"]
    for client in (by_query, by_header):
        await client.close()


async def test_slow_client_is_coalesced_then_closed_while_others_keep_receiving(market_factory):
    market = await market_factory(
        hub={"push_interval_ms": 10, "send_buffer_bytes": 16_384, "slow_client_timeout": 1.0}
    )
    hub = market.service.hub
    rows = market.feed.rows["SPY"]
    # The slow client: a tiny receive buffer, and it stops reading after its snapshot.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(market.url.rsplit(":", 1)[1])))
    slow = await RawHubClient.connect(market.ws_url, sock=sock, max_queue=1)
    await slow.invoke("Subscribe", "chain:SPY")
    async with PySignalRClient(market.url) as fast:
        await fast.invoke("Subscribe", "chain:SPY")
        price = 1.0
        for _ in range(3000):  # at most ~30 s of market
            price += 0.01
            market.quote(rows, price, price + 0.5)
            await asyncio.sleep(0.01)
            if hub.stats.slow_closed:
                break
        assert hub.stats.slow_closed == 1
        assert hub.stats.conflated > 0  # it was coalesced before it was closed
        seq = market.quote(rows[:2], 50.0, 50.5)
        while fast.updates[-1]["seq"] < seq:
            await fast.wait_updates(len(fast.updates) + 1)
        assert fast.updates[-1]["seq"] == seq and fast.updates[-1]["rows"][0]["bid"] == 50.0
        seqs = [u["seq"] for u in fast.updates]
        assert seqs == sorted(seqs) and seqs[-1] > seqs[0]
    # When the slow client reads again it finds what it was sent, then the Close message.
    seen = []
    while (message := await slow.next(timeout=15))["type"] != 7:
        seen.append(message)
    assert "read nothing" in message["error"] and message["allowReconnect"] is True
    update_seqs = [m["arguments"][0]["seq"] for m in seen if m.get("type") == 1]
    assert update_seqs == sorted(update_seqs)
    with pytest.raises(websockets.ConnectionClosed):
        await slow.websocket.recv()
    assert len(hub.connections) == 0
