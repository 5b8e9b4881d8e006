r"""Points of a hypersurface and their samples: where the Monte Carlo nodes of $X$ come from.

- `sample_points` draws points of $X$ from random lines (Shiffman–Zelditch); they
  are distributed by the pulled-back Fubini–Study volume form $\det g_\mathrm{FS}$.
- `point_sample` turns points of $X$ into a `PointSample`: each point's patch,
  eliminated coordinate, $\Omega$, $g_\mathrm{FS}$, Jacobian (`patch_geometry`) and
  its weight $w = |\Omega|^2/\det g_\mathrm{FS}$, normalised to mean 1, so that
  $\frac1N\sum_a w_a f(z_a)$ estimates $\int_X f\, d\mathrm{Vol}_\Omega/\mathrm{Vol}_\Omega$
  ($d\mathrm{Vol}_\Omega = \Omega\wedge\bar\Omega$ on a Calabi–Yau, $d = n + 1$;
  $|z|^{2(d-n-1)}\,\Omega\wedge\bar\Omega$ otherwise, `PointSample`).
- `subsample` and `chart_sample` keep some of a sample's points (weights
  renormalised); `perturb_points` and `sample_near` give test points of $X$ near
  training points, in their chart (as in Halverson and Ruehle, *Metric Flows with
  Neural Networks*, §3, "the paper" below).

Conventions: `hypersurface.py` (docs/conventions.md, Calabi–Yau hypersurfaces).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int, PRNGKeyArray

from .._misc import check_count, check_key, check_memory, is_traced, real_scalar
from .hypersurface import OFF_SURFACE_TOLERANCE as OFF_SURFACE_TOLERANCE
from .hypersurface import Hypersurface, _geometry

# Newton steps polishing each root of the line polynomial.
_NEWTON_STEPS = 3


# Points.


@eqx.filter_jit
def _line_polynomials(hypersurface: Hypersurface, gaussians):
    """Orthonormal a, b (lines, n + 1) from complex Gaussians, and the coefficients of p(a + t b)."""
    d = hypersurface.degree
    dtype = hypersurface.coefficients.dtype
    a, b = gaussians.astype(dtype)
    a = a / jnp.linalg.norm(a, axis=-1, keepdims=True).astype(dtype)
    b = b - jnp.sum(jnp.conj(a) * b, axis=-1, keepdims=True) * a
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True).astype(dtype)
    # p(a + t b) has degree d in t: its coefficients from d + 1 values on the unit circle
    nodes = jnp.asarray(np.exp(2j * np.pi * np.arange(d + 1) / (d + 1)), dtype=dtype)
    values = hypersurface.polynomial(a[:, None, :] + nodes[None, :, None] * b[:, None, :])
    return a, b, jnp.fft.fft(values, axis=-1) / (d + 1)  # [:, k]: coefficient of t^k


def _companion_roots(coeffs: np.ndarray) -> np.ndarray:
    """The roots of each row's polynomial sum_k coeffs[k] t^k, as companion-matrix eigenvalues."""
    d = coeffs.shape[1] - 1
    with np.errstate(all="ignore"):  # a degenerate line gives non-finite roots, rejected later
        monic = coeffs[:, :d] / coeffs[:, d:]
        if d == 1:
            return -monic
        companion = np.zeros((coeffs.shape[0], d, d), dtype=coeffs.dtype)
        companion[:, 0, :] = -monic[:, ::-1]
        companion[:, np.arange(1, d), np.arange(d - 1)] = 1.0
        return np.linalg.eigvals(companion)


@eqx.filter_jit
def _line_points(hypersurface: Hypersurface, a, b, t, count: int):
    """Newton-polished roots, as points scaled to their patch."""
    a, b = a[:, None, :], b[:, None, :]

    def f_and_df(t):
        z = a + t[..., None] * b
        return hypersurface.polynomial(z), jnp.sum(hypersurface.gradient(z) * b, axis=-1)

    # Newton on f(t) = p(a + t b); a step is kept only where it lowers |f|
    def newton(_, state):
        t, f, df = state
        ok = jnp.isfinite(df) & (df != 0)
        t_new = t - jnp.where(ok, f / jnp.where(ok, df, 1), 0)
        f_new, df_new = f_and_df(t_new)
        better = jnp.isfinite(f_new) & (jnp.abs(f_new) < jnp.abs(f))
        return (
            jnp.where(better, t_new, t),
            jnp.where(better, f_new, f),
            jnp.where(better, df_new, df),
        )

    t, _, _ = jax.lax.fori_loop(0, _NEWTON_STEPS, newton, (t, *f_and_df(t)))
    z = (a + t[..., None] * b).reshape(-1, a.shape[-1])[:count]
    patch = jnp.argmax(jnp.abs(z), axis=-1)
    return z / jnp.take_along_axis(z, patch[:, None], axis=-1)


def sample_points(
    hypersurface: Hypersurface, key: PRNGKeyArray, count: int
) -> Complex[Array, "count n1"]:
    r"""`count` seeded points of $X$, distributed by the Fubini–Study volume form.

    Shiffman–Zelditch: a line $\{a + t b\}$ through independent complex
    Gaussian $a, b \in \mathbb{C}^{n+1}$ (orthonormalised; the line is then
    uniformly distributed, $U(n+1)$-invariant) meets $X$ in $d$ points, the
    roots of the degree-$d$ polynomial $t \mapsto p(a + t b)$ (its
    coefficients from a discrete Fourier transform of $d + 1$ values; roots
    as companion-matrix eigenvalues in NumPy, then Newton-polished in JAX).
    By Crofton's formula the union of the roots is distributed by the
    pulled-back $\det g_\mathrm{FS}$ (Shiffman & Zelditch, *Distribution of
    zeros of random and quantum chaotic sections of positive line bundles*,
    CMP 200 (1999); Douglas, Karp, Lukic and Reinbacher, *Numerical
    Calabi–Yau metrics*, J. Math. Phys. 49 (2008) 032302, §3).

    Points are returned line by line, the roots of each line in a random
    order (so truncating the last line to `count` keeps every point's law);
    the $d$ points of one line are correlated, which `sigma_measure`'s
    standard error allows for. Each point is scaled so that its coordinate of
    largest modulus is 1. Not jittable (the roots are found in NumPy).

    **Arguments:**

    - `hypersurface`: the `Hypersurface`.
    - `key`: a JAX PRNG key, `jax.random.key(seed)` or a raw uint32 (2,) key (its bits
      seed the NumPy generator that draws the lines); anything else raises `ValueError`.
    - `count`: the number of points, an integer >= 1.

    **Returns:** complex array (count, n + 1).
    """
    check_key(key, "sample_points")
    count = check_count(count, "sample_points: count must be an integer >= 1", minimum=1)
    # measured peak: about 9 copies of the (count, n + 1) complex result (720 bytes a point
    # on the quintic, from 10^5 to 10^6 points)
    check_memory(
        9 * 16.0 * count * hypersurface.ambient_dim,
        f"sample_points: {count} points of a hypersurface in CP^{hypersurface.ambient_dim - 1}",
        "Sample fewer points at a time.",
    )
    lines = -(-count // hypersurface.degree)
    # NumPy draws the lines (seeded by the key's bits): no PRNG to compile for each shape
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng(np.asarray(data).ravel().tolist())
    gaussians = rng.standard_normal((2, lines, hypersurface.ambient_dim, 2)) @ np.array([1, 1j])
    a, b, coeffs = _line_polynomials(hypersurface, gaussians)
    roots = _companion_roots(np.asarray(coeffs))
    roots = np.take_along_axis(roots, np.argsort(rng.random(roots.shape), axis=-1), axis=-1)
    return _line_points(hypersurface, a, b, jnp.asarray(roots, dtype=coeffs.dtype), count)


# Samples.


class PointSample(eqx.Module):
    r"""Accepted points of $X$ with their patches, $\Omega$, $g_\mathrm{FS}$ and weights.

    Built by `point_sample`. The weights are $w = |\Omega|^2/\det g_\mathrm{FS}$
    normalised to mean 1 over the accepted points, so that for points
    distributed by $\det g_\mathrm{FS}$, $\frac1N \sum_a w_a f(z_a) \to
    \int_X f\, d\mathrm{Vol}_\Omega / \mathrm{Vol}_\Omega$, $d\mathrm{Vol}_\Omega =
    |\Omega|^2 d^{2m}w$ in local coordinates $w$ ($m = n - 1$). On a Calabi–Yau
    ($d = n + 1$) that is $\Omega\wedge\bar\Omega$, $\Omega = 1/(\partial p/\partial
    z_\mathrm{elim})$; for other degrees `omega` carries the factor $|z|^{d-n-1}$ ($z$
    scaled to its patch; `hypersurface.py`), so that the measure,
    $|z|^{2(d-n-1)}\Omega\wedge\bar\Omega$, is the same in every patch. The
    normalisation constant is kept: `volume_ratio` $= \frac1N\sum_a
    |\Omega_a|^2/\det g_{\mathrm{FS},a}$ estimates $\int_X |\Omega|^2 / \int_X \det
    g_\mathrm{FS}$ (densities in the local coordinates; $\int_X \det g_\mathrm{FS} =
    d\,\pi^{m}/m!$); on the Fermat hypersurfaces with $d = n + 1$ it is
    $m!\,\gamma(1/d)^d/d^d$, $\gamma(x) = \Gamma(x)/\Gamma(1 - x)$.

    **Fields:**

    - `points`: (N, n + 1) complex, scaled so that the patch coordinate is 1.
    - `patch`, `eliminated`: (N,) integer indices.
    - `omega`: (N,) complex, $\Omega = 1/(\partial p/\partial z_\mathrm{elim})$
      (times $|z|^{d-n-1}$ for $d \ne n + 1$).
    - `weights`: (N,) real, finite and > 0 (checked when concrete), mean 1.
    - `g_fs`: (N, n - 1, n - 1) complex Hermitian positive definite, the
      pulled-back Fubini–Study metric in the local coordinates.
    - `jacobian`: (N, n + 1, n - 1) complex, the embedding Jacobian $J$
      (pull back any ambient $G_{a\bar b}$ as $J^\top G \bar J$).
    - `volume_ratio`: scalar, the mean raw weight.
    - `rejected`: how many input points were dropped (numerically singular patch).
    """

    points: Complex[Array, "N n1"]
    patch: Int[Array, " N"]
    eliminated: Int[Array, " N"]
    omega: Complex[Array, " N"]
    weights: Float[Array, " N"]
    g_fs: Complex[Array, "N m m"]
    jacobian: Complex[Array, "N n1 m"]
    volume_ratio: Float[Array, ""]
    rejected: int

    def __check_init__(self):
        n_points, size = self.points.shape
        if n_points == 0:
            raise ValueError("PointSample: the point set is empty; a sample needs N >= 1 points.")
        expected = {
            "patch": (n_points,),
            "eliminated": (n_points,),
            "omega": (n_points,),
            "weights": (n_points,),
            "g_fs": (n_points, size - 2, size - 2),
            "jacobian": (n_points, size, size - 2),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"PointSample: {name} must have shape {shape}, got {getattr(self, name).shape}."
                )
        if not is_traced(self.weights):  # under jit the values are not known
            w = np.asarray(self.weights)
            bad = np.flatnonzero(~(np.isfinite(w) & (w > 0)))
            if bad.size:
                raise ValueError(
                    f"PointSample: weights must be finite and > 0 (|Omega|^2 / det g_FS, "
                    f"normalised), got {w[bad[0]]} at point {bad[0]} ({bad.size} such)."
                )

    @property
    def count(self) -> int:
        """N, the number of accepted points."""
        return self.points.shape[0]


def point_sample(
    hypersurface: Hypersurface,
    points: Complex[Array, "M n1"],
    patch: Int[Array, " M"] | None = None,
    eliminate: Int[Array, " M"] | None = None,
) -> PointSample:
    r"""The `PointSample` of `points` on $X$: `patch_geometry` (jitted), rejected points dropped.

    Points whose patch choice fails numerically (see `patch_geometry`) are
    dropped and counted in `rejected`; no weight is ever NaN. Raises
    `ValueError` if `points` is empty, if a point is zero or not finite (naming
    the first), if a point is off $X$ (relative residual $|p(z)| / (\sum_m
    |c_m|\, |z|^d) >$ `OFF_SURFACE_TOLERANCE` $= 10^{-5}$, $|z|$ the Euclidean
    norm; sampled points, float32 ones included, are below $10^{-7}$), or if no
    point is accepted. `patch`/`eliminate` override the default choices as in
    `patch_geometry` (-1 or an index in $[0, n]$; anything else raises). The
    weights are those of `PointSample` (its docstring gives the measure). Not
    jittable (the number of accepted points is data-dependent).
    """
    outputs = _geometry(hypersurface, points, patch, eliminate, "point_sample")
    z, i, j, omega, g, jac, raw, ok = (np.asarray(x) for x in outputs)
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        raise ValueError(
            f"point_sample: all {ok.shape[0]} points were rejected (numerically singular "
            "patches); are they points of a smooth part of the hypersurface?"
        )
    raw = raw[keep]
    mean = raw.mean()
    return PointSample(
        points=jnp.asarray(z[keep]),
        patch=jnp.asarray(i[keep]),
        eliminated=jnp.asarray(j[keep]),
        omega=jnp.asarray(omega[keep]),
        weights=jnp.asarray(raw / mean),
        g_fs=jnp.asarray(g[keep]),
        jacobian=jnp.asarray(jac[keep]),
        volume_ratio=jnp.asarray(mean),
        rejected=int(ok.shape[0] - keep.size),
    )


# Sub-samples and test points.


def chart_sample(
    sample: PointSample, patch: int | None = None, eliminated: int | None = None
) -> PointSample:
    r"""The points of `sample` whose chart (patch, eliminated coordinate) is the given one.

    `patch`, `eliminated`: both integers in $[0, n]$, patch $\ne$ eliminated, or
    both None (the default: the most common chart); anything else raises
    `ValueError`. Weights are renormalised to mean 1 over the
    points kept (`volume_ratio` becomes their mean raw weight), so the σ
    measure of the result estimates σ over the chart's region of $X$; on the
    Fermat and Dwork quintics the regions are permuted by symmetries, so it
    estimates σ of $X$ for symmetric metrics (Fubini–Study).
    """
    size = sample.points.shape[1]
    patches, eliminateds = np.asarray(sample.patch), np.asarray(sample.eliminated)
    if (patch is None) != (eliminated is None):
        raise ValueError(
            "chart_sample: give both patch and eliminated, or neither (the most common chart), "
            f"got patch={patch!r}, eliminated={eliminated!r}."
        )
    if patch is None:
        pairs, counts = np.unique(
            np.stack([patches, eliminateds], axis=1), axis=0, return_counts=True
        )
        patch, eliminated = (int(x) for x in pairs[np.argmax(counts)])
    else:
        message = f"chart_sample: patch and eliminated must be integers in [0, {size - 1}]"
        patch = check_count(patch, message, minimum=0, allowed=range(size))
        eliminated = check_count(eliminated, message, minimum=0, allowed=range(size))
        if patch == eliminated:
            raise ValueError(
                f"chart_sample: patch and eliminated must differ, both are {patch} (the patch "
                "coordinate is 1, it cannot be eliminated)."
            )
    keep = np.flatnonzero((patches == patch) & (eliminateds == eliminated))
    if keep.size == 0:
        raise ValueError(
            f"chart_sample: no point of the sample lies in chart {(patch, eliminated)}."
        )
    return subsample(sample, keep)


def subsample(sample: PointSample, index) -> PointSample:
    """The points `index` of `sample`, weights renormalised to mean 1 (`volume_ratio` their mean raw weight).

    `index`: a boolean mask of shape (N,), or a 1-D array of integer indices
    0 <= i < N (repeats allowed); anything else, or selecting no point,
    raises `ValueError`.
    """
    count = sample.count
    index = np.asarray(index)
    if index.size == 0:
        raise ValueError("subsample: the index selects no point (an empty point set).")
    if index.dtype == np.bool_:
        if index.shape != (count,):
            raise ValueError(
                f"subsample: a boolean mask must have shape ({count},), one entry per point, "
                f"got shape {index.shape}."
            )
        index = np.flatnonzero(index)
    elif index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(
            f"subsample: index must be a 1-D array of integers or a boolean mask, got dtype "
            f"{index.dtype}, shape {index.shape}."
        )
    elif np.any((index < 0) | (index >= count)):
        bad = index[np.flatnonzero((index < 0) | (index >= count))[0]]
        raise ValueError(
            f"subsample: indices must be in [0, {count - 1}] (no negative indices), got {bad}."
        )
    if index.size == 0:
        raise ValueError("subsample: the index selects no point (an empty point set).")
    weights = np.asarray(sample.weights)[index]
    mean = weights.mean()
    return PointSample(
        points=sample.points[index],
        patch=sample.patch[index],
        eliminated=sample.eliminated[index],
        omega=sample.omega[index],
        weights=jnp.asarray(weights / mean),
        g_fs=sample.g_fs[index],
        jacobian=sample.jacobian[index],
        volume_ratio=sample.volume_ratio * mean,
        rejected=sample.rejected,
    )


def perturb_points(
    hypersurface: Hypersurface,
    points: Complex[Array, "N n1"],
    key: PRNGKeyArray,
    scale: float,
    *,
    newton_steps: int = 20,
) -> Complex[Array, "N n1"]:
    r"""Points of $X$ near `points`: a complex Gaussian kick of size `scale`, projected back onto $X$.

    $z \to z + \text{scale}\,|z|\,\xi/\sqrt{n+1}$, $\xi$ standard complex
    Gaussian in $\mathbb{C}^{n+1}$, then Newton steps along the normal,
    $z \to z - p(z)\,\overline{\nabla p}/|\nabla p|^2$. The paper adds the noise
    and leaves the points off $X$; projecting keeps $\Omega$ and the weights
    meaningful. Raises if a point does not return to $|p(z)|/|z|^d < 10^{-10}$.

    `scale`: a finite real number >= 0 (not a bool); `newton_steps`: an integer >= 0.
    """
    points = jnp.asarray(points)
    check_key(key, "perturb_points")
    value = real_scalar(scale)
    if value is None or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"perturb_points: scale must be a finite real number >= 0, got {scale!r}.")
    scale = value
    newton_steps = check_count(
        newton_steps, "perturb_points: newton_steps must be an integer >= 0", minimum=0
    )
    n1 = hypersurface.ambient_dim
    if points.ndim != 2 or points.shape[1] != n1:
        raise ValueError(f"perturb_points: points must have shape (N, {n1}), got {points.shape}.")
    if points.shape[0] == 0:
        raise ValueError("perturb_points: the point set is empty (shape (0, n + 1)).")
    xi = jax.random.normal(key, points.shape + (2,), dtype=jnp.real(points).dtype)
    xi = jax.lax.complex(xi[..., 0], xi[..., 1]) / math.sqrt(2 * n1)
    z = points + (scale * jnp.linalg.norm(points, axis=1, keepdims=True)).astype(xi.dtype) * xi
    z = _project(hypersurface, z, newton_steps)
    residual = (
        jnp.abs(hypersurface.polynomial(z)) / jnp.linalg.norm(z, axis=1) ** hypersurface.degree
    )
    if not bool(jnp.all(residual < 1e-10)):
        raise ValueError(
            f"perturb_points: {int(jnp.sum(~(residual < 1e-10)))} points did not return to X "
            f"(largest |p(z)|/|z|^d = {float(jnp.max(residual)):.2e}); use a smaller scale."
        )
    return z


@eqx.filter_jit
def _project(hypersurface, z, steps):
    def step(_, z):
        grad = hypersurface.gradient(z)
        p = hypersurface.polynomial(z)
        norm2 = jnp.sum(jnp.abs(grad) ** 2, axis=1).astype(p.dtype)
        return z - (p / norm2)[:, None] * jnp.conj(grad)

    return jax.lax.fori_loop(0, steps, step, z)


def sample_near(
    hypersurface: Hypersurface,
    train: PointSample,
    key: PRNGKeyArray,
    scale: float,
) -> PointSample:
    r"""Test points near the training points, in the training sample's chart (`perturb_points`).

    Each training point is kicked by `scale` and projected back onto $X$; the
    result is sampled in the chart of the training points (override of the
    default chart; points where that chart fails numerically are rejected and
    counted). Weights are normalised to mean 1 over the test points.
    """
    z = perturb_points(hypersurface, train.points, key, scale)
    return point_sample(hypersurface, z, train.patch, train.eliminated)
