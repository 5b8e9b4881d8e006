"""Network metrics, their empirical metric-NTK, and the three kernel regimes (float64).

The paper's central identity (Halverson–Ruehle eqs. 2.5–2.8) is the chain rule, so it
holds to rounding: the tolerance 1e-10 (relative to the velocity) leaves room for the
accumulated rounding of a few hundred parameters (measured: 1e-14).
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
import solvers

from .helpers import max_abs

T2 = flows.Torus(2, 8)
S2 = flows.Sphere(2, 6)


def _base(m):
    # a non-flat base: the flat torus is a critical point of F, where dL/dG = 0
    return flows.random_metric(m, jax.random.key(3), band_limit=1, amplitude=0.2)


def _network_metric(arch, m, width=16, key=0, **kwargs):
    key = jax.random.key(key)
    if arch == "cosine":
        return flows.cosine_network_metric(m, width, 0.5, key, base=_base(m), **kwargs)
    return flows.relu_network_metric(m, width, 2, key, bias_std=0.1, base=_base(m), **kwargs)


@eqx.filter_jit
def _gradient_step(metric, loss, step):
    flow = flows.ParameterFlow(metric, loss)
    params = metric.parameters
    return metric.with_parameters(
        jax.tree.map(lambda p, v: p + step * v, params, flow(0.0, params))
    )


@eqx.filter_jit
def _identity_sides(metric, loss, points):
    """d/dt g(x) along theta' = -grad L_h, against -sum_a Theta(x, x_a) dL_h/dG_a (two ways)."""
    m = metric.manifold
    pdot = flows.ParameterFlow(metric, loss)(0.0, metric.parameters)
    velocity = jax.vmap(
        lambda x: jax.jvp(lambda p: metric.with_parameters(p)(x), (metric.parameters,), (pdot,))[1]
    )(points)
    dldg = jax.grad(lambda v: flows.nodal_loss(loss, m, v))(metric.at_nodes())
    materialised = -jnp.einsum("pijqkl,qkl->pij", flows.metric_ntk(metric, points, m.nodes), dldg)
    matrix_free = -flows.ntk_product(metric, dldg, m.nodes, points)
    return velocity, materialised, matrix_free


@pytest.mark.parametrize(
    "arch,m",
    [
        ("cosine", T2),
        pytest.param("relu", T2, marks=pytest.mark.slow),  # default-suite time
        pytest.param("cosine", S2, marks=pytest.mark.slow),
        pytest.param("relu", S2, marks=pytest.mark.slow),
    ],
    ids=["cosine-T2", "relu-T2", "cosine-S2", "relu-S2"],
)
def test_central_identity(arch, m):
    loss = flows.PerelmanLoss()
    metric = _network_metric(arch, m)
    trained = metric
    for _ in range(3):
        trained = _gradient_step(trained, loss, 0.02)
    assert max_abs(trained.at_nodes() - metric.at_nodes()) > 1e-3  # training moved it
    points = jnp.concatenate([m.nodes[:3], m.sample(jax.random.key(1), 3)])  # nodes and off-grid
    for state in (metric, trained):
        velocity, materialised, matrix_free = _identity_sides(state, loss, points)
        scale = max_abs(velocity)
        assert scale > 1e-2
        assert max_abs(velocity - materialised) < 1e-10 * scale
        assert max_abs(velocity - matrix_free) < 1e-10 * scale


def test_metric_ntk_structure_and_rescaling():
    # Theta_{ij,kl} = s(x)s(y) Theta^c (delta_ik delta_jl + delta_il delta_jk)/2 per component
    m = T2
    metric = _network_metric("cosine", m)
    s = lambda x: 1.5 + 0.5 * jnp.cos(x[0])  # noqa: E731
    rescaled = eqx.tree_at(lambda g: g.rescale, metric, s, is_leaf=lambda x: x is None)
    x, y = m.nodes[:5], m.nodes[7:11]
    full = flows.metric_ntk(rescaled, x, y)
    comp = flows.component_ntk(rescaled, x, y)
    i, j = np.triu_indices(2)
    for c, (a, b) in enumerate(zip(i, j, strict=True)):
        expected = comp[c] * (1.0 if a == b else 0.5)
        assert max_abs(full[:, a, b, :, a, b] - expected) < 1e-13
    assert max_abs(full[:, 0, 0, :, 1, 1]) < 1e-15  # no component mixing
    plain = flows.component_ntk(metric, x, y)
    sx, sy = jax.vmap(s)(x), jax.vmap(s)(y)
    assert max_abs(comp - plain * sx[None, :, None] * sy[None, None, :]) < 1e-13


def test_centred_network_starts_at_its_base():
    metric = _network_metric("relu", S2)
    assert max_abs(metric.at_nodes() - _base(S2).values) < 1e-14
    uncentred = flows.ComponentNetworkMetric(S2, metric.networks, _base(S2), centred=False)
    assert max_abs(uncentred.at_nodes() - _base(S2).values) > 1e-2


@pytest.mark.parametrize("m", [T2, pytest.param(S2, marks=pytest.mark.slow)], ids=["T2", "S2"])
def test_cosine_ntk_converges_to_the_normalised_gaussian(m):
    # relative Frobenius error of each component's empirical NTK on the nodes against the
    # normalised Gaussian (CosineNTK at infinite width): O(N^{-1/2}) random-feature fluctuations
    limit = flows.CosineNTK(0.5, m)
    target = jax.vmap(lambda x: jax.vmap(lambda y: limit(m, x, y))(m.nodes))(m.nodes)
    widths = np.array([64, 256, 1024, 4096, 16384])
    errors = []
    for width in widths:
        metric = flows.cosine_network_metric(m, int(width), 0.5, jax.random.key(int(width)))
        kernels = flows.component_ntk(metric, m.nodes)
        rel = jnp.sqrt(jnp.sum((kernels - target) ** 2, axis=(1, 2)) / jnp.sum(target**2))
        errors.append(float(jnp.mean(rel)))  # mean over the independent component networks
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    print(m, "errors", errors, "slope", slope)
    assert abs(slope + 0.5) < 0.1


def test_a_vanishing_ntk_is_refused_instead_of_a_nan_drift():
    # a zero rescale: the flow does not move and the drift ||Theta_t - Theta_0|| / ||Theta_0||
    # was 0/0, reported as NaN with "reached t1"; it is refused before the solve compiles
    zero = flows.cosine_network_metric(T2, 4, 0.5, jax.random.key(0), rescale=lambda x: 0.0)
    with pytest.raises(ValueError, match="NTK vanishes on the nodes"):
        solvers.solve_network(zero, flows.PerelmanLoss(), 0, 0.01, kernel="evolving")


def test_relu_ntk_converges_to_its_infinite_width_kernel():
    # the same for a ReLU network (depth 1, bias 0.3) against ReLUNTK, the "infinite"
    # regime's kernel: each component's relative Frobenius error on the nodes falls as
    # width^{-1/2} (random-feature fluctuations of the hidden layer)
    m = T2
    widths = np.array([64, 256, 1024, 4096])
    errors = []
    for width in widths:
        metric = flows.relu_network_metric(
            m, int(width), 1, jax.random.key(int(width)), bias_std=0.3
        )
        limit = metric.infinite_width_kernel()
        target = jax.vmap(lambda x, k=limit: jax.vmap(lambda y: k(m, x, y))(m.nodes))(m.nodes)
        kernels = flows.component_ntk(metric, m.nodes)
        rel = jnp.sqrt(jnp.sum((kernels - target) ** 2, axis=(1, 2)) / jnp.sum(target**2))
        errors.append(float(jnp.mean(rel)))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    print("errors", errors, "slope", slope)
    assert abs(slope + 0.5) < 0.15 and errors[-1] < 0.05


@pytest.mark.slow
def test_three_regimes_through_one_interface():
    # one argument switches the kernel: a regime name or any kernel module
    m, loss = T2, flows.PerelmanLoss()
    metric = _network_metric("cosine", m)
    regimes = ("evolving", "frozen", "infinite", flows.CosineNTK(0.5, m))
    sols = [solvers.solve_network(metric, loss, 0.0, 0.1, kernel=k, saveat=3) for k in regimes]
    for sol in sols:
        assert sol.stop_reason == "reached t1", sol.kernel
        assert sol.values.shape == (3, m.nodes.shape[0], 2, 2)
        assert max_abs(sol.values[0] - metric.at_nodes()) < 1e-14
        assert float(sol.loss[-1]) < float(sol.loss[0])
    assert [s.kernel for s in sols] == ["evolving", "frozen", "infinite", "CosineNTK"]
    assert max_abs(sols[2].values - sols[3].values) < 1e-14  # "infinite" is the analytic limit
    # the network regimes give a metric anywhere; at the nodes it is the saved state
    for sol in sols[:2]:
        assert max_abs(sol.metric(-1).at_nodes() - sol.values[-1]) < 1e-13
    assert sols[1].kernel_drift is None
    # the evolving kernel moves because the phases train (with only the amplitudes trained
    # it would not: test_amplitudes_only_kernel_is_exactly_frozen)
    assert float(sols[0].kernel_drift[-1]) > 1e-4


@pytest.mark.slow
def test_amplitudes_only_kernel_is_exactly_frozen():
    # the cosine network with only its last layer trained: the NTK does not move, and its
    # infinite-width limit is k_sigma / 2
    m, loss = T2, flows.PerelmanLoss()
    amplitudes_only = _network_metric("cosine", m, train_phases=False)
    sol = solvers.solve_network(amplitudes_only, loss, 0.0, 0.1, kernel="evolving", saveat=3)
    assert float(sol.loss[-1]) < float(sol.loss[0])
    assert float(sol.kernel_drift[-1]) < 1e-13
    half, full = amplitudes_only.infinite_width_kernel(), flows.CosineNTK(0.5, m)
    x, y = m.nodes[0], m.nodes[5]
    assert abs(float(half(m, x, y) - 0.5 * full(m, x, y))) < 1e-15


@pytest.mark.slow
def test_lazy_training_as_width_grows():
    # widths 16 and 512: the kernel drift at t = 0.1 falls, the evolving flow approaches the
    # frozen one and the frozen one the infinite-width flow (slopes: experiments/ntk_regimes.py).
    # Measured: drift 9.5e-3 -> 3.7e-4 (slope about -0.9: dTheta/dt = O(1/width), Dyer and
    # Gur-Ari 2019), evolving-frozen 7.2e-3 -> 3.4e-4, frozen-infinite 0.80 -> 0.13 (slope -0.52).
    m, loss = T2, flows.PerelmanLoss()
    record = {}
    for width in (16, 512):
        metric = _network_metric("cosine", m, width=width)
        sols = {
            k: solvers.solve_network(metric, loss, 0.0, 0.1, kernel=k, saveat=2)
            for k in ("evolving", "frozen", "infinite")
        }
        change = max_abs(sols["frozen"].values[-1] - metric.at_nodes())
        record[width] = (
            float(sols["evolving"].kernel_drift[-1]),
            max_abs(sols["evolving"].values[-1] - sols["frozen"].values[-1]) / change,
            max_abs(sols["frozen"].values[-1] - sols["infinite"].values[-1]) / change,
        )
    print("(drift, evolving-frozen, frozen-infinite) by width:", record)
    for small, large in zip(record[16], record[512], strict=True):
        assert large < small


def test_bad_network_metrics():
    m, key = T2, jax.random.key(0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        flows.cosine_network_metric(m, 0, 0.5, key)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        flows.relu_network_metric(m, -3, 1, key)
    with pytest.raises(ValueError, match="depth must be an integer >= 0"):
        flows.ReLUNetwork(m, 8, -1, key)
    keys = jax.random.split(key, 3)
    mixed = [
        flows.CosineNetwork(m, 8, 0.5, keys[0]),
        flows.CosineNetwork(m, 8, 0.5, keys[1]),
        flows.CosineNetwork(m, 16, 0.5, keys[2]),
    ]
    with pytest.raises(ValueError, match="share one architecture"):
        flows.ComponentNetworkMetric(m, mixed)
    with pytest.raises(ValueError, match="needs 3 networks, got 2"):
        flows.ComponentNetworkMetric(m, mixed[:2])
    vector_out = [eqx.nn.MLP(2, 2, 4, 1, key=k) for k in keys]
    with pytest.raises(ValueError, match="to a scalar"):
        flows.ComponentNetworkMetric(m, vector_out)
    with pytest.raises(ValueError, match="kernel must be one of"):
        solvers.solve_network(
            _network_metric("cosine", m), flows.PerelmanLoss(), 0, 1, kernel="lazy"
        )
    with pytest.raises(ValueError, match="ComponentNetworkMetric"):
        solvers.solve_network(_base(m), flows.PerelmanLoss(), 0, 1)
    good = _network_metric("cosine", m)
    with pytest.raises(ValueError, match="saveat times must be increasing"):
        solvers.solve_network(good, flows.PerelmanLoss(), 0, 1, saveat=jnp.array([0.5, 0.2]))
    with pytest.raises(ValueError, match="rtol must be a finite number > 0"):
        solvers.solve_network(good, flows.PerelmanLoss(), 0, 1, rtol=-1.0)
    # uncentred outputs scaled by 1e3: indefinite at 54 of the 64 nodes, refused in every
    # regime (the evolving one used to run to t1 from it)
    nets = [flows.CosineNetwork(m, 16, 0.5, k) for k in jax.random.split(key, 3)]
    raw = flows.ComponentNetworkMetric(m, nets, rescale=lambda x: 1e3, centred=False)
    for regime in ("evolving", "infinite"):
        with pytest.raises(ValueError, match="initial metric is not positive definite"):
            solvers.solve_network(raw, flows.PerelmanLoss(), 0, 0.1, kernel=regime)
    # every regime checks the step and the step count (the network regimes ran 10^5
    # steps at dt0 = 0 or NaN, and handed max_steps = 0 to diffrax)
    for regime in ("evolving", "frozen", "infinite"):
        for bad in ({"dt0": 0.0}, {"dt0": float("nan")}, {"dt0": -1e-3}):
            with pytest.raises(ValueError, match="dt0 must be a finite number > 0"):
                solvers.solve_network(good, flows.PerelmanLoss(), 0, 0.01, kernel=regime, **bad)
        for bad in (0, 2.7, True):
            with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
                solvers.solve_network(
                    good, flows.PerelmanLoss(), 0, 0.01, kernel=regime, max_steps=bad
                )
    # a rescale must be a scalar field (a vector one gave a non-symmetric "metric")
    with pytest.raises(ValueError, match="rescale must map a point to a scalar"):
        flows.cosine_network_metric(m, 4, 0.5, key, rescale=lambda x: x + 2.0)
    with pytest.raises(ValueError, match="has 3 entries, got packed of shape"):
        flows.orthonormal_unpack(jnp.array([5.0]), 2)
    # the NTK functions and the linearised metric check their inputs by name
    nodes = m.nodes
    with pytest.raises(ValueError, match=r"x must be a batch of points of shape \(P, 2\)"):
        flows.component_ntk(good, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match=r"y must be a batch of points of shape \(P, 2\)"):
        flows.metric_ntk(good, nodes[:2], nodes[0])
    with pytest.raises(ValueError, match=r"cotangent must have shape \(64, 2, 2\)"):
        flows.ntk_product(good, jnp.ones((64, 2)), nodes)
    with pytest.raises(ValueError, match="metric must be a flows.ComponentNetworkMetric"):
        flows.ntk_product(_base(m), jnp.ones((64, 2, 2)), nodes)
    with pytest.raises(ValueError, match="parameters must have the structure and shapes"):
        flows.LinearisedMetric(good, jax.tree.map(lambda a: a[:, :2], good.parameters))
    # sigma: any real scalar, not a bool
    for sigma in (np.float32(0.5), jnp.asarray(0.5), 1):
        assert flows.CosineNetwork(m, 4, sigma, key).sigma == float(sigma)
    for sigma in (True, jnp.ones(2), 0.5j, "0.5"):
        with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
            flows.CosineNetwork(m, 4, sigma, key)


def _huge_scale(x):
    return 1e4


def _blowing_up_metric():
    # one rescale function for both tests below: the compiled solve is keyed on it
    return flows.cosine_network_metric(
        T2, 16, 0.5, jax.random.key(0), base=_base(T2), rescale=_huge_scale
    )


@pytest.mark.parametrize("regime", ["evolving", "frozen", "infinite"])
def test_a_network_flow_that_blows_up_stops_within_a_few_hundred_steps(regime):
    # An output scale of 1e4 (a kernel 1e8 times larger): the Perelman velocity grows without
    # bound within t ~ 1e-7 while the metric stays positive definite (smallest eigenvalue
    # 0.04-0.1 of its initial one at the stop). The PID controller crept towards that time,
    # alternating accepted and rejected steps: the infinite-width regime spun to max_steps
    # (163 accepted, 1837 rejected of 2000) and the others reached the degenerate event
    # only once the steps were at the rounding of t. Now a rejected step below 1e-12 of the
    # interval (capped by 1e6 times the time elapsed, 5e-3 to 1e-2 here) stops each:
    # measured 75-144 steps.
    scaled = _blowing_up_metric()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="solve: no amplification prediction")
        sol = solvers.solve_network(
            scaled, flows.PerelmanLoss(), 0.0, 0.1, saveat=3, max_steps=2000, kernel=regime
        )
    assert sol.stop_reason == solvers.StopReason.STEP_COLLAPSED
    assert sol.stats["num_steps"] < 300
    assert 1e-9 < sol.t_final < 1e-6 and sol.t_final == float(sol.ts[-1])
    assert float(jnp.min(jnp.linalg.eigvalsh(sol.values))) > 0
    assert bool(jnp.all(jnp.isfinite(sol.values))) and bool(jnp.all(jnp.isfinite(sol.loss)))
    assert len(sol.ts) == len(sol.loss) == len(sol.values)


def test_a_degenerate_network_solve_stops_at_the_event_with_positive_definite_saves():
    # The same network flow, stopped by the degenerate event at half its initial smallest
    # eigenvalue: the root find, in the parameters (in which the metric is not linear),
    # lands on it; saves that leave out t0 keep the state at the stop.
    scaled = _blowing_up_metric()
    # max_steps as in the evolving regime's solve above (it is static; degenerate_tol is not):
    # the same compiled program
    sol = solvers.solve_network(
        scaled, flows.PerelmanLoss(), 0.0, 0.1, saveat=3, max_steps=2000, degenerate_tol=0.5
    )
    assert sol.stop_reason == solvers.StopReason.LOCALLY_DEGENERATE  # not extinction
    smallest = jnp.linalg.eigvalsh(sol.values)[:, :, 0].min(axis=1)
    assert abs(float(smallest[-1]) - 0.5 * float(smallest[0])) < 1e-8
    assert sol.t_final == float(sol.ts[-1])
    assert len(sol.ts) == len(sol.loss) == jax.tree.leaves(sol.parameters)[0].shape[0]
    # three save times, all past the stop (t ~ 5e-9): the save times' shape of the solve
    # above, so its compiled program is reused (a single time, [0.1], compiled it again)
    late = solvers.solve_network(
        scaled,
        flows.PerelmanLoss(),
        0.0,
        0.1,
        saveat=jnp.array([0.05, 0.075, 0.1]),
        max_steps=2000,
        degenerate_tol=0.5,
    )
    assert late.stop_reason == solvers.StopReason.LOCALLY_DEGENERATE and len(late.ts) >= 1


def test_user_network_components():
    # any Equinox network of one architecture, one per component (scalar output)
    keys = jax.random.split(jax.random.key(2), 3)
    nets = [eqx.nn.MLP(2, "scalar", 8, 2, activation=jnp.tanh, key=k) for k in keys]
    metric = flows.ComponentNetworkMetric(T2, nets, _base(T2), rescale=lambda x: 0.1)
    loss = flows.PerelmanLoss()
    velocity, materialised, matrix_free = _identity_sides(metric, loss, T2.nodes[:4])
    assert max_abs(velocity - matrix_free) < 1e-10 * max_abs(velocity)
    with pytest.raises(ValueError, match="no analytic infinite-width kernel"):
        metric.infinite_width_kernel()
