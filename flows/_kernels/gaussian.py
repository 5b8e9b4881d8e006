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
from .base import AbstractKernel, _check_chunk, _check_manifold, _check_nodal

# The profiles as functions of the angle. Written so that no width overflows or divides by
# zero (sigma = 1e300 and 1e-300 included); beyond 40 sigma both are below e^-300.
_REACH = 40.0


def _geodesic_profile(theta: float, sigma: float) -> float:
    r = theta / sigma
    return math.exp(-0.5 * r * r) if r < _REACH else 0.0


def _chordal_profile(theta: float, sigma: float) -> float:
    r = theta / sigma
    # exp(-|x - y|^2 / 2 sigma^2), |x - y|^2 / 2 = 1 - cos(theta) = 2 sin^2(theta / 2) (without
    # the cancellation of 1 - cos at small theta) >= 2 theta^2 / pi^2
    h = math.sin(theta / 2) / sigma
    return math.exp(-2 * h * h) if r < _REACH else 0.0


def _upper_limit(sigma: float) -> float:
    """Where the radial integrals end: pi, or 40 sigma for a narrow Gaussian (quad must see its peak)."""
    return min(math.pi, _REACH * sigma)


def _radial_integral(
    f: Callable[..., float], sigma: float, *, epsabs: float = 0.0, **kwargs
) -> float:
    r"""$\int_0^{\min(\pi, 40\sigma)} f$ by scipy's quad at relative accuracy 1e-13, quietly.

    1e-13 is close to roundoff, and quad says so with an `IntegrationWarning` where it cannot
    confirm it (wide Gaussians, high degrees) while its estimate stays accurate: measured
    against 30-digit quadratures, the Funk–Hecke eigenvalues of degrees 0-8 on $S^2$ and
    $S^3$ to 7e-16 and the chordal $Z_\sigma$ to 4e-16 (relative), σ from 1e-8 to 3.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.integrate.IntegrationWarning)
        value, _ = scipy.integrate.quad(
            f, 0, _upper_limit(sigma), epsabs=epsabs, epsrel=1e-13, **kwargs
        )
    return value


def _check_log_normaliser(
    name: str, sigma: float, manifold: AbstractManifold, log_z: float, dtype=None
) -> None:
    r"""`ValueError` unless $Z_\sigma = e^{\log Z}$ and $1/Z_\sigma$ are normal numbers of `dtype` (float64)."""
    info = np.finfo(np.float64 if dtype is None else dtype)
    low, high = math.log(info.tiny), math.log(info.max)
    if not low < log_z < high:
        shown = f"e^{log_z:.0f}" if math.isfinite(log_z) else "0"
        raise ValueError(
            f"{name}: sigma = {sigma:g} on {manifold!r} has normalisation "
            f"Z_sigma = {shown}, outside {info.dtype.name}'s normal range "
            f"[{info.tiny:.1e}, {info.max:.1e}], so its values "
            f"{'overflow' if log_z <= low else 'vanish'}. "
            + (
                "A width this small acts as the local kernel: use flows.DeltaKernel()."
                if log_z <= low
                else "A width this large acts as the mean over the torus."
            )
        )


_PROFILES = {"geodesic": _geodesic_profile, "chordal": _chordal_profile}


@functools.cache
def _sphere_log_normaliser(sigma: float, dim: int) -> float:
    r"""$\log Z_\sigma$ of the geodesic Gaussian on $S^\mathrm{dim}$ by quadrature, once per
    width (the width check, `normaliser` and the values all need it); $-\infty$ where the
    integral underflows."""
    sphere_area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)  # |S^{dim-1}|
    radial = _radial_integral(
        lambda t: _geodesic_profile(t, sigma) * math.sin(t) ** (dim - 1), sigma, limit=200
    )
    return math.log(sphere_area * radial) if radial > 0 else -math.inf


@functools.cache
def funk_hecke(sigma: float, dim: int, max_degree: int, profile: str = "geodesic") -> np.ndarray:
    r"""Normalised Funk–Hecke eigenvalues (1 at degree 0) of a Gaussian zonal kernel on $S^\mathrm{dim}$.

    `profile`: `"geodesic"` ($e^{-\theta^2/2\sigma^2}$) or `"chordal"`
    ($e^{-|x-y|^2/2\sigma^2}$); by scipy quadrature, relative error ~1e-13. The table is
    cached, so it is read-only (copy it to edit it). `ValueError` where the normalising
    integral underflows to 0 (σ below ~1e-160 on $S^2$): such a width is the local kernel.
    """
    alpha = (dim - 1) / 2
    shape = _PROFILES[profile]

    def radial(t, ell):
        p = scipy.special.eval_gegenbauer(ell, alpha, math.cos(t)) / scipy.special.eval_gegenbauer(
            ell, alpha, 1.0
        )
        return shape(t, sigma) * p * math.sin(t) ** (dim - 1)

    # high degrees: the integrand oscillates to ~1e-15 z, where quad reports roundoff; the
    # absolute accuracy asked for (1e-15 z) is what the multipliers need
    z = _radial_integral(radial, sigma, args=(0,), limit=400)
    if not z > 0:
        raise ValueError(
            f"funk_hecke: the normalising integral of the {profile} Gaussian on S^{dim} "
            "underflows to 0; a width this small acts as the local kernel (multiplier 1): use "
            f"flows.DeltaKernel(), got sigma = {sigma!r}."
        )
    table = np.array(
        [
            _radial_integral(radial, sigma, epsabs=1e-15 * z, args=(ell,), limit=400) / z
            for ell in range(max_degree + 1)
        ]
    )
    table.setflags(write=False)  # the cache's own copy: an edit would reach every later caller
    return table


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
        _check_manifold(self, manifold, "multiplier")
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
        _check_chunk(self, chunk)
        return values


class GaussianKernel(AbstractKernel):
    r"""The normalised Gaussian $k_\sigma(x, y) = e^{-d(x,y)^2/2\sigma^2} / Z_\sigma$, $\int k_\sigma\, d\mu = 1$.

    $d$ is the geodesic distance of $g_\mathrm{ref}$; $Z_\sigma$ is constant on
    these homogeneous spaces and computed exactly, not by the grid's quadrature:
    - torus: the periodised Gaussian $(2\pi\sigma^2)^{-n/2}\sum_{m} e^{-|x - y + 2\pi m|^2/2\sigma^2}$,
      whose Fourier multiplier is exactly $e^{-\sigma^2|k|^2/2}$;
    - sphere $S^n$: $Z_\sigma = |S^{n-1}| \int_0^\pi e^{-\theta^2/2\sigma^2}\sin^{n-1}\theta\, d\theta$.
    As $\sigma \to 0$, $k_\sigma \to \delta$ (the local kernel).

    **Not positive semi-definite on spheres for σ above about 0.45.** $d^2$ has a kink
    at the antipode, of height $e^{-\pi^2/2\sigma^2}$ in the kernel, and geodesic
    Gaussians on spheres are not positive definite (Feragen, Lauze & Hauberg, CVPR 2015):
    some Funk–Hecke eigenvalues (`multiplier`) are negative. Measured, smallest
    eigenvalue (degree): on $S^2$ -1.7e-11 (16) at σ = 0.5, -8.9e-5 (6) at σ = 1,
    -1.1e-2 (2) at σ = 2; on $S^3$ -2.8e-12 (16), -2.6e-5 (6), -6.2e-3 (2). They rise
    above roundoff from σ ≈ 0.45 (-1.5e-13 on $S^2$); at σ = 0.4 and below they are
    within it (1e-15) of 0. A smoothed flow with this kernel runs those modes backwards
    (at σ = 2 the degree-2 part of each smoothed component is multiplied by -0.011), so
    the loss decrease promised for a positive semi-definite kernel (docs/flows.md) is no
    longer guaranteed. The periodised Gaussian on tori is positive definite (every
    multiplier $e^{-\sigma^2|k|^2/2} > 0$), and so is the chordal Gaussian
    $e^{-|x-y|^2/2\sigma^2}$ on spheres, `CosineNTK(sigma, sphere)`: use it where a
    positive semi-definite kernel is needed.

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
        $P_l = C_l^{(n-1)/2} / C_l^{(n-1)/2}(1)$ (scipy quadrature, relative error ~1e-13;
        negative at some degrees for σ above about 0.45: see the class)."""
        _check_manifold(self, manifold, "multiplier")
        self.check_width(manifold)
        s = self.sigma
        if isinstance(manifold, Torus):
            # s**2 overflows (OverflowError) for a wide kernel on T^1: s * s is inf there
            s2 = s**2 if s < 1e150 else s * s
            eig = manifold.laplace_eigenvalues()
            return jnp.where(eig == 0, 1.0, jnp.exp(-s2 * eig / 2))
        if isinstance(manifold, Sphere):
            values = funk_hecke(self.sigma, manifold.dim, manifold.band_limit)
            return jnp.asarray(values[manifold.harmonic_degrees()])
        return None

    def degree_multipliers(self, dim: int, max_degree: int) -> np.ndarray:
        r"""Funk–Hecke eigenvalues on $S^\mathrm{dim}$ for degrees 0..`max_degree` (1 at degree 0).

        A fresh array each call (the table `funk_hecke` caches is read-only).
        """
        return funk_hecke(self.sigma, dim, max_degree).copy()

    def _log_normaliser(self, manifold: AbstractManifold) -> float:
        s = self.sigma
        if isinstance(manifold, Torus):
            return manifold.dim * (0.5 * math.log(2 * math.pi) + math.log(s))
        if isinstance(manifold, Sphere):
            return _sphere_log_normaliser(s, manifold.dim)
        raise ValueError(f"GaussianKernel: no normalisation for {manifold!r}.")

    def check_width(self, manifold: AbstractManifold, dtype=None) -> None:
        r"""`ValueError` unless $Z_\sigma$ on `manifold` and $1/Z_\sigma$ are normal numbers of `dtype`.

        `dtype`: that of the kernel's values, None for float64 (what `multiplier` and
        `normaliser` compute in; `__call__` passes its points' dtype). Outside that
        range the values overflow or vanish. In float64: σ = 1e-160 on $T^2$ and 1e-300
        on $S^2$ are refused, and σ = 1e300 on $T^2$; $T^1$ holds
        $Z_\sigma = \sqrt{2\pi}\,\sigma$ up to σ ≈ 7e307, and a sphere's $Z_\sigma$ tends
        to its area. In float32 σ = 1e-20 is refused on $T^2$ and $S^2$, not on $T^1$.
        Such a width acts as the local kernel (`DeltaKernel`), or, on a torus, as the
        mean. With a `dtype`, σ itself must also be a normal number of it (the values
        divide by it; only $T^1$ would otherwise accept a smaller one). Every use of
        the kernel on a manifold (`multiplier`, `normaliser`, values, `apply`) checks it
        first.
        """
        self._check_width(manifold, dtype, "GaussianKernel")

    def _check_width(self, manifold: AbstractManifold, dtype, name: str) -> None:
        _check_manifold(self, manifold, "check_width")
        if not isinstance(manifold, (Torus, Sphere)):
            return
        _check_log_normaliser(name, self.sigma, manifold, self._log_normaliser(manifold), dtype)
        if dtype is not None and not self.sigma >= np.finfo(dtype).tiny:
            info = np.finfo(dtype)
            raise ValueError(
                f"{name}: sigma on {manifold!r} must be a normal {info.dtype.name} number "
                f"(at least {info.tiny:.1e}): the values divide by it. A width this small acts "
                f"as the local kernel: use flows.DeltaKernel(), got sigma = {self.sigma:g}."
            )

    def quadrature_error(self, manifold: AbstractManifold) -> float:
        r"""An estimate of `apply`'s relative error, by quadrature over the nodes of `manifold`.

        Both on a constant field. Torus with $n$ points per axis: its aliases,
        $2\,\mathrm{dim}\, e^{-\sigma^2 n^2/2}$ (Poisson summation). Sphere $S^n$ with a
        rule exact to degree $L$: the kernel's part from degree $L$ on, which the rule
        misses, about $e^{-\sigma^2 L(L + n - 1)/2}$. Fields of higher degree fare worse.
        """
        _check_manifold(self, manifold, "quadrature_error")
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
        _check_manifold(self, manifold, "normaliser")
        self.check_width(manifold)
        return math.exp(self._log_normaliser(manifold))

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        _check_manifold(self, manifold)
        d = manifold.nodes.shape[1]
        if jnp.shape(x) != (d,) or jnp.shape(y) != (d,):
            raise ValueError(
                f"GaussianKernel: points on {manifold!r} have shape ({d},), got "
                f"{jnp.shape(x)} and {jnp.shape(y)}."
            )
        dtype = jnp.asarray(x).dtype
        self.check_width(manifold, dtype if jnp.issubdtype(dtype, jnp.floating) else None)
        # In log space, e^{-r^2/2 - log Z} with r = |x - y| / sigma taken as a quotient first:
        # sigma^2 and Z underflow to 0 for widths check_width accepts (below sigma ~ 1e-154 on
        # T^1, 1e-20 in float32), where e^{-|x - y|^2 / 2 sigma^2} / Z gave 0 / 0.
        s = self.sigma
        log_z = self._log_normaliser(manifold)
        if isinstance(manifold, Torus):
            n = manifold.dim
            diff = jnp.mod(x - y + jnp.pi, 2 * jnp.pi) - jnp.pi
            # Two exact forms of the periodised Gaussian; the one with fewer terms is summed:
            # images within 9 sigma (the rest below e^-40), or, for a wide Gaussian, its
            # Fourier series (2 pi)^-n sum_k e^{-sigma^2 |k|^2 / 2} cos(k.(x - y)) over
            # sigma |k| <= 9 (σ = 1e5 asked for 1e10 images per axis). At T^1's extreme
            # widths the other form's count is inf (math.ceil of it an OverflowError).
            reach_images, reach_waves = 9 * s / (2 * math.pi), 9 / s
            m = math.ceil(reach_images) + 1 if math.isfinite(reach_images) else math.inf
            k = math.ceil(reach_waves) if math.isfinite(reach_waves) else math.inf
            if m <= k:
                grid = np.arange(-m, m + 1)
                images = np.stack(np.meshgrid(*([grid] * n), indexing="ij"), -1).reshape(-1, n)
                # (diff + 2 pi m) / sigma as diff / sigma + 2 pi m / sigma: the images' part is a
                # constant (inf for the far images of a very narrow kernel, e^-inf = 0); dividing
                # every image's offset by sigma doubled apply's time on Torus(2, 64)
                with np.errstate(over="ignore"):
                    reach = (2 * np.pi * images).astype(x.dtype) / np.asarray(s, dtype=x.dtype)
                shifted = diff / s + jnp.asarray(reach)
                exponent = -0.5 * jnp.sum(shifted**2, axis=-1)
                return jnp.sum(jnp.exp(exponent - log_z))
            grid = np.arange(-k, k + 1)
            waves = np.stack(np.meshgrid(*([grid] * n), indexing="ij"), -1).reshape(-1, n)
            with np.errstate(over="ignore"):  # e^-inf = 0 for a very wide kernel
                weights = np.exp(-0.5 * (s * np.linalg.norm(waves, axis=-1)) ** 2)
            phases = jnp.asarray(waves, dtype=x.dtype) @ diff
            return (
                jnp.sum(jnp.asarray(weights, dtype=x.dtype) * jnp.cos(phases)) / (2 * math.pi) ** n
            )
        r = manifold.distance(x, y) / s
        return jnp.exp(-0.5 * r * r - log_z)


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
        value = None if callable(rescale) else real_scalar(rescale)
        if not callable(rescale) and (value is None or not math.isfinite(value)):
            raise ValueError(
                f"RescaledKernel: rescale must be callable or a finite number, got {rescale!r}."
            )
        self.kernel = kernel
        self.rescale = rescale if callable(rescale) else value

    def factor(self, x: Point) -> Scalar:
        """$s(x)$."""
        if callable(self.rescale):
            return jnp.asarray(self.rescale(x), dtype=x.dtype)
        return jnp.asarray(self.rescale, dtype=x.dtype)

    def __call__(self, manifold: AbstractManifold, x: Point, y: Point) -> Scalar:
        _check_manifold(self, manifold)
        return self.factor(x) * self.kernel(manifold, x, y) * self.factor(y)

    def apply(self, manifold, values, points=None, *, chunk: int = 512):
        r"""$s(x_p) \sum_b w_b\, k(x_p, x_b)\, s(x_b) V_b$ (the inner kernel's own `apply`)."""
        _check_nodal(self, manifold, values, "apply")  # before `values` meets the nodes' factors
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
    `MetricFlow` uses). The kernel belongs to the manifold it is built on:
    `multiplier` refuses a manifold of another kind or dimension, and a sphere of
    higher band limit than its table's.

    **Arguments:** `manifold` (a `Torus` or `Sphere`), `sigma` >= 0 (a width > 0 must
    pass `GaussianKernel(sigma).check_width(manifold)`).
    """

    sigma: Float[Array, ""]
    degree_multipliers: Float[Array, " L"]
    kind: str = eqx.field(static=True)  # "torus" or "sphere": the manifold it is built on
    dim: int = eqx.field(static=True)
    max_degree: int = eqx.field(static=True)  # the table's, the sphere's band limit (torus: 0)

    def __init__(self, manifold: AbstractManifold, sigma: float):
        if not isinstance(manifold, (Torus, Sphere)):
            raise ValueError(f"SpectralGaussian: needs a torus or a sphere, got {manifold!r}.")
        value = real_scalar(sigma)
        if value is None or not math.isfinite(value) or not value >= 0:
            raise ValueError(
                f"SpectralGaussian: sigma must be a finite number >= 0, got {sigma!r}."
            )
        if value > 0:
            GaussianKernel(value)._check_width(manifold, None, "SpectralGaussian")
        dtype = manifold.nodes.dtype
        self.sigma = jnp.asarray(value, dtype=dtype)
        self.dim = manifold.dim
        if isinstance(manifold, Sphere):
            self.kind, self.max_degree = "sphere", manifold.band_limit
            table = (
                funk_hecke(value, manifold.dim, manifold.band_limit)
                if value > 0
                else np.ones(manifold.band_limit + 1)
            )
        else:
            self.kind, self.max_degree = "torus", 0
            table = np.ones(1)  # unused: the torus multiplier is computed from sigma
        self.degree_multipliers = jnp.asarray(table, dtype=dtype)

    def multiplier(self, manifold: AbstractManifold) -> Float[Array, "*slots"]:
        _check_manifold(self, manifold, "multiplier")
        kind = "torus" if isinstance(manifold, Torus) else "sphere"
        if (
            not isinstance(manifold, (Torus, Sphere))
            or (kind, manifold.dim) != (self.kind, self.dim)
            or (kind == "sphere" and manifold.band_limit > self.max_degree)
        ):
            built = f"a {self.kind} of dimension {self.dim}" + (
                f", band limit {self.max_degree}" if self.kind == "sphere" else ""
            )
            raise ValueError(
                f"SpectralGaussian.multiplier: the kernel was built for {built}; build one on "
                f"the manifold it acts on, got {manifold!r}."
            )
        if isinstance(manifold, Torus):
            # where: sigma^2 * 0 is NaN once sigma^2 overflows (sigma > 1e154 on T^1)
            eig = manifold.laplace_eigenvalues()
            return jnp.where(eig == 0, 1.0, jnp.exp(-(self.sigma**2) * eig / 2))
        return self.degree_multipliers[jnp.asarray(manifold.harmonic_degrees())]

    def __call__(self, manifold, x, y):
        raise ValueError(
            "SpectralGaussian acts through its spectral multiplier only (smooth); for pointwise "
            "values k(x, y) use flows.GaussianKernel(sigma)."
        )
