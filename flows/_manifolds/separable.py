r"""The harmonic series on $S^2$'s Gauss–Legendre × uniform grid, and on $S^3$'s Hopf grid, by separation of variables.

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
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .harmonics import HarmonicTable, jacobi, jacobi_numpy


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


# S^3: Hopf coordinates


def separable_s3_bytes(degree: int) -> float:
    """Bytes of `SeparableS3`'s tables at this degree (float64), nodal chart derivatives included."""
    band = degree // 2
    n_gauss, n_az, kmax = degree // 4 + 1, degree + 1, band // 2
    nodes = n_gauss * n_az**2
    radial = 3 * n_gauss * (band + 1) ** 2 * (kmax + 1)
    return 8.0 * (radial + 2 * 2 * (2 * band + 1) * n_az + nodes * (9 + 27))


def _hopf(x: Float[Array, " 4"]) -> Float[Array, " 3"]:
    r"""Hopf coordinates $(\eta, \xi_1, \xi_2)$ of $x = (\cos\eta\, e^{i\xi_1}, \sin\eta\, e^{i\xi_2})$."""
    r1, r2 = jnp.hypot(x[0], x[1]), jnp.hypot(x[2], x[3])
    return jnp.stack([jnp.arctan2(r2, r1), jnp.arctan2(x[1], x[0]), jnp.arctan2(x[3], x[2])])


def _hopf_chart_derivatives(x: Float[Array, " 4"], frame: Float[Array, "4 3"]):
    r"""$\partial_u q$ (3, 3) and $\partial_u^2 q$ (3, 3, 3) of the Hopf coordinates $q(\varphi_x(u))$ at $u = 0$.

    $\varphi_x(u) = (x + Eu)/|x + Eu|$, the sphere's chart. Rows: $q$'s components.
    """

    def q(u):
        y = x + frame @ u
        return _hopf(y / jnp.sqrt(jnp.sum(y**2)))

    u0 = jnp.zeros(3, dtype=x.dtype)
    return jax.jacfwd(q)(u0), jax.jacfwd(jax.jacfwd(q))(u0)


# one compiled program for all the nodes (run eagerly, the nested jacfwd compiles dozens of
# small programs)
_hopf_chart_jets = jax.jit(jax.vmap(_hopf_chart_derivatives))


def _s3_radial(kmax: int, band: int, eta: np.ndarray):
    r"""$R = \cos^a\eta\,\sin^b\eta\,P_k^{(b,a)}(\cos 2\eta)$ and its first two $\eta$-derivatives.

    Shape (3, G, a, b, k) for $a, b = 0..$`band`, $k = 0..k_\max$; by automatic
    differentiation of the Jacobi recurrence (exact polynomials in $\cos\eta$, $\sin\eta$).
    """
    size = band + 1
    a = np.repeat(np.arange(size), size)
    b = np.tile(np.arange(size), size)

    def radial(e):
        p = jacobi(kmax, b, a, jnp.cos(2 * e))  # [k, pair]
        powers = jnp.cos(e) ** jnp.asarray(a, e.dtype) * jnp.sin(e) ** jnp.asarray(b, e.dtype)
        return (powers[None, :] * p).T.reshape(size, size, kmax + 1)

    def jet(e):
        return jnp.stack([radial(e), jax.jacfwd(radial)(e), jax.jacfwd(jax.jacfwd(radial))(e)])

    out = jax.jit(jax.vmap(jet))(jnp.asarray(eta))  # (G, 3, a, b, k); one program, not ~100
    return np.asarray(jnp.swapaxes(out, 0, 1))


class SeparableS3(eqx.Module):
    r"""Tables for the separable transforms on `Sphere(3, degree)`'s Hopf grid.

    The grid is Gauss–Legendre in $s = \cos 2\eta$ times uniform $\xi_1$, $\xi_2$,
    and a harmonic is $N R_{abk}(\eta)\,\cos$ or $\sin(m_1\xi_1 + m_2\xi_2)$ with
    $R_{abk} = \cos^a\eta\,\sin^b\eta\,P_k^{(b,a)}(\cos 2\eta)$, $a = |m_1|$,
    $b = |m_2|$. So the transform is a two-dimensional Fourier sum over the
    azimuths per latitude, then a Jacobi sum per pair $(m_1, m_2)$: $O(L^4) =
    O(N^{4/3})$ against the dense $O(N^2)$. The series is
    $f = \mathrm{Re}\sum_{m_1, m_2} B_{m_1 m_2}(\eta)\, e^{i(m_1\xi_1 + m_2\xi_2)}$ over
    one of each conjugate pair ($m_1 > 0$, or $m_1 = 0 \le m_2$), and its chart jet
    at a node is the chain rule through the Hopf coordinates $q = (\eta, \xi_1, \xi_2)$:
    $\partial_i f = f_{,\alpha}\, q^\alpha_{,i}$,
    $\partial_i\partial_j f = f_{,\alpha\beta}\, q^\alpha_{,i} q^\beta_{,j} + f_{,\alpha}\, q^\alpha_{,ij}$
    (the nodes avoid the circles $\eta = 0, \pi/2$ where $\xi_2$ or $\xi_1$ is undefined).

    `radial[d, g, a, b, k]`: $\partial_\eta^d R_{abk}$ at latitude $g$; `fourier[m, c]`:
    $e^{i m \phi_c}$ for $m = -B..B$ ($B$ the band limit), real and imaginary parts;
    `weights[g]`: the quadrature weight of latitude $g$; `dq`, `ddq`: the Hopf
    coordinates' chart derivatives at every node.
    """

    table: HarmonicTable = eqx.field(static=True)
    n_az: int = eqx.field(static=True)
    radial: Float[Array, "3 G B B K"]
    fourier: Float[Array, "2 M A"]
    weights: Float[Array, " G"]
    dq: Float[Array, "N 3 3"]
    ddq: Float[Array, "N 3 3 3"]

    def __init__(
        self,
        table: HarmonicTable,
        s: np.ndarray,
        weights: np.ndarray,
        n_az: int,
        nodes: Float[Array, "N 4"],
        frames: Float[Array, "N 4 3"],
    ):
        band = table.degree
        eta = 0.5 * np.arccos(s)
        radial = _s3_radial(band // 2, band, eta)  # (3, G, a, b, k)
        norm = np.zeros((band + 1, band + 1, band // 2 + 1))
        norm[np.abs(table.m1), np.abs(table.m2), table.k] = table.norm
        m = np.arange(-band, band + 1)
        phi = 2 * np.pi * np.arange(n_az) / n_az
        self.table = table
        self.n_az = n_az
        self.radial = jnp.asarray(radial * norm[None, None])
        self.fourier = jnp.asarray(np.stack([np.cos(np.outer(m, phi)), np.sin(np.outer(m, phi))]))
        self.weights = jnp.asarray(weights)
        self.dq, self.ddq = _hopf_chart_jets(nodes, frames)

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat (m1, m2 + B, k) slot of each coefficient, and which rows are sines."""
        t = self.table
        band, kcount = t.degree, t.degree // 2 + 1
        return (t.m1 * (2 * band + 1) + t.m2 + band) * kcount + t.k, t.part == 1

    def _radial_at(self, d: int) -> Float[Array, "G m1 m2 K"]:
        r"""$\partial_\eta^d (N R)$ on the $(m_1 \ge 0, m_2)$ rectangle."""
        band = self.table.degree
        m2 = np.abs(np.arange(-band, band + 1))
        return self.radial[d][:, :, m2, :]

    def transform(self, values: Float[Array, "N K"]) -> Float[Array, "M K"]:
        r"""$c_j = \sum w\, Y_j f$: a Fourier sum over $(\xi_1, \xi_2)$ per latitude, then a Jacobi sum per pair."""
        band, count = self.table.degree, values.shape[1]
        v = values.reshape(self.weights.shape[0], self.n_az, self.n_az, count)
        cos, sin = self.fourier[0], self.fourier[1]
        pos = slice(band, 2 * band + 1)  # m1 = 0..B
        # sum_bc e^{-i(m1 xi1_b + m2 xi2_c)} v = (C1 - i S1)(C2 - i S2) v
        c2 = jnp.einsum("nc,gbcK->gbnK", cos, v)
        s2 = jnp.einsum("nc,gbcK->gbnK", sin, v)
        re = jnp.einsum("mb,gbnK->gmnK", cos[pos], c2) - jnp.einsum("mb,gbnK->gmnK", sin[pos], s2)
        im = -jnp.einsum("mb,gbnK->gmnK", cos[pos], s2) - jnp.einsum("mb,gbnK->gmnK", sin[pos], c2)
        q = self.weights[:, None, None, None] * self._radial_at(0)  # (G, m1, m2, k)
        c_cos = jnp.einsum("gmnk,gmnK->mnkK", q, re).reshape(-1, count)
        c_sin = -jnp.einsum("gmnk,gmnK->mnkK", q, im).reshape(-1, count)
        slot, sine = self._pairs()
        return jnp.where(sine[:, None], c_sin[slot], c_cos[slot])

    def _orders(self, c: Float[Array, "M K"]) -> tuple[Array, Array]:
        r"""$c^{\cos}$ and $c^{\sin}$ on the $(m_1, m_2, k)$ box."""
        band, kcount = self.table.degree, self.table.degree // 2 + 1
        shape = (band + 1, 2 * band + 1, kcount, c.shape[1])
        slot, sine = self._pairs()
        zeros = jnp.zeros((shape[0] * shape[1] * kcount, c.shape[1]), dtype=c.dtype)
        c_cos = zeros.at[slot[~sine]].set(c[~sine])
        c_sin = zeros.at[slot[sine]].set(c[sine])
        return c_cos.reshape(shape), c_sin.reshape(shape)

    def _synthesize(self, re: Array, im: Array) -> Array:
        r"""$\mathrm{Re}\sum B\, e^{i(m_1\xi_1 + m_2\xi_2)}$ at the grid, $B$ = re + i im of shape (G, m1, m2, K)."""
        band = self.table.degree
        cos, sin = self.fourier[0], self.fourier[1]
        pos = slice(band, 2 * band + 1)
        # over m2: B e^{i m2 xi2} -> (G, m1, c, K)
        t_re = jnp.einsum("gmnK,nc->gmcK", re, cos) - jnp.einsum("gmnK,nc->gmcK", im, sin)
        t_im = jnp.einsum("gmnK,nc->gmcK", re, sin) + jnp.einsum("gmnK,nc->gmcK", im, cos)
        # over m1, real part only
        out = jnp.einsum("gmcK,mb->gbcK", t_re, cos[pos]) - jnp.einsum(
            "gmcK,mb->gbcK", t_im, sin[pos]
        )
        return out.reshape(-1, re.shape[-1])

    def _b(self, orders, d: int) -> tuple[Array, Array]:
        r"""$\partial_\eta^d B$: real and imaginary parts, (G, m1, m2, K)."""
        c_cos, c_sin = orders
        r = self._radial_at(d)
        return jnp.einsum("gmnk,mnkK->gmnK", r, c_cos), -jnp.einsum("gmnk,mnkK->gmnK", r, c_sin)

    def synthesize(self, c: Float[Array, "M K"]) -> Float[Array, "N K"]:
        """The series at every node."""
        return self._synthesize(*self._b(self._orders(c), 0))

    def jet(self, c: Float[Array, "M K"]) -> tuple[Array, Array, Array]:
        """The series (N, K) and its chart jet (N, K, 3), (N, K, 3, 3) at every node."""
        band = self.table.degree
        dtype = c.dtype
        m1 = jnp.arange(band + 1, dtype=dtype)[None, :, None, None]
        m2 = jnp.arange(-band, band + 1, dtype=dtype)[None, None, :, None]
        orders = self._orders(c)
        b0, b1, b2 = (self._b(orders, d) for d in range(3))

        def times_i(b, m):  # i m B
            return -m * b[1], m * b[0]

        def times(b, w):
            return w * b[0], w * b[1]

        parts = [
            b0,  # f
            b1,  # f_eta
            times_i(b0, m1),  # f_xi1
            times_i(b0, m2),  # f_xi2
            b2,  # f_eta eta
            times_i(b1, m1),  # f_eta xi1
            times_i(b1, m2),  # f_eta xi2
            times(b0, -m1 * m1),  # f_xi1 xi1
            times(b0, -m1 * m2),  # f_xi1 xi2
            times(b0, -m2 * m2),  # f_xi2 xi2
        ]
        count = c.shape[1]
        re = jnp.concatenate([p[0] for p in parts], axis=-1)
        im = jnp.concatenate([p[1] for p in parts], axis=-1)
        fields = self._synthesize(re, im).reshape(-1, len(parts), count)
        f = fields[:, 0]
        grad = jnp.moveaxis(fields[:, 1:4], 1, -1)  # (N, K, 3): d/dq
        h = fields[:, 4:]
        row0 = jnp.stack([h[:, 0], h[:, 1], h[:, 2]], axis=-1)
        row1 = jnp.stack([h[:, 1], h[:, 3], h[:, 4]], axis=-1)
        row2 = jnp.stack([h[:, 2], h[:, 4], h[:, 5]], axis=-1)
        hess = jnp.stack([row0, row1, row2], axis=-2)  # (N, K, 3, 3)
        jet1 = jnp.einsum("nKa,nai->nKi", grad, self.dq)
        jet2 = jnp.einsum("nKab,nai,nbj->nKij", hess, self.dq, self.dq) + jnp.einsum(
            "nKa,naij->nKij", grad, self.ddq
        )
        return f, jet1, jet2
