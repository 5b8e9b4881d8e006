r"""Perelman's $\mathcal F$ with a free measure, and the conjugate heat equation of his pair.

With $u = e^{-f}$ (nodal, positive):
$\mathcal F(g, u) = \int (R + |\nabla f|^2)\, u\, dV_g = \int (R u + |\nabla u|^2/u)\, dV_g$,
and along Ricci flow $\partial_t g = -2\,\mathrm{Ric}$ with $u$ solving the
conjugate heat equation $\partial_t u = -\Delta u + R u$ (backward from a final
time), $\int u\, dV_g$ is conserved and
$d\mathcal F/dt = 2\int |\mathrm{Ric} + \nabla\nabla f|^2\, u\, dV_g \ge 0$
(docs/conventions.md, Well-posedness). Derivatives of $u$ are those of its spectral series.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._metrics import NodalMetric, covariant_hessian, log_jet, nodal_geometry
from .._misc import is_traced
from .._types import Scalar


def _pieces(metric: NodalMetric, u):
    m = metric.manifold
    geom = nodal_geometry(metric)
    du, ddu = m.nodal_jet(u)
    return m, geom, du, ddu


def perelman_entropy(metric: NodalMetric, u: Float[Array, " N"]) -> tuple[Scalar, Scalar]:
    r"""$\mathcal F(g, u)$ and Perelman's rate $2\int |\mathrm{Ric} + \nabla\nabla f|^2 u\, dV_g$, $f = -\log u$.

    `u` must be positive at every node ($f = -\log u$); concrete values that are not
    finite and positive raise `ValueError` (traced values are not checked).
    """
    if not is_traced(u):
        u_values = jnp.asarray(u)
        if not (bool(jnp.all(jnp.isfinite(u_values))) and bool(jnp.all(u_values > 0))):
            raise ValueError(
                "perelman_entropy: u must be finite and positive at every node (f = -log u)."
            )
    m, geom, du, ddu = _pieces(metric, u)

    def at(q, u_a, du_a, ddu_a):
        gi = q.inverse
        dlog, ddlog = log_jet(u_a, du_a, ddu_a)
        t = q.ricci - covariant_hessian(q, dlog, ddlog)  # Ric + Hess f, f = -log u
        entropy = (q.scalar * u_a + du_a @ gi @ du_a / u_a) * q.volume_density
        rate = 2 * jnp.einsum("ac,bd,ab,cd->", gi, gi, t, t) * u_a * q.volume_density
        return entropy, rate

    entropy, rate = jax.vmap(at)(geom, u, du, ddu)
    return m.integrate(entropy), m.integrate(rate)


def conjugate_heat_velocity(metric: NodalMetric, u: Float[Array, " N"]) -> Float[Array, " N"]:
    r"""$\partial_t u = -\Delta_g u + R\,u$ at the nodes."""
    m, geom, du, ddu = _pieces(metric, u)

    def at(q, u_a, du_a, ddu_a):
        lap = jnp.einsum("ab,ab->", q.inverse, covariant_hessian(q, du_a, ddu_a))
        return -lap + q.scalar * u_a

    return jax.vmap(at)(geom, u, du, ddu)
