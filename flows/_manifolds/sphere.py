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
from .separable import SeparableS2, SeparableS3, separable_bytes, separable_s3_bytes, sphere_jet


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


def _central_pullback_jet(
    x: Point, e: Frame, a: Matrix, da: Float[Array, "D D n"], dda: Float[Array, "D D n n"]
) -> tuple[Float[Array, "n n"], Float[Array, "n n n"], Float[Array, "n n n n"]]:
    r"""Jet of $g_{ij}(u) = J_i^\top A(\varphi_x(u)) J_j$ at $u = 0$ for the central projection.

    `da[..., k]`, `dda[..., k, l]`: the chart derivatives of $A \circ \varphi_x$. With
    $G = E^\top A E$, $b_{jl} = x^\top \partial_l A\, E_j$ and $c = x^\top A x$:
    $\partial_k g_{ij} = (E^\top \partial_k A E)_{ij} - \delta_{ik} (x^\top A E)_j - \delta_{jk} (x^\top A E)_i$,
    $\partial_k\partial_l g_{ij} = (E^\top \partial_k\partial_l A E)_{ij} - 2\delta_{kl} G_{ij}
    - \delta_{il} G_{kj} - \delta_{ik} G_{lj} - \delta_{jl} G_{ik} - \delta_{jk} G_{il}
    - \delta_{ik} b_{jl} - \delta_{il} b_{jk} - \delta_{jl} b_{ik} - \delta_{jk} b_{il}
    + (\delta_{ik}\delta_{jl} + \delta_{il}\delta_{jk})\, c$.
    """
    d = jnp.eye(e.shape[1], dtype=a.dtype)
    g = e.T @ a @ e
    xae = x @ a @ e
    dg = jnp.einsum("ai,abk,bj->ijk", e, da, e)
    dg = dg - jnp.einsum("ik,j->ijk", d, xae) - jnp.einsum("jk,i->ijk", d, xae)
    b = jnp.einsum("a,abl,bj->jl", x, da, e)
    c = x @ a @ x
    ddg = (
        jnp.einsum("ai,abkl,bj->ijkl", e, dda, e)
        - 2 * jnp.einsum("kl,ij->ijkl", d, g)
        - jnp.einsum("il,kj->ijkl", d, g)
        - jnp.einsum("ik,lj->ijkl", d, g)
        - jnp.einsum("jl,ik->ijkl", d, g)
        - jnp.einsum("jk,il->ijkl", d, g)
        - jnp.einsum("ik,jl->ijkl", d, b)
        - jnp.einsum("il,jk->ijkl", d, b)
        - jnp.einsum("jl,ik->ijkl", d, b)
        - jnp.einsum("jk,il->ijkl", d, b)
        + (jnp.einsum("ik,jl->ijkl", d, d) + jnp.einsum("il,jk->ijkl", d, d)) * c
    )
    return g, dg, ddg


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

    The transforms, the series at the nodes and its chart derivatives there
    run by separation of variables, and the metric's chart jet is pulled back
    analytically. $S^2$: sums over the azimuth, then a Legendre sum per order,
    $O(L^3) = O(N^{3/2})$ operations. $S^3$: a Fourier sum over both Hopf
    azimuths, then a Jacobi sum per pair of orders, $O(L^4) = O(N^{4/3})$.
    `fast=False` runs the reference path the fast one is tested against:
    every harmonic at every node, $O(N^2)$, differentiated by automatic
    differentiation.

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
    - `fast`: False for the dense reference path (tests and benchmarks).
    """

    dim: int = eqx.field(static=True)
    degree: int = eqx.field(static=True)
    table: HarmonicTable = eqx.field(static=True)
    nodes: Points
    weights: Weights
    separable: SeparableS2 | SeparableS3 | None
    fast: bool = eqx.field(static=True)

    def __init__(self, dim: int, degree: int, fast: bool = True):
        dim = check_count(dim, "Sphere: dim must be 2 or 3", allowed=(2, 3))
        degree = check_count(degree, "Sphere: degree must be an integer >= 2", minimum=2)
        n_gauss, n_az = _rule_sizes(dim, degree)
        nodes = n_gauss * n_az ** (dim - 1)
        if not isinstance(fast, bool):
            raise ValueError(f"Sphere: fast must be True or False, got {fast!r}.")
        if dim == 2 and fast:
            # the separable tables, and a few nodal fields of a metric's 3 x 3 components
            need, what = separable_bytes(degree) + 8.0 * nodes * 9 * 16, "transform tables"
        elif fast:
            # the same on S^3: 4 x 4 components, ten fields each for the jet
            need, what = separable_s3_bytes(degree) + 8.0 * nodes * 16 * 40, "transform tables"
        else:
            # every harmonic of degree <= L/2 evaluated at every node (dense)
            need, what = 8.0 * nodes * basis_size(dim, degree // 2), "harmonics at its nodes"
        check_memory(
            need,
            f"Sphere({dim}, {degree}): the {what} ({nodes} nodes, "
            f"{basis_size(dim, degree // 2)} harmonics)",
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
        self.fast = fast
        if dim == 2 and fast:
            # one node per latitude: s = x_3 and that latitude's weight
            self.separable = SeparableS2(self.table, x[::n_az, 2], w[::n_az], n_az)
        elif fast:
            # one node per latitude: s = |w_1|^2 - |w_2|^2 and that latitude's weight
            first = x[:: n_az * n_az]
            s = first[:, 0] ** 2 + first[:, 1] ** 2 - first[:, 2] ** 2 - first[:, 3] ** 2
            frames = jax.jit(jax.vmap(self.frame))(self.nodes)  # one program, not one per op
            self.separable = SeparableS3(self.table, s, w[:: n_az * n_az], n_az, self.nodes, frames)
        else:
            self.separable = None

    def __repr__(self) -> str:
        fast = "" if self.fast else ", fast=False"
        return f"Sphere(dim={self.dim}, degree={self.degree}{fast})"

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

    def _check_nodal(self, values: Array) -> None:
        if values.shape[:1] != self.weights.shape:
            raise ValueError(
                f"{self!r}: nodal values must have leading axis {self.weights.shape[0]}, "
                f"got shape {values.shape}."
            )

    def transform(self, values: Float[Array, "N *shape"]) -> Float[Array, "M *shape"]:
        r"""$c_j = \sum_a w_a Y_j(x_a) f(x_a)$ (separable; dense with `fast=False`)."""
        self._check_nodal(values)
        if self.separable is not None:
            flat = self.separable.transform(values.reshape(values.shape[0], -1))
            return flat.reshape(flat.shape[:1] + values.shape[1:])
        basis = jax.vmap(self.basis)(self.nodes) * self.weights[:, None]
        return jnp.tensordot(basis, values, axes=(0, 0))

    def evaluate(self, coefficients: Float[Array, "M *shape"], x: Point) -> Float[Array, "*shape"]:
        self._check_coefficients("evaluate", coefficients)
        return jnp.tensordot(self.basis(x), coefficients, axes=(0, 0))

    def synthesize(self, coefficients: Float[Array, "M *shape"]) -> Float[Array, "N *shape"]:
        """The series at every node."""
        self._check_coefficients("synthesize", coefficients)
        if self.separable is None:
            return super().synthesize(coefficients)
        flat = self.separable.synthesize(coefficients.reshape(coefficients.shape[0], -1))
        return flat.reshape(flat.shape[:1] + coefficients.shape[1:])

    def _series_jet(self, values: Float[Array, "N *shape"]) -> tuple[Array, Array, Array]:
        """The series of nodal values at the nodes, with its chart jet there."""
        coefficients = self.transform(values)
        if self.separable is None:
            return self.synthesize(coefficients), *self._coefficient_jet(coefficients)
        if self.dim == 3:
            shape, n = coefficients.shape[1:], self.nodes.shape[0]
            f, jet1, jet2 = self.separable.jet(coefficients.reshape(coefficients.shape[0], -1))
            return (
                f.reshape((n, *shape)),
                jet1.reshape((n, *shape, 3)),
                jet2.reshape((n, *shape, 3, 3)),
            )
        frames = jax.vmap(self.frame)(self.nodes)
        return sphere_jet(self.separable, self.nodes, frames, coefficients)

    def nodal_jet(
        self, values: Float[Array, "N *shape"]
    ) -> tuple[Float[Array, "N *shape n"], Float[Array, "N *shape n n"]]:
        """Chart derivatives of the series of nodal values at the nodes."""
        return self._series_jet(values)[1:]

    def nodal_metric_jet(
        self, values: Float[Array, "N D D"]
    ) -> tuple[Float[Array, "N n n"], Float[Array, "N n n n"], Float[Array, "N n n n n"]]:
        r"""$g = J^\top A J$ in the chart at each node, with its first and second derivatives.

        From the series $A$ of the symmetrised nodal values and its chart jet, by the
        derivatives of the central projection at $u = 0$: $J = E$,
        $\partial_k J_i = -\delta_{ik} x$,
        $\partial_k \partial_l J_i = -(\delta_{kl} E_i + \delta_{il} E_k + \delta_{ik} E_l)$.
        """
        if not self.fast:
            return super().nodal_metric_jet(values)
        a, da, dda = self._series_jet(0.5 * (values + jnp.swapaxes(values, -1, -2)))
        frames = jax.vmap(self.frame)(self.nodes)
        return jax.vmap(_central_pullback_jet)(self.nodes, frames, a, da, dda)

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
