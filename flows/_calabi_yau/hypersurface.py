r"""Calabi–Yau hypersurfaces $X = \{p = 0\} \subset \mathbb{CP}^n$: the polynomial, patches, $\Omega$, weights.

Conventions (docs/conventions.md, Calabi–Yau hypersurfaces; fixed, tests rely on them):

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
  Poincaré residue; patch-independent when $d = n + 1$). For $d \ne n + 1$ the
  code uses $\Omega = |z|^{d-n-1}/(\partial p/\partial z_\mathrm{elim})$, $z$
  scaled to its patch: the residue is then a section of $K_X\otimes\mathcal O(n + 1 - d)$,
  and $|z|^{2(d-n-1)}$ is the Fubini–Study Hermitian metric of $\mathcal O(n + 1 - d)$
  in the patch, so $|\Omega|^2$ does not depend on the patch (the factor is 1 for
  $d = n + 1$).
- Fubini–Study: $g^\mathrm{amb}_{a\bar b} = \partial_a\partial_{\bar b}\log|z|^2
  = (\delta_{ab}|z|^2 - \bar z_a z_b)/|z|^4$, pulled back as
  $g_{i\bar j} = (J^\top g^\mathrm{amb} \bar J)_{ij}$, so that a holomorphic
  tangent vector $v$ has $|v|^2 = v^\top g\, \bar v$. "$\det g$" is the
  density of $g^{n-1}$ against Lebesgue measure in the local coordinates.
- The raw weight $|\Omega|^2 / \det g_\mathrm{FS}$ turns averages over points
  distributed by $\det g_\mathrm{FS}$ (`sample_points`) into averages over the
  measure $|\Omega|^2$ (a density in the local coordinates): $\Omega\wedge\bar\Omega$
  for $d = n + 1$, $|z|^{2(d-n-1)}\,\Omega\wedge\bar\Omega$ otherwise
  (`PointSample` normalises it to mean 1).
"""

import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from .._misc import check_count, is_traced

# A point is rejected when |dp/dz_elim| is below this fraction of its natural scale
# d * sum|c_m| * max|z|^(d-1): that is a (numerically) singular point of X, where
# Omega and the weight blow up. On the Fermat quintic the ratio is >= 0.066 everywhere;
# double roots (a non-reduced component) sit at ~1e-8.
_DEGENERATE_TOLERANCE = 1e-6


def _complex_dtype():
    return jax.dtypes.canonicalize_dtype(jnp.complex128)


class Hypersurface(eqx.Module):
    r"""A hypersurface $X = \{p = 0\} \subset \mathbb{CP}^n$, $p$ homogeneous of degree $d$.

    $p(z) = \sum_m c_m \prod_i z_i^{e_{mi}}$. Repeated monomials add. $X$ is
    Calabi–Yau when $d = n + 1$ (the quintic in $\mathbb{CP}^4$, the quartic
    K3 in $\mathbb{CP}^3$, the cubic curve in $\mathbb{CP}^2$); the other
    constructions here work for any degree, but the residue
    $1/(\partial p/\partial z_\mathrm{elim})$ is then a section of a line bundle
    and depends on the patch; `patch_geometry` multiplies it by $|z|^{d-n-1}$
    ($z$ scaled to its patch, the Fubini–Study metric of that bundle), which
    makes $|\Omega|$ and the weights patch-independent (module docstring).

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
            # repeated monomials add up: their sum is the polynomial
            rows, where = np.unique(e, axis=0, return_inverse=True)
            combined = np.zeros(len(rows), dtype=np.complex128)
            np.add.at(combined, where.ravel(), c.astype(np.complex128))
            if not np.any(combined != 0):
                raise ValueError(
                    "Hypersurface: the polynomial cancels to zero (its repeated monomials' "
                    "coefficients sum to 0): p = 0 everywhere."
                )
            # |dp|^2 and |Omega|^2 square the coefficients: beyond this they overflow
            size = np.abs(combined[combined != 0])
            bound = math.sqrt(np.finfo(_complex_dtype()).max) * 1e-4
            if size.max() > bound or size.max() / size.min() > bound:
                raise ValueError(
                    f"Hypersurface: coefficients from {size.min():.3g} to {size.max():.3g} in "
                    f"magnitude; the sampling and the metric square them, which overflows unless "
                    f"the largest and its ratio to the smallest are at most {bound:.1e}. "
                    "(The hypersurface does not change when every coefficient is scaled alike.)"
                )
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

        `psi`: a finite real or complex number (a scalar) with $\psi^5 \ne 1$. Those
        members are singular: $dp = 0$ means $z_i^5 = \psi\prod_j z_j$ for every $i$,
        so their nodes are the points $z = (\omega^{a_i})$, $\omega = e^{2\pi i/5}$,
        with $\psi\,\omega^{\sum_i a_i} = 1$ (not every such point). $\psi = 0$ is the
        Fermat quintic.
        """
        if np.ndim(psi) != 0:
            raise ValueError(
                "Hypersurface.dwork_quintic: psi must be a single number (a scalar), got an "
                f"array of shape {np.shape(psi)}."
            )
        if not is_traced(psi):
            if isinstance(psi, bool) or not isinstance(psi, numbers.Number | np.ndarray | Array):
                raise ValueError(f"Hypersurface.dwork_quintic: psi must be a number, got {psi!r}.")
            value = complex(np.asarray(psi).item())
            if not (math.isfinite(value.real) and math.isfinite(value.imag)):
                raise ValueError(
                    f"Hypersurface.dwork_quintic: psi must be finite, got psi = {psi!r}."
                )
            # |psi| far from 1 cannot give psi^5 = 1 (and psi^5 may overflow there)
            if abs(abs(value) - 1) < 0.5 and abs(value**5 - 1) <= 1e-12:
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


# Patches, Omega, weights.

# A point is refused as off X (`patch_geometry`, `point_sample`) when its relative residual
# |p(z)| / (sum_m |c_m| |z|^d) (in [0, 1]; |z| Euclidean) exceeds this. Sampled points sit at
# ~1e-16 in float64 and below 1e-7 in float32 (or cast to complex64), so float32 points pass
# with a margin of 100; a random point of CP^n is at ~0.1.
OFF_SURFACE_TOLERANCE = 1e-5


def _local_geometry(hypersurface: Hypersurface, z, patch, eliminate):
    """Everything at one point; `patch`/`eliminate` of -1 mean the default choices.

    Any other index outside [0, n] rejects the point (indexing would clamp it).
    """
    size = hypersurface.ambient_dim
    in_range = ((patch == -1) | ((patch >= 0) & (patch < size))) & (
        (eliminate == -1) | ((eliminate >= 0) & (eliminate < size))
    )
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
        in_range
        & jnp.all(jnp.isfinite(z))
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
    norm2 = jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2).astype(z.dtype)
    ambient = (jnp.eye(size, dtype=z.dtype) * norm2 - jnp.conj(z)[:, None] * z[None, :]) / norm2**2
    g = jac.T @ ambient @ jnp.conj(jac)
    det = jnp.real(jnp.linalg.det(g))
    omega = 1 / safe_elim
    if hypersurface.degree != size:
        # |z|^(d - n - 1), z scaled to its patch: the residue, a section of K_X(n + 1 - d), in
        # the Fubini–Study metric of O(n + 1 - d), so |omega| is the same in every patch.
        # (For d = n + 1 it is 1: the Calabi–Yau path is left exactly as it was.)
        omega = omega * (jnp.real(norm2) ** ((hypersurface.degree - size) / 2)).astype(z.dtype)
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


@eqx.filter_jit
def _relative_residual(hypersurface: Hypersurface, z) -> Float[Array, " N"]:
    r"""$|p(z)| / (\sum_m |c_m|\, |z|^d)$ at each point, in $[0, 1]$ ($|z_i| \le |z|$).

    Scale-invariant; computed with $z / \max_i|z_i|$, so that $|z|^d$ cannot overflow.
    NaN exactly at a point that is zero or not finite.
    """
    z = hypersurface._as_points(z)
    z = z / jnp.max(jnp.abs(z), axis=-1, keepdims=True).astype(z.dtype)
    norm = jnp.linalg.norm(z, axis=-1) ** hypersurface.degree
    return jnp.abs(hypersurface.polynomial(z)) / (
        jnp.sum(jnp.abs(hypersurface.coefficients)) * norm
    )


def _check_on_surface(hypersurface: Hypersurface, points, caller: str) -> None:
    """`ValueError` naming `caller` for a point that is zero, not finite, or off X; none under tracing."""
    if is_traced(points) or any(is_traced(x) for x in jax.tree.leaves(hypersurface)):
        return  # inside jit: the values cannot be checked
    with jax.ensure_compile_time_eval():  # concrete even inside an outer jit
        residual = np.asarray(_relative_residual(hypersurface, points))
    bad = np.flatnonzero(~np.isfinite(residual))
    if bad.size:
        raise ValueError(
            f"{caller}: {bad.size} of {residual.size} points are zero or not finite (first: "
            f"point {bad[0]}); a point of CP^n has finite homogeneous coordinates, not all zero."
        )
    off = np.flatnonzero(residual > OFF_SURFACE_TOLERANCE)
    if off.size:
        raise ValueError(
            f"{caller}: {off.size} of {residual.size} points are off the hypersurface "
            f"(first: point {off[0]}, relative residual |p(z)| / (sum |c_m| |z|^d) = "
            f"{residual[off[0]]:.2e} > {OFF_SURFACE_TOLERANCE:.0e}); pass points of X, e.g. "
            "from sample_points."
        )


def _check_overrides(hypersurface: Hypersurface, points, patch, eliminate, caller: str):
    """The (N,) integer `patch`, `eliminate` overrides (None: all -1), checked; `ValueError` otherwise.

    Dtypes and shapes always; values (-1 or in [0, n], patch != eliminate) outside a trace.
    """
    size = hypersurface.ambient_dim
    checked = {}
    for name, index in (("patch", patch), ("eliminate", eliminate)):
        if index is None:
            checked[name] = np.full(points.shape[:1], -1, dtype=int)
            continue
        index = index if is_traced(index) else np.asarray(index)
        if index.dtype == np.bool_ or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(
                f"{caller}: {name} must be an integer array (coordinate indices, -1 for the "
                f"default), got dtype {index.dtype}."
            )
        if index.shape != points.shape[:1]:
            raise ValueError(
                f"{caller}: {name} must have shape ({points.shape[0]},), got {index.shape}."
            )
        if not is_traced(index):
            bad = np.flatnonzero((index != -1) & ((index < 0) | (index >= size)))
            if bad.size:
                raise ValueError(
                    f"{caller}: {name} must be -1 (the default) or a coordinate index in "
                    f"[0, {size - 1}], got {index[bad[0]]} (point {bad[0]})."
                )
        checked[name] = index
    patch, eliminate = checked["patch"], checked["eliminate"]
    if not (is_traced(patch) or is_traced(eliminate)):
        same = np.flatnonzero((patch >= 0) & (patch == eliminate))
        if same.size:
            raise ValueError(
                f"{caller}: patch and eliminate must differ, both are {patch[same[0]]} at "
                f"point {same[0]} (the patch coordinate is 1, it cannot be eliminated)."
            )
    return jnp.asarray(patch, dtype=int), jnp.asarray(eliminate, dtype=int)


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

    Called with concrete values, it raises `ValueError` for a point that is zero
    or not finite, a point off $X$ (relative residual $|p(z)| / (\sum_m |c_m|\,
    |z|^d) >$ `OFF_SURFACE_TOLERANCE` $= 10^{-5}$, as in `point_sample`), and a bad
    override (below). Under tracing (inside `jit`) the values cannot be checked:
    `accepted` then does **not** check the residual (a point off $X$ gets the
    geometry of its chart as if it were on $X$), and a point with an override
    outside $\{-1\} \cup [0, n]$ or with patch = eliminated is rejected.

    **Arguments:**

    - `points`: (N, n + 1) homogeneous coordinates on $X$ (any scaling), N >= 1
      (an empty point set raises `ValueError`).
    - `patch`, `eliminate`: optional (N,) integer overrides of the two choices
      (for checking patch independence): each entry a coordinate index in
      $[0, n]$, or -1 for the default choice; patch $\ne$ eliminated.

    **Returns:** `(points, patch, eliminate, omega, g_fs, jacobian, raw_weight,
    accepted)`: points scaled to their patch; $\Omega$ (N,) (times $|z|^{d-n-1}$
    for $d \ne n + 1$, module docstring); $g_\mathrm{FS}$ (N, n - 1, n - 1)
    Hermitian; the embedding Jacobian $J$ (N, n + 1, n - 1); the unnormalised
    weight $|\Omega|^2/\det g_\mathrm{FS}$; and a boolean mask.
    """
    return _geometry(hypersurface, points, patch, eliminate, "patch_geometry")


def _geometry(hypersurface: Hypersurface, points, patch, eliminate, caller: str):
    """`patch_geometry`, its checks naming `caller`."""
    points = _check_points(hypersurface, points, caller)
    patch, eliminate = _check_overrides(hypersurface, points, patch, eliminate, caller)
    _check_on_surface(hypersurface, points, caller)
    return _patch_geometry(hypersurface, points, patch, eliminate)


@eqx.filter_jit
def _patch_geometry(hypersurface, points, patch, eliminate):
    return jax.vmap(lambda z, i, j: _local_geometry(hypersurface, z, i, j))(
        points, patch, eliminate
    )
