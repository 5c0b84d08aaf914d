"""Theta Terminal messages into batches: contract blocks, New York times, rejects."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from flashalpha.feeds.normalize import Exchange, TradeCondition
from flashalpha.feeds.thetadata import ThetaDecoder, default_rest_url
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.layout import RejectKind

CONTRACT = {
    "security_type": "OPTION",
    "root": "SPXW",
    "expiration": 20260320,
    "strike": 6000000,
    "right": "C",
}


def quote(date=20260308, ms=34_200_000, contract=CONTRACT, **fields) -> bytes:
    body = {
        "ms_of_day": ms,
        "bid_size": 21,
        "bid_exchange": 5,
        "bid": 178.3,
        "bid_condition": 50,
        "ask_size": 20,
        "ask_exchange": 42,
        "ask": 178.9,
        "ask_condition": 50,
        "date": date,
        **fields,
    }
    return json.dumps(
        {"header": {"type": "QUOTE", "status": "CONNECTED"}, "contract": contract, "quote": body}
    ).encode()


def trade(date=20261101, ms=36_000_000, **fields) -> bytes:
    body = {
        "ms_of_day": ms,
        "sequence": 12,
        "size": 4,
        "condition": 95,
        "price": 12.5,
        "exchange": 65,
        "date": date,
        **fields,
    }
    return json.dumps(
        {"header": {"type": "TRADE", "status": "CONNECTED"}, "contract": CONTRACT, "trade": body}
    ).encode()


def utc_ns(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.UTC).timestamp()) * 1_000_000_000


STATUS = b'{"header":{"type":"STATUS","status":"CONNECTED"}}'
RESPONSE = (
    b'{"header":{"type":"REQ_RESPONSE","status":"CONNECTED","response":"SUBSCRIBED","req_id":3}}'
)


@pytest.fixture
def decoder():
    rejects = []
    decoder = ThetaDecoder(InstrumentRegistry(1000, 10), lambda *a: rejects.append(a))
    decoder.rejects = rejects
    return decoder


def test_quote_trade_and_control(decoder):
    batch, control = decoder.decode([STATUS, quote(), trade(), RESPONSE], 0)
    row = decoder.resolver.registry.get_row("SPXW260320C06000000")
    assert row >= 0
    q, t = batch.quotes[0], batch.trades[0]
    assert q["row"] == row and (q["bid"], q["ask"], q["bid_size"], q["ask_size"]) == (
        178.3,
        178.9,
        21,
        20,
    )
    assert q["bid_exchange"] == Exchange.CBOE and q["ask_exchange"] == Exchange.CBOE_C2
    # 09:30 New York on 2026-03-08, the spring-forward day, is 13:30 UTC
    assert q["ts"] == utc_ns(dt.datetime(2026, 3, 8, 13, 30))
    # 10:00 New York on 2026-11-01, the fall-back day, is 15:00 UTC
    assert t["ts"] == utc_ns(dt.datetime(2026, 11, 1, 15, 0))
    assert (t["price"], t["size"]) == (12.5, 4)
    assert (
        t["exchange"] == Exchange.CBOE_EDGX and t["condition"] == TradeCondition.INTERMARKET_SWEEP
    )
    assert [m.header.type for m in control] == ["STATUS", "REQ_RESPONSE"]
    assert control[1].header.req_id == 3 and control[1].header.response == "SUBSCRIBED"


def test_symbol_is_accepted_for_root(decoder):
    contract = {k: v for k, v in CONTRACT.items() if k != "root"} | {"symbol": "SPXW"}
    batch, _ = decoder.decode([quote(contract=contract), quote()], 0)
    assert batch.quotes["row"][0] == batch.quotes["row"][1] >= 0
    assert decoder.resolver.registry.count == 1


@pytest.mark.parametrize(
    ("bad", "kind", "named"),
    [
        (quote()[:-20], RejectKind.MALFORMED, "message rejected"),  # partial
        (b"{not json", RejectKind.MALFORMED, "message rejected"),
        (quote(bid="178.3"), RejectKind.MALFORMED, "Expected `float`, got `str`"),
        (quote(bid_size=-1), RejectKind.MALFORMED, "Expected `int` >= 0"),
        (quote(date=20260231), RejectKind.MALFORMED, "20260231"),
        (b'{"header":{"type":"GREEKS","status":"CONNECTED"}}', RejectKind.MALFORMED, "'GREEKS'"),
        (
            quote(contract={**CONTRACT, "strike": -5}),
            RejectKind.UNKNOWN_SYMBOL,
            "strike -5",
        ),
        (
            quote(contract={**CONTRACT, "root": "TOOLONGROOT"}),
            RejectKind.UNKNOWN_SYMBOL,
            "TOOLONGROOT",
        ),
    ],
)
def test_bad_messages_are_rejected_and_counted(decoder, bad, kind, named):
    batch, _ = decoder.decode([quote(), bad, trade()], 0)
    assert (len(batch.quotes), len(batch.trades)) == (1, 1)
    [(got_kind, message, count)] = decoder.rejects
    assert got_kind is kind and count == 1
    assert named in message


def test_ohlc_is_counted_not_applied(decoder):
    ohlc = {
        "ms_of_day": 1,
        "open": 1.0,
        "high": 1.0,
        "low": 1.0,
        "close": 1.0,
        "volume": 1,
        "count": 1,
        "date": 20260101,
    }
    message = json.dumps(
        {"header": {"type": "OHLC", "status": "CONNECTED"}, "contract": CONTRACT, "ohlc": ohlc}
    )
    batch, _ = decoder.decode([message.encode()], 0)
    assert len(batch) == 0 and decoder.ohlc == 1 and decoder.rejects == []


def test_default_rest_url():
    assert default_rest_url("ws://127.0.0.1:25520/v1/events") == "http://127.0.0.1:25510"
    assert default_rest_url("ws://10.1.2.3/v1/events") == "http://10.1.2.3:25510"
    assert default_rest_url("ws://127.0.0.1:8123/v1/events") == "http://127.0.0.1:8123"
