"""The compiled ThetaData scanner takes a frame only when msgspec would, with the same values.

`flashalpha._thetadata_scan` is a fast path in front of the msgspec structs of
`feeds.thetadata`: whatever it does not take is decoded (or rejected) by msgspec. So the one
property that matters is agreement: every frame it takes, msgspec accepts with exactly the same
kind, values and contract block. These tests check that on the Terminal's own shapes, on edge
cases, and on generated and mutated messages; and that the shapes the Terminal sends are taken.
"""

from __future__ import annotations

import json
import random

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashalpha import _thetadata_scan as scan
from flashalpha.feeds.thetadata import EVENT_DTYPE, ThetaMessage

CONTRACT = {
    "security_type": "OPTION",
    "root": "SPY",
    "expiration": 20261218,
    "strike": 600000,
    "right": "C",
}
QUOTE = {
    "ms_of_day": 34_200_000,
    "bid_size": 10,
    "bid_exchange": 5,
    "bid": 1.2,
    "bid_condition": 50,
    "ask_size": 12,
    "ask_exchange": 42,
    "ask": 1.3,
    "ask_condition": 50,
    "date": 20261201,
}
TRADE = {
    "ms_of_day": 34_200_000,
    "sequence": 7,
    "size": 3,
    "condition": 18,
    "price": 1.25,
    "exchange": 5,
    "date": 20261201,
}
OHLC = {
    "ms_of_day": 34_200_000,
    "open": 1.0,
    "high": 1.5,
    "low": 0.5,
    "close": 1.25,
    "volume": 10,
    "count": 2,
    "date": 20261201,
}
BLOCKS = {"QUOTE": ("quote", QUOTE), "TRADE": ("trade", TRADE), "OHLC": ("ohlc", OHLC)}


def message(kind: str = "QUOTE", contract=CONTRACT, **fields) -> dict:
    name, body = BLOCKS[kind]
    return {
        "header": {"type": kind, "status": "CONNECTED"},
        "contract": contract,
        name: {**body, **fields},
    }


def compact(value) -> bytes:
    return msgspec.json.encode(value)


def scanned(frame: bytes | str, rows: dict | None = None) -> tuple[int, np.void, list]:
    events = np.empty(1, EVENT_DTYPE)
    kinds = np.empty(1, np.uint8)
    _, keys = scan.scan_messages([frame], {} if rows is None else rows, events, kinds)
    return int(kinds[0]), events[0], keys


def reference(frame: bytes | str):
    """msgspec's reading: (kind, values, contract block bytes), or None if it rejects."""
    try:
        m = msgspec.json.decode(frame, type=ThetaMessage)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    kind = m.header.type
    if kind == "QUOTE" and m.quote is not None:
        q = m.quote
        values = (q.bid, q.ask, q.bid_size, q.ask_size, q.bid_exchange, q.ask_exchange)
        return scan.KIND_QUOTE, (*values, q.ms_of_day, q.date), bytes(m.contract)
    if kind == "TRADE" and m.trade is not None:
        t = m.trade
        values = (t.price, 0.0, t.size, 0, t.exchange, t.condition, t.ms_of_day, t.date)
        return scan.KIND_TRADE, values, bytes(m.contract)
    return kind, None, None


def assert_agrees(frame: bytes | str) -> int:
    """The scanner defers `frame`, or reads it exactly as msgspec does; returns its kind."""
    kind, event, keys = scanned(frame)
    if kind == scan.KIND_DEFERRED:
        return kind
    expected = reference(frame)
    assert expected is not None, f"scanner took a frame msgspec rejects: {frame!r}"
    if kind == scan.KIND_OHLC:
        assert expected[0] == "OHLC", frame
        assert keys == []
        return kind
    expected_kind, values, block = expected
    assert kind == expected_kind, frame
    got = tuple(event[name].item() for name in EVENT_DTYPE.names[1:])
    assert got == values, frame
    # Same value and same sign (msgspec reads "-0" as 0.0 but "-0.0" as -0.0).
    assert [np.signbit(v) for v in got[:2]] == [np.signbit(v) for v in values[:2]], frame
    assert keys == [block], frame
    return kind


# --- the Terminal's shapes are taken -------------------------------------------------------


@pytest.mark.parametrize("kind", ["QUOTE", "TRADE", "OHLC"])
def test_terminal_messages_are_taken(kind):
    expected = {"QUOTE": scan.KIND_QUOTE, "TRADE": scan.KIND_TRADE, "OHLC": scan.KIND_OHLC}
    for frame in (
        compact(message(kind)),
        json.dumps(message(kind)).encode(),  # ", " and ": " separators
        json.dumps(message(kind), indent=2).encode(),
        compact(message(kind, contract={**CONTRACT, "symbol": "SPY"} | {"root": None})),
        compact(message(kind)).decode(),  # a text frame
    ):
        assert assert_agrees(frame) == expected[kind], frame


def test_the_fake_terminals_byte_layout_is_taken():
    # feeds/fakes/thetadata_server.py joins pre-encoded blocks like this.
    frame = (
        b'{"header":{"type":"QUOTE","status":"CONNECTED"},"contract":'
        + compact(CONTRACT)
        + b',"quote":'
        + compact(QUOTE)
        + b"}"
    )
    kind, event, keys = scanned(frame)
    assert kind == scan.KIND_QUOTE and keys == [compact(CONTRACT)]
    assert (event["price"], event["ask"], event["size"], event["ask_size"]) == (1.2, 1.3, 10, 12)
    assert (event["exchange"], event["code"]) == (5, 42)
    assert (event["ms_of_day"], event["date"], event["row"]) == (34_200_000, 20261201, -1)


def test_known_contracts_get_their_row_and_others_are_listed():
    block = compact(CONTRACT)
    frames = [compact(message()), compact(message("TRADE")), compact(message())]
    other = {**CONTRACT, "strike": 610000}
    frames.append(compact(message(contract=other)))
    events = np.empty(4, EVENT_DTYPE)
    kinds = np.empty(4, np.uint8)
    at, keys = scan.scan_messages(frames, {block: 17, compact(other): -2}, events, kinds)
    assert events["row"][:3].tolist() == [17, 17, 17]
    assert at == [3] and keys == [compact(other)]  # a rejected key goes back to the resolver
    assert events["row"][3] == -1


def test_frames_that_are_not_bytes_or_str_are_deferred():
    events = np.empty(2, EVENT_DTYPE)
    kinds = np.empty(2, np.uint8)
    frame = compact(message())
    scan.scan_messages([bytearray(frame), memoryview(frame)], {}, events, kinds)
    assert kinds.tolist() == [scan.KIND_DEFERRED] * 2


def test_too_small_outputs_are_refused():
    with pytest.raises(ValueError, match="one record per frame"):
        scan.scan_messages([b"{}"] * 3, {}, np.empty(2, EVENT_DTYPE), np.empty(3, np.uint8))


# --- edge cases: deferred to msgspec, or taken with msgspec's values ---------------------------

EDGE_CASES = [
    # control messages and unknown types are msgspec's
    b'{"header":{"type":"STATUS","status":"CONNECTED"}}',
    b'{"header":{"type":"REQ_RESPONSE","status":"CONNECTED","response":"SUBSCRIBED","req_id":3}}',
    b'{"header":{"type":"GREEKS","status":"CONNECTED"},"contract":{}}',
    compact(message() | {"header": {"type": "QUOTE", "status": "CONNECTED", "req_id": 1}}),
    compact(message() | {"header": {"type": "QUOTE", "status": None}}),
    compact(message() | {"header": {"status": "CONNECTED"}}),
    # wrong types and ranges
    compact(message(bid="1.2")),
    compact(message(bid=None)),
    compact(message(bid=True)),
    compact(message(bid_size=-1)),
    compact(message(bid_size=4_294_967_295)),
    compact(message(bid_size=4_294_967_296)),
    compact(message(bid_size=10.0)),
    compact(message(ms_of_day=89_999_999)),
    compact(message(ms_of_day=90_000_000)),
    compact(message(date=19700101)),
    compact(message(date=19691231)),
    compact(message(date=20991232)),
    compact(message(bid_exchange=2**70)),
    compact(message(ask_condition=-3)),
    compact(message(ask_condition=2**64)),
    compact(message("TRADE", condition=-1)),
    compact(message("TRADE", sequence=-1)),
    compact(message("OHLC", ms_of_day=-1)),
    compact(message("OHLC", open="1")),
    compact(message("OHLC", volume=1.5)),
    # numbers
    compact(message(bid=0, ask=7)),
    b'{"header":{"type":"QUOTE"},"contract":{},"quote":'
    b'{"ms_of_day":1,"bid_size":1,"bid":-0,"ask_size":1,"ask":-0.0,"date":20260101}}',
    b'{"header":{"type":"QUOTE"},"contract":{},"quote":'
    b'{"ms_of_day":1,"bid_size":1,"bid":1e2,"ask_size":1,"ask":1.5E+2,"date":20260101}}',
    b'{"header":{"type":"QUOTE"},"contract":{},"quote":'
    b'{"ms_of_day":01,"bid_size":1,"bid":1,"ask_size":1,"ask":1,"date":20260101}}',
    b'{"header":{"type":"QUOTE"},"contract":{},"quote":'
    b'{"ms_of_day":1,"bid_size":1,"bid":1.,"ask_size":1,"ask":.5,"date":20260101}}',
    b'{"header":{"type":"QUOTE"},"contract":{},"quote":'
    b'{"ms_of_day":1,"bid_size":1,"bid":0.30000000000000004,"ask_size":1,'
    b'"ask":123456789.123456789,"date":20260101}}',
    b'{"header":{"type":"QUOTE"},"contract":{},"quote":'
    b'{"ms_of_day":1,"bid_size":1,"bid":1e400,"ask_size":1,"ask":1,"date":20260101}}',
    # structure
    compact(message())[:-1],
    compact(message()) + b" \n",
    compact(message()) + b"x",
    compact(message()) + b"{}",
    compact(message()).replace(b'"bid":1.2', b'"bid":1.2,"bid":1.4'),
    compact(message()).replace(b'"header"', b'"header":{"type":"TRADE"},"header"'),
    compact(message() | {"trade": TRADE}),
    compact(message() | {"quote": None}),
    compact(message() | {"contract": None}),
    compact({k: v for k, v in message().items() if k != "contract"}),
    compact({k: v for k, v in message().items() if k != "header"}),
    compact(message() | {"extra": [1, {"a": [None, True, False, "x", -2.5]}, []], "z": {}}),
    compact(message(extra={"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]})),
    compact(message() | {"contract": {**CONTRACT, "root": "S\u00e9Y"}}),
    compact(message() | {"contract": {**CONTRACT, "root": "S\\Y"}}),
    compact(message() | {"contract": {**CONTRACT, "right": "C\n"}}),
    compact(message()).replace(b'"QUOTE"', b'"QUO\\u0054E"'),
    compact(message()).replace(b'"CONNECTED"', b'"\xff"'),
    compact(message()).replace(b'"bid":1.2', b'"bid":1.2 '),
    compact(message()).replace(b"{", b" { ").replace(b",", b"\t,\r\n"),
    b"",
    b"   ",
    b"[]",
    b"null",
    b"{}",
]


@pytest.mark.parametrize("frame", EDGE_CASES)
def test_edge_cases_agree_with_msgspec(frame):
    assert_agrees(frame)


#: Values around every limit of the structs' field types (Size, Code, MsOfDay, Date, int, float).
_PROBES = [-1, 0, -0.0, 1.5, 10.0, "1", None, True, [], {}, 2**63, 2**64, -(2**63) - 1]
_PROBES += [4_294_967_295, 4_294_967_296, 89_999_999, 90_000_000]
_PROBES += [19700101, 19691231, 20991231, 20991232, 10**18 - 1, 10**18]


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_every_field_at_its_limits_agrees_with_msgspec(kind):
    name, body = BLOCKS[kind]
    for field in body:
        for value in _PROBES:
            assert_agrees(compact(message(kind, **{field: value})))
        without = {k: v for k, v in body.items() if k != field}
        assert_agrees(compact(message(kind) | {name: without}))


def test_decimal_prices_are_correctly_rounded():
    rng = random.Random(5)
    for _ in range(5000):
        whole = str(rng.randrange(10 ** rng.randint(0, 9)))
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 18 - len(whole))))
        number = ("-" if rng.random() < 0.2 else "") + whole + "." + fraction
        frame = compact(message()).replace(b'"bid":1.2', f'"bid":{number}'.encode())
        # Every plain decimal of up to 18 digits is taken, with Python's (correct) rounding.
        assert assert_agrees(frame) == scan.KIND_QUOTE, number
        assert scanned(frame)[1]["price"] == float(number), number


# --- generated and mutated messages ----------------------------------------------------------

_scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.sampled_from([0, 1, -1, 4_294_967_295, 4_294_967_296, 19700101, 20991231, 89_999_999]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@st.composite
def messages(draw) -> bytes:
    kind = draw(st.sampled_from(["QUOTE", "TRADE", "OHLC", "STATUS", "REQ_RESPONSE", "X"]))
    base = message(kind) if kind in BLOCKS else {"header": {"type": kind}}
    body_name = BLOCKS.get(kind, ("quote", {}))[0]
    body = dict(base.get(body_name, {}))
    for name in draw(st.lists(st.sampled_from(sorted(set(QUOTE) | set(TRADE) | {"x"})))):
        if draw(st.booleans()):
            body[name] = draw(_values)
        else:
            body.pop(name, None)
    keys = list(body)
    draw(st.randoms()).shuffle(keys)
    base[body_name] = {k: body[k] for k in keys}
    if draw(st.booleans()):
        base[draw(st.sampled_from(["contract", "x", "trade", "ohlc"]))] = draw(_values)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :\n")]))
    text = json.dumps(base, separators=separators, ensure_ascii=draw(st.booleans()))
    return text.encode()


@settings(max_examples=1500, deadline=None)
@given(messages())
def test_generated_messages_agree_with_msgspec(frame):
    assert_agrees(frame)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([compact(message(k)) for k in BLOCKS] + [json.dumps(message()).encode()]),
    st.integers(0, 400),
    st.binary(max_size=3),
    st.integers(0, 3),
)
def test_mutated_bytes_agree_with_msgspec(frame, at, insert, delete):
    assert_agrees(frame[:at] + insert + frame[at + delete :])
