r"""Loss functionals $L[g] = \int_M \ell_g(x)\, d\mu(x)$ and their functional derivatives.

A loss is an Equinox module with a `density` $\ell_g(x)$ (a scalar at a point,
computed from the metric); the loss is its quadrature against the reference
measure $\mu$, $L_h = \sum_a w_a \ell_g(x_a)$. The functional derivative
$E = \delta L / \delta g$, defined by $\delta L = \int E^{ij}\,\delta g_{ij}\, d\mu$
(summed over all $i, j$), is obtained by automatic differentiation of $L_h$
in the nodal values $G_a$ of a `NodalMetric`:
$E(x_a) = w_a^{-1}\, \partial L_h / \partial G_a$, with every entry of the
$D \times D$ matrix $G_a$ an independent variable, so an off-diagonal pair
$(i, j), (j, i)$ is counted twice, as in the sum above.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._metrics import AbstractMetric, LocalGeometry, NodalMetric, local_geometry
from .._types import Point, Scalar


class AbstractFunctional(eqx.Module):
    r"""A functional $L[g]$ of a metric, differentiable in its nodal values."""

    @abc.abstractmethod
    def __call__(self, metric: AbstractMetric) -> Scalar:
        """$L[g]$, discretised on the metric's manifold."""


class AbstractLoss(AbstractFunctional):
    r"""A loss functional $L[g] = \int_M \ell_g\, d\mu$; subclasses give the density $\ell_g(x)$."""

    @abc.abstractmethod
    def density(self, metric: AbstractMetric, x: Point) -> Scalar:
        r"""$\ell_g(x)$, the integrand against the reference measure $\mu$."""

    def __call__(self, metric: AbstractMetric) -> Scalar:
        r"""$L_h = \sum_a w_a \ell_g(x_a)$; a concrete non-finite value raises `ValueError`."""
        if not isinstance(metric, AbstractMetric):
            raise ValueError(
                f"{type(self).__name__}: expected a metric module, got {type(metric).__name__}."
            )
        m = metric.manifold
        value = m.integrate(jax.vmap(lambda x: self.density(metric, x))(m.nodes))
        if not isinstance(value, jax.core.Tracer) and not bool(jnp.isfinite(value)):
            raise ValueError(
                f"{type(self).__name__}: the loss is not finite ({float(value)}) for this "
                f"metric on {m!r}; are its values finite and positive definite (a NodalMetric "
                "built with check=False is not checked)?"
            )
        return value


def log_density_gradient(metric: AbstractMetric, x: Point, geometry: LocalGeometry) -> Array:
    r"""$\partial_a f$ at `x` in the chart centred there, $f = \log(dV_g/d\mu)$.

    $\partial_a f = \tfrac12 g^{bc}\partial_a g_{bc} - \tfrac12 \bar g^{bc}\partial_a \bar g_{bc}$,
    $\bar g$ the reference metric in the same chart.
    """
    m = metric.manifold
    u0 = jnp.zeros((m.dim,), dtype=x.dtype)

    dref = jax.jacfwd(lambda u: m.pull_back(m.reference, x, u))(
        u0
    )  # [b, c, a] = d_a gbar_bc (gbar(0) = I)
    return 0.5 * jnp.einsum(
        "bc,bca->a", geometry.inverse, geometry.metric_derivative
    ) - 0.5 * jnp.einsum("bba->a", dref)


class PerelmanLoss(AbstractLoss):
    r"""Perelman's loss $L_P = -2F$, $F = \int (R + |\nabla f|^2) e^{-f} dV_g$, at fixed measure.

    The measure $e^{-f} dV_g$ is held equal to $\mu$, so $f = \log(dV_g/d\mu)$
    is determined by $g$ and $\ell = -2(R + |\nabla f|^2)$. Its functional
    derivative is $E^{ij} = 2(R^{ij} + \nabla^i\nabla^j f)$ (docs/conventions.md,
    Normalisations and tensors); its metric-lowered local flow is Perelman's $\partial_t g = -2(\mathrm{Ric} + \nabla\nabla f)$.
    """

    def density(self, metric: AbstractMetric, x: Point) -> Scalar:
        geom = local_geometry(metric, x)
        df = log_density_gradient(metric, x, geom)
        return -2 * (geom.scalar + df @ geom.inverse @ df)


class EinsteinHilbertLoss(AbstractLoss):
    r"""$L = \int R\, dV_g$; $E^{ij} = (\tfrac12 R g^{ij} - R^{ij})\, dV_g/d\mu$ (zero in dimension 2)."""

    def density(self, metric: AbstractMetric, x: Point) -> Scalar:
        geom = local_geometry(metric, x)
        return geom.scalar * geom.volume_density


class CalabiLoss(AbstractLoss):
    r"""$L = \int R^2\, dV_g$.

    $E^{ij} = (-2R R^{ij} + 2\nabla^i\nabla^j R - 2 g^{ij}\Delta R + \tfrac12 R^2 g^{ij})\, dV_g/d\mu$.
    """

    def density(self, metric: AbstractMetric, x: Point) -> Scalar:
        geom = local_geometry(metric, x)
        return geom.scalar**2 * geom.volume_density


class RicciSquaredLoss(AbstractLoss):
    r"""$L = \int |\mathrm{Ric}|^2\, dV_g$, $|\mathrm{Ric}|^2 = R_{ab}R_{cd}g^{ac}g^{bd}$."""

    def density(self, metric: AbstractMetric, x: Point) -> Scalar:
        geom = local_geometry(metric, x)
        ric, ginv = geom.ricci, geom.inverse
        return jnp.einsum("ab,cd,ac,bd->", ric, ric, ginv, ginv) * geom.volume_density


def functional_derivative(loss: AbstractFunctional, metric: NodalMetric) -> Float[Array, "N D D"]:
    r"""$E(x_a) = w_a^{-1}\,\partial L_h/\partial G_a$ at every node, in the representation.

    Every entry of $G_a$ is an independent variable (off-diagonal pairs counted
    twice), so that $\delta L_h = \sum_a w_a \mathrm{tr}(E_a\, \delta G_a)$.
    """
    if not isinstance(loss, AbstractFunctional):
        raise ValueError(
            f"functional_derivative: loss must be a loss module (flows.AbstractFunctional), "
            f"got {type(loss).__name__}."
        )
    if not isinstance(metric, NodalMetric):
        raise ValueError(
            f"functional_derivative: needs a NodalMetric (values at the nodes), got {type(metric).__name__}."
        )
    manifold = metric.manifold
    grad = _loss_gradient(loss, manifold, metric.values, metric.check)
    if not isinstance(grad, jax.core.Tracer):
        finite = jnp.all(jnp.isfinite(grad), axis=(1, 2))
        if not bool(jnp.all(finite)):
            a = int(jnp.argmin(finite))
            raise ValueError(
                f"functional_derivative: the derivative of {type(loss).__name__} is not finite "
                f"at node {a} on {manifold!r}; are the metric's values finite and positive "
                "definite (a NodalMetric built with check=False is not checked)?"
            )
    return grad / manifold.weights[:, None, None]


@eqx.filter_jit
def _loss_gradient(loss, manifold, values, check):
    return jax.grad(lambda v: loss(NodalMetric(manifold, v, check=check)))(values)
