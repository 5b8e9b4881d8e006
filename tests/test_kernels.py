"""Kernels: normalisation, Fourier multipliers on tori, Funk–Hecke eigenvalues on spheres, chunking."""

import math
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special

import flows

# white-box: the cached Funk-Hecke table, its read-only flag and its quadrature's warnings
from flows._kernels.gaussian import funk_hecke

from .helpers import max_abs

DOCS = Path(__file__).resolve().parents[1] / "docs"
TINY, HUGE = np.finfo(np.float64).tiny, np.finfo(np.float64).max


@eqx.filter_jit
def _smooth(kernel, manifold, values):
    """`kernel.smooth` as one compiled program."""
    return kernel.smooth(manifold, values)


# sigma = 0.5 runs with -m slow: the same quadrature (images of the periodised Gaussian)
# against its multiplier; by default sigma = 0.1 (where aliasing is largest) and
# test_fast_kernel_paths_match_quadrature[T2] (sigma = 0.4, quadrature against the FFT
# multiplier exp(-sigma^2 |k|^2 / 2) on a band-limited field) check the same property
@pytest.mark.parametrize("sigma", [0.1, pytest.param(0.5, marks=pytest.mark.slow)])
def test_torus_gaussian_fourier_multiplier(sigma):
    # The periodised Gaussian multiplies e^{ik.x} by exp(-sigma^2 |k|^2 / 2). On the n-point grid
    # (Poisson summation) the wavevector also picks up the multiplier of its aliases k +- n e_1,
    # exp(-sigma^2 (n - k)^2 / 2) each: 2e-9 for sigma = 0.1, n = 64, below 1e-30 for sigma >= 0.3.
    # Both wavevectors (k_1 = 1 and 4) as the trailing axis of one field: one quadrature pass
    # over the 64^2 x 64^2 kernel values per width, where a pass per wavevector cost as much.
    torus = flows.Torus(2, 64)
    kernel = flows.GaussianKernel(sigma)
    ks = (1, 4)
    field = jnp.stack([jnp.cos(k * torus.nodes[:, 0] + 2 * torus.nodes[:, 1]) for k in ks], -1)
    smoothed = kernel.apply(torus, field)
    for i, k in enumerate(ks):
        expected = math.exp(-(sigma**2) * (k**2 + 4) / 2) * field[:, i]
        aliasing = 4 * math.exp(-(sigma**2) * (64 - k) ** 2 / 2)
        assert max_abs(smoothed[:, i] - expected) < 1e-12 + aliasing, k


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
    smoothed = kernel.apply(sphere, flows.evaluate_at(harmonic, sphere.nodes), pts)
    assert max_abs(smoothed - lam * flows.evaluate_at(harmonic, pts)) < 1e-10


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
    values = flows.evaluate_at(field, m.nodes)
    values = values + jnp.swapaxes(values, -1, -2)
    fast, slow = (_smooth(kernel, m, values) for kernel in (gaussian, quadrature))
    assert max_abs(fast - slow) < 1e-10 * max_abs(slow)
    metric = flows.random_metric(m, getkey(), band_limit=2, amplitude=0.2)
    rhs = {
        name: flows.perelman_flow(m, kernel).evaluate(metric.values)
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
    exact = chordal.apply(fine, flows.evaluate_at(field, fine.nodes), sphere.nodes)
    assert max_abs(chordal.smooth(sphere, flows.evaluate_at(field, sphere.nodes)) - exact) < 1e-12


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


def test_spectral_gaussian_is_bound_to_its_manifold():
    # its sphere table belongs to the construction manifold's dimension and band limit: used
    # elsewhere, JAX clamped out-of-range degrees (S^2 degree 8 on degree 16: off by 0.09), a
    # torus-built one was the local kernel on S^2, and S^2's table served S^3
    t2, s2, s2_fine = flows.Torus(2, 8), flows.Sphere(2, 8), flows.Sphere(2, 16)
    s3 = flows.Sphere(3, 4, fast=False)
    mismatched = [
        (t2, s2, "a torus of dimension 2"),
        (s2, s2_fine, "a sphere of dimension 2, band limit 4"),
        (s2, s3, "a sphere of dimension 2"),
        (s2, flows.Torus(1, 8), "a sphere of dimension 2"),
        (t2, flows.Torus(1, 8), "a torus of dimension 2"),
    ]
    for built_on, used_on, what in mismatched:
        kernel = flows.SpectralGaussian(built_on, 0.5)
        with pytest.raises(ValueError, match=f"SpectralGaussian.multiplier: .*built for {what}"):
            kernel.multiplier(used_on)
    # a sphere of lower band limit reads the same table exactly; another torus grid is fine
    coarse = flows.SpectralGaussian(s2_fine, 0.5).multiplier(s2)
    assert max_abs(coarse - flows.GaussianKernel(0.5).multiplier(s2)) < 1e-15
    other_grid = flows.Torus(2, 12)
    ours = flows.SpectralGaussian(t2, 0.5).multiplier(other_grid)
    assert max_abs(ours - flows.GaussianKernel(0.5).multiplier(other_grid)) < 1e-15


def test_spectral_gaussian_checks_its_width():
    # as GaussianKernel does: a bool is not a width (True was sigma = 1), a string gave a raw
    # TypeError, no manifold a raw AttributeError, 1e-300 on S^2 a raw ZeroDivisionError
    t2, s2 = flows.Torus(2, 8), flows.Sphere(2, 8)
    for bad in (True, "0.3", -0.1, float("nan"), float("inf"), None):
        with pytest.raises(
            ValueError, match="SpectralGaussian: sigma must be a finite number >= 0"
        ):
            flows.SpectralGaussian(t2, bad)
    with pytest.raises(ValueError, match="SpectralGaussian: needs a torus or a sphere, got None"):
        flows.SpectralGaussian(None, 0.3)
    for m, sigma, what in ((s2, 1e-300, "overflow"), (t2, 1e300, "vanish")):
        with pytest.raises(ValueError, match=f"SpectralGaussian: sigma = .*normal range.*{what}"):
            flows.SpectralGaussian(m, sigma)
    half = flows.SpectralGaussian(s2, np.float32(0.5)).multiplier(s2)
    assert max_abs(half - flows.GaussianKernel(float(np.float32(0.5))).multiplier(s2)) < 1e-15
    # T^1 accepts sigma = 1e200 (Z_sigma ~ 2.5e200): sigma^2 overflows, the mean's multiplier
    wide = flows.SpectralGaussian(flows.Torus(1, 16), 1e200).multiplier(flows.Torus(1, 16))
    assert float(wide[0]) == 1 and max_abs(wide[1:]) == 0
    # funk_hecke's normalising integral underflows to 0 below sigma ~ 1e-160 on S^2
    with pytest.raises(ValueError, match="funk_hecke: .*underflows to 0.*got sigma = 1e-170"):
        flows.GaussianKernel(1e-170).degree_multipliers(2, 4)


def _smallest(table):
    """The smallest entry of a Funk-Hecke table as the docs write it (-1.1e-2), and its degree."""
    ell = int(np.argmin(table))
    mantissa, exponent = f"{table[ell]:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}", ell


def test_geodesic_gaussian_is_not_positive_semi_definite_on_spheres():
    # The geodesic Gaussian's Funk-Hecke eigenvalues turn negative on spheres (the kink of d^2
    # at the antipode). GaussianKernel's docstring and docs/kernels.md quote the smallest;
    # they are measured here, so the quotes cannot drift.
    doc, page = flows.GaussianKernel.__doc__, (DOCS / "kernels.md").read_text()
    for sigma, degree in ((1.0, 6), (2.0, 2)):
        value, ell = _smallest(flows.GaussianKernel(sigma).degree_multipliers(2, 16))
        assert ell == degree and value.startswith("-"), (sigma, value, ell)
        assert f"{value} ({degree})" in doc and f"{value} ({degree})" in page, value
    # degree 2 at sigma = 2 against an independent quadrature (over [0, pi], Legendre): -0.0111
    s2 = flows.Sphere(2, 8)
    kernel = flows.GaussianKernel(2.0)
    with warnings.catch_warnings():  # quad reports roundoff at epsrel 1e-13; it agrees to 1e-13
        warnings.simplefilter("ignore", scipy.integrate.IntegrationWarning)
        lam = _funk_hecke(2, 2.0, kernel.normaliser(s2))
    assert -0.012 < lam < -0.010
    assert abs(kernel.degree_multipliers(2, 2)[2] - lam) < 1e-13
    # positive: the geodesic Gaussian at sigma = 0.3 (its kink, e^{-pi^2 / 2 sigma^2} = 2e-24,
    # is far below roundoff), the periodised Gaussian on a torus, the chordal one on spheres
    assert np.all(flows.GaussianKernel(0.3).degree_multipliers(2, 16) > 0)
    t2 = flows.Torus(2, 16)
    assert float(jnp.min(flows.GaussianKernel(2.0).multiplier(t2))) > 0
    assert float(jnp.min(flows.CosineNTK(2.0, s2).multiplier(s2))) > -1e-15


def _tiny_sphere_width(margin):
    # sigma with Z_sigma = 2 pi sigma^2 (1 - O(sigma^2)) = margin^2 x the smallest normal number
    return math.sqrt(TINY / (2 * math.pi)) * margin


def test_gaussian_values_at_the_extreme_widths_float64_accepts():
    # Every width check_width accepts gives finite values: sigma^2 underflowed to 0 (XLA flushes
    # subnormals) and the image sum gave 0 / 0 = NaN on T^1 below sigma ~ 1e-154 and on T^2 at
    # its lower edge, and at T^1's ends 9 / sigma or 9 sigma overflowed (a raw OverflowError
    # choosing between images and Fourier series). At the smallest widths k(x, x) = 1 / Z_sigma (exactly, to the log-space
    # rounding eps |log Z| ~ 2e-13) and k(x, y) = 0 for y != x; at the largest, the mean.
    t1, t2, s2 = flows.Torus(1, 16), flows.Torus(2, 8), flows.Sphere(2, 8)
    narrow = [
        (t1, TINY, math.sqrt(2 * math.pi) * TINY),  # T^1 down to the smallest normal sigma
        (t1, 1e-160, math.sqrt(2 * math.pi) * 1e-160),
        (t2, _tiny_sphere_width(1.0001), 2 * math.pi * _tiny_sphere_width(1.0001) ** 2),
        (s2, _tiny_sphere_width(1.0001), 2 * math.pi * _tiny_sphere_width(1.0001) ** 2),
    ]
    for m, sigma, z in narrow:
        kernel = flows.GaussianKernel(sigma)
        x, y = m.nodes[0], m.nodes[5]
        assert abs(float(kernel(m, x, x)) * z - 1) < 1e-12, (m, sigma)
        assert float(kernel(m, x, y)) == 0, (m, sigma)
    wide = [
        (t1, 0.9999 * HUGE / math.sqrt(2 * math.pi), 2 * math.pi),
        (t2, 0.9999 * math.sqrt(HUGE / (2 * math.pi)), (2 * math.pi) ** 2),
        (s2, HUGE, 4 * math.pi),
    ]
    for m, sigma, volume in wide:
        kernel = flows.GaussianKernel(sigma)
        for y in (m.nodes[0], m.nodes[5]):
            assert abs(float(kernel(m, m.nodes[0], y)) * volume - 1) < 1e-12, (m, sigma)
    # just beyond: refused by name
    beyond = [
        (t1, TINY / 2, "must be a normal float64 number"),  # Z is normal, sigma is not
        (t2, _tiny_sphere_width(0.9999), "outside float64's normal range.*overflow"),
        (s2, _tiny_sphere_width(0.9999), "outside float64's normal range.*overflow"),
        (t2, 1.0001 * math.sqrt(HUGE / (2 * math.pi)), "outside float64's normal range.*vanish"),
    ]
    for m, sigma, what in beyond:
        with pytest.raises(ValueError, match=f"GaussianKernel: .*{what}"):
            flows.GaussianKernel(sigma)(m, m.nodes[0], m.nodes[0])


def test_gaussian_values_in_float32():
    # check_width tested float64's range whatever the dtype: at sigma = 1e-20 the weakly typed
    # 2 sigma^2 and Z_sigma flushed to 0 in float32 (NaN on T^1, T^2 and S^2, inf at x = y on
    # S^2). Now T^1 (Z = 2.5e-20) gives its exact 4e19, and T^2 and S^2 (Z = 6e-40) are refused.
    with jax.enable_x64(False):
        t1, t2, s2 = flows.Torus(1, 16), flows.Torus(2, 8), flows.Sphere(2, 8, fast=False)
        assert t1.nodes.dtype == jnp.float32
        narrow = flows.GaussianKernel(1e-20)
        x = t1.nodes[0]
        at_x = narrow(t1, x, x)
        assert at_x.dtype == jnp.float32
        assert abs(float(at_x) * math.sqrt(2 * math.pi) * 1e-20 - 1) < 1e-5
        assert float(narrow(t1, x, t1.nodes[3])) == 0
        for m in (t2, s2):
            with pytest.raises(ValueError, match="outside float32's normal range.*overflow"):
                narrow(m, m.nodes[0], m.nodes[5])
        # S^2 at 1e-19 (Z = 6e-38, inside float32's range): 1 / Z at x = y, 0 elsewhere
        edge = flows.GaussianKernel(1e-19)
        assert abs(float(edge(s2, s2.nodes[0], s2.nodes[0])) * 2 * math.pi * 1e-38 - 1) < 1e-5
        assert float(edge(s2, s2.nodes[0], s2.nodes[5])) == 0


def test_cosine_ntk_on_spheres_at_small_widths():
    # The chordal normaliser has the closed form Z = 2 pi sigma^2 (1 - e^{-2 / sigma^2}) on S^2.
    # Integrated over [0, pi], quad missed the peak below sigma ~ 1.8e-4 (a raw
    # ZeroDivisionError), and 1 - cos t cost 1.7e-11 at sigma = 1e-3.
    s2 = flows.Sphere(2, 8)
    for sigma in (0.4, 1e-3, 1e-4, 1e-6, _tiny_sphere_width(1.0001)):
        exact = 2 * math.pi * sigma**2 * -math.expm1(-2 / sigma**2)
        kernel = flows.CosineNTK(sigma, s2)
        assert abs(kernel.scale * exact - 1) < 1e-13, sigma
        # the quotient first: 2 sigma^2 underflowed at the smallest width (0 / 0 at x = y)
        x = s2.nodes[0]
        assert abs(float(kernel(s2, x, x)) * exact - 1) < 1e-13, sigma
    with pytest.raises(ValueError, match="CosineNTK: sigma = .* outside float64's normal range"):
        flows.CosineNTK(_tiny_sphere_width(0.9999), s2)
    # the chordal quadratures no longer warn (IntegrationWarning at sigma ~ 1e-4 to 5e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flows.CosineNTK(2.9e-4, s2)
        funk_hecke(2.9e-4, 2, 4, "chordal")


def test_cosine_ntk_checks_its_arguments_and_manifold():
    t2, s2, s3 = flows.Torus(2, 8), flows.Sphere(2, 8), flows.Sphere(3, 4, fast=False)
    # sigma as GaussianKernel takes it: a bool is not a width, a NumPy float32 is one
    with pytest.raises(ValueError, match="CosineNTK: sigma must be a finite number > 0, got True"):
        flows.CosineNTK(True, t2)
    assert flows.CosineNTK(np.float32(0.5), s2).sigma == float(np.float32(0.5))
    # the discrete Gaussian's support is 2 ceil(9 / sigma) + 3 integers per axis (1e-9 asked
    # for 1.8e10): a width below 1.8e-5 is refused by name
    with pytest.raises(ValueError, match=r"CosineNTK: sigma on Torus\(dim=2, n=8\) must be at"):
        flows.CosineNTK(1e-6, t2)
    # the kernel belongs to the kind and dimension it was built for: on S^3 an S^2 kernel
    # integrated to 1.12, a finite-width T^2 kernel on S^2 gave a raw dot_general TypeError
    chordal = flows.CosineNTK(0.5, s2)
    finite = flows.CosineNTK(0.5, t2, width=8, key=jax.random.key(0))
    uses = [
        (chordal, s3, "a sphere of dimension 2"),
        (chordal, t2, "a sphere of dimension 2"),
        (finite, s2, "a torus of dimension 2"),
        (finite, flows.Torus(1, 8), "a torus of dimension 2"),
    ]
    for kernel, m, what in uses:
        values = jnp.ones(m.weights.shape[0])
        for name, use in (
            ("apply", lambda k=kernel, m=m, v=values: k.apply(m, v)),
            ("multiplier", lambda k=kernel, m=m: k.multiplier(m)),
            ("", lambda k=kernel, m=m: k(m, m.nodes[0], m.nodes[1])),
        ):
            with pytest.raises(
                ValueError, match=f"CosineNTK{'.' + name if name else ''}: .*{what}"
            ):
                use()
    # points of the wrong shape (the infinite-width sphere kernel gave 0.637 for two 2-vectors)
    with pytest.raises(ValueError, match=r"points on Sphere\(dim=2, degree=8\) have shape \(3,\)"):
        chordal(s2, jnp.ones(2), jnp.ones(2))
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        finite.apply(t2, jnp.ones(64), chunk=0)


def test_funk_hecke_table_is_read_only():
    # funk_hecke is cached: an in-place edit of the array it returned (which degree_multipliers
    # handed out) reached every later kernel of that width (its multiplier became 0)
    s2 = flows.Sphere(2, 8)
    kernel = flows.GaussianKernel(0.537)
    before = np.asarray(kernel.multiplier(s2))
    table = kernel.degree_multipliers(2, s2.band_limit)
    table *= 0.0  # the caller's own copy
    assert np.array_equal(np.asarray(flows.GaussianKernel(0.537).multiplier(s2)), before)
    cached = funk_hecke(0.537, 2, s2.band_limit)
    assert not cached.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        cached *= 0.0


def test_rescaled_kernel_checks_its_values_and_rescale():
    # values of shape (1,) were broadcast over the 64 nodes, (10,) gave a raw TypeError
    t2 = flows.Torus(2, 8)
    gaussian = flows.GaussianKernel(0.5)
    rescaled = flows.RescaledKernel(gaussian, lambda x: 1 + 0.5 * jnp.cos(x[0]))
    for shape in ((1,), (10,)):
        with pytest.raises(ValueError, match=r"RescaledKernel.apply: .*leading axis 64"):
            rescaled.apply(t2, jnp.ones(shape))
    # rescale as a real scalar: not a bool (True was 1.0), a NumPy float32 is one
    with pytest.raises(ValueError, match="rescale must be callable or a finite number, got True"):
        flows.RescaledKernel(gaussian, True)
    assert flows.RescaledKernel(gaussian, np.float32(2.0)).rescale == 2.0


def test_kernels_refuse_what_is_not_a_manifold():
    # GaussianKernel.multiplier("T2") returned None (the "not diagonal" answer); the other
    # kernels raised raw AttributeErrors
    t2 = flows.Torus(2, 8)
    gaussian = flows.GaussianKernel(0.5)
    kernels = [
        gaussian,
        flows.DeltaKernel(),
        flows.SpectralGaussian(t2, 0.5),
        flows.CosineNTK(0.5, t2),
        flows.RescaledKernel(gaussian, 2.0),
    ]
    for kernel in kernels:
        name = type(kernel).__name__
        for bad in ("T2", None):
            with pytest.raises(ValueError, match=f"{name}.multiplier: manifold must be a manifold"):
                kernel.multiplier(bad)
    x = t2.nodes[0]
    for kernel in (gaussian, kernels[3], kernels[4]):
        with pytest.raises(
            ValueError, match=f"{type(kernel).__name__}: manifold must be a manifold"
        ):
            kernel(None, x, x)
    with pytest.raises(ValueError, match="DeltaKernel.apply: chunk must be an integer >= 1"):
        flows.DeltaKernel().apply(t2, jnp.ones(64), chunk=0)
