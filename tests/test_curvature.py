"""Curvature against closed forms, identities (Bianchi, Gauss–Bonnet) and isometries.

Tolerances: nodal metrics below are band-limited, so their interpolants are
exact and AD derivatives are exact; what remains is rounding (1e-12 on O(1)
curvature) and, for integrals of non-polynomial densities (Gauss–Bonnet),
quadrature error that falls spectrally with resolution.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import flows

from .helpers import all_manifolds, manifold, max_abs, off_grid_points

# One batch of points for the checks through the public functions (scalar_curvature,
# ricci, riemann, laplacian, ...): their geometry is compiled once per metric type,
# manifold and batch shape, so tests that share the shape share the compiled program.
POINTS = 10


def _points(m):
    return off_grid_points(m, POINTS)


@pytest.mark.parametrize("dim", [2, pytest.param(3, marks=pytest.mark.slow)])
@pytest.mark.parametrize("radius", [1.0, 0.5, 2.0])
def test_round_sphere_of_radius_r(dim, radius):
    sphere = manifold(f"S{dim}")
    metric = flows.NodalMetric(sphere, radius**2 * sphere.reference_at_nodes())
    pts = jnp.concatenate([sphere.nodes[:5], off_grid_points(sphere, POINTS - 5)])
    np.testing.assert_allclose(
        flows.scalar_curvature(metric, pts), dim * (dim - 1) / radius**2, rtol=1e-12
    )
    # Ric = (n - 1) g_unit, scale invariant; ambient components (n - 1) P_x.
    proj = jnp.eye(dim + 1) - jnp.einsum("pa,pb->pab", pts, pts)
    assert max_abs(flows.ricci(metric, pts) - (dim - 1) * proj) < 1e-12
    # Sectional curvature 1/r^2 of every coordinate plane of the chart.
    riem = flows.riemann(metric, pts)[0]  # the batch above: its compiled geometry
    assert abs(float(riem[0, 1, 1, 0]) / radius**4 - 1 / radius**2) < 1e-12
    np.testing.assert_allclose(flows.volume_density(metric, pts), radius**dim, rtol=1e-13)


def _conformal_u(x):
    return 0.1 * jnp.cos(x[0]) * jnp.sin(2 * x[1]) + 0.05 * jnp.sin(x[0] + x[1])


def _conformal_lap_u(x):
    return -0.5 * jnp.cos(x[0]) * jnp.sin(2 * x[1]) - 0.1 * jnp.sin(x[0] + x[1])


def _conformal_points(torus):
    # nodes and off-grid points: both conformal tests use this batch (one compiled geometry)
    return jnp.concatenate([torus.nodes[::97], off_grid_points(torus, 8)])


def test_conformal_torus_scalar_curvature():
    # e^{2u} delta on T^2: R = -2 e^{-2u} Lap u, nodal metric at n = 32 (interpolation error ~1e-14).
    torus = flows.Torus(2, 32)
    metric = flows.conformal_metric(torus, _conformal_u)
    pts = _conformal_points(torus)
    exact = flows.evaluate_at(
        lambda x: -2 * jnp.exp(-2 * _conformal_u(x)) * _conformal_lap_u(x), pts
    )
    assert max_abs(flows.scalar_curvature(metric, pts) - exact) < 1e-10
    density = flows.evaluate_at(lambda x: jnp.exp(2 * _conformal_u(x)), pts)
    assert max_abs(flows.volume_density(metric, pts) - density) < 1e-12


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_flat_tori_have_zero_riemann(dim, getkey):
    torus = manifold(f"T{dim}")
    a = jax.random.normal(getkey(), (dim, dim))
    constant = jnp.eye(dim) + 0.2 * (a + a.T) / (2 * dim)  # any constant metric is flat
    for values in (
        torus.reference_at_nodes(),
        jnp.broadcast_to(constant, (torus.nodes.shape[0], dim, dim)),
    ):
        metric = flows.NodalMetric(torus, values)
        assert max_abs(flows.riemann(metric, _points(torus))) < 1e-12


def _random_metric(name, key, band_limit=2):
    return flows.random_metric(manifold(name), key, band_limit=band_limit, amplitude=0.3)


@pytest.mark.parametrize("name", all_manifolds)
def test_riemann_symmetries(name, getkey):
    metric = _random_metric(name, getkey())
    riem = flows.riemann(metric, _points(metric.manifold))
    scale = max_abs(riem)
    assert scale > 1e-3  # the metric is not flat
    antisym_first = riem + jnp.swapaxes(riem, 1, 2)
    antisym_last = riem + jnp.swapaxes(riem, 3, 4)
    pair = riem - jnp.transpose(riem, (0, 3, 4, 1, 2))
    bianchi = riem + jnp.transpose(riem, (0, 2, 3, 1, 4)) + jnp.transpose(riem, (0, 3, 1, 2, 4))
    for identity in (antisym_first, antisym_last, pair, bianchi):
        assert max_abs(identity) < 1e-10 * scale


@eqx.filter_jit
def _divergence_defect(metric, xs):
    r"""$g^{ij}\nabla_i R_{jk} - \tfrac12 \partial_k R$ in the chart at each x (third derivatives by AD)."""

    def at(x):
        u0 = jnp.zeros((metric.manifold.dim,), dtype=x.dtype)

        def chart_metric(u):
            return metric.in_chart(x, u)

        def ric_and_scalar(u):
            geom = flows.chart_geometry(chart_metric, u)
            return geom.ricci, geom.scalar

        (dric, dscalar) = jax.jacfwd(ric_and_scalar)(u0)  # dric[j, k, i] = d_i Ric_jk
        geom = flows.chart_geometry(chart_metric, u0)
        ric, gam, ginv = geom.ricci, geom.christoffel, geom.inverse
        nabla = (
            jnp.einsum("jki->ijk", dric)
            - jnp.einsum("mij,mk->ijk", gam, ric)
            - jnp.einsum("mik,jm->ijk", gam, ric)
        )
        return jnp.einsum("ij,ijk->k", ginv, nabla) - 0.5 * dscalar

    return jax.vmap(at)(xs)


@pytest.mark.parametrize(
    "name", [n if n != "S3" else pytest.param(n, marks=pytest.mark.slow) for n in all_manifolds]
)
def test_contracted_bianchi_identity(name, getkey):
    metric = _random_metric(name, getkey())
    defect = _divergence_defect(metric, off_grid_points(metric.manifold, 3))
    assert max_abs(defect) < 1e-8


@eqx.filter_jit
def _gauss_bonnet_integral(metric):
    """(1/2) int R dV_g by the manifold's quadrature, and R at the nodes (one compiled program)."""
    m = metric.manifold
    geom = jax.vmap(lambda x: flows.local_geometry(metric, x))(m.nodes)
    scalar = jax.vmap(lambda g: g.scalar)(geom)
    density = jax.vmap(lambda g: g.volume_density)(geom)
    return m.integrate(scalar * density) / 2, scalar


def _gauss_bonnet(metric):
    return float(_gauss_bonnet_integral(metric)[0])


@pytest.mark.parametrize(
    "make,exact",
    [(lambda: flows.Sphere(2, 48), 4 * np.pi), (lambda: flows.Torus(2, 48), 0.0)],
    ids=["S2", "T2"],
)
def test_gauss_bonnet(make, exact):
    # Band limit 3, amplitude 0.3: a clearly non-round metric; at this resolution the
    # quadrature error of R dV_g (not a polynomial) is below 1e-8.
    m = make()
    metric = flows.random_metric(m, jax.random.key(11), band_limit=3, amplitude=0.3)
    integral, r = _gauss_bonnet_integral(metric)  # R at the nodes from the same program
    assert float(r.max() - r.min()) > 0.5  # far from constant curvature
    assert abs(float(integral) - exact) < 1e-8


@pytest.mark.slow  # a convergence study; Gauss–Bonnet itself is checked by default above
def test_gauss_bonnet_error_falls_with_resolution():
    # The same random metric (same key, band limit 3) on finer and finer S^2 rules:
    # the error decays spectrally (log error falls at least linearly in the degree).
    key = jax.random.key(11)
    degrees = [8, 12, 16, 20]
    errors = [
        abs(_gauss_bonnet(flows.random_metric(flows.Sphere(2, d), key, 3, 0.3)) - 4 * np.pi)
        for d in degrees
    ]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    fit = scipy.stats.linregress(degrees, np.log(errors))
    assert fit.slope < -0.3, (fit.slope, errors)


def _random_rotation(key, d):
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, d)))
    q = q * jnp.sign(jnp.diag(r))
    return q.at[:, 0].multiply(jnp.linalg.det(q))


@pytest.mark.parametrize("name", ["S2", "S3"])
def test_rotated_metric_has_rotated_curvature(name, getkey):
    sphere = manifold(name)
    metric = _random_metric(name, getkey())
    q = _random_rotation(getkey(), sphere.ambient_dim)

    def rotated(y):  # push-forward by the rotation q: A'(y) = q A(q^T y) q^T
        return q @ metric(q.T @ y) @ q.T

    rotated_metric = flows.NodalMetric(sphere, flows.evaluate_at(rotated, sphere.nodes))
    pts = _points(sphere)
    moved = pts @ q.T
    assert (
        max_abs(flows.scalar_curvature(rotated_metric, moved) - flows.scalar_curvature(metric, pts))
        < 1e-10
    )
    ric, ric_rot = flows.ricci(metric, pts), flows.ricci(rotated_metric, moved)
    assert max_abs(ric_rot - jnp.einsum("ab,pbc,dc->pad", q, ric, q)) < 1e-10


def test_translated_metric_has_translated_curvature(getkey):
    torus = manifold("T2")
    metric = _random_metric("T2", getkey(), band_limit=3)
    shift = jnp.array([0.7, -2.1])
    moved_metric = flows.NodalMetric(
        torus, flows.evaluate_at(lambda y: metric(y - shift), torus.nodes)
    )
    pts = _points(torus)
    assert (
        max_abs(
            flows.scalar_curvature(moved_metric, pts + shift) - flows.scalar_curvature(metric, pts)
        )
        < 1e-10
    )
    assert max_abs(flows.ricci(moved_metric, pts + shift) - flows.ricci(metric, pts)) < 1e-10


class _BasisFunction(eqx.Module):
    table: object = eqx.field(static=True)
    index: jax.Array

    def __call__(self, x):
        return self.table(x)[self.index]


@pytest.mark.parametrize(
    "name,eigen", [("S2", lambda l: l * (l + 1)), ("S3", lambda l: l * (l + 2))]
)
def test_laplacian_of_harmonics_on_round_spheres(name, eigen):
    # Independent of the curvature code's Christoffels only through the round metric:
    # Delta Y = -l(l + n - 1) Y for every basis harmonic.
    sphere = manifold(name)
    metric = flows.reference_metric(sphere)
    pts = _points(sphere)
    table = sphere.table
    for j in range(0, len(table.ell), max(1, len(table.ell) // 12)):
        y = _BasisFunction(table, jnp.asarray(j))  # one compilation for every j
        lap = flows.laplacian(metric, y, pts)
        expected = -eigen(int(table.ell[j])) * flows.evaluate_at(y, pts)
        assert max_abs(lap - expected) < 1e-9


def test_hessian_of_linear_function_on_round_sphere():
    # For f = x_k restricted to the unit sphere, Hess f = -f g.
    sphere = manifold("S2")
    metric = flows.reference_metric(sphere)
    pts = _points(sphere)
    hess = flows.hessian(metric, lambda x: x[2], pts)
    proj = jnp.eye(3) - jnp.einsum("pa,pb->pab", pts, pts)
    assert max_abs(hess + pts[:, 2, None, None] * proj) < 1e-12


def test_conformal_laplacian_gradient_hessian_on_torus():
    # In 2D, Delta_{e^{2u} delta} f = e^{-2u} Delta_0 f; g(grad f, .) = df; trace Hess = Delta.
    torus = flows.Torus(2, 32)
    metric = flows.conformal_metric(torus, _conformal_u)

    def f(x):
        return jnp.sin(x[0]) * jnp.cos(2 * x[1])

    pts = _conformal_points(torus)
    lap0 = flows.evaluate_at(lambda x: -5 * f(x) * jnp.exp(-2 * _conformal_u(x)), pts)
    assert max_abs(flows.laplacian(metric, f, pts) - lap0) < 1e-10
    grad = flows.gradient(metric, f, pts)
    df = flows.evaluate_at(jax.grad(f), pts)
    lowered = jnp.einsum("pab,pb->pa", flows.evaluate_at(metric, pts), grad)
    assert max_abs(lowered - df) < 1e-10
    hess = flows.hessian(metric, f, pts)
    assert max_abs(hess - jnp.swapaxes(hess, 1, 2)) < 1e-12
    ginv = jnp.linalg.inv(flows.evaluate_at(metric, pts))
    assert max_abs(jnp.einsum("pab,pab->p", ginv, hess) - lap0) < 1e-10


def test_nodal_scalar_fields_are_interpolated(getkey):
    sphere = manifold("S2")
    metric = _random_metric("S2", getkey())
    f = sphere.random_field(getkey(), 3)
    pts = _points(sphere)
    nodal = flows.evaluate_at(f, sphere.nodes)
    assert max_abs(flows.laplacian(metric, nodal, pts) - flows.laplacian(metric, f, pts)) < 1e-10


def test_nodal_and_network_metrics_agree(getkey):
    # A band-limited metric as a nodal metric and as an exact network metric: same curvature.
    sphere = manifold("S2")
    exact = flows.RandomPerturbation(sphere, getkey(), band_limit=3)
    nodal = flows.NodalMetric(sphere, flows.evaluate_at(exact, sphere.nodes))
    network = flows.NetworkMetric(sphere, exact)
    pts = _points(sphere)
    assert (
        max_abs(flows.scalar_curvature(nodal, pts) - flows.scalar_curvature(network, pts)) < 1e-10
    )


def test_curvature_functionals_jit_vmap_and_grad(getkey):
    # Total scalar curvature as a function of nodal values: jit, grad, and a finite-difference check.
    torus = flows.Torus(2, 8)
    base = flows.random_metric(torus, getkey(), band_limit=2).values
    direction = flows.random_metric(torus, getkey(), band_limit=2).values - jnp.eye(2)

    @jax.jit
    def total(values):
        metric = flows.NodalMetric(torus, values)
        r = jax.vmap(lambda x: flows.local_geometry(metric, x).scalar)(torus.nodes)
        return torus.integrate(
            r**2 * jax.vmap(lambda x: flows.local_geometry(metric, x).volume_density)(torus.nodes)
        )

    grad = jax.grad(total)(base)
    assert bool(jnp.all(jnp.isfinite(grad)))
    h = 1e-5
    fd = (total(base + h * direction) - total(base - h * direction)) / (2 * h)
    assert abs(float(jnp.sum(grad * direction)) - float(fd)) < 1e-6 * (1 + abs(float(fd)))


def test_batched_geometry_properties_and_bad_fields(getkey):
    # nodal_geometry returns the geometry at every node (batched): its curvature properties
    # raised einsum errors there (only volume_density worked) unless vmapped
    metric = flows.random_metric(manifold("T2"), getkey(), 2)
    batched = flows.nodal_geometry(metric)
    for name in ("scalar", "ricci", "riemann", "riemann_up", "volume_density"):
        direct = getattr(batched, name)
        mapped = jax.vmap(lambda g, name=name: getattr(g, name))(batched)
        assert direct.shape == mapped.shape and max_abs(direct - mapped) == 0, name
    assert max_abs(batched.scalar - flows.scalar_curvature(metric, metric.manifold.nodes)) <= 1e-12

    # an asymmetric chart metric: the Christoffel symbols assume symmetry (R was -0.355
    # against its symmetric part's -0.368, with check on)
    def asymmetric(u):
        return jnp.asarray(
            [[1 + 0.3 * jnp.sin(u[1]), 0.4 * jnp.cos(u[0])], [0.0, 1 + 0.2 * u[0] ** 2]]
        )

    with pytest.raises(eqx.EquinoxRuntimeError, match="metric is not symmetric"):
        flows.chart_geometry(asymmetric, jnp.asarray([0.3, 0.2]))
    # a vector-valued f: a raw einsum error before (one f and the tests' batch shape: the
    # geometry and f's jet are compiled once for the three functions)
    x = metric.manifold.nodes[:POINTS]

    def vector(p):
        return jnp.sin(p[:2])

    for fn in (flows.laplacian, flows.hessian, flows.gradient):
        with pytest.raises(ValueError, match="f must be a scalar field"):
            fn(metric, vector, x)
