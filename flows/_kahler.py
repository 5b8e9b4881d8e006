r"""Kähler geometry by automatic differentiation in complex coordinates.

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
  $\mathrm{Ric} = (m + 1)\, g_\mathrm{FS}$.

Components are Hermitian $m \times m$ complex matrices, $|v|^2_g = v^\top g \bar v$.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
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
    return jnp.log1p(jnp.sum(jnp.abs(w) ** 2))
