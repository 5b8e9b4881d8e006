r"""Kähler metrics $g = \partial\bar\partial(K_\mathrm{FS} + \phi)$ on a hypersurface, $\phi$ a network.

On $X \subset \mathbb{CP}^n$ the metric in the local coordinates $w$ of a
point's chart is the pull-back of the ambient $(1,1)$-form,

$$g_{a\bar b} = \sum_{ij} J_{ia}\, \partial_i\partial_{\bar j}(K_\mathrm{FS} + \phi)\, \overline{J_{jb}},
\qquad K_\mathrm{FS} = \log|z|^2,$$

$J = \partial z/\partial w$ the embedding's Jacobian (`PointSample.jacobian`).
$\phi$ must be a function on $\mathbb{CP}^n$, invariant under $z \to \lambda z$,
so that $g$ does not depend on how a point is scaled: here it is a network of
the bihomogeneous features $z_i\bar z_j/|z|^2$ (`bihomogeneous_features`), as
in cymetric and MLGeometry-JAX. As for the project's other network metrics
(`ComponentNetworkMetric`), the network is centred,
$\phi_\theta = f_\theta - f_{\theta_0}$, so that the flow starts at
Fubini–Study; the Kähler class never changes ($\phi$ is a global function).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from .._misc import check_count
from .projective import complex_hessian
from .sampling import PointSample


def bihomogeneous_features(z: Complex[Array, " n1"]) -> Float[Array, " f"]:
    r"""Real features of $[z] \in \mathbb{CP}^n$: $\mathrm{Re}$ and $\mathrm{Im}$ of $z_i\bar z_j/|z|^2$, $i \le j$.

    $(n+1)^2$ numbers (the diagonal is real), invariant under $z \to \lambda z$,
    $\lambda \in \mathbb{C}^*$.
    """
    n1 = z.shape[0]
    outer = (
        z[:, None]
        * jnp.conj(z)[None, :]
        / jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2).astype(z.dtype)
    )
    i, j = np.triu_indices(n1)
    k, l = np.triu_indices(n1, 1)
    return jnp.concatenate([jnp.real(outer[i, j]), jnp.imag(outer[k, l])])


class KahlerPotential(eqx.Module):
    r"""$\phi_\theta([z]) = f_\theta(u(z)) - f_{\theta_0}(u(z))$, $u$ the bihomogeneous features.

    `network` is any Equinox module mapping the $(n+1)^2$ features to a scalar
    (trained); `initial` is its frozen copy at $\theta_0$ (not a leaf of the
    gradient: `jax.lax.stop_gradient`). With `centred=False` the potential is
    $f_\theta(u(z))$ itself and the flow starts at $g_{\theta_0}$, not at
    Fubini–Study (`bihomogeneous_potential`: the network is then a whole
    algebraic metric, and subtracting a random one would have to be undone).
    """

    network: eqx.Module
    initial: eqx.Module
    centred: bool = eqx.field(static=True, default=True)

    def __call__(self, z: Complex[Array, " n1"]) -> Float[Array, ""]:
        u = bihomogeneous_features(z)
        value = jnp.reshape(self.network(u), ())
        if not self.centred:
            return value
        params, static = eqx.partition(self.initial, eqx.is_array)
        frozen = eqx.combine(jax.lax.stop_gradient(params), static)
        return value - jnp.reshape(frozen(u), ())

    def metric(
        self, points: Complex[Array, "N n1"], jacobian: Complex[Array, "N n1 m"]
    ) -> Complex[Array, "N m m"]:
        r"""The pulled-back metric $g = J^\top\, \partial\bar\partial(\log|z|^2 + \phi)\, \bar J$ at given points.

        The same computation as `pulled_back_metric(sample, self)`, for points
        and Jacobians that are not bundled in a `PointSample` (a training loop
        that batches them, say). Hermitian, in each point's local coordinates;
        positive definite as long as $\phi$ is small enough (not checked here).
        Jittable and differentiable in the network's parameters.

        **Arguments:**

        - `points`: (N, n + 1) homogeneous coordinates of points of $X$
          (`PointSample.points`).
        - `jacobian`: (N, n + 1, m) the embedding Jacobians $J = \partial z/\partial w$
          of their charts (`PointSample.jacobian`), $m = n - 1$.

        **Returns:** (N, m, m) complex.
        """
        points, jacobian = jnp.asarray(points), jnp.asarray(jacobian)
        if points.ndim != 2 or jacobian.ndim != 3 or jacobian.shape[:2] != points.shape:
            raise ValueError(
                "KahlerPotential.metric: points must have shape (N, n + 1) and jacobian shape "
                f"(N, n + 1, m), got shapes {points.shape} and {jacobian.shape}."
            )
        return _pulled_back(points, jacobian, self)


def kahler_potential(
    ambient_dim: int,
    key: PRNGKeyArray,
    *,
    width: int = 64,
    depth: int = 2,
    activation=jax.nn.gelu,
) -> KahlerPotential:
    r"""A centred `KahlerPotential` with an MLP `width` x `depth` (smooth `activation`: $g$ needs $\partial\bar\partial\phi$)."""
    n1 = check_count(
        ambient_dim, "kahler_potential: ambient_dim must be an integer >= 2", minimum=2
    )
    width = check_count(width, "kahler_potential: width must be an integer >= 1", minimum=1)
    depth = check_count(depth, "kahler_potential: depth must be an integer >= 1", minimum=1)
    mlp = eqx.nn.MLP(n1 * n1, "scalar", width, depth, activation=activation, key=key)
    return KahlerPotential(mlp, mlp)


class BihomogeneousNetwork(eqx.Module):
    r"""$f(u) = \frac1k\log\sum_j c_j^2\, x_{L,j}$, $x_l = (W_l x_{l-1})^2$ elementwise, $x_0 = u$, $k = 2^L$.

    With $u$ the bihomogeneous features, $P = |z|^{2k} e^{k f}$ is a real
    polynomial of bidegree $(k, k)$ in $(z, \bar z)$, positive by
    construction, so $\partial\bar\partial(\log|z|^2 + f)$ is the algebraic
    form $\frac1k\partial\bar\partial\log P$. $P > 0$ does not make $\log P$
    plurisubharmonic: that form need not be positive definite (a metric) at every
    point; it is when $P$ is a sum of squared moduli of holomorphic polynomials,
    which this $P$, a sum of squares of real ones, is not in general. The
    architecture is MLGeometry's bihomogeneous network (Douglas,
    Lakshminarasimhan and Qi 2020). Weights
    start at $|\mathcal N(0, 1)| \times$ `scale`, as theirs, so every layer starts
    positive.
    """

    layers: tuple
    out: Float[Array, " w"]

    def __init__(self, in_size: int, widths, key: PRNGKeyArray, scale: float = 0.05):
        keys = jax.random.split(key, len(widths) + 1)
        layers, size = [], in_size
        for k, width in zip(keys, widths, strict=False):
            layers.append(scale * jnp.abs(jax.random.normal(k, (width, size))))
            size = width
        self.layers = tuple(layers)
        self.out = jnp.sqrt(scale * jnp.abs(jax.random.normal(keys[-1], (size,))))

    def __call__(self, u: Float[Array, " f"]) -> Float[Array, ""]:
        x = u
        for w in self.layers:
            x = (w @ x) ** 2
        return jnp.log(jnp.sum(self.out**2 * x)) / 2 ** len(self.layers)


def bihomogeneous_potential(
    ambient_dim: int, key: PRNGKeyArray, *, widths=(70, 100), scale: float = 0.05
) -> KahlerPotential:
    r"""An uncentred `KahlerPotential` whose network is a `BihomogeneousNetwork` (`widths`: one per squaring layer).

    The form $\partial\bar\partial(\log|z|^2 + f)$ starts at a random algebraic
    one of bidegree $(2^L, 2^L)$, $L$ = `len(widths)`, not at Fubini–Study, and
    not positive definite at every point until trained: at the default
    initialisation, 11% to 30% of sampled Fermat quintic points (seeds 0, 1, 2)
    have a pulled-back $g$ with a negative eigenvalue (`BihomogeneousNetwork`).
    """
    n1 = check_count(
        ambient_dim, "bihomogeneous_potential: ambient_dim must be an integer >= 2", minimum=2
    )
    widths = tuple(widths)
    if not widths:
        raise ValueError("bihomogeneous_potential: widths must name at least one layer.")
    for w in widths:
        check_count(
            w, f"bihomogeneous_potential: widths must be integers >= 1, got {widths}", minimum=1
        )
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(
            f"bihomogeneous_potential: scale must be a finite number > 0, got {scale!r}."
        )
    network = BihomogeneousNetwork(n1 * n1, widths, key, float(scale))
    return KahlerPotential(network, network, centred=False)


def pulled_back_metric(sample: PointSample, potential=None) -> Complex[Array, "N m m"]:
    r"""$J^\top\, \partial\bar\partial(\log|z|^2 + \phi)\, \bar J$ at every point of `sample` (module docstring).

    `potential`: $\phi$, a real function of $z \in \mathbb{C}^{n+1}$ invariant
    under $z \to \lambda z$ (e.g. a `KahlerPotential`), or None for
    Fubini–Study. Hermitian, in each point's local coordinates; positive
    definite as long as $\phi$ is small enough (not checked here).
    """
    if not isinstance(sample, PointSample):
        raise ValueError(
            f"pulled_back_metric: expected a PointSample, got {type(sample).__name__}."
        )
    return _pulled_back(sample.points, sample.jacobian, potential)


@eqx.filter_jit
def _pulled_back(points, jacobian, potential):
    r"""The pulled-back metric at `points` for $\phi$ = `potential` (a function of z, or None).

    Its public faces are `KahlerPotential.metric` and `pulled_back_metric`; `PotentialFlow`
    calls it with the linearised potential of the frozen regime.

    The embedding $z(w)$ of a chart is holomorphic, so its second derivatives drop out
    of $\partial_a\partial_{\bar b} K(z(w)) = J_{ia}\, \partial_i\partial_{\bar j} K\,
    \overline{J_{jb}}$: the pulled-back metric is the complex Hessian of
    $w \mapsto K(z + J w)$ at $w = 0$, differentiated along the chart's $m$ complex
    directions only (6 real ones on a threefold, against the ambient 10: an epoch of
    the training costs about 0.6 of the ambient Hessian's).
    """

    def total(z):
        k = jnp.log(jnp.sum(jnp.real(z) ** 2 + jnp.imag(z) ** 2))
        return k if potential is None else k + potential(z)

    def one(z, jac):
        w0 = jnp.zeros(jac.shape[1], dtype=z.dtype)
        return complex_hessian(lambda w: total(z + jac @ w), w0)

    return jax.vmap(one)(points, jacobian)
