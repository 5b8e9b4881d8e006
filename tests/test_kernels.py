"""Kernels: normalisation, Fourier multipliers on tori, Funk–Hecke eigenvalues on spheres, chunking."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
import scipy.integrate
import scipy.special

import flows

from .helpers import max_abs


@eqx.filter_jit
def _at(f, points):
    """`f` at each point: one compiled program, where an eager vmap compiles each primitive."""
    return jax.vmap(f)(points)


@pytest.mark.parametrize("sigma", [0.1, 0.5])
@pytest.mark.parametrize("k", [1, 4])
def test_torus_gaussian_fourier_multiplier(sigma, k):
    # The periodised Gaussian multiplies e^{ik.x} by exp(-sigma^2 |k|^2 / 2). On the n-point grid
    # (Poisson summation) the wavevector also picks up the multiplier of its aliases k +- n e_1,
    # exp(-sigma^2 (n - k)^2 / 2) each: 2e-9 for sigma = 0.1, n = 64, below 1e-30 for sigma >= 0.3.
    torus = flows.Torus(2, 64)
    kernel = flows.GaussianKernel(sigma)
    field = jnp.cos(k * torus.nodes[:, 0] + 2 * torus.nodes[:, 1])
    smoothed = kernel.apply(torus, field)
    expected = math.exp(-(sigma**2) * (k**2 + 4) / 2) * field
    aliasing = 4 * math.exp(-(sigma**2) * (64 - k) ** 2 / 2)
    assert max_abs(smoothed - expected) < 1e-12 + aliasing


@pytest.mark.parametrize("dim,degree,sigma", [(2, 64, 0.3), (2, 64, 0.6), (3, 40, 0.6)])
def test_sphere_gaussian_is_normalised(dim, degree, sigma):
    # quadrature over the nodes (`apply`): fast=False leaves out the separable transform
    # tables, which it does not use (S^3's take about 3 s to compile at each new degree)
    sphere = flows.Sphere(dim, degree, fast=False)
    kernel = flows.GaussianKernel(sigma)
    ones = kernel.apply(
        sphere, jnp.ones(sphere.nodes.shape[0]), sphere.sample(jax.random.key(0), 5)
    )
    # exp(-d^2 / 2 sigma^2) has a conical kink of height exp(-pi^2 / 2 sigma^2) at the antipode
    # (d is not smooth there), so quadrature converges only algebraically past that level
    # (sigma = 0.6, S^2: 1e-9, 3e-10, 8e-11 at degrees 32, 64, 96).
    kink = math.exp(-(math.pi**2) / (2 * sigma**2))
    assert max_abs(ones - 1) < 1e-10 + 1e-3 * kink


# Zonal harmonics P_l(x_3) on S^2 (unnormalised Legendre polynomials of degree l).
_ZONAL = {
    1: lambda x: x[2],
    2: lambda x: 1.5 * x[2] ** 2 - 0.5,
    3: lambda x: 2.5 * x[2] ** 3 - 1.5 * x[2],
}


def _funk_hecke(ell, sigma, z):
    def integrand(t):
        legendre = scipy.special.eval_legendre(ell, math.cos(t))
        return math.exp(-(t**2) / (2 * sigma**2)) * legendre * math.sin(t)

    value, _ = scipy.integrate.quad(integrand, 0, math.pi, epsabs=0, epsrel=1e-13, limit=200)
    return 2 * math.pi * value / z


@pytest.mark.parametrize("ell", [1, 2, 3])
def test_sphere_gaussian_funk_hecke_eigenvalue(ell):
    # On S^2 a zonal kernel multiplies degree-l harmonics by 2 pi int k(theta) P_l(cos theta) sin theta.
    sphere = flows.Sphere(2, 64)
    kernel = flows.GaussianKernel(0.4)
    lam = _funk_hecke(ell, 0.4, kernel.normaliser(sphere))
    harmonic = _ZONAL[ell]
    pts = sphere.sample(jax.random.key(1), 4)
    smoothed = kernel.apply(sphere, _at(harmonic, sphere.nodes), pts)
    assert max_abs(smoothed - lam * _at(harmonic, pts)) < 1e-10


class _QuadratureOnly(flows.AbstractKernel):
    """`kernel` without its multiplier: `smooth` falls back on quadrature (`apply`)."""

    kernel: flows.AbstractKernel

    def __call__(self, manifold, x, y):
        return self.kernel(manifold, x, y)


@pytest.mark.parametrize("manifold", ["T2", "S2"])
def test_fast_kernel_paths_match_quadrature(manifold, getkey):
    """The FFT (torus) and Funk-Hecke (sphere) paths of the Gaussian against quadrature: 1e-10.

    `smooth` with the multiplier against the same kernel applied by quadrature (projected
    onto the series on the sphere), on a random band-limited symmetric tensor field, and the
    smoothed flow's whole right-hand side through each path, for a metric of band limit 2
    (the fast paths of experiments/bench.py; the bench's agreement figures are the same comparison at 64^2
    and degree 64: 6e-15, 5e-14).
    """
    m = flows.Torus(2, 24) if manifold == "T2" else flows.Sphere(2, 24)
    gaussian = flows.GaussianKernel(0.4)
    quadrature = _QuadratureOnly(gaussian)
    assert gaussian.multiplier(m) is not None and quadrature.multiplier(m) is None
    # band limit 4 on 24 nodes a side (degree 24): the quadrature aliases mode k onto
    # k +- 24, whose multiplier is exp(-0.4^2 20^2 / 2) = 1e-14 (on S^2 likewise, and the
    # antipodal kink of exp(-d^2 / 2 sigma^2) is exp(-pi^2 / 2 sigma^2) = 4e-14)
    field = m.random_field(getkey(), 4, (m.ambient_dim, m.ambient_dim))
    values = _at(field, m.nodes)
    values = values + jnp.swapaxes(values, -1, -2)
    fast, slow = gaussian.smooth(m, values), quadrature.smooth(m, values)
    assert max_abs(fast - slow) < 1e-10 * max_abs(slow)
    metric = flows.random_metric(m, getkey(), band_limit=2, amplitude=0.2)
    rhs = {
        name: flows.perelman_flow(m, kernel)(0.0, metric.values)
        for name, kernel in (("fast", gaussian), ("quadrature", quadrature))
    }
    assert max_abs(rhs["fast"] - rhs["quadrature"]) < 1e-10 * max_abs(rhs["quadrature"])


def test_chunking_does_not_change_the_result(getkey):
    torus = flows.Torus(2, 16)
    kernel = flows.GaussianKernel(0.3)
    values = jax.random.normal(getkey(), (256, 2, 2))
    full = kernel.apply(torus, values, chunk=256)
    for chunk in (1, 7, 100):
        assert max_abs(kernel.apply(torus, values, chunk=chunk) - full) < 1e-13


def test_gaussian_kernel_errors():
    for bad in (0.0, -1.0, float("nan"), float("inf"), "0.3"):
        with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
            flows.GaussianKernel(bad)
    with pytest.raises(ValueError, match="leading axis 64"):
        flows.GaussianKernel(0.3).apply(flows.Torus(2, 8), jnp.ones(10))


def test_gaussian_widths_at_the_ends_of_float64():
    # Widths whose normalisation Z_sigma the precision cannot hold are refused by name (they
    # gave NaN on T^2 at 1e-160, a raw ZeroDivisionError on S^2 at 1e-300, a raw
    # OverflowError at 1e300); every other width gives finite numbers: S^2 at 1e-20 (NaN
    # before: the radial quadrature missed the peak) acts as the local kernel, S^2 at 1e300
    # as the mean, and T^2 at 1e3 and 1e5 (which asked for 611 GiB of periodic images) sums
    # the Fourier series of the periodised Gaussian: the constant 1 / (2 pi)^2.
    t2, s2 = flows.Torus(2, 8), flows.Sphere(2, 8)
    refused = [(t2, 1e-160, "overflow"), (s2, 1e-300, "overflow"), (t2, 1e300, "vanish")]
    for m, sigma, what in refused:
        kernel = flows.GaussianKernel(sigma)
        for use in (kernel.normaliser, kernel.multiplier, lambda m, k=kernel: k(m, *m.nodes[:2])):
            with pytest.raises(ValueError, match=f"outside float64's normal range.*{what}"):
                use(m)
    local = flows.GaussianKernel(1e-20).multiplier(s2)
    assert max_abs(local - 1) < 1e-12
    # T^1 holds Z_sigma up to sigma ~ 1e307: the multiplier is the mean's, not an OverflowError
    wide = flows.GaussianKernel(1e200).multiplier(flows.Torus(1, 16))
    assert float(wide[0]) == 1 and max_abs(wide[1:]) == 0
    mean = flows.GaussianKernel(1e300).multiplier(s2)
    assert float(mean[0]) == 1 and max_abs(mean[1:]) < 1e-12
    x, y = t2.nodes[0], t2.nodes[9]
    for sigma in (1e3, 1e5):
        value = flows.GaussianKernel(sigma)(t2, x, y)
        assert abs(float(value) * (2 * math.pi) ** 2 - 1) < 1e-12
    # quadrature over nodes that cannot resolve the width is refused (S^2 at 1e-20 gave
    # 2.6e38 for a constant field; T^2 n = 8 at sigma = 0.1: 4 exp(-0.32) = 2.9); sigma = 0.5
    # on 8^2 nodes (4 e^-8 = 1e-3) is not
    ones = jnp.ones(64)
    for m, sigma in ((s2, 1e-20), (t2, 0.1)):
        with pytest.raises(ValueError, match="cannot resolve sigma = .* by quadrature"):
            flows.GaussianKernel(sigma).apply(m, jnp.ones(m.nodes.shape[0]))
    assert max_abs(flows.GaussianKernel(0.5).apply(t2, ones) - 1) < 2e-3
    with pytest.raises(ValueError, match="outside float64's normal range"):  # not OverflowError
        flows.GaussianKernel(1e300).apply(t2, ones)
    # the two forms of the periodised Gaussian agree where both are cheap (sigma = 2.5)
    wide = flows.GaussianKernel(2.5)
    d = jnp.mod(x - y + jnp.pi, 2 * jnp.pi) - jnp.pi
    m = jnp.arange(-20.0, 21.0)
    images = jnp.stack(jnp.meshgrid(m, m, indexing="ij"), -1).reshape(-1, 2)
    direct = jnp.sum(jnp.exp(-jnp.sum((d + 2 * jnp.pi * images) ** 2, -1) / (2 * 2.5**2)))
    assert abs(float(wide(t2, x, y)) / float(direct / (2 * math.pi * 2.5**2)) - 1) < 1e-14


def test_cosine_ntk_infinite_width_limits():
    # torus: the periodised Gaussian (the same multiplier); sphere: the chordal Gaussian,
    # normalised (int k dmu = 1 by a fine quadrature) and diagonal in the degree (its
    # Funk–Hecke multiplier reproduces the quadrature on a band-limited field, 1e-12)
    torus = flows.Torus(2, 16)
    cosine = flows.CosineNTK(0.5, torus)
    assert max_abs(cosine.multiplier(torus) - flows.GaussianKernel(0.5).multiplier(torus)) == 0
    sphere, fine = flows.Sphere(2, 16), flows.Sphere(2, 100)
    chordal = flows.CosineNTK(0.4, sphere)
    ones = chordal.apply(fine, jnp.ones(fine.weights.shape), sphere.nodes)
    assert max_abs(ones - 1) < 1e-12
    field = sphere.random_field(jax.random.key(2), sphere.band_limit, (2,))
    exact = chordal.apply(fine, _at(field, fine.nodes), sphere.nodes)
    assert max_abs(chordal.smooth(sphere, _at(field, sphere.nodes)) - exact) < 1e-12


@pytest.mark.slow  # the network's own NTK convergence runs by default (test_networks.py)
def test_cosine_ntk_finite_width_converges_like_inverse_square_root():
    # fluctuations O(N^{-1/2}): a 64x wider network is about 8x closer (seeded; > 3x asserted)
    for m, sigma in ((flows.Torus(2, 16), 0.5), (flows.Sphere(2, 16), 0.4)):
        values = jax.vmap(m.random_field(jax.random.key(0), m.band_limit, (2,)))(m.nodes)
        limit = flows.CosineNTK(sigma, m).smooth(m, values)
        errors = []
        for width in (4_000, 256_000):
            finite = flows.CosineNTK(sigma, m, width=width, key=jax.random.key(1))
            errors.append(max_abs(finite.apply(m, values) - limit) / max_abs(limit))
        assert errors[1] < errors[0] / 3, errors
        assert errors[1] < 0.03


def test_cosine_ntk_errors():
    torus = flows.Torus(2, 8)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        flows.CosineNTK(0.0, torus)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        flows.CosineNTK(0.3, torus, width=10)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        flows.CosineNTK(0.3, torus, width=0, key=jax.random.key(0))


def test_kernel_application_on_ten_thousand_nodes_is_chunked():
    # 10,011 nodes with 3 x 3 components: the compiled quadrature application's scratch memory
    # is O(chunk x N): it halves with the chunk (measured 103 MB at chunk 256, a few chunk x N
    # arrays), far below one N x N array (800 MB), let alone N x N x 9 (7.2 GB)
    sphere = flows.Sphere(2, 140)
    n = sphere.weights.shape[0]
    assert n >= 10_000
    values = jnp.ones((n, 3, 3))
    kernel = flows.GaussianKernel(0.3)

    def scratch(chunk):
        fn = jax.jit(lambda v: kernel.apply(sphere, v, chunk=chunk))
        return fn.lower(values).compile().memory_analysis().temp_size_in_bytes

    large, small = scratch(256), scratch(128)
    assert large < n * n * 8 / 4, large
    assert small < 0.6 * large, (small, large)
