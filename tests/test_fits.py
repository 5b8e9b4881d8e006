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


def test_delta_method_variances_match_the_scatter_of_repeated_estimates(fits):
    """`log_rms_variance` and `log_std_variance` against the variance of log e over 4000
    repeats (K = 24 draws each: chi-square squares for the RMS, Gaussian draws for the
    standard deviation). The delta method is first order in 1/K, so they agree to O(1/K)
    relative; 15% allows that and the repeats' own scatter (sd of a variance from 4000
    repeats: 2.2%)."""
    rng = np.random.default_rng(1)
    k = 24
    squares = rng.chisquare(3, size=(4000, k))
    logs = 0.5 * np.log(squares.mean(axis=1))
    predicted = np.mean([fits.log_rms_variance(x) for x in squares])
    assert predicted == pytest.approx(np.var(logs), rel=0.15)
    draws = rng.standard_normal((4000, k))
    logs = np.log(draws.std(axis=1, ddof=1))
    predicted = np.mean([fits.log_std_variance(x) for x in draws])
    assert predicted == pytest.approx(np.var(logs), rel=0.15)
    assert predicted == pytest.approx(1 / (2 * (k - 1)), rel=0.15)  # Gaussian: 2 s^4/(K - 1)
    with pytest.raises(ValueError, match="at least 2 finite squares"):
        fits.log_rms_variance([1.0])
    with pytest.raises(ValueError, match="do not scatter"):
        fits.log_std_variance(np.ones(5))


def test_a_chance_straight_line_does_not_shrink_the_interval_below_the_scatter(fits):
    """Four errors that lie exactly on a line of order 0.6, each with log-variance 0.01 from
    its draws: the residuals give a zero-width interval that misses 1/2; the interval from
    the propagated scatter, 1.96 sqrt(sum c_i^2 v_i), contains it."""
    x = 2.0 ** np.arange(4, 8)
    errors = x**-0.6
    plain = fits.power_series("w", x, errors, sign=-1.0, expected=0.5)
    assert plain["half_width"] < 1e-10 and not plain["expected_in_interval"]
    v = np.full(4, 0.01)
    series = fits.power_series("w", x, errors, sign=-1.0, expected=0.5, log_variance=v)
    t = np.log(x)
    c = (t - t.mean()) / np.sum((t - t.mean()) ** 2)
    assert series["scatter_stderr"] == pytest.approx(math.sqrt(np.sum(c**2 * v)), rel=1e-12)
    assert series["half_width"] == pytest.approx(1.959964 * series["scatter_stderr"], rel=1e-6)
    assert series["expected_in_interval"] and series["log_variance"] == v.tolist()
    with pytest.raises(ValueError, match=r"w: log_variance has shape \(3,\), the errors \(4,\)"):
        fits.power_series("w", x, errors, sign=-1.0, expected=0.5, log_variance=v[:3])
    with pytest.raises(ValueError, match="finite non-negative"):
        fits.fit_order(t, np.log(errors), sign=-1.0, expected=0.5, model="m", log_variance=-v)
