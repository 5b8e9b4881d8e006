r"""Chern forms of a Kähler metric on a hypersurface, and their Monte Carlo integrals.

Conventions (docs/conventions.md, Calabi–Yau hypersurfaces): local coordinates
$w \in \mathbb{C}^m$ of each sample point's chart ($m = n - 1$), the metric
$g_{a\bar b} = \partial_a\partial_{\bar b}K_X$ of $K_X(w) = K(z(w))$,
$K = \log|z|^2 + \phi$, differentiated through the chart's embedding as in
`curvature.py`, but with the embedding's quadratic Taylor polynomial $z_T(w)$
(by implicit differentiation of $p(z(w)) = 0$) in place of Newton steps: the
$(1,1)$, $(2,1)$ and $(2,2)$ derivatives of $K(z(w))$ that the curvature needs
involve holomorphic derivatives of $z$ up to second order only, so they are
exact, and the graph is several times cheaper (about 2 ms per quintic point on
two loaded CPU cores for Fubini–Study; a spectral potential costs its terms
times more). Monte Carlo cost: docs/quintic.md ("Chern integrals: cost").

- **Curvature of the Chern connection** on $T^{1,0}X$, $\Theta = \bar\partial(g^{-1}\partial g)$:
  $\Theta^a{}_b = \Theta^a{}_{b\,i\bar j}\,dw^i\wedge d\bar w^j$ with
  $\Theta^a{}_{b\,i\bar j} = g^{a\bar c}R_{i\bar j b\bar c}$,
  $R_{i\bar j a\bar b} = -\partial_i\partial_{\bar j}g_{a\bar b}
  + g^{c\bar d}\,\partial_i g_{a\bar d}\,\partial_{\bar j}g_{c\bar b}$, so that
  $\mathrm{tr}\,\Theta_{i\bar j} = R_{i\bar j} = -\partial_i\partial_{\bar j}\log\det g$,
  the Ricci form of `hypersurface_curvature`. On $\mathbb{CP}^m$ with Fubini–Study,
  $R_{i\bar j a\bar b} = g_{i\bar j}g_{a\bar b} + g_{i\bar b}g_{a\bar j}$.
- **Chern forms**: $c(X) = \det(I + \tfrac{i}{2\pi}\Theta) = 1 + c_1 + \dots + c_m$,
  $c_k$ a real $(k, k)$-form, $[c_k] = c_k(X)$ for every metric.
- **Kähler form**: $J = \tfrac{i}{2\pi}g_{a\bar b}\,dw^a\wedge d\bar w^b$. For a metric of
  the Fubini–Study class, $g = \partial\bar\partial(\log|z|^2 + \phi)$, $[J] = H$, the
  hyperplane class ($t = 1$ in $J = tH$): $\int_X J^m = H^m = d$ on a degree-$d$
  hypersurface ($5$ on the quintic), and the numbers below are in units of $H$.
- **Top-degree forms**: with $\mathrm{vol}_0 = \prod_k (i\,dw^k\wedge d\bar w^k)$
  ($= 2^m$ Lebesgue measure on $\mathbb{C}^m = \mathbb{R}^{2m}$), a wedge of $(1,1)$-forms
  $i A_l\,dw\wedge d\bar w$ is
  $\bigwedge_{l=1}^m (i A_l) = \epsilon^{i_1\dots i_m}\epsilon^{j_1\dots j_m}\prod_l (A_l)_{i_lj_l}\,\mathrm{vol}_0$
  (so $J^m = m!\det(g/2\pi)\,\mathrm{vol}_0$), and
  $c_k\wedge J^{m-k} = \frac{1}{k!}\,\delta^{a_1\dots a_k}_{b_1\dots b_k}\,
  \epsilon^{i}\epsilon^{j}\prod_{l\le k}F^{b_l}{}_{a_l i_l j_l}\prod_{l>k}(g/2\pi)_{i_lj_l}\,\mathrm{vol}_0$,
  $F = \Theta/2\pi$, $\delta$ the generalised Kronecker delta.
- **Integrals** over a `PointSample` (points distributed by the Fubini–Study volume
  form): with $\alpha = a\,\mathrm{vol}_0$ and the sample's raw weights
  $w_a\,V_r = |\Omega_a|^2/\det g_{\mathrm{FS},a}$ (`weights` times `volume_ratio`),
  $\int_X\alpha = \mathrm{Vol}_\mathrm{FS}\,\langle a/\det g_\mathrm{FS}\rangle
  \approx \frac{\mathrm{Vol}_\mathrm{FS}}{N}\sum_a w_aV_r\,a_a/|\Omega_a|^2$,
  $\mathrm{Vol}_\mathrm{FS} = \int_X\omega_\mathrm{FS}^m/m! = d(2\pi)^m/m!$
  ($\omega_\mathrm{FS} = i\partial\bar\partial\log|z|^2$); equivalently
  $\mathrm{Vol}_\Omega\langle\alpha/|\Omega|^2\rangle_w$ in the $\Omega$ measure. The
  standard error is from 100 contiguous batches of the per-point terms (fewer if
  $N < 100$), so the $d$ correlated points of one sampled line share a batch:
  $\mathrm{se}^2 = \sum_b(\sum_{a\in b}(x_a - \bar x))^2/N^2$.
"""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from .curvature import _chart_metric, _check, _inverse, _polynomial
from .hypersurface import Hypersurface
from .sampling import PointSample

_BATCHES = 100
# points per compiled chunk of the fourth-derivative computation (bounds its memory)
_CHUNK = 256


def _local_jet(polynomial, coefficients, z0, patch, eliminated):
    r"""$w_0$ and the quadratic Taylor polynomial $w \mapsto z_T(w)$ of the chart's embedding at `z0`.

    Local coordinates $z_L = w$, $z_\mathrm{patch} = 1$, and $z_e(w)$ from $p(z(w)) = 0$:
    $\partial_i z = u_i = e_{L_i} - (\partial_{L_i}p/\partial_ep)\,e_e$ and
    $\partial_i\partial_a z_e = -u_i^\top(\nabla^2p)\,u_a/\partial_ep$ (implicit differentiation).
    """
    size = z0.shape[0]
    index = jnp.arange(size)
    ranks = jnp.where((index == patch) | (index == eliminated), size, 0) + index
    local = jnp.argsort(ranks)[: size - 2]  # the ordering of `_local_geometry`

    def p(z):
        return polynomial(coefficients, z)

    gradient = jax.jacfwd(p, holomorphic=True)(z0)
    hessian = jax.jacfwd(jax.jacfwd(p, holomorphic=True), holomorphic=True)(z0)
    slope = gradient[eliminated]
    lift = jnp.eye(size, dtype=z0.dtype)[local]  # (m, n + 1): e_{L_i}
    u = lift - (gradient[local] / slope)[:, None] * jnp.eye(size, dtype=z0.dtype)[eliminated]
    second = -(u @ hessian @ u.T) / slope  # (m, m): d_i d_a z_e
    w0 = z0[local]

    def embed(w):
        dw = w - w0
        return z0 + dw @ u + (0.5 * dw @ second @ dw) * (index == eliminated).astype(z0.dtype)

    return w0, embed


def _curvature_at(polynomial, coefficients, potential, z0, patch, eliminated):
    r"""g and $\Theta^a{}_{b\,i\bar j}$ (indices [a, b, i, j]) at one point, from four derivatives of $K_X$.

    $K_X = K\circ z_T$: the $(1,1)$, $(2,1)$ and $(2,2)$ derivatives of $K(z(w))$ involve
    holomorphic derivatives of $z(w)$ up to second order only, which $z_T$ has exactly.
    """
    w0, embed = _local_jet(polynomial, coefficients, z0, patch, eliminated)
    m = w0.shape[0]
    chart_metric = _chart_metric(embed, potential)

    def metric(xy):
        g = chart_metric(jax.lax.complex(xy[:m], xy[m:]))
        return g, g

    def first(xy):
        d1, g = jax.jacfwd(metric, has_aux=True)(xy)
        return d1, (d1, g)

    xy0 = jnp.concatenate([jnp.real(w0), jnp.imag(w0)])
    d2, (d1, g) = jax.jacfwd(first, has_aux=True)(xy0)
    dg = 0.5 * (d1[..., :m] - 1j * d1[..., m:])  # [a, b, i]: d_i g_{a b̄}
    dbar = 0.5 * (d1[..., :m] + 1j * d1[..., m:])  # [a, b, j]: d_j̄ g_{a b̄}
    xx, xy, yx, yy = d2[..., :m, :m], d2[..., :m, m:], d2[..., m:, :m], d2[..., m:, m:]
    ddbar = 0.25 * (xx + yy + 1j * (xy - yx))  # [a, b, i, j]: d_i d_j̄ g_{a b̄}
    inverse = _inverse(g)  # [d, c] = g^{c d̄}
    riemann = -jnp.einsum("abij->ijab", ddbar) + jnp.einsum(
        "dc,adi,cbj->ijab", inverse, dg, dbar
    )  # [i, j, a, b]: R_{i j̄ a b̄}
    theta = jnp.einsum("ca,ijbc->abij", inverse, riemann)
    return g, theta


@eqx.filter_jit
def _chern_curvature(polynomial, coefficients, points, patch, eliminated, potential):
    def one(args):
        return _curvature_at(polynomial, coefficients, potential, *args)

    return jax.lax.map(one, (points, patch, eliminated), batch_size=_CHUNK)


def chern_curvature(
    hypersurface: Hypersurface, sample: PointSample, potential=None
) -> tuple[Complex[Array, "N m m"], Complex[Array, "N m m m m"]]:
    r"""$(g, \Theta)$ at every point of `sample`: the metric and the Chern connection's curvature.

    `theta[n, a, b, i, j]` $= \Theta^a{}_{b\,i\bar j}$ (module docstring), in each
    point's local coordinates; `potential` as in `hypersurface_curvature` ($\phi$,
    a real function of $z$ invariant under $z \to \lambda z$ — a `KahlerPotential`,
    a `SpectralPotential` — or None for Fubini–Study). Four derivatives of $\phi$
    through the chart, computed in chunks of 256 points; a potential with an
    `ambient_hessian(z)` method ($\partial_a\partial_{\bar b}\phi$ in the ambient coordinates,
    in closed form, as `SpectralPotential` has) is differentiated twice less.
    """
    _check("chern_curvature", hypersurface, sample)
    return _chern_curvature(
        _polynomial(hypersurface),
        hypersurface.coefficients,
        sample.points,
        sample.patch,
        sample.eliminated,
        potential,
    )


def _fs_curvature(hypersurface: Hypersurface, sample: PointSample):
    r"""$(g_\mathrm{FS}, \Theta)$ for Fubini–Study in closed form, by the Gauss equation (an independent check).

    For a complex hypersurface of $\mathbb{CP}^n$ with the induced metric,
    $R_{i\bar j a\bar b} = g_{i\bar j}g_{a\bar b} + g_{i\bar b}g_{a\bar j}
    - h_{ia}\bar h_{jb}/(|z|^2|\nabla p|^2)$, $h_{ia} = u_i^\top(\nabla^2 p)\,u_a$, with
    $u_i$ the embedding Jacobian's columns: the ambient curvature minus the second
    fundamental form's (its normal component is fixed by $dp(\sigma(u_i, u_a)) = -h_{ia}$,
    and $|dp|^2 = |z|^2|\nabla p|^2$ in the dual Fubini–Study norm, $\nabla p\cdot z = 0$).
    """
    return _fs_closed_form(
        _polynomial(hypersurface), hypersurface.coefficients, sample.points, sample.jacobian
    )


@eqx.filter_jit
def _fs_closed_form(polynomial, coefficients, points, jacobian):
    def one(z, u):
        def p(z):
            return polynomial(coefficients, z)

        gradient = jax.jacfwd(p, holomorphic=True)(z)
        hessian = jax.jacfwd(jax.jacfwd(p, holomorphic=True), holomorphic=True)(z)
        norm2 = jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2)
        norm2 = norm2.astype(z.dtype)
        ambient = (
            norm2 * jnp.eye(z.shape[0], dtype=z.dtype) - jnp.outer(jnp.conj(z), z)
        ) / norm2**2
        g = u.T @ ambient @ jnp.conj(u)
        h = u.T @ hessian @ u
        scale = norm2 * jnp.sum(jnp.abs(gradient) ** 2).astype(z.dtype)
        riemann = (
            jnp.einsum("ij,ab->ijab", g, g)
            + jnp.einsum("ib,aj->ijab", g, g)
            - jnp.einsum("ia,jb->ijab", h, jnp.conj(h)) / scale
        )
        return g, jnp.einsum("ca,ijbc->abij", _inverse(g), riemann)

    return jax.vmap(one)(points, jacobian)


def _epsilon(m: int) -> np.ndarray:
    eps = np.zeros((m,) * m)
    for perm in itertools.permutations(range(m)):
        eps[perm] = _sign(perm)
    return eps


def _sign(perm) -> int:
    sign, seen = 1, set()
    for start in range(len(perm)):
        if start in seen:
            continue
        length, j = 0, start
        while j not in seen:
            seen.add(j)
            j = perm[j]
            length += 1
        sign *= (-1) ** (length - 1)
    return sign


_LETTERS = "abcdefghijklmnopqrstuvwxy"


def _top_coefficient(form, kahler, k: int):
    r"""The $\mathrm{vol}_0$ coefficient of $c_k\wedge J^{m-k}$ at each point.

    `form`: (N, m, m, m, m), $F^a{}_{b\,i\bar j}$; `kahler`: (N, m, m), $J$'s matrix.
    """
    m = kahler.shape[-1]
    eps = jnp.asarray(_epsilon(m), dtype=kahler.dtype)
    i = _LETTERS[:m]
    j = _LETTERS[m : 2 * m]
    a = _LETTERS[2 * m : 2 * m + k]
    total = 0.0
    for perm in itertools.permutations(range(k)):
        operands = [eps, eps]
        subscripts = [i, j]
        for l in range(k):
            operands.append(form)
            subscripts.append("z" + a[perm[l]] + a[l] + i[l] + j[l])
        for l in range(k, m):
            operands.append(kahler)
            subscripts.append("z" + i[l] + j[l])
        spec = ",".join(subscripts) + "->z"
        total = total + _sign(perm) * jnp.einsum(spec, *operands, optimize="optimal")
    return total / math.factorial(k)


@jax.jit
def _densities(g, theta):
    """(N, m + 1): the vol_0 coefficients of c_k ∧ J^{m-k}, k = 0, ..., m."""
    m = g.shape[-1]
    kahler = g / (2 * math.pi)
    form = theta / (2 * math.pi)
    return jnp.stack([jnp.real(_top_coefficient(form, kahler, k)) for k in range(m + 1)], axis=-1)


def chern_densities(
    g: Complex[Array, "N m m"], theta: Complex[Array, "N m m m m"]
) -> Float[Array, "N m1"]:
    r"""The top-degree forms $c_k\wedge J^{m-k}$, $k = 0, \dots, m$, as coefficients of $\mathrm{vol}_0$.

    Column $k$ is $a_k$ in $c_k\wedge J^{m-k} = a_k\,\mathrm{vol}_0$,
    $\mathrm{vol}_0 = \prod_l(i\,dw^l\wedge d\bar w^l)$ (module docstring); column 0
    is $J^m = m!\det(g/2\pi)\,\mathrm{vol}_0$. Divide by $m!\det(g/2\pi)$ for the
    densities against $J^m$. `g`, `theta` from `chern_curvature`.
    """
    if g.ndim != 3 or theta.shape != g.shape + g.shape[-2:]:
        raise ValueError(
            f"chern_densities: g must be (N, m, m) and theta (N, m, m, m, m), got shapes "
            f"{g.shape} and {theta.shape}."
        )
    return _densities(g, theta)


class ChernIntegrals(eqx.Module):
    r"""Monte Carlo integrals $\int_X c_k\wedge J^{m-k}$, $k = 0, \dots, m$, and their standard errors.

    In units of the hyperplane class $H$ for a metric of the Fubini–Study class
    ($[J] = H$; module docstring). Entry $k$ of `numbers` is $\int_X c_k\wedge J^{m-k}$:
    on a threefold $(J^3, c_1\cdot J^2, c_2\cdot J, \chi)$, on a surface
    $(J^2, c_1\cdot J, \chi)$, on a curve $(\int J, \chi)$. `errors`: the standard
    errors (batched, module docstring). `count`: the number of points.
    """

    numbers: Float[Array, " m1"]
    errors: Float[Array, " m1"]
    count: int

    @property
    def euler(self) -> Float[Array, ""]:
        r"""$\chi = \int_X c_m$."""
        return self.numbers[-1]

    @property
    def euler_error(self) -> Float[Array, ""]:
        """The standard error of `euler`."""
        return self.errors[-1]


@jax.jit
def _mean_and_error(terms):
    count = terms.shape[0]
    mean = jnp.mean(terms, axis=0)
    batches = min(_BATCHES, count)
    batch = (jnp.arange(count) * batches) // count
    sums = jax.ops.segment_sum(terms - mean, batch, num_segments=batches)
    return mean, jnp.sqrt(jnp.sum(sums**2, axis=0)) / count


def chern_integrals(
    hypersurface: Hypersurface, sample: PointSample, potential=None
) -> ChernIntegrals:
    r"""$\int_X c_k\wedge J^{m-k}$ ($k = 0, \dots, m$) for the metric of `potential`, with standard errors.

    $g = \partial\bar\partial(\log|z|^2 + \phi)$ pulled back to $X$ (`potential` $= \phi$
    as in `hypersurface_curvature`, None for Fubini–Study); the integrals are
    topological for every metric of the class: on a degree-$d$ hypersurface of
    $\mathbb{CP}^n$, $\int_X c_k\wedge J^{m-k}$ is $d$ times the coefficient of $H^k$ in
    $(1 + H)^{n+1}/(1 + dH)$ (`chern_numbers`) — on the quintic $J^3 = 5$,
    $c_1\cdot J^2 = 0$, $c_2\cdot J = 50$, $\chi = -200$.

    Monte Carlo over `sample` (module docstring): per-point terms
    $x_a = \mathrm{Vol}_\mathrm{FS}\,w_aV_r\,a_a/|\Omega_a|^2$, the mean and a standard
    error from 100 contiguous batches. The sample must be drawn by the Fubini–Study
    volume form over all of $X$ (`sample_points`, `point_sample`; not a `chart_sample`).
    """
    _check("chern_integrals", hypersurface, sample)
    g, theta = chern_curvature(hypersurface, sample, potential)
    mean, error = _mean_and_error(_terms(hypersurface, sample, g, theta))
    return ChernIntegrals(mean, error, sample.count)


def _terms(hypersurface, sample, g, theta):
    r"""(N, m + 1): the per-point Monte Carlo terms $x_a$ of $\int_X c_k\wedge J^{m-k}$."""
    m = hypersurface.dim
    volume_fs = hypersurface.degree * (2 * math.pi) ** m / math.factorial(m)
    scale = volume_fs * sample.volume_ratio * sample.weights / jnp.abs(sample.omega) ** 2
    return scale[:, None] * _densities(g, theta)


def chern_numbers(hypersurface: Hypersurface) -> tuple[int, ...]:
    r"""The exact $\int_X c_k\wedge H^{m-k}$, $k = 0, \dots, m$, of a smooth degree-$d$ hypersurface.

    $d$ times the coefficient of $H^k$ in $c(X) = (1 + H)^{n+1}/(1 + dH)$ (adjunction):
    $(5, 0, 50, -200)$ on the quintic, $(4, 0, 24)$ on the quartic K3, $(3, 0)$ on the
    cubic curve, $(1, 3, 3)$ on a plane of $\mathbb{CP}^3$.
    """
    if not isinstance(hypersurface, Hypersurface):
        raise ValueError(
            f"chern_numbers: expected a Hypersurface, got {type(hypersurface).__name__}."
        )
    n, d, m = hypersurface.ambient_dim - 1, hypersurface.degree, hypersurface.dim
    coefficients = [
        sum(math.comb(n + 1, j) * (-d) ** (k - j) for j in range(k + 1)) for k in range(m + 1)
    ]
    return tuple(d * c for c in coefficients)
