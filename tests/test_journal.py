"""The journal: blocks round-trip, torn tails are ignored, files rotate by New York day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from flashalpha.journal import (
    BLOCK_HEADER,
    FILE_HEADER,
    JournalWriter,
    journal_files,
    read_blocks,
    read_entries,
    trading_day,
)
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import QUOTE_DTYPE, TRADE_DTYPE

# 2026-03-08 is the day US clocks spring forward; 04:59:59 UTC is still the 7th in New York.
BEFORE_MIDNIGHT_NY = int(dt.datetime(2026, 3, 8, 4, 59, 59, tzinfo=dt.UTC).timestamp() * 1e9)
AFTER_MIDNIGHT_NY = int(dt.datetime(2026, 3, 8, 5, 0, 1, tzinfo=dt.UTC).timestamp() * 1e9)


def batch(n: int, ts: int, offset: int = 0) -> TickBatch:
    quotes = np.zeros(n, QUOTE_DTYPE)
    quotes["row"] = np.arange(n) + offset
    quotes["bid"], quotes["ask"], quotes["ts"] = 1.0, 1.5, ts
    trades = np.zeros(1, TRADE_DTYPE)
    trades["row"], trades["price"], trades["size"] = offset, 1.2, 3
    return TickBatch(quotes=quotes, trades=trades, ts_received=ts)


def test_trading_day_is_new_york():
    assert trading_day(BEFORE_MIDNIGHT_NY) == dt.date(2026, 3, 7)
    assert trading_day(AFTER_MIDNIGHT_NY) == dt.date(2026, 3, 8)


@pytest.mark.parametrize("fsync", ["never", "batch", "interval"])
def test_batches_round_trip(tmp_path, fsync):
    writer = JournalWriter(tmp_path, fsync=fsync)
    written = [batch(5, AFTER_MIDNIGHT_NY + i, offset=i) for i in range(3)]
    for seq, item in enumerate(written, start=1):
        writer.append_batch(item, seq)
    writer.close()
    entries = list(read_entries(writer.path))
    assert [e.seq for e in entries] == [1, 2, 3]
    for entry, original in zip(entries, written, strict=True):
        # Field by field: numpy does not promise to copy the padding bytes of aligned records.
        assert np.array_equal(entry.batch.quotes, original.quotes)
        assert np.array_equal(entry.batch.trades, original.trades)
        assert len(entry.batch.underlyings) == 0


def test_rotation_by_new_york_day(tmp_path):
    writer = JournalWriter(tmp_path, fsync="never")
    rotations = []
    writer.on_rotate = lambda w: rotations.append((w.path.name, w.resumed))
    writer.append_batch(batch(1, BEFORE_MIDNIGHT_NY), 1)
    writer.append_batch(batch(1, AFTER_MIDNIGHT_NY), 2)
    writer.close()
    assert [p.name for p in journal_files(tmp_path)] == [
        "2026-03-07.journal",
        "2026-03-08.journal",
    ]
    assert rotations == [("2026-03-07.journal", False), ("2026-03-08.journal", False)]
    reopened = JournalWriter(tmp_path, fsync="never")
    reopened.on_rotate = lambda w: rotations.append((w.path.name, w.resumed))
    reopened.append_batch(batch(1, AFTER_MIDNIGHT_NY), 3)
    reopened.close()
    assert rotations[-1] == ("2026-03-08.journal", True)
    assert [e.seq for e in read_entries(tmp_path / "2026-03-08.journal")] == [2, 3]


def test_torn_tail_is_ignored(tmp_path):
    writer = JournalWriter(tmp_path, fsync="never")
    writer.append_batch(batch(4, AFTER_MIDNIGHT_NY), 1)
    writer.append_batch(batch(4, AFTER_MIDNIGHT_NY), 2)
    writer.close()
    data = writer.path.read_bytes()
    writer.path.write_bytes(data[:-10])  # a crash in the middle of the last block
    assert [e.seq for e in read_entries(writer.path)] == [1, 2]
    blocks = list(read_blocks(writer.path))
    assert [kind.name for kind, *_ in blocks] == ["QUOTES", "TRADES", "QUOTES"]


def test_corrupted_block_stops_reading(tmp_path):
    writer = JournalWriter(tmp_path, fsync="never")
    writer.append_batch(batch(4, AFTER_MIDNIGHT_NY), 1)
    writer.append_batch(batch(4, AFTER_MIDNIGHT_NY), 2)
    writer.close()
    data = bytearray(writer.path.read_bytes())
    first_payload = FILE_HEADER.size + BLOCK_HEADER.size
    data[first_payload + 20] ^= 0xFF
    writer.path.write_bytes(bytes(data))
    assert list(read_blocks(writer.path)) == []


def test_foreign_files_are_refused_by_name(tmp_path):
    path = tmp_path / "x.journal"
    path.write_bytes(b"not a journal at all, just bytes")
    with pytest.raises(ValueError, match=r"x\.journal"):
        list(read_blocks(path))
    with pytest.raises(FileNotFoundError, match="nope"):
        journal_files(tmp_path / "nope")


def test_wrong_dtype_refused(tmp_path):
    writer = JournalWriter(tmp_path, fsync="never")
    from flashalpha.journal import BlockKind

    with pytest.raises(TypeError, match="QUOTES"):
        writer.append_blocks([(BlockKind.QUOTES, np.zeros(2, TRADE_DTYPE))], 1, AFTER_MIDNIGHT_NY)
    writer.close()


def test_unknown_fsync_policy_named(tmp_path):
    with pytest.raises(ValueError, match="sometimes"):
        JournalWriter(tmp_path, fsync="sometimes")
