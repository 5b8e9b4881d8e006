r"""Kähler potentials on a hypersurface as finite sums of bihomogeneous functions.

On $X = \{p = 0\} \subset \mathbb{CP}^n$ (coordinates $z_0, \dots, z_n$,
$\rho = |z|^2 = \sum_i z_i\bar z_i$) the real functions of bidegree $(l, l)$,
$l \le k$, are spanned by

$$f_{IJ} = \frac{z^I \bar z^J}{\rho^k}, \qquad |I| = |J| = k,$$

(real and imaginary parts; the lower degrees come free since
$\rho^k = \sum_{|I| = k} \frac{k!}{I!} |z^I|^2$). On $\mathbb{CP}^n$ they hold the
eigenfunctions of the Fubini–Study Laplacian $\square = g^{i\bar j}\partial_i\partial_{\bar j}$:
$\square f = -l(l+n) f$ on the harmonic part of bidegree $(l, l)$, with
multiplicity $\binom{n+l}{l}^2 - \binom{n+l-1}{l-1}^2$.

- `SpectralBasis`: the $f_{IJ}$ (optionally only combinations invariant under a
  symmetry group of $X$), centred and whitened on a sample so that they are
  independent on $X$: $\langle e_\alpha, e_\beta\rangle = \delta_{\alpha\beta}$,
  $\langle e_\alpha, 1\rangle = 0$. Values, first derivatives and complex
  Hessians in closed form (below).
- `SpectralPotential` (`spectral_flows.py`): $\phi = \sum_\alpha c_\alpha e_\alpha$ and its metric
  $g = J^\top \partial\bar\partial(\log\rho + \phi)\bar J$.
- `SpectralRicciFlow` (`spectral_flows.py`): Kähler–Ricci flow in Galerkin form, $\dot c = M^{-1} b$, and
  `newton_fixed_point` for its fixed point $b(c) = 0$.
- `laplacian_spectrum` (`spectrum.py`): the eigenvalues of $-\square_g$ on the basis.

Inner products are Monte Carlo quadratures of the $\Omega$ measure:
$\langle f, h\rangle = \sum_a w_a f(z_a) h(z_a) / \sum_a w_a$ with the sample's
weights $w_a = |\Omega_a|^2/\det g_{\mathrm{FS},a}$ (normalised).

Closed forms. With $P = z^I$, $Q = z^J$, the embedding Jacobian $J$
($(n+1) \times m$, $m = n - 1$), $\zeta = J^\top \bar z$ and, per monomial,
$D_I = J^\top \nabla z^I - k\, z^I \zeta/\rho$ ($m$ components),

$$\partial_i f_{IJ} = \frac{\bar Q\, D_{I,i}}{\rho^k}, \qquad
(J^\top \partial\bar\partial f_{IJ}\, \bar J)_{ij} = \frac{D_{I,i}\, \overline{D_{J,j}}}{\rho^k}
- k\, f_{IJ}\, g^\mathrm{FS}_{ij},$$

$g^\mathrm{FS} = (\rho J^\top \bar J - \zeta\zeta^\dagger)/\rho^2$ the pulled-back
Fubini–Study metric ($\partial\bar\partial\log f_{IJ} = -k\,\partial\bar\partial\log\rho$
makes the Hessian $f$ times a rank-one term minus $k f g^\mathrm{FS}$). A real
function $\mathrm{Re}(a f)$ has the Hermitian part of $a$ times these.
"""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from .._misc import available_memory, check_count, is_traced
from .hypersurface import OFF_SURFACE_TOLERANCE, Hypersurface, _relative_residual
from .sampling import PointSample

SYMMETRIES = (None, "phases", "fermat")
# Bytes of complex128.
_COMPLEX_BYTES = 16
# Per-point work arrays are kept near this size when a sample is evaluated in chunks.
_CHUNK_BYTES = 64 * 2**20
# Singular values of the centred raw values below this times the largest raw RMS are round-off.
_ROUNDOFF = 1e3 * float(np.finfo(np.float64).eps)
# Fermat symmetry: orbits are enumerated in Python; refuse beyond this many phase pairs.
_MAX_PAIRS = 5_000_000


def _default_max_bytes() -> int:
    """The memory available now (`flows.available_memory`, as `flows.check_memory` uses), or 4 GiB where unknown."""
    available = available_memory()
    return 4 * 2**30 if available is None else available


def _monomials(size: int, k: int) -> np.ndarray:
    """The exponent vectors of the degree-`k` monomials in `size` variables, (C(size-1+k, k), size)."""
    rows = []
    for combo in itertools.combinations_with_replacement(range(size), k):
        rows.append(np.bincount(np.asarray(combo, dtype=int), minlength=size))
    return np.asarray(rows, dtype=int).reshape(-1, size)


def _polynomial_terms(hypersurface: Hypersurface) -> dict:
    """{exponent tuple: coefficient}, repeated monomials added, zeros dropped."""
    terms: dict = {}
    exponents = np.asarray(hypersurface.exponents)
    for e, c in zip(exponents, np.asarray(hypersurface.coefficients), strict=True):
        terms[tuple(int(x) for x in e)] = terms.get(tuple(int(x) for x in e), 0) + complex(c)
    return {e: c for e, c in terms.items() if abs(c) > 0}


def _proportional(a: dict, b: dict) -> bool:
    """Whether two polynomials (term dictionaries) agree up to a nonzero factor."""
    if a.keys() != b.keys():
        return False
    key = next(iter(a))
    ratio = b[key] / a[key]
    return all(abs(b[e] - ratio * a[e]) <= 1e-12 * (abs(b[e]) + abs(a[e])) for e in a)


def _check_symmetry(
    hypersurface: Hypersurface, symmetry, caller: str, otherwise: str = "symmetry=None"
) -> None:
    """`ValueError` naming `caller` unless X has `symmetry`; `otherwise` is the remedy offered."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"{caller}: symmetry must be one of {SYMMETRIES}, got {symmetry!r}.")
    if symmetry is None:
        return
    d = hypersurface.degree
    # the monomials present, as the permutation check below reads them: a zero coefficient
    # (the Dwork member at psi = 0 is the Fermat quintic) is no monomial of X
    terms = _polynomial_terms(hypersurface)
    e = np.asarray(list(terms), dtype=int) % d
    if np.any(e != e[:1]):
        raise ValueError(
            f"{caller}: symmetry={symmetry!r} needs X invariant under each phase z_i -> "
            f"exp(2 pi i / {d}) z_i, but the polynomial's monomials differ in their exponents "
            f"mod the degree (e.g. the Dwork family); use {otherwise}."
        )
    if symmetry == "fermat":
        size = hypersurface.ambient_dim
        generators = [(1, 0, *range(2, size)), (*range(1, size), 0)]
        for perm in generators:
            permuted = {tuple(e[i] for i in perm): c for e, c in terms.items()}
            if not _proportional(terms, permuted):
                raise ValueError(
                    f"{caller}: symmetry='fermat' needs X invariant under permutations of the "
                    f"coordinates, and this polynomial is not; use symmetry='phases' or {otherwise}."
                )
        if not _proportional(terms, {e: c.conjugate() for e, c in terms.items()}):
            raise ValueError(
                f"{caller}: symmetry='fermat' needs X invariant under complex conjugation "
                "(coefficients real up to a common factor), and it is not; use "
                f"symmetry='phases' or {otherwise}."
            )


def _pair_count(monomials: np.ndarray, degree: int, symmetry) -> int:
    """How many ordered pairs (I, J) the symmetry allows: the number of real functions
    before orbit sums (Re and Im of each unordered pair, one for I = J)."""
    if symmetry is None:
        return monomials.shape[0] ** 2
    _, counts = np.unique(monomials % degree, axis=0, return_counts=True)
    return int(np.sum(counts.astype(np.int64) ** 2))


def _members(monomials: np.ndarray, degree: int, symmetry):
    """The raw real functions $r = \\mathrm{Re}\\sum_m a_m f_{I_m J_m}$ as member lists.

    Returns (left, right, coefficient, owner, count): member m contributes
    $a_m f_{I_m J_m}$ (I_m = monomials[left[m]], J_m = monomials[right[m]]) to raw
    function owner[m]; `count` raw functions.
    """
    size = monomials.shape[0]
    left, right, coef, owner = [], [], [], []
    if symmetry is None:
        classes = [np.arange(size)]
    else:
        _, label = np.unique(monomials % degree, axis=0, return_inverse=True)
        label = np.asarray(label).ravel()
        classes = [np.flatnonzero(label == c) for c in range(label.max() + 1)]
    if symmetry == "fermat":
        orbits: dict = {}
        for members in classes:
            for i in members:
                for j in members:
                    cols = tuple(sorted(zip(monomials[i], monomials[j], strict=True)))
                    swapped = tuple(sorted(zip(monomials[j], monomials[i], strict=True)))
                    key = min(cols, swapped)
                    index = orbits.setdefault(key, len(orbits))
                    left.append(i)
                    right.append(j)
                    coef.append(1.0)
                    owner.append(index)
        count = len(orbits)
    else:
        count = 0
        for members in classes:
            for a, i in enumerate(members):
                for j in members[a:]:
                    left.append(i)
                    right.append(j)
                    coef.append(1.0)
                    owner.append(count)
                    count += 1
                    if i != j:
                        left.append(i)
                        right.append(j)
                        coef.append(-1j)
                        owner.append(count)
                        count += 1
    return (
        np.asarray(left, dtype=int),
        np.asarray(right, dtype=int),
        np.asarray(coef, dtype=complex),
        np.asarray(owner, dtype=int),
        count,
    )


def _transform(t: Float[Array, "R P"], x: Complex[Array, "R *shape"]) -> Complex[Array, "P *shape"]:
    r"""$T^\top x$ for real $T$ and complex $x$: two real products."""
    flat = x.reshape(x.shape[0], -1)
    real = t.T @ jnp.real(flat).astype(t.dtype)
    imag = t.T @ jnp.imag(flat).astype(t.dtype)
    return jax.lax.complex(real, imag).astype(x.dtype).reshape(t.shape[1], *x.shape[1:])


def _buckets(sizes: np.ndarray, growth: float = 1.25) -> list[tuple[int, int]]:
    """Ranges [lo, hi) of ascending `sizes` within which the largest is at most `growth`
    times the smallest (so that padding each range to its largest wastes at most that)."""
    ranges, lo = [], 0
    for r in range(1, len(sizes) + 1):
        if r == len(sizes) or sizes[r] > growth * max(sizes[lo], 1):
            ranges.append((lo, r))
            lo = r
    return ranges


def _max_bytes(max_bytes, caller: str) -> int:
    """`max_bytes` checked (an integer >= 1), or the memory available where it is None."""
    if max_bytes is None:
        return _default_max_bytes()
    return check_count(max_bytes, f"{caller}: max_bytes must be an integer >= 1 (bytes)", minimum=1)


def _check_sample(hypersurface: Hypersurface, sample, caller: str) -> None:
    if not isinstance(sample, PointSample):
        raise ValueError(f"{caller}: expected a PointSample, got {type(sample).__name__}.")
    if sample.points.shape[1] != hypersurface.ambient_dim:
        raise ValueError(
            f"{caller}: the sample's points have {sample.points.shape[1]} coordinates but the "
            f"hypersurface is in CP^{hypersurface.ambient_dim - 1}: a sample of another "
            "hypersurface."
        )
    if is_traced(sample.points):
        return  # inside jit: the values cannot be checked
    with jax.ensure_compile_time_eval():  # concrete even inside jit
        if is_traced(hypersurface.coefficients):
            return
        # the residual and tolerance `point_sample` applies: "a point of X" means one thing
        residual = np.asarray(_relative_residual(hypersurface, sample.points))
    if np.max(residual) > OFF_SURFACE_TOLERANCE:
        raise ValueError(
            f"{caller}: the sample's points are not on the hypersurface (relative "
            f"residual |p(z)| up to {np.max(residual):.1e}): a sample of another hypersurface."
        )


def _memory_needed(points: int, functions: int, m: int) -> int:
    """Bytes for values, first derivatives and Hessians of `functions` at `points`, and one copy
    more (a Newton Jacobian, the Gram matrices)."""
    return 2 * points * functions * (1 + m + m * m) * _COMPLEX_BYTES


def _check_memory(points: int, functions: int, m: int, max_bytes: int, caller: str) -> None:
    need = _memory_needed(points, functions, m)
    if need > max_bytes:
        raise ValueError(
            f"{caller}: a basis of {functions} real functions at {points} points needs about "
            f"{need / 2**30:.2f} GiB (values, derivatives and complex Hessians), over the "
            f"{max_bytes / 2**30:.2f} GiB allowed (max_bytes); lower the degree k, use a "
            "symmetry, or fewer points."
        )


class SpectralBasis(eqx.Module):
    r"""Real bihomogeneous functions of bidegree $(l, l)$, $l \le k$, on $X$, independent on $X$.

    The raw functions are $\mathrm{Re}\, f_{IJ}$ and $\mathrm{Im}\, f_{IJ}$,
    $f_{IJ} = z^I\bar z^J/|z|^{2k}$ over the degree-$k$ monomials $I \le J$
    ($\binom{n+k}{n}^2$ of them), or with a `symmetry`:

    - `"phases"`: only $I \equiv J \pmod d$ componentwise, the functions invariant
      under every $z_i \to \zeta z_i$, $\zeta^d = 1$ (needs $X$ invariant: the
      polynomial's monomials agree in their exponents mod $d$);
    - `"fermat"`: moreover summed over the orbits of $(I, J)$ under permutations of
      the coordinates and $(I, J) \to (J, I)$ (complex conjugation), one real
      function $\sum_{(I', J') \in \text{orbit}} f_{I'J'}$ per orbit (needs $X$
      invariant under both: the Fermat hypersurfaces $\sum_i z_i^d = 0$).

    They are centred and whitened on `sample`: with $R$ the raw values,
    each raw function scaled by its root mean square $D$ (their sizes differ by orders of
    magnitude), $X = \mathrm{diag}(\sqrt{w/\sum w})(R - \bar R)D^{-1} = U S V^\top$, the basis is
    $e = (r - \bar r) D^{-1} V_+ S_+^{-1}$ over the singular values
    $s > $ `rtol` $\cdot s_\max$ (and above round-off, $2\times10^{-13}$). That drops the
    constant (it does not move $g$) and the combinations that vanish on $X$ (multiples of
    $p$), and makes $\langle e_\alpha, e_\beta\rangle = \delta_{\alpha\beta}$ on `sample`.
    A sample of $N$ points holds at most $N - 1$ centred functions: with fewer points than
    the span needs, the basis is cut to $N - 1$ (it then interpolates the sample).

    **Arguments:**

    - `hypersurface`: the `Hypersurface` $X$.
    - `sample`: a `PointSample` of $X$ (the whitening quadrature).
    - `k`: the degree, an integer $\ge 1$.
    - `symmetry`: None, `"phases"` or `"fermat"`.
    - `rtol`: relative singular-value cut of the whitening (default $10^{-12}$: the scaled
      invariant functions of the Fermat quintic reach down to about $10^{-9}$ of the largest
      at $k = 14$, round-off stays near $10^{-15}$).
    - `max_bytes`: refuse a basis whose values and Hessians at the sample's points
      would need more (default the memory available, `flows.available_memory`).

    **Fields:** `monomials` (N_k, n + 1) exponents; `left`, `right` (M,) monomial
    indices of the terms $f_{IJ}$; `coefficients` (M, P) complex, basis function
    $\gamma$ being $\mathrm{Re}\sum_m B_{m\gamma} f_{I_m J_m} - o_\gamma$; `offset` (P,);
    `hypersurface`; `k`; `symmetry`; `raw_size` (the functions before whitening).
    Stored factored, $B_{m\gamma} = a_m T_{\mathrm{owner}(m)\gamma}$: `member_coefficients`
    $a_m$ (M,) complex, `owner` (M,) sorted (member $m$ contributes $a_m f_{I_m J_m}$
    to raw function `owner[m]`), `tables` the raw functions' members in buckets of
    similar counts (raw functions numbered by their number of members; bucket $b$ a
    (raw functions, S_b) table padded with M, so that padding costs at most a quarter
    more work), `transform` $T$ (raw_size, P) real.

    Per point everything is a sum over members of $F_m = a_m f_{I_m J_m}$ times
    constants: with $A = J^\top \mathrm{diag}(1/z)$ (so $J^\top\nabla z^I = z^I A I$),
    $v = k\zeta/\rho$ and, per raw function $r$, $s_0 = \sum F_m$,
    $s_I = \sum F_m I_m$, $s_J = \sum F_m J_m$, $Q = \sum F_m I_m J_m^\top$ (one
    batched matrix product per bucket of padded members),
    $\sum_m a_m D_{I_m} D_{J_m}^\dagger/\rho^k = A Q A^\dagger - (A s_I) v^\dagger
    - v (\bar A s_J)^\top + s_0 v v^\dagger$ and
    $\sum_m (a_m \bar z^{J_m} D_{I_m} + \bar a_m \bar z^{I_m} D_{J_m})/\rho^k
    = A(s_I + \bar s_J) - (s_0 + \bar s_0) v$; then one product with $T$. An exact
    zero coordinate is moved to $10^{-150}$ (the functions are polynomials in $z,
    \bar z$: a change of order $10^{-150}$).
    """

    hypersurface: Hypersurface
    monomials: Int[Array, "Nk n1"]
    left: Int[Array, " M"]
    right: Int[Array, " M"]
    member_coefficients: Complex[Array, " M"]
    owner: Int[Array, " M"]
    tables: tuple[Int[Array, "r S"], ...]
    transform: Float[Array, "R P"]
    offset: Float[Array, " P"]
    k: int = eqx.field(static=True)
    symmetry: str | None = eqx.field(static=True)
    raw_size: int = eqx.field(static=True)

    def __init__(
        self,
        hypersurface: Hypersurface,
        sample: PointSample,
        k: int,
        *,
        symmetry: str | None = None,
        rtol: float = 1e-12,
        max_bytes: int | None = None,
    ):
        k = check_count(k, "SpectralBasis: the degree k must be an integer >= 1", minimum=1)
        if not isinstance(hypersurface, Hypersurface):
            raise ValueError(
                f"SpectralBasis: expected a Hypersurface, got {type(hypersurface).__name__}."
            )
        _check_symmetry(hypersurface, symmetry, "SpectralBasis")
        if not (isinstance(rtol, float | int) and 0 < rtol < 1):
            raise ValueError(f"SpectralBasis: rtol must be a number in (0, 1), got {rtol!r}.")
        max_bytes = _max_bytes(max_bytes, "SpectralBasis")
        size = hypersurface.ambient_dim
        m = size - 2
        n_monomials = math.comb(size - 1 + k, k)
        if not isinstance(sample, PointSample):
            raise ValueError(f"SpectralBasis: expected a PointSample, got {type(sample).__name__}.")
        points = sample.count
        # Count before allocating anything: the full basis has C(n + k, n)^2 functions.
        if symmetry is None:
            _check_memory(points, n_monomials**2, m, max_bytes, "SpectralBasis")
        monomials = _monomials(size, k)
        pairs = _pair_count(monomials, hypersurface.degree, symmetry)
        if symmetry == "phases":
            _check_memory(points, pairs, m, max_bytes, "SpectralBasis")
        elif symmetry == "fermat":
            # an orbit of permutations and (I, J) -> (J, I) has at most 2 (n + 1)! pairs: a
            # lower bound on the functions, checked before the (slow) enumeration
            _check_memory(
                points, -(-pairs // (2 * math.factorial(size))), m, max_bytes, "SpectralBasis"
            )
        if pairs > _MAX_PAIRS:
            raise ValueError(
                f"SpectralBasis: degree k = {k} has {pairs} symmetric pairs of monomials, over "
                f"the {_MAX_PAIRS} the orbit enumeration allows; lower k."
            )
        # after the counts (it evaluates p at every point), before the enumeration
        _check_sample(hypersurface, sample, "SpectralBasis")
        left, right, coef, owner, count = _members(monomials, hypersurface.degree, symmetry)
        _check_memory(points, count, m, max_bytes, "SpectralBasis")
        # raw functions numbered by their number of members, members sorted by owner
        sizes = np.bincount(owner, minlength=count)
        rank = np.argsort(sizes, kind="stable")
        relabel = np.empty(count, dtype=int)
        relabel[rank] = np.arange(count)
        owner = relabel[owner]
        sizes = sizes[rank]
        order = np.argsort(owner, kind="stable")

        self.hypersurface = hypersurface
        self.monomials = jnp.asarray(monomials)
        self.left = jnp.asarray(left[order])
        self.right = jnp.asarray(right[order])
        self.member_coefficients = jnp.asarray(coef[order])
        self.owner = jnp.asarray(owner[order])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        tables = []
        for lo, hi in _buckets(sizes):
            slots = np.arange(sizes[hi - 1])
            tables.append(
                np.where(slots < sizes[lo:hi, None], starts[lo:hi, None] + slots, left.shape[0])
            )
        self.tables = tuple(jnp.asarray(t) for t in tables)
        self.k = k
        self.symmetry = symmetry
        self.raw_size = count
        # the raw functions themselves first (T = identity), whitened below
        self.transform = jnp.eye(count)
        self.offset = jnp.zeros(count)
        values = np.asarray(self.values(sample.points))
        w = np.asarray(sample.weights)
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise ValueError(
                "SpectralBasis: the sample's weights must be finite and >= 0, not all 0 (they "
                "are the whitening's quadrature)."
            )
        w = w / w.sum()
        mean = w @ values
        # each raw function scaled to unit root mean square first: their sizes differ by 1e5
        # (|z^I|^2 / |z|^2k is small for spread-out I), and unscaled the relative cut took
        # genuinely independent functions for round-off (91 of 92 at k = 13, 175 of 215 at 16)
        # (a function that vanishes to round-off, as those of a zero coordinate do on CP^n as
        # the hyperplane z_{n+1} = 0, is left as it is: scaled up it would pass for one)
        norms = np.sqrt(w @ values**2)
        norms = np.where(norms > _ROUNDOFF * np.max(norms, initial=0.0), norms, 1.0)
        x = np.sqrt(w)[:, None] * (values - mean) / norms
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        # and an absolute floor at round-off (the centred constant of an invariant basis at
        # k = 1 is ~1e-17 of its size, not a function)
        keep = s > max(rtol * s[0], _ROUNDOFF)
        transform = vt[keep].T / s[keep] / norms[:, None]
        self.transform = jnp.asarray(transform)
        self.offset = jnp.asarray(mean @ transform)

    @property
    def size(self) -> int:
        """P, the number of basis functions."""
        return self.transform.shape[1]

    @property
    def coefficients(self) -> Complex[Array, "M P"]:
        r"""$B_{m\gamma} = a_m T_{\mathrm{owner}(m)\gamma}$, dense (M, P)."""
        return self.member_coefficients[:, None] * self.transform[self.owner].astype(complex)

    def _per_point(self) -> int:
        """Complex numbers of work arrays per point (sets the batch of chunked evaluation)."""
        m, size = self.hypersurface.dim, self.hypersurface.ambient_dim
        return sum(t.size for t in self.tables) * 2 + self.raw_size * (
            self.size + (size + 1) ** 2 + 2 * m * m
        )

    def _sums(self, z: Complex[Array, " n1"], values_only: bool = False):
        r"""$z$ (zeros moved), $\rho$, and per raw function $(s_0, s_I, s_J, Q)$ stacked (R, 1 + 2(n+1) + (n+1)^2);
        $s_0$ alone, (R, 1), with `values_only`."""
        z = z.astype(self.hypersurface.coefficients.dtype)
        z = jnp.where(z == 0, z + 1e-150, z)
        size = z.shape[0]
        rho = jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2)
        # z^I over the monomials from the powers z_i^e, e = 0..k
        powers = jnp.concatenate(
            [
                jnp.ones((size, 1), dtype=z.dtype),
                jnp.cumprod(jnp.tile(z[:, None], (1, self.k)), axis=1),
            ],
            axis=1,
        )
        monomial = jnp.prod(powers[jnp.arange(size)[None, :], self.monomials], axis=1)
        terms = (
            self.member_coefficients
            * monomial[self.left]
            * jnp.conj(monomial[self.right])
            * (rho ** (-self.k)).astype(z.dtype)
        )
        terms = jnp.concatenate([terms, jnp.zeros(1, terms.dtype)])  # index M: the padding
        if values_only:
            return (
                z,
                rho,
                jnp.concatenate([jnp.sum(terms[t], axis=1) for t in self.tables])[:, None],
            )
        sums = []
        for table in self.tables:
            padded = terms[table]  # (r, S_b)
            constants = self._constants(table).astype(jnp.real(padded).dtype)
            # complex times real: two real products
            real = jnp.einsum("rs,rsq->rq", jnp.real(padded), constants)
            imag = jnp.einsum("rs,rsq->rq", jnp.imag(padded), constants)
            sums.append(jax.lax.complex(real, imag))
        return z, rho, jnp.concatenate(sums)

    def _constants(self, table: Int[Array, "r S"]) -> Float[Array, "r S Q"]:
        """(1, I, J, I J^T) of each padded member of `table` (zeros at the padding)."""
        mask = (table < self.left.shape[0]).astype(float)[..., None]
        index = jnp.minimum(table, self.left.shape[0] - 1)
        i = self.monomials[self.left[index]].astype(float)
        j = self.monomials[self.right[index]].astype(float)
        outer = (i[..., :, None] * j[..., None, :]).reshape(*i.shape[:2], -1)
        return mask * jnp.concatenate([jnp.ones(i.shape[:2] + (1,)), i, j, outer], axis=-1)

    # Per point.

    def __call__(self, z: Complex[Array, " n1"]) -> Float[Array, " P"]:
        r"""$e_\gamma([z])$ at one point (homogeneous coordinates, any scaling)."""
        _, _, sums = self._sums(z, values_only=True)
        return jnp.real(sums[:, 0]) @ self.transform - self.offset

    def values(self, points: Complex[Array, "N n1"]) -> Float[Array, "N P"]:
        """$e_\\gamma$ at many points, evaluated in chunks."""
        return _chunked(lambda z: self(z), points, self._per_point())

    def gradient(
        self, z: Complex[Array, " n1"], jacobian: Complex[Array, "n1 m"] | None = None
    ) -> Complex[Array, "P m"]:
        r"""$\partial_i e_\gamma$ in the local coordinates of `jacobian` (None: the ambient ones).

        $\partial_i \mathrm{Re}(a f_{IJ}) = (a\bar z^J D_{I,i} + \bar a \bar z^I D_{J,i})/(2\rho^k)$.
        """
        return self.geometry(z, jacobian)[1]

    def hessian(
        self, z: Complex[Array, " n1"], jacobian: Complex[Array, "n1 m"] | None = None
    ) -> Complex[Array, "P m m"]:
        r"""$J^\top \partial\bar\partial e_\gamma\, \bar J$ (None: $J = I$, the ambient $\partial_a\partial_{\bar b} e_\gamma$).

        $\mathrm{Herm}\big(\rho^{-k}\sum_m B_{m\gamma} D_{I_m} D_{J_m}^\dagger\big)
        - k\,(e_\gamma + o_\gamma)\, g^\mathrm{FS}$ (module docstring).
        """
        return self.geometry(z, jacobian)[2]

    def geometry(self, z, jacobian=None):
        """(values (P,), gradients (P, m), Hessians (P, m, m)) at one point, in closed form."""
        return self._geometry(z, jacobian)[:3]

    def _geometry(self, z, jacobian):
        """`geometry` and the pulled-back Fubini–Study metric."""
        z, rho, sums = self._sums(z)
        size = z.shape[0]
        jac = jnp.eye(size, dtype=z.dtype) if jacobian is None else jacobian.astype(z.dtype)
        s0 = sums[:, 0]
        s_i, s_j = sums[:, 1 : 1 + size], sums[:, 1 + size : 1 + 2 * size]
        q = sums[:, 1 + 2 * size :].reshape(-1, size, size)
        rho_c = rho.astype(z.dtype)
        zeta = jac.T @ jnp.conj(z)
        g_fs = (
            rho_c * (jac.T @ jnp.conj(jac)) - zeta[:, None] * jnp.conj(zeta)[None, :]
        ) / rho_c**2
        a = jac.T / z[None, :]  # J^T diag(1/z)
        v = self.k * zeta / rho_c
        t = self.transform
        raw = jnp.real(s0)
        values = raw @ self.transform - self.offset
        a_si = s_i @ a.T  # (R, m): A s_I
        gradient = (a_si + jnp.conj(s_j) @ a.T - (s0 + jnp.conj(s0))[:, None] * v) / 2
        outer = (
            (a @ q) @ jnp.conj(a).T  # A Q A^dagger per raw function
            - a_si[:, :, None] * jnp.conj(v)[None, None, :]
            - v[None, :, None] * (s_j @ jnp.conj(a).T)[:, None, :]
            + s0[:, None, None] * (v[:, None] * jnp.conj(v)[None, :])
        )
        outer = (outer + jnp.conj(jnp.swapaxes(outer, 1, 2))) / 2
        hessian = _transform(t, outer - self.k * raw.astype(z.dtype)[:, None, None] * g_fs)
        return values, _transform(t, gradient), hessian, g_fs

    def evaluate(
        self, sample: PointSample, *, max_bytes: int | None = None
    ) -> tuple[Float[Array, "N P"], Complex[Array, "N P m"], Complex[Array, "N P m m"]]:
        """Values, first derivatives and Hessians (local coordinates) at every point of `sample`.

        Refuses (naming the memory needed) a sample too large for `max_bytes`
        (default the memory available, `flows.available_memory`).
        """
        _check_sample(self.hypersurface, sample, "SpectralBasis.evaluate")
        m = self.hypersurface.dim
        max_bytes = _max_bytes(max_bytes, "SpectralBasis.evaluate")
        _check_memory(sample.count, self.size, m, max_bytes, "SpectralBasis.evaluate")
        return _evaluate(self, sample.points, sample.jacobian, self._per_point())


@eqx.filter_jit
def _evaluate(basis, points, jacobian, per_point):
    return jax.lax.map(
        lambda a: basis.geometry(a[0], a[1]), (points, jacobian), batch_size=_batch(per_point)
    )


def _batch(per_point: int) -> int:
    return max(1, min(4096, _CHUNK_BYTES // (_COMPLEX_BYTES * max(per_point, 1))))


@eqx.filter_jit
def _chunked(fn, points, per_point):
    return jax.lax.map(fn, points, batch_size=_batch(per_point))
