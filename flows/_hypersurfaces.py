r"""Calabi–Yau hypersurfaces $X = \{p = 0\} \subset \mathbb{CP}^n$: points, patches, weights, σ.

Conventions (`shared/DESIGN.md` §4; fixed, tests rely on them):

- A point is a vector $z \in \mathbb{C}^{n+1}$ of homogeneous coordinates.
  Its *patch* is the coordinate of largest modulus, scaled to 1.
- The *eliminated* coordinate is the one (other than the patch) with the
  largest $|\partial p/\partial z_j|$; it is a function of the remaining
  $n - 1$ *local coordinates* by the implicit function theorem,
  $\partial z_\mathrm{elim}/\partial z_j = -(\partial p/\partial z_j)/(\partial p/\partial z_\mathrm{elim})$.
  The Jacobian $J$ ($(n+1) \times (n-1)$) of the embedding local coordinates
  $\to \mathbb{C}^{n+1}$ has the identity on the local rows, zeros on the
  patch row and that quotient on the eliminated row.
- $\Omega = 1/(\partial p/\partial z_\mathrm{elim})$ in that patch (the
  Poincaré residue; patch-independent when $d = n + 1$).
- Fubini–Study: $g^\mathrm{amb}_{a\bar b} = \partial_a\partial_{\bar b}\log|z|^2
  = (\delta_{ab}|z|^2 - \bar z_a z_b)/|z|^4$, pulled back as
  $g_{i\bar j} = (J^\top g^\mathrm{amb} \bar J)_{ij}$, so that a holomorphic
  tangent vector $v$ has $|v|^2 = v^\top g\, \bar v$. "$\det g$" is the
  density of $g^{n-1}$ against Lebesgue measure in the local coordinates.
- Points come from intersecting random lines with $X$ (Shiffman–Zelditch);
  they are distributed by the pulled-back Fubini–Study volume form $\det g_\mathrm{FS}$.
  The weights $w = |\Omega|^2 / \det g_\mathrm{FS}$ turn averages over them
  into averages over the measure $\Omega\wedge\bar\Omega$.
- $\eta = \det g / |\Omega|^2$; the σ measure is
  $\sigma = \frac{1}{\mathrm{Vol}_\Omega}\int_X |1 - \eta/\bar\eta|\, d\mathrm{Vol}_\Omega$
  (Douglas, Karp, Lukic, Reinbacher, *Numerical Calabi–Yau metrics*,
  J. Math. Phys. 49 (2008) 032302; Anderson et al., arXiv:2012.04656).
  About 0.373 for Fubini–Study on the Fermat quintic; 0 for a Ricci-flat metric.
"""

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int, PRNGKeyArray

from ._misc import check_count, check_key, is_traced

# A point is rejected when |dp/dz_elim| is below this fraction of its natural scale
# d * sum|c_m| * max|z|^(d-1): that is a (numerically) singular point of X, where
# Omega and the weight blow up. On the Fermat quintic the ratio is >= 0.066 everywhere;
# double roots (a non-reduced component) sit at ~1e-8.
_DEGENERATE_TOLERANCE = 1e-6
# `point_sample` refuses a point whose relative residual |p(z)| / (sum_m |c_m| |z|^d) (in
# [0, 1]; |z| Euclidean) exceeds this: not a point of X. Sampled points sit at ~1e-16 in
# float64 and below 1e-7 in float32 (or cast to complex64), so float32 points pass with a
# margin of 100; a random point of CP^n is at ~0.1.
OFF_SURFACE_TOLERANCE = 1e-5
# Newton steps polishing each root of the line polynomial.
_NEWTON_STEPS = 3
# Contiguous batches of influence values in the standard error of `sigma_measure`.
_SIGMA_BATCHES = 100


def _complex_dtype():
    return jax.dtypes.canonicalize_dtype(jnp.complex128)


class Hypersurface(eqx.Module):
    r"""A hypersurface $X = \{p = 0\} \subset \mathbb{CP}^n$, $p$ homogeneous of degree $d$.

    $p(z) = \sum_m c_m \prod_i z_i^{e_{mi}}$. Repeated monomials add. $X$ is
    Calabi–Yau when $d = n + 1$ (the quintic in $\mathbb{CP}^4$, the quartic
    K3 in $\mathbb{CP}^3$, the cubic curve in $\mathbb{CP}^2$); the other
    constructions here work for any degree, but $\Omega$ is then a section of
    a line bundle and depends on the patch.

    Smoothness is not checked (the Dwork constructor refuses its singular
    members); singular points met by `point_sample` are rejected and counted.

    **Arguments:**

    - `exponents`: integer array (k, n + 1), $e_{mi} \ge 0$, every row summing
      to the same degree $d \ge 1$; $n \ge 2$.
    - `coefficients`: (k,) finite complex numbers, not all zero (stored as
      complex128 in float64 mode).
    """

    exponents: Int[Array, "k n1"]
    coefficients: Complex[Array, " k"]
    degree: int = eqx.field(static=True)

    def __init__(self, exponents, coefficients):
        e = np.asarray(exponents)
        if e.dtype == np.bool_ or not np.issubdtype(e.dtype, np.integer):
            raise ValueError(
                f"Hypersurface: exponents must be an integer array (k, n + 1), got dtype {e.dtype}."
            )
        if e.ndim != 2 or e.shape[0] < 1 or e.shape[1] < 3:
            raise ValueError(
                "Hypersurface: exponents must have shape (k, n + 1) with k >= 1 monomials and "
                f"n + 1 >= 3 homogeneous coordinates, got shape {e.shape}."
            )
        if np.any(e < 0):
            raise ValueError("Hypersurface: exponents must be >= 0.")
        degrees = e.sum(axis=1)
        if np.any(degrees != degrees[0]):
            raise ValueError(
                "Hypersurface: the polynomial is not homogeneous: monomial degrees "
                f"{sorted(set(degrees.tolist()))} differ; every row of exponents must have the "
                "same sum."
            )
        if degrees[0] < 1:
            raise ValueError("Hypersurface: the degree must be >= 1 (a constant has no zeros).")
        if not is_traced(coefficients):
            c = np.asarray(coefficients)
            if c.shape != (e.shape[0],):
                raise ValueError(
                    f"Hypersurface: coefficients must have shape ({e.shape[0]},), one per "
                    f"monomial, got shape {c.shape}."
                )
            if not np.issubdtype(c.dtype, np.number) or c.dtype == np.bool_:
                raise ValueError(
                    f"Hypersurface: coefficients must be numbers, got dtype {c.dtype}."
                )
            if not np.all(np.isfinite(c)):
                raise ValueError("Hypersurface: coefficients must be finite.")
            if not np.any(c != 0):
                raise ValueError("Hypersurface: coefficients are all zero (p = 0 everywhere).")
        elif jnp.shape(coefficients) != (e.shape[0],):
            raise ValueError(
                f"Hypersurface: coefficients must have shape ({e.shape[0]},), one per monomial, "
                f"got shape {jnp.shape(coefficients)}."
            )
        self.exponents = jnp.asarray(e, dtype=int)
        self.coefficients = jnp.asarray(coefficients).astype(_complex_dtype())
        self.degree = int(degrees[0])

    # Constructors.

    @classmethod
    def fermat(cls, n: int, degree: int) -> "Hypersurface":
        r"""$\sum_{i=0}^n z_i^d = 0$ in $\mathbb{CP}^n$."""
        n = check_count(n, "Hypersurface.fermat: n must be an integer >= 2", minimum=2)
        degree = check_count(
            degree, "Hypersurface.fermat: degree must be an integer >= 1", minimum=1
        )
        return cls(degree * np.eye(n + 1, dtype=int), np.ones(n + 1))

    @classmethod
    def fermat_quintic(cls) -> "Hypersurface":
        r"""The Fermat quintic threefold $\sum_{i=0}^4 z_i^5 = 0$ in $\mathbb{CP}^4$."""
        return cls.fermat(4, 5)

    @classmethod
    def fermat_quartic(cls) -> "Hypersurface":
        r"""The Fermat quartic K3 surface $\sum_{i=0}^3 z_i^4 = 0$ in $\mathbb{CP}^3$."""
        return cls.fermat(3, 4)

    @classmethod
    def fermat_cubic(cls) -> "Hypersurface":
        r"""The Fermat cubic (elliptic) curve $z_0^3 + z_1^3 + z_2^3 = 0$ in $\mathbb{CP}^2$."""
        return cls.fermat(2, 3)

    @classmethod
    def dwork_quintic(cls, psi) -> "Hypersurface":
        r"""The Dwork quintic $\sum_{i=0}^4 z_i^5 - 5\psi \prod_{i=0}^4 z_i = 0$ in $\mathbb{CP}^4$.

        `psi`: a finite real or complex number with $\psi^5 \ne 1$ (those members
        are singular, with nodes at $z = (\omega^{a_i})$, $\omega = e^{2\pi i/5}$).
        $\psi = 0$ is the Fermat quintic.
        """
        if not is_traced(psi):
            if isinstance(psi, bool) or not isinstance(psi, numbers.Number | np.ndarray | Array):
                raise ValueError(f"Hypersurface.dwork_quintic: psi must be a number, got {psi!r}.")
            value = complex(np.asarray(psi).item())
            if not (math.isfinite(value.real) and math.isfinite(value.imag)):
                raise ValueError(
                    f"Hypersurface.dwork_quintic: psi must be finite, got psi = {psi!r}."
                )
            if abs(value**5 - 1) <= 1e-12:
                raise ValueError(
                    f"Hypersurface.dwork_quintic: psi = {psi!r} has psi^5 = 1, a singular member "
                    "of the Dwork family (conifold); choose psi with psi^5 != 1."
                )
        exponents = np.concatenate([5 * np.eye(5, dtype=int), np.ones((1, 5), dtype=int)])
        psi = jnp.asarray(psi).astype(_complex_dtype())
        coefficients = jnp.concatenate([jnp.ones(5, dtype=psi.dtype), (-5 * psi)[None]])
        return cls(exponents, coefficients)

    # Shape.

    @property
    def ambient_dim(self) -> int:
        """$n + 1$, the number of homogeneous coordinates (length of a point)."""
        return self.exponents.shape[1]

    @property
    def dim(self) -> int:
        """$n - 1$, the complex dimension of $X$."""
        return self.exponents.shape[1] - 2

    # The polynomial.

    def _as_points(self, z) -> Complex[Array, "*batch n1"]:
        z = jnp.asarray(z)
        if z.shape[-1:] != (self.ambient_dim,):
            raise ValueError(
                f"Hypersurface: points must have shape (..., {self.ambient_dim}), got shape {z.shape}."
            )
        return z.astype(self.coefficients.dtype)

    def _factors(self, z: Complex[Array, "*batch n1"]):
        r"""$F_{mi} = z_i^{e_{mi}}$ and $G_{mi} = e_{mi} z_i^{e_{mi} - 1}$, shape (..., k, n + 1)."""
        # z_i^e by binary powers (exact for integer powers; no gathers, which are slow on CPU)
        squares = [z]
        for _ in range(self.degree.bit_length() - 1):
            squares.append(squares[-1] * squares[-1])

        def power(e):
            out = jnp.ones(z.shape[:-1] + e.shape, dtype=z.dtype)
            for bit, square in enumerate(squares):
                out = out * jnp.where((e >> bit) & 1 == 1, square[..., None, :], 1)
            return out

        lowered = power(jnp.maximum(self.exponents - 1, 0))
        return power(self.exponents), self.exponents.astype(z.dtype) * lowered

    def polynomial(self, z) -> Complex[Array, "*batch"]:
        r"""$p(z)$ for points `z` of shape (..., n + 1)."""
        f, _ = self._factors(self._as_points(z))
        return jnp.prod(f, axis=-1) @ self.coefficients

    def gradient(self, z) -> Complex[Array, "*batch n1"]:
        r"""The holomorphic gradient $\partial p/\partial z_j$ for points `z` of shape (..., n + 1).

        $\partial_j p = \sum_m c_m\, e_{mj} z_j^{e_{mj} - 1} \prod_{i \ne j} z_i^{e_{mi}}$,
        the product over $i \ne j$ from prefix and suffix products (no division).
        """
        f, g = self._factors(self._as_points(z))
        size = self.ambient_dim
        before = [jnp.ones(f.shape[:-1], dtype=f.dtype)]  # prod_{i < j} F_i
        after = [jnp.ones(f.shape[:-1], dtype=f.dtype)]  # prod_{i > j} F_i
        for i in range(size - 1):
            before.append(before[-1] * f[..., i])
            after.append(after[-1] * f[..., size - 1 - i])
        others = jnp.stack([before[j] * after[size - 1 - j] for j in range(size)], axis=-1)
        return jnp.sum(self.coefficients[:, None] * g * others, axis=-2)


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
    CMP 200 (1999); Douglas et al. 2008, §3).

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
    lines = -(-count // hypersurface.degree)
    # NumPy draws the lines (seeded by the key's bits): no PRNG to compile for each shape
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    rng = np.random.default_rng(np.asarray(data).ravel().tolist())
    gaussians = rng.standard_normal((2, lines, hypersurface.ambient_dim, 2)) @ np.array([1, 1j])
    a, b, coeffs = _line_polynomials(hypersurface, gaussians)
    roots = _companion_roots(np.asarray(coeffs))
    roots = np.take_along_axis(roots, np.argsort(rng.random(roots.shape), axis=-1), axis=-1)
    return _line_points(hypersurface, a, b, jnp.asarray(roots, dtype=coeffs.dtype), count)


# Patches, Omega, weights.


def _local_geometry(hypersurface: Hypersurface, z, patch, eliminate):
    """Everything at one point; `patch`/`eliminate` of -1 mean the default choices."""
    size = hypersurface.ambient_dim
    z = z.astype(hypersurface.coefficients.dtype)
    modulus = jnp.abs(z)
    patch = jnp.where(patch < 0, jnp.argmax(modulus), patch)
    z = z / z[patch]
    grad = hypersurface.gradient(z)
    is_patch = jnp.arange(size) == patch
    eliminate = jnp.where(
        eliminate < 0, jnp.argmax(jnp.where(is_patch, -1.0, jnp.abs(grad))), eliminate
    )
    is_elim = jnp.arange(size) == eliminate
    g_elim = grad[eliminate]
    scale = (
        hypersurface.degree
        * jnp.sum(jnp.abs(hypersurface.coefficients))
        * jnp.max(jnp.abs(z)) ** (hypersurface.degree - 1)
    )
    ok = (
        jnp.all(jnp.isfinite(z))
        & (patch != eliminate)
        & (jnp.abs(g_elim) > _DEGENERATE_TOLERANCE * scale)
    )
    safe_elim = jnp.where(ok, g_elim, 1)
    # the local coordinates: every index but the patch and the eliminated one, in order
    ranks = jnp.where(is_patch | is_elim, size, 0) + jnp.arange(size)
    local = jnp.argsort(ranks)[: size - 2]
    cols = jnp.arange(size - 2)
    jac = jnp.zeros((size, size - 2), dtype=z.dtype)
    jac = jac.at[local, cols].set(1)
    jac = jac.at[eliminate, cols].set(-grad[local] / safe_elim)
    norm2 = jnp.sum(jnp.abs(z) ** 2).astype(z.dtype)
    ambient = (jnp.eye(size, dtype=z.dtype) * norm2 - jnp.conj(z)[:, None] * z[None, :]) / norm2**2
    g = jac.T @ ambient @ jnp.conj(jac)
    det = jnp.real(jnp.linalg.det(g))
    omega = 1 / safe_elim
    weight = jnp.abs(omega) ** 2 / det
    ok = ok & jnp.all(jnp.isfinite(g)) & (det > 0) & jnp.isfinite(weight)
    eye = jnp.eye(size - 2, dtype=g.dtype)
    return (
        jnp.where(ok, z, jnp.zeros_like(z)),
        patch,
        eliminate,
        jnp.where(ok, omega, 0),
        jnp.where(ok, g, eye),
        jnp.where(ok, jac, 0),
        jnp.where(ok, weight, 0),
        ok,
    )


def _check_points(hypersurface: Hypersurface, points, caller: str):
    """`points` as an array of shape (N, n + 1), N >= 1; `ValueError` naming `caller` otherwise."""
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[1] != hypersurface.ambient_dim:
        raise ValueError(
            f"{caller}: points must have shape (N, {hypersurface.ambient_dim}), "
            f"got shape {points.shape}."
        )
    if points.shape[0] == 0:
        raise ValueError(f"{caller}: the point set is empty (shape (0, n + 1)); pass N >= 1.")
    return points


def patch_geometry(
    hypersurface: Hypersurface,
    points: Complex[Array, "N n1"],
    patch: Int[Array, " N"] | None = None,
    eliminate: Int[Array, " N"] | None = None,
) -> tuple[
    Complex[Array, "N n1"],
    Int[Array, " N"],
    Int[Array, " N"],
    Complex[Array, " N"],
    Complex[Array, "N m m"],
    Complex[Array, "N n1 m"],
    Float[Array, " N"],
    Float[Array, " N"],
]:
    r"""Patch, eliminated coordinate, $\Omega$, pulled-back $g_\mathrm{FS}$ and raw weight at each point.

    Jitted (`eqx.filter_jit`; it also runs inside a jitted function) and
    shape-static: nothing is dropped. At a
    point where the patch choice fails numerically ($|\partial p/\partial
    z_\mathrm{elim}|$ below $10^{-6}$ of its scale $d \sum_m |c_m| \max_i |z_i|^{d-1}$,
    or a non-finite or non-positive $\det g_\mathrm{FS}$) `accepted` is False
    and every output is a finite placeholder: the point is zero, $\Omega = 0$,
    $g = I$, $J = 0$, weight 0. `point_sample` drops those points.

    **Arguments:**

    - `points`: (N, n + 1) homogeneous coordinates on $X$ (any scaling), N >= 1
      (an empty point set raises `ValueError`).
    - `patch`, `eliminate`: optional (N,) integer overrides of the two choices
      (for checking patch independence); -1 entries mean the default.

    **Returns:** `(points, patch, eliminate, omega, g_fs, jacobian, raw_weight,
    accepted)`: points scaled to their patch; $\Omega$ (N,);
    $g_\mathrm{FS}$ (N, n - 1, n - 1) Hermitian; the embedding Jacobian $J$
    (N, n + 1, n - 1); the unnormalised weight $|\Omega|^2/\det g_\mathrm{FS}$;
    and a boolean mask.
    """
    points = _check_points(hypersurface, points, "patch_geometry")
    minus = jnp.full(points.shape[:1], -1, dtype=int)
    patch = minus if patch is None else jnp.asarray(patch, dtype=int)
    eliminate = minus if eliminate is None else jnp.asarray(eliminate, dtype=int)
    for name, index in (("patch", patch), ("eliminate", eliminate)):
        if index.shape != points.shape[:1]:
            raise ValueError(
                f"patch_geometry: {name} must have shape ({points.shape[0]},), got {index.shape}."
            )
    return _patch_geometry(hypersurface, points, patch, eliminate)


@eqx.filter_jit
def _patch_geometry(hypersurface, points, patch, eliminate):
    return jax.vmap(lambda z, i, j: _local_geometry(hypersurface, z, i, j))(
        points, patch, eliminate
    )


class PointSample(eqx.Module):
    r"""Accepted points of $X$ with their patches, $\Omega$, $g_\mathrm{FS}$ and weights.

    Built by `point_sample`. The weights are $w = |\Omega|^2/\det g_\mathrm{FS}$
    normalised to mean 1 over the accepted points, so that for points
    distributed by $\det g_\mathrm{FS}$, $\frac1N \sum_a w_a f(z_a) \to
    \int_X f\, d\mathrm{Vol}_\Omega / \mathrm{Vol}_\Omega$. The normalisation
    constant is kept: `volume_ratio` $= \frac1N\sum_a |\Omega_a|^2/\det g_{\mathrm{FS},a}$
    estimates $\int_X |\Omega|^2 / \int_X \det g_\mathrm{FS}$ (densities in the
    local coordinates; $\int_X \det g_\mathrm{FS} = d\,\pi^{n-1}/(n-1)!$).

    **Fields:**

    - `points`: (N, n + 1) complex, scaled so that the patch coordinate is 1.
    - `patch`, `eliminated`: (N,) integer indices.
    - `omega`: (N,) complex, $\Omega = 1/(\partial p/\partial z_\mathrm{elim})$.
    - `weights`: (N,) real, mean 1.
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
    `ValueError` if `points` is empty, if a finite point is off $X$ (relative
    residual $|p(z)| / (\sum_m |c_m|\, |z|^d) >$ `OFF_SURFACE_TOLERANCE` $= 10^{-5}$,
    $|z|$ the Euclidean norm; sampled points, float32 ones included, are below
    $10^{-7}$), or if no point is accepted. `patch`/`eliminate` override the
    default choices as in `patch_geometry`. Not jittable (the number of
    accepted points is data-dependent).
    """
    points = _check_points(hypersurface, points, "point_sample")
    residual = np.asarray(_relative_residual(hypersurface, points))
    off = np.flatnonzero(residual > OFF_SURFACE_TOLERANCE)  # NaN (non-finite point): rejected below
    if off.size:
        raise ValueError(
            f"point_sample: {off.size} of {residual.size} points are off the hypersurface "
            f"(first: point {off[0]}, relative residual |p(z)| / (sum |c_m| |z|^d) = "
            f"{residual[off[0]]:.2e} > {OFF_SURFACE_TOLERANCE:.0e}); pass points of X, e.g. "
            "from sample_points."
        )
    outputs = patch_geometry(hypersurface, points, patch, eliminate)
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


@eqx.filter_jit
def _relative_residual(hypersurface: Hypersurface, z) -> Float[Array, " N"]:
    r"""$|p(z)| / (\sum_m |c_m|\, |z|^d)$ at each point, in $[0, 1]$ ($|z_i| \le |z|$)."""
    z = hypersurface._as_points(z)
    norm = jnp.linalg.norm(z, axis=-1) ** hypersurface.degree
    return jnp.abs(hypersurface.polynomial(z)) / (
        jnp.sum(jnp.abs(hypersurface.coefficients)) * norm
    )


@jax.jit
def fs_distance(
    z: Complex[Array, "*batch n1"], w: Complex[Array, "*batch n1"]
) -> Float[Array, "*batch"]:
    r"""Fubini–Study geodesic distance $d([z],[w]) = \arccos\big(|\langle z, w\rangle| / (|z||w|)\big)$.

    $\langle z, w\rangle = \sum_i \bar z_i w_i$; the argument is clipped into
    $[0, 1]$, so rounding never gives NaN. In $[0, \pi/2]$, invariant under
    $z \to \lambda z$, $w \to \mu w$. Broadcasts over leading axes. (Not
    differentiable at $[z] = [w]$, where arccos has an infinite slope.)
    """
    z, w = jnp.asarray(z), jnp.asarray(w)
    inner = jnp.abs(jnp.sum(jnp.conj(z) * w, axis=-1))
    cos = inner / (jnp.linalg.norm(z, axis=-1) * jnp.linalg.norm(w, axis=-1))
    return jnp.arccos(jnp.clip(cos, 0.0, 1.0))


def sigma_measure(
    sample: PointSample, g: Complex[Array, "N m m"]
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""The σ measure of a metric $g$ on $X$ and the standard error of its Monte Carlo estimate.

    With $\eta_a = \det g_a / |\Omega_a|^2$ and the sample's weights $w_a$:
    $\bar\eta = \sum_a w_a\eta_a / \sum_a w_a$,
    $\hat\sigma = \sum_a w_a |1 - \eta_a/\bar\eta| / \sum_a w_a$, estimating
    $\sigma = \frac{1}{\mathrm{Vol}_\Omega}\int_X |1 - \eta/\bar\eta|\,d\mathrm{Vol}_\Omega$
    (Douglas et al. 2008). The estimate is invariant under $g \to c\,g$.

    Standard error: the delta method for this ratio estimator, which has
    influence values $\psi_a = w_a\big(|1 - x_a| - \hat\sigma + \kappa(x_a - 1)\big)/\bar w$,
    $x_a = \eta_a/\bar\eta$, $\kappa = \sum_a w_a\,\mathrm{sign}(1 - x_a)\,x_a / \sum_a w_a$
    (the $\kappa$ term carries the error of $\bar\eta$); these are summed over
    100 contiguous batches (fewer if N < 100) so that the correlated points
    of one sampled line, which are adjacent, fall in one batch:
    $\mathrm{se}^2 = \sum_b (\sum_{a \in b} \psi_a)^2 / N^2$.

    **Arguments:**

    - `sample`: a `PointSample`.
    - `g`: (N, n - 1, n - 1) the metric in each point's local coordinates
      (Hermitian positive definite); `sample.g_fs` for Fubini–Study.

    **Returns:** `(sigma, standard_error)`, real scalars. Jittable.
    """
    m = sample.points.shape[1] - 2
    if g.shape != (sample.count, m, m):
        raise ValueError(
            f"sigma_measure: g must have shape ({sample.count}, {m}, {m}), one metric in local "
            f"coordinates per point, got shape {g.shape}."
        )
    return _sigma_measure(sample.omega, sample.weights, g)


@jax.jit
def _sigma_measure(omega, w, g):
    det = jnp.real(jnp.linalg.det(g))
    eta = det / jnp.abs(omega) ** 2
    total = jnp.sum(w)
    eta_bar = jnp.sum(w * eta) / total
    x = eta / eta_bar
    h = jnp.abs(1 - x)
    sigma = jnp.sum(w * h) / total
    kappa = jnp.sum(w * jnp.sign(1 - x) * x) / total
    influence = w * (h - sigma + kappa * (x - 1)) / (total / w.shape[0])
    batches = min(_SIGMA_BATCHES, w.shape[0])
    batch = (jnp.arange(w.shape[0]) * batches) // w.shape[0]
    sums = jax.ops.segment_sum(influence, batch, num_segments=batches)
    stderr = jnp.sqrt(jnp.sum(sums**2)) / w.shape[0]
    return sigma, stderr
