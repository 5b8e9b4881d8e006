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
  sample must cover all of $X$: a `chart_sample` (one chart's region) is not refused,
  since nothing in a `PointSample` records it, but its averages are the region's, scaled
  as if they were $X$'s.
- **Standard error**: `sample_points` returns the $d$ points of each sampled line
  consecutively, and they are correlated; the per-point terms are cut into $B$ =
  min(100, $L$) batches of whole lines ($L = \lceil N/d\rceil$ lines, line $l$ in batch
  $\lfloor lB/L\rfloor$), independent of each other, and
  $\mathrm{se}^2 = \frac{B}{B-1}\sum_b\big(\sum_{a\in b}(x_a - \bar x)\big)^2/N^2$
  (unbiased for batches of equal size). So $N > d$ is needed (two lines). Points in
  another order (a `subsample`, or after `point_sample` dropped one) are still batched
  $d$ at a time, consecutively.
"""

import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from .._misc import is_traced
from .curvature import _chart_metric, _check, _inverse, _polynomial
from .hypersurface import Hypersurface
from .sampling import PointSample
from .spectral_basis import _check_sample

_BATCHES = 100
# A metric whose smallest eigenvalue at a point is below this times Fubini–Study's largest
# there is degenerate: refused (g = 0 from phi = -log|z|^2 comes out at ~1e-16).
_DEGENERATE = 1e-10
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

    Refused (`ValueError`): a sample of another hypersurface (its points' residual
    $|p(z)|$, as `donaldson_balanced` checks), a `potential` that is not callable, and,
    outside a trace, a metric that is not finite or not positive definite at some point,
    or a curvature that is not finite (naming the first such point).
    """
    _check_inputs("chern_curvature", hypersurface, sample, potential)
    return _checked_curvature("chern_curvature", hypersurface, sample, potential)


def _checked_curvature(caller: str, hypersurface, sample, potential):
    g, theta = _chern_curvature(
        _polynomial(hypersurface),
        hypersurface.coefficients,
        sample.points,
        sample.patch,
        sample.eliminated,
        potential,
    )
    _check_metric(caller, g, theta, sample.g_fs)
    return g, theta


def _check_inputs(caller: str, hypersurface, sample, potential) -> None:
    _check(caller, hypersurface, sample)
    _check_sample(hypersurface, sample, caller)
    if potential is not None and not callable(potential):
        raise ValueError(
            f"{caller}: potential must be None (Fubini–Study) or a callable phi(z) (a "
            f"KahlerPotential, SpectralPotential, AlgebraicPotential or a function), got "
            f"{potential!r}."
        )


def _check_metric(caller: str, g, theta, g_fs) -> None:
    """`ValueError` naming the first point where g is not finite or not positive definite
    (smallest eigenvalue <= _DEGENERATE times g_FS's largest), or Θ is not finite."""
    if is_traced(g) or is_traced(theta) or is_traced(g_fs):
        return  # inside jit: the values cannot be checked
    g, theta = np.asarray(g), np.asarray(theta)
    count = g.shape[0]
    finite = np.all(np.isfinite(g), axis=(1, 2))
    bad = np.flatnonzero(~finite)
    if bad.size:
        raise ValueError(
            f"{caller}: the metric of `potential` is not finite at {bad.size} of {count} points "
            f"(first: point {bad[0]}); the potential must be finite and smooth on X."
        )
    lowest = np.linalg.eigvalsh((g + np.conj(np.swapaxes(g, 1, 2))) / 2)[:, 0]
    scale = np.linalg.eigvalsh(np.asarray(g_fs))[:, -1]
    bad = np.flatnonzero(~(lowest > _DEGENERATE * scale))
    if bad.size:
        raise ValueError(
            f"{caller}: the metric of `potential` is not positive definite at {bad.size} of "
            f"{count} points (first: point {bad[0]}, smallest eigenvalue {lowest[bad[0]]:.2e}, "
            f"Fubini–Study's largest there {scale[bad[0]]:.2e}); g = g_FS + ∂∂̄phi must be a "
            "Kähler metric."
        )
    bad = np.flatnonzero(~np.all(np.isfinite(theta), axis=(1, 2, 3, 4)))
    if bad.size:
        raise ValueError(
            f"{caller}: the curvature of `potential` is not finite at {bad.size} of {count} "
            f"points (first: point {bad[0]}); the potential must be smooth on X (four "
            "derivatives)."
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
    densities against $J^m$. `g`, `theta` from `chern_curvature` (array-likes; both
    cast to one complex dtype).
    """
    g, theta = jnp.asarray(g), jnp.asarray(theta)
    if g.ndim != 3 or g.shape[1] != g.shape[2] or theta.shape != g.shape + g.shape[-2:]:
        raise ValueError(
            f"chern_densities: g must be (N, m, m) and theta (N, m, m, m, m), got shapes "
            f"{g.shape} and {theta.shape}."
        )
    # NumPy's promotion (JAX's may be strict), to the widest complex dtype JAX allows
    dtype = jax.dtypes.canonicalize_dtype(
        np.promote_types(np.promote_types(g.dtype, theta.dtype), np.complex64)
    )
    return _densities(g.astype(dtype), theta.astype(dtype))


class ChernIntegrals(eqx.Module):
    r"""Monte Carlo integrals $\int_X c_k\wedge J^{m-k}$, $k = 0, \dots, m$, and their standard errors.

    In units of the hyperplane class $H$ for a metric of the Fubini–Study class
    ($[J] = H$; module docstring). Entry $k$ of `numbers` is $\int_X c_k\wedge J^{m-k}$:
    on a threefold $(J^3, c_1\cdot J^2, c_2\cdot J, \chi)$, on a surface
    $(J^2, c_1\cdot J, \chi)$, on a curve $(\int J, \chi)$. `errors`: the standard
    errors (batches of whole sampled lines, module docstring). `count`: the number of
    points.
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


def _batch_count(count: int, degree: int) -> int:
    """B = min(100, L), L = ceil(count / degree) the sampled lines (module docstring)."""
    return min(_BATCHES, -(-count // degree))


@functools.partial(jax.jit, static_argnames="degree")
def _mean_and_error(terms, degree: int):
    r"""The mean of `terms` (N, ...) over its first axis and its standard error.

    From batches of whole lines of `degree` consecutive points:
    $\mathrm{se}^2 = \frac{B}{B-1}\sum_b S_b^2/N^2$ (module docstring).
    """
    count = terms.shape[0]
    lines = -(-count // degree)
    batches = _batch_count(count, degree)
    if batches < 2:
        raise ValueError(
            f"_mean_and_error: {count} points of lines of {degree} are one line; a standard "
            "error needs two."
        )
    mean = jnp.mean(terms, axis=0)
    batch = (jnp.arange(count) // degree * batches) // lines
    sums = jax.ops.segment_sum(terms - mean, batch, num_segments=batches)
    return mean, jnp.sqrt(batches / (batches - 1) * jnp.sum(sums**2, axis=0)) / count


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
    error from up to 100 batches of whole sampled lines ($d$ consecutive points), with
    the factor $B/(B - 1)$. The sample must be drawn by the Fubini–Study volume form over
    all of $X$, in `sample_points`' order (`sample_points`, `point_sample`); a
    `chart_sample` is not refused (nothing marks it) but gives its region's integrals
    scaled as if over $X$, wrong. Refused: fewer than $d + 1$ points (one line gives no
    standard error), and what `chern_curvature` refuses.
    """
    caller = "chern_integrals"
    _check_inputs(caller, hypersurface, sample, potential)
    if _batch_count(sample.count, hypersurface.degree) < 2:
        raise ValueError(
            f"{caller}: the standard error needs points of at least two sampled lines, "
            f"N > d = {hypersurface.degree}, got N = {sample.count}."
        )
    g, theta = _checked_curvature(caller, hypersurface, sample, potential)
    mean, error = _mean_and_error(_terms(hypersurface, sample, g, theta), hypersurface.degree)
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
