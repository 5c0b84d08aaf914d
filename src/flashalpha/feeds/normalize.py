"""Normalization at the edge: provider codes, times and symbols into `TickBatch` records.

Everything a provider's decoder needs to turn typed structs into the state's record arrays:

- `Exchange`, `TradeCondition`: the platform-wide codes stored in the state's `*_exchange` and
  `last_condition` columns, and lookup tables from Polygon's and ThetaData's codes to them
  (vectorized: an out-of-table code maps to `Exchange.UNKNOWN` / `TradeCondition.OTHER`).
- `eastern_to_utc_ns`: ThetaData's (date YYYYMMDD, ms_of_day in New York wall-clock time) into
  UTC nanoseconds, right across daylight-saving changes.
- `ContractResolver`: a provider's contract key (Polygon ticker, ThetaData contract struct) to the
  registry's row, through a per-feed cache. A key that is not cached is parsed; a contract that
  parses but is not registered is registered on the fly (`registry.add`; the daemon journals and
  lists new rows before it applies the batch). A key that does not parse is rejected and counted
  (`RejectKind.UNKNOWN_SYMBOL`, with a message naming the value).
- `build_quotes` / `build_trades` / ...: column arrays into the layout's record dtypes.

The hot path never loops over events in Python: lookups run through `map` in C, columns are
assembled with numpy.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from flashalpha.instruments import InstrumentRegistry, OptionContract, RegistryFullError
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_TICK_DTYPE,
    RejectKind,
)

log = logging.getLogger(__name__)

NEW_YORK: Final = ZoneInfo("America/New_York")
NS_PER_MS: Final = 1_000_000
MS_PER_DAY: Final = 86_400_000
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


class Exchange(enum.IntEnum):
    """US option exchanges: the ASCII code of the OPRA participant letter (0 = unknown).

    A uint8 column of these reads back as the letter (``chr(code)``).
    """

    UNKNOWN = 0
    NYSE_AMERICAN = ord("A")
    BOX = ord("B")
    CBOE = ord("C")
    MIAX_EMERALD = ord("D")
    CBOE_EDGX = ord("E")
    NASDAQ_GEMX = ord("H")
    NASDAQ_ISE = ord("I")
    NASDAQ_MRX = ord("J")
    MIAX = ord("M")
    NYSE_ARCA = ord("N")
    OPRA = ord("O")
    MIAX_PEARL = ord("P")
    NASDAQ = ord("Q")
    MIAX_SAPPHIRE = ord("S")
    NASDAQ_BX = ord("T")
    MEMX = ord("U")
    CBOE_C2 = ord("W")
    NASDAQ_PHLX = ord("X")
    CBOE_BZX = ord("Z")


class TradeCondition(enum.IntEnum):
    """How an option trade printed: OPRA's last-sale categories (the `last_condition` column).

    Values 0-6 are the ones the synthetic market stamps (`feeds.synthetic.codes`).
    """

    REGULAR = 0  # electronic, auto-executed
    INTERMARKET_SWEEP = 1
    SINGLE_LEG_AUCTION = 2
    SINGLE_LEG_CROSS = 3
    SINGLE_LEG_FLOOR = 4
    MULTI_LEG = 5
    STOCK_OPTIONS = 6
    CANCELED = 7  # a cancel of an earlier report: not a new trade
    LATE = 8  # reported late or out of sequence
    OPENING = 9
    REOPENING = 10
    EXTENDED_HOURS = 11
    COMPRESSION = 12  # multilateral compression: not price-forming
    OTHER = 99


def _table(size: int, entries: dict[int, int], default: int, dtype: str) -> np.ndarray:
    table = np.full(size, default, dtype)
    for code, value in entries.items():
        table[code] = value
    return table


E, C = Exchange, TradeCondition

#: Polygon's options exchange ids (GET /v3/reference/exchanges?asset_class=options).
POLYGON_EXCHANGES: Final = _table(
    1024,
    {
        300: E.NYSE_AMERICAN,
        301: E.BOX,
        302: E.CBOE,
        303: E.MIAX_EMERALD,
        304: E.CBOE_EDGX,
        307: E.NASDAQ_GEMX,
        308: E.NASDAQ_ISE,
        309: E.NASDAQ_MRX,
        312: E.MIAX,
        313: E.NYSE_ARCA,
        315: E.MIAX_PEARL,
        316: E.NASDAQ,
        319: E.NASDAQ_BX,
        320: E.MEMX,
        322: E.CBOE_C2,
        323: E.NASDAQ_PHLX,
        325: E.CBOE_BZX,
        326: E.MIAX_SAPPHIRE,
    },
    E.UNKNOWN,
    "u1",
)

#: ThetaData's exchange codes (thetadata.enums.Exchange) of the option exchanges.
THETADATA_EXCHANGES: Final = _table(
    256,
    {
        1: E.NASDAQ,  # NQEX
        4: E.NYSE_AMERICAN,  # AMEX
        5: E.CBOE,  # CBOE
        6: E.NASDAQ_ISE,  # ISEX
        7: E.NYSE_ARCA,  # PACF
        9: E.NASDAQ_PHLX,  # PHIL
        10: E.OPRA,  # OPRA
        11: E.BOX,  # BOST
        22: E.NASDAQ_MRX,  # MRCY
        31: E.NASDAQ_GEMX,  # GEMI
        42: E.CBOE_C2,  # C2
        43: E.MIAX,  # MIAX
        46: E.MIAX_EMERALD,  # EMLD
        47: E.NASDAQ_BX,  # NQBX
        60: E.CBOE_BZX,  # BATS
        65: E.CBOE_EDGX,  # EDGX
        69: E.MIAX_PEARL,  # MPRL
        73: E.MEMX,  # MEMX
    },
    E.UNKNOWN,
    "u1",
)

#: Polygon's options trade conditions (GET /v3/reference/conditions?asset_class=options).
POLYGON_CONDITIONS: Final = _table(
    1024,
    {
        201: C.CANCELED,
        202: C.LATE,
        203: C.CANCELED,
        204: C.LATE,
        205: C.CANCELED,
        206: C.LATE,
        207: C.CANCELED,
        208: C.LATE,
        209: C.REGULAR,
        210: C.REOPENING,
        219: C.INTERMARKET_SWEEP,
        227: C.SINGLE_LEG_AUCTION,
        228: C.SINGLE_LEG_AUCTION,
        229: C.SINGLE_LEG_CROSS,
        230: C.SINGLE_LEG_CROSS,
        231: C.SINGLE_LEG_FLOOR,
        **dict.fromkeys((232, 233, 234, 235, 236, 238, 239, 246), C.MULTI_LEG),
        **dict.fromkeys((237, 240, 241, 242, 243, 244, 245), C.STOCK_OPTIONS),
        247: C.COMPRESSION,
        248: C.EXTENDED_HOURS,
    },
    C.OTHER,
    "<u2",
)

#: ThetaData's trade conditions (thetadata.enums.TradeCondition) as they occur on OPRA.
THETADATA_CONDITIONS: Final = _table(
    256,
    {
        0: C.REGULAR,
        18: C.REGULAR,  # AUTO_EXECUTION
        145: C.REGULAR,  # BID_AGGRESSOR
        146: C.REGULAR,  # ASK_AGGRESSOR
        95: C.INTERMARKET_SWEEP,
        2: C.LATE,  # OUT_OF_SEQ
        5: C.LATE,  # OPEN_REPORT_LATE
        6: C.LATE,  # OPEN_REPORT_OUT_OF_SEQ
        7: C.OPENING,  # OPEN_REPORT_IN_SEQ
        21: C.REOPENING,
        **dict.fromkeys((40, 41, 42, 43, 44), C.CANCELED),
        **dict.fromkeys((35, 36, 38), C.MULTI_LEG),  # SPREAD, STRADDLE, COMBO
        37: C.STOCK_OPTIONS,  # BUY_WRITE
        105: C.STOCK_OPTIONS,
        118: C.EXTENDED_HOURS,
        125: C.SINGLE_LEG_AUCTION,
        126: C.SINGLE_LEG_AUCTION,
        127: C.SINGLE_LEG_CROSS,
        128: C.SINGLE_LEG_CROSS,
        129: C.SINGLE_LEG_FLOOR,
        **dict.fromkeys((130, 131, 132, 133, 134, 136, 137, 144), C.MULTI_LEG),
        **dict.fromkeys((135, 138, 139, 140, 141, 142, 143), C.STOCK_OPTIONS),
        147: C.COMPRESSION,
        148: C.EXTENDED_HOURS,
    },
    C.OTHER,
    "<u2",
)


def map_codes(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Look `codes` up in `table`; codes outside it get the table's default (its last entry)."""
    codes = np.asarray(codes, np.int64)
    inside = (codes >= 0) & (codes < len(table) - 1)
    return table[np.where(inside, codes, len(table) - 1)]


# --- time ----------------------------------------------------------------------------------

_DAY_CACHE: dict[int, tuple[int, int, int]] = {}


def _eastern_day(yyyymmdd: int) -> tuple[int, int, int]:
    """(UTC ms of local midnight, ms_of_day of a DST change or a day's length, offset change).

    ``utc_ms = midnight_ms + ms_of_day`` before the change and ``+ shift`` after it; a day
    without a change has change = MS_PER_DAY (never reached) and shift = 0.
    """
    cached = _DAY_CACHE.get(yyyymmdd)
    if cached is not None:
        return cached
    day = dt.date(yyyymmdd // 10_000, yyyymmdd // 100 % 100, yyyymmdd % 100)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    before = midnight.utcoffset()
    midnight_ms = (day.toordinal() - _EPOCH_ORDINAL) * MS_PER_DAY - int(
        before.total_seconds() * 1000
    )
    change, shift = MS_PER_DAY, 0
    for hour in range(1, 24):
        offset = dt.datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK).utcoffset()
        if offset != before:
            # Wall-clock times from `hour` on use the new offset. In the repeated hour of a
            # fall-back day the first occurrence (daylight time) is the one meant (fold=0).
            change = hour * 3_600_000
            shift = int((before - offset).total_seconds() * 1000)
            break
    _DAY_CACHE[yyyymmdd] = result = (midnight_ms, change, shift)
    return result


def eastern_to_utc_ns(dates: np.ndarray, ms_of_day: np.ndarray) -> np.ndarray:
    """UTC nanoseconds (uint64) of New York wall-clock times given as (YYYYMMDD, ms of day).

    Vectorized over events; the time zone is consulted once per distinct date. On the
    spring-forward day the skipped hour (02:00-02:59) reads as standard time; on the fall-back
    day the repeated hour (01:00-01:59) reads as its first occurrence (daylight time).
    Raises ValueError naming a date that is not a calendar date.
    """
    dates = np.asarray(dates, np.int64)
    ms = np.asarray(ms_of_day, np.int64)
    if dates.size == 0:
        return np.empty(0, np.uint64)
    first = int(dates[0])
    if (dates == first).all():
        midnight, change, shift = _eastern_day_checked(first)
        utc_ms = midnight + ms + np.where(ms >= change, shift, 0)
    else:
        unique, inverse = np.unique(dates, return_inverse=True)
        table = np.array([_eastern_day_checked(int(d)) for d in unique], np.int64)
        midnight, change, shift = table[inverse].T
        utc_ms = midnight + ms + np.where(ms >= change, shift, 0)
    return (utc_ms * NS_PER_MS).astype(np.uint64)


def _eastern_day_checked(yyyymmdd: int) -> tuple[int, int, int]:
    try:
        return _eastern_day(yyyymmdd)
    except ValueError:
        raise ValueError(f"date {yyyymmdd} is not a calendar date YYYYMMDD") from None


def valid_dates(dates: np.ndarray) -> np.ndarray:
    """Mask of YYYYMMDD integers that are plausible calendar dates (1970-2099)."""
    dates = np.asarray(dates, np.int64)
    if dates.size > 1 and (dates == dates.flat[0]).all():
        # A live burst is usually of one trading day: check it once.
        return np.full(dates.shape, valid_dates(dates.flat[:1])[0])
    year, month, day = dates // 10_000, dates // 100 % 100, dates % 100
    ok = (year >= 1970) & (year <= 2099) & (month >= 1) & (month <= 12) & (day >= 1)
    days_in_month = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    ok &= day <= days_in_month[np.clip(month, 0, 12)]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= ~((month == 2) & (day == 29) & ~leap)
    return ok


# --- contracts -----------------------------------------------------------------------------

RejectSink = Callable[[RejectKind, str, int], None]

#: Cache marker of a key that was rejected (so a repeat is rejected without parsing again).
_REJECTED: Final = -2
#: Most rejected keys remembered; the cache of bad keys is dropped beyond (garbage input).
_MAX_REJECTED_KEYS: Final = 10_000


class ContractResolver:
    """Provider contract keys -> registry rows, registering parseable unknown contracts.

    `parse(key)` returns an `OptionContract` (or raises ValueError naming the key). Rows come
    back as int64 with -1 where the key was rejected; each rejection is reported to `reject`.
    """

    def __init__(
        self,
        registry: InstrumentRegistry,
        parse: Callable[[Hashable], OptionContract],
        reject: RejectSink,
        source: str,
    ) -> None:
        self.registry = registry
        self._parse = parse
        self._reject = reject
        self._source = source
        self._rows: dict[Hashable, int] = {}
        self._rejected_keys = 0
        self.registered = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def cache(self) -> dict[Hashable, int]:
        """The cache itself: key -> row, negative for a rejected key. Read it, never write it.

        For decoders that look keys up in bulk (the compiled ThetaData scanner); what they
        miss goes through `rows`, which parses, registers and rejects.
        """
        return self._rows

    def rows(self, keys: Sequence[Hashable] | Iterable[Hashable], count: int) -> np.ndarray:
        """Rows (int64) of `count` keys; -1 for rejected ones."""
        rows = np.fromiter(map(self._rows.get, keys, itertools.repeat(-1)), np.int64, count)
        if (rows < 0).any():
            if not isinstance(keys, Sequence):
                raise TypeError("keys must be a sequence when some may be unknown")
            rows = self._resolve_missing(keys, rows)
        return rows

    def row(self, key: Hashable) -> int:
        """Row of one key, -1 if rejected."""
        return int(self.rows([key], 1)[0])

    def _resolve_missing(self, keys: Sequence[Hashable], rows: np.ndarray) -> np.ndarray:
        cache = self._rows
        for index in np.flatnonzero(rows < 0).tolist():
            key = keys[index]
            row = cache.get(key, -1)
            if row == -1:
                row = self._resolve(key)
            if row == _REJECTED:
                self._reject(RejectKind.UNKNOWN_SYMBOL, self._last_message, 1)
                row = -1
            rows[index] = row
        return rows

    def _resolve(self, key: Hashable) -> int:
        try:
            contract = self._parse(key)
            row = self.registry.get_row(contract.compact())
            if row < 0:
                row = self.registry.add(contract)
                self.registered += 1
        except (ValueError, TypeError) as error:
            return self._remember_rejected(key, f"{self._source}: unknown symbol: {error}")
        except RegistryFullError as error:
            return self._remember_rejected(key, f"{self._source}: {error}")
        self._rows[key] = row
        return row

    def _remember_rejected(self, key: Hashable, message: str) -> int:
        self._last_message = message
        if self._rejected_keys >= _MAX_REJECTED_KEYS:
            self._rows = {k: v for k, v in self._rows.items() if v != _REJECTED}
            self._rejected_keys = 0
        self._rows[key] = _REJECTED
        self._rejected_keys += 1
        return _REJECTED

    _last_message = ""

    def add_known(self, key: Hashable, row: int) -> None:
        """Cache a key whose row is already known (e.g. from a REST listing)."""
        self._rows[key] = row


# --- records -------------------------------------------------------------------------------


def build_quotes(
    rows: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_size: np.ndarray,
    ask_size: np.ndarray,
    bid_exchange: np.ndarray,
    ask_exchange: np.ndarray,
    ts: np.ndarray,
) -> np.ndarray:
    """QUOTE_DTYPE records; rows < 0 (rejected symbols) are dropped."""
    keep = rows >= 0
    if not keep.all():
        rows, bid, ask = rows[keep], bid[keep], ask[keep]
        bid_size, ask_size = bid_size[keep], ask_size[keep]
        bid_exchange, ask_exchange, ts = bid_exchange[keep], ask_exchange[keep], ts[keep]
    records = np.empty(len(rows), QUOTE_DTYPE)
    records["row"] = rows
    records["bid"] = bid
    records["ask"] = ask
    records["bid_size"] = bid_size
    records["ask_size"] = ask_size
    records["bid_exchange"] = bid_exchange
    records["ask_exchange"] = ask_exchange
    records["ts"] = ts
    return records


def build_trades(
    rows: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    exchange: np.ndarray,
    condition: np.ndarray,
    ts: np.ndarray,
) -> np.ndarray:
    """TRADE_DTYPE records; rejected rows and cancel reports (not new trades) are dropped."""
    keep = (rows >= 0) & (condition != TradeCondition.CANCELED)
    if not keep.all():
        rows, price, size = rows[keep], price[keep], size[keep]
        exchange, condition, ts = exchange[keep], condition[keep], ts[keep]
    records = np.empty(len(rows), TRADE_DTYPE)
    records["row"] = rows
    records["price"] = price
    records["size"] = size
    records["exchange"] = exchange
    records["condition"] = condition
    records["ts"] = ts
    return records


def build_open_interest(rows: np.ndarray, open_interest: np.ndarray, ts: np.ndarray) -> np.ndarray:
    keep = rows >= 0
    records = np.empty(int(keep.sum()), OPEN_INTEREST_DTYPE)
    records["row"] = rows[keep]
    records["open_interest"] = open_interest[keep]
    records["ts"] = ts[keep]
    return records


def build_underlyings(ids: np.ndarray, price: np.ndarray, ts: np.ndarray) -> np.ndarray:
    records = np.empty(len(ids), UNDERLYING_TICK_DTYPE)
    records["underlying"] = ids
    records["price"] = price
    records["ts"] = ts
    return records


def date_to_days(day: dt.date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL
