r"""The kernel contract: `AbstractKernel` and the checks every kernel shares.

A kernel $k(x, y)$ on a manifold gives
- `smooth(manifold, values)`: $\int k(x_a, y)\, V(y)\, d\mu(y)$ at the nodes, $V$
  the spectral series of the nodal `values` (what flows use);
- `apply(manifold, values, points=None)`: the quadrature sum
  $(K V)(x_p) = \sum_b w_b\, k(x_p, x_b)\, V_b$ at `points` (default: the nodes);
- `multiplier(manifold)`: its eigenvalue on each spectral slot, or None when it
  is not diagonal in the manifold's spectral basis;
- `is_local`: whether it is the local kernel $\delta$;
- `__call__(manifold, x, y)`: $k(x, y)$ itself.

Nodal values may have any trailing shape: a kernel acts on tensor components one
by one (docs/conventions.md, Normalisations and tensors). `apply` works in chunks
of rows under `lax.map`, so its memory is O(chunk x N), never an N x N array per
component. `smooth` is exact in the spectral basis where `multiplier` exists (FFT
on tori) and otherwise falls back on `apply`, projected onto the series on spheres;
on spheres tensors are smoothed ambient component by ambient component, which
commutes with rotations.
"""

import abc
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._manifolds import AbstractManifold
from .._types import Point, Scalar


def _check_manifold(kernel, manifold, what: str | None = None) -> None:
    """`ValueError` unless `manifold` is a manifold; `what` names the method (None: `__call__`)."""
    if not isinstance(manifold, AbstractManifold):
        name = type(kernel).__name__ + ("" if what is None else f".{what}")
        raise ValueError(f"{name}: manifold must be a manifold, got {manifold!r}.")


def _check_chunk(kernel, chunk) -> None:
    """`ValueError` unless `apply`'s `chunk` is an integer >= 1 (not a bool)."""
    if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
        raise ValueError(
            f"{type(kernel).__name__}.apply: chunk must be an integer >= 1, got {chunk!r}."
        )


def _check_nodal(kernel, manifold: AbstractManifold, values, what: str) -> None:
    """`ValueError` unless `values` has the nodes' leading axis and, when concrete, is finite.

    Traced values (a flow's state inside a solve) are not checked here: the solver's
    events stop on a non-finite state.
    """
    name = type(kernel).__name__
    _check_manifold(kernel, manifold, what)
    if jnp.shape(values)[:1] != manifold.weights.shape:
        raise ValueError(
            f"{name}.{what}: values on {manifold!r} must have leading axis "
            f"{manifold.weights.shape[0]} (one per node), got shape {jnp.shape(values)}."
        )
    if not isinstance(values, jax.core.Tracer):
        array = np.asarray(values)
        finite = np.isfinite(array).reshape(array.shape[0], -1).all(axis=1)
        if not finite.all():
            a = int(np.argmin(finite))
            raise ValueError(
                f"{name}.{what}: values are not finite at node {a}; "
                f"{int((~finite).sum())} of {finite.size} nodes fail."
            )


class AbstractKernel(eqx.Module):
    r"""A kernel $k(x, y)$ on a manifold, applied to nodal fields by quadrature."""

    @property
    def is_local(self) -> bool:
        r"""Whether this is the local kernel $\delta$ (the flow is then Perelman's/Ricci's own)."""
        return False

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"] | None:
        """The kernel's eigenvalue on each spectral slot, if it is diagonal there; else None."""
        _check_manifold(self, manifold, "multiplier")
        return None

    def smooth(
        self, manifold: AbstractManifold, values: Float[Array, "N *shape"]
    ) -> Float[Array, "N *shape"]:
        r"""$\int k(x_a, y)\, V(y)\, d\mu(y)$ at the nodes, $V$ the spectral series of `values`.

        Exact in the spectral basis where `multiplier` exists; otherwise by
        quadrature (`apply`), projected onto the series on spheres.
        """
        _check_nodal(self, manifold, values, "smooth")
        mult = self.multiplier(manifold)
        if mult is not None:
            return manifold.spectral_multiply(values, mult)
        out = self.apply(manifold, values)
        if not manifold.interpolates:
            out = manifold.spectral_multiply(out, jnp.ones_like(manifold.laplace_eigenvalues()))
        return out

    @abc.abstractmethod
    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        """$k(x, y)$."""

    def _check_quadrature(self, manifold: AbstractManifold) -> None:
        """Raise `ValueError` if `apply`'s quadrature over the nodes cannot resolve this kernel
        (by default every kernel is resolved; `GaussianKernel` checks its width)."""

    def apply(
        self,
        manifold: AbstractManifold,
        values: Float[Array, "N *shape"],
        points: Float[Array, "P D"] | None = None,
        *,
        chunk: int = 512,
    ) -> Float[Array, "P *shape"]:
        r"""$\sum_b w_b\, k(x_p, x_b)\, V_b$ at `points` (default: the nodes), `chunk` rows at a time."""
        _check_nodal(self, manifold, values, "apply")
        points = manifold.nodes if points is None else _check_points(self, manifold, points)
        _check_chunk(self, chunk)
        self._check_quadrature(manifold)
        p = points.shape[0]
        chunk = min(int(chunk), p)
        pad = (-p) % chunk
        padded = jnp.concatenate([points, jnp.broadcast_to(points[:1], (pad, points.shape[1]))])
        weighted = values * manifold.weights.reshape((-1,) + (1,) * (values.ndim - 1))

        def rows(block):
            k = jax.vmap(lambda x: jax.vmap(lambda y: self(manifold, x, y))(manifold.nodes))(block)
            return jnp.tensordot(k, weighted, axes=(1, 0))

        out = jax.lax.map(rows, padded.reshape(-1, chunk, points.shape[1]))
        return out.reshape((-1,) + values.shape[1:])[:p]


def _check_points(kernel, manifold: AbstractManifold, points) -> Float[Array, "P D"]:
    """`ValueError` unless `points` is a non-empty (P, D) array of finite points of `manifold`."""
    name = type(kernel).__name__
    d = manifold.nodes.shape[1]
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[1] != d or points.shape[0] < 1:
        raise ValueError(
            f"{name}.apply: points on {manifold!r} must be a non-empty array of shape (P, {d}), "
            f"got shape {points.shape}."
        )
    manifold.check_points(points, f"{name}.apply")
    return points
