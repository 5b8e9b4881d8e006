r"""Algebraic Kähler potentials $K_G = \frac1k\log(s^\dagger G s)$ and Donaldson's balanced metrics.

On $X = \{p = 0\} \subset \mathbb{CP}^n$ of degree $d$, let $s = (s_1, \dots, s_{N_k})$
be sections of $\mathcal O(k)$: the degree-$k$ monomials $z^I$, or a basis of
the sections independent on $X$. For $k \ge d$ the multiples of $p$ vanish on
$X$, and $h^0(X, \mathcal O(k)) = \binom{n+k}{n} - \binom{n+k-d}{n}$. The
independent sections are found on a sample by whitening: with $m$ the
monomials and $S = \sum_a w_a\, m(z_a) m(z_a)^\dagger/|z_a|^{2k}$ (weights
normalised), $S = V\Lambda V^\dagger$, a section $u^\dagger m$ vanishes on $X$
exactly when $u^\dagger S u = 0$, so the rows of $V_+^\dagger$ over the
eigenvalues above a relative cut are an orthonormal basis of the sections that
do not vanish on $X$, $s = V_+^\dagger m$. On $X$, $m(z) \perp \ker S$, so
$s^\dagger s = m^\dagger m$: $G = I$ is the same metric in either basis.

With $G$ Hermitian positive definite,

$$\rho_G = s^\dagger G s, \qquad K_G = \frac1k\log\rho_G, \qquad
\phi_G = K_G - \log|z|^2,$$

$\phi_G$ invariant under $z \to \lambda z$: a Kähler potential relative to
Fubini–Study, so $g = J^\top\partial\bar\partial(\log|z|^2 + \phi_G)\bar J =
\frac1k J^\top\partial\bar\partial\log\rho_G\,\bar J$, the convention of
`pulled_back_metric`. In closed form, with $D = (\partial s/\partial z) J$
($N_k \times m$, $J$ the embedding Jacobian) and $v = D^\top\overline{G s}$,

$$g = \frac1k\Big(\frac{\overline{D^\dagger G D}}{\rho_G}
- \frac{v v^\dagger}{\rho_G^2}\Big)$$

($\partial_i\rho = s^\dagger G D_{\cdot i}$, $\partial_i\partial_{\bar j}\rho =
D_{\cdot j}^\dagger G D_{\cdot i}$; for $k = 1$, $s = z$, $G = I$ it is $g^\mathrm{FS}$).

Donaldson's T-operator (Donaldson, *Some numerical results in complex
differential geometry*, 2009; Douglas, Karp, Lukic and Reinbacher, *Numerical
Calabi–Yau metrics*, J. Math. Phys. 49 (2008) 032302):

$$T(G) = \frac{N_k}{\mathrm{Vol}}\int_X \frac{s\, s^\dagger}{\rho_G}\, d\mathrm{Vol}_\Omega
\approx N_k \sum_a \hat w_a\, \frac{s(z_a)\, s(z_a)^\dagger}{\rho_G(z_a)},$$

$\hat w$ the sample's weights normalised to sum 1: $d\mathrm{Vol}_\Omega$ is the
sample's measure (`PointSample`), $\Omega\wedge\bar\Omega$ on a Calabi–Yau
($d = n + 1$) and $|z|^{2(d-n-1)}\,\Omega\wedge\bar\Omega$ ($z$ scaled to its patch)
otherwise, a volume form on $X$ either way (on a hyperplane, $\mathbb{CP}^{n-1}$, the
Fubini–Study one). A fixed point of $G \to T(G)^{-1}$ is the *balanced* metric: the
sections $A s$ with $A^\dagger A = G$ are orthonormal in the $L^2$ product of the Hermitian metric
$1/\rho_G$ on $\mathcal O(k)$, up to the factor $N_k$. $\mathrm{tr}(G\,T(G)) = N_k$
for every $G$ (a check). The balanced metrics of a volume form $\mu$ tend, as
$k \to \infty$, to the Kähler metric of the class whose volume form is proportional
to $\mu$ (Donaldson's $\nu$-balanced metrics, same paper): the Calabi–Yau metric for
$\Omega\wedge\bar\Omega$, Fubini–Study at every $k$ on $\mathbb{CP}^m$ (by $U(m+1)$
symmetry). On a Calabi–Yau they converge slowly (σ falling roughly as $1/k^2$ on the
quintic; on the cubic curve, flat, faster than any power): the classical discrete flow
to compare the spectral Kähler–Ricci flow with. $T$ has $N_k^2$ entries, each a Monte Carlo
integral: the sample needs many more points than $N_k^2$, or the iteration converges
to the balanced metric of the sample rather than of $X$ (σ far above the true one).
"""

import itertools
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from .._misc import check_count, is_traced, real_scalar
from .hypersurface import Hypersurface
from .losses import sigma_measure
from .sampling import PointSample
from .spectral_basis import (
    _batch,
    _check_sample,
    _check_symmetry,
    _max_bytes,
    _monomials,
)

# Bytes of complex128.
_COMPLEX_BYTES = 16
# Relative Hermiticity tolerance of a G passed by the caller.
_HERMITIAN_TOLERANCE = 1e-10
# An iterate T(G) whose smallest eigenvalue is below this times its largest is singular:
# its inverse would keep at most three significant digits. (T(I) in the independent basis
# has the kept Gram eigenvalues, above rtol = 1e-9 of the largest by default; measured on
# the quintic, k <= 8, above 4e-3.)
_SINGULAR_T = 1e-13


def section_count(hypersurface: Hypersurface, k: int) -> int:
    r"""$h^0(X, \mathcal O(k)) = \binom{n+k}{n} - \binom{n+k-d}{n}$ (the second term 0 for $k < d$).

    The number of degree-$k$ sections independent on $X$ (the monomials modulo the
    multiples of $p$); `k` an integer $\ge 0$, `ValueError` otherwise.
    """
    if not isinstance(hypersurface, Hypersurface):
        raise ValueError(
            f"section_count: expected a Hypersurface, got {type(hypersurface).__name__}."
        )
    k = check_count(k, "section_count: the degree k must be an integer >= 0", minimum=0)
    n = hypersurface.ambient_dim - 1
    d = hypersurface.degree
    return math.comb(n + k, n) - (math.comb(n + k - d, n) if k >= d else 0)


def _memory_needed(points: int, sections: int, m: int, group: int = 0) -> int:
    """Bytes that `donaldson_balanced` holds at once: the section values s (N, N_k), G s and
    the weighted product (two more copies), the sample Gram of the monomials, and the chunk
    of section derivatives (N, N_k, m) a metric evaluation would hold at most; with a
    symmetry (`group` > 0), the monomial values beside s and T's images under the `group`
    permutations of the coordinates (`group` N_k x N_k)."""
    extra = points * sections + group * sections * sections if group else 0
    return _COMPLEX_BYTES * (points * sections * (3 + m) + 4 * sections * sections + extra)


def _check_memory(
    points: int, sections: int, m: int, max_bytes: int, caller: str, group: int = 0
) -> None:
    need = _memory_needed(points, sections, m, group)
    if need > max_bytes:
        raise ValueError(
            f"{caller}: the {sections} degree-k monomials at {points} points need about "
            f"{need / 2**30:.2f} GiB (section values, their products and derivatives), over "
            f"the {max_bytes / 2**30:.2f} GiB allowed (max_bytes); lower the degree k or use "
            "fewer points."
        )


def _check_hermitian_positive(g: np.ndarray, caller: str) -> None:
    scale = np.max(np.abs(g))
    if not np.all(np.isfinite(g)) or scale == 0:
        raise ValueError(f"{caller}: non-positive G: G must be finite and nonzero.")
    asym = np.max(np.abs(g - g.conj().T))
    if asym > _HERMITIAN_TOLERANCE * scale:
        raise ValueError(
            f"{caller}: non-positive G: G is not Hermitian (max |G - G^dagger| = {asym:.1e}, "
            f"relative {asym / scale:.1e})."
        )
    lowest = np.linalg.eigvalsh((g + g.conj().T) / 2)[0]
    if not lowest > 0:
        raise ValueError(
            f"{caller}: non-positive G: G must be Hermitian positive definite, its smallest "
            f"eigenvalue is {lowest:.3e}."
        )


def _check_rtol(rtol, caller: str) -> float:
    value = real_scalar(rtol)
    if value is None or not 0 < value < 1:
        raise ValueError(f"{caller}: rtol must be a real number in (0, 1), got {rtol!r}.")
    return value


def _monomial_gram(hypersurface: Hypersurface, sample: PointSample, k: int, caller: str):
    r"""The monomials $m_a$ (N, M) and the eigen-decomposition (ascending) of their sample Gram
    matrix $S = \sum_a \hat w_a m_a m_a^\dagger/|z_a|^{2k}$ (module docstring)."""
    weights = np.asarray(sample.weights)
    if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and np.sum(weights) > 0):
        raise ValueError(
            f"{caller}: the sample's weights must be finite and non-negative, with a positive "
            "sum (a PointSample from point_sample has them)."
        )
    m = np.asarray(AlgebraicPotential(hypersurface, k).section_values(sample.points))
    norm = np.sum(np.abs(np.asarray(sample.points)) ** 2, axis=1) ** k
    w = weights / np.sum(weights) / norm
    gram = (m.T * w) @ m.conj()  # S = sum_a w_a m_a m_a^dagger
    values, vectors = np.linalg.eigh((gram + gram.conj().T) / 2)
    return m, values, vectors


def _whitened(values: np.ndarray, vectors: np.ndarray, rtol: float) -> np.ndarray:
    """The rows u^dagger over the Gram eigenvalues above `rtol` times the largest, largest first."""
    keep = values > rtol * values[-1]
    return vectors[:, keep][:, ::-1].conj().T


def _check_iterate(t: np.ndarray, step: int, caller: str) -> None:
    """`ValueError` unless T(G) is finite, with eigenvalues above _SINGULAR_T times the largest."""
    if not np.all(np.isfinite(t)):
        raise ValueError(
            f"{caller}: the iteration diverged at step {step}: T(G) is not finite. The sample "
            "spans the sections but admits no balanced metric (too few points, or too many on "
            "a subvariety); use many more points."
        )
    values = np.linalg.eigvalsh(t)
    if not values[0] > _SINGULAR_T * values[-1]:
        raise ValueError(
            f"{caller}: the iteration diverged at step {step}: T(G) is singular (eigenvalues "
            f"from {values[0]:.2e} to {values[-1]:.2e}). The sample spans the sections but "
            "admits no balanced metric (too few points, or too many on a subvariety); use many "
            "more points."
        )


class AlgebraicPotential(eqx.Module):
    r"""$\phi_G = \frac1k\log(s^\dagger G s) - \log|z|^2$ on $X$, $s = B\, m$ sections of $\mathcal O(k)$.

    $m$ the degree-$k$ monomials $z^I$ (`monomials`), $B$ (`sections`) a
    $N_k \times \binom{n+k}{n}$ matrix (the identity: all monomials; or the
    orthonormal rows spanning the sections independent on $X$, module docstring)
    and $G$ Hermitian positive definite. The metric is
    $g = \frac1k J^\top\partial\bar\partial\log\rho_G\bar J$, the convention of
    `pulled_back_metric` (to which an `AlgebraicPotential` can be passed as the
    callable $\phi$); `metric` evaluates it in closed form.

    **Arguments:**

    - `hypersurface`: the `Hypersurface` $X$.
    - `k`: the degree, an integer $\ge 1$.
    - `G`: (N_k, N_k) Hermitian positive definite (default the identity; refused
      with "non-positive G" otherwise).
    - `sections`: (N_k, C(n + k, n)) complex, default the identity (all monomials);
      linearly independent, and at least $\dim X + 1$ of them (fewer cannot map $X$
      into $\mathbb{CP}^{N_k - 1}$ by an immersion, and the metric would be degenerate).

    Build the independent sections with `AlgebraicPotential.independent`.
    """

    hypersurface: Hypersurface
    monomials: Int[Array, "M n1"]
    sections: Complex[Array, "Nk M"]
    G: Complex[Array, "Nk Nk"]
    k: int = eqx.field(static=True)

    def __init__(self, hypersurface: Hypersurface, k: int, G=None, sections=None):
        k = check_count(k, "AlgebraicPotential: the degree k must be an integer >= 1", minimum=1)
        if not isinstance(hypersurface, Hypersurface):
            raise ValueError(
                f"AlgebraicPotential: expected a Hypersurface, got {type(hypersurface).__name__}."
            )
        size = hypersurface.ambient_dim
        n_monomials = math.comb(size - 1 + k, k)
        dtype = hypersurface.coefficients.dtype
        if sections is None:
            b = jnp.eye(n_monomials, dtype=dtype)
        else:
            b = jnp.asarray(sections)
            if b.ndim != 2 or b.shape[1] != n_monomials or b.shape[0] < 1:
                raise ValueError(
                    f"AlgebraicPotential: sections must have shape (N_k, {n_monomials}) (one "
                    f"row per section, one column per degree-{k} monomial), got {b.shape}."
                )
            b = b.astype(dtype)
            if not is_traced(b):
                rows = np.asarray(b)
                if not np.all(np.isfinite(rows)):
                    raise ValueError("AlgebraicPotential: sections must be finite.")
                rank = np.linalg.matrix_rank(rows)
                if rank < rows.shape[0]:
                    raise ValueError(
                        f"AlgebraicPotential: the {rows.shape[0]} sections must be linearly "
                        f"independent, got rank {rank} (a zero or repeated section makes "
                        "s^H G s degenerate); build them with AlgebraicPotential.independent."
                    )
        n_sections = b.shape[0]
        if n_sections < hypersurface.dim + 1:
            raise ValueError(
                f"AlgebraicPotential: {n_sections} sections map X (dimension {hypersurface.dim}) "
                f"into CP^{n_sections - 1}, which cannot be an immersion, so the metric would "
                f"be degenerate: at least {hypersurface.dim + 1} sections are needed."
            )
        g = jnp.eye(n_sections, dtype=dtype) if G is None else jnp.asarray(G)
        if g.shape != (n_sections, n_sections):
            raise ValueError(
                f"AlgebraicPotential: G must have shape ({n_sections}, {n_sections}), one row "
                f"and column per section, got {g.shape}."
            )
        if not is_traced(g):
            _check_hermitian_positive(np.asarray(g), "AlgebraicPotential")
        self.hypersurface = hypersurface
        self.monomials = jnp.asarray(_monomials(size, k))
        self.sections = b
        self.G = g.astype(dtype)
        self.k = k

    @classmethod
    def independent(
        cls,
        hypersurface: Hypersurface,
        sample: PointSample,
        k: int,
        *,
        rtol: float = 1e-9,
        max_bytes: int | None = None,
    ) -> "AlgebraicPotential":
        r"""$G = I$ on an orthonormal basis of the degree-$k$ sections independent on $X$.

        Whitening of the monomials' sample Gram matrix
        $S = \sum_a \hat w_a m_a m_a^\dagger/|z_a|^{2k} = V\Lambda V^\dagger$, keeping the
        eigenvalues $> $ `rtol` $\cdot\lambda_\max$ (module docstring): $N_k = h^0(\mathcal O(k))$
        sections for a sample large enough. `max_bytes` (an integer >= 1) bounds the memory
        (default the memory available, `flows.available_memory`); a larger need is refused
        before anything is allocated.
        """
        k = check_count(
            k, "AlgebraicPotential.independent: the degree k must be an integer >= 1", minimum=1
        )
        if not isinstance(hypersurface, Hypersurface):
            raise ValueError(
                "AlgebraicPotential.independent: expected a Hypersurface, got "
                f"{type(hypersurface).__name__}."
            )
        rtol = _check_rtol(rtol, "AlgebraicPotential.independent")
        _check_sample(hypersurface, sample, "AlgebraicPotential.independent")
        n_monomials = math.comb(hypersurface.ambient_dim - 1 + k, k)
        max_bytes = _max_bytes(max_bytes, "AlgebraicPotential.independent")
        _check_memory(
            sample.count,
            n_monomials,
            hypersurface.dim,
            max_bytes,
            "AlgebraicPotential.independent",
        )
        _, values, vectors = _monomial_gram(
            hypersurface, sample, k, "AlgebraicPotential.independent"
        )
        return cls(hypersurface, k, sections=_whitened(values, vectors, rtol))

    @property
    def size(self) -> int:
        """N_k, the number of sections."""
        return self.sections.shape[0]

    # Per point.

    def _monomial_data(self, z: Complex[Array, " n1"]):
        """m(z) (M,) and dm/dz (M, n + 1), by prefix and suffix products (no division)."""
        k = self.k
        size = z.shape[0]
        powers = jnp.concatenate(
            [jnp.ones((size, 1), dtype=z.dtype), jnp.cumprod(jnp.tile(z[:, None], (1, k)), axis=1)],
            axis=1,
        )
        e = self.monomials
        cols = jnp.arange(size)[None, :]
        factors = powers[cols, e]
        lowered = powers[cols, jnp.maximum(e - 1, 0)]
        ones = jnp.ones(factors.shape[:1], dtype=z.dtype)
        before, after = [ones], [ones]
        for i in range(size - 1):
            before.append(before[-1] * factors[:, i])
            after.append(after[-1] * factors[:, size - 1 - i])
        others = jnp.stack([before[a] * after[size - 1 - a] for a in range(size)], axis=1)
        return before[-1] * factors[:, size - 1], e.astype(z.dtype) * lowered * others

    def section_values(self, points: Complex[Array, "N n1"]) -> Complex[Array, "N Nk"]:
        r"""$s(z_a) = B\, m(z_a)$ at each point (homogeneous coordinates as given)."""
        points = jnp.asarray(points).astype(self.G.dtype)
        return _section_values(self, points)

    def log_rho(self, z: Complex[Array, " n1"]) -> Float[Array, ""]:
        r"""$\log\rho_G = \log(s^\dagger G s)$ at one point."""
        z = z.astype(self.G.dtype)
        s = self.sections @ self._monomial_data(z)[0]
        return jnp.log(jnp.real(jnp.vdot(s, self.G @ s)))

    def __call__(self, z: Complex[Array, " n1"]) -> Float[Array, ""]:
        r"""$\phi_G([z]) = \frac1k\log\rho_G - \log|z|^2$."""
        rho = jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2)
        return self.log_rho(z) / self.k - jnp.log(rho)

    def point_metric(
        self, z: Complex[Array, " n1"], jacobian: Complex[Array, "n1 m"] | None = None
    ) -> Complex[Array, "m m"]:
        r"""$\frac1k J^\top\partial\bar\partial\log\rho_G\bar J$ at one point, in closed form (None: $J = I$).

        $\frac1k(\overline{D^\dagger G D}/\rho - u u^\dagger)$, $u = v/\rho$ (module
        docstring), with $G$ divided by its largest entry: the metric does not see $G$'s
        scale, and no product under- or overflows.
        """
        z = z.astype(self.G.dtype)
        jac = jnp.eye(z.shape[0], dtype=z.dtype) if jacobian is None else jacobian.astype(z.dtype)
        m, dm = self._monomial_data(z)
        s = self.sections @ m
        d = self.sections @ dm @ jac  # (N_k, m)
        # g does not depend on G's scale: G / max|G_ij| and v / rho keep every product in
        # range (G = 1e300 I or 1e-300 I is I; rho^2 would under- or overflow)
        g = self.G / jnp.max(jnp.abs(self.G)).astype(z.dtype)
        gs = g @ s
        rho = jnp.real(jnp.vdot(s, gs)).astype(z.dtype)
        u = d.T @ jnp.conj(gs) / rho  # v / rho
        a = jnp.conj(jnp.conj(d).T @ g @ d) / rho
        return (a - u[:, None] * jnp.conj(u)[None, :]) / self.k

    def metric(self, sample: PointSample) -> Complex[Array, "N m m"]:
        r"""The metric at every point of `sample`, in its local coordinates (closed form)."""
        _check_sample(self.hypersurface, sample, "AlgebraicPotential.metric")
        m = self.hypersurface.dim
        per_point = self.monomials.shape[0] * (m + 2) + self.size * (self.size + m)
        return _metric(self, sample.points, sample.jacobian, per_point)

    def eta(self, sample: PointSample) -> Float[Array, " N"]:
        r"""$\eta = \det g/|\Omega|^2$ at `sample` ($|\Omega|^2$: the sample's measure, `PointSample`)."""
        return jnp.real(jnp.linalg.det(self.metric(sample))) / jnp.abs(sample.omega) ** 2

    def sigma(self, sample: PointSample) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """`sigma_measure(sample, self.metric(sample))`: σ and its standard error."""
        return sigma_measure(sample, self.metric(sample))


@eqx.filter_jit
def _section_values(potential, points):
    per_point = potential.monomials.shape[0] * (points.shape[1] + 2)
    return jax.lax.map(
        lambda z: potential.sections @ potential._monomial_data(z)[0],
        points,
        batch_size=_batch(per_point),
    )


@eqx.filter_jit
def _metric(potential, points, jacobian, per_point):
    return jax.lax.map(
        lambda a: potential.point_metric(a[0], a[1]),
        (points, jacobian),
        batch_size=_batch(per_point),
    )


def _symmetrizer(monomials: np.ndarray, degree: int, symmetry):
    """(phase mask (M, M) or None, permutation index (P, M) or None, conjugate) for `symmetry`."""
    if symmetry is None:
        return None, None, False
    mod = monomials % degree
    mask = np.all(mod[:, None, :] == mod[None, :, :], axis=-1)
    if symmetry == "phases":
        return mask, None, False
    index = {tuple(int(x) for x in row): i for i, row in enumerate(monomials)}
    perms = [
        [index[tuple(int(x) for x in row[list(perm)])] for row in monomials]
        for perm in itertools.permutations(range(monomials.shape[1]))
    ]
    return mask, np.asarray(perms, dtype=int), True


@eqx.filter_jit
def _symmetrize(t, mask, perms, conjugate: bool):
    r"""The average of $T$ (monomial basis) over the symmetry group (phases, permutations, conjugation)."""
    t = jnp.where(mask, t, 0)
    if perms is not None:
        t = jnp.mean(t[perms[:, :, None], perms[:, None, :]], axis=0)
    return jnp.real(t).astype(t.dtype) if conjugate else t


@jax.jit
def _rho(s, g):
    r"""$\rho_a = s_a^\dagger G s_a$; `s` (N, N_k)."""
    return jnp.real(jnp.sum(jnp.conj(s) * (s @ g.T), axis=1))


@jax.jit
def _t_operator(s, weights, g):
    r"""$T(G) = N_k\sum_a\hat w_a s_a s_a^\dagger/\rho_a$ and $\rho_a$; `s` (N, N_k), weights sum 1."""
    rho = _rho(s, g)
    c = (weights / rho).astype(s.dtype)
    t = (s * c[:, None]).T @ jnp.conj(s) * s.shape[1]
    return (t + jnp.conj(t).T) / 2, rho


class BalancedResult(eqx.Module):
    """The outcome of `donaldson_balanced`.

    **Fields:** `potential` (the `AlgebraicPotential` of the last $G$);
    `residuals` ($\\|G_{i+1} - G_i\\|_F/\\|G_i\\|_F$, one per iteration);
    `converged` (whether the last is below `tol`); `seconds` (wall time).
    """

    potential: AlgebraicPotential
    residuals: Float[Array, " S"]
    converged: bool = eqx.field(static=True)
    seconds: float = eqx.field(static=True)

    @property
    def G(self) -> Complex[Array, "Nk Nk"]:
        """The balanced $G$."""
        return self.potential.G


def donaldson_balanced(
    hypersurface: Hypersurface,
    sample: PointSample,
    k: int,
    *,
    iterations: int = 50,
    tol: float = 1e-10,
    symmetry: str | None = None,
    rtol: float = 1e-9,
    independent: bool = True,
    max_bytes: int | None = None,
) -> BalancedResult:
    r"""Donaldson's balanced metric of degree $k$: iterate $G \leftarrow T(G)^{-1}$ from $G = I$.

    $T(G) = N_k\sum_a \hat w_a\, s(z_a)s(z_a)^\dagger/\rho_G(z_a)$ over `sample`
    ($\hat w$ its weights normalised to sum 1: the measure $|\Omega|^2$ of `PointSample`,
    $\Omega\wedge\bar\Omega$ on a Calabi–Yau and $|z|^{2(d-n-1)}\Omega\wedge\bar\Omega$ off
    it, where the balanced metrics tend to the metric with that volume form, not to a
    Calabi–Yau one; module docstring). $G = I$ is Fubini–Study for $k = 1$. Stops when
    $\|G_{i+1} - G_i\|_F/\|G_i\|_F <$ `tol` or after `iterations` steps. The map is
    homogeneous of degree 1 ($T(cG)^{-1} = c\,T(G)^{-1}$), so $G$'s scale, which
    does not change the metric, is left as the iteration sets it.

    With a `symmetry` the quadrature is averaged over a symmetry group of $X$ (the
    exact $T$ commutes with it, and the balanced $G$ is invariant): in the monomial
    basis, $T_m = \sum_a\hat w_a m_a m_a^\dagger/\rho_G(z_a)$ is replaced by its group
    average and $T = N_k B\,T_m B^\dagger$ ($s = Bm$). `"phases"`
    ($z_i \to \zeta^{a_i}z_i$, $\zeta^d = 1$) keeps the entries with $I \equiv J \pmod d$
    componentwise; `"fermat"` moreover averages over permutations of the coordinates
    and takes the real part (complex conjugation). This removes the Monte Carlo error
    of the non-invariant part of $T$, the larger part: the same symmetries as
    `SpectralBasis`, with the same checks on $X$.

    **Arguments:**

    - `hypersurface`, `sample`: $X$ and a `PointSample` of all of it (the quadrature;
      a sample of another hypersurface is refused). A `chart_sample` is not refused
      (nothing in a `PointSample` records that it is one), but it covers one chart's
      region of $X$ only, and $T$ is then that region's integral, a different balanced
      metric.
    - `k`: the degree, an integer $\ge 1$.
    - `iterations`, `tol`: the stopping rule.
    - `symmetry`: None, `"phases"` or `"fermat"`.
    - `rtol`, `independent`: `rtol` in (0, 1), the relative cut of the sample Gram
      matrix's eigenvalues; with `independent=True` (default) the sections are the
      basis independent on $X$ (`AlgebraicPotential.independent`, cut `rtol`); with
      False all monomials (singular $T$ for $k \ge d$: refused).
    - `max_bytes`: an integer >= 1; refuse (naming the estimate) when the section values
      and their products would need more (default the memory available,
      `flows.available_memory`).

    A sample whose points span fewer than $h^0(X, \mathcal O(k)) = \binom{n+k}{n} -
    \binom{n+k-d}{n}$ sections (the degree-$k$ sections independent on $X$; the Gram
    eigenvalues above `rtol`) is refused by name, on either path: it is far too small for
    $T$. Each iterate $T(G)$ is checked (finite, condition number below $10^{13}$); a
    sample that spans the sections but admits no balanced metric (too few points, or too
    many on a subvariety) is refused as "the iteration diverged".

    **Returns:** a `BalancedResult`. Not jittable (a Python loop of jitted steps).
    """
    caller = "donaldson_balanced"
    k = check_count(k, f"{caller}: the degree k must be an integer >= 1", minimum=1)
    if not isinstance(hypersurface, Hypersurface):
        raise ValueError(f"{caller}: expected a Hypersurface, got {type(hypersurface).__name__}.")
    iterations = check_count(iterations, f"{caller}: iterations must be an integer >= 1", minimum=1)
    tol_value = real_scalar(tol)
    if tol_value is None or not (tol_value > 0 and math.isfinite(tol_value)):
        raise ValueError(f"{caller}: tol must be a finite real number > 0, got {tol!r}.")
    tol = tol_value
    rtol = _check_rtol(rtol, caller)
    _check_symmetry(hypersurface, symmetry, caller)
    _check_sample(hypersurface, sample, caller)
    max_bytes = _max_bytes(max_bytes, caller)
    n_monomials = math.comb(hypersurface.ambient_dim - 1 + k, k)
    group = (
        math.factorial(hypersurface.ambient_dim) if symmetry == "fermat" else 1 if symmetry else 0
    )
    _check_memory(sample.count, n_monomials, hypersurface.dim, max_bytes, caller, group)
    if not independent and k >= hypersurface.degree:
        raise ValueError(
            f"{caller}: with independent=False the {n_monomials} monomials of degree k = {k} "
            f">= deg p = {hypersurface.degree} are dependent on X (multiples of p vanish), so "
            "T(G) is singular; use independent=True."
        )
    start = time.perf_counter()
    # the span check, on both paths: the rank of the monomials' sample Gram matrix
    m, values, vectors = _monomial_gram(hypersurface, sample, k, caller)
    spanned = int(np.sum(values > rtol * values[-1]))
    expected = section_count(hypersurface, k)
    if spanned < expected:
        raise ValueError(
            f"{caller}: the sample's {sample.count} points span only {spanned} of the "
            f"{expected} sections of O({k}) on X: far too few for T ({expected}^2 entries); "
            "use many more points."
        )
    if independent:
        potential = AlgebraicPotential(hypersurface, k, sections=_whitened(values, vectors, rtol))
    else:
        potential = AlgebraicPotential(hypersurface, k)
    b = potential.sections
    n_sections = potential.size
    m = jnp.asarray(m)
    s = m @ b.T if independent else m  # the section values, (N, N_k)
    w = sample.weights / jnp.sum(sample.weights)
    if symmetry is None:

        def t_operator(g):
            return _t_operator(s, w, g)[0]
    else:
        mask, perms, conjugate = _symmetrizer(
            np.asarray(potential.monomials), hypersurface.degree, symmetry
        )
        mask = jnp.asarray(mask)
        perms = None if perms is None else jnp.asarray(perms)

        def t_operator(g):
            c = (w / _rho(s, g)).astype(m.dtype)
            t_m = _symmetrize((m * c[:, None]).T @ jnp.conj(m), mask, perms, conjugate)
            t = n_sections * (b @ t_m @ jnp.conj(b).T)
            return (t + jnp.conj(t).T) / 2

    g = potential.G
    residuals = []
    for step in range(1, iterations + 1):
        t = t_operator(g)
        _check_iterate(np.asarray(t), step, caller)
        new = jnp.linalg.inv(t)
        new = (new + jnp.conj(new).T) / 2
        residual = float(jnp.linalg.norm(new - g) / jnp.linalg.norm(g))
        g = new
        residuals.append(residual)
        if residual < tol:
            break
    potential = AlgebraicPotential(hypersurface, k, g, b)
    return BalancedResult(
        potential,
        jnp.asarray(residuals),
        bool(residuals[-1] < tol),
        time.perf_counter() - start,
    )
