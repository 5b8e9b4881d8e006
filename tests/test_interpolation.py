"""The spectral interpolant reproduces band-limited fields and their derivatives."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows

from .helpers import manifold, max_abs, off_grid_points


@eqx.filter_jit
def _derivatives_in_chart(m, f, xs):
    """Value, gradient and Hessian of f in the manifold's chart at each x (u = 0)."""

    def at(x):
        u0 = jnp.zeros((m.dim,), dtype=x.dtype)

        def fc(u):
            return f(m.chart(x, u))

        return fc(u0), jax.grad(fc)(u0), jax.hessian(fc)(u0)

    return jax.vmap(at)(xs)


@eqx.filter_jit
def evaluate(f, pts):
    # jitted: one compiled program per field structure and shape, where an eager vmap
    # compiles each primitive of the series on its own
    return jax.vmap(f)(pts)


@pytest.mark.parametrize(
    "name", ["T1", "T2", "T3", "S2", pytest.param("S3", marks=pytest.mark.slow)]
)
def test_interpolant_reproduces_band_limited_fields_and_derivatives(name, getkey):
    m = manifold(name)
    field = m.random_field(getkey(), m.band_limit)
    interp = flows.SpectralInterpolant(m, evaluate(field, m.nodes))
    pts = off_grid_points(m, 8)
    exact = _derivatives_in_chart(m, field, pts)
    approx = _derivatives_in_chart(m, interp, pts)
    for a, b in zip(exact, approx, strict=True):
        assert max_abs(a - b) < 1e-10


@pytest.mark.parametrize("name", ["T2", "S2"])
def test_interpolant_carries_trailing_axes(name, getkey):
    m = manifold(name)
    field = m.random_field(getkey(), 2, shape=(2, 3))
    interp = flows.SpectralInterpolant(m, evaluate(field, m.nodes))
    x = off_grid_points(m, 1)[0]
    assert interp(x).shape == (2, 3)
    assert max_abs(interp(x) - field(x)) < 1e-12


@pytest.mark.parametrize("name", ["T2", "S2"])
def test_interpolant_is_inexact_beyond_band_limit(name, getkey):
    # The check above can fail: one degree past the band limit is not reproduced.
    m = manifold(name)
    field = m.random_field(getkey(), m.band_limit + 2)
    interp = flows.SpectralInterpolant(m, evaluate(field, m.nodes))
    pts = off_grid_points(m, 16)
    assert max_abs(evaluate(interp, pts) - evaluate(field, pts)) > 1e-6


def test_torus_interpolant_keeps_nyquist_mode_real_and_interpolating():
    # Even n: cos(n x / 2) is carried as a cosine (interpolates the nodes, stays real).
    m = flows.Torus(1, 8)
    values = jnp.cos(4 * m.nodes[:, 0])
    interp = flows.SpectralInterpolant(m, values)
    np.testing.assert_allclose(jax.vmap(interp)(m.nodes), values, atol=1e-14)
    x = jnp.array([0.3])
    assert abs(float(interp(x)) - float(jnp.cos(4 * 0.3))) < 1e-14


@pytest.mark.parametrize("name", ["T2", "T3", "S2", "S3"])
def test_random_field_is_bounded_and_resolution_independent(name, getkey):
    m = manifold(name)
    key = getkey()
    field = m.random_field(key, 3)
    pts = off_grid_points(m, 200)
    assert max_abs(evaluate(field, pts)) <= 1.0
    # the coarse sphere without its separable transform tables (fast=False: the same rule
    # and harmonics; S^3's tables take about 3 s to compile at each new degree)
    coarse = flows.Torus(m.dim, 7) if name.startswith("T") else flows.Sphere(m.dim, 6, fast=False)
    other = coarse.random_field(key, 3)
    np.testing.assert_allclose(evaluate(other, pts), evaluate(field, pts), atol=1e-14)


def test_spectral_arrays_of_the_wrong_shape_are_refused_by_name():
    # a multiplier of one axis broadcast silently on the torus (a wrong answer), and the
    # other calls raised IndexError or TypeError from inside jax
    torus, sphere = flows.Torus(2, 5), flows.Sphere(2, 6)
    values = jnp.cos(torus.nodes[:, 1])
    with pytest.raises(ValueError, match=r"one multiplier per spectral slot, shape \(5, 5\)"):
        torus.spectral_multiply(values, jnp.arange(5.0))
    for m in (torus, sphere):
        wrong = jnp.zeros((3,))
        with pytest.raises(ValueError, match="synthesize needs coefficients whose leading shape"):
            m.synthesize(wrong)
        with pytest.raises(ValueError, match="evaluate needs coefficients whose leading shape"):
            m.evaluate(wrong, m.nodes[0])
        with pytest.raises(ValueError, match="integrate needs values with a leading"):
            m.integrate(jnp.ones(m.weights.shape[0] + 1))
    slots = sphere.laplace_eigenvalues().shape
    np.testing.assert_allclose(  # the right shapes still work: the constant's coefficient
        sphere.spectral_multiply(jnp.ones(sphere.weights.shape), jnp.ones(slots)), 1.0, atol=1e-13
    )


def test_conformal_metric_rtol_reaches_the_nodal_check():
    # u = x_1 / 2 is not band-limited to degree 4: refused at the default rtol, accepted
    # with the check off (rtol=None) as documented, or at a looser rtol
    sphere = flows.Sphere(2, 8)
    with pytest.raises(ValueError, match="not"):
        flows.conformal_metric(sphere, lambda x: 0.5 * x[0])
    for rtol in (None, 1e-2):
        metric = flows.conformal_metric(sphere, lambda x: 0.5 * x[0], rtol=rtol)
        expected = jnp.exp(sphere.nodes[:, 0])[:, None, None] * sphere.reference_at_nodes()
        np.testing.assert_allclose(metric.values, expected, atol=1e-14)


def test_nodal_check_tolerance_is_at_least_the_dtype_rounding():
    # band-limited values in float32 miss their series by float32 rounding (~1e-7 relative),
    # which the default rtol 1e-8 refused: random_metric failed on every sphere in float32.
    # The floor is 100 eps of the values' dtype.
    with jax.enable_x64(False):
        sphere = flows.Sphere(2, 10)
        metric = flows.random_metric(sphere, jax.random.key(0), 2, 0.3)
        assert metric.values.dtype == jnp.float32
        with pytest.raises(ValueError, match="not band-limited"):  # real misses still refused
            flows.NodalMetric(sphere, metric.values.at[0].multiply(1.01))
