"""The branch-free exp, ln and Φ over arrays (vector_math) against libm and scipy."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from flashalpha.pricing.vector_math import cdf_into, exp_into, log_into


def _apply(function, x, extra=0):
    out = np.empty_like(x)
    bits = np.empty(x.size, dtype=np.int64)
    if extra:
        function(x, out, np.empty_like(x), bits, x.size)
    else:
        function(x, out, bits, x.size)
    return out


def test_exp_within_two_ulps_and_limits():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708.0, 709.0, 200_000), rng.uniform(-1.0, 1.0, 10_000)])
    ours = _apply(exp_into, x)
    np.testing.assert_allclose(ours, np.exp(x), rtol=4.5e-16, atol=0.0)
    special = np.array([np.nan, np.inf, -np.inf, -800.0, 0.0, 710.0])
    result = _apply(exp_into, special)
    assert np.isnan(result[0])
    assert list(result[1:]) == [np.inf, 0.0, 0.0, 1.0, np.inf]


def test_log_within_two_ulps_and_limits():
    rng = np.random.default_rng(2)
    x = np.concatenate([np.exp(rng.uniform(-700.0, 700.0, 200_000)), rng.uniform(0.5, 2.0, 10_000)])
    ours = _apply(log_into, x)
    np.testing.assert_allclose(ours, np.log(x), rtol=4.5e-16, atol=2.3e-16)
    result = _apply(log_into, np.array([0.0, -1.0, np.inf, np.nan, 1.0]))
    assert result[0] == -np.inf and np.isnan(result[1]) and result[2] == np.inf
    assert np.isnan(result[3]) and result[4] == 0.0


def test_cdf_absolute_and_lower_tail_accuracy():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-38.0, 38.0, 200_000), rng.uniform(-6.0, 6.0, 100_000)])
    ours = _apply(cdf_into, x, extra=1)
    exact = ndtr(x)
    assert np.max(np.abs(ours - exact)) <= 3e-16
    tail = (x < 0.0) & (exact > 1e-300)
    # relative error from rounding x² (~x²·1e-16) in the lower tail
    assert np.all(np.abs(ours[tail] / exact[tail] - 1.0) <= 1e-15 * (1.0 + x[tail] ** 2))
    result = _apply(cdf_into, np.array([np.nan, np.inf, -np.inf, 0.0]), extra=1)
    assert np.isnan(result[0]) and list(result[1:]) == [1.0, 0.0, 0.5]
