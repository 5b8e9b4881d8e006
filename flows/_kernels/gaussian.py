r"""The Gaussian family of kernels: the local kernel $\delta$, the normalised Gaussian, rescaling.

Each is an `AbstractKernel` (`base.py`): it gives `smooth`, `apply`, and, where it
is diagonal in the spectral basis, a `multiplier`.
- `DeltaKernel`: $\delta_x(y)$, the local kernel (multiplier 1).
- `GaussianKernel(sigma)`: $e^{-d(x,y)^2/2\sigma^2}/Z_\sigma$, multiplier
  $e^{-\sigma^2|k|^2/2}$ on tori and its Funk–Hecke eigenvalues (`funk_hecke`) on
  spheres, applied exactly in the spectral basis with no aliasing.
- `SpectralGaussian(manifold, sigma)`: the same multiplier with σ a traced array,
  so one compiled flow serves every width (σ = 0 is the local flow).
- `RescaledKernel(kernel, s)`: $s(x)\, k(x, y)\, s(y)$, applied by quadrature.
"""

import functools
import math
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.special
from jaxtyping import Array, Float

from .._manifolds import AbstractManifold, Sphere, Torus
from .._misc import real_scalar
from .._types import Point, Scalar
from .base import AbstractKernel, _check_nodal

# The profiles as functions of the angle. Written so that no width overflows or divides by
# zero (sigma = 1e300 and 1e-300 included); beyond 40 sigma both are below e^-300.
_REACH = 40.0


def _geodesic_profile(theta: float, sigma: float) -> float:
    r = theta / sigma
    return math.exp(-0.5 * r * r) if r < _REACH else 0.0


def _chordal_profile(theta: float, sigma: float) -> float:
    r = theta / sigma
    # exp(-|x - y|^2 / 2 sigma^2), |x - y|^2 / 2 = 1 - cos(theta) >= 2 theta^2 / pi^2
    return math.exp(-((1 - math.cos(theta)) / sigma) / sigma) if r < _REACH else 0.0


def _upper_limit(sigma: float) -> float:
    """Where the radial integrals end: pi, or 40 sigma for a narrow Gaussian (quad must see its peak)."""
    return min(math.pi, _REACH * sigma)


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
            radial, 0, _upper_limit(sigma), args=(ell,), epsabs=epsabs, epsrel=1e-13, limit=400
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
        value = real_scalar(sigma)
        if value is None or not math.isfinite(value) or not value > 0:
            raise ValueError(f"GaussianKernel: sigma must be a finite number > 0, got {sigma!r}.")
        self.sigma = value

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"]:
        r"""Torus: $e^{-\sigma^2|k|^2/2}$. Sphere $S^n$: the Funk–Hecke eigenvalue of each degree $l$,
        $|S^{n-1}| Z_\sigma^{-1}\int_0^\pi e^{-\theta^2/2\sigma^2} P_l(\cos\theta) \sin^{n-1}\theta\, d\theta$,
        $P_l = C_l^{(n-1)/2} / C_l^{(n-1)/2}(1)$ (scipy quadrature, relative error ~1e-13)."""
        self.check_width(manifold)
        s = self.sigma
        if isinstance(manifold, Torus):
            # s**2 overflows (OverflowError) for a wide kernel on T^1: s * s is inf there
            s2 = s**2 if s < 1e150 else s * s
            eig = manifold.laplace_eigenvalues()
            return jnp.where(eig == 0, 1.0, jnp.exp(-s2 * eig / 2))
        if isinstance(manifold, Sphere):
            values = self.degree_multipliers(manifold.dim, manifold.band_limit)
            return jnp.asarray(values[manifold.harmonic_degrees()])
        return None

    def degree_multipliers(self, dim: int, max_degree: int) -> np.ndarray:
        r"""Funk–Hecke eigenvalues on $S^\mathrm{dim}$ for degrees 0..`max_degree` (1 at degree 0)."""
        return funk_hecke(self.sigma, dim, max_degree)

    def _log_normaliser(self, manifold: AbstractManifold) -> float:
        s = self.sigma
        if isinstance(manifold, Torus):
            return manifold.dim * (0.5 * math.log(2 * math.pi) + math.log(s))
        if isinstance(manifold, Sphere):
            n = manifold.dim
            sphere_area = 2 * math.pi ** (n / 2) / math.gamma(n / 2)  # |S^{n-1}|
            radial, _ = scipy.integrate.quad(
                lambda t: _geodesic_profile(t, s) * math.sin(t) ** (n - 1),
                0,
                _upper_limit(s),
                epsabs=0,
                epsrel=1e-13,
                limit=200,
            )
            return math.log(sphere_area * radial) if radial > 0 else -math.inf
        raise ValueError(f"GaussianKernel: no normalisation for {manifold!r}.")

    def check_width(self, manifold: AbstractManifold) -> None:
        r"""`ValueError` unless $Z_\sigma$ on `manifold` and $1/Z_\sigma$ are normal float64 numbers.

        Outside that range the kernel's values overflow or vanish (σ = 1e-160 on $T^2$,
        1e-300 on $S^2$; σ = 1e300 on a torus): such a width acts as the local kernel
        (`DeltaKernel`), or, on a torus, as the mean. Every use of the kernel on a
        manifold (`multiplier`, `normaliser`, values, `apply`) checks it first.
        """
        if not isinstance(manifold, (Torus, Sphere)):
            return
        log_z = self._log_normaliser(manifold)
        info = np.finfo(np.float64)
        low, high = math.log(info.tiny), math.log(info.max)
        if not low < log_z < high:
            shown = f"e^{log_z:.0f}" if math.isfinite(log_z) else "0"
            raise ValueError(
                f"GaussianKernel: sigma = {self.sigma:g} on {manifold!r} has normalisation "
                f"Z_sigma = {shown}, outside float64's normal range "
                f"[{info.tiny:.1e}, {info.max:.1e}], so its values "
                f"{'overflow' if log_z <= low else 'vanish'}. "
                + (
                    "A width this small acts as the local kernel: use flows.DeltaKernel()."
                    if log_z <= low
                    else "A width this large acts as the mean over the torus."
                )
            )

    def quadrature_error(self, manifold: AbstractManifold) -> float:
        r"""An estimate of `apply`'s relative error, by quadrature over the nodes of `manifold`.

        Both on a constant field. Torus with $n$ points per axis: its aliases,
        $2\,\mathrm{dim}\, e^{-\sigma^2 n^2/2}$ (Poisson summation). Sphere $S^n$ with a
        rule exact to degree $L$: the kernel's part from degree $L$ on, which the rule
        misses, about $e^{-\sigma^2 L(L + n - 1)/2}$. Fields of higher degree fare worse.
        """
        s = self.sigma
        if isinstance(manifold, Torus):
            sn = s * manifold.n  # products, not powers: inf rather than OverflowError
            return 2 * manifold.dim * math.exp(-0.5 * min(sn * sn, 1e4))
        if isinstance(manifold, Sphere):
            ell = manifold.degree
            return math.exp(-0.5 * min(s * s * ell * (ell + manifold.dim - 1), 1e4))
        return 0.0

    def _check_quadrature(self, manifold: AbstractManifold) -> None:
        """`apply` is refused where the nodes cannot resolve the width (`quadrature_error`
        above 1%): `smooth` is exact in the spectral basis."""
        error = self.quadrature_error(manifold)
        if error > 1e-2:
            raise ValueError(
                f"GaussianKernel.apply: the nodes of {manifold!r} cannot resolve sigma = "
                f"{self.sigma:g} by quadrature (estimated relative error {error:.1g}). Use "
                "smooth (the exact spectral multiplier), a finer grid, or a wider kernel."
            )

    def normaliser(self, manifold: AbstractManifold) -> float:
        r"""$Z_\sigma$ on `manifold` (torus: $(2\pi\sigma^2)^{n/2}$; sphere by quadrature)."""
        self.check_width(manifold)
        return math.exp(self._log_normaliser(manifold))

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
            n = manifold.dim
            diff = jnp.mod(x - y + jnp.pi, 2 * jnp.pi) - jnp.pi
            # Two exact forms of the periodised Gaussian; the one with fewer terms is summed:
            # images within 9 sigma (the rest below e^-40), or, for a wide Gaussian, its
            # Fourier series (2 pi)^-n sum_k e^{-sigma^2 |k|^2 / 2} cos(k.(x - y)) over
            # sigma |k| <= 9 (σ = 1e5 asked for 1e10 images per axis).
            m = math.ceil(9 * s / (2 * math.pi)) + 1
            k = math.ceil(9 / s)
            if 2 * m + 1 <= 2 * k + 1:
                grid = np.arange(-m, m + 1)
                images = np.stack(np.meshgrid(*([grid] * n), indexing="ij"), -1).reshape(-1, n)
                shifted = diff + 2 * jnp.pi * jnp.asarray(images, dtype=x.dtype)
                return jnp.sum(jnp.exp(-jnp.sum(shifted**2, axis=-1) / (2 * s**2))) / z
            grid = np.arange(-k, k + 1)
            waves = np.stack(np.meshgrid(*([grid] * n), indexing="ij"), -1).reshape(-1, n)
            with np.errstate(over="ignore"):  # e^-inf = 0 for a very wide kernel
                weights = np.exp(-0.5 * (s * np.linalg.norm(waves, axis=-1)) ** 2)
            phases = jnp.asarray(waves, dtype=x.dtype) @ diff
            return (
                jnp.sum(jnp.asarray(weights, dtype=x.dtype) * jnp.cos(phases)) / (2 * math.pi) ** n
            )
        r = manifold.distance(x, y) / s
        return jnp.exp(-0.5 * r * r) / z


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


class SpectralGaussian(AbstractKernel):
    r"""The normalised Gaussian $k_\sigma$ applied through its exact spectral multiplier, σ traced.

    The multiplier is `GaussianKernel`'s: $e^{-\sigma^2|k|^2/2}$ on tori, the
    Funk–Hecke eigenvalue of each degree on spheres (tabulated here, from
    `GaussianKernel(sigma).degree_multipliers`). σ is an array, not a static
    field, so one compiled flow serves every width; σ = 0 is the identity (the
    local flow). It has no pointwise values (`smooth` only, which is what
    `MetricFlow` uses).

    **Arguments:** `manifold` (a `Torus` or `Sphere`), `sigma` >= 0.
    """

    sigma: Float[Array, ""]
    degree_multipliers: Float[Array, " L"]

    def __init__(self, manifold: AbstractManifold, sigma: float):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"SpectralGaussian: sigma must be finite and >= 0, got {sigma!r}.")
        dtype = manifold.nodes.dtype
        self.sigma = jnp.asarray(sigma, dtype=dtype)
        if isinstance(manifold, Sphere):
            table = (
                GaussianKernel(sigma).degree_multipliers(manifold.dim, manifold.band_limit)
                if sigma > 0
                else np.ones(manifold.band_limit + 1)
            )
        elif isinstance(manifold, Torus):
            table = np.ones(1)  # unused: the torus multiplier is computed from sigma
        else:
            raise ValueError(f"SpectralGaussian: needs a torus or a sphere, got {manifold!r}.")
        self.degree_multipliers = jnp.asarray(table, dtype=dtype)

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"]:
        if isinstance(manifold, Torus):
            return jnp.exp(-(self.sigma**2) * manifold.laplace_eigenvalues() / 2)
        return self.degree_multipliers[jnp.asarray(manifold.harmonic_degrees())]

    def __call__(self, manifold, x, y):
        raise ValueError(
            "SpectralGaussian acts through its spectral multiplier only (smooth); for pointwise "
            "values k(x, y) use flows.GaussianKernel(sigma)."
        )
