"""ReLUNTK: the arc-cosine recursion, Monte Carlo over wide networks, the kernel on manifolds, errors."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
from flows import network_inputs

from .helpers import max_abs

STDS = [(1.0, 0.0), (1.4, 0.3), (0.7, 1.1)]


# Compiled once per kernel (its fields are static) and shapes: eager JAX compiles every primitive
# for every new shape, which is what a test of small arrays spends its time on.
@eqx.filter_jit
def call(kernel, *args):
    return kernel(*args)


@eqx.filter_jit
def both_kernels(kernel, X, Y):
    return kernel.kernels(X, Y)


@eqx.filter_jit
def pairwise(kernel, manifold, P, Q):
    """k(p, q) by the three-argument form for every pair, vmapped."""
    return jax.vmap(lambda p: jax.vmap(lambda q: kernel(manifold, p, q))(Q))(P)


def reference_kernels(X, Y, depth, weight_std, bias_std):
    """NNGP and NTK Gram matrices by the closed-form arc-cosine recursion, plain NumPy float64."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    w2, b2 = weight_std**2, bias_std**2
    d = X.shape[1]
    kxy = w2 * np.einsum("id,jd->ij", X, Y) / d + b2
    kxx = (w2 * np.einsum("id,id->i", X, X) / d + b2)[:, None]
    kyy = (w2 * np.einsum("jd,jd->j", Y, Y) / d + b2)[None, :]
    ntk = kxy.copy()
    for _ in range(depth):
        norm = np.sqrt(kxx * kyy)
        theta = np.arccos(np.clip(kxy / norm, -1.0, 1.0))
        t = norm * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
        t_dot = (np.pi - theta) / (2 * np.pi)
        kxy = w2 * t + b2
        kxx = w2 * kxx / 2 + b2
        kyy = w2 * kyy / 2 + b2
        ntk = kxy + w2 * t_dot * ntk
    return kxy, ntk


def reference_diagonal(X, depth, weight_std, bias_std):
    """K(x, x) and Theta(x, x): theta = 0 at every layer, T = K / 2, T' = 1 / 2."""
    X = np.asarray(X, dtype=np.float64)
    w2, b2 = weight_std**2, bias_std**2
    k = w2 * np.sum(X * X, axis=1) / X.shape[1] + b2
    ntk = k.copy()
    for _ in range(depth):
        k = w2 * k / 2 + b2
        ntk = k + w2 * ntk / 2
    return k, ntk


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("weight_std,bias_std", STDS)
def test_matches_arccos_recursion(depth, weight_std, bias_std):
    # eager on purpose: the shapes repeat, so only the first case compiles
    rng = np.random.default_rng(depth)
    X, Y = jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(rng.normal(size=(6, 4)))
    kernel = flows.ReLUNTK(depth=depth, weight_std=weight_std, bias_std=bias_std)
    nngp, ntk = reference_kernels(X, Y, depth, weight_std, bias_std)
    assert np.max(np.abs(kernel.nngp(X, Y) - nngp)) < 1e-12
    assert np.max(np.abs(kernel.ntk(X, Y) - ntk)) < 1e-12
    # on the diagonal x = y, where arccos is ill-conditioned (the reference loses 1e-8 there),
    # against the recursion with theta = 0, to rounding
    nngp_diag, ntk_diag = reference_diagonal(X, depth, weight_std, bias_std)
    nngp_xx, ntk_xx = kernel.kernels(X, X)
    assert np.max(np.abs(jnp.diagonal(nngp_xx) - nngp_diag)) < 1e-14 * np.max(nngp_diag)
    assert np.max(np.abs(jnp.diagonal(ntk_xx) - ntk_diag)) < 1e-14 * np.max(ntk_diag)
    assert np.max(np.abs(ntk_xx - ntk_xx.T)) < 1e-14 * np.max(ntk_diag)


def test_exact_on_the_diagonal():
    # K(x, x) from X @ X.T and from sum(X * X) round differently: c = 1 +- 1e-15 for d = 17,
    # where arccos would be off by 4e-8; such c are taken as 1, so the diagonal is exact
    X = jnp.asarray(np.random.default_rng(7).normal(size=(200, 17)))
    kernel = flows.ReLUNTK(depth=3, weight_std=1.2, bias_std=0.3)
    nngp, ntk = both_kernels(kernel, X, X)
    nngp_diag, ntk_diag = reference_diagonal(X, 3, 1.2, 0.3)
    assert np.max(np.abs(jnp.diagonal(nngp) / nngp_diag - 1)) < 1e-14
    assert np.max(np.abs(jnp.diagonal(ntk) / ntk_diag - 1)) < 1e-14


def test_hand_checked_cases():
    rng = np.random.default_rng(1)
    X, Y = jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(rng.normal(size=(6, 4)))
    # depth 0, a single Dense layer: NTK = NNGP = W^2 x.y / d + b^2
    shallow = flows.ReLUNTK(depth=0, weight_std=1.7, bias_std=0.6)
    expected = 1.7**2 * (X @ Y.T) / 4 + 0.6**2
    assert max_abs(shallow.ntk(X, Y) - expected) < 1e-14
    assert max_abs(shallow.nngp(X, Y) - expected) < 1e-14
    # depth 1, no bias, unit inputs in R^3 (K0 = W^2 cos(angle) / 3):
    # - x = y, theta = 0: K1 = W^2 K0 / 2, Theta1 = K1 + W^2 Theta0 / 2 = W^4 / 3;
    # - x = -y, theta = pi: T = T' = 0, both kernels vanish;
    # - at 60 degrees, theta = pi / 3: T = K0(x, x) (sqrt(3) / 2 + pi / 3) / (2 pi), T' = 1 / 3,
    #   Theta0 = K0(x, x) / 2.
    w, d, a = 1.3, 3, 0.4
    x = [math.cos(a), 0.0, math.sin(a)]
    y = [math.cos(a + math.pi / 3), 0.0, math.sin(a + math.pi / 3)]
    Z = jnp.asarray([x, [-c for c in x], y])
    nngp, ntk = both_kernels(flows.ReLUNTK(depth=1, weight_std=w, bias_std=0.0), Z, Z)
    k0 = w**2 / d
    t = k0 * (math.sqrt(3) / 2 + math.pi / 3) / (2 * math.pi)
    assert abs(float(nngp[0, 0]) - w**4 / (2 * d)) < 1e-15
    assert abs(float(ntk[0, 0]) - w**4 / d) < 1e-15
    assert float(nngp[0, 1]) == 0.0 and float(ntk[0, 1]) == 0.0
    assert abs(float(nngp[0, 2]) - w**2 * t) < 1e-15
    assert abs(float(ntk[0, 2]) - (w**2 * t + w**2 * k0 / 6)) < 1e-15


@eqx.filter_jit
def value_and_grads(kernel, u, v):
    def total(u, v):
        nngp, ntk = kernel.kernels(u[None], v[None])
        return nngp[0, 0] + ntk[0, 0]

    return jax.value_and_grad(total, argnums=(0, 1))(u, v)


def test_finite_at_coincident_antipodal_and_zero_inputs():
    # without bias, x = y, x = -y and 0 are all singular points of the recursion (c = 1, c = -1 and
    # 0 / 0 at the first ReLU); a bias only moves c = -1 into the interior
    kernel = flows.ReLUNTK(depth=3, weight_std=1.2, bias_std=0.0)
    x = jnp.asarray([0.3, -1.2, 0.5])
    zero = jnp.zeros(3)
    for u, v in ((x, x), (x, -x), (x, zero), (zero, x), (zero, zero)):
        value, grads = value_and_grads(kernel, u, v)
        assert np.isfinite(float(value))
        assert all(np.all(np.isfinite(g)) for g in grads)
        if float(jnp.sum(u**2) * jnp.sum(v**2)) == 0.0:
            assert float(value) == 0.0  # a zero input: zero kernels (their limit along rays)


# ---- Monte Carlo over wide random networks in the stax NTK parameterisation ----


def sample_networks(seed, count, d, width, depth):
    """`count` networks' parameters [(W, b) per Dense layer], stacked on a leading axis; W, b ~ N(0, 1).

    Drawn by NumPy (much faster than `jax.random` for these 16M normals on CPU), fixed seed.
    """
    rng = np.random.default_rng(seed)
    sizes = [d] + [width] * depth + [1]
    return [
        (
            jnp.asarray(rng.standard_normal((count, sizes[i + 1], sizes[i]))),
            jnp.asarray(rng.standard_normal((count, sizes[i + 1]))),
        )
        for i in range(depth + 1)
    ]


def network(params, x, weight_std, bias_std):
    """stax.serial(Dense, Relu, ..., Dense): z = weight_std / sqrt(n_in) W h + bias_std b."""
    h = x
    for i, (W, b) in enumerate(params):
        if i > 0:
            h = jax.nn.relu(h)
        h = weight_std / math.sqrt(h.shape[0]) * (W @ h) + bias_std * b
    return h[0]


def empirical_kernels(params, X, weight_std, bias_std):
    """One network: f(x) f(y) and its finite-width NTK sum_theta df(x)/dtheta df(y)/dtheta."""

    def outputs(p):
        return jax.vmap(lambda x: network(p, x, weight_std, bias_std))(X)

    f = outputs(params)
    jac = jax.tree.leaves(jax.jacobian(outputs)(params))
    axes = [list(range(1, j.ndim)) for j in jac]
    ntk = sum(jnp.tensordot(j, j, axes=(a, a)) for j, a in zip(jac, axes, strict=True))
    return jnp.outer(f, f), ntk


# Width 512, 64 networks (vmapped, 16 at a time under lax.map). One network's NTK fluctuates by
# s / sqrt(width) about a mean that is off by beta / width; measured (widths 16-64, 32k-65k networks)
# s <= 35 and beta <= 3, with beta / s <= 0.5 entry by entry at depth 3 (the worst case), so the
# bias is at most 0.5 sqrt(64 / 512) = 0.17 standard errors of the 64-network mean; that standard
# error is ~2% of Theta. The NNGP estimate f(x) f(y) is exact in mean at depth 1 (an O(1/width)
# bias beyond) but noisy: its standard error is ~15% of K. About 1 s a depth.
WIDTH, NETWORKS, CHUNK = 512, 64, 16


@pytest.mark.parametrize("depth,weight_std,bias_std", [(1, 1.0, 0.5), (2, 1.3, 0.0), (3, 1.2, 0.2)])
def test_monte_carlo_wide_networks(depth, weight_std, bias_std):
    rng = np.random.default_rng(10 + depth)
    x1, x2 = rng.normal(size=(2, 3))
    X = jnp.asarray(np.stack([x1, x2, -x1]))  # pairs: x = y, generic, x = -y
    params = sample_networks(depth, NETWORKS, 3, WIDTH, depth)
    chunks = jax.tree.map(lambda a: a.reshape((NETWORKS // CHUNK, CHUNK) + a.shape[1:]), params)
    per_chunk = jax.vmap(lambda p: empirical_kernels(p, X, weight_std, bias_std))
    samples = jax.jit(lambda c: jax.lax.map(per_chunk, c))(chunks)
    kernel = flows.ReLUNTK(depth=depth, weight_std=weight_std, bias_std=bias_std)
    stats = {}
    for name, sample, analytic in zip(
        ("nngp", "ntk"), samples, both_kernels(kernel, X, X), strict=True
    ):
        sample = np.asarray(sample).reshape(NETWORKS, 3, 3)
        mean = sample.mean(axis=0)
        stderr = sample.std(axis=0, ddof=1) / math.sqrt(NETWORKS)
        stats[name] = mean, stderr
        # + 1e-12: an entry that is exactly 0 for every network has no spread
        assert np.all(np.abs(mean - analytic) <= 3 * stderr + 1e-12), (name, mean, analytic, stderr)
    # the test can fail: 5% too large a weight_std puts the NTK at x = y many standard errors away
    mean, stderr = stats["ntk"]
    _, wrong = both_kernels(
        flows.ReLUNTK(depth=depth, weight_std=1.05 * weight_std, bias_std=bias_std), X, X
    )
    assert abs(mean[0, 0] - wrong[0, 0]) > 10 * stderr[0, 0]


# ---- the kernel on manifolds ----

MANIFOLDS = {"S2": lambda: flows.Sphere(2, 8), "T2": lambda: flows.Torus(2, 8)}


def random_points(m, count, seed):
    rng = np.random.default_rng(seed)
    if isinstance(m, flows.Torus):
        return jnp.asarray(rng.uniform(0, 2 * math.pi, (count, m.dim)))
    points = rng.normal(size=(count, m.ambient_dim))
    return jnp.asarray(points / np.linalg.norm(points, axis=1, keepdims=True))


@eqx.filter_jit
def on_manifold(kernel, switched, m, points, values):
    """Everything the manifold test compares, in one compilation."""
    inputs = network_inputs(m, points)
    x, y = points[0], points[1]
    return {
        "k(x, y)": kernel(m, x, y),
        "ntk(u, v)": kernel.ntk(network_inputs(m, x)[None], network_inputs(m, y)[None]),
        "pairwise": jax.vmap(lambda p: jax.vmap(lambda q: kernel(m, p, q))(points))(points),
        "gram": kernel(inputs, inputs),
        "kernels": kernel.kernels(inputs, inputs),
        "switched pairwise": jax.vmap(lambda p: jax.vmap(lambda q: switched(m, p, q))(points))(
            points
        ),
        "switched gram": switched(inputs, inputs),
        "node kernels": kernel.kernels(network_inputs(m, m.nodes), network_inputs(m, m.nodes)),
        "apply": kernel.apply(m, values, chunk=16),
    }


@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_kernel_on_manifold(name):
    m = MANIFOLDS[name]()
    kernel = flows.ReLUNTK(depth=2, weight_std=1.3, bias_std=0.2)
    switched = flows.ReLUNTK(depth=2, weight_std=1.3, bias_std=0.2, get="nngp")
    points = random_points(m, 4, seed=3)
    values = jnp.asarray(np.random.default_rng(4).normal(size=(m.nodes.shape[0], 2)))
    out = jax.tree.map(np.asarray, on_manifold(kernel, switched, m, points, values))
    nngp, ntk = out["kernels"]
    # k(x, y) is the NTK of the network inputs, symmetric; get = "nngp" switches both call forms
    assert out["k(x, y)"].shape == () and abs(out["k(x, y)"] - out["ntk(u, v)"][0, 0]) < 1e-14
    assert max_abs(out["pairwise"] - ntk) < 1e-14
    assert max_abs(out["pairwise"] - out["pairwise"].T) < 1e-14
    assert max_abs(out["gram"] - ntk) == 0.0
    assert max_abs(out["switched pairwise"] - nngp) < 1e-14
    assert max_abs(out["switched gram"] - nngp) == 0.0
    assert max_abs(ntk - nngp) > 0.1
    # apply is the quadrature sum_b w_b k(x_a, x_b) V_b
    node_nngp, node_ntk = out["node kernels"]
    expected = node_ntk @ (np.asarray(m.weights)[:, None] * np.asarray(values))
    assert max_abs(out["apply"] - expected) < 1e-12 * max_abs(expected)
    # both kernels are positive semi-definite on the nodes
    for gram in (node_nngp, node_ntk):
        eigenvalues = np.linalg.eigvalsh(gram)
        assert eigenvalues[0] >= -1e-10 * eigenvalues[-1]


def test_periodic_on_torus():
    torus = flows.Torus(2, 8)
    kernel = flows.ReLUNTK(depth=2, weight_std=1.3, bias_std=0.2)
    points = random_points(torus, 4, seed=3)
    values = pairwise(kernel, torus, points, points)
    shifted = pairwise(kernel, torus, points + jnp.asarray([2 * math.pi, 0.0]), points)
    assert max_abs(shifted - values) < 1e-12
    shifted = pairwise(kernel, torus, points, points - jnp.asarray([0.0, 6 * math.pi]))
    assert max_abs(shifted - values) < 1e-12
    with pytest.raises(ValueError, match="no network input map"):
        network_inputs(object(), points)


# ---- errors, jit and grad ----


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depth": -1}, "depth must be an integer >= 0"),
        ({"depth": 1.5}, "depth must be an integer >= 0"),
        ({"depth": True}, "depth must be an integer >= 0"),
        ({"weight_std": 0.0}, "weight_std must be a finite number > 0"),
        ({"weight_std": -1.0}, "weight_std must be a finite number > 0"),
        ({"weight_std": math.nan}, "weight_std must be a finite number > 0"),
        ({"weight_std": math.inf}, "weight_std must be a finite number > 0"),
        ({"weight_std": "1"}, "weight_std must be a finite number > 0"),
        ({"bias_std": -0.1}, "bias_std must be a finite number >= 0"),
        ({"bias_std": math.inf}, "bias_std must be a finite number >= 0"),
        ({"bias_std": math.nan}, "bias_std must be a finite number >= 0"),
        ({"get": "NTK"}, "get must be 'ntk' or 'nngp'"),
        ({"get": None}, "get must be 'ntk' or 'nngp'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flows.ReLUNTK(**kwargs)


def test_bad_inputs():
    kernel = flows.ReLUNTK(depth=1)
    X = jnp.ones((3, 4))
    with pytest.raises(ValueError, match=r"X must be a 2-D batch of inputs \(n, d\)"):
        kernel.ntk(jnp.ones(4), X)
    with pytest.raises(ValueError, match=r"Y must be a 2-D batch of inputs \(n, d\)"):
        kernel(X, jnp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="same input dimension d"):
        kernel.nngp(X, jnp.ones((2, 5)))
    sphere = flows.Sphere(2, 4)
    with pytest.raises(ValueError, match=r"single points of shape \(3,\)"):
        kernel(sphere, sphere.nodes, sphere.nodes[0])
    with pytest.raises(ValueError, match="three-argument form is"):
        kernel(X, X, X)
    with pytest.raises(TypeError, match="call with"):
        kernel(X)


def test_jit_grad():
    torus = flows.Torus(2, 8)
    kernel = flows.ReLUNTK(depth=2, weight_std=1.3, bias_std=0.2)
    X = network_inputs(torus, torus.nodes[:5])
    assert max_abs(call(kernel, X, X) - kernel(X, X)) < 1e-14  # jit against eager
    # the gradient in x matches central differences away from the diagonal
    x, y, h = torus.nodes[3] + 0.1, torus.nodes[7], 1e-6

    @eqx.filter_jit
    def grad_and_differences(kernel):
        grad = jax.grad(lambda x: kernel(torus, x, y))(x)
        steps = h * jnp.eye(2)
        up = jax.vmap(lambda e: kernel(torus, x + e, y))(steps)
        down = jax.vmap(lambda e: kernel(torus, x - e, y))(steps)
        return grad, (up - down) / (2 * h)

    grad, differences = grad_and_differences(kernel)
    assert max_abs(grad - differences) < 1e-7
