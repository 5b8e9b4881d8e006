r"""`solve_network`: a network metric's flow in any of three kernel regimes, through one interface.

The regime is one argument, `kernel`:

- `"evolving"`: every trainable parameter follows $\dot\theta = -\nabla_\theta L_h$
  (`flows.ParameterFlow`); the NTK $\Theta_{\theta(t)}$ moves, and the solution
  reports its drift $\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$ on the nodes;
- `"frozen"`: the network linearised at $\theta_0$ (`flows.LinearisedParameterFlow`),
  whose NTK is the empirical one at initialisation, fixed;
- `"infinite"` or any kernel module: the componentwise flow of the nodal values
  with that kernel applied by quadrature,
  $\partial_t G_a = -\sum_b \Theta(x_a, x_b)\,\partial L_h/\partial G_b$
  (`"infinite"` takes the network's analytic limit, `metric.infinite_width_kernel()`),
  integrated by `solve` with its events and amplification check.

All three start from the same metric $g_{\theta_0}$ and report the nodal metric
and the loss at the saved times.
"""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix
from jaxtyping import Array, Float, PyTree

import flows
from flows import (
    AbstractFunctional,
    AbstractKernel,
    ComponentNetworkMetric,
    LinearisedMetric,
    LinearisedParameterFlow,
    NodalMetric,
    ParameterFlow,
)

from . import _controller
from ._integrate import SOLVERS, _make_solver, _smallest_eigenvalue, _velocity
from ._misc import check_count
from ._solution import StopReason, degenerate_kind, kept_saves, stop_reason
from ._solve import _check_time, check_tolerances, save_times, solve

REGIMES = ("evolving", "frozen", "infinite")


@dataclasses.dataclass(frozen=True)
class NetworkSolution:
    """The result of `solve_network`.

    - `kernel`: `"evolving"`, `"frozen"`, `"infinite"` or the kernel module's class name;
    - `ts`, `values`, `loss`: saved times, nodal metric values (S, N, D, D) and $L_h$;
    - `parameters`: the parameters at the saved times (leading axis S), evolving and
      frozen regimes only;
    - `kernel_drift`: $\\|\\Theta_t - \\Theta_0\\|_F / \\|\\Theta_0\\|_F$ on the nodes at each
      saved time (evolving only; the other regimes' kernels do not move);
    - `t_final`, `stop_reason`, `stats`: where and why the solve stopped.
    """

    kernel: str
    network_metric: ComponentNetworkMetric
    ts: Float[Array, " S"]
    values: Float[Array, "S N D D"]
    loss: Float[Array, " S"]
    parameters: PyTree | None
    kernel_drift: Float[Array, " S"] | None
    t_final: float
    stop_reason: str
    stats: dict

    def metric(self, i: int = -1) -> flows.AbstractMetric:
        """The metric at saved index `i`, evaluable anywhere for the network regimes."""
        if self.parameters is None:
            return NodalMetric(self.network_metric.manifold, self.values[i], check=False)
        params = jax.tree.map(lambda a: a[i], self.parameters)
        if self.kernel == "evolving":
            return self.network_metric.with_parameters(params)
        return LinearisedMetric(self.network_metric, params)


@eqx.filter_jit
def _integrate_parameters(flow, y0, t0, t1, dt0, ts, rtol, atol, degenerate_tol, config):
    m = flow.metric.manifold
    s0 = _smallest_eigenvalue(m, flow.nodal(y0))
    solver = _make_solver(config["solver"], "gmres", rtol, atol)

    def degenerate(t, y, args, **kwargs):
        return _smallest_eigenvalue(m, flow.nodal(y)) / s0 - degenerate_tol

    def non_finite(t, y, args, **kwargs):
        return ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(y)]))

    event = diffrax.Event(
        {"degenerate": degenerate, "non_finite": non_finite},
        root_finder=optimistix.Newton(rtol=1e-10, atol=1e-12),
    )
    # the field closes over the flow: its constants (a nodal base metric's complex spectral
    # coefficients) are not the state, and diffrax would warn about them as if they were;
    # through `_velocity`, traced once per solve
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: _velocity(flow, t, y, None)),
        solver,
        t0,
        t1,
        dt0,
        y0,
        saveat=diffrax.SaveAt(ts=ts, t1=True),
        stepsize_controller=_controller.pid(rtol, atol, t0, t1),
        event=event,
        max_steps=config["max_steps"],
        throw=False,
        progress_meter=diffrax.TextProgressMeter()
        if config["progress"]
        else diffrax.NoProgressMeter(),
    )
    return sol.ts, sol.ys, sol.result, sol.event_mask, sol.stats


@eqx.filter_jit
def _nodal_series(flow, parameters):
    m = flow.metric.manifold
    values = jax.lax.map(flow.nodal, parameters)
    loss = jax.lax.map(lambda v: flows.nodal_loss(flow.loss, m, v), values)
    return values, loss


def _initial_ntk(metric):
    """The componentwise NTK on the nodes at the initial parameters, refused if it vanishes."""
    theta0 = eqx.filter_jit(flows.component_ntk)(metric, metric.manifold.nodes)
    if not float(jnp.sqrt(jnp.sum(theta0**2))) > 0:
        raise ValueError(
            "solve_network: the network's NTK vanishes on the nodes at its initial "
            "parameters (a rescale of zero?): the flow does not move, and the kernel drift "
            "||Theta_t - Theta_0|| / ||Theta_0|| is undefined."
        )
    return theta0


@eqx.filter_jit
def _drift(metric, parameters, theta0):
    nodes = metric.manifold.nodes
    norm0 = jnp.sqrt(jnp.sum(theta0**2))

    def at(params):
        theta = flows.component_ntk(metric.with_parameters(params), nodes)
        return jnp.sqrt(jnp.sum((theta - theta0) ** 2)) / norm0

    return jax.lax.map(at, parameters)


def solve_network(
    metric: ComponentNetworkMetric,
    loss: AbstractFunctional,
    t0: float,
    t1: float,
    *,
    kernel: str | AbstractKernel = "evolving",
    saveat: int | Float[Array, " S"] = 11,
    solver: str = "tsit5",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    dt0: float | None = None,
    max_steps: int = 100_000,
    degenerate_tol: float = 1e-4,
    progress: bool = False,
    force: bool = False,
) -> NetworkSolution:
    r"""Integrate the flow a network metric induces on `loss`, in the regime `kernel`.

    **Arguments:**

    - `metric`: a `flows.ComponentNetworkMetric` at its initial parameters $\theta_0$.
    - `loss`: the loss $L$ (e.g. `flows.PerelmanLoss()`); the flow descends $L_h$.
    - `t0`, `t1`: the interval, `t1 > t0`.
    - `kernel`: `"evolving"`, `"frozen"`, `"infinite"`, or a kernel module (module docstring).
    - `saveat`, `solver`, `rtol`, `atol`, `dt0`, `max_steps`, `degenerate_tol`, `progress`:
      as for `solve` (events: a degenerate or non-finite metric stops the solve).
    - `force`: passed to `solve` for the kernel regimes (its amplification check).
    """
    if not isinstance(metric, ComponentNetworkMetric):
        raise ValueError(
            f"solve_network: metric must be a flows.ComponentNetworkMetric, got {type(metric).__name__}."
        )
    if not isinstance(loss, AbstractFunctional):
        raise ValueError(f"solve_network: loss must be a loss module, got {loss!r}.")
    if isinstance(kernel, str) and kernel not in REGIMES:
        raise ValueError(
            f"solve_network: kernel must be one of {REGIMES} or a kernel module, got {kernel!r}."
        )
    if not isinstance(kernel, (str, AbstractKernel)):
        raise ValueError(
            f"solve_network: kernel must be a regime name or a kernel, got {kernel!r}."
        )
    t0, t1 = _check_time("t0", t0), _check_time("t1", t1)
    if not t1 > t0:
        raise ValueError(f"solve_network: t1 must be greater than t0, got t0 = {t0}, t1 = {t1}.")
    if solver not in SOLVERS:
        raise ValueError(f"solve_network: unknown solver {solver!r}; choose one of {SOLVERS}.")
    if dt0 is not None:
        check_tolerances("solve_network", dt0=dt0)
    check_count(max_steps, "solve_network: max_steps must be an integer >= 1", minimum=1)
    m = metric.manifold
    # every regime starts from the network's metric at the nodes: positive definite and finite
    flows.check_nodal_values(
        m, metric.at_nodes(), name="solve_network: the network's initial metric"
    )

    if not isinstance(kernel, str) or kernel == "infinite":
        analytic = metric.infinite_width_kernel() if kernel == "infinite" else kernel
        flow = flows.ComponentwiseFlow(m, loss, analytic, quadrature=True)
        solution = solve(
            flow,
            metric.at_nodes(),
            t0,
            t1,
            solver=solver,
            rtol=rtol,
            atol=atol,
            dt0=dt0,
            saveat=saveat,
            max_steps=max_steps,
            degenerate_tol=degenerate_tol,
            progress=progress,
            force=force,
        )
        losses = jnp.stack([flows.nodal_loss(loss, m, v) for v in solution.values])
        return NetworkSolution(
            kernel if isinstance(kernel, str) else type(kernel).__name__,
            metric,
            solution.ts,
            solution.values,
            losses,
            None,
            None,
            solution.t_final,
            solution.stop_reason,
            solution.stats,
        )

    # the drift ||Theta_t - Theta_0|| / ||Theta_0|| needs a non-vanishing NTK: refused before
    # the solve rather than after it
    theta0 = _initial_ntk(metric) if kernel == "evolving" else None
    flow = (
        ParameterFlow(metric, loss)
        if kernel == "evolving"
        else LinearisedParameterFlow(metric, loss)
    )
    y0 = metric.parameters
    dtype = metric.manifold.nodes.dtype
    check_tolerances("solve_network", rtol=rtol, atol=atol, degenerate_tol=degenerate_tol)
    ts = save_times("solve_network", saveat, t0, t1, dtype)
    arr = lambda x: None if x is None else jnp.asarray(x, dtype=dtype)  # noqa: E731
    config = {"solver": solver, "max_steps": int(max_steps), "progress": bool(progress)}
    ts_out, ys, result, mask, stats = _integrate_parameters(
        flow, y0, arr(t0), arr(t1), arr(dt0), ts, arr(rtol), arr(atol), arr(degenerate_tol), config
    )
    idx = kept_saves(ts_out)
    params = jax.tree.map(lambda a: a[jnp.asarray(idx)], ys)
    values, losses = _nodal_series(flow, params)
    reason = degenerate_kind(
        stop_reason(result, mask), m, metric.at_nodes(), values[-1], degenerate_tol
    )
    if reason in (StopReason.DEGENERATE, StopReason.LOCALLY_DEGENERATE):
        # the event's root find works on the parameters, in which the metric is not linear:
        # when it fails, its end lies past where the metric stops being positive definite.
        # Keep the saves up to the last positive-definite one (all of them if none is, as
        # when saveat leaves out t0).
        smallest = np.asarray(jax.vmap(lambda v: _smallest_eigenvalue(m, v))(values))
        positive = np.flatnonzero(smallest > 0)
        last = int(positive[-1]) + 1 if positive.size else len(idx)
        idx, values, losses = idx[:last], values[:last], losses[:last]
        params = jax.tree.map(lambda a: a[:last], params)
    drift = None
    if kernel == "evolving":
        drift = _drift(metric, params, theta0)
    return NetworkSolution(
        kernel,
        metric,
        jnp.asarray(np.asarray(ts_out)[idx]),
        values,
        losses,
        params,
        drift,
        float(np.asarray(ts_out)[idx][-1]),
        reason,
        {k: int(v) for k, v in stats.items() if np.ndim(v) == 0},
    )
