"""The listing calendar of the synthetic market: which expiries exist on a trading date.

US listed options expire on business days. The schedules below follow the exchanges' series:
dailies (SPY, QQQ, IWM, SPXW: every weekday), weeklies (Fridays), standard monthlies (third
Friday), quarterlies (last business day of March, June, September, December), LEAPS (January
monthlies two and three years out) and VIX's Wednesday expirations (30 days before the next
month's standard SPX expiry). Only weekends are skipped: exchange holidays are not modelled.

Expiries are numpy ``datetime64[D]`` arrays; every function returns sorted, distinct dates on or
after the trading date. An option's expiry instant is 16:00 New York time on its expiry date
(`expiry_close_ns`), or the 09:30 opening for the a.m.-settled roots
(`flashalpha.instruments.AM_SETTLED_ROOTS`: SPX monthlies, VIX), as the pricing assumes.
"""

from __future__ import annotations

import datetime
import enum
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from flashalpha.instruments import AM_SETTLEMENT_LEAD_NS

NEW_YORK: Final = ZoneInfo("America/New_York")
#: Expiry instant: the close, 16:00 New York time.
EXPIRY_TIME: Final = datetime.time(16, 0)
OPEN_TIME: Final = datetime.time(9, 30)
NS_PER_SECOND: Final = 1_000_000_000
#: Calendar year of ACT/365 in nanoseconds: years to expiry = (expiry - now) / this.
NS_PER_YEAR: Final = 365 * 86_400 * NS_PER_SECOND

_FRIDAY: Final = 4
_WEDNESDAY: Final = 2


class Schedule(enum.Enum):
    """A series of expirations, counted in its own unit (days, weeks, months, ...)."""

    DAILY = "daily"  # every business day, `depth` of them
    WEEKLY = "weekly"  # Fridays within `depth` weeks
    MONTHLY = "monthly"  # third Fridays of the next `depth` months
    QUARTERLY = "quarterly"  # last business day of the next `depth` quarters
    LEAPS = "leaps"  # January third Fridays, `depth` years beyond next year
    VIX_MONTHLY = "vix_monthly"  # VIX Wednesdays, `depth` months
    VIX_WEEKLY = "vix_weekly"  # Wednesdays within `depth` weeks


def to_day(date: datetime.date) -> np.datetime64:
    return np.datetime64(date, "D")


def trading_date_at(now_ns: int) -> datetime.date:
    """The trading date whose close (16:00 New York) has not passed at `now_ns`.

    Today in New York on a weekday before the close; otherwise the next weekday.
    """
    local = datetime.datetime.fromtimestamp(now_ns / NS_PER_SECOND, NEW_YORK)
    day = local.date()
    if local.time() >= EXPIRY_TIME:
        day += datetime.timedelta(days=1)
    return np.busday_offset(to_day(day), 0, roll="forward").item()


def dailies(trading_date: datetime.date, depth: int) -> np.ndarray:
    """The next `depth` business days, the trading date included (0DTE)."""
    start = np.busday_offset(to_day(trading_date), 0, roll="forward")
    return np.busday_offset(start, np.arange(depth))


def weeklies(trading_date: datetime.date, depth: int) -> np.ndarray:
    """Fridays from the trading date through `depth` weeks."""
    start = to_day(trading_date)
    days = start + np.arange(7 * depth)
    return days[_weekday(days) == _FRIDAY]


def third_friday(months: np.ndarray) -> np.ndarray:
    """The third Friday of each month in `months` (``datetime64[M]``)."""
    first = months.astype("datetime64[D]")
    to_friday = (_FRIDAY - _weekday(first)) % 7
    return first + to_friday + 14


def monthlies(trading_date: datetime.date, depth: int) -> np.ndarray:
    """Third Fridays of the next `depth` months, this month's if it has not passed."""
    this_month = to_day(trading_date).astype("datetime64[M]")
    candidates = third_friday(this_month + np.arange(depth + 1))
    return candidates[candidates >= to_day(trading_date)][:depth]


def quarterlies(trading_date: datetime.date, depth: int) -> np.ndarray:
    """Last business day of the next `depth` calendar quarters (March, June, Sept., Dec.)."""
    this_month = to_day(trading_date).astype("datetime64[M]")
    months = this_month + np.arange(3 * depth + 3)
    quarter_ends = months[(months.astype(np.int64) % 12) % 3 == 2]
    last_days = (quarter_ends + 1).astype("datetime64[D]") - 1
    expiries = np.busday_offset(last_days, 0, roll="backward")
    return expiries[expiries >= to_day(trading_date)][:depth]


def leaps(trading_date: datetime.date, depth: int) -> np.ndarray:
    """January third Fridays of the `depth` years after next year (2..depth+1 years out)."""
    years = trading_date.year + 2 + np.arange(depth)
    januaries = (years - 1970).astype("datetime64[Y]").astype("datetime64[M]")
    return third_friday(januaries)


def vix_monthlies(trading_date: datetime.date, depth: int) -> np.ndarray:
    """VIX expirations: 30 days before the third Friday of the following month (a Wednesday)."""
    this_month = to_day(trading_date).astype("datetime64[M]")
    candidates = third_friday(this_month + 1 + np.arange(depth + 1)) - 30
    return candidates[candidates >= to_day(trading_date)][:depth]


def vix_weeklies(trading_date: datetime.date, depth: int) -> np.ndarray:
    """Wednesdays from the trading date through `depth` weeks."""
    days = to_day(trading_date) + np.arange(7 * depth)
    return days[_weekday(days) == _WEDNESDAY]


_SERIES = {
    Schedule.DAILY: dailies,
    Schedule.WEEKLY: weeklies,
    Schedule.MONTHLY: monthlies,
    Schedule.QUARTERLY: quarterlies,
    Schedule.LEAPS: leaps,
    Schedule.VIX_MONTHLY: vix_monthlies,
    Schedule.VIX_WEEKLY: vix_weeklies,
}


def expiries(trading_date: datetime.date, series: tuple[tuple[Schedule, int], ...]) -> np.ndarray:
    """The union of several series, sorted and distinct (``datetime64[D]``)."""
    parts = [_SERIES[schedule](trading_date, depth) for schedule, depth in series]
    if not parts:
        return np.empty(0, "datetime64[D]")
    return np.unique(np.concatenate(parts))


def is_standard_monthly(days: np.ndarray) -> np.ndarray:
    """True on third Fridays (the standard monthly expiries, where open interest gathers)."""
    day_of_month = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
    return (_weekday(days) == _FRIDAY) & (day_of_month >= 15) & (day_of_month <= 21)


def expiry_close_ns(expiry_days: np.ndarray) -> np.ndarray:
    """The expiry instant, 16:00 New York, of each expiry (days since 1970-01-01), as int64 ns.

    Loops over distinct dates only (a few hundred), then maps back.
    """
    days = np.asarray(expiry_days).astype(np.int64)
    distinct, inverse = np.unique(days, return_inverse=True)
    closes = np.fromiter((_close_ns(int(day)) for day in distinct), np.int64, distinct.shape[0])
    return closes[inverse]


def expiry_instant_ns(expiry_days: np.ndarray, am: np.ndarray) -> np.ndarray:
    """Each expiry's instant (int64 ns): the 16:00 close, or the 09:30 opening where `am` (the
    series settles a.m., `flashalpha.instruments.am_settled`)."""
    return expiry_close_ns(expiry_days) - np.where(am, AM_SETTLEMENT_LEAD_NS, 0)


def open_ns(trading_date: datetime.date) -> int:
    """09:30 New York on `trading_date`, ns since the epoch."""
    opening = datetime.datetime.combine(trading_date, OPEN_TIME, NEW_YORK)
    return int(opening.timestamp()) * NS_PER_SECOND


def _close_ns(day: int) -> int:
    date = datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
    close = datetime.datetime.combine(date, EXPIRY_TIME, NEW_YORK)
    return int(close.timestamp()) * NS_PER_SECOND


def _weekday(days: np.ndarray) -> np.ndarray:
    """Monday = 0 .. Sunday = 6; 1970-01-01 was a Thursday (3)."""
    return (days.astype("datetime64[D]").astype(np.int64) + 3) % 7
