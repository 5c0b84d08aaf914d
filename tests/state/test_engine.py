"""MarketState + StateReader over real shared memory: apply, reject, read, write-back."""

from __future__ import annotations

import numpy as np
import pytest

from flashalpha.state.batch import TickBatch
from flashalpha.state.engine import MarketState
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_TICK_DTYPE,
    RejectKind,
)
from flashalpha.state.reader import StateReader

ROWS = 1000


@pytest.fixture
def state(shm_name, listings):
    state = MarketState.create(shm_name, capacity=4096, underlying_capacity=8)
    state.add_listings(*listings(), rate=0.045)
    yield state
    state.close()


def quotes(rows, bid, ask, ts, size=10):
    records = np.zeros(len(rows), QUOTE_DTYPE)
    records["row"], records["bid"], records["ask"], records["ts"] = rows, bid, ask, ts
    records["bid_size"] = records["ask_size"] = size
    return records


def test_listing_fills_static_and_nulls(state):
    reader = StateReader(state.segment)
    row = reader.read_rows(np.array([7]))[0]
    assert row["osi"] == b"SPY   251219C00007000"
    assert row["strike"] == 7.0
    assert np.isnan(row["bid"]) and np.isnan(row["iv"])
    assert row["volume"] == 0 and row["seq"] == 0
    underlying = reader.read_underlyings()[0]
    assert underlying["symbol"] == b"SPY"
    assert underlying["rate"] == 0.045 and underlying["div_yield"] == 0.012
    assert np.isnan(underlying["spot"])
    assert underlying["contracts"] == 1000


def test_quotes_applied_and_sequenced(state):
    changes = state.apply(TickBatch(quotes=quotes([1, 2, 3], 1.0, 1.2, 100)))
    assert changes.seq == 1 and state.seq == 1
    assert changes.quote_rows.tolist() == [1, 2, 3]
    rows = StateReader(state.segment).read_rows(np.array([1, 2, 3, 4]))
    assert rows["bid"][:3].tolist() == [1.0, 1.0, 1.0]
    assert rows["seq"].tolist() == [1, 1, 1, 0]
    assert np.isnan(rows["bid"][3])


@pytest.mark.parametrize(
    ("bid", "ask", "row", "ts", "kind"),
    [
        (1.3, 1.2, 5, 100, RejectKind.CROSSED),
        (-0.1, 1.2, 5, 100, RejectKind.NEGATIVE),
        (np.nan, 1.2, 5, 100, RejectKind.NOT_FINITE),
        (1.0, np.inf, 5, 100, RejectKind.NOT_FINITE),
        (1.0, 1.2, ROWS, 100, RejectKind.UNKNOWN_ROW),
        (1.0, 1.2, 4095, 100, RejectKind.UNKNOWN_ROW),
        (1.0, 1.2, 9, 50, RejectKind.STALE),
    ],
)
def test_bad_quotes_rejected_counted_and_never_applied(state, bid, ask, row, ts, kind):
    state.apply(TickBatch(quotes=quotes([9], 2.0, 2.5, 80)))
    before = StateReader(state.segment).read_rows(np.arange(ROWS))
    good_and_bad = np.concatenate([quotes([row], bid, ask, ts), quotes([3], 1.0, 1.1, 90)])
    changes = state.apply(TickBatch(quotes=good_and_bad))
    assert changes.rejected == 1 and changes.quote_rows.tolist() == [3]
    assert state.rejects()[kind] == 1
    after = StateReader(state.segment).read_rows(np.arange(ROWS))
    untouched = np.arange(ROWS) != 3
    assert after[untouched].tobytes() == before[untouched].tobytes()


def test_trades_accumulate_volume_and_keep_newest_last(state):
    trades = np.zeros(3, TRADE_DTYPE)
    trades["row"] = 4
    trades["price"] = [1.5, 1.7, 1.6]
    trades["size"] = [10, 5, 7]
    trades["ts"] = [100, 300, 200]  # the third is a late report
    state.apply(TickBatch(trades=trades))
    row = StateReader(state.segment).read_rows(np.array([4]))[0]
    assert row["volume"] == 22
    assert row["last"] == 1.7 and row["last_size"] == 5 and row["ts_trade"] == 300


def test_session_reset_clears_trades_only_and_carry_rebuilds_the_rest(state, shm_name, listings):
    assert len(state.reset_session()) == 0 and state.seq == 0  # nothing traded: no seq used
    trades = np.zeros(2, TRADE_DTYPE)
    trades["row"], trades["price"], trades["size"], trades["ts"] = [4, 5], 1.5, 10, 100
    spot = np.zeros(1, UNDERLYING_TICK_DTYPE)
    spot["price"], spot["ts"] = 601.5, 50
    interest = np.zeros(1, OPEN_INTEREST_DTYPE)
    interest["row"], interest["open_interest"] = 6, 900
    state.apply(TickBatch(quotes=quotes([5, 6], 1.4, 1.6, 90), trades=trades))
    state.apply(TickBatch(underlyings=spot, open_interest=interest))
    cleared = state.reset_session()
    assert cleared.seq == state.seq == 3 and sorted(cleared.trade_rows) == [4, 5]
    reader = StateReader(state.segment)
    rows = reader.read_rows(np.array([4, 5, 6]))
    assert list(rows["volume"]) == [0, 0, 0] and np.isnan(rows["last"]).all()
    assert list(rows["ts_trade"]) == [0, 0, 0] and list(rows["seq"][:2]) == [3, 3]
    assert list(rows["bid"][1:]) == [1.4, 1.4] and rows["open_interest"][2] == 900
    carry = state.session_carry(ts_received=1_000)
    assert list(carry.quotes["row"]) == [5, 6] and list(carry.open_interest["row"]) == [6]
    assert carry.underlyings["price"][0] == 601.5 and len(carry.trades) == 0

    fresh = MarketState.create(shm_name + "-fresh", capacity=4096, underlying_capacity=8)
    try:
        fresh.add_listings(*listings(), rate=0.045)
        fresh.apply(carry)
        rebuilt = StateReader(fresh.segment).read_rows(np.arange(ROWS, dtype=np.uint32))
        held = reader.read_rows(np.arange(ROWS, dtype=np.uint32))
        for column in ("bid", "ask", "bid_size", "ts_quote", "volume", "last", "open_interest"):
            np.testing.assert_array_equal(rebuilt[column], held[column], err_msg=column)
        assert fresh.underlying_column("spot")[0] == 601.5
    finally:
        fresh.close()


def test_bad_trades_rejected(state):
    trades = np.zeros(3, TRADE_DTYPE)
    trades["row"] = [4, 4, 99999]
    trades["price"] = [np.nan, 0.0, 1.0]
    trades["size"] = [1, 1, 1]
    changes = state.apply(TickBatch(trades=trades))
    assert len(changes.trade_rows) == 0
    rejects = state.rejects()
    assert rejects[RejectKind.NOT_FINITE] == 1
    assert rejects[RejectKind.NEGATIVE] == 1
    assert rejects[RejectKind.UNKNOWN_ROW] == 1


def test_underlyings_and_open_interest(state):
    ticks = np.zeros(3, UNDERLYING_TICK_DTYPE)
    ticks["underlying"] = [0, 0, 3]
    ticks["price"] = [600.0, 601.0, 10.0]
    ticks["ts"] = [10, 5, 10]
    changes = state.apply(TickBatch(underlyings=ticks))
    assert changes.underlying_ids.tolist() == [0]
    assert state.rejects()[RejectKind.STALE] == 1
    assert state.rejects()[RejectKind.UNKNOWN_ROW] == 1
    oi = np.zeros(1, OPEN_INTEREST_DTYPE)
    oi["row"], oi["open_interest"] = 8, 12345
    state.apply(TickBatch(open_interest=oi))
    reader = StateReader(state.segment)
    assert reader.read_underlyings()["spot"][0] == 600.0
    assert reader.read_rows(np.array([8]))["open_interest"][0] == 12345


def test_empty_batch_keeps_seq(state):
    assert state.apply(TickBatch()).seq == 0 and state.seq == 0


def test_write_columns_skips_rows_changed_after_pricing(state):
    state.apply(TickBatch(quotes=quotes([1, 2], 1.0, 1.2, 100)))  # seq 1
    state.apply(TickBatch(quotes=quotes([2], 1.1, 1.3, 200)))  # seq 2: row 2 moved on
    written = state.write_columns(
        np.array([1, 2]), {"iv": np.array([0.2, 0.3])}, computed_at_seq=np.array([1, 1])
    )
    assert written == 1
    rows = StateReader(state.segment).read_rows(np.array([1, 2]))
    assert rows["iv"][0] == 0.2 and np.isnan(rows["iv"][1])


def test_write_columns_rejects_unregistered_rows(state):
    with pytest.raises(IndexError, match="row 5000"):
        state.write_columns(np.array([5000]), {"iv": np.array([0.2])})


def test_capacity_overflow_is_clear(shm_name, listings):
    state = MarketState.create(shm_name, capacity=10, underlying_capacity=1)
    try:
        with pytest.raises(OverflowError, match="capacity 10"):
            state.add_listings(*listings(11))
    finally:
        state.close()


def test_status_document_round_trip(state):
    reader = StateReader(state.segment)
    assert reader.status() == {}
    state.set_status(b'{"feed": "synthetic", "events": 3}')
    assert reader.status() == {"feed": "synthetic", "events": 3}


def test_attach_reader_sees_writes_and_counters(state, shm_name):
    state.apply(TickBatch(quotes=quotes([0], 3.0, 3.5, 1)))
    with StateReader.attach(shm_name) as reader:
        assert reader.seq == 1 and reader.count == ROWS
        assert reader.read_rows(np.array([0]))["ask"][0] == 3.5
        assert reader.counters()["quotes"] == 1
        assert reader.underlying_id("spy") == 0
        assert reader.row_of_osi("SPY   251219C00002000") == 2
        with pytest.raises(KeyError, match="QQQ"):
            reader.underlying_id("QQQ")
        with pytest.raises(IndexError):
            reader.read_rows(np.array([ROWS]))
