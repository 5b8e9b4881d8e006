"""Kähler–Ricci flow of a potential network on the Fermat quintic, local and smoothed.

Float64. A centred MLP potential (width 4 and depth 1: 109 parameters) on
1000 training points, flowed by Tsit5 (rtol 1e-6) to t = 0.3, saved at 7
times:

- the local flow decreases σ, up to twice the Monte Carlo standard error
  between saves, on the training points (measured 0.385 -> 0.226, falling at
  every save but the last, +1.3e-5, as the projected flow saturates) and on 200
  held-out points (0.391 -> 0.266, lowest 0.255 at t = 0.1: a finite model's projected
  flow stops generalising once it has spent its parameters);
- the Ricci measure on 100 training points is lower at the end than at the
  start (measured 45.5 -> 42.8), but not monotone: it is lowest (37.8) at
  t = 0.1 and rises while σ on the training points still creeps down;
- the smoothed flow's distance from the local one, measured on the metric at
  the training points at t = 0.3 relative to how far the local flow moved,
  shrinks as the Gaussian narrows (σ = 0.4, 0.2, 0.05) and is below 5% at 0.05
  (the training points' mean nearest FS distance is about 0.4, so a width of
  0.05 leaves each point nearly alone); 300 training points here.

Both are slow (a few minutes on two cores): run with -m slow.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows

T1, SAVES = 0.3, 7


pytestmark = pytest.mark.slow


def _quintic(count):
    surface = flows.Hypersurface.fermat_quintic()
    sample = flows.point_sample(
        surface, flows.sample_points(surface, jax.random.key(11), count + 200)
    )
    train = flows.subsample(sample, np.arange(count))
    test = flows.subsample(sample, np.arange(count, sample.count))
    phi = flows.kahler_potential(5, jax.random.key(12), width=4, depth=1)
    return surface, train, test, phi


def _solve(flow):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        diffrax.Tsit5(),
        0.0,
        T1,
        T1 / 20,
        flow.theta0,
        saveat=diffrax.SaveAt(ts=jnp.linspace(0.0, T1, SAVES)),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-9),
        max_steps=4000,
    ).ys


@pytest.mark.filterwarnings("ignore:Complex dtype support in Diffrax")
def test_local_kahler_ricci_flow_decreases_sigma_and_the_ricci_measure():
    surface, train, test, phi = _quintic(1000)
    flow = flows.PotentialFlow(phi, train, "kahler_ricci")
    thetas = _solve(flow)
    train_sigma = [flows.sigma_measure(train, flow.metric(th)) for th in thetas]
    test_sigma = [flows.sigma_measure(test, flow.metric(th, test)) for th in thetas]
    first, last = float(train_sigma[0][0]), float(train_sigma[-1][0])
    assert first > 0.25 and last < 0.7 * first, train_sigma  # measured: 41% down
    # each sample's sigma estimates sigma over X with its standard error: between saves it
    # may rise by at most twice that (measured on the training points: falls at every save
    # but the last, which rises by 1.3e-5 as the projected flow saturates)
    for sigmas in (train_sigma, test_sigma):
        for (before, _), (after, error) in zip(sigmas[:-1], sigmas[1:], strict=True):
            assert float(after) < float(before) + 2 * float(error), sigmas
    start, end = test_sigma[0], test_sigma[-1]
    assert float(end[0]) < float(start[0]) - 3 * float(start[1])  # it generalises
    probe = flows.subsample(train, np.arange(100))
    ricci = [float(flows.ricci_measure(surface, probe, flow.potential(th))) for th in thetas]
    print("sigma train", [float(x) for x, _ in train_sigma], "Ricci measure", ricci)
    assert ricci[-1] < ricci[0], ricci


@pytest.mark.filterwarnings("ignore:Complex dtype support in Diffrax")
def test_smoothed_kahler_ricci_flow_tends_to_the_local_one():
    _, train, _, phi = _quintic(300)
    assert 0.25 < float(flows.mean_nearest_distance(train.points)) < 0.6
    local = flows.PotentialFlow(phi, train, "kahler_ricci")
    g0 = local.metric(local.theta0)
    g_local = local.metric(_solve(local)[-1])
    moved = float(jnp.linalg.norm(g_local - g0))
    distances = []
    for sigma in (0.4, 0.2, 0.05):
        smooth = flows.PotentialFlow(phi, train, "kahler_ricci_smoothed", sigma=sigma)
        g = smooth.metric(_solve(smooth)[-1])
        distances.append(float(jnp.linalg.norm(g - g_local)) / moved)
    assert distances[0] > distances[1] > distances[2], distances
    assert distances[2] < 0.05 and distances[0] > 0.1, distances
