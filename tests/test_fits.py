"""experiments/_fits.py: the fits behind every order, rate and exponent the programs report.

Exact data gives the exponent to rounding (1e-12); under log-normal noise the 95% Student-t
interval covers the true slope in 95% of draws (2000 draws: the count of misses is binomial,
mean 100, sd 9.7, so 70-130 is a 3-sd band); what cannot be fitted is refused by name.
"""

import math

import numpy as np
import pytest

from .helpers import experiment_program


@pytest.fixture(scope="module")
def fits():
    return experiment_program("_fits")


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("p", [0.5, 2.0, 4.0])
def test_exact_power_laws_give_their_order(fits, sign, p):
    x = np.geomspace(0.01, 1.0, 7)
    errors = 3.0 * x ** (sign * p)
    series = fits.power_series("exact", x, errors, sign=sign, expected=p)
    assert abs(series["order"] - p) < 1e-12
    assert series["expected_in_interval"] and series["half_width"] < 1e-10
    assert np.allclose(series["local_orders"], p, rtol=0, atol=1e-12)


def test_exact_exponential_gives_its_rate(fits):
    x = np.arange(4.0, 20.0, 2.0)
    line = fits.log_fit(x, 5.0 * np.exp(-0.7 * x), log_x=False)
    assert abs(line.slope + 0.7) < 1e-12 and abs(math.exp(line.intercept) - 5.0) < 1e-10


def test_interval_covers_the_true_order_at_its_confidence(fits):
    rng = np.random.default_rng(0)
    t = np.log(np.geomspace(1.0, 100.0, 6))
    misses = 0
    for _ in range(2000):
        y = 1.0 - 0.5 * t + 0.1 * rng.standard_normal(t.size)
        fit = fits.fit_order(t, y, sign=-1.0, expected=0.5, model="test")
        misses += not fit["expected_in_interval"]
    assert 70 <= misses <= 130, misses


def test_the_ansatz_variation_widens_the_interval_of_a_corrected_law(fits):
    """e = dt^2 (1 + 3 dt): the plain fit is biased; adding dt to the fit (log(1 + 3 dt) is
    3 dt to leading order) moves the order most of the way back to 2, and the interval is
    widened by that shift."""
    dt = np.geomspace(0.01, 0.2, 8)
    t, y = np.log(dt), np.log(dt**2 * (1 + 3 * dt))
    fit = fits.fit_order(t, y, sign=1.0, expected=2.0, model="m", corrections=(("dt", dt),))
    assert fit["systematic_available"] and len(fit["ansatz_variations"]) == 1
    assert abs(fit["ansatz_variations"][0]["order"] - 2.0) < 0.2 * abs(fit["order"] - 2.0)
    assert fit["systematic"] == pytest.approx(
        abs(fit["ansatz_variations"][0]["order"] - fit["order"])
    )
    assert fit["half_width"] >= fit["systematic"] > 0.05
    # four points leave no variation two degrees of freedom: said, not hidden
    short = fits.fit_order(
        t[:4], y[:4], sign=1.0, expected=2.0, model="m", corrections=(("dt", dt[:4]),)
    )
    assert short["systematic_available"] is False and short["systematic"] == 0.0
    assert "no ansatz variation: 4 points" in fits.no_systematic(short)


def test_what_cannot_be_fitted_is_refused_by_name(fits):
    x = np.geomspace(0.01, 1.0, 5)
    errors = x**2
    with pytest.raises(
        ValueError, match=r"s: the error at x = 0.1 is nan \(a computation failed\)"
    ):
        fits.power_series("s", x, np.where(x == 0.1, np.nan, errors), sign=1.0, expected=2.0)
    with pytest.raises(ValueError, match="the error at x = 1 is inf"):
        fits.power_series("s", x, np.where(x == 1.0, np.inf, errors), sign=1.0, expected=2.0)
    keep = np.array([True, True, False, False, False])
    with pytest.raises(ValueError, match="s: only 2 of 5 points lie above the rounding floor"):
        fits.power_series("s", x, errors, sign=1.0, expected=2.0, keep=keep)
    with pytest.raises(ValueError, match="needs more than 2 points"):
        fits.fit_order(np.arange(2.0), np.arange(2.0), sign=1.0, expected=1.0, model="m")
    with pytest.raises(ValueError, match="non-finite"):
        fits.fit_order(
            np.arange(3.0), np.array([0.0, np.nan, 1.0]), sign=1.0, expected=1.0, model="m"
        )


def test_an_error_exactly_zero_is_left_out_quietly(fits):
    """An exact result (error 0) has no logarithm: it is not fitted, its local orders are
    NaN, and numpy says nothing on stderr."""
    x = np.geomspace(0.01, 1.0, 5)
    errors = np.where(x == 0.01, 0.0, x**2)
    with np.errstate(all="raise"):
        series = fits.power_series("s", x, errors, sign=1.0, expected=2.0)
    assert series["used_in_fit"] == [False, True, True, True, True]
    assert abs(series["order"] - 2.0) < 1e-12
    assert math.isnan(series["local_orders"][0]) and abs(series["local_orders"][1] - 2) < 1e-12
