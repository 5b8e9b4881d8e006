"""What the point kernels, the Monge–Ampère losses and σ refuse, and what they accept.

Float64 unless a test says float32. Each refusal here was a silent wrong answer or an
unclear JAX error before: length-1 arrays broadcast over every point, a NaN σ, a float32
width whose 2σ² underflows (NaN rows), bools taken as numbers.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows


@pytest.fixture(scope="module")
def cubic():
    # test_point_flows.py's sample: its compiled programs are shared through the run's cache
    surface = flows.Hypersurface.fermat_cubic()
    full = flows.point_sample(surface, flows.sample_points(surface, jax.random.key(5), 1200))
    train = flows.chart_sample(full)
    return surface, train, flows.sample_near(surface, train, jax.random.key(6), 0.1)


def test_losses_refuse_mismatched_shapes(cubic):
    """A length-1 omega, weights or h broadcast to every point (the loss of another metric:
    0.366 and 499 against 0.397 on the quintic); the checks are static, so jit keeps them."""
    _, train, _ = cubic
    loss = flows.MongeAmpereLoss(2.0)
    omega, w, h = train.omega, train.weights, train.g_fs
    n = train.count
    bad = {
        "omega": (omega[:1], w, h),
        "weights": (omega, w[:1], h),
        "h": (omega, w, h[:1]),
        "a single matrix": (omega, w, h[0]),
        "not square": (omega, w, jnp.zeros((n, 1, 2), h.dtype)),
    }
    message = r"omega, weights and h must have shapes \(N,\), \(N,\) and \(N, m, m\)"
    for args in bad.values():
        for method, caller in (
            (loss, "MongeAmpereLoss"),
            (loss.gradient, "MongeAmpereLoss.gradient"),
            (loss.functional_derivative, "MongeAmpereLoss.functional_derivative"),
        ):
            with pytest.raises(ValueError, match=f"{caller}: {message}"):
                method(*args)
        with pytest.raises(ValueError, match=message):
            jax.jit(loss)(*args)
    for g in (h[0], h[:1]):
        with pytest.raises(ValueError, match=rf"log_eta_ratio: g must have shape \({n}, 1, 1\)"):
            flows.log_eta_ratio(train, g)


def test_point_kernels_refuse_mismatched_inputs(cubic):
    """Weights one short gave "Cannot concatenate arrays"; quintic test points against
    cubic training points "mul got incompatible shapes"."""
    _, train, test = cubic
    weighted = flows.MongeAmpereLoss(2.0).gradient(train.omega, train.weights, train.g_fs)
    other = jnp.ones((4, 5), train.points.dtype)  # points of CP^4, as the quintic's
    kernels = {
        "LocalPointKernel": flows.LocalPointKernel(),
        "PairPointKernel": flows.gaussian_point_kernel(0.1, normalise=True),
    }
    for name, kernel in kernels.items():
        with pytest.raises(ValueError, match=rf"{name}.velocity: weights must have shape"):
            kernel.velocity(train.points, test.points, train.weights[:-1], weighted)
        with pytest.raises(ValueError, match=rf"{name}.velocity: weights .* weighted shape"):
            kernel.velocity(train.points, test.points, train.weights, weighted[:, 0])
        with pytest.raises(ValueError, match=rf"{name}.velocity: .* of one projective space"):
            kernel.velocity(train.points, other, train.weights, weighted)


def test_scalars_are_real_numbers_or_0d_arrays_not_bools(cubic):
    """As FSGaussian's width: a NumPy or 0-d JAX number is a number, a bool is not (True
    was taken as p = 1 and kappa = 1; jnp.asarray(2.0) was refused)."""
    _, train, _ = cubic
    assert flows.MongeAmpereLoss(jnp.asarray(2.0)).p == 2.0
    assert flows.MongeAmpereLoss(np.float32(1.5)).p == 1.5
    for p in (True, jnp.asarray([2.0]), "2", 0.5, float("nan")):
        with pytest.raises(ValueError, match="MongeAmpereLoss: p must be a finite number >= 1"):
            flows.MongeAmpereLoss(p)
    ref = flows.curve_metric(train, 0.7)
    assert jnp.array_equal(flows.curve_metric(train, jnp.asarray(0.7)), ref)
    for kappa in (True, jnp.asarray(0.0), float("inf")):
        with pytest.raises(ValueError, match="curve_metric: kappa must be a finite number > 0"):
            flows.curve_metric(train, kappa)


def test_sigma_measure_refuses_values_that_are_not_finite_or_hermitian(cubic):
    """A NaN value gave σ = NaN, silently; a non-Hermitian one entered through Re det.
    A metric that is not positive definite is measured (untrained networks are reported
    so), and under jit a NaN raises at run time."""
    _, train, _ = cubic
    g = train.g_fs
    with pytest.raises(ValueError, match="sigma_measure: g has a NaN or inf entry at point 3"):
        flows.sigma_measure(train, g.at[3, 0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="sigma_measure: g is not Hermitian at point 5"):
        flows.sigma_measure(train, g.at[5, 0, 0].add(1e-3j))
    with pytest.raises(ValueError, match=r"sigma_measure: g must have shape"):
        flows.sigma_measure(train, g[0])
    sigma = flows.sigma_measure(train, g)[0]
    assert float(flows.sigma_measure(train, -g)[0]) == pytest.approx(float(sigma), rel=1e-12)
    with pytest.raises(Exception, match="sigma_measure: g has a NaN or inf entry"):
        jax.block_until_ready(jax.jit(flows.sigma_measure)(train, g.at[3, 0, 0].set(jnp.inf)))


def test_fs_gaussian_refuses_a_width_float32_cannot_hold(cubic):
    """In float32, 2σ² underflows below σ = 7.7e-20: the exponent -d²/2σ² was -inf or
    NaN and point_kernel_apply returned NaN rows silently (117 of 200 on the quintic), or,
    normalised, blamed the targets. The narrowest float32 width gives finite rows."""
    _, train, _ = cubic
    z = train.points.astype(jnp.complex64)
    v = jnp.ones((z.shape[0],), jnp.float32)
    with pytest.raises(
        ValueError, match="point_kernel_apply: FSGaussian sigma = 1e-20 is too small"
    ):
        flows.point_kernel_apply(flows.FSGaussian(1e-20), z, z, v)
    assert bool(jnp.all(jnp.isfinite(flows.point_kernel_apply(flows.FSGaussian(8e-20), z, z, v))))
    weighted = jnp.ones((z.shape[0], 1, 1), jnp.complex64)
    w = train.weights.astype(jnp.float32)
    train_32 = eqx.tree_at(lambda s: s.points, train, z)
    for max_entries in (0, 10**9):
        narrow = flows.PairPointKernel(flows.FSGaussian(1e-20), True, max_entries=max_entries)
        with pytest.raises(ValueError, match="FSGaussian sigma = 1e-20 is too small for float32"):
            narrow.velocity(z, z[:3], w, weighted)
        with pytest.raises(ValueError, match="PairPointKernel.prepare: FSGaussian sigma = 1e-20"):
            narrow.prepare(train_32, None)
    ok = flows.PairPointKernel(flows.FSGaussian(8e-20), True, max_entries=0)
    v_train, v_test = ok.velocity(z, z[:3], w, weighted)
    # each row is its own point's value G = (N / w) weighted (the nearest-point limit)
    expected = (z.shape[0] / w)[:, None, None]
    assert jnp.allclose(jnp.real(v_train), expected, rtol=1e-6)
    assert jnp.allclose(jnp.real(v_test), expected[:3], rtol=1e-6)
