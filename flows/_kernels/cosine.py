r"""The cosine network's NTK, at finite and infinite width.

The conventions are those of docs/conventions.md, The cosine network and its
kernels: $f_\theta(x) = c_N \sum_{i=1}^N a_i \cos(w_i\cdot x + b_i)$, only the $a_i$
trained, so its NTK is exactly
$\Theta(x, x') = c_N^2 \sum_i \cos(w_i\cdot x + b_i)\cos(w_i\cdot x' + b_i)$
(frozen: training the last layer does not move it), with
$b_i \sim U[-\pi, \pi]$ and

- on $T^n$: integer $w_i$ from the discrete Gaussian $\propto e^{-\sigma^2|w|^2/2}$,
  $c_N^2 = 2 S_\sigma / (N (2\pi)^n)$, $S_\sigma = \sum_{w \in \mathbb Z^n} e^{-\sigma^2|w|^2/2}$:
  its expectation is exactly the normalised periodised Gaussian, Fourier
  multiplier $e^{-\sigma^2|k|^2/2}$;
- on $S^n$ (ambient inputs): $w_i \sim N(0, \sigma^{-2} I_{n+1})$,
  $c_N^2 = 2 / (N Z_\sigma)$, $Z_\sigma = \int e^{-|x - y|^2/2\sigma^2} d\mu(y)$:
  its expectation is the normalised chordal Gaussian $e^{-|x-x'|^2/2\sigma^2}/Z_\sigma$.

Fluctuations about the expectation are $O(N^{-1/2})$. `width=None` is the
infinite-width kernel itself (applied exactly in the spectral basis); a finite
width applies the random features in $O(N \times \text{width})$ memory.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from jaxtyping import Array, Float, PRNGKeyArray

from .._manifolds import AbstractManifold, Sphere, Torus
from .._types import Point, Scalar
from .base import AbstractKernel, _check_nodal, _check_points
from .gaussian import GaussianKernel, funk_hecke


def _discrete_gaussian_sum(sigma: float) -> tuple[float, np.ndarray, np.ndarray]:
    """One axis: the support m, the probabilities and the sum of exp(-sigma^2 m^2 / 2)."""
    top = int(math.ceil(9 / sigma)) + 1  # beyond it the weights are below exp(-40)
    m = np.arange(-top, top + 1)
    weights = np.exp(-(sigma**2) * m**2 / 2)
    return float(weights.sum()), m, weights / weights.sum()


def _chordal_normaliser(sigma: float, dim: int) -> float:
    sphere_area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
    radial, _ = scipy.integrate.quad(
        lambda t: math.exp(-(1 - math.cos(t)) / sigma**2) * math.sin(t) ** (dim - 1),
        0,
        math.pi,
        epsabs=0,
        epsrel=1e-13,
        limit=200,
    )
    return sphere_area * radial


def cosine_limit_scale(sigma: float, manifold: AbstractManifold) -> float:
    r"""The normaliser $\kappa$ with $\kappa\, \mathbb E_{w}[\cos(w\cdot(x - x'))] = k_\sigma(x, x')$.

    Torus: $S_\sigma^n / (2\pi)^n$; sphere: $1/Z_\sigma$ (the chordal Gaussian's).
    """
    if isinstance(manifold, Torus):
        total, _, _ = _discrete_gaussian_sum(sigma)
        return total**manifold.dim / (2 * math.pi) ** manifold.dim
    return 1 / _chordal_normaliser(sigma, manifold.dim)


def cosine_features(
    sigma: float, manifold: AbstractManifold, width: int, key: PRNGKeyArray
) -> tuple[Float[Array, "N D"], Float[Array, " N"]]:
    r"""Frequencies $w_i$ and phases $b_i \sim U[-\pi, \pi]$ of `width` cosine features.

    Torus: integer $w_i$ from the discrete Gaussian $\propto e^{-\sigma^2|w|^2/2}$ (so every
    feature is periodic); sphere: $w_i \sim N(0, \sigma^{-2} I)$ in the ambient space.
    """
    kw, kb = jax.random.split(key)
    d = manifold.ambient_dim
    if isinstance(manifold, Torus):
        _, support, probs = _discrete_gaussian_sum(sigma)
        index = jax.random.categorical(kw, jnp.log(jnp.asarray(probs)), shape=(width, d))
        frequencies = jnp.asarray(support, dtype=float)[index]
    else:
        frequencies = jax.random.normal(kw, (width, d)) / sigma
    phases = jax.random.uniform(kb, (width,), minval=-jnp.pi, maxval=jnp.pi)
    return frequencies, phases


class CosineNTK(AbstractKernel):
    r"""The cosine network's NTK, normalised so its infinite-width limit has $\int k\, d\mu = 1$.

    **Arguments:**

    - `sigma` > 0: the width of the limiting Gaussian.
    - `manifold`: a `Torus` or `Sphere` (the frequencies' law depends on it).
    - `width`: the number of cosine features $N$, or None for infinite width.
    - `key`: a PRNG key for the features (required for finite width).
    """

    sigma: float = eqx.field(static=True)
    width: int | None = eqx.field(static=True)
    frequencies: Float[Array, "N D"] | None
    phases: Float[Array, " N"] | None
    scale: float = eqx.field(static=True)  # c_N^2 (finite) or the limit's normaliser

    def __init__(
        self,
        sigma: float,
        manifold: AbstractManifold,
        width: int | None = None,
        key: PRNGKeyArray | None = None,
    ):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"CosineNTK: sigma must be a finite number > 0, got {sigma!r}.")
        if not isinstance(manifold, (Torus, Sphere)):
            raise ValueError(f"CosineNTK: needs a Torus or a Sphere, got {manifold!r}.")
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int) or width < 1
        ):
            raise ValueError(f"CosineNTK: width must be a positive integer or None, got {width!r}.")
        if width is not None and key is None:
            raise ValueError("CosineNTK: a finite width needs a PRNG key for its features.")
        self.sigma = float(sigma)
        self.width = width
        limit_scale = cosine_limit_scale(self.sigma, manifold)
        if width is None:
            self.frequencies = self.phases = None
            self.scale = limit_scale
            return
        self.frequencies, self.phases = cosine_features(self.sigma, manifold, width, key)
        self.scale = 2 * limit_scale / width

    def _features(self, x: Float[Array, "P D"]) -> Float[Array, "P N"]:
        return jnp.cos(x @ self.frequencies.T + self.phases)

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        if self.width is None:
            if isinstance(manifold, Torus):  # the normalised periodised Gaussian
                return GaussianKernel(self.sigma)(manifold, x, y)
            return self.scale * jnp.exp(-jnp.sum((x - y) ** 2) / (2 * self.sigma**2))
        return self.scale * jnp.sum(self._features(x[None])[0] * self._features(y[None])[0])

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"] | None:
        """Infinite width: $e^{-\\sigma^2|k|^2/2}$ on tori, the chordal Funk–Hecke eigenvalues on spheres."""
        if self.width is not None:
            return None
        if isinstance(manifold, Torus):
            return jnp.exp(-(self.sigma**2) * manifold.laplace_eigenvalues() / 2)
        values = funk_hecke(self.sigma, manifold.dim, manifold.band_limit, "chordal")
        return jnp.asarray(values[manifold.harmonic_degrees()])

    def apply(self, manifold, values, points=None, *, chunk: int = 512):
        r"""Finite width: $c_N^2 \phi(x_p)^\top \sum_b w_b \phi(x_b) V_b$, memory O((N + P) x width)."""
        if self.width is None:
            return super().apply(manifold, values, points, chunk=chunk)
        _check_nodal(self, manifold, values, "apply")
        points = manifold.nodes if points is None else _check_points(self, manifold, points)
        weighted = values * manifold.weights.reshape((-1,) + (1,) * (values.ndim - 1))
        projected = jnp.tensordot(self._features(manifold.nodes), weighted, axes=(0, 0))
        return self.scale * jnp.tensordot(self._features(points), projected, axes=(1, 0))
