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
shape (..., D), at least one point: an empty batch raises `ValueError`) and
compute in the chart $\varphi_x$ at $u = 0$. Tensors with
two indices are returned in the manifold's representation ($E T E^\top$, see
`AbstractManifold.to_representation`); Christoffel symbols and Riemann are
returned in the chart at `x`.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._manifolds import AbstractManifold
from .._misc import is_traced
from .._types import ChartMatrix, ChartVector, Point, Scalar
from .base import AbstractMetric
from .nodal import NodalMetric, SpectralInterpolant

ChartMetric = Callable[[ChartVector], ChartMatrix]


class LocalGeometry(eqx.Module):
    r"""Metric, first derivatives and Christoffel symbols (with their derivatives) at one chart point.

    Built by `chart_geometry`; every curvature quantity is a property, in the
    chart's components and the conventions of this module. The properties also work on
    a batched geometry (`nodal_geometry`, `reference_geometry`: leading point axes).
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
            jnp.einsum("...ljki->...lijk", dgam)
            - jnp.einsum("...likj->...lijk", dgam)
            + jnp.einsum("...lim,...mjk->...lijk", gam, gam)
            - jnp.einsum("...ljm,...mik->...lijk", gam, gam)
        )

    @property
    def riemann(self) -> Float[Array, "n n n n"]:
        r"""$R_{ijkl} = g_{lm} R^m{}_{ijk}$."""
        return jnp.einsum("...lm,...mijk->...ijkl", self.metric, self.riemann_up)

    @property
    def ricci(self) -> Float[Array, "n n"]:
        r"""$R_{jk} = R^i{}_{ijk}$."""
        return jnp.einsum("...iijk->...jk", self.riemann_up)

    @property
    def scalar(self) -> Float[Array, ""]:
        r"""$R = g^{jk} R_{jk}$."""
        return jnp.einsum("...jk,...jk->...", self.inverse, self.ricci)

    @property
    def volume_density(self) -> Float[Array, ""]:
        r"""$\sqrt{\det g}$."""
        return jnp.sqrt(jnp.linalg.det(self.metric))


def _check_positive(g: Float[Array, "n n"]) -> Float[Array, "n n"]:
    finite = jnp.all(jnp.isfinite(g))
    g = eqx.error_if(g, ~finite, "metric has a non-finite component at an evaluation point")
    smallest = jnp.linalg.eigvalsh(jnp.where(finite, g, 1.0))[0]
    return eqx.error_if(
        g, ~(smallest > 0), "metric is not positive definite at an evaluation point"
    )


def _lowered_christoffel(dg: Float[Array, "n n n"]) -> Float[Array, "n n n"]:
    r"""$\Gamma_{lij} = \tfrac12(\partial_i g_{jl} + \partial_j g_{il} - \partial_l g_{ij})$ from `dg[i, j, l]` (trailing axes carried)."""
    return 0.5 * (
        jnp.einsum("jli...->lij...", dg)
        + jnp.einsum("ilj...->lij...", dg)
        - jnp.einsum("ijl...->lij...", dg)
    )


def chart_geometry(
    chart_metric: ChartMetric, u: ChartVector, *, check: bool = True
) -> LocalGeometry:
    r"""`LocalGeometry` of the metric $g_{ij}(u)$ given in coordinates, at `u`.

    Uses forward-mode AD twice (second derivatives of $g$). With `check`, raises
    at run time (`eqx.error_if`) if $g(u)$ is not symmetric (to 1e-10 relative: the
    Christoffel symbols assume it) or not positive definite, or its derivatives are not
    finite; flows turn the check off and stop by event.
    """

    def metric_and_aux(v):
        g = chart_metric(v)
        if check:
            asymmetry = jnp.max(jnp.abs(g - g.T))
            g = eqx.error_if(
                g,
                asymmetry > 1e-10 * jnp.max(jnp.abs(g)),
                "metric is not symmetric at an evaluation point",
            )
        return g, g

    def gamma_and_aux(v):
        dg, g = jax.jacfwd(metric_and_aux, has_aux=True)(v)
        if check:
            g = _check_positive(g)
        ginv = jnp.linalg.inv(g)
        gam = jnp.einsum("kl,lij->kij", ginv, _lowered_christoffel(dg))
        return gam, (g, ginv, dg, gam)

    dgam, (g, ginv, dg, gam) = jax.jacfwd(gamma_and_aux, has_aux=True)(u)
    if check:
        dgam = eqx.error_if(
            dgam,
            ~(jnp.all(jnp.isfinite(dg)) & jnp.all(jnp.isfinite(dgam))),
            "metric derivatives are not finite at an evaluation point (is the metric smooth there?)",
        )
    return LocalGeometry(g, ginv, dg, gam, dgam)


def geometry_from_jet(
    g: Float[Array, "n n"], dg: Float[Array, "n n n"], ddg: Float[Array, "n n n n"]
) -> LocalGeometry:
    r"""`LocalGeometry` from $g_{ij}$, $\partial_l g_{ij}$ (`dg[i, j, l]`) and $\partial_l\partial_m g_{ij}$ (`ddg[i, j, l, m]`).

    $\partial_m\Gamma^k_{ij} = \partial_m g^{kl}\,\Gamma_{lij} + g^{kl}\,\partial_m\Gamma_{lij}$,
    $\Gamma_{lij} = \tfrac12(\partial_i g_{jl} + \partial_j g_{il} - \partial_l g_{ij})$. No checks.
    """
    ginv = jnp.linalg.inv(g)
    lowered = _lowered_christoffel(dg)
    dlowered = _lowered_christoffel(ddg)  # [l, i, j, m] = d_m Gamma_lij
    dginv = -jnp.einsum("ka,abm,bl->klm", ginv, dg, ginv)
    gam = jnp.einsum("kl,lij->kij", ginv, lowered)
    dgam = jnp.einsum("klm,lij->kijm", dginv, lowered) + jnp.einsum("kl,lijm->kijm", ginv, dlowered)
    return LocalGeometry(g, ginv, dg, gam, dgam)


def local_geometry(metric: AbstractMetric, x: Point, *, check: bool | None = None) -> LocalGeometry:
    """`LocalGeometry` of `metric` at the point `x`, in the manifold's chart centred at `x`.

    `check` (default: the metric's own `check` flag, True for most metrics)
    attaches run-time positive-definiteness and finiteness checks.
    """
    if check is None:
        check = getattr(metric, "check", True)
    u0 = jnp.zeros((metric.manifold.dim,), dtype=x.dtype)
    return chart_geometry(lambda u: metric.in_chart(x, u), u0, check=check)


def nodal_geometry(metric: NodalMetric) -> LocalGeometry:
    """`LocalGeometry` at every node (batched), in the chart centred at each node; unchecked.

    From the manifold's `nodal_metric_jet`: FFT derivatives on tori, O(N log N);
    separable sums on $S^2$, O(N^{3/2}), and on $S^3$ (Fourier sums over both Hopf
    azimuths, then Jacobi sums, through the Hopf coordinates' chain rule), O(N^{4/3}).
    """
    return jax.vmap(geometry_from_jet)(*metric.manifold.nodal_metric_jet(metric.values))


def reference_geometry(manifold: AbstractManifold) -> LocalGeometry:
    r"""`LocalGeometry` of $g_\mathrm{ref}$ at every node, in the chart centred at each node."""
    u0 = jnp.zeros((manifold.dim,), dtype=manifold.nodes.dtype)
    return jax.vmap(
        lambda x: chart_geometry(lambda u: manifold.pull_back(manifold.reference, x, u), u0)
    )(manifold.nodes)


@eqx.filter_jit
def _geometry_batch(metric: AbstractMetric, points: Float[Array, "P D"]) -> LocalGeometry:
    return jax.vmap(lambda x: local_geometry(metric, x))(points)


@eqx.filter_jit
def _unchecked_batch(metric: AbstractMetric, points: Float[Array, "P D"]) -> LocalGeometry:
    return jax.vmap(lambda x: local_geometry(metric, x, check=False))(points)


def _checked_geometry(name: str, metric: AbstractMetric, points) -> LocalGeometry:
    """`_geometry_batch`; where its run-time check fails at concrete points, a `ValueError`
    naming the first point that fails and why (the check's own error is a JIT stack)."""
    try:
        return _geometry_batch(metric, points)
    except eqx.EquinoxRuntimeError:
        if is_traced(points):
            raise
        geometry = _unchecked_batch(metric, points)
        g = np.asarray(geometry.metric)
        finite = np.all(np.isfinite(g), axis=(1, 2))
        smallest = np.where(
            finite, np.linalg.eigvalsh(np.where(finite[:, None, None], g, 1.0))[:, 0], np.nan
        )
        smooth = np.all(np.isfinite(np.asarray(geometry.christoffel_derivative)), axis=(1, 2, 3, 4))
        smooth &= np.all(np.isfinite(np.asarray(geometry.metric_derivative)), axis=(1, 2, 3))
        for i in range(len(g)):
            if not finite[i]:
                why = "has a non-finite component"
            elif np.max(np.abs(g[i] - g[i].T)) > 1e-10 * np.max(np.abs(g[i])):
                why = "is not symmetric"  # chart_geometry's own criterion
            elif not smallest[i] > 0:
                why = f"is not positive definite (smallest eigenvalue {smallest[i]:.3g})"
            elif not smooth[i]:
                why = "is not smooth: its derivatives are not finite"
            else:
                continue
            raise ValueError(
                f"{name}: the metric {why} at point {i}, {np.asarray(points[i]).tolist()}."
            ) from None
        raise


@eqx.filter_jit
def _function_jet_batch(
    manifold: AbstractManifold, f: Callable[[Point], Scalar], points: Float[Array, "P D"]
) -> tuple[Float[Array, "P n"], Float[Array, "P n n"]]:
    """First and second derivatives of f in the chart at each point (u = 0)."""

    return jax.vmap(lambda x: manifold.chart_jet(f, x))(points)


def _as_function(manifold: AbstractManifold, f) -> Callable[[Point], Scalar]:
    if callable(f):
        return f
    f = jnp.asarray(f)
    if f.shape != manifold.weights.shape:
        raise ValueError(
            f"a scalar field on {manifold!r} is a function of a point or nodal values of shape "
            f"{manifold.weights.shape}; got an array of shape {f.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(f))):
        raise ValueError(
            f"a scalar field's nodal value {int(jnp.argmin(jnp.isfinite(f)))} is not finite."
        )
    return SpectralInterpolant(manifold, f)


def _points(name: str, metric: AbstractMetric, x) -> tuple[Float[Array, "P D"], tuple[int, ...]]:
    """Validate arguments; flatten points (D,) or (..., D) to (P, D), P >= 1, and return the batch shape."""
    if not isinstance(metric, AbstractMetric):
        raise ValueError(f"{name}: expected a metric module, got {type(metric).__name__}.")
    manifold = metric.manifold
    x = jnp.asarray(x)
    d = manifold.ambient_dim
    if x.ndim == 0 or x.shape[-1] != d:
        raise ValueError(
            f"{name}: points on {manifold!r} have {d} components; got an array of shape {x.shape}."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name}: points must be floating point, got dtype {x.dtype}.")
    flat = x.reshape(-1, d)
    if flat.shape[0] == 0:
        raise ValueError(
            f"{name}: the point set is empty (shape {x.shape}); pass at least one point."
        )
    manifold.check_points(flat, name)
    return flat, x.shape[:-1]


@eqx.filter_jit
def _derived(quantity: Callable, manifold: AbstractManifold, points, geometry, *jets):
    return jax.vmap(lambda x, g, *j: quantity(manifold, x, g, *j))(points, geometry, *jets)


def _pointwise(quantity: Callable, name: str, with_function: bool = False):
    """Build a public function of (metric, [f,] x) from a quantity of the local geometry.

    The expensive part (second derivatives of the metric through its
    interpolant) is compiled once per metric type and batch shape and shared by
    every quantity; the quantity itself is a cheap function of `LocalGeometry`.
    """

    def public(metric: AbstractMetric, *args):
        if with_function:
            if len(args) != 2:
                raise TypeError(f"{name}(metric, f, x) takes a scalar field f and points x.")
            f, x = args
        else:
            if len(args) != 1:
                raise TypeError(f"{name}(metric, x) takes points x.")
            (x,) = args
        flat, batch = _points(name, metric, x)
        manifold = metric.manifold
        geometry = _checked_geometry(name, metric, flat)
        jets = ()
        if with_function:
            jets = _function_jet_batch(manifold, _as_function(manifold, f), flat)
            if jets[0].shape != (flat.shape[0], manifold.dim):
                raise ValueError(
                    f"{name}: f must be a scalar field (a number at each point), got values "
                    f"of shape {jets[0].shape[1:-1]} at a point."
                )
        out = _derived(quantity, manifold, flat, geometry, *jets)
        return out.reshape(batch + out.shape[1:])

    public.__name__ = name
    return public


def covariant_hessian(geom: LocalGeometry, grad, hess) -> Float[Array, "n n"]:
    r"""$\nabla_a\nabla_b f = \partial_a\partial_b f - \Gamma^c_{ab}\partial_c f$ from a function's chart jet."""
    return hess - jnp.einsum("cab,c->ab", geom.christoffel, grad)


def log_jet(w, dw, ddw):
    r"""The chart jet of $\log w$ from that of a positive $w$: $\partial w/w$, $\partial\partial w/w - \partial w\,\partial w^\top/w^2$."""
    return dw / w, ddw / w - jnp.outer(dw, dw) / w**2


def log_density_jet(geom: LocalGeometry, ref: LocalGeometry):
    r"""The chart jet of $\log(dV_g/d\mu)$: $\partial_a = \Gamma^k_{ka} - \bar\Gamma^k_{ka}$, and its derivative (symmetrised)."""
    grad = jnp.einsum("kka->a", geom.christoffel) - jnp.einsum("kka->a", ref.christoffel)
    hess = jnp.einsum("kkab->ab", geom.christoffel_derivative) - jnp.einsum(
        "kkab->ab", ref.christoffel_derivative
    )
    return grad, 0.5 * (hess + hess.T)


christoffel = _pointwise(lambda m, x, geom: geom.christoffel, "christoffel")
christoffel.__doc__ = r"""$\Gamma^k_{ij}$ at `x` (shape (..., D)), as `[..., k, i, j]`, in the chart centred at `x`."""

riemann = _pointwise(lambda m, x, geom: geom.riemann, "riemann")
riemann.__doc__ = r"""Covariant $R_{ijkl}$ at `x`, in the chart centred at `x` (frame orthonormal for $g_\mathrm{ref}$)."""

ricci = _pointwise(lambda m, x, geom: m.to_representation(x, geom.ricci), "ricci")
ricci.__doc__ = r"""Ricci tensor $R_{jk}$ at `x`, in the representation (ambient on spheres), shape (..., D, D)."""

scalar_curvature = _pointwise(lambda m, x, geom: geom.scalar, "scalar_curvature")
scalar_curvature.__doc__ = r"""Scalar curvature $R = g^{jk}R_{jk}$ at `x`, shape (...)."""

volume_density = _pointwise(lambda m, x, geom: geom.volume_density, "volume_density")
volume_density.__doc__ = (
    r"""$dV_g/d\mu$ at `x`: $\sqrt{\det g}$ in a $g_\mathrm{ref}$-orthonormal frame."""
)

gradient = _pointwise(
    lambda m, x, geom, grad, hess: m.frame(x) @ (geom.inverse @ grad),
    "gradient",
    with_function=True,
)
gradient.__doc__ = r"""$\nabla f = g^{ab}\partial_b f\,\partial_a$ at `x`, a vector in the representation.

`f` is a function of a point, or nodal values (interpolated spectrally)."""

hessian = _pointwise(
    lambda m, x, geom, grad, hess: m.to_representation(x, covariant_hessian(geom, grad, hess)),
    "hessian",
    with_function=True,
)
hessian.__doc__ = r"""$\nabla_a\nabla_b f = \partial_a\partial_b f - \Gamma^c_{ab}\partial_c f$ at `x`, in the representation.

`f` is a function of a point, or nodal values (interpolated spectrally)."""

laplacian = _pointwise(
    lambda m, x, geom, grad, hess: jnp.einsum(
        "ab,ab->", geom.inverse, covariant_hessian(geom, grad, hess)
    ),
    "laplacian",
    with_function=True,
)
laplacian.__doc__ = r"""$\Delta_g f = g^{ab}\nabla_a\nabla_b f$ at `x` (non-positive spectrum).

`f` is a function of a point, or nodal values (interpolated spectrally)."""
