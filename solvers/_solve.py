r"""`solve`: integrate any flow with diffrax, with events, progress and an amplification check.

`solve(flow, g0, t0, t1, ...)` checks its arguments, predicts the amplification
of rounding and refuses hopeless runs (`_amplification.py`), integrates with
one `diffeqsolve` (`_integrate.py`) or, with `checkpoint=PATH`, in checkpointed
segments (`_resume.py`), and returns a `Solution` (`_solution.py`). It asks the
flow only for what `flows.AbstractFlow` promises: its manifold, name, velocity
(`evaluate`, `__call__`) and growth rate.

Before integrating, `solve` predicts the amplification $e^{\int \Lambda\, dt}$ of
the flow's fastest linearly growing mode on the given discretisation
(`predicted_amplification`, whose module docstring says how). It warns above
`warn_amplification` (1e3) and refuses above `refuse_amplification` (1e8)
unless `force=True`, naming the number and the cures.

Events stop the solve with the reason recorded in the solution (a `StopReason`):
- `degenerate`: the smallest eigenvalue of the metric over the nodes falls to
  `degenerate_tol` times its initial value, located by root finding, so a round
  sphere stops at its extinction time. The reason tells extinction
  (`StopReason.DEGENERATE`: the largest eigenvalue fell below
  $\sqrt{\text{degenerate\_tol}}$ of its initial value too) from a metric
  leaving positive definiteness at some nodes (`StopReason.LOCALLY_DEGENERATE`);
- `non_finite`: a non-finite value in the state or its velocity. diffrax rejects a
  step with one; the controller (`_controller.py`) then shrinks the step 5-fold, and
  once such a rejected step is 1e-5 of the first in its run of failures (the steps
  have crept up to where the velocity stops being finite) the solve stops with the
  last finite state (rather than creeping on to `max_steps`); a metric that vanishes
  at a finite time reaches the `degenerate` event first;
- a collapse of the step (not an event: the controller's stop): a rejected step
  shorter than 1e-12 of $|t_1 - t_0|$, where the velocity grows without bound while
  staying finite (a finite-time singularity), stops the solve with the last accepted
  state (`StopReason.STEP_COLLAPSED`);
- `fixed_point`: $\max |\partial_t g| <$ `fixed_point_tol` (when given);
- `curvature`: $\max |R| >$ `curvature_limit` (when given).
Each threshold is located by root finding on the step's interpolant, not at the end of
the step that crossed it; a metric that starts past `fixed_point_tol` or
`curvature_limit` stops at $t_0$.

Checkpoint and resume (`solve(..., checkpoint=PATH)`): the solve runs as a
sequence of `diffeqsolve` calls of `checkpoint_every` steps each. Between them
it carries diffrax's whole loop state (`_resume.py` says which), so the segments
take exactly the steps, saves and event root-finds of one uninterrupted
`diffeqsolve`. After each
segment the state, the trajectory saved so far and a description of the problem
are written atomically to PATH (`solvers/_checkpoint.py`: temporary file in the
same directory, `fsync`, `os.replace`). A call whose PATH exists checks that the
problem is the same (flow, manifold, initial metric, $t_0$, $t_1$, `dt0`,
`saveat`, solver, tolerances, event settings, `max_steps`; a difference is a
`ValueError` naming it) and resumes; a finished checkpoint returns its solution.
A flow's functions (e.g. `RescaledKernel`'s `rescale`) are compared by their code,
constants, defaults and the values they close over, not by the module-level
names their code reads: a global changed between runs goes unnoticed.
Measured on CPU in float64 (`tests/test_checkpoint.py`): a run killed with
SIGKILL and resumed, an uninterrupted checkpointed run, and the same call
without a checkpoint give bit-for-bit the same trajectory, whatever
`checkpoint_every`. This rests on XLA computing the same step identically in
each compiled program, which held for the solvers and flows tested; resuming
under another JAX, XLA or diffrax version, or on another device, need not be
bitwise equal. There are no random numbers in a solve; a flow built from a
seed is part of the problem the checkpoint checks.
"""

import math
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import flows
from flows import AbstractFlow, NodalMetric

from ._amplification import (
    REFUSE_AMPLIFICATION,
    WARN_AMPLIFICATION,
    _judge,
    predicted_amplification,
)
from ._integrate import SOLVERS, _Config, _integrate
from ._misc import check_count
from ._resume import _solve_in_segments
from ._solution import Solution, _package

# The most save times a solve accepts (`saveat`): each saved time holds a whole state, so
# more is a mistake (a count typed with too many digits), not a request to honour.
MAX_SAVES = 1_000_000


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
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ):
            raise ValueError(f"{caller}: {name} must be a finite number > 0, got {value!r}.")


def save_times(
    caller: str, saveat, t0: float, t1: float, dtype, state_bytes: int | None = None
) -> Float[Array, " S"]:
    """The save times: `saveat` equally spaced ones (2 to `MAX_SAVES`), or the given increasing
    times in [t0, t1] (at most `MAX_SAVES` of them).

    With `state_bytes` (the size of one saved state) a request whose saves would not fit
    in memory (twice: diffrax's buffer and the solution's copy) is refused, with the estimate.
    """
    if state_bytes is not None:
        count = saveat if isinstance(saveat, (int, np.integer)) else np.size(saveat)
        if 0 < count <= MAX_SAVES:
            flows.check_memory(
                2.0 * (count + 1) * state_bytes,
                f"{caller}: saveat = {count} saves of a {state_bytes}-byte state",
                "Save fewer times.",
            )
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
    - `force`: integrate even when the predicted amplification exceeds `refuse_amplification`
      (True or False).
    - `warn_amplification`, `refuse_amplification`: the thresholds (finite, > 0, warn <= refuse).
    - `progress`: print a progress meter (with a `checkpoint`, a line per segment: the
      time reached, its share of the interval, the steps).
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
    check_count(max_steps, "solve: max_steps must be an integer >= 1", minimum=1)
    if checkpoint is not None:
        checkpoint = _check_checkpoint(checkpoint, checkpoint_every, checkpoint_seconds, dense)

    # before the amplification solve
    ts = save_times("solve", saveat, t0, t1, values.dtype, state_bytes=values.nbytes)

    if not isinstance(force, bool):
        raise ValueError(f"solve: force must be True or False, got {force!r}.")
    check_tolerances(
        "solve", warn_amplification=warn_amplification, refuse_amplification=refuse_amplification
    )
    if not warn_amplification <= refuse_amplification:
        raise ValueError(
            f"solve: warn_amplification ({warn_amplification:g}) must not exceed "
            f"refuse_amplification ({refuse_amplification:g})."
        )
    amp = predicted_amplification(flow, g0, t0, t1, degenerate_tol)
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
    return _package(
        flow, ts_out, ys, result, mask, stats, amp, interpolation, values, degenerate_tol
    )


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
    check_count(every, "solve: checkpoint_every must be an integer >= 1", minimum=1)
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
