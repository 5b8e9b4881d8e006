r"""The harmonic series on $S^2$'s Gauss–Legendre × uniform grid by separation of variables.

On the grid $(s_a, \phi_b)$, $s = x_3$, the real harmonics of `harmonics.py`
are $Y = N_{mk}\, r^m P_k^{(m,m)}(s) \times \cos m\phi$ or $\sin m\phi$,
$r = \sqrt{1 - s^2}$. A sum over the grid therefore splits into a sum over
the azimuth for each order $m$ (a matrix of $\cos m\phi_b$, $\sin m\phi_b$)
and a sum over the latitude for each $m$ (a Legendre matrix): with $L$ the
degree, $O(L^3) = O(N^{3/2})$ operations where the dense evaluation of every
harmonic at every node costs $O(L^4) = O(N^2)$.

Derivatives: the series is the restriction of the ambient polynomial
$F(x) = \mathrm{Re} \sum_m A_m(x_3)\, w^m$, $w = x_1 + i x_2$,
$A_m = \sum_k (c^{\cos}_{mk} - i c^{\sin}_{mk}) N_{mk} P_k^{(m,m)}$; its
ambient derivatives are series of the same form
($\partial_{x_1} w^m = m w^{m-1}$, $\partial_{x_2} w^m = i m w^{m-1}$,
$\partial_{x_3}$ acts on $A_m$ through
$\tfrac{d}{ds} P_k^{(a,a)} = \tfrac{k + 2a + 1}{2} P_{k-1}^{(a+1,a+1)}$).
The sphere's chart $\varphi_x(u) = (x + Eu)/|x + Eu|$ has
$\partial_u\varphi = E$ and $\partial_{u_i}\partial_{u_j}\varphi = -\delta_{ij} x$
at $u = 0$, so the chart jet is $E^\top \nabla F$ and
$E^\top \nabla^2 F\, E - (x \cdot \nabla F)\, I$: the same numbers the
automatic differentiation of the dense series gives, to rounding.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .harmonics import HarmonicTable, jacobi_numpy


def separable_bytes(degree: int) -> float:
    """Bytes of `SeparableS2`'s tables at this degree (float64)."""
    m, n_gauss, n_az = degree // 2 + 1, degree // 2 + 1, degree + 1
    return 8.0 * (3 * n_gauss * m * m + n_gauss * m + 2 * m * n_az)


class SeparableS2(eqx.Module):
    r"""Tables for the separable transforms on `Sphere(2, degree)`'s grid.

    `radial[d, a, m, k]` $= N_{mk}\, \partial_s^d P_k^{(m,m)}(s_a)$ ($d = 0, 1, 2$; zero
    where $m + k$ exceeds the band limit), `rpow[a, p]` $= r_a^p$,
    `cos[m, b]`, `sin[m, b]` $= \cos m\phi_b$, $\sin m\phi_b$, and `weights[a]`
    the quadrature weight of latitude $a$ (each of its nodes has it).
    """

    table: HarmonicTable = eqx.field(static=True)
    n_az: int = eqx.field(static=True)
    radial: Float[Array, "3 G M M"]
    rpow: Float[Array, "G M"]
    cos: Float[Array, "M A"]
    sin: Float[Array, "M A"]
    weights: Float[Array, " G"]

    def __init__(self, table: HarmonicTable, s: np.ndarray, weights: np.ndarray, n_az: int):
        band = table.degree
        size = band + 1
        m = np.arange(size)
        k = np.arange(size)
        # P_k^(a,a)(s_a) for a = 0..band + 2 (the derivatives raise the index)
        p = jacobi_numpy(band, np.arange(band + 3), s)  # [k, alpha, lat]
        norm = np.zeros((size, size))
        norm[table.m1, table.k] = table.norm
        radial = np.zeros((3, len(s), size, size))
        radial[0] = np.einsum("mk,kma->amk", norm, p[:, :size])
        factor = 1.0
        for d in (1, 2):
            # d/ds P_k^(a,a) = (k + 2a + 1)/2 P_{k-1}^(a+1,a+1), applied d times
            factor = factor * (k[None, :] + 2 * m[:, None] + d) / 2
            shifted = np.zeros((size, size, len(s)))
            shifted[:, d:] = np.transpose(p[: size - d, d : size + d], (1, 0, 2))
            radial[d] = np.einsum("mk,mka->amk", norm * factor, shifted)
        phi = 2 * np.pi * np.arange(n_az) / n_az
        self.table = table
        self.n_az = n_az
        self.radial = jnp.asarray(radial)
        self.rpow = jnp.asarray(np.sqrt(1 - s**2)[:, None] ** m[None, :])
        self.cos = jnp.asarray(np.cos(np.outer(m, phi)))
        self.sin = jnp.asarray(np.sin(np.outer(m, phi)))
        self.weights = jnp.asarray(weights)

    def _slots(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat (m, k) slot of each cosine and each sine coefficient, and which rows are sines."""
        t = self.table
        return t.m1 * (t.degree + 1) + t.k, t.part == 1

    def transform(self, values: Float[Array, "N K"]) -> Float[Array, "M K"]:
        r"""$c_j = \sum_a w_a Y_j(x_a) f(x_a)$: azimuthal sums, then a Legendre sum per order."""
        size = self.table.degree + 1
        v = values.reshape(self.weights.shape[0], self.n_az, -1)
        xc = jnp.einsum("mb,abK->amK", self.cos, v)
        xs = jnp.einsum("mb,abK->amK", self.sin, v)
        q = (self.weights[:, None] * self.rpow)[:, :, None] * self.radial[0]
        c_cos = jnp.einsum("amk,amK->mkK", q, xc).reshape(size * size, -1)
        c_sin = jnp.einsum("amk,amK->mkK", q, xs).reshape(size * size, -1)
        slot, sine = self._slots()
        return jnp.where(sine[:, None], c_sin[slot], c_cos[slot])

    def _orders(self, c: Float[Array, "M K"]) -> tuple[Array, Array]:
        r"""The coefficients on the (m, k) rectangle as $c^{\cos}$ and $c^{\sin}$."""
        size = self.table.degree + 1
        slot, sine = self._slots()
        zeros = jnp.zeros((size * size, c.shape[1]), dtype=c.dtype)
        c_cos = zeros.at[slot[~sine]].set(c[~sine])
        c_sin = zeros.at[slot[sine]].set(c[sine])
        return c_cos.reshape(size, size, -1), c_sin.reshape(size, size, -1)

    def _radial_sums(self, orders: tuple[Array, Array], d: int) -> tuple[Array, Array]:
        r"""Real and imaginary parts of $\partial_s^d A_m(s_a)$, shape (G, m, K), from `_orders`."""
        c_cos, c_sin = orders
        r = self.radial[d]
        return jnp.einsum("amk,mkK->amK", r, c_cos), -jnp.einsum("amk,mkK->amK", r, c_sin)

    def _azimuthal(self, re: Array, im: Array, shift: int) -> tuple[Array, Array]:
        r"""Real and imaginary parts of $\sum_{m \ge j} B_m(s_a)\, w^{m - j}$ at the grid, $j$ = `shift`."""
        count = re.shape[1] - shift
        rp = self.rpow[:, :count, None]
        b_re, b_im = re[:, shift:] * rp, im[:, shift:] * rp
        cos, sin = self.cos[:count], self.sin[:count]
        real = jnp.einsum("apK,pb->abK", b_re, cos) - jnp.einsum("apK,pb->abK", b_im, sin)
        imag = jnp.einsum("apK,pb->abK", b_re, sin) + jnp.einsum("apK,pb->abK", b_im, cos)
        return real, imag

    def synthesize(self, c: Float[Array, "M K"]) -> Float[Array, "N K"]:
        """The series at every node."""
        real, _ = self._azimuthal(*self._radial_sums(self._orders(c), 0), 0)
        return real.reshape(-1, c.shape[1])

    def ambient_jet(self, c: Float[Array, "M K"]) -> tuple[Array, Array, Array]:
        r"""$F$ (N, K), $\nabla F$ (N, K, 3) and $\nabla^2 F$ (N, K, 3, 3) of the ambient polynomial at every node."""
        m = jnp.arange(self.table.degree + 1, dtype=c.dtype)[None, :, None]
        orders = self._orders(c)
        a0, a1, a2 = (self._radial_sums(orders, d) for d in range(3))
        f = self._azimuthal(*a0, 0)[0]
        z1 = self._azimuthal(m * a0[0], m * a0[1], 1)  # sum m A w^(m-1)
        z2 = self._azimuthal(m * (m - 1) * a0[0], m * (m - 1) * a0[1], 2)
        z1s = self._azimuthal(m * a1[0], m * a1[1], 1)  # sum m A' w^(m-1)
        f3 = self._azimuthal(*a1, 0)[0]
        f33 = self._azimuthal(*a2, 0)[0]
        f1, f2 = z1[0], -z1[1]
        f11, f12 = z2[0], -z2[1]
        f13, f23 = z1s[0], -z1s[1]
        grad = jnp.stack([f1, f2, f3], axis=-1)
        hess = jnp.stack(
            [
                jnp.stack([f11, f12, f13], axis=-1),
                jnp.stack([f12, -f11, f23], axis=-1),
                jnp.stack([f13, f23, f33], axis=-1),
            ],
            axis=-2,
        )
        count = c.shape[1]
        return f.reshape(-1, count), grad.reshape(-1, count, 3), hess.reshape(-1, count, 3, 3)


def chart_jet_from_ambient(
    nodes: Float[Array, "N 3"],
    frames: Float[Array, "N 3 2"],
    grad: Float[Array, "N K 3"],
    hess: Float[Array, "N K 3 3"],
) -> tuple[Float[Array, "N K 2"], Float[Array, "N K 2 2"]]:
    r"""$E^\top \nabla F$ and $E^\top \nabla^2 F\, E - (x \cdot \nabla F) I$ at every node."""
    jet1 = jnp.einsum("nai,nKa->nKi", frames, grad)
    radial = jnp.einsum("na,nKa->nK", nodes, grad)
    eye = jnp.eye(frames.shape[-1], dtype=grad.dtype)
    jet2 = jnp.einsum("nai,nKab,nbj->nKij", frames, hess, frames)
    return jet1, jet2 - radial[..., None, None] * eye


def sphere_jet(
    tables: SeparableS2, nodes: Array, frames: Array, c: Float[Array, "M *shape"]
) -> tuple[Array, Array, Array]:
    """The series with coefficients `c` and its chart jet at every node, trailing axes carried."""
    shape = c.shape[1:]
    f, grad, hess = tables.ambient_jet(c.reshape(c.shape[0], -1))
    jet1, jet2 = chart_jet_from_ambient(nodes, frames, grad, hess)
    n = nodes.shape[0]
    return f.reshape((n, *shape)), jet1.reshape((n, *shape, 2)), jet2.reshape((n, *shape, 2, 2))
