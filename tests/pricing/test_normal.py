"""The normal distribution helpers against scipy.special (independent implementations)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from flashalpha.pricing.normal import erfcx, norm_cdf, norm_inv, norm_pdf


def test_erfcx_matches_scipy_to_a_few_ulps():
    # scipy's erfcx (Faddeeva package) is itself accurate to ~1e-15 for x >= -5; below that its
    # exp(x*x) rounds x² and loses up to 1e-13, so the negative tail is checked separately.
    xs = np.concatenate([np.linspace(-5.0, 30.0, 20001), np.geomspace(30.0, 1e12, 500)])
    mine = np.array([erfcx(x) for x in xs])
    np.testing.assert_allclose(mine, special.erfcx(xs), rtol=3e-15, atol=0)


def test_erfcx_negative_tail_and_overflow():
    # erfcx(x) = 2·exp(x²) - erfcx(-x): check the identity with an exactly representable x².
    for x in (-6.0, -10.5, -20.25, -26.5):
        assert erfcx(x) == pytest.approx(2.0 * np.exp(x * x) - erfcx(-x), rel=4e-16)
    assert erfcx(-27.0) == np.inf


def test_norm_cdf_lower_tail_reference_values():
    # Φ(-10), Φ(-20), Φ(-37): values of the normal integral to 17 significant digits
    # (Abramowitz & Stegun 26.2 style tables; checked against 40-digit arithmetic).
    assert norm_cdf(-10.0) == pytest.approx(7.6198530241605260e-24, rel=2e-15)
    assert norm_cdf(-20.0) == pytest.approx(2.7536241186062337e-89, rel=2e-15)
    assert norm_cdf(0.0) == 0.5
    assert norm_cdf(40.0) == 1.0
    assert norm_cdf(-40.0) == 0.0


def test_norm_cdf_and_pdf_match_scipy():
    # scipy's ndtr rounds x/√2 before erfc and loses ~x²·1e-16 in the lower tail; the tail is
    # covered by the reference values above.
    xs = np.linspace(-5.0, 12.0, 10001)
    np.testing.assert_allclose([norm_cdf(x) for x in xs], special.ndtr(xs), rtol=1e-14)
    np.testing.assert_allclose(
        [norm_pdf(x) for x in xs], np.exp(-0.5 * xs * xs) / np.sqrt(2 * np.pi), rtol=1e-15
    )


def test_norm_inv_matches_scipy_and_inverts_the_cdf():
    ps = np.concatenate([np.geomspace(1e-300, 0.01, 3000), np.linspace(0.01, 0.99, 3001)])
    ps = np.concatenate([ps, 1.0 - ps[ps > 1e-15]])
    np.testing.assert_allclose([norm_inv(p) for p in ps], special.ndtri(ps), rtol=2e-15)
    assert norm_inv(0.0) == -np.inf
    assert norm_inv(1.0) == np.inf
    assert np.isnan(norm_inv(1.5))
    assert np.isnan(norm_inv(np.nan))
