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
mean of repeated draws with its standard error.
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
) -> dict:
    r"""The order $p = $ `sign` $\times$ the least-squares slope of `y` on `t`, with its interval.

    `t`, `y` are already logarithms ($\log x$ or $x$, and $\log e$). The interval is
    $p \pm (t_{0.975}\,\mathrm{se} + s)$: $t_{0.975}$ the Student-t quantile at the
    line's degrees of freedom, $s = \max_k |p_k - p|$, $p_k$ the order when the first
    $k$ of `corrections` (named columns: the next terms of the error's expansion) join
    the fit, for each $k$ that leaves at least two degrees of freedom; $s = 0$ without
    corrections.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    if len(t) < 3:
        raise ValueError("a fit of 2 parameters needs more than 2 points")
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
    record["systematic"] = max((abs(a["order"] - order) for a in ansatz), default=0.0)
    half = quantile * stderr + record["systematic"]
    record["half_width"] = half
    record["interval"] = [order - half, order + half]
    record["confidence"] = CONFIDENCE
    record["expected_order"] = expected
    record["expected_in_interval"] = bool(order - half <= expected <= order + half)
    return record


def local_orders(t: np.ndarray, y: np.ndarray, sign: float) -> list[float]:
    r"""`sign` times the slope between consecutive points, $(y_{i+1} - y_i)/(t_{i+1} - t_i)$."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    return (sign * np.diff(y) / np.diff(t)).tolist()


def power_series(
    label: str,
    x: np.ndarray,
    errors: np.ndarray,
    *,
    sign: float,
    expected: float,
    corrections: tuple[tuple[str, np.ndarray], ...] = (),
    keep: np.ndarray | None = None,
    **extra,
) -> dict:
    r"""One power-law series: error $\propto x^{\pm p}$, fitted in log-log over the kept points."""
    x, errors = np.asarray(x, float), np.asarray(errors, float)
    keep = np.ones(x.shape, bool) if keep is None else np.asarray(keep, bool)
    t, y = np.log(x[keep]), np.log(errors[keep])
    fit = fit_order(
        t,
        y,
        sign=sign,
        expected=expected,
        model="log e = c + slope log x",
        corrections=tuple((name, np.asarray(c, float)[keep]) for name, c in corrections),
    )
    progress(
        f"  {label}: order {fit['order']:.4f}, 95% interval "
        f"[{fit['interval'][0]:.4f}, {fit['interval'][1]:.4f}], expected {expected:g}: "
        f"{'inside' if fit['expected_in_interval'] else 'OUTSIDE'}"
    )
    return {
        "label": label,
        "kind": "power",
        "x": x.tolist(),
        "error": errors.tolist(),
        "used_in_fit": keep.tolist(),
        "sign": sign,
        "local_orders": local_orders(np.log(x), np.log(errors), sign),
        **fit,
        **extra,
    }
