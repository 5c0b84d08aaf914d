"""The API's row rendering is the state's public row, field for field."""

from __future__ import annotations

import msgspec
import numpy as np

from flashalpha.api.schemas import ContractRow, contract_structs, underlying_rows
from flashalpha.state.layout import OPTION_ROW_DTYPE, UNDERLYING_ROW_DTYPE, ExerciseStyle
from flashalpha.state.rows import ROW_FIELDS, contract_rows


def random_records(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    records = np.zeros(n, OPTION_ROW_DTYPE)
    roots = ["SPY", "QQQ", "BRKB", "SPXW"]
    uids = rng.integers(0, len(roots), n)
    records["underlying_id"] = uids
    records["osi"] = [
        f"{roots[u]:<6}{rng.integers(250101, 301231)}{'CP'[rng.integers(0, 2)]}"
        f"{rng.integers(0, 10**8):08d}".encode()
        for u in uids
    ]
    records["expiry"] = rng.integers(19_000, 22_000, n)
    records["right"] = rng.integers(0, 2, n)
    for name in OPTION_ROW_DTYPE.names:
        kind = OPTION_ROW_DTYPE[name].kind
        if kind == "f" and name not in ("strike",):
            values = rng.uniform(-1, 50, n)
            values[rng.random(n) < 0.3] = np.nan
            records[name] = values
        elif kind == "u" and name.startswith("ts_"):
            records[name] = np.where(rng.random(n) < 0.3, 0, rng.integers(1, 2**62, n))
        elif kind == "u" and name not in ("underlying_id", "right"):
            records[name] = rng.integers(0, 1000, n)
    records["strike"] = rng.integers(1, 10_000, n) / 2
    return records


def test_contract_structs_equal_contract_rows():
    symbols = np.array([b"SPY", b"QQQ", b"BRK.B", b"SPX"])
    for seed in range(5):
        records = random_records(500, seed)
        expected = contract_rows(records, symbols)
        got = contract_structs(records, symbols)
        assert all(isinstance(row, ContractRow) for row in got)
        assert msgspec.to_builtins(got) == expected
        assert msgspec.json.encode(got) == msgspec.json.encode(expected)
    assert contract_structs(records[:0], symbols) == []
    assert ContractRow.__struct_fields__ == ROW_FIELDS


def test_no_nan_survives_rendering():
    records = random_records(200, 9)
    records["bid"] = np.nan
    encoded = msgspec.json.encode(contract_structs(records, np.array([b"A"] * 4)))
    assert b"NaN" not in encoded and b'"bid":null' in encoded


def test_underlying_rows():
    records = np.zeros(2, UNDERLYING_ROW_DTYPE)
    records["symbol"] = [b"SPY", b"SPX"]
    records["style"] = [ExerciseStyle.AMERICAN, ExerciseStyle.EUROPEAN]
    records["spot"] = [651.5, np.nan]
    records["ts_spot"] = [17, 0]
    records["rate"] = 0.045
    records["div_yield"] = [0.012, np.nan]
    records["seq"] = [4, 0]
    records["contracts"] = [8022, 24084]
    rows = underlying_rows(records)
    assert rows == [
        {
            "symbol": "SPY",
            "spot": 651.5,
            "spot_ts": 17,
            "rate": 0.045,
            "div_yield": 0.012,
            "style": "american",
            "contracts": 8022,
            "seq": 4,
        },
        {
            "symbol": "SPX",
            "spot": None,
            "spot_ts": None,
            "rate": 0.045,
            "div_yield": None,
            "style": "european",
            "contracts": 24084,
            "seq": 0,
        },
    ]
