r"""`solve`: integrate any flow with diffrax, with events, progress and an amplification check.

Before integrating, `solve` predicts the amplification $e^{\int \Lambda\, dt}$ of
the flow's fastest linearly growing mode on the given discretisation
(`AbstractFlow.growth_rate`, at the reference scale, divided by the metric's
current scale $c(t)$: rates grow like $1/c$ as a sphere shrinks; $c(t)$ is
extrapolated linearly from the initial volume change, and the integral is
taken up to $10^{-3}$ before the extrapolated extinction). It warns above
`warn_amplification` (1e3) and refuses above `refuse_amplification` (1e8)
unless `force=True`, naming the number and the cures.

Events stop the solve with the reason recorded in the solution:
- `degenerate`: the smallest eigenvalue of the metric over the nodes falls to
  `degenerate_tol` times its initial value (extinction, or a metric leaving
  positive definiteness);
  located by root finding, so a round sphere stops at its extinction time;
- `non_finite`: a non-finite value in the state;
- `fixed_point`: $\max |\partial_t g| <$ `fixed_point_tol` (when given);
- `curvature`: $\max |R| >$ `curvature_limit` (when given).

Checkpoint and resume (`solve(..., checkpoint=PATH)`): the solve runs as a
sequence of `diffeqsolve` calls of `checkpoint_every` steps each. Between them
it carries diffrax's whole loop state: $t$, $y$, the solver state (e.g. the
first-same-as-last stage), the PID controller's error history, and the next
step's end $t_\mathrm{next}$ (recorded by the controller, re-entered as a `dt0`
with $t + dt_0 = t_\mathrm{next}$ exactly), so the segments take exactly the
steps, saves and event root-finds of one uninterrupted `diffeqsolve`. After each
segment the state, the trajectory saved so far and a description of the problem
are written atomically to PATH (`solvers/_checkpoint.py`: temporary file in the
same directory, `fsync`, `os.replace`). A call whose PATH exists checks that the
problem is the same (flow, manifold, initial metric, $t_0$, $t_1$, `dt0`,
`saveat`, solver, tolerances, event settings, `max_steps`; a difference is a
`ValueError` naming it) and resumes; a finished checkpoint returns its solution.
Measured on CPU in float64 (`tests/test_checkpoint.py`): a run killed with
SIGKILL and resumed, an uninterrupted checkpointed run, and the same call
without a checkpoint give bit-for-bit the same trajectory, whatever
`checkpoint_every`. This rests on XLA computing the same step identically in
each compiled program, which held for the solvers and flows tested; resuming
under another JAX, XLA or diffrax version, or on another device, need not be
bitwise equal. There are no random numbers in a solve; a flow built from a
seed is part of the problem the checkpoint checks.
"""

import dataclasses
import math
import os
import time
import warnings
from pathlib import Path

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import lineax
import numpy as np
import optimistix
from diffrax._term import WrapTerm  # what diffeqsolve wraps its terms in; _start mirrors it
from jaxtyping import Array, Float

import flows
from flows import AbstractFlow, NodalMetric

from . import _checkpoint

# The most save times a solve accepts (`saveat`): each saved time holds a whole state, so
# more is a mistake (a count typed with too many digits), not a request to honour.
MAX_SAVES = 1_000_000
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


@dataclasses.dataclass(frozen=True)
class Solution:
    """The result of `solve`.

    - `flow`: the flow's name; `ts`, `values`: saved times and nodal metric values
      (only those reached; the last entry is the final state);
    - `t_final`, `stop_reason`: where and why the solve stopped;
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
        """The nodal metric values at any time in [t0, t_final] (needs `solve(..., dense=True)`)."""
        if self.interpolation is None:
            raise ValueError("Solution.evaluate: solve with dense=True to keep the interpolation.")
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


@dataclasses.dataclass(frozen=True)
class _Config:
    dense: bool
    solver: str
    linear_solver: str
    max_steps: int
    progress: bool
    fixed_point: bool
    curvature: bool


def _make_solver(name: str, linear_solver: str, rtol: float, atol: float):
    if name == "tsit5":
        return diffrax.Tsit5()
    if name == "dopri5":
        return diffrax.Dopri5()
    if name == "dopri8":
        return diffrax.Dopri8()
    if name in ("kvaerno3", "kvaerno5"):
        if linear_solver == "gmres":
            # Newton-Krylov: each Newton step solves with GMRES on Jacobian-vector products
            # (forward-mode jvps of the flow), never forming the Jacobian
            linear = lineax.GMRES(
                rtol=1e-3 * rtol, atol=1e-3 * atol, restart=40, stagnation_iters=40
            )
            root = optimistix.Newton(rtol=rtol, atol=atol, linear_solver=linear)
        else:
            root = diffrax.VeryChord(rtol=rtol, atol=atol)
        cls = diffrax.Kvaerno3 if name == "kvaerno3" else diffrax.Kvaerno5
        return cls(root_finder=root)
    raise ValueError(
        f"solve: unknown solver {name!r}; choose tsit5, dopri5, dopri8, kvaerno3 or kvaerno5."
    )


SOLVERS = ("tsit5", "dopri5", "dopri8", "kvaerno3", "kvaerno5")


def _smallest_eigenvalue(manifold, values):
    """The smallest eigenvalue of the tangential metric over all nodes (continuous in the state)."""
    g = manifold.tangential(values)
    g = 0.5 * (g + jnp.swapaxes(g, -1, -2))
    return jnp.min(jnp.linalg.eigvalsh(g)[:, 0])


def _event(flow, s0, degenerate_tol, fixed_point_tol, curvature_limit, config) -> diffrax.Event:
    """The stopping events of the module docstring, `s0` the initial smallest eigenvalue."""
    m = flow.manifold

    def degenerate(t, y, args, **kwargs):
        return _smallest_eigenvalue(m, y) / s0 - degenerate_tol

    def non_finite(t, y, args, **kwargs):
        return ~jnp.all(jnp.isfinite(y))

    conds = {"degenerate": degenerate, "non_finite": non_finite}
    if config.fixed_point:
        conds["fixed_point"] = lambda t, y, args, **kw: (
            jnp.max(jnp.abs(flow(t, y))) < fixed_point_tol
        )
    if config.curvature:

        def curvature(t, y, args, **kwargs):
            geom = flows.nodal_geometry(NodalMetric(m, y, check=False))
            return jnp.max(jnp.abs(jax.vmap(lambda q: q.scalar)(geom))) > curvature_limit

        conds["curvature"] = curvature
    root = optimistix.Newton(rtol=1e-10, atol=1e-12)
    return diffrax.Event(conds, root_finder=root)


@eqx.filter_jit
def _integrate(
    flow, y0, t0, t1, dt0, ts, rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit, config
):
    s0 = _smallest_eigenvalue(flow.manifold, y0)
    solver = _make_solver(config.solver, config.linear_solver, rtol, atol)
    event = _event(flow, s0, degenerate_tol, fixed_point_tol, curvature_limit, config)
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        solver,
        t0,
        t1,
        dt0,
        y0,
        saveat=diffrax.SaveAt(ts=ts, t1=True, dense=config.dense),
        stepsize_controller=controller,
        event=event,
        max_steps=config.max_steps,
        throw=False,
        progress_meter=diffrax.TextProgressMeter()
        if config.progress
        else diffrax.NoProgressMeter(),
    )
    return sol.ts, sol.ys, sol.result, sol.event_mask, sol.stats, sol.interpolation


def _check_time(name: str, value) -> float:
    try:
        if isinstance(value, (bool, str)):
            raise TypeError
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"solve: {name} must be a finite number, got {value!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"solve: {name} must be a finite number, got {value!r}.")
    return value


def check_tolerances(caller: str, **tolerances) -> None:
    """Raise `ValueError` unless every tolerance is a finite number > 0."""
    for name, value in tolerances.items():
        if not (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ):
            raise ValueError(f"{caller}: {name} must be a finite number > 0, got {value!r}.")


def save_times(caller: str, saveat, t0: float, t1: float, dtype) -> Float[Array, " S"]:
    """The save times: `saveat` equally spaced ones (2 to `MAX_SAVES`), or the given increasing
    times in [t0, t1] (at most `MAX_SAVES` of them)."""
    if isinstance(saveat, (int, np.integer)):
        if saveat < 2:
            raise ValueError(f"{caller}: saveat must be at least 2 save times, got {saveat}.")
        if saveat > MAX_SAVES:
            raise ValueError(
                f"{caller}: saveat asks for {saveat} save times, more than MAX_SAVES = "
                f"{MAX_SAVES} (each holds a whole state); save fewer times."
            )
        return jnp.linspace(t0, t1, saveat)
    if np.size(saveat) > MAX_SAVES:
        raise ValueError(
            f"{caller}: saveat holds {np.size(saveat)} times, more than MAX_SAVES = {MAX_SAVES} "
            "(each holds a whole state); save fewer times."
        )
    try:
        ts = jnp.asarray(saveat, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"{caller}: saveat must be a number of save times (>= 2) or a 1-D array of times, "
            f"got {saveat!r}."
        ) from None
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(
            f"{caller}: saveat must be a number of save times (>= 2) or a non-empty 1-D array of "
            f"times, got an array of shape {ts.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(ts))):
        raise ValueError(f"{caller}: saveat times must be finite, got {np.asarray(ts).tolist()}.")
    if not bool(jnp.all((ts >= t0) & (ts <= t1))) or not bool(jnp.all(jnp.diff(ts) > 0)):
        raise ValueError(f"{caller}: saveat times must be increasing and within [t0, t1].")
    return ts


def solve(
    flow: AbstractFlow,
    g0: NodalMetric | Float[Array, "N D D"],
    t0: float,
    t1: float,
    *,
    solver: str = "tsit5",
    linear_solver: str = "gmres",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    dt0: float | None = None,
    saveat: int | Float[Array, " S"] = 11,
    max_steps: int = 100_000,
    degenerate_tol: float = 1e-4,
    fixed_point_tol: float | None = None,
    curvature_limit: float | None = None,
    force: bool = False,
    progress: bool = False,
    dense: bool = False,
    warn_amplification: float = WARN_AMPLIFICATION,
    refuse_amplification: float = REFUSE_AMPLIFICATION,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    checkpoint_seconds: float | None = None,
) -> Solution:
    r"""Integrate `flow` from the metric `g0` at `t0` to `t1` with diffrax.

    **Arguments:**

    - `flow`: an `AbstractFlow` (e.g. `flows.ricci_deturck(manifold)`).
    - `g0`: the initial metric, a `NodalMetric` on `flow.manifold` or its nodal values
      (checked: finite, symmetric, positive definite).
    - `t0`, `t1`: the interval, `t1 > t0`.
    - `solver`: one of `SOLVERS`; `kvaerno3`/`kvaerno5` are implicit, with a
      matrix-free GMRES Newton solve by default (`linear_solver="dense"` for a
      dense factorisation).
    - `rtol`, `atol`, `dt0`: adaptive step control (PID controller).
    - `saveat`: a number of equally spaced save times (2 to `MAX_SAVES` = 10^6), or the
      times themselves (increasing, in [t0, t1], at most `MAX_SAVES`).
    - `degenerate_tol`, `fixed_point_tol`, `curvature_limit`: the events (module docstring).
    - `force`: integrate even when the predicted amplification exceeds `refuse_amplification`.
    - `progress`: print a progress meter.
    - `dense`: keep diffrax's dense interpolation (`Solution.evaluate(t)`), e.g. for
      Perelman's pair (`conjugate_heat`).
    - `checkpoint`: a file path. When given, the solve runs in segments of
      `checkpoint_every` steps (accepted or rejected, as diffrax counts them) and after
      each one writes its state atomically to this file (module docstring,
      "Checkpoint and resume"); a call whose checkpoint file exists resumes from it
      (or returns the finished solution it holds), after checking that it was made
      for the same problem. Not with `dense=True`.
    - `checkpoint_every`: steps per segment (an integer >= 1).
    - `checkpoint_seconds`: when given, a segment's checkpoint is written only if this
      many seconds have passed since the last write (the final state is always
      written); segments, and so the result, do not depend on it.

    Raises `ValueError` on bad input (including a checkpoint made for another
    problem) and `IllPosedError` when refusing.
    """
    if not isinstance(flow, AbstractFlow):
        raise ValueError(f"solve: flow must be a flows.AbstractFlow, got {type(flow).__name__}.")
    m = flow.manifold
    t0 = _check_time("t0", t0)
    t1 = _check_time("t1", t1)
    if not t1 > t0:
        raise ValueError(f"solve: t1 must be greater than t0, got t0 = {t0}, t1 = {t1}.")
    if isinstance(g0, NodalMetric):
        if g0.manifold != m:
            raise ValueError(f"solve: g0 lives on {g0.manifold!r} but the flow on {m!r}.")
        values = g0.values
    else:
        values = g0
    values = flows.check_nodal_values(m, values, name="solve: initial metric g0")
    g0 = NodalMetric(m, values)
    if solver not in SOLVERS:
        raise ValueError(f"solve: unknown solver {solver!r}; choose one of {SOLVERS}.")
    if linear_solver not in ("gmres", "dense"):
        raise ValueError(f"solve: linear_solver must be 'gmres' or 'dense', got {linear_solver!r}.")
    check_tolerances("solve", rtol=rtol, atol=atol, degenerate_tol=degenerate_tol)
    optional = {"dt0": dt0, "fixed_point_tol": fixed_point_tol, "curvature_limit": curvature_limit}
    check_tolerances("solve", **{k: v for k, v in optional.items() if v is not None})
    _check_count("max_steps", max_steps, 1)
    if checkpoint is not None:
        checkpoint = _check_checkpoint(checkpoint, checkpoint_every, checkpoint_seconds, dense)

    ts = save_times("solve", saveat, t0, t1, values.dtype)  # before the amplification solve

    amp = predicted_amplification(flow, g0, t0, t1)
    _judge(flow, amp, t0, t1, force, warn_amplification, refuse_amplification)

    config = _Config(
        bool(dense),
        solver,
        linear_solver,
        int(max_steps),
        bool(progress),
        fixed_point_tol is not None,
        curvature_limit is not None,
    )
    dtype = values.dtype

    def arr(x):
        return jnp.asarray(0.0 if x is None else x, dtype=dtype)

    if checkpoint is not None:
        tolerances = tuple(
            arr(x) for x in (rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit)
        )
        return _solve_in_segments(
            flow,
            values,
            arr(t0),
            arr(t1),
            None if dt0 is None else arr(dt0),
            ts,
            tolerances,
            config,
            amp,
            checkpoint,
            int(checkpoint_every),
            checkpoint_seconds,
        )
    ts_out, ys, result, mask, stats, interpolation = _integrate(
        flow,
        values,
        arr(t0),
        arr(t1),
        None if dt0 is None else arr(dt0),
        ts,
        arr(rtol),
        arr(atol),
        arr(degenerate_tol),
        arr(fixed_point_tol),
        arr(curvature_limit),
        config,
    )
    return _package(flow, ts_out, ys, result, mask, stats, amp, interpolation)


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"solve: {name} must be an integer >= {minimum}, got {value!r}.")


def _check_checkpoint(path, every, seconds, dense) -> Path:
    try:
        path = Path(path)
    except TypeError:
        raise ValueError(
            f"solve: checkpoint must be a file path (str or os.PathLike), got {path!r}."
        ) from None
    if path.is_dir():
        raise ValueError(f"solve: checkpoint {os.fspath(path)!r} is a directory; give a file path.")
    if not path.parent.is_dir():
        raise ValueError(
            f"solve: the directory of checkpoint {os.fspath(path)!r} does not exist; create it first."
        )
    _check_count("checkpoint_every", every, 1)
    if seconds is not None and not (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds >= 0
    ):
        raise ValueError(
            f"solve: checkpoint_seconds must be None or a finite number >= 0, got {seconds!r}."
        )
    if dense:
        raise ValueError(
            "solve: dense=True cannot be checkpointed (the dense interpolation holds every "
            "step); solve without checkpoint, or without dense."
        )
    return path


class _RecordingController(diffrax.AbstractAdaptiveStepSizeController):
    r"""diffrax's `PIDController`, whose state also keeps its latest proposal.

    State: (the PID state, $t_\mathrm{next}$ as proposed (before diffrax clips it
    to $t_1$), whether the latest step was kept). With it a segmented solve goes on
    with exactly the step the uninterrupted loop would take next; the steps
    themselves are the PID controller's.
    """

    pid: diffrax.PIDController

    @property
    def rtol(self):
        return self.pid.rtol

    @property
    def atol(self):
        return self.pid.atol

    @property
    def norm(self):
        return self.pid.norm

    def wrap(self, direction):
        return _RecordingController(self.pid.wrap(direction))

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.pid.init(terms, t0, t1, y0, dt0, args, func, error_order)
        return tnext, (state, jnp.asarray(tnext), jnp.asarray(True))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        keep, tprev, tnext, jump, pid_state, result = self.pid.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, state[0]
        )
        return keep, tprev, tnext, jump, (pid_state, tnext, keep), result


def _arrays(tree):
    return jax.tree.map(jnp.asarray, tree)


@eqx.filter_jit
def _start(flow, y0, t0, t1, dt0, rtol, atol, config):
    r"""The state `diffeqsolve` starts from: $(t_0, t_\mathrm{next}, y_0$, solver state, controller state).

    As `diffeqsolve` computes it (diffrax/_integrate.py): the term wrapped for the
    direction of time (which makes the PID controller's own first step 0.01), the
    controller's initial step (dt0, or its own choice) clipped to $t_1$, then the
    solver's initial state.
    """
    direction = jnp.where(t0 < t1, 1, -1)
    term = WrapTerm(diffrax.ODETerm(flow), direction)
    solver = _make_solver(config.solver, config.linear_solver, rtol, atol)
    pid = diffrax.PIDController(rtol=rtol, atol=atol)
    controller = _RecordingController(pid).wrap(direction)
    tnext, controller_state = controller.init(
        term, t0, t1, y0, dt0, None, solver.func, solver.error_order(term)
    )
    tnext = jnp.minimum(tnext, t1)
    solver_state = solver.init(term, t0, tnext, y0, None)
    return _arrays((t0, tnext, y0, solver_state, controller_state))


@eqx.filter_jit
def _segment(flow, state, dt0, ts, t1, s0, tolerances, config):
    """At most `config.max_steps` steps of the solve from `state`; the saves and the new state.

    `ts` are the save times with those already saved replaced by the current
    time (diffrax wants them non-decreasing within the interval; the caller
    discards their saves). Passing the solver and controller states, and `dt0`
    with $t + dt_0 = t_\\mathrm{next}$ exactly, continues diffrax's loop as it was.
    """
    rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit = tolerances
    t, _, y, solver_state, controller_state = state
    solver = _make_solver(config.solver, config.linear_solver, rtol, atol)
    event = _event(flow, s0, degenerate_tol, fixed_point_tol, curvature_limit, config)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        solver,
        t,
        t1,
        dt0,
        y,
        saveat=diffrax.SaveAt(
            subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)],
            solver_state=True,
            controller_state=True,
        ),
        stepsize_controller=_RecordingController(diffrax.PIDController(rtol=rtol, atol=atol)),
        event=event,
        max_steps=config.max_steps,
        throw=False,
        solver_state=solver_state,
        controller_state=controller_state,
        progress_meter=diffrax.TextProgressMeter()
        if config.progress
        else diffrax.NoProgressMeter(),
    )
    (ts_out, t_end), (ys_out, y_end) = sol.ts, sol.ys
    t_end, y_end = t_end[0], y_end[0]
    _, proposed, kept = sol.controller_state
    # the next step's end as diffrax's loop clips it (diffrax/_integrate.py, _clip_to_end)
    floor = t1
    for _ in range(100):
        floor = eqxi.prevbefore(floor)
    tnext = jnp.where(proposed > floor, jnp.where(kept, t1, t_end + 0.5 * (t1 - t_end)), proposed)
    new_state = _arrays((t_end, tnext, y_end, sol.solver_state, sol.controller_state))
    return ts_out, ys_out, new_state, sol.result, sol.event_mask, sol.stats


def _exact_step(t, tnext):
    """A `dt0` with `t + dt0 == tnext` exactly in the state's precision (diffrax adds them)."""
    t, tnext = np.asarray(t), np.asarray(tnext)
    d = tnext - t
    for _ in range(64):
        reached = t + d
        if reached == tnext:
            break
        d = np.nextafter(d, np.inf if reached < tnext else -np.inf, dtype=d.dtype)
    return jnp.asarray(d)


def _fingerprint(flow, values, t0, t1, dt0, ts, tolerances, config) -> dict:
    """What must agree for a checkpoint to be resumed (JSON; floats compare exactly).

    Not `checkpoint_every`: segments do not change the steps, so a run may resume
    with another segment length.
    """
    rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit = (float(x) for x in tolerances)
    ts = np.asarray(ts)
    return {
        "flow": " ".join(repr(flow).split()),  # its fields, static ones (sigma, ...) with values
        "flow arrays": _checkpoint.tree_digest(flow),
        "g0 shape": list(values.shape),
        "g0 dtype": str(values.dtype),
        "g0 values": _checkpoint.digest(values),
        "t0": float(t0),
        "t1": float(t1),
        "dt0": None if dt0 is None else float(dt0),
        "saveat": f"{ts.size} times in [{ts.min()}, {ts.max()}], {_checkpoint.digest(ts)[:16]}",
        "solver": config.solver,
        "linear_solver": config.linear_solver,
        "rtol": rtol,
        "atol": atol,
        "degenerate_tol": degenerate_tol,
        "fixed_point_tol": fixed_point_tol if config.fixed_point else None,
        "curvature_limit": curvature_limit if config.curvature else None,
        "max_steps": config.max_steps,
    }


@eqx.filter_jit
def _initial_eigenvalue(manifold, values):
    return _smallest_eigenvalue(manifold, values)


def _solve_in_segments(
    flow, values, t0, t1, dt0, ts, tolerances, config, amp, path, every, seconds
) -> Solution:
    """`solve` in segments of `every` steps, writing and resuming the checkpoint at `path`."""
    fingerprint = _fingerprint(flow, values, t0, t1, dt0, ts, tolerances, config)
    rtol, atol = tolerances[:2]
    start = (flow, values, t0, t1, dt0, rtol, atol, config)
    if path.exists():
        data = _checkpoint.read(path)
        _checkpoint.check_same_problem(path, data["fingerprint"], fingerprint)
        template = eqx.filter_eval_shape(_start, *start)
        leaves, treedef = jax.tree_util.tree_flatten(template)
        stored = [data.get(f"state_{i}") for i in range(len(leaves))]
        if any(
            a is None or a.shape != x.shape or a.dtype != x.dtype
            for a, x in zip(stored, leaves, strict=True)
        ):
            raise ValueError(
                f"solve: checkpoint {os.fspath(path)!r} holds a solver state of another "
                "structure (written by another version of solve?); delete it to start afresh."
            )
        state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in stored])
        saved_ts, saved_ys = data["saved_ts"], data["saved_ys"]
        steps = data["steps"].astype(np.int64)
        finished, reason = bool(data["finished"]), str(data["reason"])
    else:
        state = _start(*start)
        saved_ts = np.full(ts.shape, np.inf, dtype=np.asarray(ts).dtype)
        saved_ys = np.full(ts.shape + values.shape, np.inf, dtype=values.dtype)
        steps = np.zeros(3, dtype=np.int64)  # all, accepted, rejected
        finished, reason = False, ""

    def write():
        arrays = {f"state_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
        arrays |= {
            "format": np.asarray(_checkpoint.FORMAT),
            "fingerprint": _checkpoint.encode(fingerprint),
            "t": np.asarray(state[0]),
            "saved_ts": saved_ts,
            "saved_ys": saved_ys,
            "steps": steps,
            "finished": np.asarray(finished),
            "reason": np.asarray(reason),
        }
        _checkpoint.write(path, arrays)

    s0 = _initial_eigenvalue(flow.manifold, values)
    last_write = time.monotonic()
    while not finished:
        # the steps per segment are static: a shorter last segment (max_steps) compiles anew
        segment_config = dataclasses.replace(
            config, max_steps=min(every, config.max_steps - int(steps[0]))
        )
        saved = np.isfinite(saved_ts)
        segment_ts = jnp.where(jnp.asarray(saved), state[0], ts)
        ts_out, ys_out, state, result, mask, stats = _segment(
            flow,
            state,
            _exact_step(state[0], state[1]),
            segment_ts,
            t1,
            s0,
            tolerances,
            segment_config,
        )
        ts_out = np.asarray(ts_out)
        new = ~saved & np.isfinite(ts_out)
        saved_ts = np.where(new, ts_out, saved_ts)
        saved_ys = np.where(new[:, None, None, None], np.asarray(ys_out), saved_ys)
        steps = steps + np.array(
            [int(stats[k]) for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")]
        )
        event = any(bool(v) for v in mask.values())
        if event or not bool(result == diffrax.RESULTS.max_steps_reached):
            finished, reason = True, stop_reason(result, mask)
        elif steps[0] >= config.max_steps:
            finished, reason = True, stop_reason(result, None)
        if finished or seconds is None or time.monotonic() - last_write >= seconds:
            write()
            last_write = time.monotonic()

    t_end, y_end = np.asarray(state[0]), np.asarray(state[2])
    ts_all = np.concatenate([saved_ts, t_end[None]])
    ys_all = np.concatenate([saved_ys, y_end[None]])
    idx = kept_saves(ts_all)
    stats = {
        "max_steps": config.max_steps,
        "num_accepted_steps": int(steps[1]),
        "num_rejected_steps": int(steps[2]),
        "num_steps": int(steps[0]),
    }
    return Solution(
        flow.name,
        flow.manifold,
        jnp.asarray(ts_all[idx]),
        jnp.asarray(ys_all[idx]),
        float(ts_all[idx][-1]),
        reason,
        amp,
        stats,
        None,
    )


def _judge(flow, amp: Amplification, t0, t1, force, warn_at, refuse_at) -> None:
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
        f"{value:.3g} (largest linear growth rate {amp.growth_rate:.4g} on this discretisation, "
        "shared/DESIGN.md 2.1). Cures: smooth the flow (a Gaussian kernel of larger sigma), lower "
        "the resolution, shorten the interval, or integrate a well-posed equivalent (the lambda "
        "form, perelman_lambda, or Ricci-DeTurck, ricci_deturck)."
    )
    if value > refuse_at and not force:
        raise IllPosedError("solve refuses: " + message + " Pass force=True to run it anyway.")
    warnings.warn("solve: " + message, stacklevel=3)


_REASONS = {
    "degenerate": "metric degenerate: its smallest eigenvalue fell to degenerate_tol of its "
    "initial value (extinction, or loss of positive definiteness)",
    "non_finite": "non-finite value in the metric",
    "fixed_point": "fixed point reached: max |dg/dt| below fixed_point_tol",
    "curvature": "curvature above curvature_limit",
}


def stop_reason(result, mask, reasons=None) -> str:
    """Why a diffrax solve stopped: the first event that fired, or diffrax's result.

    `reasons` names each event of `mask` (default: `solve`'s events).
    """
    reasons = _REASONS if reasons is None else reasons
    mask = {k: bool(v) for k, v in mask.items()} if mask is not None else {}
    hit = [k for k, v in mask.items() if v]
    if hit:
        return reasons[hit[0]]
    if result == diffrax.RESULTS.successful:
        return "reached t1"
    if result == diffrax.RESULTS.max_steps_reached:
        return "max_steps reached"
    return "solver failed: " + str(result.value if hasattr(result, "value") else result)


def kept_saves(ts_out) -> np.ndarray:
    """Indices of the save slots a solve reached, in time order, one per distinct time.

    diffrax marks unreached slots with inf; the state at the stop is saved too.
    """
    ts = np.asarray(ts_out)
    idx = np.flatnonzero(np.isfinite(ts))
    idx = idx[np.argsort(ts[idx], kind="stable")]
    distinct = np.concatenate([np.diff(ts[idx]) > 0, [True]])
    return idx[distinct]


def _package(flow, ts_out, ys, result, mask, stats, amp, interpolation) -> Solution:
    idx = kept_saves(ts_out)
    ts_kept, ys_kept = np.asarray(ts_out)[idx], np.asarray(ys)[idx]
    stats = {k: int(v) for k, v in stats.items() if np.ndim(v) == 0}
    return Solution(
        flow.name,
        flow.manifold,
        jnp.asarray(ts_kept),
        jnp.asarray(ys_kept),
        float(ts_kept[-1]),
        stop_reason(result, mask),
        amp,
        stats,
        interpolation,
    )
