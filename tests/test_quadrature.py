"""Quadrature exactness and the harmonic bases, against closed forms and scipy."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import flows
from flows._manifolds.harmonics import (  # white-box: tests a private helper
    HarmonicTable,
    basis_size,
)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("n", [5, 6])
def test_torus_integrates_trig_polynomials_of_degree_below_n(dim, n):
    # Exact: sum_j exp(i k 2 pi j / n) = 0 unless k = 0 mod n, so every |k_i| < n is exact.
    torus = flows.Torus(dim, n)
    assert np.isclose(float(torus.weights.sum()), (2 * np.pi) ** dim, rtol=1e-14)
    ks = np.array(list(itertools.product(range(-(n - 1), n), repeat=dim)), dtype=float)
    phase = torus.nodes @ ks.T  # (N, K)
    cos_int = torus.integrate(jnp.cos(phase))
    sin_int = torus.integrate(jnp.sin(phase))
    expected = np.where(np.all(ks == 0, axis=1), (2 * np.pi) ** dim, 0.0)
    np.testing.assert_allclose(cos_int, expected, atol=1e-12)
    np.testing.assert_allclose(sin_int, 0.0, atol=1e-12)
    # ... and degree n is not: the rule aliases k = n onto k = 0.
    alias = torus.integrate(jnp.cos(n * torus.nodes[:, 0]))
    assert abs(float(alias) - (2 * np.pi) ** dim) < 1e-12


def _monomial_integral(alpha):
    """Closed form of the integral of prod x_i^alpha_i over the unit sphere."""
    if any(a % 2 for a in alpha):
        return 0.0
    beta = [(a + 1) / 2 for a in alpha]
    return 2 * math.prod(math.gamma(b) for b in beta) / math.gamma(sum(beta))


# The quadrature tests below build their spheres with fast=False: the rule (nodes, weights)
# and the harmonic table are the same, and the separable transform tables they do not use
# are not built (about 3 s of compilation for each new degree of S^3).


@pytest.mark.parametrize("dim,degree", [(2, 7), (2, 10), (3, 6), (3, 9)])
def test_sphere_integrates_all_polynomials_up_to_degree(dim, degree):
    sphere = flows.Sphere(dim, degree, fast=False)
    x = np.asarray(sphere.nodes)
    for alpha in itertools.product(range(degree + 1), repeat=dim + 1):
        if sum(alpha) > degree:
            continue
        got = float(sphere.integrate(jnp.asarray(np.prod(x ** np.array(alpha), axis=1))))
        assert abs(got - _monomial_integral(alpha)) < 1e-12, alpha


def test_sphere_weights_sum_to_volume():
    assert abs(float(flows.Sphere(2, 9).weights.sum()) - 4 * np.pi) < 1e-12
    assert abs(float(flows.Sphere(3, 9, fast=False).weights.sum()) - 2 * np.pi**2) < 1e-12
    assert flows.Sphere(2, 9).volume == 4 * np.pi
    assert flows.Sphere(3, 9, fast=False).volume == 2 * np.pi**2


@pytest.mark.parametrize("degree", [6, 11])
def test_s2_quadrature_integrates_scipy_harmonics(degree):
    # Independent harmonics (scipy, spherical angles) up to the rule's degree.
    sphere = flows.Sphere(2, degree)
    x = np.asarray(sphere.nodes)
    theta, phi = np.arccos(x[:, 2]), np.arctan2(x[:, 1], x[:, 0])
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            y = scipy.special.sph_harm_y(ell, m, theta, phi)
            got = np.sum(np.asarray(sphere.weights) * y)
            expected = np.sqrt(4 * np.pi) if ell == 0 else 0.0
            assert abs(got - expected) < 1e-12, (ell, m)


@pytest.mark.parametrize("dim,band", [(2, 8), (3, 6)])
def test_harmonic_basis_is_orthonormal(dim, band):
    # Gram matrix under a rule exact to degree 2*band: the identity (analytic normalisation).
    table = HarmonicTable(dim, band)
    sphere = flows.Sphere(dim, 2 * band, fast=False)
    basis = jax.vmap(table)(sphere.nodes)
    assert basis.shape == (sphere.nodes.shape[0], basis_size(dim, band))
    gram = (basis * sphere.weights[:, None]).T @ basis
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-12)


def test_s2_basis_matches_scipy_real_harmonics():
    # Real harmonics from scipy: m > 0: sqrt2 (-1)^m Re Y_lm and sqrt2 (-1)^m Im Y_lm.
    table = HarmonicTable(2, 6)
    pts = np.asarray(flows.Sphere(2, 4).sample(jax.random.key(3), 20))
    ours = np.asarray(jax.vmap(table)(jnp.asarray(pts)))
    theta, phi = np.arccos(pts[:, 2]), np.arctan2(pts[:, 1], pts[:, 0])
    for j, (ell, m, part) in enumerate(zip(table.ell, table.m1, table.part, strict=True)):
        y = scipy.special.sph_harm_y(ell, m, theta, phi)
        if m == 0:
            ref = y.real
        else:
            ref = np.sqrt(2) * (-1) ** m * (y.real if part == 0 else y.imag)
        np.testing.assert_allclose(ours[:, j], ref, atol=1e-12, err_msg=f"l={ell} m={m}")


def test_gauss_rule_sizes():
    # S^2: (L//2 + 1)(L + 1) nodes; S^3: (L//4 + 1)(L + 1)^2.
    assert flows.Sphere(2, 16).nodes.shape == (9 * 17, 3)
    assert flows.Sphere(3, 16, fast=False).nodes.shape == (5 * 17**2, 4)
    assert flows.Torus(3, 4).nodes.shape == (64, 3)
    nodes = flows.Sphere(3, 7, fast=False).nodes
    assert np.allclose(np.linalg.norm(nodes, axis=1), 1.0, atol=1e-15)
