r"""The metric contract: `AbstractMetric`, network-defined metrics, and the checks on metric values.

A metric gives its components $A(x)$ at any point, a $D \times D$ array in the
manifold's representation (chart components on tori; ambient components on
spheres, standing for $P_x A(x) P_x$; docs/conventions.md, Normalisations and
tensors), its values at the nodes (`at_nodes`), and its components in the chart
centred at a point (`in_chart`), from which curvature is differentiated.

Also here: the packing of symmetric matrices into their upper triangle
(`pack_symmetric`, `unpack_symmetric`), `check_nodal_values` (finite, symmetric,
positive definite on each tangent space, a determinant the precision can hold; a
warning when ill-conditioned) and `evaluate_at` (a function at a batch
of points, vmapped and jitted).
"""

import abc
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._manifolds import AbstractManifold
from .._misc import is_traced
from .._types import ChartMatrix, ChartVector, Matrix, Point


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


# A metric whose inverse carries a relative rounding error cond(g) * eps above this warns.
ILL_CONDITIONED_ERROR = 1e-3


@eqx.filter_jit
def _node_flags(manifold: AbstractManifold, values: Float[Array, "N D D"]):
    """Per node: finite, symmetric (to 100 eps), positive definite on the tangent space, its
    determinant and that determinant's inverse normal numbers, and the condition number."""
    asym = jnp.max(jnp.abs(values - jnp.swapaxes(values, -1, -2)), axis=(-1, -2))
    scale = jnp.max(jnp.abs(values), axis=(-1, -2))
    finite = jnp.all(jnp.isfinite(values), axis=(-1, -2))
    symmetric = asym <= 100 * jnp.finfo(values.dtype).eps * scale
    safe = jnp.where(finite[:, None, None], values, jnp.ones_like(values))
    eigenvalues = _tangential_eigenvalues(manifold, safe)
    positive = jnp.all(eigenvalues > 0, axis=-1)
    positive_eigenvalues = jnp.where(positive[:, None], eigenvalues, jnp.ones_like(eigenvalues))
    log_det = jnp.sum(jnp.log(positive_eigenvalues), axis=-1)
    info = jnp.finfo(values.dtype)
    representable = (log_det > float(np.log(info.tiny))) & (log_det < float(np.log(info.max)))
    condition = positive_eigenvalues[:, -1] / positive_eigenvalues[:, 0]
    return finite, symmetric, positive, representable, condition


@eqx.filter_jit
def evaluate_at(fn: Callable[[Point], Array], points: Float[Array, "M D"]) -> Array:
    """`fn` at each of `points` (vmapped and jitted); an empty (0, D) batch gives an empty result."""
    return jax.vmap(fn)(points)


def check_nodal_values(
    manifold: AbstractManifold, values: Float[Array, "N D D"], name: str = "metric"
) -> Float[Array, "N D D"]:
    r"""Check shape, finiteness, symmetry and positive definiteness of nodal metric values.

    Shape and dtype mistakes raise `ValueError` (the dtype must be the manifold's
    floating dtype, e.g. float64 under `jax_enable_x64`). Value problems raise
    `ValueError` naming the first bad node when `values` is concrete, and are
    attached with `eqx.error_if` when traced (use the returned array). Value
    problems: a non-finite or asymmetric entry, a non-positive eigenvalue on the
    tangent space, and a determinant $\det g$ outside the dtype's normal range
    (from `finfo.tiny` to `finfo.max`: beyond it $\sqrt{\det g}$ or $g^{-1}$
    overflows or underflows; $T^3$ scaled by $10^{150}$ is one). A concrete metric
    whose condition number $\kappa$ has $\kappa\,\epsilon > 10^{-3}$ warns: its
    inverse and curvature carry relative rounding errors of about $\kappa\,\epsilon$.
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
    finite, symmetric, positive, representable, condition = _node_flags(manifold, values)
    info = jnp.finfo(values.dtype)
    too_far = (
        f"has a determinant outside {info.dtype.name}'s normal range "
        f"[{float(info.tiny):.1e}, {float(info.max):.1e}] (its volume density or inverse "
        "would overflow or underflow; rescale the metric)"
    )
    if is_traced(values):
        values = eqx.error_if(values, ~jnp.all(finite), f"{name}: non-finite nodal value")
        values = eqx.error_if(values, ~jnp.all(symmetric), f"{name}: nodal values not symmetric")
        values = eqx.error_if(
            values, ~jnp.all(positive), f"{name}: not positive definite at some node"
        )
        return eqx.error_if(values, ~jnp.all(representable), f"{name} {too_far} at some node")
    for ok, what in (
        (finite, "is not finite"),
        (symmetric, "is not symmetric"),
        (positive, "is not positive definite on the tangent space"),
        (representable, too_far),
    ):
        ok = np.asarray(ok)
        if not ok.all():
            a = int(np.argmin(ok))
            raise ValueError(
                f"{name} {what} at node {a} (x = {np.asarray(manifold.nodes[a]).tolist()}); "
                f"{int((~ok).sum())} of {ok.size} nodes fail."
            )
    worst = float(jnp.max(condition))
    if worst * float(info.eps) > ILL_CONDITIONED_ERROR:
        a = int(jnp.argmax(condition))
        warnings.warn(
            f"{name} is ill-conditioned: condition number {worst:.1e} at node {a} "
            f"(x = {np.asarray(manifold.nodes[a]).tolist()}), so its inverse, and every "
            f"curvature, carries relative rounding errors of about {worst * float(info.eps):.0e} "
            f"in {info.dtype.name}.",
            stacklevel=2,
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
