"""Fixed points and symmetries of the flows, with `flows.testing` (the users' property checks).

Tolerances: a flat metric is an exact fixed point of the discretised flows (every derivative
of a constant series vanishes), so 1e-12. Translations by whole grid steps permute the torus
nodes, so they commute to rounding, relative to a velocity as small as the perturbation's
amplitude (down to 3e-3 here): 1e-10. Rotations of S^2 commute with the quadrature projection
of the velocity onto the band-limited series only up to its aliasing (the velocity is a
nonlinear function of the metric, not band-limited). Measured for a band-limit-2 metric of
amplitude 0.2: 2e-3 (local fixed-measure flow) and 1e-4 (smoothed, sigma = 0.5) at degree 12,
2e-4 and 2e-6 at 16, 4e-6 and 3e-10 at 24; so degree 24 with tolerances 1e-4 and 1e-8.
"""

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flows
import flows.testing as ft

T2 = flows.Torus(2, 8)
T3 = flows.Torus(3, 6)
S2 = flows.Sphere(2, 24)
ROUND = flows.Sphere(2, 4)  # the round metric is constant in ambient components: degree 4 holds it


@pytest.mark.parametrize(
    "torus",
    # T^2 runs the same code as T^3 with fewer components: slow (default-suite time)
    [pytest.param(T2, marks=pytest.mark.slow), T3],
    ids=["T2", "T3"],
)
@pytest.mark.parametrize("name", ["perelman", "smoothed"])
def test_flat_metrics_are_fixed_points(torus, name):
    flow = flows.make_flow(name, torus, 0.3)

    @settings(max_examples=3)
    @given(ft.flat_metrics(torus))
    def check(metric):
        ft.assert_fixed_point(flow, metric, tol=1e-12)

    check()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("perelman_lambda_deturck", marks=pytest.mark.slow),  # default-suite time
        "ricci_deturck",
        "componentwise",
    ],
)
def test_round_sphere_is_a_fixed_point_of_the_volume_normalised_flows(name):
    flow = flows.VolumeNormalised(flows.make_flow(name, ROUND))
    round_metric = flows.reference_metric(ROUND)
    for scale in (1.0, 2.5):
        scaled = flows.NodalMetric(ROUND, scale * round_metric.values)
        ft.assert_fixed_point(flow, scaled, tol=1e-10)
    # the unnormalised flow shrinks it: the check can fail
    with pytest.raises(AssertionError, match="not a fixed point"):
        ft.assert_fixed_point(flows.make_flow(name, ROUND), round_metric, tol=1e-10)


def test_fixed_point_check_fails_on_a_perturbed_metric():
    bumpy = flows.random_metric(T2, jax.random.key(0), band_limit=2, amplitude=0.2)
    assert ft.fixed_point_residual(flows.make_flow("perelman", T2), bumpy) > 1e-2
    with pytest.raises(AssertionError, match="not a fixed point"):
        ft.assert_fixed_point(flows.make_flow("perelman", T2), bumpy)


@pytest.mark.parametrize("name", ["ricci_deturck", "smoothed"])
@settings(max_examples=3)
@given(metric=ft.random_metrics(T2, band_limit=2), isometry=ft.translations(T2))
def test_flows_commute_with_translations(name, metric, isometry):
    ft.assert_commutes(flows.make_flow(name, T2, 0.3), metric, isometry, tol=1e-10)


@pytest.mark.parametrize("name,tol", [("perelman", 1e-4), ("smoothed", 1e-8)])
@settings(max_examples=2)
@given(metric=ft.random_metrics(S2, band_limit=2, max_amplitude=0.2), isometry=ft.rotations(S2))
def test_flows_commute_with_rotations(name, tol, metric, isometry):
    ft.assert_commutes(flows.make_flow(name, S2, 0.5), metric, isometry, tol=tol)


def test_commutation_check_fails_for_a_flow_without_the_symmetry():
    # a kernel rescaled by a non-constant s(x) is not translation invariant
    kernel = flows.RescaledKernel(flows.GaussianKernel(0.5), lambda x: 1 + 0.5 * jnp.cos(x[0]))
    flow = flows.MetricFlow(T2, "none", kernel)
    metric = flows.random_metric(T2, jax.random.key(1), band_limit=2, amplitude=0.2)
    shift = ft.Isometry(jnp.eye(2), jnp.array([2 * jnp.pi / 8 * 3, 0.0]))
    assert ft.equivariance_residual(flows.make_flow("smoothed", T2, 0.5), metric, shift) < 1e-12
    with pytest.raises(AssertionError, match="does not commute"):
        ft.assert_commutes(flow, metric, shift, tol=1e-8)


def test_flat_cubic_metrics_are_fixed_points_of_the_point_and_kahler_ricci_flows():
    """kappa |Omega|^2, any kappa > 0, on the cubic curve: the Kähler–Ricci velocity
    log(eta / mean eta) vanishes (to rounding: 1e-12) and so does every point-kernel
    flow's (relative 1e-10); both checks fail for Fubini–Study and for a perturbed
    flat metric."""
    surface = flows.Hypersurface.fermat_cubic()
    full = flows.point_sample(surface, flows.sample_points(surface, jax.random.key(5), 300))
    train = flows.chart_sample(full)
    test = flows.sample_near(surface, train, jax.random.key(6), 0.1)
    point_flows = [
        flows.PointKernelFlow(kernel, flows.MongeAmpereLoss(2.0), train, test)
        for kernel in (flows.LocalPointKernel(), flows.gaussian_point_kernel(0.1))
    ]

    @settings(max_examples=4)
    @given(data=st.data())
    def check(data):
        h = data.draw(ft.curve_metrics(train))
        h_test = flows.curve_metric(test, float(h[0, 0, 0].real / abs(train.omega[0]) ** 2))
        ft.assert_kahler_ricci_fixed_point(train, h, tol=1e-12)
        for flow in point_flows:
            ft.assert_point_fixed_point(flow, h, h_test, tol=1e-10)

    check()
    flat = flows.curve_metric(train, 1.0)
    bump = flat * (1 + 0.01 * jnp.sum(jnp.abs(train.points) ** 2, axis=1))[:, None, None].astype(
        flat.dtype
    )
    for h in (train.g_fs, bump):
        with pytest.raises(AssertionError, match="not a fixed point of Kähler–Ricci flow"):
            ft.assert_kahler_ricci_fixed_point(train, h)
        for flow in point_flows:
            with pytest.raises(AssertionError, match="not a fixed point of the point flow"):
                ft.assert_point_fixed_point(flow, h)
