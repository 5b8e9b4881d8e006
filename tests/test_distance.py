"""Geodesic distances of g_ref: closed forms, symmetry, and a smooth square on the diagonal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from .helpers import manifold, off_grid_points


def test_torus_distance_wraps_around():
    torus = manifold("T2")
    d = torus.distance
    assert float(d(jnp.array([0.0, 0.0]), jnp.array([np.pi / 2, 0.0]))) == pytest.approx(
        np.pi / 2, abs=1e-15
    )
    # 2 pi - 0.1 apart in one coordinate is 0.1 apart on the torus.
    assert float(d(jnp.array([0.05, 1.0]), jnp.array([2 * np.pi - 0.05, 1.0]))) == pytest.approx(
        0.1, abs=1e-14
    )
    assert float(d(jnp.array([0.0, 0.0]), jnp.array([np.pi, np.pi]))) == pytest.approx(
        np.pi * np.sqrt(2), abs=1e-14
    )
    assert float(
        d(jnp.array([1.0, 2.0]), jnp.array([1.0 + 2 * np.pi, 2.0 - 4 * np.pi]))
    ) == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("dim", [2, 3])
def test_sphere_distance_is_the_great_circle_angle(dim):
    sphere = manifold(f"S{dim}")
    x, y = off_grid_points(sphere, 2, seed=4)
    assert float(sphere.distance(x, y)) == pytest.approx(float(jnp.arccos(x @ y)), abs=1e-12)
    assert float(sphere.distance(x, -x)) == pytest.approx(np.pi, abs=1e-15)
    assert float(sphere.distance(x, x)) == 0.0
    assert float(sphere.distance(x, y)) == float(sphere.distance(y, x))
    # Accurate for nearby points, where arccos loses half the digits.
    e = jnp.zeros(dim + 1).at[0].set(1.0)
    near = jnp.zeros(dim + 1).at[0].set(jnp.cos(1e-9)).at[1].set(jnp.sin(1e-9))
    assert float(sphere.distance(e, near)) == pytest.approx(1e-9, rel=1e-12)


@pytest.mark.parametrize("name", ["T2", "S2"])
def test_squared_distance_is_smooth_on_the_diagonal(name):
    # A Gaussian kernel exp(-d^2 / 2 sigma^2) will be differentiated at x = y.
    m = manifold(name)
    x = off_grid_points(m, 1)[0]
    grad = jax.grad(lambda z: m.distance(z, x) ** 2)(x)
    assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.max(jnp.abs(grad))) == 0.0


@pytest.mark.parametrize("name", ["T3", "S3"])
def test_distance_triangle_inequality(name, getkey):
    m = manifold(name)
    x, y, z = m.sample(getkey(), 3)
    assert float(m.distance(x, z)) <= float(m.distance(x, y) + m.distance(y, z)) + 1e-14
