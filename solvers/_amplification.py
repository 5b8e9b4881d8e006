r"""The amplification check: how much a flow is predicted to amplify rounding, and `solve`'s verdict.

`predicted_amplification(flow, g0, t0, t1)` gives an `Amplification`: the
amplification $e^{\int \Lambda\, dt}$ of the flow's fastest linearly growing
mode on the given discretisation (`AbstractFlow.growth_rate`, at the reference
scale, divided by the metric's current scale $c(t)$: rates grow like $1/c$ as a
sphere shrinks). $c$ is the metric's smallest scale, the least eigenvalue of
$g$ relative to the reference metric over the nodes (where the metric is
smallest its modes are fastest: on a conformal bump $e^{1.4\cos x}\delta$ the
mean scale under-predicted the largest rate fourfold); it shrinks in proportion
to the volume's extrapolated linear change, and the integral stops where the
degenerate event of `solve` would, at `degenerate_tol` times the initial scale
(a stop that does not depend on the metric's size: a round sphere of radius
$10^{-3}$ is the unit sphere's problem rescaled, and predicts the same).
`solve` warns above `WARN_AMPLIFICATION` (1e3) and raises `IllPosedError` above
`REFUSE_AMPLIFICATION` (1e8) unless `force=True`, naming the number and the cures
(docs/conventions.md, Well-posedness).
"""

import dataclasses
import math
import warnings

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

import flows
from flows import AbstractFlow, NodalMetric

WARN_AMPLIFICATION = 1e3
REFUSE_AMPLIFICATION = 1e8


class IllPosedError(ValueError):
    """Raised when a flow's predicted amplification of rounding makes the run meaningless."""


@dataclasses.dataclass(frozen=True)
class Amplification:
    r"""The predicted amplification $e^{\text{exponent}}$ of the fastest growing mode.

    - `growth_rate`: $\Lambda$ at the reference scale (None: no prediction).
    - `exponent`: $\Lambda \int_{t_0}^{t_\mathrm{end}} dt / c(t)$.
    - `t_end`: the end of the integral ($t_1$, or where $c$ reaches `degenerate_tol`
      times $c(t_0)$ on the extrapolation).
    - `scale`, `shrink_rate`: $c(t_0)$ (the smallest scale) and $-\dot c$ used for the
      extrapolation.
    """

    growth_rate: float | None
    exponent: float
    t_end: float
    scale: float
    shrink_rate: float

    @property
    def value(self) -> float:
        """$e^\\text{exponent}$ (inf if it overflows; nan if there is no prediction)."""
        if self.growth_rate is None:
            return math.nan
        return math.exp(self.exponent) if self.exponent < 700 else math.inf


def _mean_trace_and_scale(flow: AbstractFlow, values: Array) -> tuple[float, float]:
    """The mean of tr_g V over dV_g at the initial metric, and the metric's smallest scale c:
    the least eigenvalue of g relative to the reference metric over the nodes."""
    m = flow.manifold
    trace, _ = flows.mean_trace(m, values, flow.evaluate(values))
    return float(trace), float(_smallest_scale(m, values))


@eqx.filter_jit
def _smallest_scale(m, values):
    r"""$\min_a \lambda_\mathrm{min}(g_\mathrm{ref}^{-1} g)$ at the nodes (chart components)."""
    factor = jnp.linalg.cholesky(m.tangential(m.reference_at_nodes()))
    inverse = jnp.linalg.inv(factor)
    relative = inverse @ m.tangential(values) @ jnp.swapaxes(inverse, -1, -2)
    relative = 0.5 * (relative + jnp.swapaxes(relative, -1, -2))
    return jnp.min(jnp.linalg.eigvalsh(relative)[:, 0])


def predicted_amplification(
    flow: AbstractFlow, g0: NodalMetric, t0: float, t1: float, degenerate_tol: float = 1e-4
) -> Amplification:
    """The amplification of rounding `flow` is predicted to cause from `g0` over [t0, t1]
    (the integral ending, on a shrinking metric, at `degenerate_tol` of the initial scale)."""
    rate = flow.growth_rate()
    if rate is None or rate == 0.0:
        return Amplification(rate, 0.0, float(t1), math.nan, math.nan)
    n = flow.manifold.dim
    mean_trace, c0 = _mean_trace_and_scale(flow, g0.values)
    relative = -mean_trace / n  # -d log c / dt: the volume's relative rate, per dimension
    if relative > 1e-12 * max(abs(mean_trace), 1.0):
        t_stop = t0 + (1 - degenerate_tol) / relative  # c(t) = c0 (1 - relative (t - t0))
        t_end = max(min(t1, t_stop), t0)
        remaining = 1 - relative * (t_end - t0)
        exponent = rate * math.log(1 / remaining) / (relative * c0)
    else:
        t_end = t1
        exponent = rate * (t1 - t0) / c0
    return Amplification(rate, exponent, float(t_end), c0, relative * c0)


def _judge(flow, amp: Amplification, t0, t1, force, warn_at, refuse_at) -> None:
    """Warn above `warn_at`, raise `IllPosedError` above `refuse_at` (unless `force`); `solve`'s caller is warned."""
    if amp.growth_rate is None:
        warnings.warn(
            f"solve: no amplification prediction for flow {flow.name!r}; watch for growing "
            "high modes (compare two resolutions).",
            stacklevel=3,
        )
        return
    value = amp.value
    if value <= warn_at:
        return
    message = (
        f"flow {flow.name!r} on {flow.manifold!r} over [{t0}, {t1}]: predicted amplification "
        f"of rounding exp(rate x int dt/c) = exp({amp.growth_rate:.4g} x "
        f"{amp.exponent / amp.growth_rate:.4g}) = {value:.3g} (rate: the largest linear growth "
        f"rate on this discretisation at the reference scale; c: the metric's smallest scale, "
        f"{amp.scale:.4g} at t0; docs/conventions.md, Well-posedness). Cures: smooth the flow "
        "(a Gaussian kernel of larger sigma), lower the resolution, shorten the interval, or "
        "integrate a well-posed equivalent (Ricci-DeTurck, ricci_deturck, or the lambda form "
        "with its DeTurck term, perelman_lambda_deturck)."
    )
    if value > refuse_at and not force:
        raise IllPosedError("solve refuses: " + message + " Pass force=True to run it anyway.")
    warnings.warn("solve: " + message, stacklevel=3)
