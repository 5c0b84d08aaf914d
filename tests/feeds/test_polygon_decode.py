"""Polygon frames into batches: typed decoding, mapping, and rejects that name the value."""

from __future__ import annotations

import json

import pytest

from flashalpha.feeds.normalize import Exchange, TradeCondition
from flashalpha.feeds.polygon import PolygonDecoder, PolygonStatus
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.layout import RejectKind

QUOTE = {
    "ev": "Q",
    "sym": "O:SPY261218C00600000",
    "bx": 302,
    "ax": 313,
    "bp": 1.25,
    "ap": 1.3,
    "bs": 10,
    "as": 12,
    "t": 1_766_000_000_123,
    "q": 7,
}
TRADE = {
    "ev": "T",
    "sym": "O:SPY261218P00550000",
    "x": 322,
    "p": 0.45,
    "s": 3,
    "c": [219],
    "t": 1_766_000_000_456,
    "q": 9,
}


@pytest.fixture
def decoder():
    rejects = []
    decoder = PolygonDecoder(InstrumentRegistry(1000, 10), lambda *a: rejects.append(a))
    decoder.rejects = rejects
    return decoder


def frame(*events) -> bytes:
    return json.dumps(list(events)).encode()


def test_quotes_and_trades(decoder):
    batch, statuses = decoder.decode([frame(QUOTE, TRADE)], 1_766_000_000_500_000_000)
    assert statuses == []
    registry = decoder.resolver.registry
    quote, trade = batch.quotes[0], batch.trades[0]
    assert quote["row"] == registry.get_row("SPY261218C00600000")
    assert (quote["bid"], quote["ask"], quote["bid_size"], quote["ask_size"]) == (1.25, 1.3, 10, 12)
    assert quote["bid_exchange"] == Exchange.CBOE and quote["ask_exchange"] == Exchange.NYSE_ARCA
    assert quote["ts"] == 1_766_000_000_123 * 1_000_000
    assert trade["row"] == registry.get_row("SPY261218P00550000")
    assert (trade["price"], trade["size"]) == (0.45, 3)
    assert trade["exchange"] == Exchange.CBOE_C2
    assert trade["condition"] == TradeCondition.INTERMARKET_SWEEP
    assert trade["ts"] == 1_766_000_000_456 * 1_000_000
    assert registry.count == 2 and decoder.rejects == []


def test_a_burst_of_frames_is_one_batch(decoder):
    frames = [
        frame(QUOTE),
        frame(TRADE, QUOTE),
        frame({"ev": "status", "status": "success", "message": "x"}),
    ]
    batch, statuses = decoder.decode(frames, 0)
    assert (len(batch.quotes), len(batch.trades)) == (2, 1)
    assert statuses == [PolygonStatus("success", "x")]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (b'[{"ev":"Q","sym":"O:SPY261218C00600000","bx":302', "not a JSON array"),  # partial
        (b"this is not json", "not a JSON array"),
        (frame({**QUOTE, "bp": "1.25"}), "Expected `float`, got `str`"),  # wrong type
        (frame({**QUOTE, "bs": -5}), "Expected `int` >= 0"),  # negative size
        (frame({**TRADE, "t": 1.5}), "Expected `int`, got `float`"),
        (frame({"ev": "XQ", "sym": "O:SPY261218C00600000"}), "Invalid value 'XQ'"),  # unknown event
        (frame({"sym": "O:SPY261218C00600000"}), "missing required field `ev`"),
        (frame({**QUOTE, "sym": 5}), "Expected `str`, got `int`"),
    ],
)
def test_bad_input_is_rejected_and_counted_good_events_kept(decoder, bad, named):
    batch, _ = decoder.decode([frame(TRADE), bad, frame(QUOTE)], 0)
    assert (len(batch.quotes), len(batch.trades)) == (1, 1)
    assert decoder.decode_errors == 1
    [(kind, message, count)] = decoder.rejects
    assert kind is RejectKind.MALFORMED and count == 1
    assert named in message


def test_one_bad_event_of_a_frame_does_not_sink_the_frame(decoder):
    batch, _ = decoder.decode([frame(QUOTE, {**QUOTE, "ap": None}, TRADE)], 0)
    assert (len(batch.quotes), len(batch.trades)) == (1, 1)
    assert decoder.decode_errors == 1


def test_unparseable_symbol_is_rejected_naming_it(decoder):
    batch, _ = decoder.decode([frame({**QUOTE, "sym": "O:SPY26121C600"}, QUOTE)], 0)
    assert len(batch.quotes) == 1
    [(kind, message, _)] = decoder.rejects
    assert kind is RejectKind.UNKNOWN_SYMBOL and "O:SPY26121C600" in message


def test_aggregates_are_decoded_and_counted(decoder):
    aggregate = {"ev": "AM", "sym": QUOTE["sym"], "v": 5, "o": 1.0, "c": 1.1, "h": 1.2, "l": 0.9}
    batch, _ = decoder.decode([frame(aggregate, {**aggregate, "ev": "A"})], 0)
    assert len(batch) == 0 and decoder.aggregates == 2 and decoder.rejects == []
