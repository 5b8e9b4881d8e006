"""The flat torus T^n = R^n / (2 pi Z)^n on a uniform grid."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from .._misc import check_count, check_key, check_memory
from .._types import ChartVector, Frame, Matrix, Point, Points, Scalar, Weights
from .base import AbstractManifold, safe_norm


def _axis_basis(n: int, x: Float[Array, ""]) -> Complex[Array, " n"]:
    r"""$b_k(x) = e^{ikx}$ for the FFT wavenumbers of an n-point grid.

    For even n the Nyquist entry is $\cos(nx/2)$, the real, even interpolant of
    that mode, so that real nodal data give a real series.
    """
    kx = jnp.asarray(np.fft.fftfreq(n, d=1.0 / n), dtype=x.dtype) * x
    sin = jnp.sin(kx)
    if n % 2 == 0:
        sin = sin.at[n // 2].set(0.0)  # cos(kx) with k = -n/2 is already cos(n x / 2)
    return jax.lax.complex(jnp.cos(kx), sin)


class _TrigPolynomial(eqx.Module):
    r"""$f(x) = \sum_k a_k \cos(k\cdot x) + b_k \sin(k \cdot x)$ over a box of wavevectors."""

    wavevectors: Float[Array, "K n"]
    cos_coefficients: Float[Array, "K *shape"]
    sin_coefficients: Float[Array, "K *shape"]

    def __call__(self, x: Point) -> Float[Array, "*shape"]:
        phase = self.wavevectors @ x
        return jnp.tensordot(jnp.cos(phase), self.cos_coefficients, axes=(0, 0)) + jnp.tensordot(
            jnp.sin(phase), self.sin_coefficients, axes=(0, 0)
        )


class Torus(AbstractManifold):
    r"""The flat torus $T^n = \mathbb{R}^n / (2\pi\mathbb{Z})^n$, $g_\mathrm{ref} = \delta$.

    Nodes: the uniform grid $x_j = 2\pi j / n$ in each axis ($n^\mathrm{dim}$
    nodes, ordered with the first axis slowest); weights $(2\pi/n)^\mathrm{dim}$,
    so $\sum_a w_a = (2\pi)^\mathrm{dim}$. The rule integrates every
    trigonometric polynomial of degree $< n$ in each variable exactly.

    Points are chart coordinates in $\mathbb{R}^\mathrm{dim}$ (any real values;
    fields are $2\pi$-periodic). The chart at $x$ is $\varphi_x(u) = x + u$.
    The spectral interpolant is the trigonometric interpolant on the grid,
    exact for wavenumbers $|k_i| \le$ `band_limit` $= \lfloor (n-1)/2 \rfloor$.

    **Arguments:**

    - `dim`: 1, 2 or 3.
    - `n`: grid points per axis, at least 3.
    """

    dim: int = eqx.field(static=True)
    n: int = eqx.field(static=True)
    nodes: Points
    weights: Weights

    def __init__(self, dim: int, n: int):
        dim = check_count(dim, "Torus: dim must be 1, 2 or 3", allowed=(1, 2, 3))
        n = check_count(n, "Torus: n (grid points per axis) must be an integer >= 3", minimum=3)
        # the grid (built in NumPy, then copied), the weights, and one metric's values
        check_memory(
            8.0 * n**dim * (3 * dim + 1 + dim * dim),
            f"Torus({dim}, {n}) with {float(n) ** dim:.3g} nodes",
            "Choose fewer grid points per axis.",
        )
        self.dim = dim
        self.n = n
        axis = 2 * np.pi * np.arange(n) / n
        grid = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), axis=-1)
        self.nodes = jnp.asarray(grid.reshape(-1, dim))
        self.weights = jnp.full((n**dim,), (2 * np.pi / n) ** dim)

    def __repr__(self) -> str:
        return f"Torus(dim={self.dim}, n={self.n})"

    @property
    def ambient_dim(self) -> int:
        return self.dim

    @property
    def band_limit(self) -> int:
        return (self.n - 1) // 2

    @property
    def interpolates(self) -> bool:
        return True

    @property
    def volume(self) -> float:
        return (2 * math.pi) ** self.dim

    def reference(self, x: Point) -> Matrix:
        return jnp.eye(self.dim, dtype=x.dtype)

    def chart(self, x: Point, u: ChartVector) -> Point:
        return x + u

    def frame(self, x: Point) -> Frame:
        return jnp.eye(self.dim, dtype=x.dtype)

    def distance(self, x: Point, y: Point) -> Scalar:
        r"""$|x - y|$ with each coordinate difference wrapped into $[-\pi, \pi)$."""
        d = jnp.mod(x - y + jnp.pi, 2 * jnp.pi) - jnp.pi
        return safe_norm(d)

    def sample(self, key: PRNGKeyArray, count: int) -> Points:
        check_key(key, f"{self!r}.sample")
        count = check_count(count, f"{self!r}.sample: count must be an integer >= 1", minimum=1)
        return jax.random.uniform(key, (count, self.dim), maxval=2 * jnp.pi)

    def transform(self, values: Float[Array, "N *shape"]) -> Complex[Array, "*grid_shape"]:
        r"""Fourier coefficients $c_k = n^{-\mathrm{dim}} \sum_j f_j e^{-ik\cdot x_j}$ (FFT order)."""
        if values.shape[:1] != (self.n**self.dim,):
            raise ValueError(
                f"{self!r}: nodal values must have leading axis {self.n**self.dim}, "
                f"got shape {values.shape}."
            )
        grid = values.reshape((self.n,) * self.dim + values.shape[1:])
        axes = tuple(range(self.dim))
        return jnp.fft.fftn(grid, axes=axes) / self.n**self.dim

    def evaluate(
        self, coefficients: Complex[Array, "*grid_shape"], x: Point
    ) -> Float[Array, "*shape"]:
        r"""$f(x) = \sum_k c_k \prod_i b_{k_i}(x_i)$ (real part), exact AD derivatives."""
        if x.shape != (self.dim,):
            raise ValueError(f"{self!r}: a point must have shape ({self.dim},), got {x.shape}.")
        self._check_coefficients("evaluate", coefficients)
        out = coefficients
        for i in range(self.dim):
            out = jnp.tensordot(_axis_basis(self.n, x[i]), out, axes=(0, 0))
        return jnp.real(out)

    def laplace_eigenvalues(self) -> Float[Array, "*grid_shape"]:
        r"""$|k|^2$ on the FFT grid (the Nyquist wavenumber counted as $n/2$)."""
        return sum(k**2 for k in self._wavenumbers())

    def resolved_slots(self) -> Float[Array, "*grid_shape"]:
        mask = np.ones((self.n,) * self.dim)
        if self.n % 2 == 0:
            for a in range(self.dim):
                index = [slice(None)] * self.dim
                index[a] = self.n // 2
                mask[tuple(index)] = 0.0
        return jnp.asarray(mask)

    @property
    def flat_chart(self) -> bool:
        return True

    def _wavenumbers(self) -> list[Float[Array, "*grid_shape"]]:
        """$k_a$ on the FFT grid, one array per axis."""
        k = np.fft.fftfreq(self.n, d=1.0 / self.n)
        return [jnp.asarray(g) for g in np.meshgrid(*([k] * self.dim), indexing="ij")]

    def synthesize(self, coefficients: Complex[Array, "*grid_shape"]) -> Float[Array, "N *shape"]:
        """The series at the nodes by inverse FFT."""
        self._check_coefficients("synthesize", coefficients)
        axes = tuple(range(self.dim))
        values = jnp.real(jnp.fft.ifftn(coefficients, axes=axes)) * self.n**self.dim
        return values.reshape((self.n**self.dim,) + coefficients.shape[self.dim :])

    def nodal_jet(
        self, values: Float[Array, "N *shape"]
    ) -> tuple[Float[Array, "N *shape n"], Float[Array, "N *shape n n"]]:
        r"""Derivatives of the trigonometric interpolant at the nodes by FFT, O(N log N).

        The Nyquist mode is $\cos(nx/2)$: its first derivative vanishes at the
        nodes and its second is $-(n/2)^2 \cos(nx/2)$.
        """
        c = self.transform(values)
        extra = c.ndim - self.dim
        k = self._wavenumbers()
        nyquist = self.n // 2 if self.n % 2 == 0 else None
        k_odd = [jnp.where(jnp.abs(ka) == nyquist, 0.0, ka) for ka in k]

        def mult(m):
            return m.astype(c.dtype).reshape(m.shape + (1,) * extra)

        grad = jnp.stack([self.synthesize(1j * mult(ka) * c) for ka in k_odd], axis=-1)
        rows = []
        for a in range(self.dim):
            row = []
            for b in range(self.dim):
                m = -(k[a] ** 2) if a == b else -k_odd[a] * k_odd[b]
                row.append(self.synthesize(mult(m) * c))
            rows.append(jnp.stack(row, axis=-1))
        return grad, jnp.stack(rows, axis=-2)

    def random_field(
        self, key: PRNGKeyArray, band_limit: int, shape: tuple[int, ...] = ()
    ) -> Callable[[Point], Float[Array, "*shape"]]:
        r"""Random trigonometric polynomial with wavevectors in $[-K, K]^\mathrm{dim}$, $K$ = `band_limit`.

        Coefficients are Gaussian, damped like $e^{-|k|^2/K^2}$, then scaled so
        that $\sum_k \sqrt{a_k^2 + b_k^2} = 1$ per component: $|f| \le 1$ everywhere.
        """
        band_limit = check_count(band_limit, "band_limit must be a non-negative integer", minimum=0)
        axis = np.arange(-band_limit, band_limit + 1)
        k = np.stack(np.meshgrid(*([axis] * self.dim), indexing="ij"), -1).reshape(-1, self.dim)
        # one representative of each pair {k, -k}: first non-zero entry positive
        first = np.array([row[np.nonzero(row)[0][0]] if np.any(row) else 1 for row in k])
        k = k[first > 0] if band_limit > 0 else k[:0]
        k = np.concatenate([np.zeros((1, self.dim), dtype=k.dtype), k])
        damp = np.exp(-np.sum(k**2, axis=1) / max(band_limit, 1) ** 2)
        ka, kb = jax.random.split(key)
        damp = damp.reshape((-1,) + (1,) * len(shape))
        a = np.asarray(jax.random.normal(ka, (len(k), *shape))) * damp
        b = np.asarray(jax.random.normal(kb, (len(k), *shape))) * damp
        b[0] = 0.0  # the constant mode has no sine part
        bound = np.sum(np.sqrt(a**2 + b**2), axis=0)
        return _TrigPolynomial(
            jnp.asarray(k, dtype=float), jnp.asarray(a / bound), jnp.asarray(b / bound)
        )
