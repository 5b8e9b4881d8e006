"""Flows: spectral derivatives, the ground state of -4Δ + R, linear rates, and the λ loss.

Tolerances: the FFT and autodiff paths compute the same series, so they agree
to rounding (1e-12). The ground state is checked against a dense generalized
eigen-solve of the same discrete forms (1e-10, the iteration's tolerance is
1e-11 on the residual) and against analytic values on the flat torus and
round sphere. Linear rates are exact derivatives of the discrete vector
field, so they meet the predicted rates (docs/conventions.md, Well-posedness) to 1e-6
(measured: 1e-12).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import flows
from flows import AbstractManifold
from flows._losses.ground_state import _forms  # white-box: tests a private helper

from .helpers import max_abs


def _random(manifold, seed=0, band_limit=2, amplitude=0.2):
    return flows.random_metric(manifold, jax.random.key(seed), band_limit, amplitude)


@eqx.filter_jit
def _both_paths(m, values, metric):
    jets = (m.nodal_jet(values), AbstractManifold.nodal_jet(m, values))
    fft = flows.nodal_geometry(metric)
    ad = jax.vmap(lambda x: flows.local_geometry(metric, x))(m.nodes)

    def parts(geom):
        return jax.vmap(lambda q: (q.christoffel, q.christoffel_derivative, q.ricci, q.scalar))(
            geom
        )

    return jets, parts(fft), parts(ad)


@pytest.mark.parametrize("dim,n", [(2, 8), (3, 5)])
def test_torus_fft_derivatives_match_autodiff(dim, n):
    # the FFT path (used by flows) and the autodiff path (used for off-node points) sum the
    # same series; n = 8 includes the Nyquist mode (cos(4x), zero first derivative at nodes)
    m = flows.Torus(dim, n)
    field = m.random_field(jax.random.key(1), n // 2, (2,))
    values = flows.evaluate_at(field, m.nodes)  # one compiled program, not op by op
    ((grad, hess), (grad_ad, hess_ad)), fft, ad = _both_paths(m, values, _random(m, band_limit=1))
    assert max_abs(grad - grad_ad) < 1e-12
    assert max_abs(hess - hess_ad) < 1e-12
    for a, b in zip(fft, ad, strict=True):
        assert max_abs(a - b) < 1e-12


@eqx.filter_jit
def _sphere_paths(fast, dense, values):
    def paths(m):
        return (
            m.transform(values),
            m.nodal_jet(values),
            m.nodal_metric_jet(values[..., : m.ambient_dim, :]),
        )

    c = dense.transform(values)
    return (*paths(fast), fast.synthesize(c)), (*paths(dense), dense.synthesize(c))


@pytest.mark.parametrize("dim,degree", [(2, 3), (2, 16), (3, 4), (3, 9)])
def test_sphere_separable_transforms_match_the_dense_series(dim, degree):
    # S^2: sums over the azimuth, then a Legendre sum per order, and the ambient polynomial's
    # derivatives pushed through the chart (O(N^1.5)). S^3: a Fourier sum over both Hopf
    # azimuths, then a Jacobi sum per pair of orders, the derivatives by the chain rule
    # through the Hopf coordinates (O(N^4/3)). The reference (fast=False) evaluates every
    # harmonic at every node and differentiates it with autodiff (O(N^2)). The metric's
    # chart jet: the central projection's derivatives at u = 0 (J = E, dJ = -delta x,
    # d2J = -(delta E + ...)) against autodiff of J^T A(phi(u)) J. The same series, so they
    # agree to rounding (measured 1e-14 at S^3 degree 12). Odd and even degrees: the
    # azimuths have L + 1 points.
    m, dense = flows.Sphere(dim, degree), flows.Sphere(dim, degree, fast=False)
    field = m.random_field(jax.random.key(3), m.band_limit, (m.ambient_dim + 1, m.ambient_dim))
    values = flows.evaluate_at(field, m.nodes)  # one compiled program, not op by op
    fast_parts, dense_parts = _sphere_paths(m, dense, values)
    (_, (grad, hess), (g, dg, ddg), syn) = fast_parts
    assert grad.shape == (*values.shape, dim) and hess.shape == (*values.shape, dim, dim)
    assert ddg.shape == (values.shape[0], dim, dim, dim, dim)
    assert max_abs(syn - values) < 1e-13  # band-limited data are reproduced
    for a, b in zip(jax.tree.leaves(fast_parts), jax.tree.leaves(dense_parts), strict=True):
        assert max_abs(a - b) < 1e-12
    with pytest.raises(ValueError, match="fast must be True or False"):
        flows.Sphere(dim, degree, fast="yes")


@eqx.filter_jit
def _dense_forms(metric):
    m = metric.manifold
    mass, stiffness = _forms(metric, flows.nodal_geometry(metric))
    eye = jnp.eye(mass.shape[0])
    proj = jax.vmap(lambda e: m.spectral_multiply(e, m.resolved_slots()))(eye)
    return mass, jax.vmap(stiffness)(eye), proj


def _dense_ground_value(metric):
    """Least eigenvalues of the discrete Rayleigh quotient on the resolved space, densely."""
    mass, k, proj = (np.asarray(a) for a in _dense_forms(metric))
    # row i of proj is P e_i, so the resolved space is its row space
    _, s, vt = np.linalg.svd(proj)
    basis = vt[s > 1e-8].T
    values = scipy.linalg.eigh(
        basis.T @ k @ basis, basis.T @ np.diag(mass) @ basis, eigvals_only=True
    )
    return values[0], values[1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: flows.Torus(2, 9),
        lambda: flows.Torus(2, 8),
        pytest.param(lambda: flows.Sphere(2, 8), marks=pytest.mark.slow),
    ],
)
def test_ground_state_matches_dense_eigensolve(make):
    m = make()
    metric = _random(m, amplitude=0.3)
    state = flows.ground_state(metric)
    lowest, second = _dense_ground_value(metric)
    assert float(state.residual) < 1e-11
    assert abs(float(state.value) - lowest) < 1e-10 * max(1.0, abs(lowest))
    assert second - lowest > 1.0  # a clean gap: the state found is the ground state
    assert bool(jnp.all(state.w > 0))
    # normalisation: int w^2 dV_g = int e^{-f} dV_g = 1
    density = flows.volume_density(metric, m.nodes)
    assert abs(float(m.integrate(state.w**2 * density)) - 1) < 1e-12


def test_ground_state_analytic_values():
    # flat torus scaled by c: lambda = 0, w constant; round S^n of radius r: lambda = n(n-1)/r^2
    torus = flows.Torus(2, 9)
    scaled = flows.NodalMetric(torus, 2.5 * torus.reference_at_nodes())
    state = flows.ground_state(scaled)
    assert abs(float(state.value)) < 1e-12
    assert max_abs(state.w - state.w[0]) < 1e-12
    # S^3 at a degree the separable-transform test builds (a new degree compiles S^3's
    # tables again, about 3 s); the round metric is exact at any degree
    for dim, degree in ((2, 8), (3, 4)):
        sphere = flows.Sphere(dim, degree)
        r2 = 1.7
        state = flows.ground_state(flows.NodalMetric(sphere, r2 * sphere.reference_at_nodes()))
        assert abs(float(state.value) - dim * (dim - 1) / r2) < 1e-11


def test_ground_state_from_a_guess_is_positive_and_bad_guesses_are_refused():
    # a guess that already meets tol skipped the loop's sign fix: -w came back negative,
    # f = -2 log w NaN; a zero guess gave NaN
    metric = _random(flows.Torus(2, 9), amplitude=0.3)
    state = flows.ground_state(metric)
    for guess in (state.w, -state.w):
        again = flows.ground_state(metric, guess=guess)
        assert bool(jnp.all(again.w > 0)) and bool(jnp.all(jnp.isfinite(again.f)))
        assert max_abs(again.w - state.w) < 1e-10 and int(again.iterations) <= 1
    # a tol below the dtype's rounding is raised to 50 eps (float32: it ran all 400
    # iterations at the default 1e-11): here float64, tol 1e-30 stops near 1.1e-14
    fine = flows.ground_state(metric, tol=1e-30)
    assert int(fine.iterations) < 400 and float(fine.residual) <= 50 * np.finfo(float).eps
    for guess, match in (
        (jnp.zeros_like(state.w), "finite and not zero"),
        (state.w.at[0].set(jnp.nan), "finite and not zero"),
        (state.w[:5], "guess must be nodal values of shape"),
    ):
        with pytest.raises(ValueError, match=match):
            flows.ground_state(metric, guess=guess)


@eqx.filter_jit
def _analytic_lambda_variation(metric):
    """2 (R^{ij} + nabla^i nabla^j f) e^{-f} dV_g/dmu at the nodes, f from the ground state."""
    m = metric.manifold
    geom = flows.nodal_geometry(metric)
    state = flows.ground_state(metric, geometry=geom)
    dw, ddw = m.nodal_jet(state.w)

    def at(x, q, w, dw, ddw):
        df = -2 * dw / w
        ddf = -2 * (ddw / w - jnp.outer(dw, dw) / w**2)
        hess = ddf - jnp.einsum("cab,c->ab", q.christoffel, df)
        gi = q.inverse
        e = 2 * (gi @ q.ricci @ gi + gi @ hess @ gi) * w**2 * q.volume_density
        return m.to_representation(x, e)

    return jax.vmap(at)(m.nodes, geom, state.w, dw, ddw)


@pytest.mark.parametrize(
    "make",
    [lambda: flows.Torus(2, 24), pytest.param(lambda: flows.Sphere(2, 40), marks=pytest.mark.slow)],
    ids=["T2", "S2"],
)
def test_lambda_loss_functional_derivative(make):
    # to 1e-8 (measured 2e-11 on T^2 at n = 24, 1e-9 on S^2 at degree 40, where E_h = P_B[E])
    m = make()
    metric = _random(m)
    e = flows.functional_derivative(flows.PerelmanLambdaLoss(), metric)
    analytic = _analytic_lambda_variation(metric)
    if not m.interpolates:
        analytic = m.spectral_multiply(analytic, jnp.ones_like(m.laplace_eigenvalues()))
    assert max_abs(e - analytic) < 1e-8


# the default suite keeps one local and one smoothed flow of each form (fixed measure,
# lambda, DeTurck); the rest run with -m slow (each compiles for 15-40 s on 2 cores)
_DEFAULT_RATES = {
    ("ricci_deturck", 0.0),
    ("perelman", 0.0),
    ("smoothed", 0.2),
    ("smoothed_lambda", 0.5),
    ("componentwise", 0.4),  # smoothed at sigma > 0 (its prediction used to ignore sigma)
}


@pytest.mark.parametrize(
    "name,sigma",
    [
        pytest.param(name, sigma, marks=() if (name, sigma) in _DEFAULT_RATES else pytest.mark.slow)
        for name, sigma in [
            (name, 0.0)
            for name in flows.FLOW_NAMES
            if not name.startswith(("smoothed", "component"))
        ]
        + [(name, s) for name in ("smoothed", "smoothed_lambda") for s in (0.2, 0.5)]
        + [("componentwise", 0.0), ("componentwise", 0.4)]
    ],
)
def test_linear_rates_match_design(name, sigma):
    torus = flows.Torus(2, 16)
    flow = flows.make_flow(name, torus, sigma or None)
    for k in (1, 2, 3, 4):
        rates = flows.mode_rates(flow, k)
        gauge, r_mode = flows.predicted_mode_rates(name, k, sigma)
        for measured, predicted in ((rates["gauge_rate"], gauge), (rates["r_mode_rate"], r_mode)):
            assert abs(measured - predicted) <= 1e-6 * max(abs(predicted), 1.0), (k, rates)
        assert rates["gauge_residual"] < 1e-10  # h is an eigenvector of the linearisation


@pytest.mark.parametrize("sigma", [0.0, 0.2, 0.5, 1.0])
def test_smoothed_mode_decay_rate(sigma):
    k = np.arange(1, 6)
    rates = flows.smoothed_mode_decay_rate(k, sigma)
    assert rates.shape == k.shape
    # the R-mode rate of the smoothed flows, sign flipped; k^2 when local
    predicted = [-flows.predicted_mode_rates("smoothed_lambda", int(q), sigma)[1] for q in k]
    assert np.allclose(rates, predicted, rtol=1e-14, atol=0)
    if sigma == 0:
        assert np.array_equal(rates, k.astype(float) ** 2)
    assert float(flows.smoothed_mode_decay_rate(3, sigma)) == pytest.approx(rates[2], rel=1e-15)


def _trapezoid_beta(sigma, n, points=2_000_001):
    d = np.linspace(0.0, np.pi, points)
    gauss = np.exp(-(d**2) / (2 * sigma**2))
    top = np.trapezoid(gauss * np.sin(d) ** (n + 1), d)
    bottom = np.trapezoid(gauss * np.sin(d) ** (n - 1), d)
    return top / (n * bottom)


@pytest.mark.parametrize("n", [2, 3])
def test_sphere_smoothing_beta_and_extinction(n):
    # local: beta = 0 and Ricci flow's extinction time 1/(2(n-1))
    assert flows.sphere_smoothing_beta(0.0, n) == 0.0
    assert flows.sphere_extinction_time(0.0, n) == pytest.approx(1 / (2 * (n - 1)), rel=1e-15)
    for sigma in (0.1, 0.3, 0.7, 1.5):
        beta = flows.sphere_smoothing_beta(sigma, n)
        assert abs(beta - _trapezoid_beta(sigma, n)) < 1e-10
        extinction = flows.sphere_extinction_time(sigma, n)
        assert extinction == pytest.approx(1 / (2 * (n - 1) * (1 - beta)), rel=1e-15)
    # small sigma: beta = sigma^2 (1 + O(sigma^2)), so beta -> 0; large sigma: the Gaussian tends
    # to 1 and Wallis' integrals give beta -> 1 / (n + 1)
    for sigma in (1e-2, 1e-3, 1e-5, 1e-9):  # quadrature on [0, pi] missed the peak below 1e-4
        assert flows.sphere_smoothing_beta(sigma, n) / sigma**2 == pytest.approx(
            1.0, abs=10 * sigma**2
        )
    # the two quadratures, in d on [0, pi] from 0.1 up and in d / sigma below, meet
    below, above = (flows.sphere_smoothing_beta(s, n) for s in (0.1 * (1 - 1e-12), 0.1))
    assert below == pytest.approx(above, rel=1e-10)
    assert abs(above - _trapezoid_beta(0.1, n)) < 1e-10
    assert flows.sphere_smoothing_beta(1e3, n) == pytest.approx(1 / (n + 1), rel=1e-6)
    # past 1.5e8 the kernel is constant on [0, pi] to rounding: beta is its limit
    assert flows.sphere_smoothing_beta(1e150, n) == pytest.approx(1 / (n + 1), rel=1e-15)


@pytest.mark.parametrize("sigma", [1e155, 1e300, math.inf, math.nan, -0.1])
def test_sphere_smoothing_beta_refuses_a_width_it_cannot_integrate(sigma):
    # 2 sigma^2 overflows past ~9.5e153: a ValueError naming sigma, not an OverflowError
    for function in (flows.sphere_smoothing_beta, flows.sphere_extinction_time):
        with pytest.raises(ValueError, match="sigma must be a finite number in"):
            function(sigma, 2)


def test_flow_names_and_growth_rates():
    torus = flows.Torus(2, 16)
    assert {flows.make_flow(n, torus, 0.3).name for n in flows.FLOW_NAMES} == set(flows.FLOW_NAMES)
    # the fixed-measure flow's fastest mode on a 16^2 grid: |k|^2 = 8^2 + 8^2
    assert flows.perelman_flow(torus).growth_rate() == 128.0
    smoothed = flows.perelman_flow(torus, flows.GaussianKernel(0.5)).growth_rate()
    k2 = np.array([a**2 + b**2 for a in range(9) for b in range(9)])
    assert abs(smoothed - np.max(k2 * np.exp(-0.125 * k2))) < 1e-12
    for name in ("ricci", "ricci_deturck", "perelman_lambda", "smoothed_lambda"):
        assert flows.make_flow(name, torus, 0.3).growth_rate() == 0.0
    assert flows.VolumeNormalised(flows.ricci_flow(torus)).name == "ricci_normalised"


def test_flow_construction_errors():
    torus = flows.Torus(2, 8)
    with pytest.raises(ValueError, match="unknown flow"):
        flows.make_flow("hamilton", torus)
    with pytest.raises(ValueError, match="sigma"):
        flows.make_flow("smoothed", torus)
    with pytest.raises(ValueError, match="sigma for 'smoothed_lambda' must be a finite number > 0"):
        flows.make_flow("smoothed_lambda", torus, -0.1)
    with pytest.raises(ValueError, match="DeTurck"):
        flows.MetricFlow(torus, "fixed", deturck=True)
    with pytest.raises(ValueError, match="measure"):
        flows.MetricFlow(torus, "harmonic")
    with pytest.raises(ValueError, match="kernel"):
        flows.MetricFlow(torus, "none", kernel=0.3)
    with pytest.raises(ValueError, match="pointwise"):
        flows.DeltaKernel()(torus, torus.nodes[0], torus.nodes[1])


@eqx.filter_jit
def _descent_rates(flow, metric):
    """dL/dt along the flow: the pairing sum_a w_a tr(E_a V_a), and the jvp of L_h along V."""
    m = metric.manifold
    v = flow(0.0, metric.values)
    e = flows.functional_derivative(flow.loss, metric)
    pairing = jnp.sum(m.weights * jnp.einsum("nij,nij->n", e, v))
    _, along = jax.jvp(
        lambda y: flow.loss(flows.NodalMetric(m, y, check=False)), (metric.values,), (v,)
    )
    return pairing, along, jnp.sum(m.weights * jnp.einsum("nij,nij->n", e, e))


@pytest.mark.parametrize(
    "loss",
    [flows.PerelmanLoss(), pytest.param(flows.CalabiLoss(), marks=pytest.mark.slow)],
    ids=["perelman", "calabi"],
)
@settings(max_examples=3)
@given(seed=st.integers(0, 2**16))
def test_componentwise_flows_descend(loss, seed):
    # dL/dt = -<E, Theta E> <= 0 for a positive semi-definite kernel (the Gaussian's multiplier
    # is positive): the pairing and the derivative of L_h along V agree to rounding
    torus = flows.Torus(2, 12)
    metric = _random(torus, seed=seed, amplitude=0.3)
    for kernel in (flows.DeltaKernel(), flows.GaussianKernel(0.4)):
        pairing, along, norm = _descent_rates(flows.ComponentwiseFlow(torus, loss, kernel), metric)
        assert float(pairing) < 0
        assert abs(float(pairing - along)) <= 1e-9 * float(norm)


@pytest.mark.parametrize(
    "name", ["smoothed", pytest.param("smoothed_lambda", marks=pytest.mark.slow)]
)
def test_compiled_evaluate_is_the_velocity_on_spheres(name):
    # evaluate (what solve asks for first: the amplification check's mean trace) smoothed a
    # band-limited projection of the local velocity and skipped the final projection: 9e-3
    # off the velocity at S^2 degree 10, 9e-2 at degree 6
    sphere = flows.Sphere(2, 6)
    metric = flows.random_metric(sphere, jax.random.key(1), 2, 0.3)
    flow = flows.make_flow(name, sphere, 0.3)
    velocity = eqx.filter_jit(lambda f, v: f(0.0, v))(flow, metric.values)
    assert max_abs(flow.evaluate(metric.values) - velocity) < 1e-12 * max_abs(velocity)


def test_a_flow_refuses_a_metric_of_another_manifold_or_type():
    # a metric on another grid gave jax's "vmap got inconsistent sizes"; a raw array an
    # AttributeError; a negative sigma for a smoothed flow a message offering 0 or None
    torus = flows.Torus(2, 6)
    other = flows.reference_metric(flows.Torus(2, 7))
    for flow in (flows.make_flow("ricci", torus), flows.make_flow("componentwise", torus)):
        with pytest.raises(ValueError, match=r"the flow lives on Torus\(dim=2, n=6\)"):
            flow.velocity(other)
        with pytest.raises(ValueError, match="metric must be a flows.NodalMetric"):
            flow.velocity(torus.reference_at_nodes())
    with pytest.raises(ValueError, match="sigma for 'smoothed' must be a finite number > 0, got"):
        flows.make_flow("smoothed", torus, -1.0)


def test_entropy_and_lambda_loss_refuse_what_they_cannot_evaluate():
    # perelman_entropy of a negative u returned finite numbers (F = -1.3e-7, rate -0.22);
    # the lambda loss had no finite-value check (the other losses have)
    torus = flows.Torus(2, 6)
    metric = flows.reference_metric(torus)
    with pytest.raises(ValueError, match="u must be finite and positive"):
        flows.perelman_entropy(metric, -jnp.ones(torus.weights.shape))
    broken = flows.NodalMetric(torus, jnp.full_like(metric.values, jnp.nan), check=False)
    with pytest.raises(ValueError, match="PerelmanLambdaLoss: the loss is not finite"):
        flows.PerelmanLambdaLoss()(broken)


def _fft_derivative(f, n, axis):
    """d/dx_axis of nodal values f (n, n, ...) on the 2pi-periodic uniform grid, by FFT."""
    k = np.fft.fftfreq(n, d=1.0 / n)
    shape = [1] * f.ndim
    shape[axis] = n
    if n % 2 == 0:
        k[n // 2] = 0.0  # the Nyquist mode has no odd derivative
    return np.real(np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(f, axis=axis), axis=axis))


def test_deturck_term_is_the_lie_derivative_along_the_documented_w():
    # Independently in NumPy on a random metric of T^2 (33^2, FFT derivatives of the nodal
    # fields): W^k = g^{ij} Gamma^k_ij (the flat reference has no Christoffels) and
    # L_W g = W^k d_k g_ij + g_kj d_i W^k + g_ik d_j W^k. Ricci-DeTurck minus Ricci, and the
    # lambda form with its DeTurck term minus without, must both be it: agreement to the
    # discretisation's spectral error (1e-10 measured; 1e-8 allowed)
    n = 33
    torus = flows.Torus(2, n)
    metric = flows.random_metric(torus, jax.random.key(2), 2, 0.2)
    g = np.asarray(metric.values).reshape(n, n, 2, 2)
    gi = np.linalg.inv(g)
    dg = np.stack([_fft_derivative(g, n, a) for a in range(2)], axis=-1)  # d_l g_ij: [..., i, j, l]
    gamma = 0.5 * np.einsum(
        "...kl,...ijl->...kij",
        gi,
        np.einsum("...jli->...ijl", dg) + np.einsum("...ilj->...ijl", dg) - dg,
    )
    w = np.einsum("...ij,...kij->...k", gi, gamma)
    dw = np.stack([_fft_derivative(w, n, a) for a in range(2)], axis=-1)  # d_l W^k: [..., k, l]
    lie = (
        np.einsum("...k,...ijk->...ij", w, dg)
        + np.einsum("...kj,...ki->...ij", g, dw)
        + np.einsum("...ik,...kj->...ij", g, dw)
    ).reshape(n * n, 2, 2)
    velocity = eqx.filter_jit(lambda f, v: f(0.0, v))
    for with_term, without in (
        ("ricci_deturck", "ricci"),
        ("perelman_lambda_deturck", "perelman_lambda"),
    ):
        difference = velocity(flows.make_flow(with_term, torus), metric.values) - velocity(
            flows.make_flow(without, torus), metric.values
        )
        assert np.max(np.abs(np.asarray(difference) - lie)) < 1e-8 * np.max(np.abs(lie)), with_term
    assert np.max(np.abs(lie)) > 0.01  # a real test: the term is not small
