"""Chern forms of Kähler metrics on hypersurfaces (flows/_calabi_yau/chern.py) against exact results.

Float64. Tolerances:
- pointwise identities (CP^2's curvature R = g g + g g and c(CP^2) = (1 + J)^3, the
  conic's c_1 = J, tr Θ = the Ricci form of `hypersurface_curvature`, Θ against the
  closed-form Gauss equation for Fubini–Study, the Kähler symmetries of R): 1e-10
  relative, since four nested derivatives in float64 lose about six digits;
- integrals are topological (`chern_numbers`, by adjunction): Monte Carlo estimates
  within 3 standard errors (batches of whole sampled lines, the error of
  `chern_integrals`), each error also bounded so that the check has teeth; the differences between two metrics of
  one class integrate to 0 exactly (Bott–Chern), a sharper check of the non-FS
  curvature at few points.

Measured (Fubini–Study on the Fermat quintic, closed form): the standard error of χ
falls as N^{-1/2}, 10.7 at 10^4 points, 5.2 at 4×10^4, 2.8 at 1.6×10^5, 1.22 at
6.4×10^5 (0.6%): a per-point relative spread of about 5.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
from flows._calabi_yau.chern import (  # white-box: the closed form and the per-point terms
    _fs_curvature,
    _mean_and_error,
    _terms,
)

from .helpers import hyperplane as _hyperplane


def _sample(surface, count, seed=0):
    return flows.point_sample(surface, flows.sample_points(surface, jax.random.key(seed), count))


def _riemann(g, theta):
    """R_{i j̄ b c̄} = g_{a c̄} Θ^a_{b i j̄}, indices [n, i, j, b, c]."""
    return jnp.einsum("nac,nabij->nijbc", g, theta)


def _network_potential(ambient, seed):
    phi = flows.kahler_potential(
        ambient, jax.random.key(seed), width=8, depth=1, activation=jnp.tanh
    )
    moved = jax.tree.map(lambda a: 1.5 * a if eqx.is_inexact_array(a) else a, phi.network)
    return eqx.tree_at(lambda p: p.network, phi, moved)  # phi != 0: not Fubini–Study


def test_chern_numbers_by_adjunction():
    assert flows.chern_numbers(flows.Hypersurface.fermat_quintic()) == (5, 0, 50, -200)
    assert flows.chern_numbers(flows.Hypersurface.fermat_quartic()) == (4, 0, 24)
    assert flows.chern_numbers(flows.Hypersurface.fermat_cubic()) == (3, 0)
    assert flows.chern_numbers(flows.Hypersurface.fermat(2, 2)) == (2, 2)  # a conic is CP^1
    assert flows.chern_numbers(_hyperplane(2)) == (1, 3, 3)  # c(CP^2) = (1 + H)^3
    with pytest.raises(ValueError, match="chern_numbers: expected a Hypersurface"):
        flows.chern_numbers("quintic")


def test_projective_plane_pointwise():
    surface = _hyperplane(2)
    sample = _sample(surface, 20)
    g, theta = flows.chern_curvature(surface, sample)
    assert float(jnp.max(jnp.abs(g - sample.g_fs))) < 1e-12
    exact = jnp.einsum("nij,nab->nijab", g, g) + jnp.einsum("nib,naj->nijab", g, g)
    assert float(jnp.max(jnp.abs(_riemann(g, theta) - exact))) < 1e-10
    # c(CP^2) = (1 + J)^3 pointwise (FS is homogeneous): c_1 ∧ J = 3 J^2, c_2 = 3 J^2
    dens = flows.chern_densities(g, theta)
    np.testing.assert_allclose(dens[:, 1:], 3 * dens[:, :1] * jnp.ones((1, 2)), rtol=1e-10)
    result = flows.chern_integrals(surface, sample)
    np.testing.assert_allclose(result.numbers, [1, 3, 3], rtol=1e-10)
    assert float(jnp.max(result.errors)) < 1e-10
    assert result.count == 20
    assert float(result.euler) == pytest.approx(3, rel=1e-10)


def test_conic_is_a_round_sphere():
    # the FS metric on the conic is SO(3)-invariant, hence round: c_1 = χ/∫J · J = J pointwise
    surface = flows.Hypersurface.fermat(2, 2)
    sample = _sample(surface, 60)
    dens = flows.chern_densities(*flows.chern_curvature(surface, sample))
    np.testing.assert_allclose(dens[:, 1], dens[:, 0], rtol=1e-10)
    np.testing.assert_allclose(flows.chern_integrals(surface, sample).numbers, [2, 2], rtol=1e-10)


# the Fermat quintic runs with -m slow: the Dwork quintic takes the same path (a threefold,
# a compile of its own) with a polynomial whose Hessian is not diagonal (the Fermat
# quintic's is), the more demanding case
@pytest.mark.parametrize(
    "surface",
    [
        pytest.param(flows.Hypersurface.fermat_quintic(), marks=pytest.mark.slow),
        flows.Hypersurface.dwork_quintic(0.3 + 0.1j),
        flows.Hypersurface.fermat_quartic(),
    ],
    ids=["quintic", "dwork", "quartic"],
)
def test_autodiff_matches_the_gauss_equation(surface):
    # independent: AD of K through the chart against the closed form of the induced FS metric
    sample = _sample(surface, 24)
    g, theta = flows.chern_curvature(surface, sample)
    g2, theta2 = _fs_curvature(surface, sample)
    scale = float(jnp.max(jnp.abs(theta2)))
    assert scale > 1.0  # curved
    assert float(jnp.max(jnp.abs(g - g2))) < 1e-12
    assert float(jnp.max(jnp.abs(theta - theta2))) < 1e-10 * scale


def test_trace_is_ricci_and_kahler_symmetries_for_a_network_metric():
    surface = flows.Hypersurface.fermat_quartic()
    # 24 points: the sampling programs test_autodiff_matches_the_gauss_equation compiled
    sample = _sample(surface, 24, seed=3)
    phi = _network_potential(4, 2)
    g, theta = flows.chern_curvature(surface, sample, phi)
    g2, ric, _ = flows.hypersurface_curvature(surface, sample, phi)
    assert float(jnp.max(jnp.abs(g - sample.g_fs))) > 1e-3  # not Fubini–Study
    assert float(jnp.max(jnp.abs(g - g2))) < 1e-12
    scale = float(jnp.max(jnp.abs(theta)))
    assert float(jnp.max(jnp.abs(jnp.einsum("naaij->nij", theta) - ric))) < 1e-10 * scale
    r = _riemann(g, theta)
    assert float(jnp.max(jnp.abs(r - jnp.einsum("nijbc->nbjic", r)))) < 1e-10 * scale
    assert float(jnp.max(jnp.abs(r - jnp.einsum("nijbc->nicbj", r)))) < 1e-10 * scale
    assert float(jnp.max(jnp.abs(jnp.conj(r) - jnp.einsum("nijbc->njicb", r)))) < 1e-10 * scale


def _check_integrals(result, exact, max_errors):
    numbers, errors = np.asarray(result.numbers), np.asarray(result.errors)
    assert np.all(errors <= np.asarray(max_errors)), (numbers, errors)
    assert np.all(np.abs(numbers - np.asarray(exact)) <= 3 * errors + 1e-9), (numbers, errors)


def test_cubic_curve_has_genus_one():
    surface = flows.Hypersurface.fermat_cubic()
    sample = _sample(surface, 1500, seed=4)
    # ∫J = 3 exactly for FS (J / dVol_FS is constant); ∫c_1 = 2 - 2g = 0, error about 0.07
    _check_integrals(flows.chern_integrals(surface, sample), (3, 0), (1e-12, 0.12))


def test_quartic_k3_euler_characteristic():
    surface = flows.Hypersurface.fermat_quartic()
    sample = _sample(surface, 3000, seed=6)
    x = _terms(surface, sample, *_fs_curvature(surface, sample))
    mean, error = _mean_and_error(x, surface.degree)
    # χ = 24 with an error of about 1.2 (5%)
    _check_integrals(flows.ChernIntegrals(mean, error, 3000), (4, 0, 24), (1e-12, 0.2, 1.5))


@pytest.mark.slow
def test_network_metrics_on_the_cubic_and_k3():
    surface = flows.Hypersurface.fermat_cubic()
    sample = _sample(surface, 3000, seed=4)
    _check_integrals(
        flows.chern_integrals(surface, sample, _network_potential(3, 5)), (3, 0), (0.05, 0.1)
    )
    surface = flows.Hypersurface.fermat_quartic()
    sample = _sample(surface, 3000, seed=6)
    fs = flows.chern_integrals(surface, sample)
    _check_integrals(fs, (4, 0, 24), (1e-12, 0.2, 1.5))
    other = flows.chern_integrals(surface, sample, _network_potential(4, 7))
    _check_integrals(other, (4, 0, 24), (0.1, 0.3, 2.0))
    # the difference of two metrics' Chern forms is exact: it integrates to 0
    diff = np.asarray(other.numbers - fs.numbers)
    assert np.all(np.abs(diff) <= 3 * np.asarray(other.errors)), diff


@pytest.fixture(scope="module")
def quintic():
    surface = flows.Hypersurface.fermat_quintic()
    return surface, _sample(surface, 20000, seed=8)


def test_quintic_fubini_study_closed_form(quintic):
    # 2×10^4 points: the standard error of χ about 5% (measured 11 of 200)
    surface, sample = quintic
    x = _terms(surface, sample, *_fs_curvature(surface, sample))
    mean, error = _mean_and_error(x, surface.degree)
    result = flows.ChernIntegrals(mean, error, sample.count)
    _check_integrals(result, (5, 0, 50, -200), (1e-12, 0.2, 1.2, 12.0))


def _spectral_fixed_point(surface, train, k=2):
    """The Galerkin Kähler–Ricci fixed point at degree `k` in the Fermat-invariant basis
    (σ 0.37 -> 0.075 at k = 2, 0.017 at k = 4)."""
    basis = flows.SpectralBasis(surface, train, k, symmetry="fermat")
    result = flows.newton_fixed_point(flows.SpectralRicciFlow(basis, train))
    assert result.converged
    return flows.SpectralPotential(basis, result.coefficients)


def _check_spectral_metric(surface, sample, phi, max_errors):
    g, theta = flows.chern_curvature(surface, sample, phi)
    assert float(jnp.max(jnp.abs(g - phi.metric(sample)))) < 1e-12
    assert float(jnp.max(jnp.abs(g - sample.g_fs))) > 1e-3  # not Fubini–Study
    assert float(jnp.min(jnp.linalg.eigvalsh(g))) > 0  # a metric
    x = _terms(surface, sample, g, theta)
    mean, error = _mean_and_error(x, surface.degree)
    _check_integrals(flows.ChernIntegrals(mean, error, sample.count), (5, 0, 50, -200), max_errors)
    # Bott–Chern: c_k(g) - c_k(g_FS) is exact, so its integral vanishes. (Not a sharper check
    # here: at sigma 0.075 from Calabi–Yau the two metrics' densities differ as much as they
    # vary, and the difference's standard error was measured equal to chi's own.)
    x_fs = _terms(surface, sample, *_fs_curvature(surface, sample))
    diff, diff_error = _mean_and_error(x - x_fs, surface.degree)
    assert np.all(np.abs(np.asarray(diff)) <= 3 * np.asarray(diff_error) + 1e-9), (diff, diff_error)
    return mean, error


def test_closed_form_hessian_path_matches_four_derivatives(quintic):
    # A SpectralPotential's closed-form ambient Hessian, differentiated twice, against four
    # derivatives of phi itself (the same potential behind a plain function): round-off apart
    surface, full = quintic
    train = flows.subsample(full, np.arange(500))
    basis = flows.SpectralBasis(surface, train, 3, symmetry="fermat")
    # small enough for a metric (chern_curvature refuses one that is not positive definite:
    # at 0.05 it was at 6 of the 20 points; at 0.03 g - g_FS is up to 0.41, smallest
    # eigenvalue above 0.13 of g_FS's largest)
    c = 0.03 * jax.random.normal(jax.random.key(3), (basis.size,))
    phi = flows.SpectralPotential(basis, c)
    probe = flows.subsample(full, np.arange(500, 520))
    g, theta = flows.chern_curvature(surface, probe, phi)
    g_ref, theta_ref = flows.chern_curvature(surface, probe, lambda z: phi(z))
    assert float(jnp.max(jnp.abs(g - g_ref))) <= 1e-12 * float(jnp.max(jnp.abs(g_ref)))
    assert float(jnp.max(jnp.abs(theta - theta_ref))) <= 1e-9 * float(jnp.max(jnp.abs(theta_ref)))
    assert float(jnp.max(jnp.abs(theta_ref))) > 0


@pytest.mark.slow
def test_quintic_spectral_metric(quintic):
    surface, full = quintic
    phi = _spectral_fixed_point(surface, flows.subsample(full, np.arange(2000)))
    # 400 fresh points: χ within about 25%, the Bott–Chern difference much tighter
    sample = flows.subsample(full, np.arange(2000, 2400))
    _check_spectral_metric(surface, sample, phi, (0.2, 1.5, 8.0, 80.0))


@pytest.mark.slow
def test_quintic_one_percent(quintic):
    # 3×10^5 points: the standard error of χ below 1% (closed-form Fubini–Study); and the
    # converged spectral metric (the k = 4 fixed point, σ 0.017) on 10^5 of them: χ and c_2·J
    # within 1% too. Its integrand spreads as Fubini–Study's does (measured at 3000 points:
    # χ -186.9 ± 9.8, c_2·J 48.3 ± 1.6, so ± 1.7 and ± 0.28 expected here), at about 10 ms
    # a point on two cores (the closed-form ambient Hessian differentiated twice).
    surface = flows.Hypersurface.fermat_quintic()
    sample = _sample(surface, 300000, seed=10)
    x = _terms(surface, sample, *_fs_curvature(surface, sample))
    mean, error = _mean_and_error(x, surface.degree)
    _check_integrals(
        flows.ChernIntegrals(mean, error, sample.count), (5, 0, 50, -200), (1e-12, 0.05, 0.35, 2.0)
    )
    _, full = quintic
    phi = _spectral_fixed_point(surface, flows.subsample(full, np.arange(5000)), k=4)
    probe = flows.subsample(sample, np.arange(100_000))
    _check_spectral_metric(surface, probe, phi, (0.02, 0.15, 0.5, 2.0))


# The standard error.


def test_standard_error_batches_whole_lines(quintic):
    # Hand-made: two values 0, 2 (lines of one point): mean 1, se = s / sqrt(2) = 1 with the
    # factor B / (B - 1) = 2 (0.71 without). Lines of two, (1, 1) and (-1, -1): the two
    # line means ±1 are the independent draws, se = 1 (0.5 when the points were batched
    # one by one, as if independent).
    mean, error = _mean_and_error(jnp.asarray([[0.0], [2.0]]), 1)
    np.testing.assert_allclose([mean[0], error[0]], [1.0, 1.0], rtol=1e-14)
    mean, error = _mean_and_error(jnp.asarray([[1.0], [1.0], [-1.0], [-1.0]]), 2)
    np.testing.assert_allclose([mean[0], error[0]], [0.0, 1.0], atol=1e-14)
    # one line gives no standard error: refused (N = 1 reported 0)
    surface, sample = quintic
    for count in (1, 5):
        with pytest.raises(
            ValueError, match=f"at least two sampled lines, N > d = 5, got N = {count}"
        ):
            flows.chern_integrals(surface, flows.subsample(sample, np.arange(count)))


def test_standard_error_is_calibrated_for_correlated_lines():
    # Terms with the sampler's structure: lines of d = 5 consecutive points, x = u_line +
    # e_point (standard normal: correlation 1/2 within a line). At N = 50 (10 lines)
    # Var(mean) = 10 (25 + 5) / 50^2 = 0.12. Over 20000 independent samples the mean of
    # the reported se^2 and the variance of the means must both be 0.12: their Monte Carlo
    # errors are 0.3% and 1%, the tolerance 4%. Batches of single points without
    # B / (B - 1) (the former estimator) gave se^2 = 0.038, under a third of the variance.
    reps, lines, d = 20000, 10, 5
    key_line, key_point = jax.random.split(jax.random.key(0))
    u = jax.random.normal(key_line, (reps, lines, 1))
    e = jax.random.normal(key_point, (reps, lines, d))
    x = (u + e).reshape(reps, lines * d, 1)
    mean, error = jax.vmap(lambda t: _mean_and_error(t, d))(x)
    np.testing.assert_allclose(float(jnp.mean(error**2)), 0.12, rtol=0.04)
    np.testing.assert_allclose(float(jnp.var(mean)), 0.12, rtol=0.04)


@pytest.mark.slow
def test_standard_error_is_calibrated_on_the_k3():
    # slow (about 15 s: 96000 points): the reported se against the spread over 2000
    # independent samples of 48 points (12 whole lines each) of the Fermat quartic,
    # closed-form Fubini–Study curvature. Measured Var(means) / mean(se^2) for c_1·J and
    # χ (seeds 12, 13): 0.99-1.07 with the lines batched, 1.14-1.36 with the former
    # estimator (points batched one by one, no B / (B - 1)). χ's integrand is heavy-tailed,
    # so the tolerance is 0.1 (the se right within 5%).
    surface = flows.Hypersurface.fermat_quartic()
    sample = _sample(surface, 2000 * 48, seed=12)
    x = _terms(surface, sample, *_fs_curvature(surface, sample))
    x = x[: sample.count // 48 * 48].reshape(-1, 48, x.shape[-1])
    mean, error = jax.vmap(lambda t: _mean_and_error(t, surface.degree))(x)
    ratio = np.asarray(jnp.var(mean[:, 1:], axis=0) / jnp.mean(error[:, 1:] ** 2, axis=0))
    assert np.all(np.abs(ratio - 1) < 0.1), ratio


# Bad input.


def test_a_sample_of_another_hypersurface_is_refused(quintic):
    # the points' residual |p(z)| (as the balanced code checks), not only their dimension:
    # the Dwork sample used to give χ = -393 ± 91 on the Fermat quintic (24 points: the
    # shapes test_autodiff_matches_the_gauss_equation compiles)
    fermat, full = quintic
    dwork = flows.Hypersurface.dwork_quintic(0.3 + 0.1j)
    for surface, sample in (
        (fermat, _sample(dwork, 24)),
        (dwork, flows.subsample(full, np.arange(24))),
    ):
        with pytest.raises(
            ValueError, match="chern_integrals: .* a sample of another hypersurface"
        ):
            flows.chern_integrals(surface, sample)
        with pytest.raises(
            ValueError, match="chern_curvature: .* a sample of another hypersurface"
        ):
            flows.chern_curvature(surface, sample)


class _Potential(eqx.Module):
    """phi = a log|z|^2 + b |z_0|^2 / |z|^2: one compiled curvature for every (a, b)."""

    a: jax.Array
    b: jax.Array

    def __call__(self, z):
        norm = jnp.sum(jnp.abs(z) ** 2)
        return self.a * jnp.log(norm) + self.b * jnp.abs(z[0]) ** 2 / norm


def test_bad_metrics_and_potentials_are_refused():
    surface = flows.Hypersurface.fermat_cubic()
    sample = _sample(surface, 9)
    # phi = -log|z|^2 makes g = 0; a NaN potential a NaN metric (both used to give NaN
    # numbers silently)
    with pytest.raises(
        ValueError, match=r"not positive definite at 9 of 9 points \(first: point 0"
    ):
        flows.chern_integrals(surface, sample, _Potential(jnp.asarray(-1.0), jnp.asarray(0.0)))
    with pytest.raises(ValueError, match=r"chern_integrals: the metric .* not finite at 9 of 9"):
        flows.chern_integrals(surface, sample, _Potential(jnp.asarray(jnp.nan), jnp.asarray(0.0)))
    # a metric negative at some points only (3 |z_0|^2 / |z|^2: g / g_FS from -0.44 to
    # 2.7 here): the first is named
    phi = _Potential(jnp.asarray(0.0), jnp.asarray(3.0))
    probe = flows.subsample(sample, np.roll(np.arange(9), -1))
    lowest = np.linalg.eigvalsh(np.asarray(flows.pulled_back_metric(probe, phi)))[:, 0]
    first = int(np.flatnonzero(lowest <= 0)[0])
    assert first > 0 and np.any(lowest > 0)
    with pytest.raises(
        ValueError,
        match=rf"chern_curvature: .* definite at \d+ of 9 points \(first: point {first},",
    ):
        flows.chern_curvature(surface, probe, phi)
    # not a callable (a raw TypeError before)
    with pytest.raises(ValueError, match="potential must be None .* or a callable"):
        flows.chern_integrals(surface, sample, "fs")
    # chern_densities takes array-likes (a list raised AttributeError): on a curve
    # J = g / 2 pi and c_1 = Θ / 2 pi
    np.testing.assert_allclose(
        flows.chern_densities([[[1.0]]], [[[[[1.0]]]]]), [[1 / (2 * np.pi)] * 2], rtol=1e-15
    )
