r"""Curvature by automatic differentiation in charts.

Conventions (fixed; tests rely on them). In a chart with coordinates $u$:

- Christoffel symbols $\Gamma^k_{ij} = \tfrac12 g^{kl}(\partial_i g_{jl} + \partial_j g_{il} - \partial_l g_{ij})$,
  stored as `gamma[k, i, j]`.
- Riemann: $R(\partial_i, \partial_j)\partial_k = R^l{}_{ijk}\partial_l$ with
  $R(X,Y) = \nabla_X\nabla_Y - \nabla_Y\nabla_X - \nabla_{[X,Y]}$, so
  $R^l{}_{ijk} = \partial_i\Gamma^l_{jk} - \partial_j\Gamma^l_{ik} + \Gamma^l_{im}\Gamma^m_{jk} - \Gamma^l_{jm}\Gamma^m_{ik}$;
  covariant $R_{ijkl} = g_{lm} R^m{}_{ijk}$, stored as `riemann[i, j, k, l]`.
  Sectional curvature of the plane of $\partial_i, \partial_j$: $R_{ijji} / (g_{ii}g_{jj} - g_{ij}^2)$.
- Ricci $R_{jk} = R^i{}_{ijk}$; scalar $R = g^{jk}R_{jk}$. Round unit $S^n$:
  $\mathrm{Ric} = (n-1) g$, $R = n(n-1)$.
- Volume density $dV_g / d\mu = \sqrt{\det g}$ in the manifold's chart at $x$,
  whose frame is $g_\mathrm{ref}$-orthonormal at $u = 0$.

The public functions take a metric and a point `x` (or a batch of points,
shape (..., D)) and compute in the chart $\varphi_x$ at $u = 0$. Tensors with
two indices are returned in the manifold's representation ($E T E^\top$, see
`AbstractManifold.to_representation`); Christoffel symbols and Riemann are
returned in the chart at `x`.
"""

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._manifolds import AbstractManifold
from ._metrics import AbstractMetric, SpectralInterpolant
from ._types import ChartMatrix, ChartVector, Matrix, Point, Scalar

ChartMetric = Callable[[ChartVector], ChartMatrix]


class LocalGeometry(eqx.Module):
    r"""Metric, first derivatives and Christoffel symbols (with their derivatives) at one chart point.

    Built by `chart_geometry`; every curvature quantity is a property, in the
    chart's components and the conventions of this module.
    """

    metric: Float[Array, "n n"]
    inverse: Float[Array, "n n"]
    metric_derivative: Float[Array, "n n n"]  # [i, j, l] = d_l g_ij
    christoffel: Float[Array, "n n n"]  # [k, i, j] = Gamma^k_ij
    christoffel_derivative: Float[Array, "n n n n"]  # [k, i, j, l] = d_l Gamma^k_ij

    @property
    def riemann_up(self) -> Float[Array, "n n n n"]:
        r"""$R^l{}_{ijk}$, stored as `[l, i, j, k]`."""
        gam, dgam = self.christoffel, self.christoffel_derivative
        return (
            jnp.einsum("ljki->lijk", dgam)
            - jnp.einsum("likj->lijk", dgam)
            + jnp.einsum("lim,mjk->lijk", gam, gam)
            - jnp.einsum("ljm,mik->lijk", gam, gam)
        )

    @property
    def riemann(self) -> Float[Array, "n n n n"]:
        r"""$R_{ijkl} = g_{lm} R^m{}_{ijk}$."""
        return jnp.einsum("lm,mijk->ijkl", self.metric, self.riemann_up)

    @property
    def ricci(self) -> Float[Array, "n n"]:
        r"""$R_{jk} = R^i{}_{ijk}$."""
        return jnp.einsum("iijk->jk", self.riemann_up)

    @property
    def scalar(self) -> Float[Array, ""]:
        r"""$R = g^{jk} R_{jk}$."""
        return jnp.einsum("jk,jk->", self.inverse, self.ricci)

    @property
    def volume_density(self) -> Float[Array, ""]:
        r"""$\sqrt{\det g}$."""
        return jnp.sqrt(jnp.linalg.det(self.metric))


def _check_positive(g: Float[Array, "n n"]) -> Float[Array, "n n"]:
    finite = jnp.all(jnp.isfinite(g))
    g = eqx.error_if(g, ~finite, "metric has a non-finite component at an evaluation point")
    smallest = jnp.linalg.eigvalsh(jnp.where(finite, g, 1.0))[0]
    return eqx.error_if(g, ~(smallest > 0), "metric is not positive definite at an evaluation point")


def chart_geometry(chart_metric: ChartMetric, u: ChartVector) -> LocalGeometry:
    r"""`LocalGeometry` of the metric $g_{ij}(u)$ given in coordinates, at `u`.

    Uses forward-mode AD twice (second derivatives of $g$); raises at run time
    (`eqx.error_if`) if $g(u)$ is not positive definite.
    """

    def metric_and_aux(v):
        g = chart_metric(v)
        return g, g

    def gamma_and_aux(v):
        dg, g = jax.jacfwd(metric_and_aux, has_aux=True)(v)
        g = _check_positive(g)
        ginv = jnp.linalg.inv(g)
        lowered = 0.5 * (
            jnp.einsum("jli->lij", dg) + jnp.einsum("ilj->lij", dg) - jnp.einsum("ijl->lij", dg)
        )
        gam = jnp.einsum("kl,lij->kij", ginv, lowered)
        return gam, (g, ginv, dg, gam)

    dgam, (g, ginv, dg, gam) = jax.jacfwd(gamma_and_aux, has_aux=True)(u)
    return LocalGeometry(g, ginv, dg, gam, dgam)


def local_geometry(metric: AbstractMetric, x: Point) -> LocalGeometry:
    """`LocalGeometry` of `metric` at the point `x`, in the manifold's chart centred at `x`."""
    u0 = jnp.zeros((metric.manifold.dim,), dtype=x.dtype)
    return chart_geometry(lambda u: metric.in_chart(x, u), u0)


def _pointwise(fn):
    """Accept a point of shape (D,) or a batch (..., D); jit with Equinox's filter."""

    jitted = eqx.filter_jit(fn)

    @functools.wraps(fn)
    def wrapper(metric: AbstractMetric, *args):
        *rest, x = args
        if not isinstance(metric, AbstractMetric):
            raise ValueError(f"{fn.__name__}: expected a metric module, got {type(metric).__name__}.")
        manifold = metric.manifold
        rest = [_as_function(manifold, f) for f in rest]
        x = jnp.asarray(x)
        d = manifold.ambient_dim
        if x.ndim == 0 or x.shape[-1] != d:
            raise ValueError(
                f"{fn.__name__}: points on {manifold!r} have {d} components; got an array of "
                f"shape {x.shape}."
            )
        if x.ndim == 1:
            return jitted(metric, *rest, x)
        flat = x.reshape(-1, d)
        out = jitted_batched(metric, *rest, flat)
        return out.reshape(x.shape[:-1] + out.shape[1:])

    @eqx.filter_jit
    def jitted_batched(metric, *args):
        *rest, flat = args
        return jax.vmap(lambda p: fn(metric, *rest, p))(flat)

    return wrapper


def _as_function(manifold: AbstractManifold, f) -> Callable[[Point], Scalar]:
    if callable(f):
        return f
    f = jnp.asarray(f)
    if f.shape != manifold.weights.shape:
        raise ValueError(
            f"a scalar field on {manifold!r} is a function of a point or nodal values of shape "
            f"{manifold.weights.shape}; got an array of shape {f.shape}."
        )
    return SpectralInterpolant(manifold, f)


@_pointwise
def christoffel(metric: AbstractMetric, x: Point) -> Float[Array, "n n n"]:
    r"""$\Gamma^k_{ij}$ at `x`, as `[k, i, j]`, in the chart centred at `x`."""
    return local_geometry(metric, x).christoffel


@_pointwise
def riemann(metric: AbstractMetric, x: Point) -> Float[Array, "n n n n"]:
    r"""Covariant $R_{ijkl}$ at `x`, in the chart centred at `x` (frame orthonormal for $g_\mathrm{ref}$)."""
    return local_geometry(metric, x).riemann


@_pointwise
def ricci(metric: AbstractMetric, x: Point) -> Matrix:
    r"""Ricci tensor $R_{jk}$ at `x`, in the representation (ambient on spheres)."""
    return metric.manifold.to_representation(x, local_geometry(metric, x).ricci)


@_pointwise
def scalar_curvature(metric: AbstractMetric, x: Point) -> Scalar:
    r"""Scalar curvature $R = g^{jk}R_{jk}$ at `x`."""
    return local_geometry(metric, x).scalar


@_pointwise
def volume_density(metric: AbstractMetric, x: Point) -> Scalar:
    r"""$dV_g/d\mu$ at `x`: $\sqrt{\det g}$ in a $g_\mathrm{ref}$-orthonormal frame."""
    u0 = jnp.zeros((metric.manifold.dim,), dtype=x.dtype)
    g = _check_positive(metric.in_chart(x, u0))
    return jnp.sqrt(jnp.linalg.det(g))


def _chart_function(metric: AbstractMetric, f: Callable, x: Point):
    manifold = metric.manifold
    u0 = jnp.zeros((manifold.dim,), dtype=x.dtype)

    def in_chart(u):
        return f(manifold.chart(x, u))

    return in_chart, u0


@_pointwise
def gradient(metric: AbstractMetric, f: Callable[[Point], Scalar], x: Point) -> Float[Array, " D"]:
    r"""$\nabla f = g^{ab}\partial_b f\, \partial_a$ at `x`, as a vector in the representation.

    `f` is a function of a point, or nodal values (interpolated spectrally).
    """
    fc, u0 = _chart_function(metric, f, x)
    g = _check_positive(metric.in_chart(x, u0))
    return metric.manifold.frame(x) @ jnp.linalg.solve(g, jax.grad(fc)(u0))


@_pointwise
def hessian(metric: AbstractMetric, f: Callable[[Point], Scalar], x: Point) -> Matrix:
    r"""$\nabla_a\nabla_b f = \partial_a\partial_b f - \Gamma^c_{ab}\partial_c f$ at `x`, in the representation."""
    fc, u0 = _chart_function(metric, f, x)
    geom = local_geometry(metric, x)
    hess = jax.hessian(fc)(u0) - jnp.einsum("cab,c->ab", geom.christoffel, jax.grad(fc)(u0))
    return metric.manifold.to_representation(x, hess)


@_pointwise
def laplacian(metric: AbstractMetric, f: Callable[[Point], Scalar], x: Point) -> Scalar:
    r"""$\Delta_g f = g^{ab}\nabla_a\nabla_b f$ at `x` (negative semi-definite convention)."""
    fc, u0 = _chart_function(metric, f, x)
    geom = local_geometry(metric, x)
    hess = jax.hessian(fc)(u0) - jnp.einsum("cab,c->ab", geom.christoffel, jax.grad(fc)(u0))
    return jnp.einsum("ab,ab->", geom.inverse, hess)
