r"""Kähler geometry of $\mathbb{CP}^n$ by automatic differentiation, and its Fubini–Study distance.

A real function $K(w, \bar w)$ of complex coordinates $w \in \mathbb C^m$ is
differentiated through its real form, $w = x + i y$, with the Wirtinger
derivatives $\partial_w = \tfrac12(\partial_x - i\partial_y)$ and
$\partial_{\bar w} = \tfrac12(\partial_x + i\partial_y)$:

$$\partial_i\partial_{\bar j} K = \tfrac14\big[K_{x_i x_j} + K_{y_i y_j} + i(K_{x_i y_j} - K_{y_i x_j})\big].$$

- `kahler_metric`: $g_{i\bar j} = \partial_i\partial_{\bar j} K$ for a Kähler potential $K$;
- `ricci_form`: $R_{i\bar j} = -\partial_i\partial_{\bar j}\log\det g$ (the Ricci curvature
  of the Kähler metric, in the same components); Kähler–Einstein means $R = \lambda g$;
- `fubini_study_potential`: $K = \log(1 + |w|^2)$, the Fubini–Study potential of
  $\mathbb{CP}^m$ in an affine chart ($K = \log|z|^2$ with $z = (1, w)$), for which
  $\mathrm{Ric} = (m + 1)\, g_\mathrm{FS}$;
- `fs_distance`: the Fubini–Study geodesic distance
  $d([z], [w]) = \arccos\big(|\langle z, w\rangle| / (|z||w|)\big)$ between points of
  $\mathbb{CP}^n$ in homogeneous coordinates, and `fs_distance_squared`, its square
  without an arccos (what Gaussian kernels in that distance evaluate). It is the
  distance of the Riemannian metric $ds^2 = g_{a\bar b}\,dw^a d\bar w^b$,
  $g = \partial\bar\partial\log|z|^2$ (the $g_\mathrm{FS}$ of the samples, $|v|^2 =
  v^\top g\bar v$; $d([1, t], [1, 0]) = |t| + O(|t|^3)$, diameter $\pi/2$). The scalar
  curvature's convention (docs/conventions.md) is that of $ds^2 = 2g_{a\bar b}\,dw^a
  d\bar w^b$, whose distances are $\sqrt2$ times these.

Components are Hermitian $m \times m$ complex matrices, $|v|^2_g = v^\top g \bar v$.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float


def complex_hessian(
    fn: Callable[[Complex[Array, " m"]], Float[Array, ""]],
    w: Complex[Array, " m"],
    *,
    forward_only: bool = False,
) -> Complex[Array, "m m"]:
    r"""$\partial_i\partial_{\bar j} f$ at `w` for a real function $f$ of complex coordinates.

    The real Hessian is forward over reverse mode (`jax.hessian`), or with
    `forward_only=True` forward over forward: the smaller graph when Hessians
    are nested (curvature differentiates a Hessian twice more).
    """
    m = w.shape[0]

    def real_form(xy):
        return fn(jax.lax.complex(xy[:m], xy[m:]))

    xy = jnp.concatenate([jnp.real(w), jnp.imag(w)])
    hessian = jax.jacfwd(jax.jacfwd(real_form)) if forward_only else jax.hessian(real_form)
    h = hessian(xy)
    hxx, hxy, hyx, hyy = h[:m, :m], h[:m, m:], h[m:, :m], h[m:, m:]
    return 0.25 * jax.lax.complex(hxx + hyy, hxy - hyx)


def kahler_metric(
    potential: Callable[[Complex[Array, " m"]], Float[Array, ""]], w: Complex[Array, " m"]
) -> Complex[Array, "m m"]:
    r"""$g_{i\bar j} = \partial_i\partial_{\bar j} K$ at `w`."""
    return complex_hessian(potential, w)


def ricci_form(
    potential: Callable[[Complex[Array, " m"]], Float[Array, ""]], w: Complex[Array, " m"]
) -> Complex[Array, "m m"]:
    r"""$R_{i\bar j} = -\partial_i\partial_{\bar j} \log\det g$, $g = \partial\bar\partial K$, at `w`."""

    def log_det(v):
        sign, value = jnp.linalg.slogdet(kahler_metric(potential, v))
        return jnp.real(value)

    return -complex_hessian(log_det, w)


def fubini_study_potential(w: Complex[Array, " m"]) -> Float[Array, ""]:
    r"""$\log(1 + |w|^2)$: Fubini–Study on $\mathbb{CP}^m$ in the affine chart $z = (1, w)$."""
    return jnp.log1p(jnp.sum(jnp.real(w) ** 2 + jnp.imag(w) ** 2))


# The Fubini–Study distance.


@jax.jit
def fs_distance(
    z: Complex[Array, "*batch n1"], w: Complex[Array, "*batch n1"]
) -> Float[Array, "*batch"]:
    r"""Fubini–Study geodesic distance $d([z],[w]) = \arccos\big(|\langle z, w\rangle| / (|z||w|)\big)$.

    The distance of $ds^2 = g_{a\bar b}\,dw^a d\bar w^b$, $g = \partial\bar\partial
    \log|z|^2$ (module docstring). $\langle z, w\rangle = \sum_i \bar z_i w_i$; the
    argument is clipped into $[0, 1]$, so rounding never gives NaN. In $[0, \pi/2]$,
    invariant under $z \to \lambda z$, $w \to \mu w$. Broadcasts over leading axes;
    the last dimensions must agree (`ValueError` otherwise). Jitted: a zero vector (not
    a point of $\mathbb{CP}^n$) is not refused and gives NaN. (Not differentiable at
    $[z] = [w]$, where arccos has an infinite slope.)
    """
    z, w = _check_pair(z, w, "fs_distance")
    inner = jnp.abs(jnp.sum(jnp.conj(z) * w, axis=-1))
    cos = inner / (jnp.linalg.norm(z, axis=-1) * jnp.linalg.norm(w, axis=-1))
    return jnp.arccos(jnp.clip(cos, 0.0, 1.0))


def _arccos_squared_over_one_minus(c):
    r"""$\arccos^2 c / (1 - c)$ on $[0, 1]$, in float64 without cancellation near $c = 1$.

    $\arccos c = 2\arcsin\sqrt{(1 - c)/2}$, and $1 - c$ is exact for $c \ge 1/2$.
    """
    x = 1 - np.asarray(c, dtype=np.float64)
    safe = np.where(x > 0, x, 1.0)
    return np.where(x > 0, 4 * np.arcsin(np.sqrt(safe / 2)) ** 2 / safe, 2.0)


# Q(c) = arccos(c)^2 / (1 - c) as a polynomial in t = 2c - 1: the Chebyshev interpolant of
# degree 18 at Chebyshev points of [0, 1], in monomials of t (coefficients below 2.2 in
# magnitude, so Horner's rule in t is as accurate as Clenshaw's; relative error 3e-15).
_Q_DEGREE = 18
_Q_COEFFICIENTS = tuple(
    float(a)
    for a in np.polynomial.chebyshev.cheb2poly(
        np.polynomial.Chebyshev.interpolate(
            _arccos_squared_over_one_minus, _Q_DEGREE, domain=[0, 1]
        ).coef
    )
)


def fs_distance_squared(
    z: Complex[Array, "*batch n1"], w: Complex[Array, "*batch n1"]
) -> Float[Array, "*batch"]:
    r"""$d_\mathrm{FS}([z], [w])^2$ without an arccos: $(1 - c)\,Q(c)$, $c = |\langle z, w\rangle|/(|z||w|)$.

    $Q(c) = \arccos^2 c/(1 - c)$ by its degree-18 Chebyshev interpolant on
    $[0, 1]$ (relative error 3e-15; `FSGaussian`). $c$ is clipped into
    $[0, 1]$ as in `fs_distance`, whose square this equals to 3e-15 relative
    plus about 1e-15 absolute (both carry the rounding of $c$, which $1 - c$
    makes absolute in $d^2$). Broadcasts over leading axes; the last dimensions must
    agree (`ValueError` otherwise). Differentiable where $c > 0$, with the exact
    derivatives of $d^2$ at $[z] = [w]$, where $d^2$ is smooth (the real Hessian of
    $w \mapsto d^2([1, w], [1, 0])$ at $w = 0$ is $2I$). A zero vector gives NaN (not
    checked: the function is used inside jitted kernels).
    """
    z, w = _check_pair(z, w, "fs_distance_squared")
    inner = jnp.sum(jnp.conj(z) * w, axis=-1)
    numerator = jnp.real(inner) ** 2 + jnp.imag(inner) ** 2
    return _distance_squared(numerator, _squared_norms(z) * _squared_norms(w))


def _check_pair(z, w, caller: str):
    """`z`, `w` as arrays with the same last dimension (>= 1); `ValueError` naming `caller` otherwise.

    Shapes only (static under tracing), so it costs nothing inside jit.
    """
    z, w = jnp.asarray(z), jnp.asarray(w)
    if z.ndim == 0 or w.ndim == 0 or z.shape[-1] != w.shape[-1]:
        raise ValueError(
            f"{caller}: z and w must be arrays of homogeneous coordinates with the same last "
            f"dimension (n + 1), got shapes {z.shape} and {w.shape}."
        )
    return z, w


def _squared_norms(z):
    return jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2, axis=-1)


def _distance_squared(numerator, norms):
    r"""$(1 - c)\,Q(c)$ from $|\langle z, w\rangle|^2$ and $|z|^2|w|^2$."""
    return _distance_squared_of_cosine(jnp.sqrt(numerator / norms))


def _distance_squared_of_cosine(c):
    r"""$(1 - c)\,Q(c)$, $c \ge 0$ (a square root) capped at 1.

    The cap keeps $c$'s derivatives: at coincident points $c$ rounds to 1 or just above,
    and a cap with derivative 0 there (`where(c > 1, 1, c)`), or 1/2 (`jnp.clip`, JAX's
    tie rule), would zero or halve every derivative of $d^2$; $c - \mathrm{stop}(c - 1)$
    is 1 with $c$'s derivative.
    """
    c = jnp.where(c > 1, c - jax.lax.stop_gradient(c - 1), c)
    t = 2 * c - 1
    q = jnp.full_like(t, _Q_COEFFICIENTS[-1])
    for a in _Q_COEFFICIENTS[-2::-1]:
        q = q * t + a
    return (1 - c) * q
