"""Theta Terminal messages into batches: contract blocks, New York times, rejects."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from flashalpha.feeds.normalize import Exchange, TradeCondition
from flashalpha.feeds.thetadata import ThetaDecoder, default_rest_url, parse_contract
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


# --- bursts: the compiled scanner and the msgspec path together --------------------------------

BAD = [
    (quote()[:-20], RejectKind.MALFORMED),
    (b"{not json", RejectKind.MALFORMED),
    (quote(bid="178.3"), RejectKind.MALFORMED),
    (quote(ask_size=2**32), RejectKind.MALFORMED),
    (quote(ms=-5), RejectKind.MALFORMED),
    (trade(size=None), RejectKind.MALFORMED),
    (quote(date=20260231), RejectKind.MALFORMED),
    (trade(date=20261301), RejectKind.MALFORMED),
    (b'{"header":{"type":"GREEKS","status":"CONNECTED"}}', RejectKind.MALFORMED),
    (b'{"header":{"type":"QUOTE","status":"CONNECTED"},"contract":{}}', RejectKind.MALFORMED),
    (quote(contract={**CONTRACT, "strike": -5}), RejectKind.UNKNOWN_SYMBOL),
    (quote(contract={**CONTRACT, "right": "X"}), RejectKind.UNKNOWN_SYMBOL),
    (quote(contract=None), RejectKind.UNKNOWN_SYMBOL),
]


def burst(size: int = 60) -> list[bytes]:
    """Good quotes and trades of a few contracts, ms_of_day counting up."""
    frames = []
    for i in range(size):
        contract = {**CONTRACT, "strike": 6_000_000 + 5_000 * (i % 3)}
        if i % 4 == 3:
            frames.append(trade(ms=36_000_000 + i, price=10.0 + i))
        else:
            frames.append(quote(ms=34_200_000 + i, contract=contract, bid=100.0 + i))
    return frames


def one_by_one(frames: list[bytes]) -> tuple[list, list, list, int]:
    """Quotes, trades, control types and rejects of each frame decoded on its own."""
    rejects = []
    decoder = ThetaDecoder(InstrumentRegistry(1000, 10), lambda *a: rejects.append(a))
    quotes, trades, control = [], [], []
    for frame in frames:
        batch, messages = decoder.decode([frame], 0)
        quotes += batch.quotes.tolist()
        trades += batch.trades.tolist()
        control += [m.header.type for m in messages]
    return quotes, trades, control, sum(count for _, _, count in rejects)


def test_a_burst_mixing_good_and_malformed_frames(decoder):
    frames = burst()
    for position, (bad, _) in zip(range(1, 60, 4), BAD, strict=False):
        frames.insert(position, bad)
    batch, _ = decoder.decode(frames, 0)
    assert len(batch.quotes) == 45 and len(batch.trades) == 15
    assert batch.quotes["bid"].tolist() == [100.0 + i for i in range(60) if i % 4 != 3]
    assert batch.trades["price"].tolist() == [10.0 + i for i in range(60) if i % 4 == 3]
    kinds = [kind for kind, _, _ in decoder.rejects]
    assert sorted(kinds) == sorted(kind for _, kind in BAD)
    assert decoder.decode_errors == sum(kind is RejectKind.MALFORMED for _, kind in BAD)
    messages = " | ".join(message for _, message, _ in decoder.rejects)
    for named in ("got `str`", "20260231", "20261301", "'GREEKS'", "strike -5"):
        assert named in messages
    # The same as each frame decoded on its own.
    quotes, trades, _, rejected = one_by_one(frames)
    assert batch.quotes.tolist() == quotes and batch.trades.tolist() == trades
    assert rejected == len(BAD)


def test_control_messages_within_a_burst_keep_their_order(decoder):
    frames = burst(20)
    frames.insert(0, STATUS)
    frames.insert(7, RESPONSE)
    frames.insert(12, b'{"header":{"type":"STATUS","status":"DISCONNECTED"}}')
    frames.insert(15, RESPONSE.replace(b"SUBSCRIBED", b"MAX_STREAMS_REACHED"))
    frames.append(STATUS)
    batch, control = decoder.decode(frames, 0)
    assert [(m.header.type, m.header.status, m.header.response) for m in control] == [
        ("STATUS", "CONNECTED", None),
        ("REQ_RESPONSE", "CONNECTED", "SUBSCRIBED"),
        ("STATUS", "DISCONNECTED", None),
        ("REQ_RESPONSE", "CONNECTED", "MAX_STREAMS_REACHED"),
        ("STATUS", "CONNECTED", None),
    ]
    assert (len(batch.quotes), len(batch.trades)) == (15, 5) and decoder.rejects == []
    assert batch.quotes.tolist() == one_by_one(frames)[0]


def test_frames_msgspec_decodes_keep_their_place_among_scanned_ones(decoder):
    # An escape, an exponent and a status the scanner leaves to msgspec: still good quotes.
    frames = burst(8)
    frames[1] = frames[1].replace(b'"CONNECTED"', b'"CONN\\u0045CTED"')
    frames[2] = frames[2].replace(b'"bid": 102.0', b'"bid": 1.02e2')
    frames[5] = frames[5].replace(b'"status": "CONNECTED"', b'"status": "CONNECTED", "x": 1e9')
    batch, _ = decoder.decode(frames, 0)
    assert batch.quotes["bid"].tolist() == [100.0, 101.0, 102.0, 104.0, 105.0, 106.0]
    assert len(set(batch.quotes["row"].tolist())) == 3 and decoder.rejects == []


def test_unknown_contracts_in_a_burst(decoder):
    registry = decoder.resolver.registry
    new = {**CONTRACT, "strike": 6_100_000}
    listed = {**CONTRACT, "expiration": 20260417}
    bad = {**CONTRACT, "root": "TOOLONGROOT"}
    listed_row = registry.add(parse_contract(json.dumps(listed).encode()))
    frames = [quote(contract=c) for c in (new, bad, listed, new, bad, CONTRACT)]
    batch, _ = decoder.decode([*frames, trade()], 0)
    rows = batch.quotes["row"].tolist()
    assert rows[0] == rows[2] == registry.get_row("SPXW260320C06100000")
    assert rows[1] == listed_row and rows[3] == batch.trades["row"][0]
    assert registry.count == 3 and decoder.resolver.registered == 2
    assert [kind for kind, _, _ in decoder.rejects] == [RejectKind.UNKNOWN_SYMBOL] * 2
    assert all("TOOLONGROOT" in message for _, message, _ in decoder.rejects)
    # Known now: the next burst takes them from the cache; the bad one is rejected again.
    batch, _ = decoder.decode(frames, 0)
    assert batch.quotes["row"].tolist() == rows and registry.count == 3
    assert len(decoder.rejects) == 4


@pytest.mark.parametrize(
    ("date", "wall", "utc"),
    [
        # spring forward, 2026-03-08: 02:00 EST becomes 03:00 EDT
        (20260308, (1, 59, 59, 999), (6, 59, 59, 999)),
        (20260308, (2, 30, 0, 0), (7, 30, 0, 0)),  # the skipped hour reads as standard time
        (20260308, (3, 0, 0, 0), (7, 0, 0, 0)),
        (20260308, (16, 15, 0, 1), (20, 15, 0, 1)),
        # fall back, 2026-11-01: 02:00 EDT becomes 01:00 EST
        (20261101, (0, 59, 59, 999), (4, 59, 59, 999)),
        (20261101, (1, 30, 0, 0), (5, 30, 0, 0)),  # the repeated hour: its first occurrence
        (20261101, (2, 0, 0, 0), (7, 0, 0, 0)),
        (20261101, (23, 59, 59, 999), (4, 59, 59, 999)),  # next UTC day
        # an ordinary winter and summer day, and the first day of the year
        (20260115, (9, 30, 0, 0), (14, 30, 0, 0)),
        (20260715, (9, 30, 0, 0), (13, 30, 0, 0)),
        (20270101, (0, 0, 0, 0), (5, 0, 0, 0)),
    ],
)
def test_dst_days_in_one_burst(decoder, date, wall, utc):
    hour, minute, second, millis = wall
    ms = ((hour * 60 + minute) * 60 + second) * 1000 + millis
    day = dt.date(date // 10_000, date // 100 % 100, date % 100)
    if utc[0] < hour:
        day += dt.timedelta(days=1)
    expected = utc_ns(dt.datetime(day.year, day.month, day.day, *utc[:3])) + utc[3] * 1_000_000
    # Alone (one date per burst) and among other dates (the per-date table).
    alone, _ = decoder.decode([quote(date=date, ms=ms), trade(date=date, ms=ms)], 0)
    mixed, _ = decoder.decode(
        [
            quote(date=20260601),
            quote(date=date, ms=ms),
            trade(date=20251231),
            trade(date=date, ms=ms),
        ],
        0,
    )
    assert alone.quotes["ts"][0] == alone.trades["ts"][0] == expected
    assert mixed.quotes["ts"][1] == mixed.trades["ts"][1] == expected


def test_text_frames_decode_like_bytes(decoder):
    frames = [STATUS, quote(), trade(), quote(bid="x")]
    as_bytes, control = decoder.decode(frames, 0)
    as_text, control_text = decoder.decode([f.decode() for f in frames], 0)
    assert as_text.quotes.tolist() == as_bytes.quotes.tolist()
    assert as_text.trades.tolist() == as_bytes.trades.tolist()
    assert len(control) == len(control_text) == 1 and len(decoder.rejects) == 2


def test_out_of_table_codes_are_unknown_however_large(decoder):
    batch, _ = decoder.decode(
        [quote(bid_exchange=2**70, ask_exchange=999), trade(condition=2**64)], 0
    )
    assert batch.quotes["bid_exchange"][0] == batch.quotes["ask_exchange"][0] == Exchange.UNKNOWN
    assert batch.trades["condition"][0] == TradeCondition.OTHER
    assert decoder.rejects == []


def test_ohlc_in_a_burst_is_counted(decoder):
    ohlc = {"ms_of_day": 1, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3,
            "count": 1, "date": 20260101}  # fmt: skip
    header = {"type": "OHLC", "status": "CONNECTED"}
    good = json.dumps({"header": header, "contract": CONTRACT, "ohlc": ohlc}).encode()
    bad = json.dumps({"header": header, "contract": CONTRACT, "ohlc": {**ohlc, "open": "1"}})
    batch, _ = decoder.decode([good, quote(), good, bad.encode(), trade()], 0)
    assert decoder.ohlc == 2 and len(batch) == 2
    assert [kind for kind, _, _ in decoder.rejects] == [RejectKind.MALFORMED]
