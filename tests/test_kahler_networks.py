"""Kähler metrics of a potential network on a hypersurface (issue 6, item 1).

Float64; the pull-back of a potential is compared with the independent
Fubini–Study pull-back of `point_sample` (rounding, 1e-13).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import flows


@pytest.fixture(scope="module")
def quintic():
    surface = flows.Hypersurface.fermat_quintic()
    return flows.point_sample(surface, flows.sample_points(surface, jax.random.key(0), 100))


def _log_norm(z):
    return jnp.log(jnp.sum(jnp.abs(z) ** 2))


def test_potentials_of_fubini_study_pull_back_to_g_fs(quintic):
    assert jnp.allclose(flows.pulled_back_metric(quintic), quintic.g_fs, atol=1e-13, rtol=0)
    # phi = c log|z|^2 is Fubini-Study again, scaled by 1 + c
    g = flows.pulled_back_metric(quintic, lambda z: 0.5 * _log_norm(z))
    assert jnp.allclose(g, 1.5 * quintic.g_fs, atol=1e-13, rtol=0)


def test_centred_network_starts_at_fubini_study_and_moves_off_it(quintic):
    phi = flows.kahler_potential(5, jax.random.key(1), width=16)
    assert jnp.allclose(flows.pulled_back_metric(quintic, phi), quintic.g_fs, atol=1e-13, rtol=0)
    moved = eqx.tree_at(
        lambda p: p.network,
        phi,
        jax.tree.map(lambda x: 1.2 * x if eqx.is_array(x) else x, phi.network),
    )
    g = flows.pulled_back_metric(quintic, moved)
    assert float(jnp.max(jnp.abs(g - quintic.g_fs))) > 1e-4  # the check can fail
    assert jnp.allclose(g, jnp.conj(jnp.swapaxes(g, 1, 2)), atol=1e-15)
    assert bool(jnp.all(jnp.linalg.eigvalsh(g)[:, 0] > 0))
    # phi is a function on CP^4: invariant under z -> lambda z
    z = quintic.points[:10]
    values = jax.vmap(moved)(z)
    scaled = jax.vmap(moved)((0.3 - 2.0j) * z)
    assert jnp.allclose(values, scaled, atol=1e-14, rtol=0)
    # and only the features enter: 25 real numbers, the projector z z^dagger / |z|^2
    u = flows.bihomogeneous_features(z[0])
    assert u.shape == (25,)
    assert jnp.allclose(u, flows.bihomogeneous_features(1j * z[0]), atol=1e-15)


def test_kahler_potential_bad_input(quintic):
    with pytest.raises(ValueError, match="width"):
        flows.kahler_potential(5, jax.random.key(0), width=0)
    with pytest.raises(ValueError, match="ambient_dim"):
        flows.kahler_potential(1, jax.random.key(0))
    with pytest.raises(ValueError, match="PointSample"):
        flows.pulled_back_metric(quintic.points)
