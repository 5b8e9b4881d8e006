r"""Linear predictions: growth rates of flows at the flat torus, extinction times of round spheres.

The rates are those of docs/conventions.md, Well-posedness.

At the flat $T^2$ two perturbations are eigenvectors of every flow's
linearisation $L = DV(g_\mathrm{ref})$:

- the gauge mode $h = \nabla\nabla\cos(k x)$ ($h_{11} = -k^2 \cos kx$), pure
  diffeomorphism: neutral for Hamilton's flow and the $\lambda$ forms, damped
  by the DeTurck term, growing for the fixed-measure flow;
- the conformal mode $h = \cos(kx)\,\delta$, whose scalar curvature
  $\dot R = DR[h]$ decays at $|k|^2$ under every flow (R is invariant).

`mode_rates` measures them exactly by forward-mode differentiation of the
flow's vector field (no time stepping): the gauge rate is the Rayleigh
quotient $\langle L h, h\rangle / \langle h, h\rangle$ (with the residual of
the eigen-relation), the R-mode rate
$\langle DR[Lh], DR[h]\rangle / \langle DR[h], DR[h]\rangle$. `predicted_mode_rates`
and `smoothed_mode_decay_rate` give the closed forms.

On the round unit $S^n$ every flow smoothed by the Gaussian $k_\sigma$ is Ricci flow
slowed by the factor $1 - \beta_\sigma$ (`sphere_smoothing_beta`), so the sphere
shrinks homothetically and goes extinct at `sphere_extinction_time`.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate

from .._manifolds import Torus
from .._metrics import NodalMetric, nodal_geometry
from .base import AbstractFlow

_GAUGE = {
    "ricci": 0.0,
    "ricci_deturck": -1.0,
    "perelman": 1.0,
    "perelman_lambda": 0.0,
    "perelman_lambda_deturck": -1.0,
    "smoothed": 1.0,
    "smoothed_lambda": 0.0,
    "componentwise": 1.0,
}


def predicted_mode_rates(name: str, k: int, sigma: float = 0.0) -> tuple[float, float]:
    r"""The growth rates (gauge mode, R's k-th mode) of flow `name` at the flat torus.

    Gauge: $s |k|^2 e^{-\sigma^2 k^2/2}$ with $s = 0, -1, +1$ by flow; R mode: $-|k|^2 e^{-\sigma^2 k^2/2}$.
    `sigma` applies to the flows `make_flow` smooths: the `smoothed` ones and
    `componentwise` at `sigma` > 0 (docs/conventions.md, Well-posedness).
    """
    if name not in _GAUGE:
        raise ValueError(f"predicted_mode_rates: unknown flow {name!r}.")
    smoothed = name.startswith("smoothed") or name == "componentwise"
    smoothing = math.exp(-(sigma**2) * k**2 / 2) if smoothed else 1.0
    return _GAUGE[name] * k**2 * smoothing, -(k**2) * smoothing


@eqx.filter_jit
def _linearised(flow: AbstractFlow, values, tangent):
    return jax.jvp(lambda y: flow(0.0, y), (values,), (tangent,))[1]


@eqx.filter_jit
def _scalar_tangent(manifold, values, tangent):
    def scalar(v):
        geom = nodal_geometry(NodalMetric(manifold, v, check=False))
        return jax.vmap(lambda q: q.scalar)(geom)

    return jax.jvp(scalar, (values,), (tangent,))[1]


def mode_rates(flow: AbstractFlow, k: int) -> dict[str, float]:
    """Measured growth rates of the gauge mode and of R's k-th mode (wavevector (k, 0)) at the flat T².

    Returns `gauge_rate`, `gauge_residual` (max |Lh - rate h| / max |h|, zero
    when h is an eigenvector) and `r_mode_rate`.
    """
    m = flow.manifold
    if not (isinstance(m, Torus) and m.dim == 2):
        raise ValueError(f"mode_rates: needs a flow on a 2-torus, got {m!r}.")
    if not 1 <= k <= m.band_limit:
        raise ValueError(f"mode_rates: k must be in 1..{m.band_limit} on {m!r}, got {k}.")
    g0 = m.reference_at_nodes()
    c = jnp.cos(k * m.nodes[:, 0])
    gauge = jnp.zeros_like(g0).at[:, 0, 0].set(-(k**2) * c)
    lg = _linearised(flow, g0, gauge)
    rate = jnp.sum(lg * gauge) / jnp.sum(gauge * gauge)
    residual = jnp.max(jnp.abs(lg - rate * gauge)) / jnp.max(jnp.abs(gauge))
    conformal = g0 * c[:, None, None]
    lc = _linearised(flow, g0, conformal)
    dr = _scalar_tangent(m, g0, conformal)
    dlr = _scalar_tangent(m, g0, lc)
    r_rate = jnp.sum(dlr * dr) / jnp.sum(dr * dr)
    return {
        "gauge_rate": float(rate),
        "gauge_residual": float(residual),
        "r_mode_rate": float(r_rate),
    }


def smoothed_mode_decay_rate(k, sigma: float):
    r"""$\gamma_k = k^2 e^{-\sigma^2 k^2/2}$: the decay rate of R's $k$-th mode under a flow smoothed by $k_\sigma$.

    At the flat torus, R's Fourier mode of wavenumber $k$ decays like
    $e^{-\gamma_k t}$ under every flow of `predicted_mode_rates` smoothed by the
    Gaussian $k_\sigma$ (the negative of its R-mode rate); $\sigma = 0$ gives the
    local rate $k^2$.

    **Arguments:** `k`, a wavenumber or an array of them; `sigma` >= 0, the width.

    **Returns:** a NumPy float array of the shape of `k`.
    """
    k = np.asarray(k, dtype=float)
    return k**2 * np.exp(-(sigma**2) * k**2 / 2)


# the widest sigma `sphere_smoothing_beta` takes: 2 sigma^2 overflows float64 past ~9.5e153
_BETA_SIGMA_MAX = 1e150


def sphere_smoothing_beta(sigma: float, n: int) -> float:
    r"""$\beta_\sigma$ on the round unit $S^n$: smoothing by $k_\sigma$ multiplies the round velocity by $1 - \beta_\sigma$.

    $$\beta_\sigma = \frac{1}{n}\,
    \frac{\int_0^\pi e^{-d^2/2\sigma^2}\sin^{n+1}d\,\mathrm{d}d}{\int_0^\pi e^{-d^2/2\sigma^2}\sin^{n-1}d\,\mathrm{d}d},$$

    by scipy quadrature (relative tolerance 1e-13); 0 at $\sigma = 0$ (the local flow).
    Below $\sigma = 0.1$ in the variable $s = d/\sigma$ on $[0, \min(\pi/\sigma, 40)]$,
    $\beta_\sigma = \frac{\sigma^2}{n}\frac{\int e^{-s^2/2}(\sin\sigma s/\sigma)^{n+1}ds}
    {\int e^{-s^2/2}(\sin\sigma s/\sigma)^{n-1}ds}$: on $[0, \pi]$ quadrature misses a
    narrow peak, and $\beta_\sigma \to \sigma^2$ as $\sigma \to 0$ (for $n = 2, 3$).

    **Arguments:** `sigma` >= 0, the width of the geodesic Gaussian, at most 1e150 (past
    about 9.5e153 $2\sigma^2$ overflows; already past $\pi/\sqrt{2\epsilon} \approx 1.5\times10^8$
    the kernel is constant on $[0, \pi]$ to rounding and $\beta_\sigma = 1/(n+1)$, its limit);
    `n`, the sphere's dimension. Another `sigma` raises `ValueError`.
    """
    if not (math.isfinite(sigma) and 0 <= sigma <= _BETA_SIGMA_MAX):
        raise ValueError(
            f"sphere_smoothing_beta: sigma must be a finite number in [0, {_BETA_SIGMA_MAX:g}], "
            f"got {sigma!r} (2 sigma^2 overflows float64 past about 9.5e153; already past "
            f"sigma = 1.5e8 the kernel is constant on S^{n} to rounding, beta = 1/(n + 1))."
        )
    if sigma == 0:
        return 0.0

    def quad(f, upper):
        return scipy.integrate.quad(f, 0, upper, epsabs=0, epsrel=1e-13)[0]

    if sigma >= 0.1:

        def integral(p):
            return quad(lambda d: math.exp(-(d**2) / (2 * sigma**2)) * math.sin(d) ** p, math.pi)

        return integral(n + 1) / (n * integral(n - 1))

    def scaled(p):  # e^{-s^2/2} beyond s = 40 is below 1e-347: nothing
        upper = min(math.pi / sigma, 40.0)
        return quad(lambda s: math.exp(-(s**2) / 2) * (math.sin(sigma * s) / sigma) ** p, upper)

    return sigma**2 * scaled(n + 1) / (n * scaled(n - 1))


def sphere_extinction_time(sigma: float, n: int) -> float:
    r"""$T(\sigma) = 1/(2(n-1)(1 - \beta_\sigma))$: when Ricci flow smoothed by $k_\sigma$ extinguishes the round $S^n$.

    Locally ($\sigma = 0$) $g(t) = (1 - 2(n-1)t)\,g_\mathrm{ref}$, extinct at
    $T = 1/(2(n-1))$; smoothing slows the shrinking by $1 - \beta_\sigma$
    (`sphere_smoothing_beta`).

    **Arguments:** `sigma` >= 0, the width; `n` >= 2, the sphere's dimension.
    """
    return 1.0 / (2 * (n - 1) * (1 - sphere_smoothing_beta(sigma, n)))
