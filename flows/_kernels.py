r"""Scalar kernels $k(x, y)$ on a manifold and their application by quadrature.

`apply` computes $(K V)(x_p) = \sum_b w_b\, k(x_p, x_b)\, V_b$ for nodal values
$V$ with any trailing shape (the componentwise action of a kernel on tensor
components, `shared/DESIGN.md` §2), in chunks of rows under `lax.map`, so the
memory is O(chunk x N), never an N x N array per component.

`smooth` is what flows use: the kernel applied to the spectral series of nodal
values, returned at the nodes. Kernels with a spectral `multiplier` (the
Gaussian: $e^{-\sigma^2|k|^2/2}$ on tori, its Funk–Hecke eigenvalues on
spheres) do it exactly in the spectral basis (FFT on tori), with no aliasing;
others fall back on `apply`. On spheres tensors are smoothed ambient component
by ambient component, which commutes with rotations.
"""

import abc
import functools
import math
import numbers
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.special
from jaxtyping import Array, Float

from ._manifolds import AbstractManifold, Sphere, Torus
from ._types import Point, Scalar


def _check_nodal(kernel, manifold: AbstractManifold, values, what: str) -> None:
    """`ValueError` unless `values` has the nodes' leading axis and, when concrete, is finite.

    Traced values (a flow's state inside a solve) are not checked here: the solver's
    events stop on a non-finite state.
    """
    name = type(kernel).__name__
    if not isinstance(manifold, AbstractManifold):
        raise ValueError(f"{name}.{what}: manifold must be a manifold, got {manifold!r}.")
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
        if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral) or chunk < 1:
            raise ValueError(
                f"{type(self).__name__}.apply: chunk must be an integer >= 1, got {chunk!r}."
            )
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


def _geodesic_profile(theta: float, sigma: float) -> float:
    return math.exp(-(theta**2) / (2 * sigma**2))


def _chordal_profile(theta: float, sigma: float) -> float:
    return math.exp(-(1 - math.cos(theta)) / sigma**2)  # exp(-|x - y|^2 / 2 sigma^2)


_PROFILES = {"geodesic": _geodesic_profile, "chordal": _chordal_profile}


@functools.cache
def funk_hecke(sigma: float, dim: int, max_degree: int, profile: str = "geodesic") -> np.ndarray:
    r"""Normalised Funk–Hecke eigenvalues (1 at degree 0) of a Gaussian zonal kernel on $S^\mathrm{dim}$.

    `profile`: `"geodesic"` ($e^{-\theta^2/2\sigma^2}$) or `"chordal"`
    ($e^{-|x-y|^2/2\sigma^2}$); by scipy quadrature, relative error ~1e-13.
    """
    alpha = (dim - 1) / 2
    shape = _PROFILES[profile]

    def radial(t, ell):
        p = scipy.special.eval_gegenbauer(ell, alpha, math.cos(t)) / scipy.special.eval_gegenbauer(
            ell, alpha, 1.0
        )
        return shape(t, sigma) * p * math.sin(t) ** (dim - 1)

    def integral(ell, epsabs):
        value, _ = scipy.integrate.quad(
            radial, 0, math.pi, args=(ell,), epsabs=epsabs, epsrel=1e-13, limit=400
        )
        return value

    z = integral(0, 0.0)
    with warnings.catch_warnings():
        # high degrees: the integrand oscillates to ~1e-15 z, where quad reports roundoff;
        # the absolute accuracy asked for (1e-15 z) is what the multipliers need
        warnings.simplefilter("ignore", scipy.integrate.IntegrationWarning)
        return np.array([integral(ell, 1e-15 * z) / z for ell in range(max_degree + 1)])


class DeltaKernel(AbstractKernel):
    r"""The local kernel $k(x, y) = \delta_x(y)$: `smooth` and `apply` at the nodes return the values.

    It has no pointwise values (`__call__` raises); flows with it are local
    (Perelman's and Hamilton's own flows, or the componentwise local flow).
    """

    @property
    def is_local(self) -> bool:
        return True

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        raise ValueError(
            "DeltaKernel has no pointwise values k(x, y); use smooth/apply on nodal values."
        )

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"]:
        return jnp.ones_like(manifold.laplace_eigenvalues())

    def smooth(self, manifold: AbstractManifold, values: Float[Array, "N *shape"]):
        _check_nodal(self, manifold, values, "smooth")
        return values

    def apply(self, manifold, values, points=None, *, chunk: int = 512):
        if points is not None:
            raise ValueError(
                "DeltaKernel.apply: the local kernel acts at the nodes only (points=None)."
            )
        _check_nodal(self, manifold, values, "apply")
        return values


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
        if not (
            isinstance(sigma, numbers.Real)
            and not isinstance(sigma, bool)
            and math.isfinite(sigma)
            and sigma > 0
        ):
            raise ValueError(f"GaussianKernel: sigma must be a finite number > 0, got {sigma!r}.")
        self.sigma = float(sigma)

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"]:
        r"""Torus: $e^{-\sigma^2|k|^2/2}$. Sphere $S^n$: the Funk–Hecke eigenvalue of each degree $l$,
        $|S^{n-1}| Z_\sigma^{-1}\int_0^\pi e^{-\theta^2/2\sigma^2} P_l(\cos\theta) \sin^{n-1}\theta\, d\theta$,
        $P_l = C_l^{(n-1)/2} / C_l^{(n-1)/2}(1)$ (scipy quadrature, relative error ~1e-13)."""
        s = self.sigma
        if isinstance(manifold, Torus):
            return jnp.exp(-(s**2) * manifold.laplace_eigenvalues() / 2)
        if isinstance(manifold, Sphere):
            values = self.degree_multipliers(manifold.dim, manifold.band_limit)
            return jnp.asarray(values[manifold.harmonic_degrees()])
        return None

    def degree_multipliers(self, dim: int, max_degree: int) -> np.ndarray:
        r"""Funk–Hecke eigenvalues on $S^\mathrm{dim}$ for degrees 0..`max_degree` (1 at degree 0)."""
        return funk_hecke(self.sigma, dim, max_degree)

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
        d = manifold.nodes.shape[1]
        if jnp.shape(x) != (d,) or jnp.shape(y) != (d,):
            raise ValueError(
                f"GaussianKernel: points on {manifold!r} have shape ({d},), got "
                f"{jnp.shape(x)} and {jnp.shape(y)}."
            )
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


class RescaledKernel(AbstractKernel):
    r"""$s(x)\, k(x, y)\, s(y)$: the rescaling trick.

    A network multiplied by a fixed function $s$ has its NTK multiplied by
    $s(x)s(y)$. **Arguments:** `kernel`, and `rescale`: $s$, a function of a
    point or a constant. Applied by quadrature (`apply`).
    """

    kernel: AbstractKernel
    rescale: Callable[[Point], Scalar] | float

    def __init__(self, kernel: AbstractKernel, rescale: Callable[[Point], Scalar] | float):
        if not isinstance(kernel, AbstractKernel) or kernel.is_local:
            raise ValueError(f"RescaledKernel: needs a non-local kernel module, got {kernel!r}.")
        if not callable(rescale) and not (
            isinstance(rescale, (int, float)) and math.isfinite(rescale)
        ):
            raise ValueError(
                f"RescaledKernel: rescale must be callable or a finite number, got {rescale!r}."
            )
        self.kernel = kernel
        self.rescale = rescale if callable(rescale) else float(rescale)

    def factor(self, x: Point) -> Scalar:
        """$s(x)$."""
        if callable(self.rescale):
            return jnp.asarray(self.rescale(x), dtype=x.dtype)
        return jnp.asarray(self.rescale, dtype=x.dtype)

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        return self.factor(x) * self.kernel(manifold, x, y) * self.factor(y)

    def apply(self, manifold, values, points=None, *, chunk: int = 512):
        r"""$s(x_p) \sum_b w_b\, k(x_p, x_b)\, s(x_b) V_b$ (the inner kernel's own `apply`)."""
        points = manifold.nodes if points is None else points

        def scaled(v, at):
            s = jax.vmap(self.factor)(at)
            return v * s.reshape((-1,) + (1,) * (v.ndim - 1))

        inner = self.kernel.apply(manifold, scaled(values, manifold.nodes), points, chunk=chunk)
        return scaled(inner, points)
