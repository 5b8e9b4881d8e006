r"""Curvature of Kähler metrics $g = \partial\bar\partial(\log|z|^2 + \phi)$ on a hypersurface, by autodiff.

At a sample point the chart's local coordinates $w \in \mathbb{C}^m$ ($m = n - 1$)
are the ambient coordinates other than the patch one (set to 1) and the
eliminated one, which is the holomorphic function $z_e(w)$ solving $p(z(w)) = 0$
(docs/conventions.md, Calabi–Yau hypersurfaces). The Kähler potential pulled
back to the chart, $K_X(w) = K(z(w))$, gives the metric and its curvature by
`complex_hessian` (`projective.py`):

- $g_{a\bar b} = \partial_a\partial_{\bar b} K_X$ (equal to `pulled_back_metric`);
- the Ricci form $R_{a\bar b} = -\partial_a\partial_{\bar b}\log\det g$;
- the scalar curvature $R = 2\,g^{a\bar b}R_{a\bar b}$, the Riemannian scalar
  curvature of $ds^2 = 2 g_{a\bar b}\,dw^a d\bar w^b$ (so $R = 4$ on
  $\mathbb{CP}^1$ with Fubini–Study, a sphere of area $2\pi$, and
  $R = 2m(m + 1)$ on $\mathbb{CP}^m$);
- the Ricci measure, the scale-invariant $L^1$ norm
  $\|R\| = \mathrm{Vol}_g^{1/m}\,\frac{1}{\mathrm{Vol}_g}\int_X |R|\, d\mathrm{Vol}_g$
  (zero exactly for a Ricci-flat metric), with
  $\mathrm{Vol}_g = \int_X \det g$ in the local coordinates' densities.

$z_e(w)$ is three Newton steps on $p$ from the sample's root: at the sample
point the iterates' Taylor coefficients are exact to order $2^3 - 1 = 7$ in
$w - w_0$ (Newton's error squares each step), more than the third order that
the curvature needs. Integrated scalar curvature is topological:
$\frac{1}{\mathrm{Vol}}\int_X R\, d\mathrm{Vol} = 2m(n + 1 - d)$ for any metric in
the Fubini–Study class on a degree-$d$ hypersurface of $\mathbb{CP}^n$
($c_1(X) = (n + 1 - d)H$), which the tests check.
"""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from .hypersurface import Hypersurface
from .projective import complex_hessian
from .sampling import PointSample

_NEWTON_STEPS = 3


def _det(g):
    """det of a small matrix by cofactors (m <= 3; cheaper than LU under nested AD), else LU."""
    m = g.shape[0]
    if m == 1:
        return g[0, 0]
    if m == 2:
        return g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]
    if m == 3:
        return (
            g[0, 0] * (g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1])
            - g[0, 1] * (g[1, 0] * g[2, 2] - g[1, 2] * g[2, 0])
            + g[0, 2] * (g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0])
        )
    return jnp.linalg.det(g)


def _solve(g, b):
    r"""$g^{-1} b$ for a small matrix: by the adjugate for m <= 3, else LU.

    Batched LAPACK solves (complex triangular solves under `vmap` and autodiff) have
    deadlocked XLA:CPU's thread pool on two cores, several of them waiting for each
    other's batch tasks; the adjugate is elementwise arithmetic, with no such call.
    """
    m = g.shape[0]
    if m == 1:
        return b / g[0, 0]
    if m == 2:
        adjugate = jnp.array([[g[1, 1], -g[0, 1]], [-g[1, 0], g[0, 0]]])
        return adjugate @ b / _det(g)
    if m == 3:
        cofactor = jnp.array(
            [
                [
                    g[(i + 1) % 3, (j + 1) % 3] * g[(i + 2) % 3, (j + 2) % 3]
                    - g[(i + 1) % 3, (j + 2) % 3] * g[(i + 2) % 3, (j + 1) % 3]
                    for j in range(3)
                ]
                for i in range(3)
            ]
        )
        return cofactor.T @ b / _det(g)
    return jnp.linalg.solve(g, b)


def _inverse(g):
    """$g^{-1}$ of a small matrix by the adjugate (m <= 3, `_solve`'s reason), else LU."""
    return _solve(g, jnp.eye(g.shape[0], dtype=g.dtype))


def _log_abs_det(g):
    """log|det g| of a Hermitian g: defined (and equal) wherever g is non-degenerate, PD or not."""
    return jnp.log(jnp.abs(jnp.real(_det(g))))


def _check(name, hypersurface, sample):
    if not isinstance(hypersurface, Hypersurface):
        raise ValueError(f"{name}: expected a Hypersurface, got {type(hypersurface).__name__}.")
    if not isinstance(sample, PointSample):
        raise ValueError(f"{name}: expected a PointSample, got {type(sample).__name__}.")
    if sample.points.shape[1] != hypersurface.ambient_dim:
        raise ValueError(
            f"{name}: the sample's points live in C^{sample.points.shape[1]}, the "
            f"hypersurface in C^{hypersurface.ambient_dim}."
        )


def _monomials(exponents):
    """$p$ as a function with the exponents as static Python integers (small graphs under nested AD)."""

    def p(coefficients, z):
        terms = []
        for row in exponents:
            term = jnp.ones((), z.dtype)
            for i, e in enumerate(row):
                if e:
                    term = term * z[i] ** e
            terms.append(term)
        return jnp.stack(terms) @ coefficients

    return p


@functools.cache
def _cached_polynomial(exponents):
    return _monomials(exponents)


def _polynomial(hypersurface):
    """One function object per exponent set, so that jit caches across calls."""
    return _cached_polynomial(
        tuple(tuple(int(e) for e in row) for row in np.asarray(hypersurface.exponents))
    )


def _chart(polynomial, coefficients, z0, patch, eliminated):
    """Local coordinates $w_0$ of `z0` and the embedding $w \\mapsto z(w)$ of its chart."""
    size = z0.shape[0]
    index = jnp.arange(size)
    is_elim = index == eliminated
    ranks = jnp.where((index == patch) | is_elim, size, 0) + index
    local = jnp.argsort(ranks)[: size - 2]  # the ordering of `_local_geometry`

    def embed(w):
        z = z0.at[local].set(w)
        x = z0[eliminated]

        def p(x):
            return polynomial(coefficients, jnp.where(is_elim, x, z))

        for _ in range(_NEWTON_STEPS):
            value, slope = jax.jvp(p, (x,), (jnp.ones_like(x),))  # p and dp/dx (holomorphic)
            x = x - value / slope
        return jnp.where(is_elim, x, z)

    return z0[local], embed


def _chart_metric(embed, potential):
    r"""$w \mapsto g(w) = \partial_w\partial_{\bar w}(\log|z|^2 + \phi)(z(w))$ for a holomorphic
    chart $w \mapsto z(w)$ (`embed`).

    By autodiff of the local potential, or, where the potential has a closed-form
    ambient Hessian $\partial_a\partial_{\bar b}\phi$ (an `ambient_hessian` method), as
    $g = (\partial z/\partial w)^\top\,\partial\bar\partial(\log|z|^2 + \phi)(z)\,
    \overline{\partial z/\partial w}$ with $\partial_a\partial_{\bar b}\log|z|^2 =
    \delta_{ab}/|z|^2 - \bar z_a z_b/|z|^4$: two derivatives fewer of $\phi$.
    """
    ambient = getattr(potential, "ambient_hessian", None)
    if ambient is None:

        def k(w):
            z = embed(w)
            value = jnp.log(jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2))
            return value if potential is None else value + potential(z)

        return lambda w: complex_hessian(k, w, forward_only=True)

    def metric(w):
        z = embed(w)
        tangent = jax.jacfwd(embed, holomorphic=True)(w)  # [c, i]: d_i z_c
        rho = jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2).astype(z.dtype)
        fs = jnp.eye(z.shape[0], dtype=z.dtype) / rho - jnp.conj(z)[:, None] * z[None, :] / rho**2
        return tangent.T @ (fs + ambient(z)) @ jnp.conj(tangent)

    return metric


@eqx.filter_jit
def _curvature(polynomial, coefficients, points, patch, eliminated, potential):
    def one(z0, p, e):
        w0, embed = _chart(polynomial, coefficients, z0, p, e)
        metric = _chart_metric(embed, potential)

        def log_det(w):
            return _log_abs_det(metric(w))

        g = metric(w0)
        ric = -complex_hessian(log_det, w0, forward_only=True)
        scalar = 2 * jnp.real(jnp.trace(_solve(g, ric)))
        return g, ric, scalar

    return jax.vmap(one)(points, patch, eliminated)


@eqx.filter_jit
def _log_eta_gradient(polynomial, coefficients, points, patch, eliminated, potential):
    r"""$(g, \partial\log\eta)$ at every point, in each point's local coordinates $w$.

    $\log\eta = \log\det g - \log|\Omega|^2$ with $\Omega = 1/\partial_{z_e}p$ on the chart
    (`PointSample.omega`'s convention); $\partial_i f = \partial f/\partial w_i$, half of
    `jax.grad` of the real $f$ at complex $w$. Three derivatives of $K$ (one of a
    closed-form ambient Hessian), one fewer than the Ricci form.
    """

    def one(z0, p, e):
        w0, embed = _chart(polynomial, coefficients, z0, p, e)
        metric = _chart_metric(embed, potential)
        unit = jnp.arange(z0.shape[0]) == e

        def log_eta(w):
            z = embed(w)
            _, slope = jax.jvp(
                lambda x: polynomial(coefficients, jnp.where(unit, x, z)),
                (z[e],),
                (jnp.ones_like(z[e]),),
            )
            return _log_abs_det(metric(w)) + jnp.log(jnp.abs(slope) ** 2)

        return metric(w0), jax.grad(log_eta)(w0) / 2

    return jax.vmap(one)(points, patch, eliminated)


def hypersurface_curvature(
    hypersurface: Hypersurface, sample: PointSample, potential=None
) -> tuple[Complex[Array, "N m m"], Complex[Array, "N m m"], Float[Array, " N"]]:
    r"""$(g, \mathrm{Ric}, R)$ at every point of `sample`, in each point's local coordinates.

    **Arguments:** the `hypersurface` the sample lies on; `sample` (a
    `PointSample`); `potential`: $\phi$, a real function of $z \in \mathbb{C}^{n+1}$
    invariant under $z \to \lambda z$ (a `KahlerPotential`), or None for
    Fubini–Study. Conventions: module docstring. Compiled once per exponent set
    and potential structure (the hypersurface's exponents are read as static
    integers, so call it outside `jit`); four derivatives of $\phi$ per point,
    about $(2m)^2$ times the cost of the metric (two of a closed-form ambient Hessian
    for a potential with an `ambient_hessian` method, such as `SpectralPotential`). Finite wherever $g$ is
    non-degenerate ($\log|\det g|$), positive definite or not.
    """
    _check("hypersurface_curvature", hypersurface, sample)
    return _curvature(
        _polynomial(hypersurface),
        hypersurface.coefficients,
        sample.points,
        sample.patch,
        sample.eliminated,
        potential,
    )


def _mass(sample: PointSample, g) -> Float[Array, " N"]:
    r"""$w_a\eta_a$, $\eta = \det g/|\Omega|^2$: the weights of $d\mathrm{Vol}_g$ (up to a constant)."""
    return sample.weights * jnp.real(jnp.linalg.det(g)) / jnp.abs(sample.omega) ** 2


def scalar_curvature_mean(
    sample: PointSample, g: Complex[Array, "N m m"], scalar: Float[Array, " N"]
) -> Float[Array, ""]:
    r"""$\frac{1}{\mathrm{Vol}_g}\int_X R\, d\mathrm{Vol}_g$, estimated with weights $w_a\eta_a$ ($\eta = \det g/|\Omega|^2$)."""
    mass = _mass(sample, g)
    return jnp.sum(mass * scalar) / jnp.sum(mass)


def ricci_measure(
    hypersurface: Hypersurface, sample: PointSample, potential=None
) -> Float[Array, ""]:
    r"""$\mathrm{Vol}_g^{1/m}\frac{1}{\mathrm{Vol}_g}\int_X |R|\,d\mathrm{Vol}_g$ for $g = \partial\bar\partial(\log|z|^2 + \phi)$ (module docstring).

    Monte Carlo over `sample`: $\int_X f\,d\mathrm{Vol}_g \approx
    \frac{V_\Omega}{N}\sum_a w_a \eta_a f_a$ with $V_\Omega$ = `sample.volume_ratio`
    $\times\, d\pi^m/m!$ (the sample's estimate of $\int_X|\Omega|^2$). Invariant
    under $g \to c\,g$; zero for the Ricci-flat metric. Raises `ValueError` where
    $g$ is not positive definite at some point (an untrained `bihomogeneous_potential`).
    """
    _check("ricci_measure", hypersurface, sample)
    g, _, scalar = hypersurface_curvature(hypersurface, sample, potential)
    bad = int(jnp.sum(~(jnp.linalg.eigvalsh(g)[:, 0] > 0)))
    if bad:
        raise ValueError(
            f"ricci_measure: the metric is not positive definite (or not finite) at {bad} of "
            f"{sample.count} points; the Ricci measure is defined for metrics only."
        )
    m = g.shape[-1]
    mass = _mass(sample, g)
    volume_omega = sample.volume_ratio * hypersurface.degree * math.pi**m / math.factorial(m)
    volume = volume_omega * jnp.mean(mass)
    return volume ** (1.0 / m) * jnp.sum(mass * jnp.abs(scalar)) / jnp.sum(mass)
