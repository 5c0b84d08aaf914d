"""Readers in another process never see a torn row while the writer hammers the same rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from flashalpha.state.batch import TickBatch
from flashalpha.state.engine import MarketState
from flashalpha.state.layout import QUOTE_DTYPE

READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from flashalpha.state.reader import StateReader

    reader = StateReader.attach(sys.argv[1])
    rows = np.arange(1000, dtype=np.uint32)
    reads = torn = 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        records = reader.read_rows(rows)
        written = ~np.isnan(records["bid"])
        bid, ask = records["bid"][written], records["ask"][written]
        # The writer keeps ask = bid + 0.5, bid_size = bid and ts_quote = bid for every row.
        torn += int(np.count_nonzero(
            (ask != bid + 0.5) | (records["bid_size"][written] != bid)
            | (records["ts_quote"][written] != bid)
        ))
        reads += 1
    print(reads, torn)
    reader.close()
    """
)


def test_no_torn_rows_under_concurrent_writes(shm_name, listings):
    state = MarketState.create(shm_name, capacity=4096, underlying_capacity=8)
    state.add_listings(*listings())
    try:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, shm_name, "3"], stdout=subprocess.PIPE, text=True
        )
        quotes = np.zeros(1000, QUOTE_DTYPE)
        quotes["row"] = np.arange(1000)
        value = 1
        while reader.poll() is None:
            quotes["bid"] = value
            quotes["ask"] = value + 0.5
            quotes["bid_size"] = value
            quotes["ts"] = value
            state.apply(TickBatch(quotes=quotes))
            value += 1
        reads, torn = map(int, reader.stdout.read().split())
        assert reader.returncode == 0
        assert value > 100 and reads > 10  # both sides really ran concurrently
        assert torn == 0
    finally:
        state.close()
