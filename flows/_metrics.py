"""Metric modules: nodal (spectrally interpolated) and network/function-defined metrics."""

import abc
import math
import numbers
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._manifolds import AbstractManifold
from ._misc import check_key, is_traced
from ._types import ChartMatrix, ChartVector, Matrix, Point


def packed_size(d: int) -> int:
    """Number of independent components of a symmetric d x d matrix."""
    return d * (d + 1) // 2


def unpack_symmetric(packed: Float[Array, " p"], d: int) -> Float[Array, "d d"]:
    """The symmetric matrix whose upper triangle, row by row, is `packed`."""
    i, j = np.triu_indices(d)
    out = jnp.zeros((d, d), dtype=packed.dtype).at[i, j].set(packed)
    return out.at[j, i].set(packed)


def pack_symmetric(matrix: Float[Array, "d d"]) -> Float[Array, " p"]:
    """The upper triangle of `matrix`, row by row (inverse of `unpack_symmetric`)."""
    return matrix[np.triu_indices(matrix.shape[-1])]


def _tangential_eigenvalues(
    manifold: AbstractManifold, values: Float[Array, "N D D"]
) -> Float[Array, "N n"]:
    return jnp.linalg.eigvalsh(manifold.tangential(values))


@eqx.filter_jit
def _node_flags(manifold: AbstractManifold, values: Float[Array, "N D D"]):
    """Per node: finite, symmetric (to 100 eps), positive definite on the tangent space."""
    asym = jnp.max(jnp.abs(values - jnp.swapaxes(values, -1, -2)), axis=(-1, -2))
    scale = jnp.max(jnp.abs(values), axis=(-1, -2))
    finite = jnp.all(jnp.isfinite(values), axis=(-1, -2))
    symmetric = asym <= 100 * jnp.finfo(values.dtype).eps * scale
    safe = jnp.where(finite[:, None, None], values, jnp.ones_like(values))
    positive = jnp.all(_tangential_eigenvalues(manifold, safe) > 0, axis=-1)
    return finite, symmetric, positive


@eqx.filter_jit
def evaluate_at(fn: Callable[[Point], Array], points: Float[Array, "M D"]) -> Array:
    """`fn` at each of `points` (vmapped and jitted); an empty (0, D) batch gives an empty result."""
    return jax.vmap(fn)(points)


@eqx.filter_jit
def _transform(manifold: AbstractManifold, values: Array) -> Any:
    return manifold.transform(values)


def check_nodal_values(
    manifold: AbstractManifold, values: Float[Array, "N D D"], name: str = "metric"
) -> Float[Array, "N D D"]:
    """Check shape, finiteness, symmetry and positive definiteness of nodal metric values.

    Shape and dtype mistakes raise `ValueError` (the dtype must be the manifold's
    floating dtype, e.g. float64 under `jax_enable_x64`). Value problems raise
    `ValueError` naming the first bad node when `values` is concrete, and are
    attached with `eqx.error_if` when traced (use the returned array).
    """
    if not isinstance(manifold, AbstractManifold):
        raise ValueError(f"{name}: manifold must be a flows manifold, got {manifold!r}.")
    if not isinstance(values, jax.Array):
        try:
            values = jnp.asarray(values)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}: nodal values must be an array of numbers, got {type(values).__name__}."
            ) from None
    d = manifold.ambient_dim
    expected = (manifold.nodes.shape[0], d, d)
    if values.shape != expected:
        raise ValueError(
            f"{name}: nodal values on {manifold!r} must have shape {expected} "
            f"(nodes, {d}, {d}), got {values.shape}."
        )
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise ValueError(f"{name}: nodal values must be floating point, got dtype {values.dtype}.")
    if values.dtype != manifold.nodes.dtype:
        raise ValueError(
            f"{name}: nodal values have dtype {values.dtype} but {manifold!r} has "
            f"{manifold.nodes.dtype} nodes; cast them with .astype({manifold.nodes.dtype.name})."
        )
    finite, symmetric, positive = _node_flags(manifold, values)
    if is_traced(values):
        values = eqx.error_if(values, ~jnp.all(finite), f"{name}: non-finite nodal value")
        values = eqx.error_if(values, ~jnp.all(symmetric), f"{name}: nodal values not symmetric")
        return eqx.error_if(
            values, ~jnp.all(positive), f"{name}: not positive definite at some node"
        )
    for ok, what in (
        (finite, "is not finite"),
        (symmetric, "is not symmetric"),
        (positive, "is not positive definite on the tangent space"),
    ):
        ok = np.asarray(ok)
        if not ok.all():
            a = int(np.argmin(ok))
            raise ValueError(
                f"{name} {what} at node {a} (x = {np.asarray(manifold.nodes[a]).tolist()}); "
                f"{int((~ok).sum())} of {ok.size} nodes fail."
            )
    return values


class AbstractMetric(eqx.Module):
    r"""A Riemannian metric on a manifold, given by its component field.

    `metric(x)` returns the $D \times D$ components $A(x)$ in the manifold's
    representation (chart components on tori; ambient components on spheres,
    standing for $P_x A(x) P_x$). The components in the chart $\varphi_x$ at
    $u$ are the pull-back $J^\top A(\varphi_x(u)) J$, $J = \partial\varphi_x/\partial u$.
    """

    manifold: eqx.AbstractVar[AbstractManifold]

    @abc.abstractmethod
    def __call__(self, x: Point) -> Matrix:
        """Components $A(x)$ in the representation, shape (D, D)."""

    def at_nodes(self) -> Float[Array, "N D D"]:
        """Components at every node of the manifold."""
        return evaluate_at(self, self.manifold.nodes)

    def in_chart(self, x: Point, u: ChartVector) -> ChartMatrix:
        r"""$g_{ab}(u) = J^\top A(\varphi_x(u)) J$: components in the chart centred at `x`."""
        return self.manifold.pull_back(self, x, u)


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
      for concrete values; traced values are not checked).
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
            if not (
                isinstance(rtol, numbers.Real)
                and not isinstance(rtol, bool)
                and math.isfinite(rtol)
                and rtol > 0
            ):
                raise ValueError(f"NodalMetric: rtol must be a finite number > 0, got {rtol!r}.")
        values = jnp.asarray(values)
        self.manifold = manifold
        self.values = values
        self.check = bool(check)
        self.interpolant = SpectralInterpolant(manifold, values)
        if check and not manifold.interpolates and not is_traced(values):
            series = evaluate_at(self.interpolant, manifold.nodes)
            error = jnp.max(jnp.abs(series - values), axis=(1, 2))
            scale = float(jnp.max(jnp.abs(values)))
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


class NetworkMetric(AbstractMetric):
    r"""A metric whose components are the output of a network (any callable Equinox module).

    `network(x)` returns either the $D(D+1)/2$ independent components of
    $A(x)$, the upper triangle row by row (see `unpack_symmetric`), or a
    $D \times D$ array of which the symmetric part $(A + A^\top)/2$ is used. Positive
    definiteness cannot be checked everywhere; `check()` checks it at the
    nodes, and curvature routines check it at every point they use.

    **Arguments:**

    - `manifold`: the manifold.
    - `network`: a callable, $\mathbb{R}^D \to \mathbb{R}^{D(D+1)/2}$ or
      $\mathbb{R}^{D \times D}$.
    """

    manifold: AbstractManifold
    network: Callable[[Point], Float[Array, " p"]]

    def __init__(self, manifold: AbstractManifold, network: Callable):
        if not callable(network):
            raise ValueError(f"NetworkMetric: network must be callable, got {type(network)}.")
        self.manifold = manifold
        self.network = network

    def __call__(self, x: Point) -> Matrix:
        d = self.manifold.ambient_dim
        out = self.network(x)
        if out.shape == (d, d):
            return (out + out.T) / 2
        if out.shape != (packed_size(d),):
            raise ValueError(
                f"NetworkMetric on {self.manifold!r}: the network must return the "
                f"{packed_size(d)} upper-triangular components of a {d}x{d} symmetric matrix, "
                f"shape ({packed_size(d)},), or a ({d}, {d}) array; it returned shape {out.shape}."
            )
        return unpack_symmetric(out, d)

    def check(self) -> "NetworkMetric":
        """Raise `ValueError` if the metric is not finite, symmetric positive definite at a node."""
        check_nodal_values(self.manifold, self.at_nodes(), name="NetworkMetric")
        return self


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
    - `rtol`: when `u` is a function, the largest relative interpolation error of
      $e^{2u}$ between nodes that is accepted (checked at 16 seeded points); a
      coarser grid raises `ValueError`. `None` skips the check.
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
    return NodalMetric(manifold, conformal[:, None, None] * manifold.reference_at_nodes())


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
        if not (
            isinstance(amplitude, numbers.Real)
            and not isinstance(amplitude, bool)
            and 0 < amplitude < 1
        ):
            raise ValueError(
                f"amplitude must lie in (0, 1) to keep the metric positive definite, got {amplitude!r}."
            )
        self.manifold = manifold
        self.field = manifold.random_field(key, band_limit, (packed_size(manifold.ambient_dim),))
        self.amplitude = jnp.asarray(amplitude)  # an array: one compilation for every amplitude

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
