"""The synthetic market's listing calendar."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from flashalpha.feeds.synthetic import calendar
from flashalpha.feeds.synthetic.calendar import Schedule

TUESDAY = datetime.date(2026, 3, 10)


def dates(days: np.ndarray) -> list[datetime.date]:
    return [d.item() for d in days]


def test_dailies_are_the_next_business_days_including_today():
    days = dates(calendar.dailies(TUESDAY, 10))
    assert days[0] == TUESDAY
    assert len(days) == 10
    assert all(d.weekday() < 5 for d in days)
    assert days[-1] == datetime.date(2026, 3, 23)
    saturday = datetime.date(2026, 3, 14)
    assert dates(calendar.dailies(saturday, 2)) == [
        datetime.date(2026, 3, 16),
        datetime.date(2026, 3, 17),
    ]


def test_weeklies_monthlies_quarterlies_and_leaps():
    assert dates(calendar.weeklies(TUESDAY, 3)) == [
        datetime.date(2026, 3, 13),
        datetime.date(2026, 3, 20),
        datetime.date(2026, 3, 27),
    ]
    monthlies = dates(calendar.monthlies(TUESDAY, 12))
    assert monthlies[:3] == [
        datetime.date(2026, 3, 20),
        datetime.date(2026, 4, 17),
        datetime.date(2026, 5, 15),
    ]
    assert len(monthlies) == 12
    assert all(d.weekday() == 4 and 15 <= d.day <= 21 for d in monthlies)
    # past this month's third Friday, the first monthly is next month's
    assert dates(calendar.monthlies(datetime.date(2026, 3, 21), 1)) == [datetime.date(2026, 4, 17)]
    assert dates(calendar.quarterlies(TUESDAY, 3)) == [
        datetime.date(2026, 3, 31),
        datetime.date(2026, 6, 30),
        datetime.date(2026, 9, 30),
    ]
    # 2027-12-31 is a Friday; 2028-03-31 too; 2026-12-31 a Thursday
    assert datetime.date(2026, 12, 31) in dates(calendar.quarterlies(TUESDAY, 4))
    assert dates(calendar.leaps(TUESDAY, 2)) == [
        datetime.date(2028, 1, 21),
        datetime.date(2029, 1, 19),
    ]


def test_vix_expiries_are_wednesdays_30_days_before_the_next_spx_monthly():
    expiries = dates(calendar.vix_monthlies(TUESDAY, 3))
    assert expiries[0] == datetime.date(2026, 3, 18)  # 30 days before 2026-04-17
    assert all(d.weekday() == 2 for d in expiries)
    assert all(d.weekday() == 2 for d in dates(calendar.vix_weeklies(TUESDAY, 4)))


def test_a_union_of_series_is_sorted_distinct_business_days():
    series = ((Schedule.DAILY, 10), (Schedule.WEEKLY, 6), (Schedule.MONTHLY, 12))
    days = calendar.expiries(TUESDAY, series)
    assert np.all(np.diff(days.astype(np.int64)) > 0)
    assert np.all(np.is_busday(days))
    assert days[0] == np.datetime64(TUESDAY)
    assert calendar.expiries(TUESDAY, ()).shape == (0,)


def test_standard_monthlies():
    days = np.array(["2026-03-20", "2026-03-13", "2026-04-17", "2026-03-18"], "datetime64[D]")
    assert calendar.is_standard_monthly(days).tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [(datetime.date(2026, 1, 16), 21), (datetime.date(2026, 6, 19), 20)],
)
def test_expiry_is_16_00_new_york_across_daylight_saving(day, utc_hour):
    days = np.array([(day - datetime.date(1970, 1, 1)).days] * 2)
    closes = calendar.expiry_close_ns(days)
    close = datetime.datetime.fromtimestamp(closes[0] / 1e9, datetime.UTC)
    assert (close.date(), close.hour, close.minute) == (day, utc_hour, 0)
    assert closes[0] == closes[1]


def test_trading_date_rolls_after_the_close_and_over_weekends():
    def at(text: str) -> int:
        local = datetime.datetime.fromisoformat(text).replace(tzinfo=calendar.NEW_YORK)
        return int(local.timestamp()) * 1_000_000_000

    assert calendar.trading_date_at(at("2026-03-10T15:59")) == TUESDAY
    assert calendar.trading_date_at(at("2026-03-10T16:00")) == datetime.date(2026, 3, 11)
    assert calendar.trading_date_at(at("2026-03-13T17:00")) == datetime.date(2026, 3, 16)
    assert calendar.trading_date_at(at("2026-03-15T09:00")) == datetime.date(2026, 3, 16)
