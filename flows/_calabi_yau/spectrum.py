r"""The spectrum of the scalar Laplacian $-\square_g$ of a spectral potential's metric on its basis."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._misc import real_scalar
from .curvature import _inverse
from .sampling import PointSample
from .spectral_basis import _batch, _check_sample
from .spectral_flows import SpectralPotential


class Spectrum(eqx.Module):
    """Eigenvalues of $-\\square_g$ on a basis (`laplacian_spectrum`).

    **Fields:** `eigenvalues` (P,) ascending; `values`, `multiplicities`: the
    eigenvalues grouped (consecutive ones within `rtol` relative, plus 1e-12, of the
    group's first), each group's mean and size; `stderrs` (P,): the weak form's Monte
    Carlo standard error of each eigenvalue (`laplacian_spectrum`), None for the strong
    form.
    """

    eigenvalues: Float[Array, " P"]
    values: Float[Array, " G"]
    multiplicities: Int[Array, " G"]
    stderrs: Float[Array, " P"] | None = None


def _group(eigenvalues: np.ndarray, rtol: float, atol: float):
    groups: list[list[float]] = []
    for x in eigenvalues:
        if groups and abs(x - groups[-1][0]) <= rtol * abs(groups[-1][0]) + atol:
            groups[-1].append(x)
        else:
            groups.append([x])
    return np.asarray([np.mean(g) for g in groups]), np.asarray([len(g) for g in groups])


@eqx.filter_jit
def _laplacian_matrices(potential: SpectralPotential, points, jacobian, omega, weights, strong):
    basis = potential.basis
    per_point = basis._per_point()

    def one(a):
        z, jac = a
        values, gradient, hessian, g_fs = basis._geometry(z, jac)
        c = potential.coefficients.astype(hessian.dtype)
        g = g_fs + jnp.einsum("p,pij->ij", c, hessian)
        inverse = _inverse(g)
        # g^{i jbar} d_i e_a dbar_j e_b = conj(de_b)^T g^{-1} de_a; box e = tr(g^{-1} H)
        weak = jnp.real(jnp.einsum("bj,ji,ai->ab", jnp.conj(gradient), inverse, gradient))
        box = jnp.real(jnp.einsum("ji,pij->p", inverse, hessian))
        return values, weak, box, jnp.real(jnp.linalg.det(g))

    values, weak, box, det = jax.lax.map(one, (points, jacobian), batch_size=_batch(per_point))
    mass = _mass(weights, det, omega)
    centred = values - mass @ values
    gram = centred.T @ (mass[:, None] * centred)
    stiffness = -centred.T @ (mass[:, None] * box) if strong else jnp.tensordot(mass, weak, axes=1)
    return gram, stiffness


def _mass(weights, det, omega):
    r"""$\mu_a$: dVol_g / (the points' FS density) = det g / det g_FS = w |Omega|^2-normalised eta, normalised."""
    mass = weights * det / jnp.abs(omega) ** 2
    return mass / jnp.sum(mass)


@eqx.filter_jit
def _weak_stderrs(potential: SpectralPotential, points, jacobian, omega, weights, vectors):
    r"""The weak form's Monte Carlo standard errors, one per eigenpair $(\lambda_i, v_i)$, $v_i^\top M v_i = 1$.

    $\lambda_i = \sum_a \mu_a q_{ai} / \sum_a \mu_a p_{ai}$, $q_{ai} = |\partial u_i|^2_g$,
    $p_{ai} = \tilde u_i^2$ at point $a$, $u_i = v_i^\top e$ (a ratio of Monte Carlo means:
    $\sum_a \mu_a p_{ai} = 1$); to first order in the sampling error (a simple
    eigenvalue, whose eigenvector's first-order change leaves it unchanged),
    $\mathrm{se}_i^2 = \sum_L \big(\sum_{a \in L} \mu_a (q_{ai} - \lambda_i p_{ai})\big)^2$,
    the centred terms ($\sum_a \mu_a (q_{ai} - \lambda_i p_{ai}) = 0$ exactly) summed over
    groups $L$ of $d$ consecutive points: the sampler's $d$ points of one line, which are
    correlated (for independent points the grouping changes nothing on average).
    """
    basis = potential.basis

    def one(a):
        z, jac = a
        values, gradient, hessian, g_fs = basis._geometry(z, jac)
        c = potential.coefficients.astype(hessian.dtype)
        g = g_fs + jnp.einsum("p,pij->ij", c, hessian)
        du = vectors.T.astype(gradient.dtype) @ gradient  # (P, m): d u_i
        q = jnp.real(jnp.einsum("bj,ji,bi->b", jnp.conj(du), _inverse(g), du))
        return values @ vectors, q, jnp.real(jnp.linalg.det(g))

    u, q, det = jax.lax.map(one, (points, jacobian), batch_size=_batch(basis._per_point()))
    mass = _mass(weights, det, omega)
    p = (u - mass @ u) ** 2
    eigenvalues = (mass @ q) / (mass @ p)
    terms = mass[:, None] * (q - eigenvalues * p)
    d = basis.hypersurface.degree
    pad = -terms.shape[0] % d
    lines = jnp.concatenate([terms, jnp.zeros((pad, terms.shape[1]), terms.dtype)])
    lines = lines.reshape(-1, d, terms.shape[1]).sum(axis=1)
    return jnp.sqrt(jnp.sum(lines**2, axis=0))


def laplacian_spectrum(
    potential: SpectralPotential,
    sample: PointSample,
    *,
    form: str = "weak",
    rtol: float = 1e-3,
) -> Spectrum:
    r"""The spectrum of $-\square_g = -g^{i\bar j}\partial_i\partial_{\bar j}$ on the basis, $g$ the potential's metric.

    The generalised eigenproblem $A v = \lambda M v$ with the measure
    $d\mathrm{Vol}_g = \det g$ (normalised: $\mu_a = w_a \eta_a / \sum_b w_b\eta_b$, the
    sample's points being distributed by $\det g_\mathrm{FS}$ and
    $w_a\eta_a \propto \det g_a/\det g_{\mathrm{FS},a}$), the basis re-centred in it
    ($\tilde e = e - \sum_a \mu_a e(z_a)$, so the constant mode is excluded):
    $M_{\alpha\beta} = \sum_a \mu_a \tilde e_\alpha \tilde e_\beta$ and

    - `form="weak"`: $A_{\alpha\beta} = \sum_a \mu_a\, \mathrm{Re}\, g^{i\bar j}
      \partial_i e_\alpha \partial_{\bar j} e_\beta$ ($= \int |\partial e|^2_g$; symmetric,
      eigenvalues within Monte Carlo error of the continuum ones);
    - `form="strong"`: $A_{\alpha\beta} = -\sum_a \mu_a \tilde e_\alpha\, \square_g e_\beta$. Where the
      span is invariant under $\square_g$ (Fubini–Study on $\mathbb{CP}^n$) this is
      exact for any quadrature; $A$ is not symmetric, eigenvalues are the real parts
      (at a nearly degenerate level, quadrature error can make a pair complex: its two
      real parts are equal, and it counts as a multiplicity of 2).

    The weak form's eigenvalues carry Monte Carlo error; `stderrs` estimates it from the
    same points (`_weak_stderrs`: first order in the error, for a simple eigenvalue, with
    the $d$ points of each sampled line taken together; within a group of equal
    eigenvalues it is indicative only), at the cost of a second pass over them.

    On $\mathbb{CP}^n$ with $g_\mathrm{FS} = \partial\bar\partial\log|z|^2$ the eigenvalues are
    $l(l + n)$, $l = 1..k$. Eigenvalues are grouped within `rtol` (relative; the weak
    form's Monte Carlo spread needs a wider one than the default). A sample of no more
    points than the basis has functions is refused before any work (its $M$ is
    singular), and so are eigenvalues that are not finite (an $M$ singular to rounding,
    or a metric not positive definite at some point). Not jittable (grouping and
    checks); `laplacian_eigenvalues` is the jittable part (NaN in those cases).
    """
    size = potential.basis.size
    value = real_scalar(rtol)
    if value is None or not math.isfinite(value) or not value >= 0:
        raise ValueError(
            f"laplacian_spectrum: rtol must be a finite number >= 0 (the grouping's relative "
            f"tolerance), got {rtol!r}."
        )
    rtol = value
    if isinstance(sample, PointSample) and sample.count <= size:
        raise ValueError(
            f"laplacian_spectrum: {sample.count} points for a basis of {size} functions: the "
            "mass matrix is singular; use many more points than functions."
        )
    eigenvalues, vectors = _eigenpairs(potential, sample, form)
    if not bool(jnp.all(jnp.isfinite(eigenvalues))):
        raise ValueError(
            "laplacian_spectrum: the eigenvalues are not finite: the metric is not positive "
            f"definite at some sample point, or the mass matrix of {size} functions on "
            f"{sample.count} points is singular to rounding (use more points)."
        )
    values, counts = _group(np.sort(np.asarray(eigenvalues)), rtol, 1e-12)
    stderrs = None
    if form == "weak":
        stderrs = _weak_stderrs(
            potential, sample.points, sample.jacobian, sample.omega, sample.weights, vectors
        )
    return Spectrum(eigenvalues, jnp.asarray(values), jnp.asarray(counts), stderrs)


def laplacian_eigenvalues(
    potential: SpectralPotential, sample: PointSample, *, form: str = "weak"
) -> Float[Array, " P"]:
    """The eigenvalues of `laplacian_spectrum`, ascending, ungrouped. Jittable; NaN where
    `laplacian_spectrum` refuses (a singular mass matrix, a metric not positive definite)."""
    return _eigenpairs(potential, sample, form)[0]


def _eigenpairs(potential, sample, form):
    """Eigenvalues ascending and, for the weak form, the eigenvectors $v$ ($v^\top M v = 1$,
    columns); None for the strong form."""
    if form not in ("weak", "strong"):
        raise ValueError(f"laplacian_spectrum: form must be 'weak' or 'strong', got {form!r}.")
    if not isinstance(potential, SpectralPotential):
        raise ValueError(
            f"laplacian_spectrum: expected a SpectralPotential, got {type(potential).__name__}."
        )
    _check_sample(potential.basis.hypersurface, sample, "laplacian_spectrum")
    gram, stiffness = _laplacian_matrices(
        potential, sample.points, sample.jacobian, sample.omega, sample.weights, form == "strong"
    )
    lower = jnp.linalg.cholesky(gram)
    reduced = jax.scipy.linalg.solve_triangular(
        lower, jax.scipy.linalg.solve_triangular(lower, stiffness, lower=True).T, lower=True
    ).T
    if form == "weak":
        eigenvalues, y = jnp.linalg.eigh((reduced + reduced.T) / 2)
        # M = L L^T, reduced = L^-1 A L^-T: v = L^-T y
        return eigenvalues, jax.scipy.linalg.solve_triangular(lower.T, y, lower=False)
    return jnp.sort(jnp.real(jnp.linalg.eigvals(reduced))), None
