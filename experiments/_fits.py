r"""Fits shared by the experiment programs: one least-squares line, fitted to logarithms.

Every fitted order, rate, exponent or slope in these programs is the least-squares line
$y = a + b\,t$ through $(t_i, y_i)$, computed by `least_squares`:

- a power law $e \propto x^{b}$ is the line through $(\log x_i, \log e_i)$
  (`log_fit(x, e)`; a convergence order is $p = \mp b$);
- an exponential $e \propto e^{b x}$ (a decay rate $-b$, a spectral rate) is the line
  through $(x_i, \log e_i)$ (`log_fit(x, e, log_x=False)`).

The slope's standard error is $\mathrm{se}(b) = \sqrt{s^2\,[(X^\top X)^{-1}]_{bb}}$,
$s^2 = \sum_i r_i^2/(n - 2)$ the residual variance ($n - 2$ degrees of freedom), which for
a line is $\sqrt{s^2/\sum_i (t_i - \bar t)^2}$. `fit_order` adds the 95% Student-t
interval and the ansatz variations of the convergence studies. `mean_and_stderr` is the
mean of repeated draws with its standard error; `log_rms_variance` and `log_std_variance`
give the variance of $\log e$ when each error $e$ is itself estimated from repeated draws
(a root mean square, a standard deviation), which `fit_order` propagates to the slope.
"""

import math
from typing import NamedTuple

import numpy as np
import scipy.stats
from _common import progress

CONFIDENCE = 0.95


def mean_and_stderr(values) -> tuple[float, float]:
    r"""Mean $\bar x$ and standard error $s/\sqrt n$ of $n \ge 2$ values ($s$ with $n - 1$ dof)."""
    x = np.asarray(values, float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"mean_and_stderr: need at least 2 values, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"mean_and_stderr: non-finite values {x.tolist()}")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def log_rms_variance(squares) -> float:
    r"""The variance of $\log e$, $e = \sqrt{\bar x}$ the root mean square of $K$ draws.

    `squares` are the $K \ge 2$ draws $x_j$ of a squared error. By the delta method,
    $\mathrm{Var}(\log e) = \mathrm{Var}(\log \bar x)/4 \approx s_x^2/(4K\bar x^2)$,
    $s_x^2$ the sample variance ($K - 1$ degrees of freedom).
    """
    x = np.asarray(squares, float).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)) or not x.mean() > 0:
        raise ValueError(
            f"log_rms_variance: need at least 2 finite squares with a positive mean, got {x.size}"
        )
    return float(x.var(ddof=1) / (4 * x.size * x.mean() ** 2))


def log_std_variance(values) -> float:
    r"""The variance of $\log s$, $s$ the sample standard deviation of $K \ge 4$ draws.

    By the delta method, $\mathrm{Var}(\log s) \approx \mathrm{Var}(s^2)/(4 s^4)$ with
    $\mathrm{Var}(s^2)/s^4 \approx 2/(K - 1) + G_2/K$, $G_2$ the draws' sample excess
    kurtosis with its small-sample correction (`scipy.stats.kurtosis(bias=False)`; 0 for
    Gaussian draws, whose exact value is $2/(K - 1)$). Floored at 0 for very light tails.
    """
    x = np.asarray(values, float).ravel()
    if x.size < 4 or not np.all(np.isfinite(x)):
        raise ValueError(f"log_std_variance: need at least 4 finite values, got {x.size}")
    if not x.var() > 0:
        raise ValueError("log_std_variance: the values do not scatter (standard deviation 0)")
    k = x.size
    excess = float(scipy.stats.kurtosis(x, bias=False))
    return max(2 / (k - 1) + excess / k, 0.0) / 4


def least_squares(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    r"""Least squares of `y` on `columns`: coefficients $\beta$, their standard errors, degrees of freedom.

    $\beta = \arg\min |y - X\beta|^2$, $X$ the columns side by side;
    $\mathrm{se}(\beta_j) = \sqrt{s^2 [(X^\top X)^{-1}]_{jj}}$, $s^2 = |y - X\beta|^2/(n - k)$
    with $n - k$ the degrees of freedom ($k$ columns). With none ($n = k$, an exact fit)
    the standard errors are 0, as `scipy.stats.linregress` reports for two points.
    """
    x = np.stack(columns, axis=1)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = len(y) - x.shape[1]
    if dof < 0:
        raise ValueError(f"a fit of {x.shape[1]} parameters needs at least {x.shape[1]} points")
    if dof == 0:
        return beta, np.zeros_like(beta), dof
    residual = y - x @ beta
    cov = (residual @ residual / dof) * np.linalg.inv(x.T @ x)
    return beta, np.sqrt(np.diag(cov)), dof


class Line(NamedTuple):
    """A fitted line $y = $ `intercept` $+$ `slope` $t$, the slope's standard error, and the degrees of freedom."""

    slope: float
    intercept: float
    stderr: float
    dof: int


def line_fit(t, y) -> Line:
    r"""The least-squares line $y = a + b\,t$ (`least_squares` on the columns $1, t$)."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    beta, se, dof = least_squares([np.ones_like(t), t], y)
    return Line(float(beta[1]), float(beta[0]), float(se[1]), dof)


def log_fit(x, y, *, log_x: bool = True) -> Line:
    r"""The least-squares line through $(\log x, \log y)$, or $(x, \log y)$ if not `log_x`.

    With `log_x`: a power law, $\log y = a + b\log x$, i.e. $y = e^a x^b$.
    Without: an exponential, $\log y = a + b\,x$, i.e. $y = e^a e^{bx}$ (decay rate $-b$).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    return line_fit(np.log(x) if log_x else x, np.log(y))


def fit_order(
    t: np.ndarray,
    y: np.ndarray,
    *,
    sign: float,
    expected: float,
    model: str,
    corrections: tuple[tuple[str, np.ndarray], ...] = (),
    log_variance: np.ndarray | None = None,
) -> dict:
    r"""The order $p = $ `sign` $\times$ the least-squares slope of `y` on `t`, with its interval.

    `t`, `y` are already logarithms ($\log x$ or $x$, and $\log e$). The interval is
    $p \pm (h + s)$. Without `log_variance`, $h = t_{0.975}\,\mathrm{se}$: $t_{0.975}$ the
    Student-t quantile at the line's degrees of freedom, $\mathrm{se}$ from the residuals.
    With `log_variance` ($v_i$, the variance of each $y_i$ from its own repeated draws:
    `log_rms_variance`, `log_std_variance`), $h$ is the larger of that and
    $z_{0.975}\sqrt{\sum_i c_i^2 v_i}$, the slope's standard error propagated from the
    draws ($b = \sum_i c_i y_i$, $c_i = (t_i - \bar t)/\sum_j (t_j - \bar t)^2$): with a
    few points the residuals alone can lie on a line by chance and give an interval far
    narrower than the scatter. $s = \max_k |p_k - p|$, $p_k$ the order when the first
    $k$ of `corrections` (named columns: the next terms of the error's expansion) join
    the fit, for each $k$ that leaves at least two degrees of freedom; $s = 0$ without
    corrections.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    if len(t) < 3:
        raise ValueError("a fit of 2 parameters needs more than 2 points")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ValueError(f"a fit of non-finite values: t = {t.tolist()}, y = {y.tolist()}")
    line = line_fit(t, y)
    order, stderr, dof = sign * line.slope, line.stderr, line.dof
    quantile = float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2, dof))
    record = {
        "model": model,
        "order": order,
        "stderr": stderr,
        "dof": dof,
        "t_quantile": quantile,
        "intercept": line.intercept,
    }
    ones = np.ones_like(t)
    ansatz = []
    for k in range(1, len(corrections) + 1):
        if len(t) - 2 - k < 2:
            break
        columns = [np.asarray(c, float) for _, c in corrections[:k]]
        beta_k, se_k, _ = least_squares([ones, t, *columns], y)
        names = " + ".join(f"q{j} {name}" for j, (name, _) in enumerate(corrections[:k], 1))
        ansatz.append(
            {
                "model": f"{model} + {names}",
                "order": sign * float(beta_k[1]),
                "stderr": float(se_k[1]),
            }
        )
    record["ansatz_variations"] = ansatz
    # with corrections but too few points for any variation, the interval is lack of fit only
    record["systematic_available"] = bool(ansatz) or not corrections
    record["systematic"] = max((abs(a["order"] - order) for a in ansatz), default=0.0)
    random = quantile * stderr
    if log_variance is not None:
        v = np.asarray(log_variance, float)
        if v.shape != t.shape or not (np.all(np.isfinite(v)) and np.all(v >= 0)):
            raise ValueError(
                f"log_variance must be {t.size} finite non-negative values, got {v.tolist()}"
            )
        c = (t - t.mean()) / np.sum((t - t.mean()) ** 2)
        record["scatter_stderr"] = float(np.sqrt(np.sum(c**2 * v)))
        random = max(
            random, float(scipy.stats.norm.ppf(0.5 + CONFIDENCE / 2)) * record["scatter_stderr"]
        )
    half = random + record["systematic"]
    record["half_width"] = half
    record["interval"] = [order - half, order + half]
    record["confidence"] = CONFIDENCE
    record["expected_order"] = expected
    record["expected_in_interval"] = bool(order - half <= expected <= order + half)
    return record


def no_systematic(fit: dict) -> str:
    """The progress line's note when the corrections could not widen the interval."""
    if fit["systematic_available"]:
        return ""
    return f" (no ansatz variation: {fit['dof'] + 2} points; the interval is lack of fit only)"


def local_orders(t: np.ndarray, y: np.ndarray, sign: float) -> list[float]:
    r"""`sign` times the slope between consecutive points, $(y_{i+1} - y_i)/(t_{i+1} - t_i)$.

    A slope next to an infinite $y$ (the logarithm of an error that is exactly 0) is NaN
    (null in the JSON), without a warning.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    with np.errstate(invalid="ignore"):
        slopes = sign * np.diff(y) / np.diff(t)
    return np.where(np.isfinite(slopes), slopes, np.nan).tolist()


def check_series(label: str, x, errors, keep, *, floor: str, hint: str) -> None:
    r"""Refuse a series that cannot be fitted, naming it: a non-finite error anywhere, or
    fewer than 3 kept points (`keep`: those above the rounding floor, described by `floor`;
    `hint`: what to change).

    A non-finite error is a failure (a solver that blew up), never a rounding floor.
    """
    x, errors, keep = np.asarray(x, float), np.asarray(errors, float), np.asarray(keep, bool)
    bad = ~np.isfinite(errors)
    if bad.any():
        raise ValueError(
            f"{label}: the error at x = {x[bad][0]:g} is {errors[bad][0]} (a computation "
            f"failed); nothing is fitted"
        )
    if keep.sum() < 3:
        raise ValueError(
            f"{label}: only {int(keep.sum())} of {keep.size} points lie above {floor}; a fitted "
            f"order needs 3 ({hint})"
        )


def log_safe(values) -> np.ndarray:
    r"""$\log$ of non-negative values; 0 gives $-\infty$ without a warning."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(values, float))


def power_series(
    label: str,
    x: np.ndarray,
    errors: np.ndarray,
    *,
    sign: float,
    expected: float,
    corrections: tuple[tuple[str, np.ndarray], ...] = (),
    keep: np.ndarray | None = None,
    hint: str = "refine further",
    log_variance: np.ndarray | None = None,
    **extra,
) -> dict:
    r"""One power-law series: error $\propto x^{\pm p}$, fitted in log-log over the kept points.

    `keep` (default all) marks the points above the rounding floor; errors exactly 0 are
    left out too. A non-finite error, or fewer than 3 kept points, is refused by name
    (`check_series`; `hint` says what to change). `log_variance`, one per point, is the
    variance of $\log e$ from the draws behind each error (`fit_order`); it is recorded.
    """
    x, errors = np.asarray(x, float), np.asarray(errors, float)
    if keep is None:
        keep = errors > 0
        floor = "0 (an error exactly 0 has no logarithm)"
    else:
        keep = np.asarray(keep, bool) & (errors > 0)
        floor = "the rounding floor"
    check_series(label, x, errors, keep, floor=floor, hint=hint)
    if log_variance is not None and np.shape(log_variance) != x.shape:
        raise ValueError(
            f"{label}: log_variance has shape {np.shape(log_variance)}, the errors {x.shape}"
        )
    t, y = np.log(x[keep]), np.log(errors[keep])
    fit = fit_order(
        t,
        y,
        sign=sign,
        expected=expected,
        model="log e = c + slope log x",
        corrections=tuple((name, np.asarray(c, float)[keep]) for name, c in corrections),
        log_variance=None if log_variance is None else np.asarray(log_variance, float)[keep],
    )
    progress(
        f"  {label}: order {fit['order']:.4f}, 95% interval "
        f"[{fit['interval'][0]:.4f}, {fit['interval'][1]:.4f}], expected {expected:g}: "
        f"{'inside' if fit['expected_in_interval'] else 'OUTSIDE'}{no_systematic(fit)}"
    )
    return {
        "label": label,
        "kind": "power",
        "x": x.tolist(),
        "error": errors.tolist(),
        "used_in_fit": keep.tolist(),
        "sign": sign,
        "local_orders": local_orders(np.log(x), log_safe(errors), sign),
        **({} if log_variance is None else {"log_variance": np.asarray(log_variance).tolist()}),
        **fit,
        **extra,
    }
