r"""Scalar kernels $k(x, y)$ on a manifold and their application by quadrature.

`apply` computes $(K V)(x_p) = \sum_b w_b\, k(x_p, x_b)\, V_b$ for nodal values
$V$ with any trailing shape (the componentwise action of a kernel on tensor
components, `shared/DESIGN.md` §2), in chunks of rows under `lax.map`, so the
memory is O(chunk x N), never an N x N array per component.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from jaxtyping import Array, Float

from ._manifolds import AbstractManifold, Sphere, Torus
from ._types import Point, Scalar


class AbstractKernel(eqx.Module):
    r"""A kernel $k(x, y)$ on a manifold, applied to nodal fields by quadrature."""

    @abc.abstractmethod
    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        """$k(x, y)$."""

    def apply(
        self,
        manifold: AbstractManifold,
        values: Float[Array, "N *shape"],
        points: Float[Array, "P D"] | None = None,
        *,
        chunk: int = 512,
    ) -> Float[Array, "P *shape"]:
        r"""$\sum_b w_b\, k(x_p, x_b)\, V_b$ at `points` (default: the nodes), `chunk` rows at a time."""
        if values.shape[:1] != manifold.weights.shape:
            raise ValueError(
                f"{type(self).__name__}.apply: values on {manifold!r} must have leading axis "
                f"{manifold.weights.shape[0]}, got shape {values.shape}."
            )
        points = manifold.nodes if points is None else points
        p = points.shape[0]
        chunk = max(1, min(int(chunk), p))
        pad = (-p) % chunk
        padded = jnp.concatenate([points, jnp.broadcast_to(points[:1], (pad, points.shape[1]))])
        weighted = values * manifold.weights.reshape((-1,) + (1,) * (values.ndim - 1))

        def rows(block):
            k = jax.vmap(lambda x: jax.vmap(lambda y: self(manifold, x, y))(manifold.nodes))(block)
            return jnp.tensordot(k, weighted, axes=(1, 0))

        out = jax.lax.map(rows, padded.reshape(-1, chunk, points.shape[1]))
        return out.reshape((-1,) + values.shape[1:])[:p]


class GaussianKernel(AbstractKernel):
    r"""The normalised Gaussian $k_\sigma(x, y) = e^{-d(x,y)^2/2\sigma^2} / Z_\sigma$, $\int k_\sigma\, d\mu = 1$.

    $d$ is the geodesic distance of $g_\mathrm{ref}$; $Z_\sigma$ is constant on
    these homogeneous spaces and computed exactly, not by the grid's quadrature:
    - torus: the periodised Gaussian $(2\pi\sigma^2)^{-n/2}\sum_{m} e^{-|x - y + 2\pi m|^2/2\sigma^2}$,
      whose Fourier multiplier is exactly $e^{-\sigma^2|k|^2/2}$;
    - sphere $S^n$: $Z_\sigma = |S^{n-1}| \int_0^\pi e^{-\theta^2/2\sigma^2}\sin^{n-1}\theta\, d\theta$.
    As $\sigma \to 0$, $k_\sigma \to \delta$ (the local kernel).

    **Arguments:** `sigma` > 0, the width.
    """

    sigma: float = eqx.field(static=True)

    def __init__(self, sigma: float):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"GaussianKernel: sigma must be a finite number > 0, got {sigma!r}.")
        self.sigma = float(sigma)

    def normaliser(self, manifold: AbstractManifold) -> float:
        r"""$Z_\sigma$ on `manifold` (torus: $(2\pi\sigma^2)^{n/2}$)."""
        s = self.sigma
        if isinstance(manifold, Torus):
            return (2 * math.pi * s**2) ** (manifold.dim / 2)
        if isinstance(manifold, Sphere):
            n = manifold.dim
            sphere_area = 2 * math.pi ** (n / 2) / math.gamma(n / 2)  # |S^{n-1}|
            radial, _ = scipy.integrate.quad(
                lambda t: math.exp(-(t**2) / (2 * s**2)) * math.sin(t) ** (n - 1),
                0,
                math.pi,
                epsabs=0,
                epsrel=1e-13,
                limit=200,
            )
            return sphere_area * radial
        raise ValueError(f"GaussianKernel: no normalisation for {manifold!r}.")

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        s = self.sigma
        z = self.normaliser(manifold)
        if isinstance(manifold, Torus):
            # images within 9 sigma: the rest is below exp(-40)
            m = np.arange(
                -math.ceil(9 * s / (2 * math.pi)) - 1, math.ceil(9 * s / (2 * math.pi)) + 2
            )
            images = np.stack(np.meshgrid(*([m] * manifold.dim), indexing="ij"), -1).reshape(
                -1, manifold.dim
            )
            diff = jnp.mod(x - y + jnp.pi, 2 * jnp.pi) - jnp.pi
            shifted = diff + 2 * jnp.pi * jnp.asarray(images, dtype=x.dtype)
            return jnp.sum(jnp.exp(-jnp.sum(shifted**2, axis=-1) / (2 * s**2))) / z
        return jnp.exp(-(manifold.distance(x, y) ** 2) / (2 * s**2)) / z
