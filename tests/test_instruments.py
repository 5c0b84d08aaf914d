"""Option symbology and the instrument registry."""

from __future__ import annotations

import datetime
import string
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashalpha.instruments import (
    MAX_STRIKE_MILLI,
    InstrumentRegistry,
    OptionContract,
    RegistryFullError,
    default_style,
    parse_compact,
    parse_osi,
    parse_polygon,
    parse_symbol,
    parse_thetadata,
    underlying_of_root,
)
from flashalpha.state.layout import (
    OPTION_COLUMNS,
    UNDERLYING_COLUMNS,
    ExerciseStyle,
    Group,
    Right,
)

SPY_CALL = OptionContract("SPY", datetime.date(2025, 12, 19), 650_000, Right.CALL)
EPOCH = datetime.date(1970, 1, 1)

contracts = st.builds(
    OptionContract,
    root=st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True),
    expiry=st.dates(datetime.date(2000, 1, 1), datetime.date(2099, 12, 31)),
    strike_milli=st.integers(1, MAX_STRIKE_MILLI),
    right=st.sampled_from(Right),
)


# --- symbology --------------------------------------------------------------------------------


def test_the_four_forms_of_one_contract():
    assert SPY_CALL.osi() == "SPY   251219C00650000"
    assert SPY_CALL.polygon() == "O:SPY251219C00650000"
    assert SPY_CALL.compact() == "SPY251219C00650000"
    assert SPY_CALL.thetadata() == {
        "root": "SPY",
        "expiration": 20251219,
        "strike": 650_000,
        "right": "C",
    }
    assert SPY_CALL.strike == 650.0
    assert SPY_CALL.underlying == "SPY"
    assert len(SPY_CALL.osi()) == 21


def test_fractional_strikes_are_exact():
    contract = parse_osi("SPY   260116P00012500")
    assert contract.strike_milli == 12_500
    assert contract.strike == 12.5
    assert parse_compact("XYZ260116P00000001").strike_milli == 1


@given(contracts)
def test_every_string_form_round_trips(contract):
    assert parse_osi(contract.osi()) == contract
    assert parse_polygon(contract.polygon()) == contract
    assert parse_compact(contract.compact()) == contract
    assert parse_thetadata(contract.thetadata()) == contract
    for form in (contract.osi(), contract.polygon(), contract.compact()):
        assert parse_symbol(form) == contract


def test_thetadata_accepts_symbol_key_and_long_rights():
    contract = {"symbol": "SPY", "expiration": 20251219, "strike": 650000, "right": "CALL"}
    assert parse_thetadata(contract) == SPY_CALL
    put = parse_thetadata({"root": "SPY", "expiration": "20251219", "strike": 650000, "right": "P"})
    assert put.right is Right.PUT


def test_contracts_are_frozen_hashable_and_validated():
    with pytest.raises(AttributeError):
        SPY_CALL.strike_milli = 1  # type: ignore[misc]
    assert len({SPY_CALL, parse_symbol("O:SPY251219C00650000")}) == 1
    with pytest.raises(ValueError, match="'spy'"):
        OptionContract("spy", datetime.date(2025, 12, 19), 650_000, Right.CALL)
    with pytest.raises(ValueError, match="strike_milli 0"):
        OptionContract("SPY", datetime.date(2025, 12, 19), 0, Right.CALL)
    with pytest.raises(ValueError, match="1999-12-31"):
        OptionContract("SPY", datetime.date(1999, 12, 31), 1000, Right.CALL)


@pytest.mark.parametrize(
    ("parse", "symbol", "reason"),
    [
        (parse_osi, "XYZ", "3 characters, expected 21"),
        (parse_osi, "SPY   251319C00650000", "expiry month 13"),
        (parse_osi, "SPY   250231C00650000", "expiry day 31 does not exist in 2025-02"),
        (parse_osi, "SPY   251219X00650000", "right 'X' is not C or P"),
        (parse_osi, " SPY  251219C00650000", "left-justified"),
        (parse_osi, "S PY  251219C00650000", "left-justified"),
        (parse_osi, "      251219C00650000", "left-justified"),
        (parse_osi, "SPY   2512a9C00650000", "expiry '2512a9' is not 6 digits"),
        (parse_osi, "SPY   251219C0065000x", "strike '0065000x' is not 8 digits"),
        (parse_osi, "SPY   251219C00000000", "strike is zero"),
        (parse_polygon, "SPY251219C00650000", "'O:' prefix"),
        (parse_polygon, "O:SPY251219C0065000", "strike '0065000' has 7 digits"),
        (parse_compact, "SPY251219C006500000", "strike '006500000' has 9 digits"),
        (parse_polygon, "O:251219C00650000", "root is missing"),
        (parse_compact, "TOOLONGROOT251219C00650000", "root 'TOOLONGROOT' is longer than 6"),
        (parse_compact, "SPY2512190C00650000", "expiry month 21"),
        (parse_compact, "spy251219C00650000", "root 'spy'"),
        (parse_compact, "SP-Y251219C00650000", "root 'SP-Y'"),
        (parse_symbol, "", "expected a 1-6 character root"),
        (parse_symbol, "O:SPY251200C00650000", "expiry day 0"),
    ],
)
def test_malformed_symbols_name_the_value_and_the_reason(parse, symbol, reason):
    with pytest.raises(ValueError) as raised:
        parse(symbol)
    message = str(raised.value)
    assert repr(symbol) in message
    assert reason in message


@pytest.mark.parametrize(
    ("contract", "reason"),
    [
        ({"root": "SPY", "expiration": 20251219, "strike": 650000}, "right None"),
        ({"root": "SPY", "expiration": 20251319, "strike": 650000, "right": "C"}, "20251319"),
        ({"root": "SPY", "expiration": 20251219, "strike": 650.5, "right": "C"}, "strike 650.5"),
        ({"expiration": 20251219, "strike": 650000, "right": "C"}, "root None"),
        ({"root": "SPY", "expiration": 19991231, "strike": 650000, "right": "C"}, "1999-12-31"),
        ("SPY", "expected a mapping"),
    ],
)
def test_malformed_thetadata_contracts_name_the_value(contract, reason):
    with pytest.raises(ValueError, match="malformed ThetaData contract") as raised:
        parse_thetadata(contract)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("symbol", "root", "underlying"),
    [
        ("AAPL1 260116C00150000", "AAPL1", "AAPL"),
        ("2AAPL 260116C00150000", "2AAPL", "AAPL"),
        ("SPXW  260116P05000000", "SPXW", "SPX"),
        ("NDXP  260116P20000000", "NDXP", "NDX"),
        ("VIXW  260116C00020000", "VIXW", "VIX"),
        ("RUTW  260116C02000000", "RUTW", "RUT"),
        ("XSP   260116C00500000", "XSP", "XSP"),
        ("SPXW1 260116C00500000", "SPXW1", "SPX"),
        ("123   260116C00500000", "123", "123"),
    ],
)
def test_adjusted_and_alternate_roots(symbol, root, underlying):
    contract = parse_osi(symbol)
    assert contract.root == root
    assert contract.underlying == underlying == underlying_of_root(root)
    assert parse_compact(contract.compact()) == contract


def test_default_styles():
    for index in ("SPX", "SPXW", "XSP", "NDX", "RUT", "VIX", "XEO", "DJX"):
        assert default_style(index) is ExerciseStyle.EUROPEAN
    # OEX is the one big American-style index option.
    for name in ("SPY", "AAPL", "OEX", "QQQ"):
        assert default_style(name) is ExerciseStyle.AMERICAN


# --- registry ---------------------------------------------------------------------------------


def test_add_is_idempotent_and_registers_the_underlying():
    registry = InstrumentRegistry(capacity=16)
    row = registry.add(SPY_CALL)
    assert row == 0
    assert registry.add(SPY_CALL) == 0
    assert registry.add(parse_polygon("O:SPY251219C00650000"), multiplier=10) == 0
    assert registry.count == 1
    assert registry.underlying_count == 1
    assert registry.underlying_symbol(registry.underlying_ids[0]) == "SPY"
    assert registry.contract(row) == SPY_CALL
    assert registry.multipliers[row] == 100.0
    spxw = parse_osi("SPXW  251219P06000000")
    spx_row = registry.add(spxw)
    assert spx_row == 1
    assert registry.underlying_symbol(registry.underlying_ids[spx_row]) == "SPX"
    assert registry.styles[spx_row] == ExerciseStyle.EUROPEAN
    assert registry.styles[row] == ExerciseStyle.AMERICAN
    assert registry.add(parse_osi("SPX   251219P06000000")) == 2
    assert registry.underlying_count == 2


def test_lookups_by_every_form():
    registry = InstrumentRegistry(capacity=16)
    row = registry.add(SPY_CALL)
    for form in (SPY_CALL.osi(), SPY_CALL.polygon(), SPY_CALL.compact()):
        assert registry.row(form) == row
        assert form in registry
    assert registry.get_row("SPY251219C00650000") == row
    assert registry.get_row("SPY251219P00650000") == -1
    assert registry.get_row("garbage") == -1
    assert registry.get_rows(["SPY251219P00650000", "SPY251219C00650000"]).tolist() == [-1, 0]
    with pytest.raises(KeyError, match="O:SPY251219P00650000"):
        registry.row("O:SPY251219P00650000")
    with pytest.raises(ValueError, match="'SPY   251319C00650000': expiry month 13"):
        registry.row("SPY   251319C00650000")
    assert "SPY   251319C00650000" not in registry
    with pytest.raises(IndexError, match="option row 1"):
        registry.contract(1)


def test_underlyings_are_idempotent_with_styles_and_dividends():
    registry = InstrumentRegistry(capacity=16, underlying_capacity=4)
    spy = registry.add_underlying("SPY", div_yield=0.013)
    assert registry.add_underlying("SPY", ExerciseStyle.EUROPEAN, 0.5) == spy
    spx = registry.add_underlying("SPX")
    custom = registry.add_underlying("BRK.B", ExerciseStyle.EUROPEAN)
    assert registry.underlying_id("SPX") == spx
    assert registry.underlying_symbol(custom) == "BRK.B"
    assert registry.underlying_style(spy) is ExerciseStyle.AMERICAN
    assert registry.underlying_style(spx) is ExerciseStyle.EUROPEAN
    assert registry.underlying_style(custom) is ExerciseStyle.EUROPEAN
    assert registry.underlying_div_yield(spy) == 0.013
    with pytest.raises(KeyError, match="'QQQ'"):
        registry.underlying_id("QQQ")
    with pytest.raises(ValueError, match="'spy'"):
        registry.add_underlying("spy")
    with pytest.raises(ValueError, match="'WAY_TOO_LONG_SYMBOL'"):
        registry.add_underlying("WAY_TOO_LONG_SYMBOL")
    registry.add_underlying("QQQ")
    with pytest.raises(RegistryFullError, match=r"4 underlyings.*'IWM'"):
        registry.add_underlying("IWM")


def test_a_full_registry_says_so():
    registry = InstrumentRegistry(capacity=2)
    registry.add(SPY_CALL)
    with pytest.raises(RegistryFullError, match="1 of 2 option rows used, cannot add 3 more"):
        registry.add_many("QQQ", [20500, 20501, 20502], [1000, 1000, 1000], [0, 0, 0])
    assert registry.count == 1
    registry.add(parse_compact("QQQ260116C00500000"))
    with pytest.raises(RegistryFullError, match="2 of 2"):
        registry.add(parse_compact("QQQ260116P00500000"))


def test_add_many_matches_add_and_is_idempotent():
    days = (datetime.date(2026, 1, 16) - EPOCH).days
    registry = InstrumentRegistry(capacity=100)
    existing = registry.add(parse_compact("AAPL260116C00200000"))
    roots = np.array(["AAPL", "AAPL", "2AAPL", "SPXW", "AAPL", "AAPL"])
    expiries = np.array([days, days, days, days, days, days + 7])
    strikes = np.array([200_000, 200_000, 150_500, 6_000_000, 200_000, 205_000])
    rights = np.array([Right.CALL, Right.PUT, Right.CALL, Right.PUT, Right.PUT, Right.CALL])
    rows = registry.add_many(
        roots, expiries, strikes, rights, multipliers=[100, 100, 20, 100, 100, 100]
    )
    assert rows.dtype == np.uint32
    # the call existed already; the fifth repeats the second; the rest are new in order
    assert rows.tolist() == [existing, 1, 2, 3, 1, 4]
    assert registry.count == 5
    for row, root, expiry, strike, right in zip(
        rows, roots, expiries, strikes, rights, strict=True
    ):
        expected = OptionContract(
            str(root), EPOCH + datetime.timedelta(int(expiry)), int(strike), Right(right)
        )
        assert registry.contract(int(row)) == expected
        assert registry.row(expected.polygon()) == row
    assert registry.multipliers[2] == 20.0
    assert registry.underlying_symbol(registry.underlying_ids[2]) == "AAPL"
    assert registry.underlying_symbol(registry.underlying_ids[3]) == "SPX"
    assert registry.styles.tolist() == [0, 0, 0, 1, 0]
    assert registry.add_many(roots, expiries, strikes, rights).tolist() == rows.tolist()
    datetimes = expiries.astype("datetime64[D]")
    assert registry.add_many("AAPL", datetimes[:2], strikes[:2], rights[:2]).tolist() == [0, 1]
    assert registry.count == 5
    assert registry.add_many("AAPL", [], [], []).shape == (0,)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("AAPL", [20500], [0], [1]), "invalid strike_milli 0"),
        (("AAPL", [20500], [100_000_000], [1]), "invalid strike_milli 100000000"),
        (("AAPL", [20500], [1000.5], [1]), "strikes_milli must be integers"),
        (("AAPL", [20500], [1000], [2]), "invalid right 2"),
        (("AAPL", [-1], [1000], [1]), "invalid expiry"),
        (("aapl", [20500], [1000], [1]), "'aapl'"),
        ((["AAPL", "TOOLONGX"], [20500] * 2, [1000] * 2, [1] * 2), "'TOOLONGX'"),
        ((["AAPL", "A-B"], [20500] * 2, [1000] * 2, [1] * 2), "'A-B'"),
        ((["AAPL", ""], [20500] * 2, [1000] * 2, [1] * 2), "''"),
        ((["AAPL", "ÄPL"], [20500] * 2, [1000] * 2, [1] * 2), "invalid option root"),
        ((["AAPL"], [20500] * 2, [1000] * 2, [1] * 2), "one per contract"),
        (("AAPL", [20500], [1000, 2000], [1]), "one length"),
    ],
)
def test_add_many_rejects_bad_input_before_registering_anything(arguments, message):
    registry = InstrumentRegistry(capacity=10)
    with pytest.raises(ValueError, match=message):
        registry.add_many(*arguments)
    assert registry.count == 0
    assert registry.underlying_count == 0


def test_rows_of_underlying_follow_appends():
    registry = InstrumentRegistry(capacity=100)
    registry.add_many(np.array(["AAA", "BBB", "AAA"]), [20500] * 3, [1000, 1000, 2000], [1, 1, 1])
    aaa, bbb = registry.underlying_id("AAA"), registry.underlying_id("BBB")
    assert registry.rows_of_underlying(aaa).tolist() == [0, 2]
    registry.add(parse_compact("BBB260116P00001000"))
    registry.add_underlying("CCC")
    assert registry.rows_of_underlying(bbb).tolist() == [1, 3]
    assert registry.rows_of_underlying(registry.underlying_id("CCC")).tolist() == []
    with pytest.raises(IndexError):
        registry.rows_of_underlying(3)


def test_static_columns_derive_from_the_layout():
    registry = InstrumentRegistry(capacity=100)
    registry.add_underlying("SPY", div_yield=0.012)
    registry.add(SPY_CALL)
    registry.add(parse_osi("SPXW  251219P06000000"))
    options = registry.option_static(0, 2)
    expected = [c for c in OPTION_COLUMNS if c.group is Group.STATIC]
    assert list(options) == [c.name for c in expected]
    for column in expected:
        assert options[column.name].dtype == column.np_dtype
        assert options[column.name].shape == (2,)
    assert options["osi"].tolist() == [b"SPY   251219C00650000", b"SPXW  251219P06000000"]
    assert options["expiry"][0] == (SPY_CALL.expiry - EPOCH).days
    assert options["strike"].tolist() == [650.0, 6000.0]
    assert options["right"].tolist() == [Right.CALL, Right.PUT]
    underlyings = registry.underlying_static(0, 2)
    static = [c.name for c in UNDERLYING_COLUMNS if c.group is Group.STATIC]
    assert list(underlyings) == [*static, "div_yield"]
    assert underlyings["symbol"].tolist() == [b"SPY", b"SPX"]
    assert underlyings["div_yield"].tolist() == [0.012, 0.0]
    assert registry.option_static(1, 1)["osi"].shape == (0,)
    with pytest.raises(IndexError):
        registry.option_static(0, 3)


def _synthetic_tickers(count: int) -> np.ndarray:
    letters = np.array(list(string.ascii_uppercase))
    index = np.arange(count)
    parts = [letters[index // 26**power % 26] for power in (3, 2, 1, 0)]
    return np.strings.add(np.strings.add(parts[0], parts[1]), np.strings.add(parts[2], parts[3]))


def _grid(underlyings: int, per_underlying: int) -> tuple[np.ndarray, ...]:
    """Roots, expiry days, strikes (1/1000 dollars) and rights of a synthetic listing grid."""
    tickers = _synthetic_tickers(underlyings)
    k = np.tile(np.arange(per_underlying), underlyings)
    roots = np.repeat(tickers, per_underlying)
    expiries = 20_500 + (k // 40) * 7
    strikes = (k % 40 // 2 + 1) * 2_500 + np.repeat(np.arange(underlyings), per_underlying) * 10
    rights = k % 2
    return tickers, roots, expiries, strikes, rights


def test_memory_bytes_agrees_with_the_allocator():
    _, roots, expiries, strikes, rights = _grid(500, 200)
    registry = InstrumentRegistry(capacity=100_000)
    tracemalloc.start()
    try:
        registry.add_many(roots, expiries, strikes, rights)
        traced, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert registry.memory_bytes() == pytest.approx(traced, rel=0.1)


def test_bulk_build_of_a_full_market():
    """1.8M contracts in one call: spot-check rows, lookups and memory per row."""
    underlyings, per_underlying = 5_000, 360
    tickers, roots, expiries, strikes, rights = _grid(underlyings, per_underlying)
    registry = InstrumentRegistry()
    rows = registry.add_many(roots, expiries, strikes, rights)
    total = underlyings * per_underlying
    assert registry.count == total
    assert registry.underlying_count == underlyings
    assert np.array_equal(rows, np.arange(total))
    for row in np.random.default_rng(1).integers(0, total, 50):
        contract = registry.contract(int(row))
        assert contract.root == roots[row]
        assert (contract.expiry - EPOCH).days == expiries[row]
        assert contract.strike_milli == strikes[row]
        assert contract.right == rights[row]
        assert registry.row(contract.polygon()) == row
        assert registry.get_row(contract.compact()) == row
        assert registry.underlying_symbol(registry.underlying_ids[row]) == roots[row]
    uid = registry.underlying_id(str(tickers[1234]))
    assert np.array_equal(
        registry.rows_of_underlying(uid), np.arange(1234 * per_underlying, 1235 * per_underlying)
    )
    # The budget is shm row + registry <= 512 bytes; the registry must stay well under 250.
    bytes_per_row = registry.memory_bytes() / total
    assert bytes_per_row < 250, f"registry costs {bytes_per_row:.0f} bytes per row"
    assert registry.nbytes() / total < 60
