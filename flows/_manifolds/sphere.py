"""The round unit sphere S^n in R^(n+1), n = 2, 3, with product Gauss rules."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._misc import check_count, check_key, check_memory
from .._types import ChartVector, Frame, Matrix, Point, Points, Scalar, Weights
from .base import AbstractManifold, safe_norm
from .harmonics import HarmonicTable, basis_size, harmonic_degree_dimension


def _rule_sizes(dim: int, degree: int) -> tuple[int, int]:
    """`_gauss_rule`'s Gauss–Legendre points and its points per azimuth; it has
    gauss * azimuth^(dim - 1) nodes."""
    return (degree // 2 + 1 if dim == 2 else degree // 4 + 1), degree + 1


def _gauss_rule(dim: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes and weights of a product rule exact for polynomials of degree <= `degree`.

    S^2: Gauss–Legendre in $s = x_3 = \cos\theta$ ($\lfloor L/2 \rfloor + 1$
    points), uniform in the azimuth ($L + 1$ points); $d\mu = ds\, d\phi$.
    S^3 in Hopf coordinates $x = (\cos\eta\, e^{i\xi_1}, \sin\eta\, e^{i\xi_2})$:
    Gauss–Legendre in $s = \cos 2\eta$ ($\lfloor L/4 \rfloor + 1$ points),
    uniform in both azimuths ($L + 1$ points each); $d\mu = \tfrac14 ds\, d\xi_1 d\xi_2$.
    A monomial of degree $\le L$ with non-zero mean over the azimuths is a
    polynomial in $s$ of degree $\le L/2$ ($S^2$: $\le L$), which these
    Gauss–Legendre rules integrate exactly.
    """
    n_gauss, n_az = _rule_sizes(dim, degree)
    az = 2 * np.pi * np.arange(n_az) / n_az
    s, ws = np.polynomial.legendre.leggauss(n_gauss)
    if dim == 2:
        ss, pp = np.meshgrid(s, az, indexing="ij")
        r = np.sqrt(1 - ss**2)
        x = np.stack([r * np.cos(pp), r * np.sin(pp), ss], -1).reshape(-1, 3)
        w = np.repeat(ws * 2 * np.pi / n_az, n_az)
    else:
        ss, p1, p2 = np.meshgrid(s, az, az, indexing="ij")
        c, sn = np.sqrt((1 + ss) / 2), np.sqrt((1 - ss) / 2)
        x = np.stack([c * np.cos(p1), c * np.sin(p1), sn * np.cos(p2), sn * np.sin(p2)], -1)
        x = x.reshape(-1, 4)
        w = np.repeat(ws * 0.25 * (2 * np.pi / n_az) ** 2, n_az**2)
    return x, w


class _HarmonicSeries(eqx.Module):
    r"""$f(x) = \sum_j c_j Y_j(x)$ over the harmonics of degree <= the table's."""

    table: HarmonicTable = eqx.field(static=True)
    coefficients: Float[Array, "M *shape"]

    def __call__(self, x: Point) -> Float[Array, "*shape"]:
        return jnp.tensordot(self.table(x), self.coefficients, axes=(0, 0))


class Sphere(AbstractManifold):
    r"""The round unit sphere $S^n \subset \mathbb{R}^{n+1}$, $n = 2, 3$.

    Points are unit vectors in $\mathbb{R}^{n+1}$. Symmetric tensors are
    ambient $(n+1) \times (n+1)$ fields $A(x)$ standing for $P_x A(x) P_x$ on
    $T_xS^n$, $P_x = I - x x^\top$; $g_\mathrm{ref}$ is $A = I$.

    Quadrature: a product Gauss rule (Gauss–Legendre in a polar variable,
    uniform in the azimuths; Hopf coordinates on $S^3$) exact for every
    polynomial of degree <= `degree` in the ambient coordinates, hence for
    every spherical harmonic of degree <= `degree`. Weights sum to $4\pi$
    on $S^2$ and $2\pi^2$ on $S^3$.

    The spectral series of nodal values is their quadrature projection onto
    the real orthonormal harmonics of degree <= `band_limit`
    $= \lfloor$ `degree` $/2 \rfloor$ (products of two such harmonics are
    integrated exactly). There are fewer harmonics than nodes, so this is a
    projection, not an interpolation: it reproduces band-limited data exactly
    and smooths anything else (`interpolates` is False; `NodalMetric` refuses
    nodal values that it does not reproduce).

    The chart at $x$ is the central projection
    $\varphi_x(u) = (x + E u)/|x + E u|$, $E$ the columns $2..n+1$ of the
    Householder reflection taking $e_1$ to $\pm x$.

    **Arguments:**

    - `dim`: 2 or 3.
    - `degree`: polynomial degree integrated exactly, at least 2.
    """

    dim: int = eqx.field(static=True)
    degree: int = eqx.field(static=True)
    table: HarmonicTable = eqx.field(static=True)
    nodes: Points
    weights: Weights

    def __init__(self, dim: int, degree: int):
        dim = check_count(dim, "Sphere: dim must be 2 or 3", allowed=(2, 3))
        degree = check_count(degree, "Sphere: degree must be an integer >= 2", minimum=2)
        # the interpolant evaluates every harmonic of degree <= L/2 at every node (dense)
        n_gauss, n_az = _rule_sizes(dim, degree)
        nodes = n_gauss * n_az ** (dim - 1)
        check_memory(
            8.0 * nodes * basis_size(dim, degree // 2),
            f"Sphere({dim}, {degree}): the {basis_size(dim, degree // 2)} harmonics at its "
            f"{nodes} nodes",
            "Choose a lower degree.",
        )
        self.dim = dim
        self.degree = degree
        try:
            self.table = HarmonicTable(dim, degree // 2)
        except OverflowError:
            raise ValueError(
                f"Sphere: degree {degree} is beyond float64: the normalisation of its "
                "harmonics overflows. Choose a lower degree."
            ) from None
        x, w = _gauss_rule(dim, degree)
        self.nodes = jnp.asarray(x)
        self.weights = jnp.asarray(w)

    def __repr__(self) -> str:
        return f"Sphere(dim={self.dim}, degree={self.degree})"

    @property
    def ambient_dim(self) -> int:
        return self.dim + 1

    @property
    def band_limit(self) -> int:
        return self.degree // 2

    @property
    def interpolates(self) -> bool:
        return False

    @property
    def volume(self) -> float:
        return 4 * math.pi if self.dim == 2 else 2 * math.pi**2

    def reference(self, x: Point) -> Matrix:
        return jnp.eye(self.dim + 1, dtype=x.dtype)

    def frame(self, x: Point) -> Frame:
        # Householder H = I - 2 v v^T / |v|^2, v = x + sign(x_0) e_0, maps e_0 to -sign(x_0) x;
        # its other columns are orthonormal and orthogonal to x.
        sign = jnp.where(x[0] >= 0, 1.0, -1.0).astype(x.dtype)
        v = x.at[0].add(sign)
        h = jnp.eye(self.dim + 1, dtype=x.dtype) - 2 * jnp.outer(v, v) / jnp.dot(v, v)
        return h[:, 1:]

    def chart(self, x: Point, u: ChartVector) -> Point:
        y = x + self.frame(x) @ u
        return y / jnp.sqrt(jnp.sum(y**2))

    def distance(self, x: Point, y: Point) -> Scalar:
        r"""Great-circle distance $2\,\mathrm{atan2}(|x - y|, |x + y|)$ (accurate at 0 and $\pi$)."""
        return 2 * jnp.arctan2(safe_norm(x - y), safe_norm(x + y))

    def check_points(self, points: Float[Array, "P D"], name: str) -> None:
        """Raise `ValueError` unless concrete `points` are finite unit vectors (to 1e3 eps)."""
        super().check_points(points, name)
        if isinstance(points, jax.core.Tracer):
            return
        off = jnp.abs(jnp.linalg.norm(points, axis=-1) - 1)
        tol = 1000 * jnp.finfo(points.dtype).eps
        if bool(jnp.any(off > tol)):
            i = int(jnp.argmax(off))
            raise ValueError(
                f"{name}: points on {self!r} are unit vectors; point {i} has norm "
                f"{float(jnp.linalg.norm(points[i])):.6g}. Normalise it first."
            )

    def sample(self, key: PRNGKeyArray, count: int) -> Points:
        check_key(key, f"{self!r}.sample")
        count = check_count(count, f"{self!r}.sample: count must be an integer >= 1", minimum=1)
        x = jax.random.normal(key, (count, self.dim + 1))
        return x / jnp.linalg.norm(x, axis=-1, keepdims=True)

    def basis(self, x: Point) -> Float[Array, " M"]:
        """The real orthonormal harmonics of degree <= `band_limit` at `x`, ordered by degree."""
        if x.shape != (self.dim + 1,):
            raise ValueError(f"{self!r}: a point must have shape ({self.dim + 1},), got {x.shape}.")
        return self.table(x)

    def transform(self, values: Float[Array, "N *shape"]) -> Float[Array, "M *shape"]:
        r"""$c_j = \sum_a w_a Y_j(x_a) f(x_a)$."""
        if values.shape[:1] != self.weights.shape:
            raise ValueError(
                f"{self!r}: nodal values must have leading axis {self.weights.shape[0]}, "
                f"got shape {values.shape}."
            )
        basis = jax.vmap(self.basis)(self.nodes) * self.weights[:, None]
        return jnp.tensordot(basis, values, axes=(0, 0))

    def evaluate(self, coefficients: Float[Array, "M *shape"], x: Point) -> Float[Array, "*shape"]:
        return jnp.tensordot(self.basis(x), coefficients, axes=(0, 0))

    def laplace_eigenvalues(self) -> Float[Array, " M"]:
        r"""$l(l + n - 1)$ for each harmonic of degree $l \le$ `band_limit`."""
        ell = self.table.ell
        return jnp.asarray(ell * (ell + self.dim - 1), dtype=float)

    def harmonic_degrees(self) -> np.ndarray:
        """The degree $l$ of each coefficient slot."""
        return self.table.ell

    def random_field(
        self, key: PRNGKeyArray, band_limit: int, shape: tuple[int, ...] = ()
    ) -> Callable[[Point], Float[Array, "*shape"]]:
        r"""Random harmonic series of degree <= `band_limit`.

        Gaussian coefficients damped like $e^{-l^2/K^2}$, scaled so that
        $\sum_l |c_l| \sqrt{\dim H_l / \mathrm{vol}} = 1$ per component, which
        bounds $|f| \le 1$ everywhere by the addition theorem.
        """
        band_limit = check_count(band_limit, "band_limit must be a non-negative integer", minimum=0)
        table = HarmonicTable(self.dim, band_limit)
        ell = table.ell
        damp = np.exp(-(ell**2) / max(band_limit, 1) ** 2)
        c = np.asarray(jax.random.normal(key, (basis_size(self.dim, band_limit), *shape)))
        c = c * damp.reshape((-1,) + (1,) * len(shape))
        bound = sum(
            np.sqrt(np.sum(c[ell == deg] ** 2, axis=0))
            * math.sqrt(harmonic_degree_dimension(self.dim, deg) / self.volume)
            for deg in range(band_limit + 1)
        )
        return _HarmonicSeries(table, jnp.asarray(c / bound))
