"""The manifold contract: `AbstractManifold` (quadrature, reference metric, charts, spectral fields).

Also `safe_norm`, the Euclidean norm with a finite derivative at 0 that the
concrete manifolds' distances use.
"""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._types import ChartVector, Frame, Matrix, Point, Points, Scalar, Weights


def safe_norm(v: Float[Array, " k"]) -> Scalar:
    """Euclidean norm whose derivative is finite at 0 (so that d(x, y)^2 is smooth on the diagonal)."""
    sq = jnp.sum(v**2)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


class AbstractManifold(eqx.Module):
    r"""A compact Riemannian manifold $(M, g_\mathrm{ref})$ with a quadrature rule.

    Points are carried in a fixed *representation* $\mathbb{R}^D$: chart
    coordinates on a torus ($D = n$), ambient coordinates of the unit sphere
    in $\mathbb{R}^{n+1}$ ($D = n + 1$). Symmetric 2-tensors are carried as
    $D \times D$ component fields $A(x)$ in that representation; the tensor
    they stand for is $A$ restricted to the tangent space $T_xM$ (see
    docs/conventions.md, Normalisations and tensors).

    Quadrature: $\sum_a w_a f(x_a) \approx \int_M f\, d\mu$, $\mu$ the
    volume measure of $g_\mathrm{ref}$.

    Charts: for every point $x$ a map $\varphi_x: \mathbb{R}^n \to M$ with
    $\varphi_x(0) = x$ whose differential at $0$ is a $g_\mathrm{ref}$-orthonormal
    frame $E(x)$. Curvature is computed by automatic differentiation in these
    charts, at $u = 0$.

    Spectral fields: `transform` maps nodal values to coefficients of the
    manifold's spectral basis (Fourier on tori, spherical harmonics on spheres)
    and `evaluate` sums the series anywhere; fields band-limited to
    `band_limit` are reproduced exactly.
    """

    dim: eqx.AbstractVar[int]
    nodes: eqx.AbstractVar[Points]
    weights: eqx.AbstractVar[Weights]

    @property
    @abc.abstractmethod
    def ambient_dim(self) -> int:
        """$D$, the length of a point's representation."""

    @property
    @abc.abstractmethod
    def band_limit(self) -> int:
        """The largest degree (wavenumber on tori) the spectral interpolant reproduces exactly."""

    @property
    @abc.abstractmethod
    def interpolates(self) -> bool:
        """Whether the spectral series of any nodal values passes through them.

        True on tori (trigonometric interpolation). False on spheres, where the
        series is the quadrature projection onto harmonics of degree <=
        `band_limit` (fewer functions than nodes): it reproduces band-limited
        data only, and `NodalMetric` checks that it does.
        """

    @property
    @abc.abstractmethod
    def volume(self) -> float:
        r"""$\mathrm{vol}(M, g_\mathrm{ref})$, exact."""

    @abc.abstractmethod
    def reference(self, x: Point) -> Matrix:
        r"""Components of $g_\mathrm{ref}$ at `x` in the representation."""

    @abc.abstractmethod
    def chart(self, x: Point, u: ChartVector) -> Point:
        r"""$\varphi_x(u)$: the chart centred at `x`, with $d\varphi_x(0) = E(x)$ orthonormal."""

    @abc.abstractmethod
    def frame(self, x: Point) -> Frame:
        r"""$E(x) = d\varphi_x(0)$, a $g_\mathrm{ref}$-orthonormal basis of $T_xM$, shape (D, n)."""

    @abc.abstractmethod
    def distance(self, x: Point, y: Point) -> Scalar:
        r"""Geodesic distance of $g_\mathrm{ref}$ between `x` and `y`."""

    @abc.abstractmethod
    def transform(self, values: Float[Array, "N *shape"]) -> Any:
        """Spectral coefficients of nodal values (trailing axes are carried along)."""

    @abc.abstractmethod
    def evaluate(self, coefficients: Any, x: Point) -> Float[Array, "*shape"]:
        """The spectral series with these coefficients, summed at the point `x`."""

    @abc.abstractmethod
    def laplace_eigenvalues(self) -> Float[Array, "*slots"]:
        r"""The eigenvalue of $-\Delta_\mathrm{ref}$ of each coefficient slot of `transform`.

        Shaped like the leading (spectral) axes of the coefficients:
        $|k|^2$ on tori, $l(l + n - 1)$ on $S^n$.
        """

    @abc.abstractmethod
    def random_field(
        self, key: PRNGKeyArray, band_limit: int, shape: tuple[int, ...] = ()
    ) -> Callable[[Point], Float[Array, "*shape"]]:
        """A seeded random smooth field band-limited to `band_limit`, defined at every point.

        Each component is bounded by one in absolute value everywhere (not only at
        the nodes); the same key and band limit give the same field on every
        resolution of this manifold.
        """

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, count: int) -> Points:
        r"""`count` seeded points drawn uniformly from $\mu / \mathrm{vol}$."""

    # Concrete helpers shared by every manifold.

    def reference_at_nodes(self) -> Float[Array, "N D D"]:
        r"""$g_\mathrm{ref}$ at every node."""
        return jax.vmap(self.reference)(self.nodes)

    def integrate(self, values: Float[Array, "N *shape"]) -> Float[Array, "*shape"]:
        r"""$\sum_a w_a f(x_a) \approx \int_M f\, d\mu$ over the leading (node) axis."""
        if jnp.shape(values)[:1] != self.weights.shape:
            raise ValueError(
                f"{self!r}: integrate needs values with a leading (node) axis of "
                f"{self.weights.shape[0]}, got shape {jnp.shape(values)}."
            )
        return jnp.tensordot(self.weights, values, axes=(0, 0))

    def _slots(self) -> tuple[int, ...]:
        """The shape of the spectral slots: the leading axes of `transform`'s coefficients."""
        return tuple(jnp.shape(self.laplace_eigenvalues()))

    def _check_coefficients(self, caller: str, coefficients) -> None:
        """`ValueError` unless the leading axes of `coefficients` are the spectral slots."""
        slots = self._slots()
        if tuple(jnp.shape(coefficients))[: len(slots)] != slots:
            raise ValueError(
                f"{self!r}: {caller} needs coefficients whose leading shape is {slots} (one per "
                f"spectral slot, as `transform` gives), got shape {jnp.shape(coefficients)}."
            )

    def to_representation(self, x: Point, tensor: Float[Array, "n n"]) -> Float[Array, "D D"]:
        r"""Components $E\,T\,E^\top$ in the representation of a covariant 2-tensor given in the chart at `x`."""
        frame = self.frame(x)
        return frame @ tensor @ frame.T

    def tangential(self, values: Float[Array, "N D D"]) -> Float[Array, "N n n"]:
        r"""$E^\top A\, E$ at every node: the chart components of nodal tensors (what $g = PAP$ sees)."""
        frames = jax.vmap(self.frame)(self.nodes)
        return jnp.einsum("nai,nab,nbj->nij", frames, values, frames)

    def chart_jet(
        self, f: Callable[[Point], Array], x: Point
    ) -> tuple[Float[Array, "*shape n"], Float[Array, "*shape n n"]]:
        """First and second derivatives of `f` in the chart centred at `x`, at $u = 0$.

        Forward over forward: the chart has n <= 3 directions, and reverse mode
        would store a whole spectral sum at every point.
        """
        u0 = jnp.zeros((self.dim,), dtype=x.dtype)

        def in_chart(u):
            return f(self.chart(x, u))

        return jax.jacfwd(in_chart)(u0), jax.jacfwd(jax.jacfwd(in_chart))(u0)

    @property
    def flat_chart(self) -> bool:
        """Whether every chart is $x + u$ with the identity frame (chart components = representation)."""
        return False

    def resolved_slots(self) -> Float[Array, "*slots"]:
        """1 for coefficient slots whose derivatives the series resolves, 0 otherwise.

        All ones except the Nyquist slots of even torus grids, whose first
        derivative vanishes at every node (a checkerboard has no discrete
        gradient energy); eigen-solves filter those slots out.
        """
        return jnp.ones_like(self.laplace_eigenvalues())

    def synthesize(self, coefficients: Any) -> Float[Array, "N *shape"]:
        """The spectral series with these coefficients at every node."""
        self._check_coefficients("synthesize", coefficients)
        return jax.vmap(lambda x: self.evaluate(coefficients, x))(self.nodes)

    def spectral_multiply(
        self, values: Float[Array, "N *shape"], multiplier: Float[Array, "*slots"]
    ) -> Float[Array, "N *shape"]:
        """Multiply each spectral coefficient of nodal values by `multiplier` (one per slot) and synthesise."""
        slots = self._slots()
        if tuple(jnp.shape(multiplier)) != slots:
            raise ValueError(
                f"{self!r}: spectral_multiply needs one multiplier per spectral slot, shape "
                f"{slots} (as `laplace_eigenvalues` gives), got shape {jnp.shape(multiplier)}."
            )
        coefficients = self.transform(values)
        extra = coefficients.ndim - multiplier.ndim
        multiplier = multiplier.astype(coefficients.dtype)
        return self.synthesize(coefficients * multiplier.reshape(multiplier.shape + (1,) * extra))

    def nodal_jet(
        self, values: Float[Array, "N *shape"]
    ) -> tuple[Float[Array, "N *shape n"], Float[Array, "N *shape n n"]]:
        """First and second derivatives of the spectral series of nodal values, in the chart at each node."""
        return self._coefficient_jet(self.transform(values))

    def _coefficient_jet(
        self, coefficients: Any
    ) -> tuple[Float[Array, "N *shape n"], Float[Array, "N *shape n n"]]:
        """First and second chart derivatives at each node of the series with these coefficients."""
        return jax.vmap(lambda x: self.chart_jet(lambda y: self.evaluate(coefficients, y), x))(
            self.nodes
        )

    def nodal_metric_jet(
        self, values: Float[Array, "N D D"]
    ) -> tuple[Float[Array, "N n n"], Float[Array, "N n n n"], Float[Array, "N n n n n"]]:
        r"""The metric whose components are the series of nodal `values`, in the chart at each node.

        $g = J^\top A J$ at $u = 0$, $A$ the series of the symmetrised values, with
        its first and second chart derivatives in the trailing axes (what
        `geometry_from_jet` takes). Flat charts: the values and `nodal_jet`; others:
        automatic differentiation of the pulled-back series at each node.
        """
        values = 0.5 * (values + jnp.swapaxes(values, -1, -2))
        if self.flat_chart:
            return values, *self.nodal_jet(values)
        coefficients = self.transform(values)
        u0 = jnp.zeros((self.dim,), dtype=values.dtype)

        def at(x):
            def g(u):
                return self.pull_back(lambda y: self.evaluate(coefficients, y), x, u)

            return g(u0), jax.jacfwd(g)(u0), jax.jacfwd(jax.jacfwd(g))(u0)

        return jax.vmap(at)(self.nodes)

    def isotropic_extension(self, x: Point, tensor: Float[Array, "n n"]) -> Float[Array, "D D"]:
        r"""$E\,T\,E^\top + \tfrac{1}{n}\mathrm{tr}(T)\,(I - E E^\top)$: representation components of `tensor`.

        The same tensor as `to_representation` (the normal part is invisible to
        $g = P A P$), extended isotropically off the tangent space, which keeps
        the ambient components smooth: the round metric's $c\,P_x$ becomes the
        constant $c\,I$. Local flows use it so that band-limited states stay
        band-limited; kernels sum the tangential components (docs/conventions.md, Normalisations and
        tensors).
        """
        frame = self.frame(x)
        normal = jnp.eye(frame.shape[0], dtype=frame.dtype) - frame @ frame.T
        return frame @ tensor @ frame.T + jnp.trace(tensor) / self.dim * normal

    def pull_back(
        self, components: Callable[[Point], Matrix], x: Point, u: ChartVector
    ) -> Float[Array, "n n"]:
        r"""$J^\top A(\varphi_x(u))\, J$, $J = \partial\varphi_x/\partial u$: a component field in the chart at `x`."""
        jac = jax.jacfwd(self.chart, argnums=1)(x, u)
        return jac.T @ components(self.chart(x, u)) @ jac

    def check_points(self, points: Float[Array, "P D"], name: str) -> None:
        """Raise `ValueError` if concrete `points` are not finite points of this manifold."""
        if isinstance(points, jax.core.Tracer):
            return
        bad = ~jnp.all(jnp.isfinite(points), axis=-1)
        if bool(jnp.any(bad)):
            raise ValueError(f"{name}: point {int(jnp.argmax(bad))} is not finite.")

    def check_resolves(self, band_limit: int, what: str) -> None:
        """Raise a `ValueError` if a field of this band limit is not resolved exactly."""
        if band_limit > self.band_limit:
            raise ValueError(
                f"{what} has band limit {band_limit}, but {self!r} resolves only up to "
                f"{self.band_limit}; raise the resolution or lower the band limit."
            )
