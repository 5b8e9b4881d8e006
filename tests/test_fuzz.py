"""Bad input, fuzzed: every kind gets a `ValueError` (argparse: exit status 2)
whose message names the problem; none returns NaN silently, none hangs.

Kinds of bad input tried, by target:

- Manifolds `flows.Torus(dim, n)`, `flows.Sphere(dim, degree)`: unsupported, zero and
  negative sizes, NaN, inf, floats, bools, strings and None for the sizes;
  `manifold.sample(key, count)`: zero or negative counts (an empty point set),
  non-integer counts, keys that are not PRNG keys.
- Kernels: `flows.GaussianKernel(sigma)` with sigma <= 0, NaN, +-inf, bools,
  strings, None; `kernel.smooth` / `kernel.apply` (Gaussian and delta) with NaN or inf
  at a node, the wrong number of nodes, an empty point set, points of the wrong
  dimension, NaN or inf points, off-sphere points, chunk <= 0; a kernel evaluated
  at points of the wrong shape.
- Metrics: `flows.NodalMetric` / `flows.check_nodal_values` with NaN or inf at a
  node, non-symmetric and non-SPD (indefinite, negative definite, singular) nodal
  matrices, wrong shapes (nodes, matrix size, rank), wrong dtypes (integer, bool,
  complex, float32 beside float64 nodes), non-numeric values, a non-manifold;
  `flows.random_metric` with amplitude outside (0, 1) (0, 1, negative, NaN, inf,
  strings), negative, fractional or unresolved band limits, keys that are not PRNG
  keys, a non-manifold.
- Losses: a loss applied to a non-metric; `flows.functional_derivative` with a
  non-loss or a non-nodal metric; a loss, and its derivative, of a metric with a NaN
  or inf node built with `check=False`.
- Flows: `flows.make_flow` with unknown names, sigma <= 0, NaN, inf, bools or strings,
  a missing sigma for a smoothed flow, a non-manifold.
- `solvers.solve`: t0 / t1 NaN, inf, strings, bools, complex, t1 <= t0; rtol, atol,
  degenerate_tol, dt0, fixed_point_tol, curvature_limit <= 0, NaN, inf, bools or
  strings; max_steps <= 0, fractional, bools or strings; saveat < 2 points, an
  empty list, a 2-D array, NaN times, times outside [t0, t1], decreasing times,
  strings, and absurd sizes (a count or an array of more than `solvers.MAX_SAVES` =
  10^6 save times, counts up to 10^18); g0 with NaN, inf, non-SPD or wrong-shape
  values, integer or float32 values, on another manifold; an unknown solver; a non-flow.
- Hypersurfaces: `flows.Hypersurface.dwork_quintic(psi)` at the singular members
  psi^5 = 1 (psi = exp(2 pi i k / 5)), NaN, inf and non-numeric psi; `flows.Hypersurface`
  with non-integer, negative, inhomogeneous or empty exponents, and NaN, inf, all-zero
  or wrongly shaped coefficients; `flows.sample_points` with count 0 and keys that are
  not PRNG keys (ints, strings, None, a uint32 (3,) array); `flows.point_sample` with
  points of the wrong shape and points off the hypersurface (one coordinate scaled by
  1 + eps, eps in [1e-2, 1], or generic points of CP^4: relative residual above
  `flows._calabi_yau.sampling.OFF_SURFACE_TOLERANCE` = 1e-5), beside points on it that pass.
- Empty point sets (shape (0, D), or a batch (k, 0, D)): the curvature functions on
  batches (`christoffel`, `riemann`, `ricci`, `scalar_curvature`, `volume_density`,
  `gradient`, `hessian`, `laplacian`), `point_sample`, `patch_geometry`, a `PointSample`
  built empty, `subsample` with an empty index or an all-False mask (and so
  `chart_sample`, which goes through it), `perturb_points` (and so `sample_near`),
  `point_kernel_apply` (empty targets, empty sources), `CosineNTK.apply` at finite
  width, `nearest_points` with no sources, `mean_nearest_distance`, `cluster_points`,
  besides `kernel.apply` and `manifold.sample` above. Documented to accept an empty
  set, and checked: `nearest_points` with no targets (empty results, one per target)
  and `evaluate_at` (an empty batch in, an empty batch out).
- Command line, every program in `experiments/` (the fifteen in `helpers.PROGRAMS`:
  bench, convergence, curvature_tour, lambda_drift, ntk_regimes, quintic_kernels,
  quintic_networks, quintic_sigma, quintic_spectral, sphere_extinction, torus_modes, well_posedness;
  a test checks the list is complete) and the `metric-flows` demo (solvers/demo/):
  unknown flags; and for every numeric flag, bad values (`--flag=VALUE`): sizes and
  counts below their minimum (zero, negative) or not integers ("1.5", "x"); widths,
  times, tolerances and learning rates that are zero, negative, NaN, +-inf or not
  numbers; values outside a documented range (amplitudes outside (0, 1) or
  (0, 1e-4], band limits and wavenumbers the grid does not resolve, psi^5 = 1, a
  dimension not among the choices); comma-separated lists with a bad entry or too
  few entries (--widths, --sigmas); seeds that are negative, >= 2^32 or not integers
  (hypothesis draws more: any float <= 0, NaN or inf for the flags needing a positive
  number, any negative float for those needing >= 0, any out-of-range integer or
  fractional float for the seeds). Each exits with status 2 and names the
  flag on stderr (argparse); one program is also run in a subprocess (exit status 2,
  the flag named, nothing written).

Everything here raises before any solve or flow is compiled; the only compiled
functions are the nodal checks (one per shape), a cheap loss's gradient on a 4 x 4
torus, the features of a width-4 `CosineNTK`, and, for `point_sample` on four points
of the Fermat quintic, the relative residual and the patch geometry. The command-line
tests call each program's `parse_args` only. Examples are bounded by the profile in
conftest.py (10 per test).
"""

import cmath
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import flows
import solvers

from .helpers import DEMO, EXPERIMENTS, PROGRAMS, experiment_program

TORUS = flows.Torus(2, 4)  # 16 nodes: the cheapest compile of the nodal checks
SPHERE = flows.Sphere(2, 2)
NAN, INF = float("nan"), float("inf")

non_finite = st.sampled_from([NAN, INF, -INF])
not_a_number = st.sampled_from(["1", None, [1.0], True, False])
bad_positive = st.one_of(
    st.floats(max_value=0.0, allow_nan=False, allow_infinity=False), non_finite
)
node = st.integers(0, TORUS.nodes.shape[0] - 1)


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


# Manifolds


@given(
    dim=st.one_of(st.integers(-5, 0), st.integers(4, 9), st.floats(), not_a_number),
    n=st.just(8),
)
def test_torus_bad_dim(dim, n):
    _raises("Torus: dim must be 1, 2 or 3", flows.Torus, dim, n)


@given(n=st.one_of(st.integers(-5, 2), st.floats(), not_a_number))
def test_torus_bad_size(n):
    _raises(r"Torus: n \(grid points per axis\) must be an integer >= 3", flows.Torus, 2, n)


@given(
    dim=st.one_of(st.integers(-3, 1), st.integers(4, 7), st.floats(), not_a_number),
    degree=st.one_of(st.integers(-5, 1), st.floats(), not_a_number),
)
def test_sphere_bad_dim_and_degree(dim, degree):
    _raises("Sphere: dim must be 2 or 3", flows.Sphere, dim, 4)
    _raises("Sphere: degree must be an integer >= 2", flows.Sphere, 2, degree)


@given(count=st.one_of(st.integers(-5, 0), st.floats(), not_a_number))
def test_sample_bad_count_or_empty(count):
    for m in (TORUS, SPHERE):
        _raises(r"sample: count must be an integer >= 1", m.sample, jax.random.key(0), count)


@pytest.mark.parametrize("key", [0, "key", None, jnp.zeros(3, dtype=jnp.uint32)])
def test_sample_and_random_metric_bad_key(key):
    _raises("key must be a single JAX PRNG key", TORUS.sample, key, 3)
    _raises("random_metric: key must be a single JAX PRNG key", flows.random_metric, TORUS, key, 1)


# Kernels


@given(sigma=st.one_of(bad_positive, not_a_number))
def test_gaussian_kernel_bad_sigma(sigma):
    _raises("GaussianKernel: sigma must be a finite number > 0", flows.GaussianKernel, sigma)


@given(a=node, value=non_finite, trailing=st.sampled_from([(), (2,), (2, 2)]))
def test_kernels_refuse_non_finite_nodal_values(a, value, trailing):
    values = jnp.ones((16, *trailing)).at[a].set(value)
    for kernel in (flows.GaussianKernel(0.5), flows.DeltaKernel()):
        name = type(kernel).__name__
        _raises(rf"{name}.smooth: values are not finite at node {a}", kernel.smooth, TORUS, values)
        _raises(rf"{name}.apply: values are not finite at node {a}", kernel.apply, TORUS, values)


@given(nodes=st.integers(0, 40).filter(lambda k: k != 16))
def test_kernels_refuse_the_wrong_number_of_nodes(nodes):
    for kernel in (flows.GaussianKernel(0.5), flows.DeltaKernel()):
        for method in (kernel.smooth, kernel.apply):
            _raises(r"must have leading axis 16 \(one per node\)", method, TORUS, jnp.ones(nodes))


@given(
    shape=st.sampled_from([(0, 2), (3, 3), (3, 1), (3,), (2, 2, 2), (0, 3)]),
)
def test_kernel_apply_refuses_empty_or_misshapen_points(shape):
    _raises(
        r"GaussianKernel.apply: points on Torus\(dim=2, n=4\) must be a non-empty array of shape",
        flows.GaussianKernel(0.5).apply,
        TORUS,
        jnp.ones(16),
        jnp.ones(shape),
    )


@given(p=st.integers(0, 4), value=non_finite)
def test_kernel_apply_refuses_bad_points(p, value):
    kernel = flows.GaussianKernel(0.5)
    points = jnp.ones((5, 2)).at[p, 1].set(value)
    _raises(rf"point {p} is not finite", kernel.apply, TORUS, jnp.ones(16), points)
    on_sphere = SPHERE.nodes[:5].at[p].multiply(2.0)
    _raises(rf"point {p} has norm 2", kernel.apply, SPHERE, jnp.ones(6), on_sphere)


@given(chunk=st.one_of(st.integers(-3, 0), st.floats(), not_a_number))
def test_kernel_apply_bad_chunk(chunk):
    _raises(
        "chunk must be an integer >= 1",
        flows.GaussianKernel(0.5).apply,
        TORUS,
        jnp.ones(16),
        chunk=chunk,
    )


def test_kernel_at_points_of_the_wrong_shape():
    _raises(
        r"points on Torus\(dim=2, n=4\) have shape \(2,\), got \(3,\)",
        flows.GaussianKernel(0.5),
        TORUS,
        jnp.ones(3),
        jnp.ones(2),
    )


# Metrics


def _with_node(a, matrix):
    return TORUS.reference_at_nodes().at[a].set(matrix)


@given(a=node, value=non_finite, i=st.integers(0, 1), j=st.integers(0, 1))
def test_nodal_metric_non_finite(a, value, i, j):
    values = _with_node(a, jnp.eye(2).at[i, j].set(value).at[j, i].set(value))
    _raises(rf"metric is not finite at node {a}", flows.NodalMetric, TORUS, values)
    _raises(rf"g0 is not finite at node {a}", flows.check_nodal_values, TORUS, values, "g0")


@given(
    a=node,
    low=st.floats(-10, -1e-3),
    high=st.floats(-10, 10),
    angle=st.floats(0, math.pi),
    singular=st.booleans(),
)
def test_nodal_metric_not_positive_definite(a, low, high, angle, singular):
    # a symmetric matrix with an eigenvalue < 0 (indefinite or negative definite), or an
    # exactly singular one, diag(0, high)
    c, s = math.cos(angle), math.sin(angle)
    rotation = jnp.array([[c, -s], [s, c]])
    matrix = rotation @ jnp.diag(jnp.array([low, high])) @ rotation.T
    matrix = jnp.diag(jnp.array([0.0, high])) if singular else (matrix + matrix.T) / 2
    _raises(
        rf"metric is not positive definite on the tangent space at node {a}",
        flows.NodalMetric,
        TORUS,
        _with_node(a, matrix),
    )


@given(a=node, off=st.floats(0.01, 10))
def test_nodal_metric_not_symmetric(a, off):
    matrix = jnp.array([[2.0, off], [0.0, 2.0]])
    _raises(
        rf"metric is not symmetric at node {a}", flows.NodalMetric, TORUS, _with_node(a, matrix)
    )


@given(
    shape=st.sampled_from(
        [(15, 2, 2), (17, 2, 2), (0, 2, 2), (16, 3, 3), (16, 2), (16,), (), (16, 2, 2, 1)]
    )
)
def test_nodal_metric_wrong_shape(shape):
    _raises(r"must have shape \(16, 2, 2\)", flows.NodalMetric, TORUS, jnp.ones(shape))


@pytest.mark.parametrize(
    "values,match",
    [
        (jnp.ones((16, 2, 2), dtype=jnp.int32), "must be floating point, got dtype int32"),
        (jnp.ones((16, 2, 2), dtype=bool), "must be floating point, got dtype bool"),
        (
            jnp.ones((16, 2, 2), dtype=jnp.complex128),
            "must be floating point, got dtype complex128",
        ),
        (jnp.ones((16, 2, 2), dtype=jnp.float32), "dtype float32 but Torus.* float64 nodes"),
        ("metric", "must be an array of numbers"),
        (None, "must be an array of numbers"),
    ],
)
def test_nodal_metric_wrong_dtype(values, match):
    _raises(match, flows.NodalMetric, TORUS, values)
    _raises(match, flows.check_nodal_values, TORUS, values)


def test_nodal_metric_on_a_non_manifold():
    values = TORUS.reference_at_nodes()
    _raises("manifold must be a flows manifold", flows.NodalMetric, "T2", values)
    _raises("manifold must be a flows manifold", flows.random_metric, None, jax.random.key(0))
    _raises(
        r"rtol must be a number > 0 \(or inf\), got nan",
        flows.NodalMetric,
        SPHERE,
        SPHERE.reference_at_nodes(),
        rtol=NAN,
    )


@given(
    amplitude=st.one_of(
        st.floats(max_value=0.0), st.floats(min_value=1.0), non_finite, st.just("0.3")
    )
)
def test_random_metric_bad_amplitude(amplitude):
    _raises(
        r"amplitude must lie in \(0, 1\)",
        flows.random_metric,
        TORUS,
        jax.random.key(0),
        1,
        amplitude,
    )


@given(band_limit=st.one_of(st.integers(-5, -1), st.integers(2, 9), st.floats(0.1, 0.9)))
def test_random_metric_bad_band_limit(band_limit):
    # Torus(2, 4) resolves band limit 1
    _raises(r"band[ _]limit", flows.random_metric, TORUS, jax.random.key(0), band_limit)


# Losses


LOSSES = [flows.PerelmanLoss(), flows.EinsteinHilbertLoss(), flows.CalabiLoss()]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: type(loss).__name__)
def test_losses_refuse_non_metrics(loss):
    name = type(loss).__name__
    _raises(rf"{name}: expected a metric module, got Torus", loss, TORUS)
    _raises("functional_derivative: needs a NodalMetric", flows.functional_derivative, loss, TORUS)
    metric = flows.reference_metric(TORUS)
    _raises(
        "functional_derivative: loss must be a loss module",
        flows.functional_derivative,
        name,
        metric,
    )


class _SquareLoss(flows.AbstractLoss):
    r"""$L = \int \mathrm{tr}(g^2)\, d\mu$: a cheap nonlinear loss, for the checks every loss shares."""

    def density(self, metric, x):
        return jnp.sum(metric(x) ** 2)


@given(a=node, value=non_finite)
def test_loss_of_an_unchecked_nan_metric_is_an_error_not_nan(a, value):
    # a NodalMetric built with check=False skips the checks; the loss and its derivative
    # must still not return NaN (one bad node spreads through the spectral interpolant)
    values = TORUS.reference_at_nodes().at[a, 0, 0].set(value)
    metric = flows.NodalMetric(TORUS, values, check=False)
    loss = _SquareLoss()
    _raises(r"_SquareLoss: the loss is not finite \((nan|inf|-inf)\)", loss, metric)
    _raises(
        r"derivative of _SquareLoss is not finite at node \d+",
        flows.functional_derivative,
        loss,
        metric,
    )


# Flows


@given(sigma=st.one_of(st.floats(max_value=-1e-300), non_finite, st.sampled_from(["0.3", True])))
def test_make_flow_bad_sigma(sigma):
    for name in flows.FLOW_NAMES:
        allowed = (
            "a finite number > 0"
            if name.startswith("smoothed")
            else r"None or a finite number >= 0 \(0: local\)"
        )
        _raises(
            f"make_flow: sigma for '{name}' must be {allowed}", flows.make_flow, name, TORUS, sigma
        )


@given(name=st.text(max_size=12).filter(lambda n: n not in flows.FLOW_NAMES))
def test_make_flow_unknown_name(name):
    _raises("make_flow: unknown flow", flows.make_flow, name, TORUS)


def test_make_flow_missing_sigma_and_bad_manifold():
    for name in ("smoothed", "smoothed_lambda"):
        _raises(f"{name}: needs a width sigma > 0", flows.make_flow, name, TORUS)
        _raises(
            "GaussianKernel: sigma must be a finite number > 0", flows.make_flow, name, TORUS, 0.0
        )
    _raises("make_flow: manifold must be a flows manifold", flows.make_flow, "ricci", "T2")


# solvers.solve


FLOW = flows.ricci_deturck_flow(TORUS)  # growth rate 0: no amplification solve before the checks
G0 = flows.reference_metric(TORUS)


def _solve(*args, **kwargs):
    solvers.solve(*args, **kwargs)


@given(t=st.one_of(non_finite, st.sampled_from(["0", None, True, [0.0], 1j])))
def test_solve_bad_times(t):
    _raises("solve: t0 must be a finite number", _solve, FLOW, G0, t, 1.0)
    _raises("solve: t1 must be a finite number", _solve, FLOW, G0, 0.0, t)


@given(t0=st.floats(-10, 10), back=st.floats(0, 10))
def test_solve_t1_not_after_t0(t0, back):
    _raises("solve: t1 must be greater than t0", _solve, FLOW, G0, t0, t0 - back)


@given(
    name=st.sampled_from(
        ["rtol", "atol", "degenerate_tol", "dt0", "fixed_point_tol", "curvature_limit"]
    ),
    value=st.one_of(bad_positive, st.sampled_from([True, "1e-8"])),
)
def test_solve_bad_tolerances(name, value):
    _raises(
        rf"solve: {name} must be a finite number > 0", _solve, FLOW, G0, 0.0, 1.0, **{name: value}
    )


@given(max_steps=st.one_of(st.integers(-5, 0), st.floats(), st.sampled_from([True, "10"])))
def test_solve_bad_max_steps(max_steps):
    _raises(
        "solve: max_steps must be an integer >= 1", _solve, FLOW, G0, 0.0, 1.0, max_steps=max_steps
    )


@given(
    saveat=st.one_of(
        st.integers(-3, 1).map(lambda k: (k, "at least 2 save times")),
        st.sampled_from(
            [
                ([], "non-empty 1-D array"),
                ([[0.0, 1.0]], "non-empty 1-D array"),
                ([0.0, NAN], "saveat times must be finite"),
                ([0.0, INF], "saveat times must be finite"),
                ([0.5, 0.2], "increasing and within"),
                ([0.5, 0.5], "increasing and within"),
                ([-0.1, 0.5], "increasing and within"),
                ([0.5, 1.5], "increasing and within"),
                ("times", "saveat must be a number of save times"),
                (None, "saveat must be a number of save times"),
            ]
        ),
    )
)
def test_solve_bad_saveat(saveat):
    value, match = saveat
    _raises(match, _solve, FLOW, G0, 0.0, 1.0, saveat=value)


@given(count=st.integers(solvers.MAX_SAVES + 1, 10**18))
def test_solve_refuses_absurd_numbers_of_saves(count):
    _raises(
        rf"solve: saveat asks for {count} save times, more than MAX_SAVES = 1000000",
        _solve,
        FLOW,
        G0,
        0.0,
        1.0,
        saveat=count,
    )


def test_solve_refuses_absurd_arrays_of_save_times():
    times = np.linspace(0.0, 1.0, solvers.MAX_SAVES + 1)
    _raises(
        r"solve: saveat holds 1000001 times, more than MAX_SAVES",
        _solve,
        FLOW,
        G0,
        0.0,
        1.0,
        saveat=times,
    )


@given(a=node, value=st.one_of(non_finite, st.floats(-10, 0)))
def test_solve_bad_initial_metric(a, value):
    values = G0.values.at[a].set(value * jnp.eye(2))
    what = (
        "not finite" if not math.isfinite(value) else "not positive definite on the tangent space"
    )
    _raises(rf"solve: initial metric g0 is {what} at node {a}", _solve, FLOW, values, 0.0, 1.0)


def test_solve_bad_arguments():
    _raises(
        r"initial metric g0: nodal values on Torus.* must have shape \(16, 2, 2\)",
        _solve,
        FLOW,
        jnp.ones((16, 3, 3)),
        0.0,
        1.0,
    )
    _raises(
        "initial metric g0: nodal values have dtype float32",
        _solve,
        FLOW,
        G0.values.astype(jnp.float32),
        0.0,
        1.0,
    )
    _raises(
        "initial metric g0: nodal values must be floating point",
        _solve,
        FLOW,
        G0.values.astype(jnp.int32),
        0.0,
        1.0,
    )
    _raises("g0 lives on", _solve, FLOW, flows.reference_metric(flows.Torus(2, 5)), 0.0, 1.0)
    _raises("unknown solver", _solve, FLOW, G0, 0.0, 1.0, solver="rk4")
    _raises("flow must be a flows.AbstractFlow", _solve, "ricci", G0, 0.0, 1.0)


# Hypersurfaces


@given(k=st.integers(0, 4), scale=st.sampled_from([1.0, 1.0 + 1e-14]))
def test_singular_dwork_members(k, scale):
    psi = scale * cmath.exp(2j * math.pi * k / 5)  # psi^5 = 1: the conifold members
    _raises(r"has psi\^5 = 1, a singular member", flows.Hypersurface.dwork_quintic, psi)


@given(
    psi=st.one_of(
        non_finite,
        st.sampled_from([complex(NAN, 0), complex(0, INF), complex(-INF, 1), "1", None, True]),
    )
)
def test_dwork_bad_psi(psi):
    _raises(r"dwork_quintic: psi must be (finite|a number)", flows.Hypersurface.dwork_quintic, psi)


@pytest.mark.parametrize(
    "exponents,coefficients,match",
    [
        (np.ones((2, 3)), [1, 1], "exponents must be an integer array"),
        (np.zeros((0, 3), dtype=int), [], r"exponents must have shape \(k, n \+ 1\)"),
        (np.array([[3, 0], [0, 3]]), [1, 1], r"exponents must have shape \(k, n \+ 1\)"),
        (np.array([[3, 0, 0], [4, -1, 0]]), [1, 1], "exponents must be >= 0"),
        (np.array([[3, 0, 0], [2, 0, 0]]), [1, 1], "not homogeneous"),
        (np.array([[3, 0, 0], [0, 3, 0]]), [1, NAN], "coefficients must be finite"),
        (np.array([[3, 0, 0], [0, 3, 0]]), [INF, 1], "coefficients must be finite"),
        (np.array([[3, 0, 0], [0, 3, 0]]), [0, 0], "coefficients are all zero"),
        (np.array([[3, 0, 0], [0, 3, 0]]), [1, 1, 1], r"coefficients must have shape \(2,\)"),
    ],
)
def test_hypersurface_bad_polynomials(exponents, coefficients, match):
    _raises(match, flows.Hypersurface, exponents, coefficients)


QUINTIC = flows.Hypersurface.fermat_quintic()


def _on_quintic(t):
    """Points (1, -1, t, -t, 0) of the Fermat quintic (p = 0 exactly), one per t."""
    t = jnp.asarray(t, dtype=jnp.complex128)
    one = jnp.ones_like(t)
    return jnp.stack([one, -one, t, -t, jnp.zeros_like(t)], axis=1)


ON_QUINTIC = _on_quintic([0.3, 0.5j, -0.7 + 0.2j, 0.9])


def test_hypersurface_bad_points():
    _raises("count must be an integer >= 1", flows.sample_points, QUINTIC, jax.random.key(0), 0)
    _raises(
        r"points must have shape \(N, 5\)", flows.point_sample, QUINTIC, jnp.ones((3, 4), complex)
    )


@pytest.mark.parametrize("key", [0, "key", None, jnp.zeros(3, dtype=jnp.uint32), 1.5])
def test_sample_points_bad_key(key):
    _raises(
        "sample_points: key must be a single JAX PRNG key", flows.sample_points, QUINTIC, key, 5
    )


@given(p=st.integers(0, 3), eps=st.floats(1e-2, 1.0), generic=st.booleans())
def test_point_sample_refuses_points_off_the_hypersurface(p, eps, generic):
    assert flows.point_sample(QUINTIC, ON_QUINTIC).count == 4  # the points on X pass
    if generic:  # a generic point of CP^4: relative residual ~0.1
        z = ON_QUINTIC.at[p].set(jnp.asarray([1.0, 0.5, -0.25j, 0.3, 0.2 + 0.1j]))
    else:  # p(z) = (1 + eps)^5 - 1 >= 0.05, over sum|c| |z|^5 <= 5 * 2^5: >= 3e-4
        z = ON_QUINTIC.at[p, 0].multiply(1 + eps)
    _raises(
        rf"point_sample: 1 of 4 points are off the hypersurface \(first: point {p}, relative "
        r"residual .* > 1e-05\)",
        flows.point_sample,
        QUINTIC,
        z,
    )


# Empty point sets

CURVATURE = {
    name: getattr(flows, name)
    for name in ("christoffel", "riemann", "ricci", "scalar_curvature", "volume_density")
}
CURVATURE_OF_F = {name: getattr(flows, name) for name in ("gradient", "hessian", "laplacian")}


@pytest.mark.parametrize("shape", [(0, 2), (3, 0, 2), (0, 0, 2)])
def test_curvature_functions_refuse_empty_point_sets(shape):
    metric, points, f = flows.reference_metric(TORUS), jnp.zeros(shape), jnp.ones(16)
    for name, fn in CURVATURE.items():
        _raises(
            rf"{name}: the point set is empty \(shape {re.escape(str(shape))}\)", fn, metric, points
        )
    for name, fn in CURVATURE_OF_F.items():
        _raises(rf"{name}: the point set is empty", fn, metric, f, points)


def _empty_sample():
    return flows.PointSample(
        points=jnp.zeros((0, 5), complex),
        patch=jnp.zeros(0, int),
        eliminated=jnp.zeros(0, int),
        omega=jnp.zeros(0, complex),
        weights=jnp.zeros(0),
        g_fs=jnp.zeros((0, 3, 3), complex),
        jacobian=jnp.zeros((0, 5, 3), complex),
        volume_ratio=jnp.asarray(1.0),
        rejected=0,
    )


def test_point_functions_refuse_empty_point_sets():
    empty = jnp.zeros((0, 5), complex)
    _raises("point_sample: the point set is empty", flows.point_sample, QUINTIC, empty)
    _raises("patch_geometry: the point set is empty", flows.patch_geometry, QUINTIC, empty)
    _raises("PointSample: the point set is empty", _empty_sample)
    sample = flows.point_sample(QUINTIC, ON_QUINTIC)
    for index in ([], np.zeros(0, int), np.zeros(4, bool)):
        _raises("subsample: the index selects no point", flows.subsample, sample, index)
    _raises(
        "perturb_points: the point set is empty",
        flows.perturb_points,
        QUINTIC,
        empty,
        jax.random.key(0),
        0.1,
    )
    kernel = flows.FSGaussian(0.3)
    values = jnp.ones(4)
    _raises("sources is empty", flows.point_kernel_apply, kernel, ON_QUINTIC, empty, jnp.ones(0))
    _raises("targets is empty", flows.point_kernel_apply, kernel, empty, ON_QUINTIC, values)
    ntk = flows.CosineNTK(0.5, TORUS, width=4, key=jax.random.key(0))
    _raises(
        r"CosineNTK.apply: points on Torus\(dim=2, n=4\) must be a non-empty array",
        ntk.apply,
        TORUS,
        jnp.ones(16),
        jnp.zeros((0, 2)),
    )
    _raises(
        "nearest_points: points must be a non-empty array", flows.nearest_points, empty, ON_QUINTIC
    )
    _raises(
        "mean_nearest_distance: points must be a non-empty array",
        flows.mean_nearest_distance,
        empty,
    )
    _raises("cluster_points: points must be a non-empty array", flows.cluster_points, empty, 1)


def test_empty_point_sets_where_documented():
    index, distance = flows.nearest_points(ON_QUINTIC, jnp.zeros((0, 5), complex))
    assert index.shape == distance.shape == (0,)
    assert flows.evaluate_at(lambda x: jnp.sum(x), jnp.zeros((0, 2))).shape == (0,)


# Command line


def test_programs_list_is_complete():
    found = sorted(p.stem for p in EXPERIMENTS.glob("*.py") if not p.stem.startswith("_"))
    assert found == sorted(PROGRAMS)


ALL_PROGRAMS = (*PROGRAMS, DEMO)


def _parse(name, argv, tmp_path):
    return experiment_program(name).parse_args([*argv, "--out", str(tmp_path)])


@given(flag=st.from_regex(r"\A--zz[a-z0-9-]{1,10}\Z"))
def test_programs_refuse_unknown_flags(flag, capsys, tmp_path):
    for name in ALL_PROGRAMS:
        with pytest.raises(SystemExit) as exit:
            _parse(name, [flag], tmp_path)
        assert exit.value.code == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


def test_programs_refuse_an_empty_out(capsys):
    # Path("") is the current directory: an empty --out would write there
    for name in ALL_PROGRAMS:
        with pytest.raises(SystemExit) as exit:
            experiment_program(name).parse_args(["--out", ""])
        assert exit.value.code == 2
        assert "--out: must name a directory, got an empty path" in capsys.readouterr().err


def _ints(minimum):
    """Bad values of an integer flag that must be >= minimum."""
    return [str(minimum - 1), str(minimum - 10**6), "1.5", "x", ""]


POSITIVE = ["0", "-0.5", "-1e300", "nan", "inf", "-inf", "x", ""]  # finite > 0
NON_NEGATIVE = ["-0.5", "-1e-300", "nan", "inf", "-inf", "x"]  # finite >= 0
SEED = ["-1", str(2**32), "1.5", "x", ""]  # an integer in 0 .. 2^32 - 1
UNIT = ["0", "1", "-0.5", "1.5", "nan", "inf", "x"]  # in (0, 1)

# Every numeric flag of every program, with values it must refuse.
BAD_FLAGS = {
    "bench": {
        "--seed": SEED,
        "--repeats": _ints(1),
        "--sigma": POSITIVE,
        "--torus-fft": _ints(3),
        "--torus-quadrature": _ints(3),
        "--torus-ratio": _ints(3),
        "--sphere-kernel-degrees": _ints(2),
        "--sphere-rhs-degrees": _ints(2),
        "--quintic-points": _ints(1),
        "--point-sigma": POSITIVE,
        "--exp-size": _ints(1),
        "--memory-points": _ints(1),
        "--memory-target": _ints(1),
        "--kvaerno-n": _ints(3),
        "--kvaerno-t1": POSITIVE,
        "--dense-repeats": _ints(1),
        "--kahler-points": _ints(1),
        "--kahler-epochs": _ints(1),
        "--kahler-budget": POSITIVE,
        "--kahler-batch": _ints(1),
        "--kahler-lr": POSITIVE,
        "--kahler-halving": _ints(1),
        "--peer-seed": SEED,
        "--spectral-points": _ints(50),
        "--spectral-k-max": _ints(2),
    },
    "convergence": {"--seed": SEED, "--seeds": _ints(2), "--amplitude-a": UNIT},
    "curvature_tour": {"--seed": SEED, "--band-limit": [*_ints(1), "99"], "--amplitude": UNIT},
    "lambda_drift": {"--n": _ints(8), "--t1": POSITIVE, "--saves": _ints(2)},
    "ntk_regimes": {
        "--widths": ["0,4", "16", "x,4", "-3,8"],
        "--sigma": POSITIVE,
        "--t1": POSITIVE,
        "--seeds": _ints(1),
        "--saves": _ints(2),
        "--resolution": _ints(2),
        "--seed": SEED,
    },
    "quintic_kernels": {
        "--points": _ints(2),
        "--test-points": _ints(2),
        "--noise": POSITIVE,
        "--steps": _ints(1),
        "--lr": POSITIVE,
        "--relu-lr": POSITIVE,
        "--sigma": POSITIVE,
        "--relu-depth": _ints(0),
        "--relu-weight-std": POSITIVE,
        "--relu-bias-std": NON_NEGATIVE,
        "--clusters": _ints(0),
        "--batch-size": _ints(1),
        "--scaling-points": _ints(2),
        "--seed": SEED,
    },
    "feature_learning": {
        **{
            flag: _ints(1)
            for flag in (
                "--widths",
                "--bihomogeneous-widths",
                "--points",
                "--test-points",
                "--probe",
                "--epochs",
                "--batch",
                "--depth",
                "--bihomogeneous-layers",
                "--lr-halving",
            )
        },
        "--seeds": _ints(2),
        "--lr": POSITIVE,
        "--bihomogeneous-noise": POSITIVE,
        "--lr-constant": _ints(0),
        "--seed": SEED,
    },
    "kernel_points": {
        "--points": _ints(2),
        "--test-points": _ints(1),
        "--draws": _ints(2),
        "--steps": _ints(1),
        "--lr": POSITIVE,
        "--relu-lr": POSITIVE,
        "--unnormalised-lr": POSITIVE,
        "--sigma": POSITIVE,
        "--relu-depth": _ints(0),
        "--relu-weight-std": POSITIVE,
        "--relu-bias-std": NON_NEGATIVE,
        "--noise": POSITIVE,
        "--scaling-points": _ints(2),
        "--clusters": _ints(0),
        "--batch-size": _ints(1),
        "--clustered-max": _ints(0),
        "--memory-points": _ints(2),
        "--memory-target": _ints(1),
        "--seed": SEED,
    },
    "kernel_tuning": {
        "--points": _ints(10),
        "--validation-points": _ints(10),
        "--test-points": _ints(10),
        "--trials": _ints(2),
        "--startup-trials": _ints(1),
        "--max-steps": _ints(10),
        "--test-draws": _ints(3),
        "--seed": SEED,
    },
    "quintic_spectral": {
        "--k-max": _ints(1),
        "--points": _ints(50),
        "--test-points": _ints(50),
        "--decades": POSITIVE,
        "--saves": _ints(5),
        "--rate-ks": _ints(2),
        "--fit-from": _ints(2),
        "--kernel-sigmas": POSITIVE,
        "--kernel-k": _ints(2),
        "--kernel-points": _ints(50),
        "--donaldson-k-max": _ints(0),
        "--donaldson-points": _ints(50),
        "--curvature-k": _ints(2),
        "--chern-points": _ints(0),
        "--ricci-points": _ints(0),
        "--seed": SEED,
    },
    "quintic_networks": {
        "--points": _ints(2),
        "--test-points": _ints(2),
        "--width": _ints(1),
        "--depth": _ints(1),
        "--widths": _ints(1),
        "--epochs": _ints(1),
        "--batch": _ints(1),
        "--lr": POSITIVE,
        "--lr-halving": _ints(1),
        "--lr-constant": _ints(0),
        "--target": POSITIVE,
        "--t1-gradient": POSITIVE,
        "--t1-kahler-ricci": POSITIVE,
        "--sigma": POSITIVE,
        "--saves": _ints(2),
        "--probe": _ints(1),
        "--curvature-points": _ints(0),
        "--seed": SEED,
    },
    "quintic_sigma": {
        "--points": _ints(50),
        "--psi": ["nan", "inf", "-inf", "x", "1"],
        "--seed": SEED,
    },
    "sphere_extinction": {"--dim": ["1", "4", "x"], "--sigma": NON_NEGATIVE, "--degree": _ints(2)},
    "torus_modes": {
        "--sigma": NON_NEGATIVE,
        "--k": [*_ints(1), "8"],  # n = 16 resolves k <= 7
        "--n": _ints(3),
        "--t1": POSITIVE,
        "--amplitude": ["0", "-1e-5", "2e-4", "nan", "inf", "x"],
    },
    "well_posedness": {"--sigma": POSITIVE, "--n": _ints(8), "--t1": POSITIVE},
    DEMO: {
        "--sigmas": ["0", "0.3,-1", "nan", "inf", "x", "", "9", "0.3,1e10"],  # 0 < σ <= 8
        "--n": _ints(6),
        "--degree": _ints(2),
        "--width": _ints(1),
        "--points": _ints(10),
        "--steps": _ints(1),
        "--quintic-sigma": POSITIVE,
        "--seed": SEED,
    },
}


def test_every_program_has_bad_flag_values():
    assert sorted(BAD_FLAGS) == sorted(ALL_PROGRAMS)


@pytest.mark.parametrize(
    "name,flag", [(name, flag) for name, flags in BAD_FLAGS.items() for flag in flags]
)
def test_programs_refuse_bad_flag_values(name, flag, capsys, tmp_path):
    for value in BAD_FLAGS[name][flag]:
        with pytest.raises(SystemExit) as exit:
            _parse(name, [f"{flag}={value}"], tmp_path)
        err = capsys.readouterr().err
        assert exit.value.code == 2, (flag, value)
        assert flag in err, (flag, value, err)


# the flags of each kind, for the property tests below
_OF_KIND = {
    kind: [(n, f) for n, flags in BAD_FLAGS.items() for f, v in flags.items() if v is bad]
    for kind, bad in (("positive", POSITIVE), ("non_negative", NON_NEGATIVE), ("seed", SEED))
}


def _refused(name, flag, value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        _parse(
            name, [f"{flag}={value!r}" if isinstance(value, float) else f"{flag}={value}"], tmp_path
        )
    err = capsys.readouterr().err
    assert exit.value.code == 2 and flag in err, (flag, value, err)


@given(
    target=st.sampled_from(_OF_KIND["positive"]),
    value=st.one_of(st.floats(max_value=0.0), st.sampled_from([math.inf, math.nan])),
)
def test_positive_flags_refuse_non_positive_and_non_finite(target, value, capsys, tmp_path):
    _refused(*target, value, capsys, tmp_path)


@given(target=st.sampled_from(_OF_KIND["non_negative"]), value=st.floats(max_value=-1e-300))
def test_non_negative_flags_refuse_negatives(target, value, capsys, tmp_path):
    _refused(*target, value, capsys, tmp_path)


@given(
    target=st.sampled_from(_OF_KIND["seed"]),
    value=st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**32),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != int(v)),
    ),
)
def test_seed_flags_refuse_non_integers_and_out_of_range(target, value, capsys, tmp_path):
    _refused(*target, value, capsys, tmp_path)


def test_experiment_program_unknown_flag_in_a_subprocess(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(EXPERIMENTS / "torus_modes.py"),
            "--no-such-flag",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in run.stderr
    assert not any(tmp_path.iterdir())  # nothing written
