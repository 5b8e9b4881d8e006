r"""One `diffeqsolve` of a flow: the solvers, the stopping events, and the compiled solve.

`_integrate(flow, y0, t0, t1, ...)` integrates $\partial_t g = V(t, g)$ from the
nodal values `y0` with one of `SOLVERS` under diffrax's PID controller, saving
at the given times and at the stop, and stops at the first event that fires
(`degenerate`, `non_finite`, and when asked `fixed_point` and `curvature`: the
events of `solve`'s module docstring), each threshold located by root finding.

`_Config` holds the static choices (solver, linear solver, step budget, which
events), so that one compiled program serves every tolerance and interval.
The checkpointed solve (`_resume.py`) runs the same solver and events in segments.
"""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix

import flows
from flows import NodalMetric

from . import _controller
from ._krylov import NewtonKrylov, SpectralGMRES

SOLVERS = ("tsit5", "dopri5", "dopri8", "kvaerno3", "kvaerno5")


@dataclasses.dataclass(frozen=True)
class _Config:
    dense: bool
    solver: str
    linear_solver: str
    max_steps: int
    progress: bool
    fixed_point: bool
    curvature: bool


def _make_solver(name: str, linear_solver: str, rtol: float, atol: float, manifold=None):
    """The diffrax solver; implicit ones with Newton and `linear_solver` (`manifold`: the
    nodal states' manifold, for the GMRES preconditioner; None for other states)."""
    if name == "tsit5":
        return diffrax.Tsit5()
    if name == "dopri5":
        return diffrax.Dopri5()
    if name == "dopri8":
        return diffrax.Dopri8()
    if name in ("kvaerno3", "kvaerno5"):
        if linear_solver == "gmres":
            # inexact Newton-Krylov: GMRES on Jacobian-vector products (never forming the
            # Jacobian) to a forcing term or a tenth of the Newton tolerance's scale,
            # spectrally preconditioned (_krylov.py); Hairer and Wanner's convergence-rate
            # test ends the Newton iteration
            root = NewtonKrylov(
                rtol=rtol,
                atol=atol,
                linear_solver=SpectralGMRES(manifold),
                cauchy_termination=False,
            )
        else:
            root = diffrax.VeryChord(rtol=rtol, atol=atol)
        cls = diffrax.Kvaerno3 if name == "kvaerno3" else diffrax.Kvaerno5
        return cls(root_finder=root)
    raise ValueError(
        f"solve: unknown solver {name!r}; choose tsit5, dopri5, dopri8, kvaerno3 or kvaerno5."
    )


@eqx.filter_jit
def _velocity(flow, t, y, args):
    """`flow(t, y, args)` as one inner program of the solve's.

    diffrax traces the vector field once per solver stage, and the events trace it
    again: 5 to 15 times per solve. Called through this jit, it is traced once and the
    trace reused (XLA inlines the call: the compiled solve is the same program).
    """
    return flow(t, y, args)


def _term(flow) -> diffrax.ODETerm:
    """The solve's vector field: `flow`, traced once (`_velocity`)."""
    return diffrax.ODETerm(eqx.Partial(_velocity, flow))


def _smallest_eigenvalue(manifold, values):
    """The smallest eigenvalue of the tangential metric over all nodes (continuous in the state)."""
    g = manifold.tangential(values)
    g = 0.5 * (g + jnp.swapaxes(g, -1, -2))
    return jnp.min(jnp.linalg.eigvalsh(g)[:, 0])


def _at_start(t, t0, condition):
    """`condition()` at $t_0$, False after, without evaluating it after (`lax.cond`)."""
    return jax.lax.cond(t == t0, condition, lambda: jnp.asarray(False))


def _event(flow, s0, t0, degenerate_tol, fixed_point_tol, curvature_limit, config) -> diffrax.Event:
    r"""The stopping events of the module docstring, `s0` the initial smallest eigenvalue.

    Each threshold is a crossing of a real function of the state, so diffrax locates it
    by root finding on the step's interpolant rather than at the end of the step where
    it happened: $\lambda_\min/s_0 - $ `degenerate_tol` downwards,
    $\log\max|\partial_t g| - \log$ `fixed_point_tol` downwards and
    $\max|R| - $ `curvature_limit` upwards. A real condition cannot fire before the
    first step, so `fixed_point` and `curvature` also have a boolean twin, true only at
    $t_0$, for a metric that starts past the threshold (the solve stops there).
    """
    m = flow.manifold

    def degenerate(t, y, args, **kwargs):
        return _smallest_eigenvalue(m, y) / s0 - degenerate_tol

    def non_finite(t, y, args, **kwargs):
        return ~jnp.all(jnp.isfinite(y))

    conds = {"degenerate": degenerate, "non_finite": non_finite}
    directions = {"degenerate": None, "non_finite": None}
    if config.fixed_point:

        def speed(t, y):
            return jnp.log(jnp.max(jnp.abs(_velocity(flow, t, y, None)))) - jnp.log(fixed_point_tol)

        conds["fixed_point"] = lambda t, y, args, **kw: speed(t, y)
        conds["fixed_point_at_start"] = lambda t, y, args, **kw: _at_start(
            t, t0, lambda: speed(t, y) < 0
        )
        directions |= {"fixed_point": False, "fixed_point_at_start": None}
    if config.curvature:

        def excess(y):
            geom = flows.nodal_geometry(NodalMetric(m, y, check=False))
            return jnp.max(jnp.abs(jax.vmap(lambda q: q.scalar)(geom))) - curvature_limit

        conds["curvature"] = lambda t, y, args, **kw: excess(y)
        conds["curvature_at_start"] = lambda t, y, args, **kw: _at_start(
            t, t0, lambda: excess(y) > 0
        )
        directions |= {"curvature": True, "curvature_at_start": None}
    root = optimistix.Newton(rtol=1e-10, atol=1e-12)
    if all(d is None for d in directions.values()):
        return diffrax.Event(conds, root_finder=root)  # as diffrax's default, every crossing
    return diffrax.Event(conds, root_finder=root, direction=directions)


@eqx.filter_jit
def _integrate(
    flow, y0, t0, t1, dt0, ts, rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit, config
):
    s0 = _smallest_eigenvalue(flow.manifold, y0)
    solver = _make_solver(config.solver, config.linear_solver, rtol, atol, flow.manifold)
    event = _event(flow, s0, t0, degenerate_tol, fixed_point_tol, curvature_limit, config)
    controller = _controller.pid(rtol, atol, t0, t1)
    sol = diffrax.diffeqsolve(
        _term(flow),
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
