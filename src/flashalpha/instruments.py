"""Option symbology (OCC/OSI, Polygon, compact, ThetaData) and the instrument registry.

Four spellings of one listed option, SPY Dec 19 2025 650 call:

- OSI (OCC) symbol, 21 characters: root left-justified and space-padded to 6, YYMMDD, C/P,
  strike x 1000 as 8 digits: ``"SPY   251219C00650000"``.
- Polygon: ``"O:SPY251219C00650000"`` (root unpadded).
- compact, our registry key: ``"SPY251219C00650000"``.
- ThetaData's contract object: ``{"root": "SPY", "expiration": 20251219, "strike": 650000,
  "right": "C"}`` (strike in 1/1000 dollars).

Roots are 1-6 characters of ``[A-Z0-9]``; adjusted roots after corporate actions carry digits
(``AAPL1``, ``2AAPL``). A root's underlying strips those digits and maps the few known
alternate index roots (``SPXW`` -> ``SPX``).

`InstrumentRegistry` hands out the dense row ids the market state is indexed by: option rows
0..count-1 and, separately, underlying ids 0..underlying_count-1, both append-only. Its columns
are numpy arrays typed by `state.layout`, so the daemon copies newly registered rows into shared
memory with `option_static(start, stop)` / `underlying_static(start, stop)`.
"""

from __future__ import annotations

import datetime
import itertools
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import numpy as np

from flashalpha.state.layout import (
    OPTION_COLUMNS,
    OSI_WIDTH,
    UNDERLYING_COLUMN_BY_NAME,
    UNDERLYING_COLUMNS,
    UNDERLYING_SYMBOL_WIDTH,
    ExerciseStyle,
    Group,
    Right,
)

__all__ = [
    "AM_SETTLED_ROOTS",
    "AM_SETTLEMENT_LEAD_NS",
    "EUROPEAN_UNDERLYINGS",
    "ROOT_UNDERLYINGS",
    "InstrumentRegistry",
    "OptionContract",
    "RegistryFullError",
    "am_settled",
    "am_settled_roots",
    "default_style",
    "parse_compact",
    "parse_osi",
    "parse_polygon",
    "parse_symbol",
    "parse_thetadata",
    "underlying_of_root",
]

#: Cash-settled index options, which are European-style. OEX (S&P 100) is the exception among
#: the big index products: it is American-style, so it is deliberately absent; XEO is its
#: European twin.
EUROPEAN_UNDERLYINGS: Final = frozenset(
    {
        "SPX",
        "SPXW",
        "XSP",
        "NDX",
        "NDXP",
        "RUT",
        "RUTW",
        "VIX",
        "VIXW",
        "DJX",
        "XEO",
        "MXEF",
        "MXEA",
    }
)

#: Roots whose options settle a.m.: on a settlement value computed from the opening prints of
#: the expiry date (SPX's Special Opening Quotation), so they stop trading the day before and
#: their expiry instant is 09:30 New York, not the 16:00 close. The standard monthly index
#: series; their p.m.-settled siblings (SPXW, NDXP, RUTW) and XSP are absent. VIX options,
#: weeklies included, settle on the VRO, also from the opening.
AM_SETTLED_ROOTS: Final = frozenset({"SPX", "NDX", "RUT", "DJX", "VIX", "VIXW"})
#: From an a.m. settlement (09:30) to the close (16:00) of the same New York day, in ns: the
#: same on daylight-saving days, whose shifts happen at 02:00.
AM_SETTLEMENT_LEAD_NS: Final = (6 * 3600 + 30 * 60) * 1_000_000_000
_AM_ROOTS = np.array(sorted(AM_SETTLED_ROOTS), "S6")


def am_settled_roots(roots: np.ndarray) -> np.ndarray:
    """True for each root (``S6`` bytes, space-padded as in OSI or not) in `AM_SETTLED_ROOTS`."""
    return np.isin(np.char.rstrip(np.asarray(roots, "S6")), _AM_ROOTS)


def am_settled(osi_symbols: np.ndarray) -> np.ndarray:
    """True for each OSI symbol (``S21`` bytes, as the registry and the state hold them) whose
    root settles a.m. (`AM_SETTLED_ROOTS`)."""
    return am_settled_roots(np.asarray(osi_symbols, f"S{OSI_WIDTH}").astype("S6"))


#: Alternate roots listed on an index whose ticker differs from the root (weeklies, PM-settled).
ROOT_UNDERLYINGS: Final[Mapping[str, str]] = {
    "SPXW": "SPX",
    "NDXP": "NDX",
    "RUTW": "RUT",
    "VIXW": "VIX",
}

#: The earliest and latest expiry a two-digit OSI year can spell.
MIN_EXPIRY: Final = datetime.date(2000, 1, 1)
MAX_EXPIRY: Final = datetime.date(2099, 12, 31)
#: The largest strike the 8-digit OSI field holds: $99,999.999.
MAX_STRIKE_MILLI: Final = 99_999_999

_ROOT_WIDTH: Final = 6
_EPOCH: Final = datetime.date(1970, 1, 1)
_EPOCH_ORDINAL: Final = _EPOCH.toordinal()
_MIN_EXPIRY_DAYS: Final = (MIN_EXPIRY - _EPOCH).days
_MAX_EXPIRY_DAYS: Final = (MAX_EXPIRY - _EPOCH).days
_ROOT_PATTERN: Final = re.compile(r"[A-Z0-9]{1,6}")
_UNDERLYING_PATTERN: Final = re.compile(r"[A-Z0-9^][A-Z0-9./^_-]{0,15}")
#: Everything after the root, common to the OSI, Polygon and compact forms (15 characters).
_TAIL_PATTERN: Final = re.compile(r"(\d\d)(\d\d)(\d\d)([CP])(\d{8})")
_TAIL_LENGTH: Final = 15
_RIGHT_BY_LETTER: Final = {"C": Right.CALL, "P": Right.PUT}
_LETTER_BY_RIGHT: Final = {Right.CALL: "C", Right.PUT: "P"}
_THETADATA_RIGHTS: Final = {"C": Right.CALL, "CALL": Right.CALL, "P": Right.PUT, "PUT": Right.PUT}
_DIGITS: Final = "0123456789"


class RegistryFullError(RuntimeError):
    """The registry reached its fixed capacity (the shared-memory segment's row count)."""


def underlying_of_root(root: str) -> str:
    """The underlying ticker an option root belongs to.

    Known alternate index roots map to their index (``SPXW`` -> ``SPX``); adjustment digits are
    stripped (``AAPL1`` -> ``AAPL``, ``2AAPL`` -> ``AAPL``). A root made only of digits is its
    own underlying.
    """
    mapped = ROOT_UNDERLYINGS.get(root)
    if mapped is not None:
        return mapped
    stripped = root.strip(_DIGITS)
    if not stripped:
        return root
    return ROOT_UNDERLYINGS.get(stripped, stripped)


def default_style(underlying: str) -> ExerciseStyle:
    """EUROPEAN for the cash-settled indexes in `EUROPEAN_UNDERLYINGS`, AMERICAN otherwise."""
    return ExerciseStyle.EUROPEAN if underlying in EUROPEAN_UNDERLYINGS else ExerciseStyle.AMERICAN


class OptionContract(msgspec.Struct, frozen=True):
    """One listed option, identified exactly.

    `strike_milli` is the strike in 1/1000 dollars as OCC spells it, so equality and hashing are
    exact; `strike` gives dollars as a float. `expiry` is the expiration date (the last trading
    day for the symbology; the time of day is the pricing's business).
    """

    root: str
    expiry: datetime.date
    strike_milli: int
    right: Right

    def __post_init__(self) -> None:
        _check_contract(self.root, self.expiry, self.strike_milli, self.right)

    @property
    def strike(self) -> float:
        """Strike in dollars."""
        return self.strike_milli / 1000.0

    @property
    def underlying(self) -> str:
        """The underlying's ticker: see `underlying_of_root`."""
        return underlying_of_root(self.root)

    @property
    def is_call(self) -> bool:
        return self.right is Right.CALL

    def _tail(self) -> str:
        expiry = self.expiry
        return (
            f"{expiry.year % 100:02d}{expiry.month:02d}{expiry.day:02d}"
            f"{_LETTER_BY_RIGHT[self.right]}{self.strike_milli:08d}"
        )

    def osi(self) -> str:
        """The 21-character OCC/OSI symbol, e.g. ``"SPY   251219C00650000"``."""
        return f"{self.root:<6}{self._tail()}"

    def polygon(self) -> str:
        """Polygon's ticker, e.g. ``"O:SPY251219C00650000"``."""
        return f"O:{self.root}{self._tail()}"

    def compact(self) -> str:
        """The registry key, e.g. ``"SPY251219C00650000"``."""
        return f"{self.root}{self._tail()}"

    def thetadata(self) -> dict[str, Any]:
        """ThetaData's contract object: expiration as int YYYYMMDD, strike in 1/1000 dollars."""
        expiry = self.expiry
        return {
            "root": self.root,
            "expiration": expiry.year * 10_000 + expiry.month * 100 + expiry.day,
            "strike": self.strike_milli,
            "right": _LETTER_BY_RIGHT[self.right],
        }

    def __str__(self) -> str:
        return self.compact()


def _check_contract(root: object, expiry: object, strike_milli: object, right: object) -> None:
    """Validate an `OptionContract`'s fields; messages name the offending value."""
    if not isinstance(root, str) or not _ROOT_PATTERN.fullmatch(root):
        raise ValueError(f"invalid option root {root!r}: expected 1-6 characters of A-Z, 0-9")
    if type(expiry) is not datetime.date:
        raise ValueError(f"invalid expiry {expiry!r}: expected a datetime.date")
    if not MIN_EXPIRY <= expiry <= MAX_EXPIRY:
        raise ValueError(f"invalid expiry {expiry}: OSI symbols span {MIN_EXPIRY}..{MAX_EXPIRY}")
    if (
        not isinstance(strike_milli, int)
        or isinstance(strike_milli, bool)
        or not 0 < strike_milli <= MAX_STRIKE_MILLI
    ):
        raise ValueError(
            f"invalid strike_milli {strike_milli!r}: expected an int in 1..{MAX_STRIKE_MILLI} "
            "(1/1000 dollars)"
        )
    if not isinstance(right, Right):
        raise ValueError(f"invalid right {right!r}: expected Right.CALL or Right.PUT")


def _parse_tail(kind: str, symbol: str, root: str, tail: str) -> OptionContract:
    """Parse root + the 15-character YYMMDD/right/strike tail, diagnosing any malformation."""
    if not _ROOT_PATTERN.fullmatch(root):
        raise ValueError(
            f"malformed {kind} symbol {symbol!r}: root {root!r} is not 1-6 characters of A-Z, 0-9"
        )
    match = _TAIL_PATTERN.fullmatch(tail)
    if match is None:
        raise ValueError(f"malformed {kind} symbol {symbol!r}: {_diagnose_tail(tail)}")
    year, month, day, letter, strike = match.groups()
    month_number, day_number = int(month), int(day)
    if not 1 <= month_number <= 12:
        raise ValueError(f"malformed {kind} symbol {symbol!r}: expiry month {month_number}")
    try:
        expiry = datetime.date(2000 + int(year), month_number, day_number)
    except ValueError:
        raise ValueError(
            f"malformed {kind} symbol {symbol!r}: expiry day {day_number} does not exist in "
            f"{2000 + int(year)}-{month}"
        ) from None
    strike_milli = int(strike)
    if strike_milli == 0:
        raise ValueError(f"malformed {kind} symbol {symbol!r}: strike is zero")
    return OptionContract(root, expiry, strike_milli, _RIGHT_BY_LETTER[letter])


def _diagnose_tail(tail: str) -> str:
    """Say which part of a YYMMDD + C/P + 8-digit-strike tail is wrong."""
    if not tail[:6].isdigit() or not tail[:6].isascii():
        return f"expiry {tail[:6]!r} is not 6 digits YYMMDD"
    if tail[6:7] not in _RIGHT_BY_LETTER:
        return f"right {tail[6:7]!r} is not C or P"
    return f"strike {tail[7:]!r} is not 8 digits (dollars x 1000)"


def parse_osi(symbol: str) -> OptionContract:
    """Parse a 21-character OCC/OSI symbol such as ``"SPY   251219C00650000"``.

    Raises ValueError naming the symbol and what is wrong with it.
    """
    if not isinstance(symbol, str):
        raise ValueError(f"malformed OSI symbol {symbol!r}: expected a str")
    if len(symbol) != OSI_WIDTH:
        raise ValueError(
            f"malformed OSI symbol {symbol!r}: {len(symbol)} characters, expected {OSI_WIDTH}"
        )
    padded_root = symbol[:_ROOT_WIDTH]
    root = padded_root.rstrip(" ")
    if not root or " " in root:
        raise ValueError(
            f"malformed OSI symbol {symbol!r}: root {padded_root!r} is not a left-justified, "
            "space-padded 1-6 character root"
        )
    return _parse_tail("OSI", symbol, root, symbol[_ROOT_WIDTH:])


def parse_compact(symbol: str) -> OptionContract:
    """Parse the compact form without padding or prefix, such as ``"SPY251219C00650000"``."""
    return _parse_unpadded("compact", symbol, symbol)


def parse_polygon(symbol: str) -> OptionContract:
    """Parse Polygon's option ticker, such as ``"O:SPY251219C00650000"``."""
    if not isinstance(symbol, str) or not symbol.startswith("O:"):
        raise ValueError(f"malformed Polygon symbol {symbol!r}: expected the 'O:' prefix")
    return _parse_unpadded("Polygon", symbol, symbol[2:])


def _parse_unpadded(kind: str, symbol: str, body: str) -> OptionContract:
    if not _TAIL_LENGTH < len(body) <= _TAIL_LENGTH + _ROOT_WIDTH:
        reason = _diagnose_unpadded(body, _UNPADDED_SHAPE)
        raise ValueError(f"malformed {kind} symbol {symbol!r}: {reason}")
    split = len(body) - _TAIL_LENGTH
    root, tail = body[:split], body[split:]
    if not _TAIL_PATTERN.fullmatch(tail):
        # A strike of the wrong width shifts the split; blame the strike, not the expiry.
        reason = _diagnose_unpadded(body, None) or _diagnose_tail(tail)
        raise ValueError(f"malformed {kind} symbol {symbol!r}: {reason}")
    return _parse_tail(kind, symbol, root, tail)


_UNPADDED_SHAPE: Final = (
    "expected a 1-6 character root followed by YYMMDD, C or P and an 8-digit strike"
)


def _diagnose_unpadded(body: str, otherwise: str | None) -> str | None:
    """Say what is wrong with root + YYMMDD + C/P + strike when the fields do not line up."""
    right_at = max(body.rfind("C"), body.rfind("P"))
    strike = body[right_at + 1 :]
    if right_at >= 6 and strike.isdigit() and body[right_at - 6 : right_at].isdigit():
        root = body[: right_at - 6]
        if len(strike) != 8:
            return f"strike {strike!r} has {len(strike)} digits, expected 8 (dollars x 1000)"
        if not root:
            return "root is missing"
        if len(root) > _ROOT_WIDTH:
            return f"root {root!r} is longer than {_ROOT_WIDTH} characters"
    return otherwise


def parse_symbol(symbol: str) -> OptionContract:
    """Parse any string form: Polygon (``O:`` prefix), OSI (21 characters, padded) or compact."""
    if not isinstance(symbol, str):
        raise ValueError(f"malformed option symbol {symbol!r}: expected a str")
    if symbol.startswith("O:"):
        return parse_polygon(symbol)
    if len(symbol) == OSI_WIDTH and " " in symbol:
        return parse_osi(symbol)
    return parse_compact(symbol)


def parse_thetadata(contract: Mapping[str, Any]) -> OptionContract:
    """Parse ThetaData's contract object.

    Keys: ``root`` (or ``symbol``), ``expiration`` (int YYYYMMDD), ``strike`` (int, 1/1000
    dollars), ``right`` (``"C"``/``"P"``, also ``"CALL"``/``"PUT"``).
    """
    if not isinstance(contract, Mapping):
        raise ValueError(f"malformed ThetaData contract {contract!r}: expected a mapping")
    root = contract.get("root", contract.get("symbol"))
    expiration = contract.get("expiration")
    strike = contract.get("strike")
    right = contract.get("right")
    if not isinstance(root, str) or not _ROOT_PATTERN.fullmatch(root):
        raise ValueError(
            f"malformed ThetaData contract {contract!r}: root {root!r} is not 1-6 characters "
            "of A-Z, 0-9"
        )
    if isinstance(expiration, str) and expiration.isdigit():
        expiration = int(expiration)
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        raise ValueError(
            f"malformed ThetaData contract {contract!r}: expiration {expiration!r} is not an "
            "int YYYYMMDD"
        )
    try:
        expiry = datetime.date(expiration // 10_000, expiration // 100 % 100, expiration % 100)
    except ValueError:
        raise ValueError(
            f"malformed ThetaData contract {contract!r}: expiration {expiration} is not a date "
            "YYYYMMDD"
        ) from None
    if (
        not isinstance(strike, int)
        or isinstance(strike, bool)
        or not 0 < strike <= MAX_STRIKE_MILLI
    ):
        raise ValueError(
            f"malformed ThetaData contract {contract!r}: strike {strike!r} is not a positive "
            "int in 1/1000 dollars"
        )
    parsed_right = _THETADATA_RIGHTS.get(right.upper()) if isinstance(right, str) else None
    if parsed_right is None:
        raise ValueError(f"malformed ThetaData contract {contract!r}: right {right!r}")
    try:
        return OptionContract(root, expiry, strike, parsed_right)
    except ValueError as error:
        raise ValueError(f"malformed ThetaData contract {contract!r}: {error}") from None


# --- the registry ---------------------------------------------------------------------------

#: The option columns the registry owns: every STATIC column of the state, in layout order.
OPTION_STATIC_COLUMNS: Final = tuple(c for c in OPTION_COLUMNS if c.group is Group.STATIC)
#: The underlying columns the registry owns: the STATIC ones plus the initial dividend yield.
UNDERLYING_STATIC_COLUMNS: Final = (
    *(c for c in UNDERLYING_COLUMNS if c.group is Group.STATIC),
    UNDERLYING_COLUMN_BY_NAME["div_yield"],
)
_INITIAL_ROWS: Final = 4096


class InstrumentRegistry:
    """Dense, append-only row ids for option contracts and, separately, for underlyings.

    Columns are numpy arrays with the dtypes of `state.layout`, grown geometrically up to
    `capacity`; a dict maps the compact symbol to its row. About 180 bytes per option row all
    told (43 in the arrays, the rest the dict, its str keys and int values).

    Single-writer: all registration happens on the daemon's loop thread. Lookups are safe from
    the same thread; the public array properties are views of the filled part.
    """

    def __init__(self, capacity: int = 2_000_000, underlying_capacity: int = 16_384) -> None:
        if capacity <= 0 or underlying_capacity <= 0:
            raise ValueError(
                f"capacities must be positive, got capacity={capacity} "
                f"underlying_capacity={underlying_capacity}"
            )
        self._capacity = capacity
        self._underlying_capacity = underlying_capacity
        self._count = 0
        self._underlying_count = 0
        self._options = {
            c.name: np.zeros(min(capacity, _INITIAL_ROWS), c.np_dtype)
            for c in OPTION_STATIC_COLUMNS
        }
        self._underlyings = {
            c.name: np.zeros(min(underlying_capacity, 256), c.np_dtype)
            for c in UNDERLYING_STATIC_COLUMNS
        }
        self._row_by_compact: dict[str, int] = {}
        self._id_by_underlying: dict[str, int] = {}
        self._underlying_id_by_root: dict[str, int] = {}
        # rows_of_underlying index (CSR over underlying ids), rebuilt lazily after appends
        self._index_count = -1
        self._index_order = np.empty(0, np.uint32)
        self._index_offsets = np.zeros(1, np.int64)

    # -- sizes ------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The most option rows this registry (and the state sized from it) can hold."""
        return self._capacity

    @property
    def underlying_capacity(self) -> int:
        return self._underlying_capacity

    @property
    def count(self) -> int:
        """Registered option rows; rows are 0..count-1."""
        return self._count

    @property
    def underlying_count(self) -> int:
        """Registered underlyings; ids are 0..underlying_count-1."""
        return self._underlying_count

    def __len__(self) -> int:
        return self._count

    def __contains__(self, symbol: object) -> bool:
        if not isinstance(symbol, str):
            return False
        try:
            self.row(symbol)
        except (KeyError, ValueError):
            return False
        return True

    # -- underlyings ------------------------------------------------------------------------

    def add_underlying(
        self, symbol: str, style: ExerciseStyle | None = None, div_yield: float = 0.0
    ) -> int:
        """Register an underlying and return its id; an existing symbol returns its id.

        `style` defaults to `default_style(symbol)`; `div_yield` is a continuous yield, decimal
        per year. Re-registering keeps the first registration's style and dividend yield (the
        daemon copies static rows once, when they are new).
        """
        existing = self._id_by_underlying.get(symbol)
        if existing is not None:
            return existing
        if not isinstance(symbol, str) or not _UNDERLYING_PATTERN.fullmatch(symbol):
            raise ValueError(
                f"invalid underlying symbol {symbol!r}: expected 1-{UNDERLYING_SYMBOL_WIDTH} "
                "upper-case ASCII characters"
            )
        if not np.isfinite(div_yield):
            raise ValueError(f"invalid div_yield {div_yield!r} for {symbol}: must be finite")
        uid = self._underlying_count
        if uid >= self._underlying_capacity:
            raise RegistryFullError(
                f"instrument registry is full: {self._underlying_capacity} underlyings; "
                f"cannot add {symbol!r} (raise underlying_capacity)"
            )
        self._underlyings = _grown(self._underlyings, uid + 1, self._underlying_capacity)
        columns = self._underlyings
        columns["symbol"][uid] = symbol.encode("ascii")
        columns["style"][uid] = default_style(symbol) if style is None else ExerciseStyle(style)
        columns["div_yield"][uid] = div_yield
        self._id_by_underlying[symbol] = uid
        self._underlying_count = uid + 1
        return uid

    def underlying_id(self, symbol: str) -> int:
        """The id of an underlying ticker; KeyError naming it when unknown."""
        try:
            return self._id_by_underlying[symbol]
        except KeyError:
            raise KeyError(f"unknown underlying {symbol!r}") from None

    def underlying_symbol(self, uid: int) -> str:
        """The ticker of an underlying id."""
        if not 0 <= uid < self._underlying_count:
            raise IndexError(f"underlying id {uid} out of range 0..{self._underlying_count - 1}")
        return self._underlyings["symbol"][uid].decode("ascii")

    def underlying_style(self, uid: int) -> ExerciseStyle:
        return ExerciseStyle(int(self.underlying_styles[uid]))

    def underlying_div_yield(self, uid: int) -> float:
        return float(self.underlying_div_yields[uid])

    @property
    def underlying_symbols(self) -> np.ndarray:
        """Tickers as fixed-width ASCII bytes, by underlying id (a view)."""
        return self._underlyings["symbol"][: self._underlying_count]

    @property
    def underlying_styles(self) -> np.ndarray:
        """ExerciseStyle values (uint8) by underlying id (a view)."""
        return self._underlyings["style"][: self._underlying_count]

    @property
    def underlying_div_yields(self) -> np.ndarray:
        """Registered continuous dividend yields, decimal per year, by underlying id (a view)."""
        return self._underlyings["div_yield"][: self._underlying_count]

    def _underlying_of_root(self, root: str) -> int:
        uid = self._underlying_id_by_root.get(root)
        if uid is None:
            uid = self.add_underlying(underlying_of_root(root))
            self._underlying_id_by_root[root] = uid
        return uid

    # -- option rows ------------------------------------------------------------------------

    def add(self, contract: OptionContract, multiplier: float = 100.0) -> int:
        """Register one contract and return its row; an existing contract returns its row.

        Registers the contract's underlying (`OptionContract.underlying`) when new, with its
        default style; the row's exercise style is the underlying's.
        """
        key = contract.compact()
        existing = self._row_by_compact.get(key)
        if existing is not None:
            return existing
        if not multiplier > 0:
            raise ValueError(f"invalid multiplier {multiplier!r} for {key}: must be positive")
        row = self._count
        if row >= self._capacity:
            raise self._full_error(1)
        uid = self._underlying_of_root(contract.root)
        self._options = _grown(self._options, row + 1, self._capacity)
        columns = self._options
        columns["osi"][row] = contract.osi().encode("ascii")
        columns["underlying_id"][row] = uid
        columns["expiry"][row] = contract.expiry.toordinal() - _EPOCH_ORDINAL
        columns["strike"][row] = contract.strike_milli / 1000.0
        columns["right"][row] = contract.right
        columns["style"][row] = self._underlyings["style"][uid]
        columns["multiplier"][row] = multiplier
        self._row_by_compact[key] = row
        self._count = row + 1
        return row

    def add_many(
        self,
        roots: str | Sequence[str] | np.ndarray,
        expiries: np.ndarray | Sequence[int],
        strikes_milli: np.ndarray | Sequence[int],
        rights: np.ndarray | Sequence[int],
        multipliers: float | np.ndarray | Sequence[float] | None = None,
    ) -> np.ndarray:
        """Register many contracts at once; return their rows (uint32), in input order.

        - `roots`: one root for all, or one per contract (str array or sequence);
        - `expiries`: days since 1970-01-01 (integers) or ``datetime64[D]``;
        - `strikes_milli`: strikes in 1/1000 dollars (integers);
        - `rights`: `Right` values (0 put, 1 call);
        - `multipliers`: shares per contract, one for all or per contract (default 100).

        Idempotent like `add`: contracts already registered, or repeated within the call, get
        one row. Validation is vectorized and all-or-nothing: a bad element raises ValueError
        naming it before anything is registered.
        """
        expiry_days = _as_expiry_days(expiries)
        count = expiry_days.shape[0]
        strike_milli = np.asarray(strikes_milli)
        right = np.asarray(rights)
        if strike_milli.shape != (count,) or right.shape != (count,):
            raise ValueError(
                f"add_many: expiries, strikes_milli and rights must be 1-d of one length, got "
                f"{expiry_days.shape}, {strike_milli.shape}, {right.shape}"
            )
        if count and not np.issubdtype(strike_milli.dtype, np.integer):
            raise ValueError(
                f"add_many: strikes_milli must be integers (1/1000 dollars), got {strike_milli.dtype}"
            )
        strike_milli = strike_milli.astype(np.int64, copy=False)
        _check_range("strike_milli", strike_milli, 1, MAX_STRIKE_MILLI)
        _check_range(
            "expiry (days since 1970-01-01)", expiry_days, _MIN_EXPIRY_DAYS, _MAX_EXPIRY_DAYS
        )
        if count and not np.issubdtype(right.dtype, np.integer):
            raise ValueError(
                f"add_many: rights must be Right values (0 put, 1 call), got {right.dtype}"
            )
        _check_range("right", right, Right.PUT, Right.CALL)
        multiplier = np.broadcast_to(
            np.asarray(100.0 if multipliers is None else multipliers, np.float32), (count,)
        )
        if not np.all(multiplier > 0):
            bad = multiplier[~(multiplier > 0)][0]
            raise ValueError(f"add_many: invalid multiplier {bad!r}: must be positive")
        root_bytes, distinct_roots, root_index = self._root_array(roots, count)
        if count == 0:
            return np.empty(0, np.uint32)

        osi = _osi_symbols(root_bytes, expiry_days, strike_milli, right.astype(np.uint8))
        keys = _compact_keys(osi)
        known = self._row_by_compact
        if known:
            found = np.fromiter(map(known.get, keys, itertools.repeat(-1)), np.int64, count)
        else:
            found = np.full(count, -1, np.int64)
        new_positions = np.flatnonzero(found < 0)
        rows = found
        if new_positions.size == 0:
            return rows.astype(np.uint32)
        new_keys = keys if new_positions.size == count else [keys[i] for i in new_positions]
        base = self._count
        fresh = dict(zip(new_keys, range(base, base + len(new_keys)), strict=True))
        if len(fresh) != len(new_keys):
            # Repeats within the call: the first occurrence of each key defines its row.
            first = dict(zip(reversed(new_keys), range(len(new_keys) - 1, -1, -1), strict=True))
            first_position = np.fromiter(map(first.__getitem__, new_keys), np.int64, len(new_keys))
            is_first = first_position == np.arange(len(new_keys))
            row_of_first = base + np.cumsum(is_first) - 1
            rows[new_positions] = row_of_first[first_position]
            new_positions = new_positions[is_first]
            new_keys = [new_keys[i] for i in np.flatnonzero(is_first)]
            fresh = dict(zip(new_keys, range(base, base + len(new_keys)), strict=True))
        else:
            rows[new_positions] = np.arange(base, base + len(new_keys))
        added = len(new_keys)
        if base + added > self._capacity:
            raise self._full_error(added)
        distinct_ids = np.fromiter(
            map(self._underlying_of_root, distinct_roots), np.uint32, len(distinct_roots)
        )
        root_ids = distinct_ids[root_index[new_positions]]
        self._options = _grown(self._options, base + added, self._capacity)
        columns = self._options
        target = slice(base, base + added)
        columns["osi"][target] = osi[new_positions]
        columns["underlying_id"][target] = root_ids
        columns["expiry"][target] = expiry_days[new_positions]
        columns["strike"][target] = strike_milli[new_positions] / 1000.0
        columns["right"][target] = right[new_positions]
        columns["style"][target] = self._underlyings["style"][root_ids]
        columns["multiplier"][target] = multiplier[new_positions]
        if known:
            known.update(fresh)
        else:
            self._row_by_compact = fresh
        self._count = base + added
        return rows.astype(np.uint32)

    def _root_array(
        self, roots: str | Sequence[str] | np.ndarray, count: int
    ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Validate roots; return them as S6 bytes (broadcast), the distinct roots, and each
        contract's index into the distinct roots."""
        if isinstance(roots, str):
            self._check_root(roots)
            return (
                np.broadcast_to(np.array(roots.encode("ascii"), f"S{_ROOT_WIDTH}"), (count,)),
                [roots],
                np.broadcast_to(np.intp(0), (count,)),
            )
        root_array = np.asarray(roots)
        if root_array.shape != (count,):
            raise ValueError(
                f"add_many: roots must be one str or one per contract, got shape "
                f"{root_array.shape} for {count} contracts"
            )
        if root_array.dtype.kind not in "US":
            raise ValueError(f"add_many: roots must be strings, got {root_array.dtype}")
        characters = root_array.dtype.itemsize // (4 if root_array.dtype.kind == "U" else 1)
        if characters > _ROOT_WIDTH:  # only then can a root be too long (astype would truncate)
            too_long = np.strings.str_len(root_array) > _ROOT_WIDTH
            if np.any(too_long):
                self._check_root(str(root_array[too_long][0]))
        try:
            root_array = root_array.astype(f"S{_ROOT_WIDTH}")
        except UnicodeEncodeError as error:
            raise ValueError(f"add_many: invalid option root: {error}") from None
        # Distinct roots by their 8-byte integer image: sorting integers, not strings, is fast.
        as_integers = np.zeros(count, np.uint64)
        as_integers.view(f"S{_ROOT_WIDTH + 2}")[:] = root_array
        unique_integers, inverse = np.unique(as_integers, return_inverse=True)
        unique_roots = [
            root.decode("ascii", "replace")
            for root in unique_integers.view(f"S{_ROOT_WIDTH + 2}").tolist()
        ]
        for root in unique_roots:  # one per distinct root, not per contract
            self._check_root(root)
        return root_array, unique_roots, inverse

    @staticmethod
    def _check_root(root: str) -> None:
        if not _ROOT_PATTERN.fullmatch(root):
            raise ValueError(f"invalid option root {root!r}: expected 1-6 characters of A-Z, 0-9")

    def _full_error(self, adding: int) -> RegistryFullError:
        return RegistryFullError(
            f"instrument registry is full: {self._count:,} of {self._capacity:,} option rows "
            f"used, cannot add {adding:,} more (raise capacity)"
        )

    # -- lookups ----------------------------------------------------------------------------

    def get_row(self, compact: str) -> int:
        """Row of a compact symbol (``"SPY251219C00650000"``), or -1 when unknown. Hot path."""
        return self._row_by_compact.get(compact, -1)

    def get_rows(self, compacts: Sequence[str]) -> np.ndarray:
        """Rows (int64) of many compact symbols, -1 where unknown; iterates in C, not Python."""
        return np.fromiter(
            map(self._row_by_compact.get, compacts, itertools.repeat(-1)),
            np.int64,
            len(compacts),
        )

    def row(self, symbol: str) -> int:
        """Row of an OSI, Polygon or compact symbol.

        Raises KeyError naming the symbol when it is well formed but not registered, and
        ValueError when it is malformed.
        """
        row = self._row_by_compact.get(symbol)
        if row is not None:
            return row
        key = parse_symbol(symbol).compact()
        row = self._row_by_compact.get(key)
        if row is None:
            raise KeyError(f"unknown option symbol {symbol!r}")
        return row

    def contract(self, row: int) -> OptionContract:
        """The contract registered at `row`."""
        if not 0 <= row < self._count:
            raise IndexError(f"option row {row} out of range 0..{self._count - 1}")
        return parse_osi(self._options["osi"][row].decode("ascii"))

    def rows_of_underlying(self, uid: int) -> np.ndarray:
        """Row ids (uint32, ascending) of the options on underlying `uid`."""
        if not 0 <= uid < self._underlying_count:
            raise IndexError(f"underlying id {uid} out of range 0..{self._underlying_count - 1}")
        if self._index_count != self._count or self._index_offsets.shape[0] <= uid + 1:
            # A stable sort keeps rows ascending within each underlying.
            ids = self.underlying_ids
            self._index_order = np.argsort(ids, kind="stable").astype(np.uint32)
            counts = np.bincount(ids, minlength=self._underlying_count)
            self._index_offsets = np.concatenate(([0], np.cumsum(counts)))
            self._index_count = self._count
        return self._index_order[self._index_offsets[uid] : self._index_offsets[uid + 1]]

    # -- columns (views of the filled part) ---------------------------------------------------

    @property
    def underlying_ids(self) -> np.ndarray:
        """Underlying id (uint32) by option row."""
        return self._options["underlying_id"][: self._count]

    @property
    def expiry_days(self) -> np.ndarray:
        """Expiry as int32 days since 1970-01-01, by option row."""
        return self._options["expiry"][: self._count]

    @property
    def strikes(self) -> np.ndarray:
        """Strike in dollars (float64), by option row."""
        return self._options["strike"][: self._count]

    @property
    def rights(self) -> np.ndarray:
        """`Right` values (uint8: 0 put, 1 call), by option row."""
        return self._options["right"][: self._count]

    @property
    def styles(self) -> np.ndarray:
        """`ExerciseStyle` values (uint8), by option row."""
        return self._options["style"][: self._count]

    @property
    def multipliers(self) -> np.ndarray:
        """Shares per contract (float32), by option row."""
        return self._options["multiplier"][: self._count]

    @property
    def osi_symbols(self) -> np.ndarray:
        """21-character OSI symbols as ``S21`` ASCII bytes, by option row."""
        return self._options["osi"][: self._count]

    def option_static(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The state's STATIC option columns for rows [start, stop), keyed by layout name."""
        _check_slice(start, stop, self._count, "option rows")
        return {name: array[start:stop] for name, array in self._options.items()}

    def underlying_static(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The state's STATIC underlying columns plus `div_yield` for ids [start, stop)."""
        _check_slice(start, stop, self._underlying_count, "underlying ids")
        return {name: array[start:stop] for name, array in self._underlyings.items()}

    def nbytes(self) -> int:
        """Bytes held by the column arrays (allocated capacity, not only the filled part)."""
        return sum(a.nbytes for a in self._options.values()) + sum(
            a.nbytes for a in self._underlyings.values()
        )

    def memory_bytes(self) -> int:
        """Bytes the registry holds: column arrays, the symbol dict, its str keys and int rows.

        Objects are counted as the allocator rounds them (to 8 bytes); the count walks the dict
        in C, about 0.2 s for 1.8M rows, so this is for status pages and tests, not hot paths.
        """
        total = self.nbytes()
        for table in (self._row_by_compact, self._id_by_underlying, self._underlying_id_by_root):
            total += sys.getsizeof(table)
            for objects in (table.keys(), table.values()):
                sizes = np.fromiter(map(sys.getsizeof, objects), np.int64, len(table))
                total += int(((sizes + 7) // 8 * 8).sum())
        return total


def _grown(columns: dict[str, np.ndarray], needed: int, capacity: int) -> dict[str, np.ndarray]:
    """Columns with room for `needed` rows: 1.5x growth, capped at `capacity`."""
    allocated = next(iter(columns.values())).shape[0]
    if needed <= allocated:
        return columns
    size = min(capacity, max(needed, allocated + allocated // 2))
    grown = {}
    for name, array in columns.items():
        bigger = np.zeros(size, array.dtype)
        bigger[:allocated] = array
        grown[name] = bigger
    return grown


def _check_slice(start: int, stop: int, count: int, what: str) -> None:
    if not 0 <= start <= stop <= count:
        raise IndexError(f"{what} [{start}, {stop}) out of range [0, {count})")


def _check_range(name: str, values: np.ndarray, low: int, high: int) -> None:
    bad = (values < low) | (values > high)
    if np.any(bad):
        raise ValueError(
            f"add_many: invalid {name} {values[bad][0].item()!r}: expected {low}..{high}"
        )


def _as_expiry_days(expiries: np.ndarray | Sequence[int]) -> np.ndarray:
    """Expiries as int64 days since 1970-01-01, from integers or ``datetime64``."""
    array = np.asarray(expiries)
    if array.ndim != 1:
        raise ValueError(f"add_many: expiries must be 1-d, got shape {array.shape}")
    if array.dtype.kind == "M":
        return array.astype("datetime64[D]").astype(np.int64)
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"add_many: expiries must be days since 1970-01-01 or datetime64, got {array.dtype}"
        )
    return array.astype(np.int64, copy=False)


def _osi_symbols(
    roots: np.ndarray, expiry_days: np.ndarray, strike_milli: np.ndarray, rights: np.ndarray
) -> np.ndarray:
    """Vectorized OSI symbols (``S21``) from S6 roots, expiry days, strikes and rights."""
    count = expiry_days.shape[0]
    chars = np.empty((count, OSI_WIDTH), np.uint8)
    root_chars = np.ascontiguousarray(roots).view(np.uint8).reshape(-1, _ROOT_WIDTH)
    chars[:, :_ROOT_WIDTH] = np.where(root_chars == 0, ord(" "), root_chars)
    dates = expiry_days.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (dates - months).astype(np.int64) + 1
    _write_digits(chars, 6, year % 100, 2)
    _write_digits(chars, 8, month, 2)
    _write_digits(chars, 10, day, 2)
    chars[:, 12] = np.where(rights == Right.CALL, ord("C"), ord("P"))
    _write_digits(chars, 13, strike_milli, 8)
    return chars.view(f"S{OSI_WIDTH}").reshape(count)


def _write_digits(chars: np.ndarray, start: int, values: np.ndarray, width: int) -> None:
    remaining = values.astype(np.int64, copy=True)
    for position in range(start + width - 1, start - 1, -1):  # loops over digits, not contracts
        chars[:, position] = remaining % 10 + ord("0")
        remaining //= 10


def _compact_keys(osi: np.ndarray) -> list[str]:
    """Compact symbols (root unpadded) as Python str, built in C: spaces only pad the root."""
    lines = np.empty((osi.shape[0], OSI_WIDTH + 1), np.uint8)
    lines[:, :OSI_WIDTH] = osi.view(np.uint8).reshape(-1, OSI_WIDTH)
    lines[:, OSI_WIDTH] = ord("\n")
    text = lines.tobytes().replace(b" ", b"").decode("ascii")
    return text.split("\n")[:-1]
