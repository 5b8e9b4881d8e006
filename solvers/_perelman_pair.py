r"""Perelman's pair: Ricci flow forward, then the conjugate heat equation backward along it.

`conjugate_heat(forward, flow, u_final=None, *, saveat=11, rtol=1e-9, atol=1e-12)` takes
a `Solution` of Hamilton's Ricci flow (`flow`) solved with `dense=True` and integrates $\partial_t u = -\Delta u + R u$
backward from $u(T)$ (default the constant with $\int u\, dV_{g(T)} = 1$)
on the dense forward solution. Along the pair $\int u\, dV$ is conserved and
Perelman's $\mathcal F(g, u)$ is non-decreasing in $t$ with
$d\mathcal F/dt = 2\int |\mathrm{Ric} + \nabla\nabla f|^2 u\, dV$, $u = e^{-f}$.
"""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import flows

from ._misc import check_count
from ._solution import Solution
from ._solve import check_tolerances


@dataclasses.dataclass(frozen=True)
class PairSolution:
    r"""Perelman's pair at saved times (increasing `ts`).

    - `metric_values`, `u`: $g(t)$ and $u(t)$ at the nodes;
    - `entropy`: $\mathcal F(g, u)$; `rate`: $2\int|\mathrm{Ric} + \nabla\nabla f|^2 u\, dV$;
    - `measured_rate`: $d\mathcal F/dt$ from the derivative of the discrete $\mathcal F$
      along the pair's vector field (Ricci flow and the conjugate heat equation);
    - `mass`: $\int u\, dV_g$ (conserved).
    """

    ts: np.ndarray
    metric_values: Float[Array, "S N D D"]
    u: Float[Array, "S N"]
    entropy: np.ndarray
    rate: np.ndarray
    measured_rate: np.ndarray
    mass: np.ndarray


MAX_STEPS = 100_000  # of the backward solve


@eqx.filter_jit
def _backward(manifold, interpolation, u_final, t_final, t_start, ts, rtol, atol, max_steps):
    def rhs(t, u, args):
        metric = flows.NodalMetric(manifold, interpolation.evaluate(t), check=False)
        return flows.conjugate_heat_velocity(metric, u)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        diffrax.Tsit5(),
        t_final,
        t_start,
        None,
        u_final,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys, sol.result


@eqx.filter_jit
def _diagnostics(flow, values, u):
    m = flow.manifold

    def entropy(v, w):
        return flows.perelman_entropy(flows.NodalMetric(m, v, check=False), w)

    (f_value, rate) = entropy(values, u)
    metric = flows.NodalMetric(m, values, check=False)
    tangent = (flow(0.0, values), flows.conjugate_heat_velocity(metric, u))
    _, (df_dt, _) = jax.jvp(entropy, (values, u), tangent)
    density = jax.vmap(lambda q: q.volume_density)(flows.nodal_geometry(metric))
    return f_value, rate, df_dt, m.integrate(u * density)


def conjugate_heat(
    forward: Solution,
    flow: flows.AbstractFlow,
    u_final: Float[Array, " N"] | None = None,
    *,
    saveat: int = 11,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> PairSolution:
    """Solve the conjugate heat equation backward along `forward` (Ricci flow, `dense=True`).

    `flow` is the flow `forward` was solved with (Hamilton's `ricci_flow`: the
    conjugate heat equation is written for it, not for a DeTurck gauge); a
    `forward` solved with another flow, or on another manifold, is refused.
    `u_final` (default the uniform density) must be finite and positive; it is taken in
    the forward solution's dtype, as are the times and tolerances. The pair is saved at
    `saveat` (an integer >= 2) equally spaced times from `forward`'s first saved time
    (its $t_0$ when its saves include it, as the default's do) to its final time. A
    backward solve that fails (e.g. runs out of its 100,000 steps) is a `RuntimeError`
    saying so.
    """
    if forward.interpolation is None:
        raise ValueError("conjugate_heat: the forward solution needs solve(..., dense=True).")
    if not (isinstance(flow, flows.AbstractFlow) and flow.name == "ricci"):
        raise ValueError(
            f"conjugate_heat: Perelman's pair runs along Hamilton's Ricci flow (flows.ricci_flow), "
            f"got {getattr(flow, 'name', flow)!r}."
        )
    if forward.flow != "ricci" or forward.manifold != flow.manifold:
        raise ValueError(
            f"conjugate_heat: forward must be a solve of Hamilton's Ricci flow on {flow.manifold!r}"
            f" (the flow given), got a solve of {forward.flow!r} on {forward.manifold!r}."
        )
    check_tolerances("conjugate_heat", rtol=rtol, atol=atol)
    check_count(
        saveat, "conjugate_heat: saveat must be an integer >= 2 (the saved times)", minimum=2
    )
    m = forward.manifold
    dtype = forward.values.dtype
    t_start, t_final = float(forward.ts[0]), float(forward.t_final)
    g_final = flows.NodalMetric(m, forward.values[-1], check=False)
    if u_final is None:
        volume = float(m.integrate(flows.volume_density(g_final, m.nodes)))
        u_final = jnp.full(m.weights.shape, 1 / volume)
    u_final = jnp.asarray(u_final)
    if not (
        jnp.issubdtype(u_final.dtype, jnp.floating) or jnp.issubdtype(u_final.dtype, jnp.integer)
    ):
        raise ValueError(
            f"conjugate_heat: u_final must be real nodal values, got dtype {u_final.dtype}."
        )
    u_final = u_final.astype(dtype)
    if (
        u_final.shape != m.weights.shape
        or not bool(jnp.all(jnp.isfinite(u_final)))
        or not bool(jnp.all(u_final > 0))
    ):
        raise ValueError(
            "conjugate_heat: u_final must be finite positive nodal values on the manifold."
        )
    ts_back = jnp.linspace(t_final, t_start, saveat, dtype=dtype)
    us, result = _backward(
        m,
        forward.interpolation,
        u_final,
        jnp.asarray(t_final, dtype=dtype),
        jnp.asarray(t_start, dtype=dtype),
        ts_back,
        jnp.asarray(rtol, dtype=dtype),
        jnp.asarray(atol, dtype=dtype),
        MAX_STEPS,
    )
    if not bool(result == diffrax.RESULTS.successful):
        detail = (
            "ran out of its steps"
            if bool(result == diffrax.RESULTS.max_steps_reached)
            else str(result.value if hasattr(result, "value") else result)
        )
        raise RuntimeError(
            f"conjugate_heat: the backward solve from t = {t_final:g} to {t_start:g} failed "
            f"({detail}, at most {MAX_STEPS} steps at rtol {rtol:g}, atol {atol:g}); try "
            f"looser tolerances or a shorter forward solve."
        )
    ts = np.asarray(ts_back)[::-1]
    us = us[::-1]
    metrics = jnp.stack([forward.evaluate(float(t)) for t in ts])
    rows = [_diagnostics(flow, g, u) for g, u in zip(metrics, us, strict=True)]
    entropy, rate, measured, mass = (np.array([float(r[i]) for r in rows]) for i in range(4))
    return PairSolution(ts, metrics, us, entropy, rate, measured, mass)
