r"""Kähler–Ricci flow on a `SpectralBasis`: the potential, its Galerkin flow and fixed point.

- `SpectralPotential`: $\phi = \sum_\alpha c_\alpha e_\alpha$ and its metric
  $g = J^\top \partial\bar\partial(\log|z|^2 + \phi)\bar J$, $\eta = \det g/|\Omega|^2$.
- `SpectralRicciFlow`: $\dot c = M^{-1} b(c)$, $b_\alpha = \langle e_\alpha,
  \log(\eta/\bar\eta)\rangle$, a diffrax vector field.
- `newton_fixed_point`: its fixed point $b(c) = 0$ by Newton's method.

Inner products as in `spectral_basis`: $\langle f, h\rangle = \sum_a w_a f_a h_a/\sum_a w_a$.
"""

import math
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from .._misc import check_count, is_traced, real_scalar
from .curvature import _inverse
from .kernel_apply import FSGaussian, _row_shifted_apply, _row_shifts
from .losses import sigma_measure
from .sampling import PointSample
from .spectral_basis import SpectralBasis, _batch, _check_sample

# How the non-local flow smooths: at the points before the projection, or by S_sigma's
# Galerkin matrix after it (SpectralRicciFlow).
SMOOTHINGS = ("pointwise", "galerkin")

if TYPE_CHECKING:
    from .spectral_functionals import SpectralGradientFlow


class SpectralPotential(eqx.Module):
    r"""$\phi = \sum_\alpha c_\alpha e_\alpha$ on a `SpectralBasis`, and its metric.

    $g = J^\top\partial\bar\partial(\log|z|^2 + \phi)\bar J = g^\mathrm{FS} + \sum_\alpha c_\alpha
    J^\top\partial\bar\partial e_\alpha \bar J$, the same convention as
    `pulled_back_metric(sample, potential)` (to which a `SpectralPotential` can be
    passed as the callable $\phi$); $\eta = \det g/|\Omega|^2$.

    **Arguments:** `basis`; `coefficients` (P,) real (default zeros: Fubini–Study).
    """

    basis: SpectralBasis
    coefficients: Float[Array, " P"]

    def __init__(self, basis: SpectralBasis, coefficients=None):
        if not isinstance(basis, SpectralBasis):
            raise ValueError(
                f"SpectralPotential: expected a SpectralBasis, got {type(basis).__name__}."
            )
        c = jnp.zeros(basis.size) if coefficients is None else jnp.asarray(coefficients)
        if c.shape != (basis.size,):
            raise ValueError(
                f"SpectralPotential: coefficients must have shape ({basis.size},), one per basis "
                f"function, got shape {c.shape}."
            )
        if not jnp.issubdtype(c.dtype, jnp.floating) and not jnp.issubdtype(c.dtype, jnp.integer):
            raise ValueError(
                f"SpectralPotential: coefficients must be real (the potential is real), got dtype "
                f"{c.dtype}."
            )
        if not is_traced(c) and not bool(jnp.all(jnp.isfinite(c))):
            raise ValueError("SpectralPotential: coefficients must be finite, got NaN or inf.")
        self.basis = basis
        self.coefficients = c

    def __call__(self, z: Complex[Array, " n1"]) -> Float[Array, ""]:
        r"""$\phi([z])$."""
        return self.basis(z) @ self.coefficients

    def ambient_hessian(self, z: Complex[Array, " n1"]) -> Complex[Array, "n1 n1"]:
        r"""$\partial_a\partial_{\bar b}\phi$ at $z$ in the ambient coordinates, in closed form
        (`SpectralBasis.hessian` with no Jacobian); the curvature code differentiates it."""
        h = self.basis.hessian(z)
        return jnp.einsum("p,pab->ab", self.coefficients.astype(h.dtype), h)

    def metric(self, sample: PointSample) -> Complex[Array, "N m m"]:
        r"""$g = g^\mathrm{FS} + \sum_\alpha c_\alpha J^\top\partial\bar\partial e_\alpha\bar J$ at `sample`."""
        _check_sample(self.basis.hypersurface, sample, "SpectralPotential.metric")
        return _metric(self, sample.points, sample.jacobian, self.basis._per_point())

    def eta(self, sample: PointSample) -> Float[Array, " N"]:
        r"""$\eta = \det g/|\Omega|^2$ at `sample`; NaN where $g$ is not positive definite
        (a determinant there is not a volume: it may even be negative)."""
        g = self.metric(sample)
        eta = jnp.real(jnp.linalg.det(g)) / jnp.abs(sample.omega) ** 2
        return jnp.where(jnp.linalg.eigvalsh(g)[:, 0] > 0, eta, jnp.nan)

    def sigma(self, sample: PointSample) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """`sigma_measure(sample, self.metric(sample))`: σ and its standard error.

        Raises `ValueError` where the metric is not positive definite at some point of
        `sample` (σ of such a "metric" is a number without meaning).
        """
        g = self.metric(sample)
        if not is_traced(g):
            bad = np.flatnonzero(~(np.asarray(jnp.linalg.eigvalsh(g)[:, 0]) > 0))
            if bad.size:
                raise ValueError(
                    f"SpectralPotential.sigma: the metric is not positive definite at {bad.size} "
                    f"of {sample.count} sample points (the first: point {int(bad[0])}); the "
                    "coefficients lie outside the Kahler cone there."
                )
        return sigma_measure(sample, g)


@eqx.filter_jit
def _metric(potential, points, jacobian, per_point):
    def one(a):
        z, jac = a
        _, _, h, g_fs = potential.basis._geometry(z, jac)
        return g_fs + jnp.einsum("p,pij->ij", potential.coefficients.astype(h.dtype), h)

    return jax.lax.map(one, (points, jacobian), batch_size=_batch(per_point))


def _weighted_mean(w, x):
    return jnp.tensordot(w, x, axes=1) / jnp.sum(w)


def _pack(h: Complex[Array, "*batch m m"]) -> Float[Array, "*batch q"]:
    r"""A Hermitian $m \times m$ matrix as $m^2$ reals: its diagonal, then the real and the
    imaginary parts of the entries above it (row by row)."""
    m = h.shape[-1]
    i, j = np.triu_indices(m, 1)
    upper = h[..., i, j]
    diagonal = jnp.real(jnp.diagonal(h, axis1=-2, axis2=-1))
    return jnp.concatenate([diagonal, jnp.real(upper), jnp.imag(upper)], axis=-1)


def _unpack(packed: Float[Array, "*batch q"], m: int) -> Complex[Array, "*batch m m"]:
    """The inverse of `_pack`."""
    i, j = np.triu_indices(m, 1)
    u = len(i)
    upper = jax.lax.complex(packed[..., m : m + u], packed[..., m + u :])
    out = jnp.zeros((*packed.shape[:-1], m, m), dtype=upper.dtype)
    out = out.at[..., np.arange(m), np.arange(m)].set(packed[..., :m].astype(upper.dtype))
    out = out.at[..., i, j].set(upper)
    return out.at[..., j, i].set(jnp.conj(upper))


def _packed_logdet(packed: Float[Array, "*batch q"], m: int) -> Float[Array, " *batch"]:
    r"""$\log\det g$ of packed Hermitian matrices (`_pack`); NaN unless positive definite.

    For $m \le 3$ in closed form, positive definiteness by the leading principal
    minors (Sylvester); with $g = \begin{pmatrix} a & x & y\\ \bar x & b & z\\ \bar y & \bar z & c\end{pmatrix}$,
    $\det g = abc - a|z|^2 - b|y|^2 - c|x|^2 + 2\,\mathrm{Re}(x z \bar y)$. Beyond, Cholesky.
    """
    if m > 3:
        lower = jnp.linalg.cholesky(_unpack(packed, m))  # NaN unless positive definite
        return 2 * jnp.sum(jnp.log(jnp.real(jnp.diagonal(lower, axis1=-2, axis2=-1))), axis=-1)
    a = packed[..., 0]
    if m == 1:
        minors = [a]
    elif m == 2:
        b, xr, xi = packed[..., 1], packed[..., 2], packed[..., 3]
        minors = [a, a * b - xr**2 - xi**2]
    else:
        b, c = packed[..., 1], packed[..., 2]
        xr, yr, zr, xi, yi, zi = (packed[..., 3 + q] for q in range(6))  # x = g01, y = g02, z = g12
        x2, y2, z2 = xr**2 + xi**2, yr**2 + yi**2, zr**2 + zi**2
        re_xzy = (xr * zr - xi * zi) * yr + (xr * zi + xi * zr) * yi
        minors = [a, a * b - x2, a * b * c - a * z2 - b * y2 - c * x2 + 2 * re_xzy]
    positive = jnp.all(jnp.stack([x > 0 for x in minors]), axis=0)
    return jnp.where(positive, jnp.log(jnp.where(positive, minors[-1], 1.0)), jnp.nan)


_NOT_FINITE = "SpectralRicciFlow: the state c is not finite (NaN or inf coefficients)."
_OUTSIDE = (
    "SpectralRicciFlow: the metric g_c is not positive definite at some sample point (the "
    "step left the Kahler cone); lower the step size."
)


class SpectralRicciFlow(eqx.Module):
    r"""Kähler–Ricci flow of $\phi = \sum_\alpha c_\alpha e_\alpha$ in Galerkin form.

    $$\dot c = M^{-1} b(c), \qquad M_{\alpha\beta} = \langle e_\alpha, e_\beta\rangle,
    \qquad b_\alpha(c) = \langle e_\alpha, \log(\eta/\bar\eta)\rangle,$$

    $\eta = \det g_c/|\Omega|^2$, $\bar\eta = \langle \eta, 1\rangle$,
    $\langle f, h\rangle = \sum_a w_a f_a h_a/\sum_a w_a$ over `sample` (the $\Omega$
    measure): the projection of $\partial_t\phi = \log(\eta/\bar\eta)$ onto the
    basis. Its fixed point $b(c) = 0$ is the metric whose $\log\eta$ is constant up
    to the basis's complement, the Calabi–Yau metric as $k \to \infty$. Near it
    $\delta\log\eta = \square_g\delta\phi$, so modes decay at the eigenvalues of
    $-\square_g$ (`laplacian_spectrum`).

    The non-local generalisation (`width` $= \sigma$ given): $\log(\eta/\bar\eta)$ is
    replaced by its normalised Fubini–Study Gaussian average before the projection,
    $b_\alpha = \langle e_\alpha, S_\sigma\log(\eta/\bar\eta)\rangle$,

    $$(S_\sigma f)(x_a) = \frac{\sum_b w_b\, k_\sigma(x_a, x_b)\, f_b}{\sum_b w_b\, k_\sigma(x_a, x_b)},
    \qquad k_\sigma = e^{-d_\mathrm{FS}^2/2\sigma^2}$$

    (`FSGaussian`; the normalisation of the point kernels), applied matrix-free
    (`point_kernel_apply`: memory O(chunk²), so it runs on $10^5$ points). $S_\sigma$
    keeps constants, so the linearisation is $\partial_t\delta\phi = S_\sigma\square\delta\phi$
    projected; as $\sigma \to 0$ it tends to the local flow. At finite $k$ its fixed
    point solves $\langle e_\alpha, S_\sigma\log(\eta/\bar\eta)\rangle = 0$, another
    Galerkin fixed point than the local flow's, the two meeting as $k \to \infty$.

    `smoothing="galerkin"` discretises $S_\sigma$ by its Galerkin matrix instead, acting on
    the projected residual: $b = S M^{-1} b^\mathrm{local}$ with
    $S_{\alpha\beta} = \langle e_\alpha, S_\sigma e_\beta\rangle$ (computed once). Its fixed
    points are the local flow's wherever $S$ is nonsingular, and its linearisation is
    $\dot{\delta c} = M^{-1} S M^{-1} J^\mathrm{local}\,\delta c$. $S$ is not symmetric
    (the normalisation divides by each row's mass), so its spectrum is measured, not assumed
    (`smoothing_matrix`). `newton_fixed_point` stops on the norm of $b = S M^{-1}b^\mathrm{local}$,
    which is smaller than $b^\mathrm{local}$'s by up to the smallest eigenvalue of $M^{-1}S$
    (about 0.02 at σ = 0.3 on the quintic at $k = 4$).

    A diffrax vector field: `diffrax.ODETerm(flow)`, state $c$ (P,). Everything that
    does not depend on $c$ is computed once, here: the basis's values and Hessians at
    the sample's points, the Hessians stored as $m^2$ reals per point (the diagonal,
    then the real and imaginary parts above it) with the basis index last, so that
    $g_c$ at every point is one matrix–vector product; and the Gram matrix $M$.
    $\log\det g_c$ is in closed form for $m \le 3$ (curves, surfaces, threefolds).

    **Arguments:** `basis`; `sample` (a `PointSample` of the basis's hypersurface);
    `width`: None (the local flow) or $\sigma > 0$, radians of $d_\mathrm{FS}$;
    `smoothing`: `"pointwise"` ($S_\sigma$ on $\log(\eta/\bar\eta)$ at the sample's
    points, then the projection) or `"galerkin"` ($S$ on the projected residual; needs
    `width`);
    `max_bytes`: as in `SpectralBasis.evaluate`.
    """

    values: Float[Array, "N P"]
    hessians: Float[Array, "N q P"]
    g_fs: Float[Array, "N q"]
    log_omega: Float[Array, " N"]
    weights: Float[Array, " N"]
    mass: Float[Array, "P P"]
    points: Float[Array, "2 N n1"] | None
    kernel: FSGaussian | None
    shifts: tuple[Float[Array, " N"], Int[Array, " N"]] | None
    galerkin: Float[Array, "P P"] | None
    compressed: Float[Array, "P P"] | None
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        basis: SpectralBasis,
        sample: PointSample,
        *,
        width=None,
        smoothing: str = "pointwise",
        max_bytes=None,
    ):
        if not isinstance(basis, SpectralBasis):
            raise ValueError(
                f"SpectralRicciFlow: expected a SpectralBasis, got {type(basis).__name__}."
            )
        if not isinstance(sample, PointSample):
            raise ValueError(
                f"SpectralRicciFlow: expected a PointSample, got {type(sample).__name__}."
            )
        if smoothing not in SMOOTHINGS:
            raise ValueError(
                f"SpectralRicciFlow: smoothing must be one of {SMOOTHINGS}, got {smoothing!r}."
            )
        if smoothing == "galerkin" and width is None:
            raise ValueError(
                "SpectralRicciFlow: smoothing='galerkin' smooths by S_sigma's Galerkin matrix "
                "and needs a width sigma > 0; without one the flow is local (leave smoothing out)."
            )
        if width is None:
            self.kernel, self.points, self.shifts = None, None, None
        else:
            try:
                self.kernel = FSGaussian(width)
            except ValueError as error:
                raise ValueError(
                    f"SpectralRicciFlow: width must be None or a finite number > 0, got {width!r}."
                ) from error
            self.points = jnp.stack([jnp.real(sample.points), jnp.imag(sample.points)])
            # each row's largest exponent, once: the rows of S_sigma are shifted by it, so
            # none is 0/0 however narrow the width (the point kernels' normalisation)
            self.shifts = _row_shifts(
                self.kernel, sample.points, sample.points, caller="SpectralRicciFlow"
            )
        values, _, hessians = basis.evaluate(sample, max_bytes=max_bytes)
        self.dim = basis.hypersurface.dim
        self.values = values
        self.hessians = _packed_hessians(hessians)
        self.g_fs = _pack(sample.g_fs)
        self.log_omega = jnp.log(jnp.abs(sample.omega) ** 2)
        self.weights = sample.weights
        self.mass = _gram(sample.weights, values)
        self.galerkin, self.compressed = None, None
        if smoothing == "galerkin":  # S, and S M^-1 once for every step
            self.galerkin = _gram_pair(sample.weights, values, self.smooth(values))
            self.compressed = jnp.linalg.solve(self.mass.T, self.galerkin.T).T

    def _pointwise(self, f: Float[Array, "N *shape"]) -> Float[Array, "N *shape"]:
        """`smooth` where the smoothing acts at the points (`"pointwise"`), else `f`."""
        return f if self.compressed is not None else self.smooth(f)

    def _compress(self, x: Float[Array, "P *shape"]) -> Float[Array, "P *shape"]:
        """$S M^{-1} x$ where the smoothing is the Galerkin matrix (`"galerkin"`), else `x`."""
        if self.compressed is None:
            return x
        return self.compressed @ x

    def smoothing_matrix(self) -> Float[Array, "P P"] | None:
        r"""$S_{\alpha\beta} = \langle e_\alpha, S_\sigma e_\beta\rangle$ (`smoothing="galerkin"`), else None."""
        return self.galerkin

    def _packed_metric(self, c: Float[Array, " P"]) -> Float[Array, "N q"]:
        return self.g_fs + self.hessians @ c

    def metric(self, c: Float[Array, " P"]) -> Complex[Array, "N m m"]:
        r"""$g_c = g^\mathrm{FS} + \sum_\alpha c_\alpha\,\partial\bar\partial e_\alpha$ at the sample."""
        return _unpack(self._packed_metric(c), self.dim)

    def log_eta(self, c: Float[Array, " P"]) -> Float[Array, " N"]:
        r"""$\log\eta = \log\det g_c - \log|\Omega|^2$ (NaN where $g_c$ is not positive definite)."""
        return _packed_logdet(self._packed_metric(c), self.dim) - self.log_omega

    def smooth(self, f: Float[Array, "N *shape"]) -> Float[Array, "N *shape"]:
        r"""$S_\sigma f$ at the sample (each trailing column separately); $f$ itself for the local flow."""
        if self.kernel is None:
            return f
        n = f.shape[0]
        columns = f.reshape(n, -1) * self.weights[:, None]
        points = jax.lax.complex(self.points[0], self.points[1])
        out = _row_shifted_apply(
            self.kernel,
            points,
            points,
            jnp.concatenate([columns, self.weights[:, None]], axis=1),
            self.shifts,
            caller="SpectralRicciFlow.smooth",
        )
        return (out[:, :-1] / out[:, -1:]).reshape(f.shape)

    def gram(self) -> Float[Array, "P P"]:
        r"""$M_{\alpha\beta} = \langle e_\alpha, e_\beta\rangle$ (the identity on the whitening sample)."""
        return self.mass

    def residual(self, c: Float[Array, " P"]) -> Float[Array, " P"]:
        r"""$b_\alpha(c) = \langle e_\alpha, \log(\eta/\bar\eta)\rangle$ (with `width`: $S_\sigma$ first, or $S M^{-1}$ after).

        NaN where $g_c$ is not positive definite at some sample point (for every smoothing:
        Newton's line search shortens its step there).
        """
        self._check_state(c, "residual")
        log_eta, inside = self._log_eta_inside(c)
        eta_bar = _weighted_mean(self.weights, jnp.exp(log_eta))
        u = self._pointwise(log_eta - jnp.log(eta_bar))
        b = self._compress(_weighted_mean(self.weights, self.values * u[:, None]))
        return jnp.where(inside, b, jnp.nan)

    def _log_eta_inside(self, c):
        r"""($\log\eta$, whether it is finite at every point); all zeros where it is not (the
        point kernel refuses non-finite values: the callers make such a state NaN by `where`)."""
        log_eta = self.log_eta(c)
        inside = jnp.all(jnp.isfinite(log_eta))
        return jnp.where(inside, log_eta, 0.0), inside

    def _check_state(self, c, caller: str) -> None:
        if jnp.shape(c) != (self.mass.shape[0],):
            raise ValueError(
                f"SpectralRicciFlow.{caller}: the state c must have shape ({self.mass.shape[0]},), "
                f"one coefficient per basis function, got shape {jnp.shape(c)}."
            )

    def laplacians(self, c: Float[Array, " P"]) -> Float[Array, "N P"]:
        r"""$\square_c e_\beta = \mathrm{tr}(g_c^{-1} H_\beta)$ at the sample, $H_\beta = J^\top\partial\bar\partial e_\beta\bar J$.

        The derivative of $\log\eta = \log\det g_c - \log|\Omega|^2$ along $c_\beta$.
        For Hermitian $g^{-1}$ and $H$, $\mathrm{tr}(g^{-1}H) = \sum_i g^{-1}_{ii}H_{ii} +
        2\sum_{i<j}\mathrm{Re}(g^{-1}_{ij}\overline{H_{ij}})$: one product with the packed Hessians.
        """
        m = self.dim
        inverse = _pack(jax.vmap(_inverse)(self.metric(c)))
        factor = jnp.concatenate([jnp.ones(m), jnp.full(m * m - m, 2.0)])
        return jnp.einsum("nq,nqp->np", inverse * factor, self.hessians)

    def jacobian(self, c: Float[Array, " P"]) -> Float[Array, "P P"]:
        r"""$\partial b_\alpha/\partial c_\beta$ in closed form.

        With $L_\beta = \square_c e_\beta = \mathrm{tr}(g_c^{-1}H_\beta)$ (`laplacians`),
        $\partial_\beta\log\eta = L_\beta$ and $\partial_\beta\log\bar\eta = \langle\eta L_\beta\rangle/\langle\eta\rangle$, so

        $$\frac{\partial b_\alpha}{\partial c_\beta} = \langle e_\alpha, L_\beta\rangle
        - \langle e_\alpha, 1\rangle\,\frac{\langle \eta, L_\beta\rangle}{\langle\eta\rangle}$$

        With `width` (pointwise) the first term's $L_\beta$ becomes $S_\sigma L_\beta$
        ($S_\sigma$ is linear and keeps constants); the second keeps $L_\beta$, since
        $\bar\eta$ is the mean of the unsmoothed $\eta$. (Where the basis is centred on the
        sample, $\langle e_\alpha, 1\rangle = 0$ and the second term vanishes; on any other
        sample it does not.) With `smoothing="galerkin"`: $S M^{-1}$ times the local Jacobian.

        One pass over the sample (O(N P m²) + O(N P²)), against $P$ forward passes
        for `jax.jacfwd(residual)`.
        """
        return self.residual_and_jacobian(c)[1]

    def residual_and_jacobian(self, c: Float[Array, " P"]):
        """(`residual`, `jacobian`) from one evaluation of the metric (NaN outside the cone)."""
        self._check_state(c, "residual_and_jacobian")
        w = self.weights / jnp.sum(self.weights)
        log_eta, inside = self._log_eta_inside(c)
        shifted = jnp.exp(log_eta - jnp.max(log_eta))  # eta up to a constant factor
        mass = w * shifted / jnp.sum(w * shifted)
        log_eta_bar = jnp.log(jnp.sum(w * shifted)) + jnp.max(log_eta)
        laplacians = jnp.where(inside, self.laplacians(c), 0.0)
        smoothed = self._pointwise(jnp.concatenate([log_eta[:, None], laplacians], axis=1))
        b = (w * (smoothed[:, 0] - log_eta_bar)) @ self.values
        # S_sigma L in the projection; the mean's derivative <eta L>/<eta> with L itself
        jacobian = self.values.T @ (w[:, None] * smoothed[:, 1:]) - jnp.outer(
            w @ self.values, mass @ laplacians
        )
        return (
            jnp.where(inside, self._compress(b), jnp.nan),
            jnp.where(inside, self._compress(jacobian), jnp.nan),
        )

    def __call__(self, t, c: Float[Array, " P"], args=None) -> Float[Array, " P"]:
        r"""$\dot c = M^{-1} b(c)$; an error (`eqx.error_if`) where $c$ is not finite or $g_c$
        is not positive definite."""
        b = self.residual(eqx.error_if(c, ~jnp.all(jnp.isfinite(c)), _NOT_FINITE))
        b = eqx.error_if(b, ~jnp.all(jnp.isfinite(b)), _OUTSIDE)
        return jnp.linalg.solve(self.mass, b)

    def sigma(self, c: Float[Array, " P"]) -> Float[Array, ""]:
        r"""$\sigma = \langle |1 - \eta/\bar\eta|\rangle$ on the flow's own sample (no standard error)."""
        eta = jnp.exp(self.log_eta(c))
        return _weighted_mean(self.weights, jnp.abs(1 - eta / _weighted_mean(self.weights, eta)))


@jax.jit
def _packed_hessians(hessians):
    """(N, P, m, m) complex Hessians as (N, m², P) reals, the basis index last (contiguous)."""
    return jnp.swapaxes(_pack(hessians), 1, 2)


@jax.jit
def _gram(weights, values):
    return _gram_pair(weights, values, values)


def _gram_pair(weights, left, right):
    r"""$\langle l_\alpha, r_\beta\rangle$ over the sample's normalised weights."""
    return (weights[:, None] * left).T @ right / jnp.sum(weights)


class NewtonResult(eqx.Module):
    """The outcome of `newton_fixed_point`.

    **Fields:** `coefficients` (P,); `residuals`: $\\|b\\|_2$ before each step and
    after the last; `converged`: whether the last is below `tol`.
    """

    coefficients: Float[Array, " P"]
    residuals: Float[Array, " S"]
    converged: bool = eqx.field(static=True)


@eqx.filter_jit
def _newton_step(flow, c):
    b, jacobian = flow.residual_and_jacobian(c)
    return b, jnp.linalg.solve(jacobian, -b)


@eqx.filter_jit
def _residual_norm(flow, c):
    return jnp.linalg.norm(flow.residual(c))


def newton_fixed_point(
    flow: "SpectralRicciFlow | SpectralGradientFlow",
    c0: Float[Array, " P"] | None = None,
    *,
    steps: int = 12,
    tol: float = 1e-10,
) -> NewtonResult:
    r"""Newton's method for the Galerkin fixed point $b(c) = 0$ of `flow`.

    $c \leftarrow c + t\,\delta$, $(\partial b/\partial c)\,\delta = -b$, $t = 1, \frac12,
    \frac14, \dots$ until $\|b\|$ decreases with $g_c$ positive definite. Stops when
    $\|b\|_2 <$ `tol` or after `steps` steps. Not jittable (a Python loop of jitted steps).

    For a `SpectralRicciFlow`, $b = \langle e, \log(\eta/\bar\eta)\rangle$ with its Jacobian in
    closed form (`SpectralRicciFlow.jacobian`); for a `SpectralGradientFlow`,
    $b = -\nabla_c E$ with the Hessian by autodiff: the critical point its gradient flow
    tends to (a minimum where the Hessian is positive definite there).

    **Arguments:** `flow`; `c0` (P,) start (default 0, Fubini–Study); `steps`; `tol`
    (absolute, in the units of $b$: $E$ per unit coefficient for a gradient flow).
    """
    from .spectral_functionals import SpectralGradientFlow  # it builds on this module

    if not isinstance(flow, SpectralRicciFlow | SpectralGradientFlow):
        raise ValueError(
            "newton_fixed_point: expected a SpectralRicciFlow or a SpectralGradientFlow, got "
            f"{type(flow).__name__}."
        )
    steps = check_count(steps, "newton_fixed_point: steps must be an integer >= 1", minimum=1)
    value = real_scalar(tol)
    if value is None or not math.isfinite(value) or not value > 0:
        raise ValueError(f"newton_fixed_point: tol must be a finite number > 0, got {tol!r}.")
    tol = value
    size = flow.gram().shape[0]
    c = jnp.zeros(size) if c0 is None else jnp.asarray(c0)
    if c.shape != (size,):
        raise ValueError(f"newton_fixed_point: c0 must have shape ({size},), got {c.shape}.")
    if not bool(jnp.all(jnp.isfinite(c))):
        raise ValueError("newton_fixed_point: c0 is not finite (NaN or inf coefficients).")
    norm = float(_residual_norm(flow, c))
    if not math.isfinite(norm):
        raise ValueError(
            "newton_fixed_point: the metric at c0 is not positive definite at some sample point."
        )
    norms = [norm]
    for _ in range(steps):
        if norm < tol:
            break
        _, delta = _newton_step(flow, c)
        t = 1.0
        for _ in range(30):
            trial = c + t * delta
            trial_norm = float(_residual_norm(flow, trial))
            if math.isfinite(trial_norm) and trial_norm < norm:
                break
            t /= 2
        else:
            break
        c, norm = trial, trial_norm
        norms.append(norm)
    return NewtonResult(c, jnp.asarray(norms), bool(norm < tol))
