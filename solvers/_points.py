r"""Integration of kernel flows of metric values at points (`flows.PointKernelFlow`) with diffrax.

The paper's kernel experiments are gradient descent with a learning rate:
`solver="euler"` with a constant step `dt0` is exactly that. `"heun"` (constant
step) and `"tsit5"` (adaptive, PID controller) are there for the smooth
losses ($p > 1$). The σ loss ($p = 1$) is not differentiable where
$\eta_a = \bar\eta$: a constant-step solve approaches the minimum and then
hovers within a band of width about `dt0` times the velocity, which is the
floor of the σ it reaches.

The solve stops, with its reason, when a training metric value leaves positive
definiteness or a value is not finite; the saves from the first such state on are
dropped, so that the last save is the last valid state. The test values are the
kernel's predictions, carried along: they do not stop the training flow, and a
caller that needs them positive definite checks them (`PointSolution.test`).
"""

import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

import flows
from flows import PointKernelFlow, check_metric_values, to_complex, to_real

from . import _controller
from ._integrate import _term
from ._misc import check_count
from ._solution import StopReason, kept_saves, stop_reason
from ._solve import check_tolerances, save_times

# The events of `solve_points` and the reasons they stop with.
_REASONS = {
    "degenerate": StopReason.NOT_POSITIVE_DEFINITE,
    "non_finite": StopReason.NON_FINITE_VALUE,
}


POINT_SOLVERS = ("euler", "heun", "tsit5")


class PointSolution(eqx.Module):
    r"""A solved kernel flow of metric values: the saved states and their σ.

    **Fields:** `ts` (S,); `train` (S, N, m, m) and `test` (S, P, m, m) complex
    metric values at the save times; `sigma_train`, `sigma_test` (S,) their σ
    measures (`flows.sigma_measure`; NaN without test points); `loss` (S,) the
    training loss; `stop_reason` (a `StopReason`); `steps`, the number of accepted steps.
    """

    ts: Float[Array, " S"]
    train: Complex[Array, "S N m m"]
    test: Complex[Array, "S P m m"]
    sigma_train: Float[Array, " S"]
    sigma_test: Float[Array, " S"]
    loss: Float[Array, " S"]
    stop_reason: str = eqx.field(static=True)
    steps: int = eqx.field(static=True)


def solve_points(
    flow: PointKernelFlow,
    h_train: Complex[Array, "N m m"],
    h_test: Complex[Array, "P m m"] | None,
    t0: float,
    t1: float,
    *,
    solver: str = "euler",
    dt0: float | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    saveat: int | Float[Array, " S"] = 11,
    max_steps: int = 100_000,
    progress: bool = False,
) -> PointSolution:
    r"""Integrate `flow` from the metric values `h_train` (and `h_test`) at `t0` to `t1`.

    **Arguments:** `flow` (a `flows.PointKernelFlow`); `h_train` (N, m, m) and
    `h_test` (P, m, m) Hermitian positive definite (checked; `h_test` may be
    None without test points); `solver` in `POINT_SOLVERS`; `dt0`, the step
    (the learning rate; required for the constant-step solvers); `rtol`, `atol`
    (adaptive `tsit5` only); `saveat`, a number of equally spaced save times or
    the times (at most `MAX_SAVES`, as for `solve`); `max_steps`; `progress`, a text progress meter.
    """
    if not isinstance(flow, PointKernelFlow):
        raise ValueError(
            f"solve_points: flow must be a PointKernelFlow, got {type(flow).__name__}."
        )
    t0, t1 = float(t0), float(t1)
    if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
        raise ValueError(f"solve_points: need finite t0 < t1, got t0 = {t0}, t1 = {t1}.")
    if solver not in POINT_SOLVERS:
        raise ValueError(f"solve_points: unknown solver {solver!r}; choose one of {POINT_SOLVERS}.")
    if solver != "tsit5" and dt0 is None:
        raise ValueError(f"solve_points: the constant-step solver {solver!r} needs dt0.")
    if dt0 is not None:
        check_tolerances("solve_points", dt0=dt0)
    check_tolerances("solve_points", rtol=rtol, atol=atol)
    check_count(max_steps, "solve_points: max_steps must be an integer >= 1", minimum=1)
    n, m = flow.train.count, flow.train.points.shape[1] - 2
    h_train = check_metric_values(h_train, n, m, "solve_points: h_train")
    p = 0 if flow.test is None else flow.test.count
    if h_test is None:
        if p:
            raise ValueError(f"solve_points: the flow has {p} test points; give h_test.")
        h_test = jnp.zeros((0, m, m), h_train.dtype)
    h_test = check_metric_values(h_test, p, m, "solve_points: h_test")
    dtype = jnp.real(h_train).dtype
    state = h_train.nbytes + h_test.nbytes
    ts = save_times("solve_points", saveat, t0, t1, dtype, state_bytes=state)
    y0 = (to_real(h_train), to_real(h_test))
    arr = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
    ts_out, ys, result, mask, steps = _integrate(
        flow,
        y0,
        arr(t0),
        arr(t1),
        None if dt0 is None else arr(dt0),
        ts,
        arr(rtol),
        arr(atol),
        solver,
        int(max_steps),
        bool(progress),
    )
    idx = kept_saves(ts_out)
    reason = stop_reason(result, mask, _REASONS)
    y_train, y_test = np.asarray(ys[0]), np.asarray(ys[1])
    if reason in _REASONS.values():
        # the events are booleans: the step that broke the metric is saved (at t1=True).
        # Keep the saves before the first invalid one (all of them if the first is, as
        # when saveat leaves out t0: the values at t0 are checked valid)
        valid = [_valid(y_train[i]) and np.all(np.isfinite(y_test[i])) for i in idx]
        cut = valid.index(False) if False in valid else len(idx)
        idx = idx[:cut] if cut else idx
    train = to_complex_batch(y_train[idx])
    test = to_complex_batch(y_test[idx])
    sigma_train = jnp.stack([flows.sigma_measure(flow.train, h)[0] for h in train])
    if p:
        sigma_test = jnp.stack([flows.sigma_measure(flow.test, h)[0] for h in test])
    else:
        sigma_test = jnp.full(len(idx), jnp.nan, dtype)
    loss = jnp.stack([flow.loss(flow.train.omega, flow.train.weights, h) for h in train])
    return PointSolution(
        jnp.asarray(np.asarray(ts_out)[idx]),
        train,
        test,
        sigma_train,
        sigma_test,
        loss,
        reason,
        int(steps),
    )


def _valid(y) -> bool:
    """Real-packed metric values (`flows.to_real`) that are finite and positive definite."""
    y = np.asarray(y)
    if not np.all(np.isfinite(y)):
        return False
    h = y[:, 0] + 1j * y[:, 1]
    return bool(h.shape[0] == 0 or np.min(np.linalg.eigvalsh(h)[:, 0]) > 0)


def to_complex_batch(y) -> Complex[Array, "S N m m"]:
    y = jnp.asarray(y)
    return jax.lax.complex(y[:, :, 0], y[:, :, 1])


@eqx.filter_jit
def _integrate(flow, y0, t0, t1, dt0, ts, rtol, atol, solver, max_steps, progress):
    def not_positive(t, y, args, **kwargs):
        return jnp.min(jnp.linalg.eigvalsh(to_complex(y[0]))[:, 0]) <= 0

    def non_finite(t, y, args, **kwargs):
        return ~(jnp.all(jnp.isfinite(y[0])) & jnp.all(jnp.isfinite(y[1])))

    event = diffrax.Event({"degenerate": not_positive, "non_finite": non_finite})
    if solver == "tsit5":
        method, controller = diffrax.Tsit5(), _controller.pid(rtol, atol, t0, t1)
    else:
        method = diffrax.Euler() if solver == "euler" else diffrax.Heun()
        controller = diffrax.ConstantStepSize()
    with warnings.catch_warnings():
        # the state is real (flows.to_real); the complex arrays diffrax sees are the
        # flow's fixed points and Omega, which it never integrates
        warnings.filterwarnings("ignore", message="Complex dtype support in Diffrax")
        sol = _diffeqsolve(
            flow, method, t0, t1, dt0, y0, ts, controller, event, max_steps, progress
        )
    return sol.ts, sol.ys, sol.result, sol.event_mask, sol.stats["num_accepted_steps"]


def _diffeqsolve(flow, method, t0, t1, dt0, y0, ts, controller, event, max_steps, progress):
    return diffrax.diffeqsolve(
        _term(flow),
        method,
        t0,
        t1,
        dt0,
        y0,
        saveat=diffrax.SaveAt(ts=ts, t1=True),
        stepsize_controller=controller,
        event=event,
        max_steps=max_steps,
        throw=False,
        progress_meter=diffrax.TextProgressMeter() if progress else diffrax.NoProgressMeter(),
    )
