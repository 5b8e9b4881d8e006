r"""Nodal metrics: components given at the nodes, evaluated anywhere through the spectral series.

`SpectralInterpolant` carries nodal values of any field as spectral
coefficients; `NodalMetric` is the metric whose component field that is (the
state of every flow). The constructors `reference_metric`, `conformal_metric`
and `random_metric` (with its traced-amplitude form `RandomPerturbation`) build
the initial metrics of tests and experiments.
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._manifolds import AbstractManifold
from .._misc import check_key, is_traced, real_scalar
from .._types import Matrix, Point
from .base import AbstractMetric, check_nodal_values, evaluate_at, packed_size, unpack_symmetric


@eqx.filter_jit
def _transform(manifold: AbstractManifold, values: Array) -> Any:
    return manifold.transform(values)


class SpectralInterpolant(eqx.Module):
    """Nodal values of a field, evaluated anywhere through the manifold's spectral series.

    Trigonometric interpolation on tori; on spheres the quadrature projection
    onto harmonics of degree <= `band_limit`, which passes through the nodal
    values only when they are band-limited (`manifold.interpolates`). Exact (to
    rounding) for fields band-limited to `manifold.band_limit`; for other
    smooth fields the error falls spectrally with the resolution.
    """

    manifold: AbstractManifold
    coefficients: Any

    def __init__(self, manifold: AbstractManifold, values: Float[Array, "N *shape"]):
        self.manifold = manifold
        self.coefficients = _transform(manifold, jnp.asarray(values))

    def __call__(self, x: Point) -> Float[Array, "*shape"]:
        return self.manifold.evaluate(self.coefficients, x)


class NodalMetric(AbstractMetric):
    r"""A metric given by its components at the nodes, interpolated spectrally.

    Between nodes the components are the manifold's spectral series of the
    nodal values (trigonometric interpolation on tori; on spheres the
    quadrature projection of each ambient component onto harmonics of degree
    <= `band_limit`), so derivatives of every order are exact for band-limited
    metrics. On spheres the projection has fewer functions than there are
    nodes; concrete values that it does not reproduce to `rtol` are refused,
    so the metric evaluated at a node is the metric that was checked there.

    **Arguments:**

    - `manifold`: the manifold whose nodes the values live on.
    - `values`: shape (N, D, D), symmetric, positive definite on each tangent
      space. Checked: a bad node raises `ValueError` naming it.
    - `rtol`: on spheres, the largest accepted difference between the spectral
      series at the nodes and `values`, relative to max |values| (checked
      for concrete values; traced values are not checked), and at least 100
      times the dtype's machine epsilon (float32: 1.2e-5). `math.inf` accepts
      any values. The check cannot see content that depends on the polar
      coordinate alone: the Gauss rule's latitudes interpolate the zonal
      harmonics, so any function of $x_D$ is reproduced at the nodes whatever
      it does between them (the same data about another axis is refused). A
      field given as a function is better checked between nodes
      (`conformal_metric`'s `rtol`).
    - `check`: False skips every check (flows use it for their state, which
      they check by events instead; a failed check there must stop the solve
      cleanly, not raise).
    """

    manifold: AbstractManifold
    values: Float[Array, "N D D"]
    interpolant: SpectralInterpolant
    check: bool = eqx.field(static=True)

    def __init__(
        self,
        manifold: AbstractManifold,
        values: Float[Array, "N D D"],
        *,
        rtol: float = 1e-8,
        check: bool = True,
    ):
        if check:
            values = check_nodal_values(manifold, values)
            value = real_scalar(rtol)
            if value is None or math.isnan(value) or not value > 0:
                raise ValueError(f"NodalMetric: rtol must be a number > 0 (or inf), got {rtol!r}.")
            rtol = value
        values = jnp.asarray(values)
        self.manifold = manifold
        self.values = values
        self.check = bool(check)
        self.interpolant = SpectralInterpolant(manifold, values)
        if check and not manifold.interpolates and not is_traced(values):
            # the series at the nodes by the manifold's own synthesis (separable on spheres:
            # summing every harmonic at every node costs O(N M) time and memory)
            series = manifold.synthesize(self.interpolant.coefficients)
            error = jnp.max(jnp.abs(series - values), axis=(1, 2))
            scale = float(jnp.max(jnp.abs(values)))
            # never below the transforms' rounding in the values' dtype (float32: 1.2e-5)
            rtol = max(rtol, 100 * float(jnp.finfo(values.dtype).eps))
            if float(jnp.max(error)) > rtol * scale:
                a = int(jnp.argmax(error))
                raise ValueError(
                    f"NodalMetric: the nodal values are not band-limited to degree "
                    f"{manifold.band_limit} on {manifold!r}: the spectral series misses them by "
                    f"{float(error[a]):.2e} at node {a} (relative tolerance {rtol:.0e}). Raise the "
                    "degree, smooth the values, or build them from a band-limited field."
                )

    def __call__(self, x: Point) -> Matrix:
        # The symmetric part: nodal values are symmetric, but a derivative in the
        # values (a functional derivative) must not see an antisymmetric direction.
        a = self.interpolant(x)
        return (a + a.T) / 2

    def at_nodes(self) -> Float[Array, "N D D"]:
        return self.values


def reference_metric(manifold: AbstractManifold) -> NodalMetric:
    r"""$g_\mathrm{ref}$ as a nodal metric."""
    return NodalMetric(manifold, manifold.reference_at_nodes())


def _resolution_check(
    manifold: AbstractManifold, fn: Callable, values: Array, rtol: float, what: str
) -> None:
    """Compare the interpolant of `values` with `fn` at seeded off-grid points."""
    pts = manifold.sample(jax.random.key(0), 16).astype(values.dtype)
    interp = SpectralInterpolant(manifold, values)
    exact = evaluate_at(fn, pts)
    err = float(jnp.max(jnp.abs(evaluate_at(interp, pts) - exact)))
    scale = float(jnp.max(jnp.abs(exact))) + 1e-300
    if not err <= rtol * scale:
        raise ValueError(
            f"{what} is not resolved by {manifold!r}: its spectral interpolant is off by "
            f"{err:.2e} (relative {err / scale:.2e} > rtol={rtol:.0e}) between nodes; "
            "raise the resolution or smooth the field."
        )


def conformal_metric(
    manifold: AbstractManifold,
    u: Float[Array, " N"] | Callable[[Point], Float[Array, ""]],
    *,
    rtol: float | None = 1e-8,
) -> NodalMetric:
    r"""$e^{2u} g_\mathrm{ref}$ as a nodal metric.

    **Arguments:**

    - `u`: the conformal exponent, as nodal values (N,) or a function of a point.
    - `rtol`: the largest relative interpolation error of $e^{2u}$ accepted: when
      `u` is a function, between nodes (checked at 16 seeded points); on spheres
      also at the nodes (`NodalMetric`'s check). A coarser grid raises
      `ValueError`. `None` skips both checks.
    """
    if callable(u):
        fn = u

        def factor(x):
            value = fn(x)
            if jnp.shape(value) != ():
                raise ValueError(
                    f"conformal_metric: u must return a scalar at a point, got shape {jnp.shape(value)}."
                )
            return jnp.exp(2 * value)

        conformal = evaluate_at(factor, manifold.nodes)
        if rtol is not None:
            _resolution_check(manifold, factor, conformal, rtol, "conformal factor exp(2u)")
    else:
        u = jnp.asarray(u)
        if u.shape != manifold.weights.shape:
            raise ValueError(
                f"conformal_metric: nodal u on {manifold!r} must have shape "
                f"{manifold.weights.shape}, got {u.shape}."
            )
        conformal = jnp.exp(2 * u)
    return NodalMetric(
        manifold,
        conformal[:, None, None] * manifold.reference_at_nodes(),
        rtol=math.inf if rtol is None else rtol,
    )


class RandomPerturbation(eqx.Module):
    r"""The component field $A(x) = g_\mathrm{ref}(x) + a H(x)$ of a random smooth metric.

    $H$ is a symmetric matrix field whose $D(D+1)/2$ independent components are
    seeded random fields band-limited to `band_limit` (`manifold.random_field`),
    each bounded by $1/D$ everywhere, so $\|H(x)\|_2 \le \|H(x)\|_F \le 1$: for
    `amplitude` $a < 1$ the metric is positive definite everywhere with
    eigenvalues in $[1-a, 1+a]$. The same key gives the same field on every
    resolution of the manifold. Use it as a network in `NetworkMetric` for the
    exact metric, or through `random_metric` for its nodal version.
    """

    manifold: AbstractManifold
    field: Callable[[Point], Float[Array, " p"]]
    amplitude: Float[Array, ""]

    def __init__(
        self,
        manifold: AbstractManifold,
        key: PRNGKeyArray,
        band_limit: int = 2,
        amplitude: float = 0.3,
    ):
        if not isinstance(manifold, AbstractManifold):
            raise ValueError(f"random_metric: manifold must be a flows manifold, got {manifold!r}.")
        check_key(key, "random_metric")
        value = real_scalar(amplitude)
        if value is None or not 0 < value < 1:
            raise ValueError(
                f"random_metric: amplitude must lie in (0, 1) to keep the metric positive definite, got {amplitude!r}."
            )
        self.manifold = manifold
        self.field = manifold.random_field(key, band_limit, (packed_size(manifold.ambient_dim),))
        # an array (one compilation for every amplitude) in the nodes' dtype: a float32 amplitude
        # must not promote a float64 metric, nor a float64 one a float32 metric
        self.amplitude = jnp.asarray(value, dtype=manifold.nodes.dtype)

    def __call__(self, x: Point) -> Matrix:
        d = self.manifold.ambient_dim
        h = unpack_symmetric(self.field(x), d) / d
        return self.manifold.reference(x) + self.amplitude * h


def random_metric(
    manifold: AbstractManifold, key: PRNGKeyArray, band_limit: int = 2, amplitude: float = 0.3
) -> NodalMetric:
    """A seeded random smooth band-limited perturbation of $g_\\mathrm{ref}$, as a nodal metric.

    See `RandomPerturbation` for the construction and bounds. Raises
    `ValueError` if the manifold does not resolve `band_limit`.
    """
    if not isinstance(manifold, AbstractManifold):
        raise ValueError(f"random_metric: manifold must be a flows manifold, got {manifold!r}.")
    manifold.check_resolves(band_limit, "random_metric")
    components = RandomPerturbation(manifold, key, band_limit, amplitude)
    return NodalMetric(manifold, evaluate_at(components, manifold.nodes))
