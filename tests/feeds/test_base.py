"""Backoff, link settings, secrets, the rate limiter and the quote planner."""

from __future__ import annotations

import datetime as dt
import random
import time

import pytest

from flashalpha.feeds.base import (
    Backoff,
    LinkSettings,
    RateLimiter,
    Secret,
    plan_quotes,
    resolve_secret,
)
from flashalpha.feeds.normalize import date_to_days
from flashalpha.instruments import InstrumentRegistry, OptionContract
from flashalpha.state.layout import Right


class TestBackoff:
    def test_doubles_from_one_second_to_sixty_with_jitter(self):
        backoff = Backoff(LinkSettings(backoff_jitter=0.2), random.Random(3))
        delays = [backoff.next_delay() for _ in range(10)]
        for attempt, delay in enumerate(delays):
            base = min(60.0, 2.0**attempt)
            assert 0.8 * base <= delay <= min(60.0, 1.2 * base)
        assert delays[-1] <= 60.0
        assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lockstep

    def test_reset_and_escalate(self):
        backoff = Backoff(LinkSettings(backoff_jitter=0.0))
        backoff.next_delay()
        backoff.next_delay()
        backoff.reset()
        assert backoff.next_delay() == 1.0
        backoff.escalate()
        assert backoff.next_delay() == 60.0

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"stale_after": 0},
            {"backoff_initial": -1},
            {"backoff_max": 0.5, "backoff_initial": 1.0},
            {"backoff_jitter": 1.0},
            {"backoff_factor": 0.5},
        ],
    )
    def test_invalid_settings_are_named(self, kwargs):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            LinkSettings(**kwargs)


class TestSecret:
    def test_never_shows_its_value(self, monkeypatch):
        monkeypatch.setenv("SOME_KEY", "s3cr3t-value")
        secret = resolve_secret(None, "SOME_KEY")
        assert secret.reveal() == "s3cr3t-value"
        assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret)
        assert "s3cr3t" not in f"{secret} {[secret]}"
        assert resolve_secret("from-config", "SOME_KEY").reveal() == "from-config"
        assert not Secret("")


async def test_rate_limiter_spaces_requests():
    limiter = RateLimiter(20.0, burst=1)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started >= 4 / 20.0 * 0.9


def _registry(today: dt.date) -> InstrumentRegistry:
    registry = InstrumentRegistry(1000, 10)
    for days in (-1, 1, 8, 15):  # one expired
        for strike in range(90, 111, 5):
            for right in (Right.CALL, Right.PUT):
                registry.add(
                    OptionContract("XYZ", today + dt.timedelta(days=days), strike * 1000, right)
                )
    return registry


class TestPlanQuotes:
    today = dt.date(2026, 6, 1)

    def test_nearest_expiry_first_then_strikes_around_the_money(self):
        registry = _registry(self.today)
        uid = registry.underlying_id("XYZ")
        rows = plan_quotes(registry, [uid], {uid: 101.0}, date_to_days(self.today), 6)
        expiries = registry.expiry_days[rows]
        assert (expiries == date_to_days(self.today) + 1).all()
        # the strikes nearest 101 on each side come first: 100 (below) and 105 (above)
        assert set(registry.strikes[rows[:4]].tolist()) == {100.0, 105.0}

    def test_limits_and_moneyness_order(self):
        registry = _registry(self.today)
        uid = registry.underlying_id("XYZ")
        today = date_to_days(self.today)
        rows = plan_quotes(
            registry, [uid], {uid: 100.0}, today, 1000, max_expiries=2, strikes_per_side=1
        )
        assert len(rows) == 2 * 2 * 2  # 2 expiries x (1 below incl. ATM, 1 above) x 2 rights
        assert set(registry.strikes[rows].tolist()) == {100.0, 105.0}
        rows = plan_quotes(registry, [uid], {uid: 100.0}, today, 12, order="moneyness")
        # the strike nearest the money on each side, over every live expiry, first
        assert set(registry.strikes[rows].tolist()) == {100.0, 105.0}
        assert len(set(registry.expiry_days[rows].tolist())) == 3
        assert (registry.expiry_days[plan_quotes(registry, [uid], {}, today, 1000)] >= today).all()

    def test_bad_order_is_named(self):
        registry = _registry(self.today)
        with pytest.raises(ValueError, match="sideways"):
            plan_quotes(registry, [0], {}, 0, 10, order="sideways")
