"""Kähler curvature by autodiff in complex coordinates, against Fubini–Study on CP^m.

With K = log|z|^2 in an affine chart, g_FS is Kähler–Einstein: Ric = (m + 1) g_FS. Four
derivatives of K are taken by AD in float64, so rounding is the only error (1e-10 stated).
"""

import jax
import jax.numpy as jnp
import pytest

from flows import complex_hessian, fubini_study_potential, kahler_metric, ricci_form

from .helpers import max_abs


def _points(m, count=4, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return jax.lax.complex(jax.random.normal(k1, (count, m)), jax.random.normal(k2, (count, m)))


@jax.jit
def _fubini_study(w):
    """g_FS and Ric at a batch of points, with the closed form of g_{i jbar}."""

    def at(v):
        s = (1 + jnp.sum(jnp.abs(v) ** 2)).astype(v.dtype)
        closed = jnp.eye(v.shape[0], dtype=v.dtype) / s - jnp.outer(jnp.conj(v), v) / s**2
        g = kahler_metric(fubini_study_potential, v)
        return g, ricci_form(fubini_study_potential, v), closed

    return jax.vmap(at)(w)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_fubini_study_is_kahler_einstein(m):
    g, ric, closed = _fubini_study(_points(m))
    assert max_abs(g - closed) < 1e-13
    assert max_abs(g - jnp.conj(jnp.swapaxes(g, 1, 2))) < 1e-14
    assert float(jnp.min(jnp.linalg.eigvalsh(g))) > 0
    assert max_abs(ric - (m + 1) * g) < 1e-10


def _flat(v):
    return jnp.sum(jnp.abs(v) ** 2)


def _bumpy(v):  # a potential whose metric is not Einstein
    return _flat(v) + 0.1 * _flat(v) ** 2


@jax.jit
def _metric_and_ricci(w):
    return [(kahler_metric(k, w), ricci_form(k, w)) for k in (_flat, _bumpy)]


def test_flat_and_non_einstein_potentials():
    (g_flat, ric_flat), (g, ric) = _metric_and_ricci(_points(2)[0])
    assert max_abs(g_flat - jnp.eye(2, dtype=g.dtype)) < 1e-14
    assert max_abs(ric_flat) < 1e-13
    lam = jnp.trace(ric) / jnp.trace(g)  # the Einstein check above can fail
    assert max_abs(ric - lam * g) > 1e-2


def test_complex_hessian_of_a_pluriharmonic_function_vanishes():
    # Re(w1^2 w2) is pluriharmonic: its d dbar is zero
    w = _points(2)[1]
    assert max_abs(complex_hessian(lambda v: jnp.real(v[0] ** 2 * v[1]), w)) < 1e-13
