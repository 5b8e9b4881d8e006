r"""What a solve gives back: `Solution`, its observables, and why it stopped (`StopReason`).

A `Solution` holds the saved times and nodal metric values a solve reached (the
last entry is the state where it stopped), the stop time and its reason, the
amplification predicted before the solve, and diffrax's step counts.
`observables(metric)` gives its diffeomorphism-invariant numbers.

Every solver of `solvers` says why it stopped by a `StopReason`, an enumeration
of strings in the manner of diffrax's `RESULTS`: a member *is* its message
(`StopReason.REACHED_T1 == "reached t1"`), so comparisons, printing and JSON see
the message itself, and a checkpoint stores it as that string. The one reason
that is not a member is a solver failure, whose message carries diffrax's own:
`"solver failed: ..."`, starting with `StopReason.SOLVER_FAILED`.
"""

import dataclasses
import enum
import numbers

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import flows
from flows import NodalMetric

from . import _controller
from ._amplification import Amplification


class StopReason(enum.StrEnum):
    """Why a solve stopped; each member is its message (a `str`, equal to that message)."""

    # every solver
    REACHED_T1 = "reached t1"
    MAX_STEPS_REACHED = "max_steps reached"
    SOLVER_FAILED = "solver failed"  # the start of the message "solver failed: <diffrax's>"
    # solve's events (`solve`, `solve_network`)
    DEGENERATE = (
        "metric degenerate: its smallest eigenvalue fell to degenerate_tol of its initial "
        "value and its largest below sqrt(degenerate_tol) of its own (extinction)"
    )
    LOCALLY_DEGENERATE = (
        "metric degenerate at some nodes: its smallest eigenvalue fell to degenerate_tol of its "
        "initial value while its largest did not fall below sqrt(degenerate_tol) of its own "
        "(a local loss of positive definiteness, not extinction)"
    )
    NON_FINITE = "non-finite value in the metric or its velocity (the last finite state is kept)"
    STEP_COLLAPSED = (
        "step size collapsed below 1e-12 of the interval (of 1e6 times the time elapsed, if "
        "shorter): the velocity grows without bound "
        "near the final time (a finite-time singularity), or the flow is too stiff for the "
        "solver (the last accepted state is kept)"
    )
    FIXED_POINT = "fixed point reached: max |dg/dt| below fixed_point_tol"
    CURVATURE = "curvature above curvature_limit"
    # solve_points' events
    NOT_POSITIVE_DEFINITE = "a metric value left positive definiteness"
    NON_FINITE_VALUE = "non-finite metric value or velocity (the last finite state is kept)"
    # train_potential
    EPOCHS = "epochs"
    TARGETS_REACHED = "targets reached"
    NON_FINITE_LOSS = "non-finite loss"
    TIME_BUDGET = "time budget spent"

    # hashed as its message, as it compares: a member and its string are one dictionary key
    __hash__ = str.__hash__

    @classmethod
    def parse(cls, text: str) -> "StopReason | str":
        """The member whose message is `text`, or `text` itself (a solver failure, or "")."""
        try:
            return cls(text)
        except ValueError:
            return text


# The event names of `solve` (and `solve_network`) and the reasons they stop with.
_REASONS = {
    "degenerate": StopReason.DEGENERATE,
    "non_finite": StopReason.NON_FINITE,
    "fixed_point": StopReason.FIXED_POINT,
    "fixed_point_at_start": StopReason.FIXED_POINT,
    "curvature": StopReason.CURVATURE,
    "curvature_at_start": StopReason.CURVATURE,
}


def stop_reason(result, mask, reasons=None) -> StopReason | str:
    """Why a diffrax solve stopped: the first event that fired, or diffrax's result.

    `reasons` names each event of `mask` (default: `solve`'s events); its `non_finite`
    reason also names the stop of `_controller.FiniteStepController` (a step with
    non-finite values rejected, shorter than `RESOLUTION` times the first of its episode);
    a collapse of the step size (`_controller.COLLAPSE`) is `StopReason.STEP_COLLAPSED`.
    """
    reasons = _REASONS if reasons is None else reasons
    mask = {k: bool(v) for k, v in mask.items()} if mask is not None else {}
    hit = [k for k, v in mask.items() if v]
    if hit:
        return reasons[hit[0]]
    if result == diffrax.RESULTS.successful:
        return StopReason.REACHED_T1
    if result == diffrax.RESULTS.max_steps_reached:
        return StopReason.MAX_STEPS_REACHED
    if result == _controller.NON_FINITE_RESULT:
        return reasons.get("non_finite", StopReason.NON_FINITE)
    if result == _controller.COLLAPSED_RESULT:
        return StopReason.STEP_COLLAPSED
    detail = str(result.value if hasattr(result, "value") else result)
    return f"{StopReason.SOLVER_FAILED}: {detail}"


def _extreme_eigenvalues(manifold, values) -> tuple[float, float]:
    eigenvalues = np.linalg.eigvalsh(np.asarray(manifold.tangential(jnp.asarray(values))))
    return float(eigenvalues[:, 0].min()), float(eigenvalues[:, -1].max())


def degenerate_kind(reason, manifold, y0, y_end, degenerate_tol: float):
    r"""`reason`, with a degenerate stop told apart: extinction or a local loss of positive definiteness.

    Extinction shrinks the whole metric: at the stop its largest eigenvalue over the
    nodes is below $\sqrt{\text{degenerate\_tol}}$ times its initial one (a round
    sphere's is degenerate_tol times). Otherwise the metric degenerated at some nodes only.
    """
    if reason != StopReason.DEGENERATE:
        return reason
    _, largest0 = _extreme_eigenvalues(manifold, y0)
    _, largest = _extreme_eigenvalues(manifold, y_end)
    if largest <= np.sqrt(float(degenerate_tol)) * largest0:
        return StopReason.DEGENERATE
    return StopReason.LOCALLY_DEGENERATE


def kept_saves(ts_out) -> np.ndarray:
    """Indices of the save slots a solve reached, in time order, one per distinct time.

    diffrax marks unreached slots with inf; the state at the stop is saved too.
    """
    ts = np.asarray(ts_out)
    idx = np.flatnonzero(np.isfinite(ts))
    idx = idx[np.argsort(ts[idx], kind="stable")]
    distinct = np.concatenate([np.diff(ts[idx]) > 0, [True]])
    return idx[distinct]


@dataclasses.dataclass(frozen=True)
class Solution:
    """The result of `solve`.

    - `flow`: the flow's name; `ts`, `values`: saved times and nodal metric values
      (only those reached; the last entry is the final state);
    - `t_final`, `stop_reason`: where and why the solve stopped (a `StopReason`, or
      `"solver failed: ..."`);
    - `amplification`: the prediction made before the solve;
    - `stats`: diffrax's step counts.
    """

    flow: str
    manifold: flows.AbstractManifold
    ts: Float[Array, " S"]
    values: Float[Array, "S N D D"]
    t_final: float
    stop_reason: str
    amplification: Amplification
    stats: dict
    interpolation: object = None

    def evaluate(self, t: float) -> Float[Array, "N D D"]:
        """The nodal metric values at any time in [ts[0], t_final] (needs `solve(..., dense=True)`).

        `ts[0]` is the first saved time: $t_0$ when the saves include it (an integer
        `saveat`, the default, does).

        A number outside that range is refused (the interpolation would give NaN); a traced
        `t` is not checked.
        """
        if self.interpolation is None:
            raise ValueError("Solution.evaluate: solve with dense=True to keep the interpolation.")
        if isinstance(t, numbers.Real) or (
            isinstance(t, np.ndarray | jax.Array) and not isinstance(t, jax.core.Tracer)
        ):
            t0, t_final = float(self.ts[0]), float(self.t_final)
            if np.ndim(t) != 0 or not t0 <= float(t) <= t_final:
                raise ValueError(
                    f"Solution.evaluate: t must be one time in [{t0!r}, {t_final!r}] (the solve's "
                    f"interval as far as it ran), got {t!r}."
                )
        return self.interpolation.evaluate(t)

    def metric(self, i: int = -1) -> NodalMetric:
        """The metric at saved time index `i` (default: the final state)."""
        return NodalMetric(self.manifold, self.values[i], check=False)

    def observables(self, i: int = -1, *, ground_state: bool = True) -> dict[str, float]:
        """Diffeomorphism-invariant numbers at saved index `i`.

        `volume`, `integral_R` ($\\int R\\,dV$), `integral_R2`, `integral_R3`,
        `min_R`, `max_R` (at the nodes), `F` (Perelman's at the fixed measure),
        and `lambda` (if `ground_state`).
        """
        return observables(self.metric(i), ground_state=ground_state)


@eqx.filter_jit
def _observables(metric: NodalMetric, with_ground_state: bool):
    m = metric.manifold
    geom = flows.nodal_geometry(metric)
    r = jax.vmap(lambda q: q.scalar)(geom)
    dens = jax.vmap(lambda q: q.volume_density)(geom)
    df, _ = jax.vmap(flows.log_density_jet)(geom, flows.reference_geometry(m))
    grad2 = jnp.einsum("na,nab,nb->n", df, geom.inverse, df)
    out = {
        "volume": m.integrate(dens),
        "integral_R": m.integrate(r * dens),
        "integral_R2": m.integrate(r**2 * dens),
        "integral_R3": m.integrate(r**3 * dens),
        "min_R": jnp.min(r),
        "max_R": jnp.max(r),
        "F": m.integrate(r + grad2),
    }
    if with_ground_state:
        out["lambda"] = flows.ground_state(metric, geometry=geom).value
    return out


def observables(metric: NodalMetric, *, ground_state: bool = True) -> dict[str, float]:
    r"""Volume, $\int R^p dV$ ($p = 1, 2, 3$), node min/max of $R$, $\mathcal F$ at fixed measure, $\lambda$."""
    return {k: float(v) for k, v in _observables(metric, ground_state).items()}


def _package(flow, ts_out, ys, result, mask, stats, amp, interpolation, y0, degenerate_tol):
    """The `Solution` of one `diffeqsolve`'s output: the reached saves, in time order."""
    idx = kept_saves(ts_out)
    ts_kept, ys_kept = np.asarray(ts_out)[idx], np.asarray(ys)[idx]
    reason = degenerate_kind(
        stop_reason(result, mask), flow.manifold, y0, ys_kept[-1], degenerate_tol
    )
    stats = {k: int(v) for k, v in stats.items() if np.ndim(v) == 0}
    return Solution(
        flow.name,
        flow.manifold,
        jnp.asarray(ts_kept),
        jnp.asarray(ys_kept),
        float(ts_kept[-1]),
        reason,
        amp,
        stats,
        interpolation,
    )
