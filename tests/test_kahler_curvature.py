"""Curvature of Kähler metrics on hypersurfaces (flows/_calabi_yau/curvature.py) against analytic results.

Float64. Tolerances:
- a hyperplane of CP^{m+1} is CP^m, where Fubini–Study has Ric = (m + 1) g and
  R = 2m(m + 1) exactly: compared pointwise to 1e-9 (four nested derivatives
  in float64 lose about 6 digits to rounding);
- on a degree-d hypersurface of CP^n the volume average of R is topological,
  2m(n + 1 - d) for every metric of the Fubini–Study class (c_1(X) = (n+1-d)H):
  compared to the Monte Carlo estimate within 4 standard errors, the error
  taken from 20 contiguous batches (the d points of one sampled line are
  correlated and adjacent);
- the metric equals `pulled_back_metric` to 1e-12.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows


def _sample(n, d, count, seed=0):
    surface = flows.Hypersurface.fermat(n, d)
    return surface, flows.point_sample(
        surface, flows.sample_points(surface, jax.random.key(seed), count)
    )


def _mean_and_error(sample, g, scalar, batches=20):
    eta = jnp.real(jnp.linalg.det(g)) / jnp.abs(sample.omega) ** 2
    mass = np.asarray(sample.weights * eta)
    values = np.asarray(scalar)
    mean = float(flows.scalar_curvature_mean(sample, g, scalar))
    parts = [
        np.sum(m * v) / np.sum(m)
        for m, v in zip(np.array_split(mass, batches), np.array_split(values, batches), strict=True)
    ]
    return mean, float(np.std(parts, ddof=1) / math.sqrt(batches))


def test_hyperplane_is_projective_space_with_its_analytic_curvature():
    surface, sample = _sample(3, 1, 40)  # z_0 + ... + z_3 = 0: CP^2
    g, ric, scalar = flows.hypersurface_curvature(surface, sample)
    assert float(jnp.max(jnp.abs(g - sample.g_fs))) < 1e-12
    assert float(jnp.max(jnp.abs(ric - 3 * g))) < 1e-9  # Kähler–Einstein, Ric = (m + 1) g
    assert float(jnp.max(jnp.abs(scalar - 12.0))) < 1e-9
    # the Ricci measure: Vol^{1/m} |R| with Vol = pi^2 / 2 (the FS volume of CP^2 here)
    assert float(flows.ricci_measure(surface, sample)) == pytest.approx(
        math.sqrt(math.pi**2 / 2) * 12.0, rel=1e-9
    )


# slow (a compile of four nested derivatives through the Newton chart, about 5 s): the
# default suite checks the same topological average with a metric of the class whose R
# varies pointwise (test_network_metric_curvature_is_in_the_same_class, on the conic), and
# the Fubini–Study cubic's integrated curvature, ∫c_1 = (1/4π)∫R dA = 0, through the Chern
# forms (tests/test_chern.py::test_cubic_curve_has_genus_one)
@pytest.mark.slow
@pytest.mark.parametrize("degree", [2, 3])
def test_average_scalar_curvature_of_plane_curves_is_topological(degree):
    surface, sample = _sample(2, degree, 600)
    g, _, scalar = flows.hypersurface_curvature(surface, sample)
    mean, error = _mean_and_error(sample, g, scalar)
    expected = 2 * (3 - degree)  # Gauss–Bonnet: 4 pi chi / area, chi = 3d - d^2, area = pi d
    assert error < 0.3
    assert abs(mean - expected) < 4 * error + 1e-9, (mean, error)
    # the check can fail: the curvature is not constant (except on the conic's round FS)
    if degree == 3:
        assert float(jnp.max(scalar) - jnp.min(scalar)) > 1.0


def test_network_metric_curvature_is_in_the_same_class():
    surface, sample = _sample(2, 2, 600, seed=1)
    phi = flows.kahler_potential(3, jax.random.key(2), width=8, depth=1, activation=jnp.tanh)
    # move the trained copy off the frozen one, so that phi != 0
    moved = jax.tree.map(lambda a: 1.5 * a if eqx.is_inexact_array(a) else a, phi.network)
    phi = eqx.tree_at(lambda p: p.network, phi, moved)
    g, _, scalar = flows.hypersurface_curvature(surface, sample, phi)
    assert float(jnp.max(jnp.abs(g - flows.pulled_back_metric(sample, phi)))) < 1e-12
    assert float(jnp.max(jnp.abs(g - sample.g_fs))) > 1e-3  # not Fubini–Study
    mean, error = _mean_and_error(sample, g, scalar)
    assert abs(mean - 2.0) < 4 * error + 1e-9, (mean, error)
    assert float(jnp.std(scalar)) > 0.05  # R varies pointwise; only its average is fixed


# about 20 s of compiling on 2 cores; the default suite checks the same closed-form Hessian
# path through chern_curvature on the quintic (tests/test_chern.py)
@pytest.mark.slow
def test_closed_form_hessian_path_matches_four_derivatives():
    # A SpectralPotential's closed-form ambient Hessian, differentiated twice, against four
    # derivatives of phi itself (the same potential behind a plain function), on the K3
    # quartic (m = 2, a chart solved by Newton's method): round-off apart
    surface, sample = _sample(3, 4, 300, seed=4)
    basis = flows.SpectralBasis(surface, flows.subsample(sample, np.arange(250)), 2)
    c = 0.05 * jax.random.normal(jax.random.key(5), (basis.size,))
    phi = flows.SpectralPotential(basis, c)
    probe = flows.subsample(sample, np.arange(250, 270))
    closed = flows.hypersurface_curvature(surface, probe, phi)
    reference = flows.hypersurface_curvature(surface, probe, lambda z: phi(z))
    for a, b in zip(closed, reference, strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0 and float(jnp.max(jnp.abs(a - b))) <= 1e-9 * scale
    assert float(jnp.max(jnp.abs(closed[0] - phi.metric(probe)))) < 1e-12


# the quintic's four nested derivatives compile for about a minute on 2 cores: -m slow
@pytest.mark.slow  # two compiles of four nested derivatives: 30 s on the cubic, 60 s on the quintic
@pytest.mark.parametrize("n,d", [(2, 3), (4, 5)])
def test_ricci_measure_is_scale_invariant_and_finite(n, d):
    surface, sample = _sample(n, d, 200)
    fs = float(flows.ricci_measure(surface, sample))
    scaled = float(
        flows.ricci_measure(surface, sample, lambda z: 0.7 * jnp.log(jnp.sum(jnp.abs(z) ** 2)))
    )
    assert math.isfinite(fs) and fs > 1.0  # FS is far from Ricci-flat
    assert scaled == pytest.approx(fs, rel=1e-9)  # g -> 1.7 g
    with pytest.raises(ValueError, match=f"not positive definite .* at {sample.count} of"):
        flows.ricci_measure(surface, sample, lambda z: -2.0 * jnp.log(jnp.sum(jnp.abs(z) ** 2)))


def test_bad_input_is_refused():
    surface, sample = _sample(2, 3, 30)
    with pytest.raises(ValueError, match="expected a Hypersurface"):
        flows.hypersurface_curvature("cubic", sample)
    with pytest.raises(ValueError, match="expected a PointSample"):
        flows.ricci_measure(surface, sample.points)
    with pytest.raises(ValueError, match="live in C\\^3, the hypersurface in C\\^5"):
        flows.ricci_measure(flows.Hypersurface.fermat_quintic(), sample)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_small_hermitian_solve_matches_lapack(m):
    # the adjugate solve (m <= 3) that keeps batched LAPACK triangular solves, which have
    # deadlocked XLA:CPU's two-thread pool, out of the curvature functionals; m = 4 is LU
    from flows._calabi_yau.curvature import _solve  # white-box: a private helper

    rng = np.random.default_rng(m)
    a = rng.normal(size=(m, m)) + 1j * rng.normal(size=(m, m))
    g = a @ a.conj().T + 0.5 * np.eye(m)  # Hermitian positive definite, condition ~ 10-100
    b = rng.normal(size=(m, 2)) + 1j * rng.normal(size=(m, 2))
    x = np.asarray(_solve(jnp.asarray(g), jnp.asarray(b)))
    assert np.abs(x - np.linalg.solve(g, b)).max() < 1e-12 * np.abs(x).max()
