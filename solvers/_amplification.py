r"""The amplification check: how much a flow is predicted to amplify rounding, and `solve`'s verdict.

`predicted_amplification(flow, g0, t0, t1)` gives an `Amplification`: the
amplification $e^{\int \Lambda\, dt}$ of the flow's fastest linearly growing
mode on the given discretisation (`AbstractFlow.growth_rate`, at the reference
scale, divided by the metric's current scale $c(t)$: rates grow like $1/c$ as a
sphere shrinks; $c(t)$ is extrapolated linearly from the initial volume change,
and the integral is taken up to $10^{-3}$ before the extrapolated extinction).
`solve` warns above `WARN_AMPLIFICATION` (1e3) and raises `IllPosedError` above
`REFUSE_AMPLIFICATION` (1e8) unless `force=True`, naming the number and the cures
(docs/conventions.md, Well-posedness).
"""

import dataclasses
import math
import warnings

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
    - `t_end`: the end of the integral ($t_1$, or $10^{-3}$ before extrapolated extinction).
    - `scale`, `shrink_rate`: $c(t_0)$ and $-\dot c$ used for the extrapolation.
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
    """The mean of tr_g V over dV_g at the initial metric, and the metric's mean scale c."""
    m = flow.manifold
    trace, volume = flows.mean_trace(m, values, flow.evaluate(values))
    return float(trace), float((volume / m.volume) ** (2 / m.dim))


def predicted_amplification(
    flow: AbstractFlow, g0: NodalMetric, t0: float, t1: float
) -> Amplification:
    """The amplification of rounding `flow` is predicted to cause from `g0` over [t0, t1]."""
    rate = flow.growth_rate()
    if rate is None or rate == 0.0:
        return Amplification(rate, 0.0, float(t1), math.nan, math.nan)
    n = flow.manifold.dim
    mean_trace, c0 = _mean_trace_and_scale(flow, g0.values)
    shrink = -c0 * mean_trace / n
    if shrink > 1e-12 * max(abs(mean_trace), 1.0):
        t_ext = t0 + c0 / shrink
        t_end = min(t1, t_ext - 1e-3)
        c_end = c0 - shrink * (t_end - t0)
        exponent = rate * math.log(c0 / c_end) / shrink if t_end > t0 else 0.0
    else:
        t_end = t1
        exponent = rate * (t1 - t0) / c0
    return Amplification(rate, exponent, float(t_end), c0, shrink)


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
        f"of rounding exp({amp.growth_rate:.4g} x {amp.exponent / amp.growth_rate:.4g}) = "
        f"{value:.3g} (largest linear growth rate {amp.growth_rate:.4g} on this discretisation; "
        "docs/conventions.md, Well-posedness). Cures: smooth the flow (a Gaussian kernel of "
        "larger sigma), lower the resolution, shorten the interval, or integrate a well-posed "
        "equivalent (the lambda form, perelman_lambda, or Ricci-DeTurck, ricci_deturck)."
    )
    if value > refuse_at and not force:
        raise IllPosedError("solve refuses: " + message + " Pass force=True to run it anyway.")
    warnings.warn("solve: " + message, stacklevel=3)
