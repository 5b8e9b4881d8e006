r"""How far a metric on $X$ is from Ricci-flat: the σ measure and the Monge–Ampère losses.

A metric on a hypersurface $X$ is given by its values $h_a$ (Hermitian
$m \times m$, local coordinates of the point's chart) at the points $z_a$ of a
`PointSample`. With $\eta_a = \det h_a / |\Omega_a|^2$, the sample's weights
$w_a$ (mean 1, so $\frac1N\sum_a w_a f(z_a) \to \int_X f\, d\mathrm{Vol}_\Omega/\mathrm{Vol}_\Omega$)
and $\bar\eta = \sum_a w_a\eta_a / \sum_a w_a$, the Monge–Ampère losses are

$$L_p(h) = \frac{\sum_a w_a\, |1 - \eta_a/\bar\eta|^p}{\sum_a w_a},$$

$L_1$ being the σ measure
$\sigma = \frac{1}{\mathrm{Vol}_\Omega}\int_X |1 - \eta/\bar\eta|\, d\mathrm{Vol}_\Omega$
(Douglas, Karp, Lukic, Reinbacher, *Numerical Calabi–Yau metrics*,
J. Math. Phys. 49 (2008) 032302; Anderson et al., arXiv:2012.04656): about
0.373 for Fubini–Study on the Fermat quintic, 0 for a Ricci-flat metric
($\eta$ constant). `sigma_measure` estimates it with a standard error;
`MongeAmpereLoss` is the differentiable loss a flow descends.
`check_metric_values` checks metric values, and `curve_metric` is the exact
flat metric of the cubic curve.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from .._misc import is_traced, real_scalar
from .sampling import PointSample

# Contiguous batches of influence values in the standard error of `sigma_measure`.
_SIGMA_BATCHES = 100


# Metric values.


def check_metric_values(
    values, count: int, m: int, name: str = "metric values"
) -> Complex[Array, "N m m"]:
    r"""`values` as an (count, m, m) complex array, checked finite, Hermitian (1e-10 relative) and positive definite."""
    values = jnp.asarray(values)
    if values.shape != (count, m, m):
        raise ValueError(
            f"{name}: expected shape ({count}, {m}, {m}), one Hermitian matrix per point, "
            f"got {values.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError(f"{name}: values contain NaN or inf.")
    if not jnp.iscomplexobj(values):
        values = values.astype(jnp.result_type(float))
        values = jax.lax.complex(values, jnp.zeros_like(values))
    scale = jnp.max(jnp.abs(values), axis=(1, 2))
    asym = jnp.max(jnp.abs(values - jnp.conj(jnp.swapaxes(values, 1, 2))), axis=(1, 2))
    if not bool(jnp.all(asym <= 1e-10 * scale)):
        raise ValueError(f"{name}: a matrix is not Hermitian (h != h^dagger).")
    if count and not bool(jnp.all(jnp.linalg.eigvalsh(values)[:, 0] > 0)):
        raise ValueError(f"{name}: a matrix is not positive definite.")
    return values


def curve_metric(sample: PointSample, kappa: float = 1.0) -> Complex[Array, "N 1 1"]:
    r"""$g = \kappa\,|\Omega|^2$ on a curve ($m = 1$): on the cubic in $\mathbb{CP}^2$ the exact flat (Calabi–Yau) metric.

    Its $\eta = \det g / |\Omega|^2 = \kappa$ is constant, so $\sigma = 0$
    and every Monge–Ampère loss is at its minimum. (On curves of other
    degrees the sample's $\Omega$ carries the factor $|z|^{d-3}$ that makes it
    patch-independent, `PointSample`; $\kappa|\Omega|^2$ is then a metric on the curve,
    but not flat.)
    """
    m = sample.points.shape[1] - 2
    if m != 1:
        raise ValueError(f"curve_metric: the sample is of a {m}-fold; this metric is for curves.")
    value = real_scalar(kappa)
    if value is None or not math.isfinite(value) or not value > 0:
        raise ValueError(f"curve_metric: kappa must be a finite number > 0, got {kappa!r}.")
    return (value * jnp.abs(sample.omega) ** 2).astype(sample.g_fs.dtype)[:, None, None]


# Losses.


def sigma_measure(
    sample: PointSample, g: Complex[Array, "N m m"]
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""The σ measure of a metric $g$ on $X$ and the standard error of its Monte Carlo estimate.

    With $\eta_a = \det g_a / |\Omega_a|^2$ and the sample's weights $w_a$:
    $\bar\eta = \sum_a w_a\eta_a / \sum_a w_a$,
    $\hat\sigma = \sum_a w_a |1 - \eta_a/\bar\eta| / \sum_a w_a$, estimating
    $\sigma = \frac{1}{\mathrm{Vol}_\Omega}\int_X |1 - \eta/\bar\eta|\,d\mathrm{Vol}_\Omega$
    (Douglas et al. 2008). The estimate is invariant under $g \to c\,g$.

    Standard error: the delta method for this ratio estimator, which has
    influence values $\psi_a = w_a\big(|1 - x_a| - \hat\sigma + \kappa(x_a - 1)\big)/\bar w$,
    $x_a = \eta_a/\bar\eta$, $\kappa = \sum_a w_a\,\mathrm{sign}(1 - x_a)\,x_a / \sum_a w_a$
    (the $\kappa$ term carries the error of $\bar\eta$); these are summed over
    100 contiguous batches (fewer if N < 100) so that the correlated points
    of one sampled line, which are adjacent, fall in one batch:
    $\mathrm{se}^2 = \sum_b (\sum_{a \in b} \psi_a)^2 / N^2$.

    **Arguments:**

    - `sample`: a `PointSample`.
    - `g`: (N, n - 1, n - 1) the metric in each point's local coordinates
      (Hermitian positive definite); `sample.g_fs` for Fubini–Study.

    **Returns:** `(sigma, standard_error)`, real scalars. Jittable.

    Refuses (`ValueError`, naming the first such point) a `g` that is not finite or
    not Hermitian at some point (to $10^{-10}$ of its largest entry in float64, 1e-4 in
    float32); under `jit` a non-finite `g` raises at run time (`eqx.error_if`; Hermitian
    is then not checked). Positive definiteness is not required: σ is computed from
    $\eta_a$ wherever it is finite, and where $g_a$ is not positive definite ($\eta_a \le 0$, or $\eta_a > 0$ with two
    negative eigenvalues) the number is not the σ of a metric. That is on purpose:
    untrained networks are reported so (an uncentred `bihomogeneous_potential` is not
    positive definite at every point until trained; `solvers.train_potential` records
    its σ from epoch 0, as MLGeometry-JAX does). Where `g` must be a metric, check it
    with `check_metric_values(g, N, m)`.
    """
    check_sample_metric("sigma_measure", sample, g)
    if is_traced(g):
        g = eqx.error_if(
            g,
            ~jnp.all(jnp.isfinite(g)),
            "sigma_measure: g has a NaN or inf entry at some point.",
        )
    else:
        _check_finite_hermitian("sigma_measure", g)
    return _sigma_measure(sample.omega, sample.weights, g)


def check_sample_metric(caller: str, sample, g) -> None:
    """`ValueError` naming `caller` unless `sample` is a `PointSample` and `g` has shape
    (N, m, m), one value in local coordinates per point (shapes only: checked under `jit` too)."""
    if not isinstance(sample, PointSample):
        raise ValueError(f"{caller}: sample must be a PointSample, got {type(sample).__name__}.")
    m = sample.points.shape[1] - 2
    shape = getattr(g, "shape", None)
    if shape != (sample.count, m, m):
        raise ValueError(
            f"{caller}: g must have shape ({sample.count}, {m}, {m}), one metric in local "
            f"coordinates per point of the sample, got shape {shape}."
        )


def _check_finite_hermitian(caller: str, g) -> None:
    """`ValueError`, naming the first such point, unless every `g[a]` is finite and Hermitian.

    Hermitian to $10^{-10}$ of the point's largest entry (as `check_metric_values`), or
    $10^3$ times the dtype's epsilon where that is larger (1.2e-4 in float32).
    """
    g = np.asarray(g)
    n = g.shape[0]
    finite = np.isfinite(g).reshape(n, -1).all(axis=1)
    if not finite.all():
        raise ValueError(f"{caller}: g has a NaN or inf entry at point {int(np.argmin(finite))}.")
    tolerance = max(1e-10, 1e3 * float(np.finfo(g.dtype).eps)) if n else 0.0
    scale = np.abs(g).reshape(n, -1).max(axis=1, initial=0.0)
    asym = np.abs(g - np.conj(np.swapaxes(g, 1, 2))).reshape(n, -1).max(axis=1, initial=0.0)
    hermitian = asym <= tolerance * scale
    if not hermitian.all():
        bad = int(np.argmin(hermitian))
        raise ValueError(
            f"{caller}: g is not Hermitian at point {bad} (max |g - g^dagger| = {asym[bad]:.1e} "
            f"against max |g| = {scale[bad]:.1e}); pass the metric in local coordinates."
        )


@jax.jit
def _sigma_measure(omega, w, g):
    det = jnp.real(jnp.linalg.det(g))
    eta = det / jnp.abs(omega) ** 2
    total = jnp.sum(w)
    eta_bar = jnp.sum(w * eta) / total
    x = eta / eta_bar
    h = jnp.abs(1 - x)
    sigma = jnp.sum(w * h) / total
    kappa = jnp.sum(w * jnp.sign(1 - x) * x) / total
    influence = w * (h - sigma + kappa * (x - 1)) / (total / w.shape[0])
    batches = min(_SIGMA_BATCHES, w.shape[0])
    batch = (jnp.arange(w.shape[0]) * batches) // w.shape[0]
    sums = jax.ops.segment_sum(influence, batch, num_segments=batches)
    stderr = jnp.sqrt(jnp.sum(sums**2)) / w.shape[0]
    return sigma, stderr


@jax.custom_jvp
def _abs(u):
    return jnp.abs(u)


@_abs.defjvp
def _abs_jvp(primals, tangents):
    # the subgradient of least norm: 0 where |u| is at rounding level, so that a
    # Ricci-flat metric is a fixed point of the sigma flow and not a chattering one
    (u,), (du,) = primals, tangents
    return jnp.abs(u), jnp.where(jnp.abs(u) > _ROUNDING, jnp.sign(u), 0.0) * du


_ROUNDING = 1e-12


class MongeAmpereLoss(eqx.Module):
    r"""$L_p = \sum_a w_a |1 - \eta_a/\bar\eta|^p / \sum_a w_a$, $\eta = \det h/|\Omega|^2$ (module docstring).

    $p = 1$ is the σ measure (Douglas et al. 2008); $p = 2$ is smooth. Both are
    invariant under $h \to c\,h$ and vanish exactly when $\eta$ is constant,
    i.e. at the Ricci-flat metric. For $p = 1$ the derivative of $|u|$ at
    $|u| \le 10^{-12}$ (rounding) is taken as 0, the least-norm subgradient:
    the gradient flow of a convex non-smooth function follows it.

    The loss is defined for any finite `h`, positive definite or not (a flow from an
    untrained `bihomogeneous_potential`, which is not positive definite everywhere,
    descends it); the shapes are checked: `omega` (N,), `weights` (N,), `h` (N, m, m).

    **Arguments:** `p`, a finite number >= 1 (a 0-d array too; not a bool).
    """

    p: float = eqx.field(static=True)

    def __init__(self, p: float = 1.0):
        value = real_scalar(p)
        if value is None or not math.isfinite(value) or not value >= 1:
            raise ValueError(f"MongeAmpereLoss: p must be a finite number >= 1, got {p!r}.")
        self.p = value

    def __call__(
        self, omega: Complex[Array, " N"], weights: Float[Array, " N"], h: Complex[Array, "N m m"]
    ) -> Float[Array, ""]:
        _check_loss_shapes("MongeAmpereLoss", omega, weights, h)
        eta = jnp.real(jnp.linalg.det(h)) / jnp.abs(omega) ** 2
        total = jnp.sum(weights)
        u = 1 - eta / (jnp.sum(weights * eta) / total)
        return jnp.sum(weights * _abs(u) ** self.p) / total

    def gradient(
        self, omega: Complex[Array, " N"], weights: Float[Array, " N"], h: Complex[Array, "N m m"]
    ) -> Complex[Array, "N m m"]:
        r"""$\partial L/\partial h_a$, Hermitian, in the inner product $\mathrm{Re}\,\mathrm{tr}(X^\dagger Y)$."""
        _check_loss_shapes("MongeAmpereLoss.gradient", omega, weights, h)

        def real_loss(re, im):
            return self(omega, weights, jax.lax.complex(re, im))

        g_re, g_im = jax.grad(real_loss, argnums=(0, 1))(jnp.real(h), jnp.imag(h))
        g_re = (g_re + jnp.swapaxes(g_re, 1, 2)) / 2
        g_im = (g_im - jnp.swapaxes(g_im, 1, 2)) / 2
        return jax.lax.complex(g_re, g_im)

    def functional_derivative(
        self, omega: Complex[Array, " N"], weights: Float[Array, " N"], h: Complex[Array, "N m m"]
    ) -> Complex[Array, "N m m"]:
        r"""$G_a = \frac{N}{w_a}\,\partial L/\partial h_a$: the gradient per unit of the measure."""
        _check_loss_shapes("MongeAmpereLoss.functional_derivative", omega, weights, h)
        scale = weights.shape[0] / weights
        grad = self.gradient(omega, weights, h)
        return grad * scale.astype(grad.dtype)[:, None, None]


def _check_loss_shapes(caller: str, omega, weights, h) -> None:
    """`omega` (N,), `weights` (N,), `h` (N, m, m): static shapes, so checked under `jit` too."""
    shapes = [getattr(x, "shape", None) for x in (omega, weights, h)]
    h_shape = shapes[2]
    n = h_shape[0] if h_shape is not None and len(h_shape) == 3 else None
    if (
        n is None
        or h_shape[1] != h_shape[2]
        or h_shape[1] < 1
        or n < 1
        or shapes[0] != (n,)
        or shapes[1] != (n,)
    ):
        raise ValueError(
            f"{caller}: omega, weights and h must have shapes (N,), (N,) and (N, m, m), one "
            f"entry per point (N >= 1), got shapes {shapes[0]}, {shapes[1]} and {h_shape}."
        )
