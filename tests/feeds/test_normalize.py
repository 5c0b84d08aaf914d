"""Normalization at the edge: codes, New York times across DST, contract resolution."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from flashalpha.feeds.normalize import (
    POLYGON_CONDITIONS,
    POLYGON_EXCHANGES,
    THETADATA_CONDITIONS,
    THETADATA_EXCHANGES,
    ContractResolver,
    Exchange,
    TradeCondition,
    build_trades,
    eastern_to_utc_ns,
    map_codes,
    valid_dates,
)
from flashalpha.instruments import InstrumentRegistry, parse_polygon
from flashalpha.state.layout import RejectKind

NEW_YORK = ZoneInfo("America/New_York")


def utc_ns(year, month, day, hour, minute, second=0, ms=0) -> int:
    moment = dt.datetime(year, month, day, hour, minute, second, ms * 1000, tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000 + ms * 1_000_000


def ms_of_day(hour, minute, second=0, ms=0) -> int:
    return ((hour * 60 + minute) * 60 + second) * 1000 + ms


class TestCodes:
    def test_polygon_and_thetadata_exchanges_map_to_one_table(self):
        assert map_codes(POLYGON_EXCHANGES, np.array([302, 313, 322]))[0] == Exchange.CBOE
        assert map_codes(THETADATA_EXCHANGES, np.array([5]))[0] == Exchange.CBOE
        assert map_codes(THETADATA_EXCHANGES, np.array([42]))[0] == Exchange.CBOE_C2
        assert map_codes(POLYGON_EXCHANGES, np.array([322]))[0] == Exchange.CBOE_C2

    def test_unknown_and_out_of_range_codes(self):
        codes = np.array([-1, 0, 999, 10**9])
        assert (map_codes(POLYGON_EXCHANGES, codes) == Exchange.UNKNOWN).all()
        assert (map_codes(THETADATA_CONDITIONS, codes[[0, 2, 3]]) == TradeCondition.OTHER).all()
        assert map_codes(THETADATA_CONDITIONS, codes)[1] == TradeCondition.REGULAR

    def test_conditions(self):
        assert map_codes(POLYGON_CONDITIONS, np.array([219]))[0] == TradeCondition.INTERMARKET_SWEEP
        assert (
            map_codes(THETADATA_CONDITIONS, np.array([95]))[0] == TradeCondition.INTERMARKET_SWEEP
        )
        assert map_codes(POLYGON_CONDITIONS, np.array([201]))[0] == TradeCondition.CANCELED
        assert map_codes(THETADATA_CONDITIONS, np.array([130]))[0] == TradeCondition.MULTI_LEG

    def test_cancel_reports_are_not_trades(self):
        rows = np.array([0, 1, -1])
        trades = build_trades(
            rows,
            np.array([1.0, 2.0, 3.0]),
            np.array([1, 2, 3]),
            np.zeros(3, np.uint8),
            np.array([TradeCondition.REGULAR, TradeCondition.CANCELED, TradeCondition.REGULAR]),
            np.array([1, 2, 3], np.uint64),
        )
        assert trades["row"].tolist() == [0]


class TestEasternTime:
    @pytest.mark.parametrize(
        ("date", "clock", "expected"),
        [
            # 2026-03-08: clocks spring forward at 02:00 EST to 03:00 EDT.
            (20260308, ms_of_day(0, 0), utc_ns(2026, 3, 8, 5, 0)),
            (20260308, ms_of_day(1, 59, 59, 999), utc_ns(2026, 3, 8, 6, 59, 59, 999)),
            (20260308, ms_of_day(3, 0), utc_ns(2026, 3, 8, 7, 0)),
            (20260308, ms_of_day(9, 30), utc_ns(2026, 3, 8, 13, 30)),
            (20260307, ms_of_day(9, 30), utc_ns(2026, 3, 7, 14, 30)),
            (20260309, ms_of_day(16, 0), utc_ns(2026, 3, 9, 20, 0)),
            # 2026-11-01: clocks fall back at 02:00 EDT to 01:00 EST.
            (20261101, ms_of_day(0, 30), utc_ns(2026, 11, 1, 4, 30)),
            (20261101, ms_of_day(1, 30), utc_ns(2026, 11, 1, 5, 30)),  # first 01:30 (EDT)
            (20261101, ms_of_day(2, 0), utc_ns(2026, 11, 1, 7, 0)),
            (20261101, ms_of_day(9, 30), utc_ns(2026, 11, 1, 14, 30)),
            (20261031, ms_of_day(9, 30), utc_ns(2026, 10, 31, 13, 30)),
            (20261102, ms_of_day(16, 0, 0, 5), utc_ns(2026, 11, 2, 21, 0, 0, 5)),
        ],
    )
    def test_dst_transition_days(self, date, clock, expected):
        got = eastern_to_utc_ns(np.array([date]), np.array([clock]))
        assert got.dtype == np.uint64
        assert int(got[0]) == expected

    def test_vectorized_mixed_dates_agree_with_zoneinfo(self):
        rng = np.random.default_rng(1)
        days = [dt.date(2026, 3, 7) + dt.timedelta(days=int(d)) for d in rng.integers(0, 250, 500)]
        # Avoid the skipped and repeated hours, where wall clocks are not unique.
        clocks = rng.integers(3 * 3_600_000, 24 * 3_600_000, 500)
        dates = np.array([d.year * 10_000 + d.month * 100 + d.day for d in days])
        got = eastern_to_utc_ns(dates, clocks)
        for day, clock, value in zip(days, clocks.tolist(), got.tolist(), strict=True):
            local = dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK) + dt.timedelta(
                milliseconds=clock
            )
            wall = local.replace(tzinfo=None)
            expected = dt.datetime(*wall.timetuple()[:6], wall.microsecond, tzinfo=NEW_YORK)
            assert value == round(expected.timestamp() * 1000) * 1_000_000

    def test_invalid_date_is_named(self):
        with pytest.raises(ValueError, match="20260231"):
            eastern_to_utc_ns(np.array([20260231]), np.array([0]))
        assert valid_dates(
            np.array([20260231, 20240229, 20250229, 20261301, 20260101])
        ).tolist() == [
            False,
            True,
            False,
            False,
            True,
        ]

    @pytest.mark.parametrize("date", [20260231, 20240229, 20250229, 20261301, 20260101, 0])
    def test_a_burst_of_one_date_is_checked_like_each_date(self, date):
        one = valid_dates(np.array([date]))[0]
        assert valid_dates(np.full(5, date)).tolist() == [one] * 5
        assert valid_dates(np.full((2, 3), date)).tolist() == [[one] * 3] * 2


class TestContractResolver:
    def test_registers_parseable_and_rejects_the_rest(self):
        registry = InstrumentRegistry(100, 10)
        known = registry.add(parse_polygon("O:SPY261218C00500000"))
        rejects = []
        resolver = ContractResolver(
            registry, parse_polygon, lambda kind, msg, n: rejects.append((kind, msg, n)), "test"
        )
        keys = ["O:SPY261218C00500000", "O:QQQ261218P00400000", "O:BAD", "O:BAD"]
        rows = resolver.rows(keys, len(keys))
        assert rows[0] == known
        assert rows[1] == registry.get_row("QQQ261218P00400000") >= 0
        assert rows[2:].tolist() == [-1, -1]
        assert registry.count == 2
        assert resolver.registered == 1
        assert len(rejects) == 2
        assert all(kind is RejectKind.UNKNOWN_SYMBOL for kind, _, _ in rejects)
        assert "'O:BAD'" in rejects[0][1]
        # cached: a second pass resolves without parsing, rejects again
        assert resolver.rows(keys, 4).tolist() == rows.tolist()
        assert len(rejects) == 4
