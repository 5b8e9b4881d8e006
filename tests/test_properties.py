"""Property tests (hypothesis) over random smooth metrics: identities that hold for every metric."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import flows

from .helpers import max_abs

TORUS = flows.Torus(2, 32)
SPHERE = flows.Sphere(2, 40)


@eqx.filter_jit
def _gauss_bonnet_and_symmetry(metric, points):
    m = metric.manifold

    def density(x):
        geom = flows.local_geometry(metric, x)
        return geom.scalar * geom.volume_density

    def riemann_defect(x):
        riem = flows.local_geometry(metric, x).riemann
        pair = riem - jnp.transpose(riem, (2, 3, 0, 1))
        anti = riem + jnp.swapaxes(riem, 0, 1)
        return jnp.maximum(jnp.max(jnp.abs(pair)), jnp.max(jnp.abs(anti)))

    total = m.integrate(jax.vmap(density)(m.nodes)) / 2
    return total, jnp.max(jax.vmap(riemann_defect)(points))


@given(seed=st.integers(0, 2**31 - 1), amplitude=st.floats(0.05, 0.5))
def test_gauss_bonnet_on_random_torus_metrics(seed, amplitude):
    # Band limit 3 at n = 32: quadrature error of R dV_g is ~1e-13 for amplitudes <= 0.5.
    metric = flows.random_metric(TORUS, jax.random.key(seed), band_limit=3, amplitude=amplitude)
    total, defect = _gauss_bonnet_and_symmetry(metric, TORUS.sample(jax.random.key(seed), 4))
    assert abs(float(total)) < 1e-8
    assert float(defect) < 1e-10


@given(seed=st.integers(0, 2**31 - 1), amplitude=st.floats(0.05, 0.5))
def test_gauss_bonnet_on_random_sphere_metrics(seed, amplitude):
    metric = flows.random_metric(SPHERE, jax.random.key(seed), band_limit=3, amplitude=amplitude)
    total, defect = _gauss_bonnet_and_symmetry(metric, SPHERE.sample(jax.random.key(seed), 4))
    assert abs(float(total) - 4 * np.pi) < 1e-8
    assert float(defect) < 1e-10


@given(seed=st.integers(0, 2**31 - 1), amplitude=st.floats(0.01, 0.99))
def test_random_metrics_are_positive_definite_within_their_bounds(seed, amplitude):
    # Eigenvalues of g_ref + a H lie in [1 - a, 1 + a] everywhere, not only at the nodes.
    exact = flows.RandomPerturbation(
        SPHERE, jax.random.key(seed), band_limit=4, amplitude=amplitude
    )
    pts = SPHERE.sample(jax.random.key(seed), 64)
    frames = jax.vmap(SPHERE.frame)(pts)
    tangential = jnp.einsum("pai,pab,pbj->pij", frames, flows.evaluate_at(exact, pts), frames)
    eig = jnp.linalg.eigvalsh(tangential)
    assert float(eig.min()) >= 1 - amplitude - 1e-12
    assert float(eig.max()) <= 1 + amplitude + 1e-12
    assert max_abs(tangential - jnp.swapaxes(tangential, 1, 2)) < 1e-15
