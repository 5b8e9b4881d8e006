"""Bad input gets a clear error naming the problem; nothing returns NaN silently."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
import solvers

from .helpers import manifold, off_grid_points


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: flows.Torus(4, 8), "dim must be 1, 2 or 3"),
        (lambda: flows.Torus(0, 8), "dim must be 1, 2 or 3"),
        (lambda: flows.Torus(2, 2), "n .* must be an integer >= 3"),
        (lambda: flows.Torus(2, 8.0), "n .* must be an integer >= 3"),
        (lambda: flows.Sphere(1, 8), "dim must be 2 or 3"),
        (lambda: flows.Sphere(4, 8), "dim must be 2 or 3"),
        (lambda: flows.Sphere(2, 1), "degree must be an integer >= 2"),
        (lambda: flows.Sphere(2, -3), "degree must be an integer >= 2"),
    ],
)
def test_unsupported_manifolds(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_nodal_metric_shape_errors():
    torus = manifold("T2")
    with pytest.raises(ValueError, match=r"must have shape \(256, 2, 2\)"):
        flows.NodalMetric(torus, jnp.ones((255, 2, 2)))
    with pytest.raises(ValueError, match=r"must have shape \(256, 2, 2\)"):
        flows.NodalMetric(torus, jnp.ones((256, 3, 3)))
    with pytest.raises(ValueError, match="floating point"):
        flows.NodalMetric(torus, jnp.ones((256, 2, 2), dtype=jnp.int32))


def _bad_node(values, node, matrix):
    return values.at[node].set(matrix)


@pytest.mark.parametrize(
    "matrix,match",
    [
        (jnp.array([[1.0, 0.5], [0.0, 1.0]]), "not symmetric at node 17"),
        (jnp.array([[1.0, 0.0], [0.0, -1.0]]), "not positive definite .* at node 17"),
        (jnp.array([[1.0, 2.0], [2.0, 1.0]]), "not positive definite .* at node 17"),
        (jnp.array([[jnp.nan, 0.0], [0.0, 1.0]]), "not finite at node 17"),
        (jnp.array([[jnp.inf, 0.0], [0.0, 1.0]]), "not finite at node 17"),
    ],
)
def test_nodal_metric_value_errors_name_the_node(matrix, match):
    torus = manifold("T2")
    with pytest.raises(ValueError, match=match):
        flows.NodalMetric(torus, _bad_node(torus.reference_at_nodes(), 17, matrix))


def test_sphere_checks_only_the_tangential_part():
    # The normal-normal component of an ambient field is not part of the metric.
    sphere = manifold("S2")
    nodes = sphere.nodes
    values = jnp.eye(3) - 5 * jnp.einsum("na,nb->nab", nodes, nodes)
    flows.NodalMetric(sphere, values)  # fine: P A P = P
    with pytest.raises(ValueError, match="not positive definite on the tangent space at node 0"):
        flows.NodalMetric(sphere, values.at[0].set(-jnp.eye(3)))


def test_traced_nodal_values_are_checked_at_run_time():
    torus = manifold("T2")

    @jax.jit
    def build(values):
        return flows.NodalMetric(torus, values).values

    bad = _bad_node(torus.reference_at_nodes(), 3, -jnp.eye(2))
    with pytest.raises(Exception, match="not positive definite at some node"):
        build(bad).block_until_ready()
    with pytest.raises(Exception, match="determinant outside float64's normal range"):
        build(1e160 * torus.reference_at_nodes()).block_until_ready()


@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_a_determinant_the_precision_cannot_hold_is_refused(scale):
    # T^3 scaled by 1e150: det g = 1e450 overflows float64 (1e-450 underflows), so the volume
    # density was inf (or 0) and every observable NaN. Scaled by 1e100 (det 1e300) it is fine.
    t3 = flows.Torus(3, 4)
    with pytest.raises(ValueError, match=r"determinant outside float64's normal range .* node 0"):
        flows.NodalMetric(t3, scale * t3.reference_at_nodes())
    flows.NodalMetric(t3, (1e100 if scale > 1 else 1e-100) * t3.reference_at_nodes())


def test_an_ill_conditioned_metric_warns():
    # condition number 1e14 on T^2: accepted silently before, with int R dV = -5e16
    torus = manifold("T2")
    values = torus.reference_at_nodes().at[:, 1, 1].set(1e-14)
    with pytest.warns(UserWarning, match=r"ill-conditioned: condition number 1\.0e\+14 at node 0"):
        flows.NodalMetric(torus, values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flows.NodalMetric(torus, values.at[:, 1, 1].set(1e-9))  # kappa eps = 2e-7: no warning


def test_network_metric_errors():
    sphere = manifold("S2")
    with pytest.raises(ValueError, match="network must be callable"):
        flows.NetworkMetric(sphere, 3.0)
    metric = flows.NetworkMetric(sphere, lambda x: jnp.ones(5))
    with pytest.raises(ValueError, match=r"6 upper-triangular components .* returned shape \(5,\)"):
        metric(sphere.nodes[0])
    bad = flows.NetworkMetric(sphere, lambda x: jnp.diag(jnp.array([1.0, 1.0, 1.0]) - 2 * x))
    with pytest.raises(ValueError, match="NetworkMetric is not positive definite .* at node"):
        bad.check()


def test_curvature_refuses_non_positive_metric_at_evaluation_points():
    # A network metric that is indefinite somewhere: an error, never a NaN curvature.
    torus = manifold("T2")
    metric = flows.NetworkMetric(torus, lambda x: jnp.array([1.0, 0.0, jnp.cos(x[0])]))
    pts = jnp.array([[0.1, 0.2], [3.0, 0.0]])  # cos(3) < 0 at the second point
    # a ValueError naming the point (it was the run-time check's JIT stack, 35 lines)
    with pytest.raises(ValueError, match=r"scalar_curvature: .*not positive definite .*at point 1"):
        flows.scalar_curvature(metric, pts)
    nan_metric = flows.NetworkMetric(
        torus, lambda x: jnp.array([1.0, 0.0, 1 + jnp.log(jnp.cos(x[0]))])
    )
    with pytest.raises(ValueError, match="non-finite component at point 1"):
        flows.volume_density(nan_metric, pts)
    rough = flows.NetworkMetric(torus, lambda x: jnp.array([1.0, 0.0, 1 + jnp.abs(x[0]) ** 1.5]))
    with pytest.raises(ValueError, match="not smooth: its derivatives are not finite at point 0"):
        flows.scalar_curvature(rough, jnp.array([[0.0, 0.2], [1.0, 0.0]]))
    # under jit the points are traced: the run-time check itself
    with pytest.raises(Exception, match="not positive definite at an evaluation point"):
        jax.jit(lambda p: flows.scalar_curvature(metric, p))(pts)


def test_curvature_point_errors():
    sphere = manifold("S2")
    metric = flows.reference_metric(sphere)
    with pytest.raises(ValueError, match="have 3 components; got an array of shape \\(4, 2\\)"):
        flows.scalar_curvature(metric, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="point 1 has norm 2"):
        flows.scalar_curvature(metric, jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match="point 0 is not finite"):
        flows.ricci(metric, jnp.array([jnp.nan, 0.0, 1.0]))
    with pytest.raises(ValueError, match="expected a metric module"):
        flows.scalar_curvature(sphere, sphere.nodes)
    with pytest.raises(ValueError, match="scalar field .* nodal values of shape"):
        flows.laplacian(metric, jnp.ones(7), sphere.nodes[:2])


def test_resolution_errors(getkey):
    torus = flows.Torus(2, 8)
    with pytest.raises(
        ValueError, match="band limit 5, but Torus\\(dim=2, n=8\\) resolves only up to 3"
    ):
        flows.random_metric(torus, getkey(), band_limit=5)
    with pytest.raises(
        ValueError, match="band limit 9, but Sphere\\(dim=2, degree=16\\) resolves only up to 8"
    ):
        flows.random_metric(manifold("S2"), getkey(), band_limit=9)
    with pytest.raises(ValueError, match="not resolved by Torus\\(dim=2, n=8\\)"):
        flows.conformal_metric(torus, lambda x: 0.5 * jnp.cos(3 * x[0]) * jnp.sin(2 * x[1]))
    with pytest.raises(ValueError, match="nodal u .* must have shape \\(64,\\)"):
        flows.conformal_metric(torus, jnp.zeros(63))
    with pytest.raises(ValueError, match="amplitude must lie in \\(0, 1\\)"):
        flows.random_metric(torus, getkey(), band_limit=2, amplitude=1.5)


def test_spectral_interpolant_shape_errors():
    with pytest.raises(ValueError, match="leading axis 256"):
        flows.SpectralInterpolant(manifold("T2"), jnp.ones(10))
    with pytest.raises(ValueError, match="leading axis 153"):
        flows.SpectralInterpolant(manifold("S2"), jnp.ones(10))
    interp = flows.SpectralInterpolant(manifold("T2"), jnp.ones(256))
    with pytest.raises(ValueError, match="a point must have shape \\(2,\\)"):
        interp(jnp.ones(3))


def test_valid_metrics_give_finite_curvature_everywhere(getkey):
    # The converse: a positive definite metric never produces a NaN.
    for name in ("T2", "S2"):
        metric = flows.random_metric(manifold(name), getkey(), band_limit=3, amplitude=0.9)
        pts = off_grid_points(metric.manifold, 6)
        assert bool(jnp.all(jnp.isfinite(flows.riemann(metric, pts))))
    assert eqx.is_array(metric.values)


def test_sphere_nodal_metric_refuses_values_its_series_does_not_reproduce():
    # Reviewer's case: every node is positive definite, but the degree-8 projection of this
    # step function is indefinite at some node; the metric would not be the one checked.
    sphere = manifold("S2")
    scale = jnp.where(jnp.abs(sphere.nodes[:, 0]) < 0.3, 0.05, 1.0)
    with pytest.raises(ValueError, match="not band-limited to degree 8 .* at node"):
        flows.NodalMetric(sphere, scale[:, None, None] * jnp.eye(3))
    with pytest.raises(ValueError, match="not band-limited"):
        flows.conformal_metric(sphere, 0.5 * jnp.tanh(3 * sphere.nodes[:, 0]))


def test_more_bad_inputs():
    torus = manifold("T2")
    with pytest.raises(ValueError, match="u must return a scalar at a point, got shape \\(1,\\)"):
        flows.conformal_metric(torus, lambda x: jnp.sin(x[:1]))
    metric = flows.reference_metric(torus)
    with pytest.raises(ValueError, match="nodal value 5 is not finite"):
        flows.laplacian(metric, jnp.ones(256).at[5].set(jnp.nan), torus.nodes[:2])
    with pytest.raises(ValueError, match="dim must be 1, 2 or 3, got True"):
        flows.Torus(True, 5)
    assert flows.Torus(np.int64(2), np.int64(8)).n == 8  # NumPy integers are integers
    assert flows.Sphere(np.int32(2), np.int64(6)).degree == 6


@pytest.mark.parametrize(
    "make,width",
    [
        (lambda s: flows.GaussianKernel(s), lambda k: k.sigma),
        (lambda s: flows.FSGaussian(s), lambda k: k.sigma),
        (lambda s: flows.make_flow("smoothed", manifold("T2"), s), lambda f: f.kernel.sigma),
        (lambda s: flows.CosineNetwork(manifold("T2"), 4, s, jax.random.key(0)), lambda n: n.sigma),
    ],
)
def test_widths_take_one_rule_for_real_scalars(make, width):
    # a 0-d NumPy or JAX array is a number (it used to be refused by some constructors and
    # accepted by others); a bool, a complex number, a one-element vector and NaN are not
    for good in (0.3, np.float32(0.3), jnp.asarray(0.3), np.asarray(0.3), 1):
        make(good)
    for bad in (True, 0.3 + 0j, jnp.asarray([0.3]), jnp.asarray(0.3 + 0j), np.nan, -0.3, "0.3"):
        with pytest.raises(ValueError, match="sigma .*must be"):
            make(bad)
    # the array and the float give the same module
    assert float(width(make(jnp.asarray(0.3)))) == float(width(make(0.3))) == 0.3


def test_tolerances_and_amplitudes_take_the_same_rule():
    torus = manifold("T2")
    g = flows.reference_metric(torus).values
    assert flows.NodalMetric(torus, g, rtol=jnp.asarray(1e-6)).manifold is torus
    with pytest.raises(ValueError, match="rtol must be a number > 0"):
        flows.NodalMetric(torus, g, rtol=jnp.asarray([1e-6]))
    key = jax.random.key(0)
    assert flows.random_metric(torus, key, 3, amplitude=np.float32(0.2)).manifold is torus
    with pytest.raises(ValueError, match="random_metric: amplitude must lie in"):
        flows.random_metric(torus, key, 3, amplitude=True)


def test_non_smooth_network_metric_is_refused_not_nan():
    # Finite metric values but an infinite derivative (sqrt|sin x| at x = 0): an error, not NaN.
    torus = manifold("T2")
    metric = flows.NetworkMetric(
        torus, lambda x: jnp.array([1.0, 0.0, 1.0 + 0.3 * jnp.sqrt(jnp.abs(jnp.sin(x[0])))])
    )
    with pytest.raises(Exception, match="derivatives are not finite"):
        flows.scalar_curvature(metric, jnp.array([[0.0, 0.5]]))


@pytest.fixture
def sixteen_gib(monkeypatch):
    """Memory checks as on a machine with 16 GiB available (this project's CI machines)."""
    monkeypatch.setattr(flows._misc, "available_memory", lambda: 16 * 2**30)  # white-box


def test_requests_too_large_for_memory_are_refused_before_any_work(sixteen_gib):
    # raw MemoryError, OverflowError or RESOURCE_EXHAUSTED before, after seconds of work
    with pytest.raises(ValueError, match=r"Torus\(2, 1048576\) with 1.1e\+12 nodes would need"):
        flows.Torus(2, 2**20)
    # S^2's separable tables grow as L^3 (3 x 2049^3 doubles), S^3's as L^4 with its nodes'
    # chart derivatives and jet fields; the dense harmonics as L^4 (S^2) and L^5 (S^3)
    with pytest.raises(ValueError, match=r"Sphere\(2, 4096\): the transform tables .* 201 GiB"):
        flows.Sphere(2, 4096)
    with pytest.raises(ValueError, match=r"Sphere\(3, 512\): the transform tables .* 196 GiB"):
        flows.Sphere(3, 512)
    with pytest.raises(ValueError, match=r"Sphere\(3, 512\): the harmonics at its nodes .* GiB"):
        flows.Sphere(3, 512, fast=False)
    quintic = flows.Hypersurface.fermat_quintic()
    with pytest.raises(ValueError, match="sample_points: 100000000 points .* GiB of memory"):
        flows.sample_points(quintic, jax.random.key(0), 10**8)
    torus = flows.Torus(2, 64)
    g0 = flows.NodalMetric(torus, torus.reference_at_nodes())
    with pytest.raises(ValueError, match=r"solve: saveat = 1000000 saves of a 131072-byte state"):
        solvers.solve(flows.ricci_deturck_flow(torus), g0, 0.0, 1.0, saveat=10**6)


def test_hypersurfaces_whose_coefficients_overflow_or_cancel_are_refused():
    # psi = 1e200: accepted, then NaN weights for every point; psi = 1e62: a raw OverflowError
    # from the constructor's own psi^5 = 1 test; a polynomial cancelling to zero: accepted,
    # then a raw LinAlgError from sample_points
    with pytest.raises(ValueError, match="coefficients from 1 to 5e\\+200 in magnitude"):
        flows.Hypersurface.dwork_quintic(1e200)
    large = flows.Hypersurface.dwork_quintic(1e62)
    sample = flows.point_sample(large, flows.sample_points(large, jax.random.key(0), 20))
    assert bool(jnp.all(jnp.isfinite(sample.weights)))
    exponents = np.array([[3, 0, 0], [0, 3, 0], [3, 0, 0]])
    with pytest.raises(ValueError, match="cancels to zero"):
        flows.Hypersurface(exponents, np.array([1.0, 0.0, -1.0]))
