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
from jaxtyping import Array, Float, PRNGKeyArray

from .._manifolds import AbstractManifold, Sphere, Torus
from .._misc import check_memory, real_scalar
from .._types import Point, Scalar
from .base import AbstractKernel, _check_chunk, _check_manifold, _check_nodal, _check_points
from .gaussian import (
    GaussianKernel,
    _check_log_normaliser,
    _chordal_profile,
    _radial_integral,
    funk_hecke,
)

# The discrete Gaussian's support per axis is |w| <= ceil(9 / sigma) + 1: at most this many
# on each side of 0 are built, so sigma >= 9 / (500_000 - 1) = 1.8e-5 (1e-9 asked for 1.8e10
# integers); a narrower kernel is the local kernel.
_MAX_FREQUENCY = 500_000


def _discrete_gaussian_sum(
    sigma: float, manifold: AbstractManifold, caller: str = "CosineNTK"
) -> tuple[float, np.ndarray, np.ndarray]:
    r"""One axis: $s_\sigma = \sum_{m \in \mathbb Z} e^{-\sigma^2 m^2/2}$, the support m, the probabilities."""
    smallest = 9 / (_MAX_FREQUENCY - 1)
    if not sigma >= smallest:
        raise ValueError(
            f"{caller}: sigma on {manifold!r} must be at least {smallest:.2g}: "
            f"the discrete Gaussian of its integer frequencies spans 2 ceil(9 / sigma) + 3 "
            f"integers per axis, at most {2 * _MAX_FREQUENCY + 1} are built. A width this small "
            f"acts as the local kernel: use flows.DeltaKernel(), got sigma = {sigma!r}."
        )
    top = int(math.ceil(9 / sigma)) + 1  # beyond it the weights are below exp(-40)
    m = np.arange(-top, top + 1)
    s2 = sigma * sigma  # sigma**2 is an OverflowError for a very wide kernel, s2 is inf
    with np.errstate(over="ignore", invalid="ignore"):
        weights = np.where(m == 0, 1.0, np.exp(-s2 * m**2 / 2))
    return float(weights.sum()), m, weights / weights.sum()


def _chordal_normaliser(sigma: float, dim: int) -> float:
    sphere_area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
    radial = _radial_integral(
        lambda t: _chordal_profile(t, sigma) * math.sin(t) ** (dim - 1), sigma, limit=200
    )
    return sphere_area * radial


def cosine_limit_scale(
    sigma: float, manifold: AbstractManifold, caller: str = "CosineNTK"
) -> float:
    r"""The normaliser $\kappa$ with $\kappa\, \mathbb E_{w}[\cos(w\cdot(x - x'))] = k_\sigma(x, x')$.

    Torus: $S_\sigma / (2\pi)^n$, $S_\sigma = \sum_{w \in \mathbb Z^n} e^{-\sigma^2|w|^2/2} = s_\sigma^n$
    with $s_\sigma$ the sum over one axis; sphere: $1/Z_\sigma$ (the chordal Gaussian's).
    `ValueError` (naming `caller`) for a width whose frequencies or $Z_\sigma$ float64 cannot hold.
    """
    if isinstance(manifold, Torus):
        total, _, _ = _discrete_gaussian_sum(sigma, manifold, caller)
        return total**manifold.dim / (2 * math.pi) ** manifold.dim
    z = _chordal_normaliser(sigma, manifold.dim)
    _check_log_normaliser(caller, sigma, manifold, math.log(z) if z > 0 else -math.inf)
    return 1 / z


def cosine_features(
    sigma: float,
    manifold: AbstractManifold,
    width: int,
    key: PRNGKeyArray,
    caller: str = "CosineNTK",
) -> tuple[Float[Array, "N D"], Float[Array, " N"]]:
    r"""Frequencies $w_i$ and phases $b_i \sim U[-\pi, \pi]$ of `width` cosine features.

    Torus: integer $w_i$ from the discrete Gaussian $\propto e^{-\sigma^2|w|^2/2}$ (so every
    feature is periodic); sphere: $w_i \sim N(0, \sigma^{-2} I)$ in the ambient space.
    """
    kw, kb = jax.random.split(key)
    d = manifold.ambient_dim
    if isinstance(manifold, Torus):
        _, support, probs = _discrete_gaussian_sum(sigma, manifold, caller)
        # the draw adds Gumbel noise to every entry of the support for each of the
        # width x d frequencies
        check_memory(
            16.0 * width * d * support.size,
            f"{caller}: drawing {width} x {d} integer frequencies from {support.size} integers",
            "Use fewer features or a wider kernel.",
        )
        index = jax.random.categorical(kw, jnp.log(jnp.asarray(probs)), shape=(width, d))
        frequencies = jnp.asarray(support, dtype=float)[index]
    else:
        frequencies = jax.random.normal(kw, (width, d)) / sigma
    phases = jax.random.uniform(kb, (width,), minval=-jnp.pi, maxval=jnp.pi)
    return frequencies, phases


def _kind(manifold: AbstractManifold) -> str:
    return "torus" if isinstance(manifold, Torus) else "sphere"


class CosineNTK(AbstractKernel):
    r"""The cosine network's NTK, normalised so its infinite-width limit has $\int k\, d\mu = 1$.

    On spheres it is positive semi-definite (the chordal Gaussian, a Gaussian of the
    ambient space restricted to the sphere), where `GaussianKernel` is not for σ above
    about 0.45. It belongs to the kind and dimension of manifold it is built on (its
    frequencies' law and normaliser depend on them): another is refused.

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
    kind: str = eqx.field(static=True)  # "torus" or "sphere": the manifold it is built on
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        sigma: float,
        manifold: AbstractManifold,
        width: int | None = None,
        key: PRNGKeyArray | None = None,
    ):
        value = real_scalar(sigma)
        if value is None or not math.isfinite(value) or not value > 0:
            raise ValueError(f"CosineNTK: sigma must be a finite number > 0, got {sigma!r}.")
        if not isinstance(manifold, (Torus, Sphere)):
            raise ValueError(f"CosineNTK: needs a Torus or a Sphere, got {manifold!r}.")
        if width is not None and (
            isinstance(width, bool) or not isinstance(width, int) or width < 1
        ):
            raise ValueError(f"CosineNTK: width must be a positive integer or None, got {width!r}.")
        if width is not None and key is None:
            raise ValueError("CosineNTK: a finite width needs a PRNG key for its features.")
        self.sigma = value
        self.width = width
        self.kind, self.dim = _kind(manifold), manifold.dim
        limit_scale = cosine_limit_scale(self.sigma, manifold)
        if width is None:
            self.frequencies = self.phases = None
            self.scale = limit_scale
            return
        self.frequencies, self.phases = cosine_features(self.sigma, manifold, width, key)
        self.scale = 2 * limit_scale / width

    def _check_built_for(self, manifold: AbstractManifold, what: str | None) -> None:
        _check_manifold(self, manifold, what)
        if not isinstance(manifold, (Torus, Sphere)) or (_kind(manifold), manifold.dim) != (
            self.kind,
            self.dim,
        ):
            name = "CosineNTK" + ("" if what is None else f".{what}")
            raise ValueError(
                f"{name}: the kernel was built for a {self.kind} of dimension {self.dim}; build "
                f"one on the manifold it acts on, got {manifold!r}."
            )

    def _features(self, x: Float[Array, "P D"]) -> Float[Array, "P N"]:
        return jnp.cos(x @ self.frequencies.T + self.phases)

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        self._check_built_for(manifold, None)
        d = manifold.nodes.shape[1]
        if jnp.shape(x) != (d,) or jnp.shape(y) != (d,):
            raise ValueError(
                f"CosineNTK: points on {manifold!r} have shape ({d},), got "
                f"{jnp.shape(x)} and {jnp.shape(y)}."
            )
        if self.width is None:
            if isinstance(manifold, Torus):  # the normalised periodised Gaussian
                return GaussianKernel(self.sigma)(manifold, x, y)
            dtype = jnp.asarray(x).dtype
            if jnp.issubdtype(dtype, jnp.floating):  # 1 / Z_sigma in the values' dtype
                _check_log_normaliser(
                    "CosineNTK", self.sigma, manifold, -math.log(self.scale), dtype
                )
            # the quotient first: 2 sigma^2 underflows to 0 (0 / 0 at x = y) for widths whose
            # Z_sigma float64 holds
            return self.scale * jnp.exp(-0.5 * jnp.sum(((x - y) / self.sigma) ** 2))
        return self.scale * jnp.sum(self._features(x[None])[0] * self._features(y[None])[0])

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"] | None:
        """Infinite width: $e^{-\\sigma^2|k|^2/2}$ on tori, the chordal Funk–Hecke eigenvalues on spheres."""
        self._check_built_for(manifold, "multiplier")
        if self.width is not None:
            return None
        if isinstance(manifold, Torus):
            # sigma * sigma: inf, not an OverflowError, for a very wide kernel (0 * inf at k = 0)
            eig = manifold.laplace_eigenvalues()
            return jnp.where(eig == 0, 1.0, jnp.exp(-(self.sigma * self.sigma) * eig / 2))
        values = funk_hecke(self.sigma, manifold.dim, manifold.band_limit, "chordal")
        return jnp.asarray(values[manifold.harmonic_degrees()])

    def apply(self, manifold, values, points=None, *, chunk: int = 512):
        r"""Finite width: $c_N^2 \phi(x_p)^\top \sum_b w_b \phi(x_b) V_b$, memory O((N + P) x width)."""
        _check_nodal(self, manifold, values, "apply")
        self._check_built_for(manifold, "apply")
        if self.width is None:
            return super().apply(manifold, values, points, chunk=chunk)
        _check_chunk(self, chunk)
        points = manifold.nodes if points is None else _check_points(self, manifold, points)
        weighted = values * manifold.weights.reshape((-1,) + (1,) * (values.ndim - 1))
        projected = jnp.tensordot(self._features(manifold.nodes), weighted, axes=(0, 0))
        return self.scale * jnp.tensordot(self._features(points), projected, axes=(1, 0))
