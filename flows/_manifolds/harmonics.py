r"""Real orthonormal spherical harmonics on S^2 and S^3 as ambient polynomials.

Both bases are written as (complex monomial in ambient coordinates) x (Jacobi
polynomial), so every basis function is a polynomial in the ambient
coordinates: smooth everywhere, the poles included, and exact under automatic
differentiation.

- S^2, $w = x_1 + i x_2$, $s = x_3$: $w^m P_k^{(m,m)}(s)$, degree $l = m + k$
  (the classical $Y_{lm}$ up to normalisation, since
  $P_l^m(s) \propto (1 - s^2)^{m/2} P_{l-m}^{(m,m)}(s)$).
- S^3 in Hopf form, $w_1 = x_1 + i x_2$, $w_2 = x_3 + i x_4$,
  $s = |w_1|^2 - |w_2|^2$: $w_1^{(m_1)} w_2^{(m_2)} P_k^{(|m_2|, |m_1|)}(s)$ with
  $w^{(m)} = w^m$ for $m \ge 0$ and $\bar w^{|m|}$ otherwise, degree
  $l = 2k + |m_1| + |m_2|$.

Real parts and imaginary parts of these are orthogonal; normalisation is
analytic (Jacobi norms $h_k^{(\alpha,\beta)}$), so an orthonormality test is an
independent check. Functions are ordered by degree, so the first
`basis_size(dim, K)` of them span the harmonics of degree <= K.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def jacobi_norm_sq(k: int, alpha: int, beta: int) -> float:
    r"""$h_k = \int_{-1}^1 (1-s)^\alpha (1+s)^\beta P_k^{(\alpha,\beta)}(s)^2\, ds$."""
    log_h = (
        (alpha + beta + 1) * math.log(2.0)
        - math.log(2 * k + alpha + beta + 1)
        + math.lgamma(k + alpha + 1)
        + math.lgamma(k + beta + 1)
        - math.lgamma(k + alpha + beta + 1)
        - math.lgamma(k + 1)
    )
    return math.exp(log_h)


def _recurrence(kmax: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    r"""The three-term recurrence's coefficients for $n = 2..k_\max$ (rows) and every pair (columns).

    $P_n = (q_0 + q_1 s) P_{n-1} - q_2 P_{n-2}$ from
    $2n(n+\alpha+\beta)(c-2) P_n = (c-1)[c(c-2)s + \alpha^2 - \beta^2] P_{n-1}
    - 2(n+\alpha-1)(n+\beta-1) c P_{n-2}$, $c = 2n + \alpha + \beta$.
    """
    n = np.arange(2, kmax + 1, dtype=np.float64)[:, None]
    c = 2 * n + a + b
    a1 = 2 * n * (n + a + b) * (c - 2)
    return (
        (c - 1) * (a**2 - b**2) / a1,  # constant part of the P_{n-1} factor
        (c - 2) * (c - 1) * c / a1,  # s part of the P_{n-1} factor
        2 * (n + a - 1) * (n + b - 1) * c / a1,  # P_{n-2} factor
    )


def jacobi(
    kmax: int, alpha: np.ndarray, beta: np.ndarray, s: Float[Array, ""]
) -> Float[Array, "kmax+1 pairs"]:
    r"""$P_k^{(\alpha_p, \beta_p)}(s)$ for $k = 0..k_\max$ and every pair $p$, by the three-term recurrence.

    The recurrence of `_recurrence`, $P_0 = 1$, $P_1 = (\alpha + 1) + (\alpha + \beta + 2)(s - 1)/2$;
    a `lax.scan`, so the traced graph does not grow with the degree.
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    p0 = jnp.ones(a.shape, dtype=s.dtype)
    if kmax == 0:
        return p0[None]
    p1 = jnp.asarray(a + 1, dtype=s.dtype) + jnp.asarray((a + b + 2) / 2, dtype=s.dtype) * (s - 1)
    if kmax == 1:
        return jnp.stack([p0, p1])
    coeffs = tuple(jnp.asarray(q, dtype=s.dtype) for q in _recurrence(kmax, a, b))

    def step(carry, coeff):
        prev, prev2 = carry
        c0, c1, c2 = coeff
        new = (c0 + c1 * s) * prev - c2 * prev2
        return (new, prev), new

    _, rest = jax.lax.scan(step, (p1, p0), coeffs)
    return jnp.concatenate([p0[None], p1[None], rest])


def jacobi_numpy(kmax: int, alpha: np.ndarray, s: np.ndarray) -> np.ndarray:
    r"""$P_k^{(\alpha_p, \alpha_p)}(s_i)$, shape (kmax + 1, pairs, points): `jacobi`'s recurrence in numpy float64."""
    a = np.asarray(alpha, dtype=np.float64)[:, None]
    s = np.asarray(s, dtype=np.float64)[None, :]
    out = np.empty((kmax + 1, a.shape[0], s.shape[1]))
    out[0] = 1.0
    if kmax >= 1:
        out[1] = (a + 1) + (a + 1) * (s - 1)
    for n, (q0, q1, q2) in enumerate(zip(*_recurrence(kmax, a[:, 0], a[:, 0]), strict=True)):
        out[n + 2] = (q0[:, None] + q1[:, None] * s) * out[n + 1] - q2[:, None] * out[n]
    return out


def _powers(re: Float[Array, ""], im: Float[Array, ""], mmax: int) -> tuple[Array, Array]:
    """Real and imaginary parts of (re + i im)^m for m = 0..mmax (a `lax.scan`)."""

    def step(carry, _):
        c, s = carry
        new = (c * re - s * im, s * re + c * im)
        return new, new

    one, zero = jnp.ones_like(re), jnp.zeros_like(re)
    _, (c, s) = jax.lax.scan(step, (one, zero), None, length=mmax)
    return jnp.concatenate([one[None], c]), jnp.concatenate([zero[None], s])


def basis_size(dim: int, degree: int) -> int:
    """Number of real harmonics of degree <= `degree` on S^dim."""
    if dim == 2:
        return (degree + 1) ** 2
    return sum((ell + 1) ** 2 for ell in range(degree + 1))


def harmonic_degree_dimension(dim: int, ell: int) -> int:
    """Dimension of the space of degree-`ell` harmonics on S^dim."""
    return 2 * ell + 1 if dim == 2 else (ell + 1) ** 2


class HarmonicTable:
    """Index tables for the real harmonic basis of degree <= `degree` on S^`dim` (numpy, static)."""

    def __init__(self, dim: int, degree: int):
        self.dim = dim
        self.degree = degree
        rows = []  # (ell, m1, m2, k, part, norm)
        if dim == 2:
            for m in range(degree + 1):
                for k in range(degree - m + 1):
                    h = 2 * math.pi * jacobi_norm_sq(k, m, m)
                    if m == 0:
                        rows.append((m + k, 0, 0, k, 0, 1 / math.sqrt(h)))
                    else:
                        for part in (0, 1):
                            rows.append((m + k, m, 0, k, part, 1 / math.sqrt(h / 2)))
        elif dim == 3:
            for m1 in range(-degree, degree + 1):
                for m2 in range(-degree, degree + 1):
                    # one of each conjugate pair (m1, m2) ~ (-m1, -m2)
                    if (m1, m2) != (0, 0) and not (m1 > 0 or (m1 == 0 and m2 > 0)):
                        continue
                    a, b = abs(m1), abs(m2)
                    for k in range((degree - a - b) // 2 + 1) if a + b <= degree else ():
                        h = math.pi**2 * 2.0 ** (-a - b) * jacobi_norm_sq(k, b, a)
                        ell = 2 * k + a + b
                        if (m1, m2) == (0, 0):
                            rows.append((ell, 0, 0, k, 0, 1 / math.sqrt(h)))
                        else:
                            for part in (0, 1):
                                rows.append((ell, m1, m2, k, part, 1 / math.sqrt(h / 2)))
        else:
            raise ValueError(f"spherical harmonics are implemented for S^2 and S^3, not S^{dim}.")
        rows.sort(key=lambda r: (r[0], r[1], r[2], r[4]))
        table = np.array(rows, dtype=np.float64)
        self.ell = table[:, 0].astype(int)
        self.m1 = table[:, 1].astype(int)
        self.m2 = table[:, 2].astype(int)
        self.k = table[:, 3].astype(int)
        self.part = table[:, 4].astype(int)
        self.norm = table[:, 5]
        if dim == 2:
            self.alpha = self.beta = np.arange(degree + 1)
            self.pair = self.m1
            self.kmax = degree
        else:
            pairs = sorted({(abs(a), abs(b)) for a, b in zip(self.m1, self.m2, strict=True)})
            index = {p: i for i, p in enumerate(pairs)}
            self.alpha = np.array([b for _, b in pairs])  # Jacobi alpha = |m2|
            self.beta = np.array([a for a, _ in pairs])  # Jacobi beta = |m1|
            self.pair = np.array(
                [index[(abs(a), abs(b))] for a, b in zip(self.m1, self.m2, strict=True)]
            )
            self.kmax = degree // 2
        assert len(self.ell) == basis_size(dim, degree)

    def __eq__(self, other) -> bool:
        return isinstance(other, HarmonicTable) and (self.dim, self.degree) == (
            other.dim,
            other.degree,
        )

    def __hash__(self) -> int:
        return hash((HarmonicTable, self.dim, self.degree))

    def __repr__(self) -> str:
        # the same text in every process: a checkpoint's fingerprint holds it
        return f"HarmonicTable(dim={self.dim}, degree={self.degree})"

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, " M"]:
        """All basis functions of the table at the ambient point `x` (on the unit sphere)."""
        if self.dim == 2:
            s = x[2]
            c, sn = _powers(x[0], x[1], self.degree)
            angular = jnp.where(self.part == 0, c[self.m1], sn[self.m1])
        else:
            s = x[0] ** 2 + x[1] ** 2 - x[2] ** 2 - x[3] ** 2
            c1, s1 = _powers(x[0], x[1], self.degree)
            c2, s2 = _powers(x[2], x[3], self.degree)
            a, b = np.abs(self.m1), np.abs(self.m2)
            re1, im1 = c1[a], jnp.asarray(np.sign(self.m1), dtype=x.dtype) * s1[a]
            re2, im2 = c2[b], jnp.asarray(np.sign(self.m2), dtype=x.dtype) * s2[b]
            re = re1 * re2 - im1 * im2
            im = re1 * im2 + im1 * re2
            angular = jnp.where(self.part == 0, re, im)
        radial = jacobi(self.kmax, self.alpha, self.beta, s)[self.k, self.pair]
        return jnp.asarray(self.norm, dtype=x.dtype) * angular * radial
