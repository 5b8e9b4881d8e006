r"""Network metrics: one network per metric component, and their empirical metric-NTK.

A `ComponentNetworkMetric` is

$$g_\theta(x) = B(x) + s(x)\, S\big[f_\theta(x) - f_{\theta_0}(x)\big],$$

- $f_\theta = (f^1_\theta, \dots, f^p_\theta)$, $p = D(D+1)/2$: independent
  networks of one architecture, each with its own parameters, one per
  component in a $g_\mathrm{ref}$-orthonormal frame (chart components on tori,
  ambient components on spheres), as in Halverson–Ruehle §2;
- $S$ maps the $p$ outputs to a symmetric matrix, diagonal entries as they
  are and off-diagonal ones divided by $\sqrt2$ (an isometry,
  $|S v|_F = |v|$), so the metric-NTK is
  $\Theta_{ij,kl}(x, x') = s(x)s(x')\,\Theta^{c}(x, x')\,\tfrac12(\delta_{ik}\delta_{jl} + \delta_{il}\delta_{jk})$
  on each component $c$ and gradient descent gives DESIGN.md §2's
  componentwise flow $\partial_t g = -\int\Theta E\,d\mu$;
- $f_{\theta_0}$ is a frozen copy at initialisation (centring), so that
  $g_{\theta_0} = B$ exactly; it does not change the NTK;
- $s(x)$ is the rescaling trick: it multiplies the NTK by $s(x)s(x')$.

The empirical metric-NTK
$\Theta_\theta(x, x')_{ij,kl} = \sum_\theta \partial_\theta g_{ij}(x)\, \partial_\theta g_{kl}(x')$
is available materialised (`metric_ntk`, for small problems), per component
(`component_ntk`), and matrix-free (`ntk_product`: a jvp of a vjp, never the
Jacobian). The paper's central identity (its eqs. 2.5–2.8): along
$\dot\theta = -\nabla_\theta L_h$,
$\partial_t g(x) = -\sum_a \Theta_\theta(x, x_a)\, \partial L_h / \partial G_a$.
"""

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._cosine import CosineNTK, cosine_features, cosine_limit_scale
from ._kernels import AbstractKernel, RescaledKernel
from ._manifolds import AbstractManifold, Sphere, Torus
from ._metrics import AbstractMetric, packed_size, reference_metric
from ._relu_ntk import ReLUNTK, network_inputs
from ._types import Matrix, Point, Scalar


def _check_width(width, name: str) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"{name}: width must be a positive integer, got {width!r}.")
    return int(width)


def orthonormal_unpack(packed: Float[Array, " p"], d: int) -> Float[Array, "d d"]:
    r"""The symmetric matrix with diagonal entries and $\sqrt2\times$off-diagonal entries `packed`.

    `packed` runs over the upper triangle row by row; the map is an isometry
    from $\mathbb R^p$ to symmetric matrices with the Frobenius norm.
    """
    i, j = np.triu_indices(d)
    factor = np.where(i == j, 1.0, 1 / math.sqrt(2))
    entries = packed * jnp.asarray(factor, dtype=packed.dtype)
    out = jnp.zeros((d, d), dtype=packed.dtype).at[i, j].set(entries)
    return out.at[j, i].set(entries)


class CosineNetwork(eqx.Module):
    r"""The cosine network of DESIGN.md §3, $f(x) = c_N \sum_{i=1}^N a_i \cos(w_i\cdot x + b_i)$.

    $a_i \sim N(0, 1)$; $w_i, b_i$ as `CosineNTK` draws them (integer $w_i$ on
    tori, so $f$ is periodic). Trained: the amplitudes $a_i$ and, unless
    `train_phases=False`, the phases $b_i$; the frequencies are held fixed (on a
    torus a trained frequency leaves the integer lattice and the network stops
    being a function on the torus; on both manifolds frequency gradients would
    add $k_\sigma(x, x')\, x\cdot x'$ to the limiting kernel). With phases
    trained the NTK is $c_N^2\sum_i[\cos_i(x)\cos_i(x') + a_i^2 \sin_i(x)\sin_i(x')]$
    and $c_N^2 = \kappa/N$ makes its infinite-width limit the normalised
    Gaussian $k_\sigma$ (`CosineNTK(sigma, manifold)`); with only the $a_i$
    trained the NTK is $c_N^2 \sum_i \cos_i(x)\cos_i(x')$, exactly frozen
    under training, with limit $k_\sigma / 2$.
    """

    amplitudes: Float[Array, " N"]
    frequencies: Float[Array, "N D"]
    phases: Float[Array, " N"]
    scale: float = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    train_phases: bool = eqx.field(static=True)

    def __init__(
        self,
        manifold: AbstractManifold,
        width: int,
        sigma: float,
        key: PRNGKeyArray,
        *,
        train_phases: bool = True,
    ):
        width = _check_width(width, "CosineNetwork")
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"CosineNetwork: sigma must be a finite number > 0, got {sigma!r}.")
        if not isinstance(manifold, (Torus, Sphere)):
            raise ValueError(f"CosineNetwork: needs a Torus or a Sphere, got {manifold!r}.")
        kf, ka = jax.random.split(key)
        self.frequencies, self.phases = cosine_features(float(sigma), manifold, width, kf)
        self.amplitudes = jax.random.normal(ka, (width,))
        self.sigma = float(sigma)
        self.train_phases = bool(train_phases)
        self.scale = math.sqrt(cosine_limit_scale(self.sigma, manifold) / width)

    def __call__(self, x: Point) -> Scalar:
        w = jax.lax.stop_gradient(self.frequencies)
        b = self.phases if self.train_phases else jax.lax.stop_gradient(self.phases)
        return self.scale * jnp.dot(self.amplitudes, jnp.cos(w @ x + b))

    def infinite_width_kernel(self, manifold: AbstractManifold) -> AbstractKernel:
        """The NTK's infinite-width limit: $k_\\sigma$ (phases trained) or $k_\\sigma/2$."""
        limit = CosineNTK(self.sigma, manifold)
        return limit if self.train_phases else RescaledKernel(limit, math.sqrt(0.5))


class ReLUNetwork(eqx.Module):
    r"""A ReLU MLP in neural-tangents' stax parameterisation, scalar output.

    Layers $z = (\sigma_w/\sqrt{n_\mathrm{in}}) W h + \sigma_b b$, $W, b \sim N(0, 1)$,
    `depth` hidden (Dense, ReLU) pairs before the final Dense layer. Inputs are
    `network_inputs(manifold, x)` ($(\cos x, \sin x)$ on tori, so the network
    is periodic; the ambient point on spheres). All weights and biases are
    trained; the infinite-width NTK is `ReLUNTK(depth, weight_std, bias_std)`.
    """

    weights: list[Float[Array, "out inp"]]
    biases: list[Float[Array, " out"]]
    weight_std: float = eqx.field(static=True)
    bias_std: float = eqx.field(static=True)
    periodic: bool = eqx.field(static=True)

    def __init__(
        self,
        manifold: AbstractManifold,
        width: int,
        depth: int,
        key: PRNGKeyArray,
        *,
        weight_std: float = 1.0,
        bias_std: float = 0.0,
    ):
        width = _check_width(width, "ReLUNetwork")
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
            raise ValueError(f"ReLUNetwork: depth must be an integer >= 0, got {depth!r}.")
        # validates the standard deviations and the manifold with the kernel's own messages
        ReLUNTK(depth=int(depth), weight_std=weight_std, bias_std=bias_std)
        d_in = network_inputs(manifold, manifold.nodes[0]).shape[0]
        sizes = [d_in] + [width] * int(depth) + [1]
        keys = jax.random.split(key, 2 * len(sizes))
        self.weights = [
            jax.random.normal(keys[2 * i], (sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)
        ]
        self.biases = [
            jax.random.normal(keys[2 * i + 1], (sizes[i + 1],)) for i in range(len(sizes) - 1)
        ]
        self.weight_std = float(weight_std)
        self.bias_std = float(bias_std)
        self.periodic = isinstance(manifold, Torus)

    def __call__(self, x: Point) -> Scalar:
        h = jnp.concatenate([jnp.cos(x), jnp.sin(x)]) if self.periodic else x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = self.weight_std / math.sqrt(w.shape[-1]) * (w @ h) + self.bias_std * b
            if i < last:
                h = jax.nn.relu(h)
        return h[0]

    def infinite_width_kernel(self, manifold: AbstractManifold) -> AbstractKernel:
        """`ReLUNTK(depth, weight_std, bias_std)` on the network's inputs."""
        return ReLUNTK(
            depth=len(self.weights) - 1, weight_std=self.weight_std, bias_std=self.bias_std
        )


def _stack(networks: Sequence[eqx.Module]) -> eqx.Module:
    """One module whose array leaves have a leading component axis; shapes must agree."""
    arrays0, static0 = eqx.partition(networks[0], eqx.is_array)
    leaves0, tree0 = jax.tree.flatten(arrays0)
    for c, net in enumerate(networks[1:], start=1):
        arrays, static = eqx.partition(net, eqx.is_array)
        leaves, tree = jax.tree.flatten(arrays)
        shapes0 = [leaf.shape for leaf in leaves0]
        shapes = [leaf.shape for leaf in leaves]
        if tree != tree0 or shapes != shapes0 or not eqx.tree_equal(static, static0):
            raise ValueError(
                "ComponentNetworkMetric: the component networks must share one architecture; "
                f"network {c} differs from network 0 (parameter shapes {shapes} vs {shapes0})."
            )
    stacked = jax.tree.map(
        lambda *xs: jnp.stack(xs), *[eqx.filter(n, eqx.is_array) for n in networks]
    )
    return eqx.combine(stacked, static0)


def _stop(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda a: jax.lax.stop_gradient(a) if eqx.is_inexact_array(a) else a, tree)


class ComponentNetworkMetric(AbstractMetric):
    r"""$g_\theta(x) = B(x) + s(x)\, S[f_\theta(x) - f_{\theta_0}(x)]$: one network per component.

    See the module docstring for the conventions. **Arguments:**

    - `manifold`: a `Torus` or `Sphere`.
    - `networks`: a sequence of $p = D(D+1)/2$ Equinox modules of one architecture
      (each a map from a point (D,) to a scalar), or one module whose array
      leaves carry a leading axis of length $p$ (as `eqx.filter_vmap` builds).
    - `base`: the metric $B$ (default $g_\mathrm{ref}$).
    - `rescale`: $s(x)$, a function of a point (default 1).
    - `centred`: subtract the frozen initial outputs, so $g_{\theta_0} = B$ (default True).

    `parameters` are the trainable arrays (the networks'); `with_parameters`
    puts new ones in. Constructors: `cosine_network_metric`, `relu_network_metric`.
    """

    manifold: AbstractManifold
    networks: eqx.Module
    initial: eqx.Module | None
    base: AbstractMetric
    rescale: Callable[[Point], Scalar] | None

    def __init__(
        self,
        manifold: AbstractManifold,
        networks: Sequence[eqx.Module] | eqx.Module,
        base: AbstractMetric | None = None,
        rescale: Callable[[Point], Scalar] | None = None,
        *,
        centred: bool = True,
    ):
        if not isinstance(manifold, AbstractManifold):
            raise ValueError(
                f"ComponentNetworkMetric: manifold must be a manifold, got {manifold!r}."
            )
        p = packed_size(manifold.ambient_dim)
        if isinstance(networks, (list, tuple)):
            if len(networks) != p:
                raise ValueError(
                    f"ComponentNetworkMetric: {manifold!r} has {p} metric components "
                    f"(D = {manifold.ambient_dim}), so it needs {p} networks, got {len(networks)}."
                )
            networks = _stack(list(networks))
        leading = {leaf.shape[:1] for leaf in jax.tree.leaves(eqx.filter(networks, eqx.is_array))}
        if leading != {(p,)}:
            raise ValueError(
                f"ComponentNetworkMetric: a stacked network module needs a leading axis of {p} "
                f"(one per metric component) on every array, got leading shapes {sorted(leading)}."
            )
        base = reference_metric(manifold) if base is None else base
        if not isinstance(base, AbstractMetric) or base.manifold != manifold:
            raise ValueError("ComponentNetworkMetric: base must be a metric on the same manifold.")
        if rescale is not None and not callable(rescale):
            raise ValueError(f"ComponentNetworkMetric: rescale must be callable, got {rescale!r}.")
        self.manifold = manifold
        self.networks = networks
        self.initial = networks if centred else None
        self.base = base
        self.rescale = rescale
        x0 = manifold.nodes[0]
        out = jax.eval_shape(lambda: eqx.filter_vmap(lambda net: net(x0))(networks))
        if out.shape != (p,):
            raise ValueError(
                f"ComponentNetworkMetric: each component network must map a point of shape "
                f"({manifold.ambient_dim},) to a scalar; the {p} networks return shape "
                f"{out.shape[1:]} each."
            )

    def outputs(self, x: Point) -> Float[Array, " p"]:
        r"""$f_\theta(x) - f_{\theta_0}(x)$ (or $f_\theta(x)$ if not centred)."""
        out = eqx.filter_vmap(lambda net: net(x))(self.networks)
        if self.initial is not None:
            out = out - eqx.filter_vmap(lambda net: net(x))(_stop(self.initial))
        return out

    def __call__(self, x: Point) -> Matrix:
        s = 1.0 if self.rescale is None else self.rescale(x)
        return self.base(x) + s * orthonormal_unpack(self.outputs(x), self.manifold.ambient_dim)

    @property
    def parameters(self) -> PyTree:
        """The trainable arrays: the networks' inexact arrays (a pytree)."""
        return eqx.filter(self.networks, eqx.is_inexact_array)

    def with_parameters(self, parameters: PyTree) -> "ComponentNetworkMetric":
        """The same metric with the networks' trainable arrays replaced by `parameters`."""
        _, static = eqx.partition(self.networks, eqx.is_inexact_array)
        return eqx.tree_at(lambda m: m.networks, self, eqx.combine(parameters, static))

    def infinite_width_kernel(self) -> AbstractKernel:
        r"""The analytic limit of each component's NTK (times $s(x)s(x')$ when rescaled).

        Known for `CosineNetwork` and `ReLUNetwork`; other architectures raise `ValueError`.
        """
        limit = getattr(self.networks, "infinite_width_kernel", None)
        if limit is None:
            raise ValueError(
                f"ComponentNetworkMetric: no analytic infinite-width kernel is known for "
                f"{type(self.networks).__name__}; use CosineNetwork or ReLUNetwork."
            )
        kernel = limit(self.manifold)
        return kernel if self.rescale is None else RescaledKernel(kernel, self.rescale)


def cosine_network_metric(
    manifold: AbstractManifold,
    width: int,
    sigma: float,
    key: PRNGKeyArray,
    *,
    base: AbstractMetric | None = None,
    rescale: Callable[[Point], Scalar] | None = None,
    train_phases: bool = True,
) -> ComponentNetworkMetric:
    r"""One `CosineNetwork` of `width` features per component; NTK $\to k_\sigma$ as width $\to\infty$."""
    _check_width(width, "cosine_network_metric")
    p = packed_size(manifold.ambient_dim)
    keys = jax.random.split(key, p)
    nets = [CosineNetwork(manifold, width, sigma, k, train_phases=train_phases) for k in keys]
    return ComponentNetworkMetric(manifold, nets, base, rescale)


def relu_network_metric(
    manifold: AbstractManifold,
    width: int,
    depth: int,
    key: PRNGKeyArray,
    *,
    weight_std: float = 1.0,
    bias_std: float = 0.0,
    base: AbstractMetric | None = None,
    rescale: Callable[[Point], Scalar] | None = None,
) -> ComponentNetworkMetric:
    r"""One stax-parameterised `ReLUNetwork` per component; NTK $\to$ `ReLUNTK` as width $\to\infty$."""
    _check_width(width, "relu_network_metric")
    p = packed_size(manifold.ambient_dim)
    keys = jax.random.split(key, p)
    nets = [
        ReLUNetwork(manifold, width, depth, k, weight_std=weight_std, bias_std=bias_std)
        for k in keys
    ]
    return ComponentNetworkMetric(manifold, nets, base, rescale)


# ---------------------------------------------------------------------------------------------
# The empirical metric-NTK


def _metric_fn(metric: ComponentNetworkMetric) -> Callable:
    return lambda params, x: metric.with_parameters(params)(x)


def metric_ntk(
    metric: ComponentNetworkMetric, x: Float[Array, "P D"], y: Float[Array, "Q D"]
) -> Float[Array, "P D D Q D D"]:
    r"""$\Theta_\theta(x_p, y_q)_{ij,kl} = \sum_\theta \partial_\theta g_{ij}(x_p)\,\partial_\theta g_{kl}(y_q)$, materialised.

    Memory O((P + Q) D² × parameters): for small problems; see `ntk_product`.
    """
    return _metric_ntk(metric, x, y)


@eqx.filter_jit
def _metric_ntk(metric, x, y):
    fn, params = _metric_fn(metric), metric.parameters
    jx = jax.vmap(lambda p: jax.jacrev(fn)(params, p))(x)
    jy = jax.vmap(lambda p: jax.jacrev(fn)(params, p))(y)

    def block(a, b):
        a = a.reshape(a.shape[:3] + (-1,))
        b = b.reshape(b.shape[:3] + (-1,))
        return jnp.einsum("pijn,qkln->pijqkl", a, b)

    blocks = jax.tree.leaves(jax.tree.map(block, jx, jy))
    return sum(blocks)


def ntk_product(
    metric: ComponentNetworkMetric,
    cotangent: Float[Array, "P D D"],
    x: Float[Array, "P D"],
    y: Float[Array, "Q D"] | None = None,
) -> Float[Array, "Q D D"]:
    r"""$\sum_p \Theta_\theta(y_q, x_p)_{ij,kl} V^{kl}_p$ matrix-free: a jvp of a vjp.

    The vjp pulls $V$ back to parameter space ($J_x^\top V$), the jvp pushes it
    forward at `y` (default `x`); the Jacobian is never formed.
    """
    return _ntk_product(metric, cotangent, x, x if y is None else y)


@eqx.filter_jit
def _ntk_product(metric, cotangent, x, y):
    fn, params = _metric_fn(metric), metric.parameters
    _, pullback = jax.vjp(lambda p: jax.vmap(lambda q: fn(p, q))(x), params)
    (direction,) = pullback(cotangent)
    _, pushed = jax.jvp(lambda p: jax.vmap(lambda q: fn(p, q))(y), (params,), (direction,))
    return pushed


def component_ntk(
    metric: ComponentNetworkMetric, x: Float[Array, "P D"], y: Float[Array, "Q D"] | None = None
) -> Float[Array, "p P Q"]:
    r"""Each component's scalar NTK $s(x)s(y)\nabla_\theta f^c(x)\cdot\nabla_\theta f^c(y)$.

    The metric-NTK is $\sum_c \Theta^c S^c \otimes S^c$ with orthonormal $S^c$,
    so $\|\Theta\|_F^2 = \sum_c \|\Theta^c\|_F^2$ (the kernel drift uses this).
    """
    return _component_ntk(metric, x, x if y is None else y)


@eqx.filter_jit
def _component_ntk(metric, x, y):
    params, static = eqx.partition(metric.networks, eqx.is_inexact_array)

    def per_component(p_c):
        def f(p, q):
            return eqx.combine(p, static)(q)

        jx = jax.vmap(lambda q: jax.grad(f)(p_c, q))(x)
        jy = jax.vmap(lambda q: jax.grad(f)(p_c, q))(y)
        blocks = jax.tree.map(
            lambda a, b: a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T, jx, jy
        )
        return sum(jax.tree.leaves(blocks))

    kernels = jax.vmap(per_component)(params)
    if metric.rescale is not None:
        factor = lambda q: jnp.asarray(metric.rescale(q), dtype=q.dtype)  # noqa: E731
        sx, sy = jax.vmap(factor)(x), jax.vmap(factor)(y)
        kernels = kernels * sx[None, :, None] * sy[None, None, :]
    return kernels


class LinearisedMetric(AbstractMetric):
    r"""The network linearised at $\theta_0$: $g(x) = g_{\theta_0}(x) + J_{\theta_0}(x)(\theta - \theta_0)$.

    Its NTK is the empirical NTK at initialisation, frozen (the `frozen` regime).
    """

    manifold: AbstractManifold
    network_metric: ComponentNetworkMetric
    parameters: PyTree

    def __init__(self, network_metric: ComponentNetworkMetric, parameters: PyTree | None = None):
        self.manifold = network_metric.manifold
        self.network_metric = network_metric
        self.parameters = network_metric.parameters if parameters is None else parameters

    def __call__(self, x: Point) -> Matrix:
        fn, params0 = _metric_fn(self.network_metric), self.network_metric.parameters
        delta = jax.tree.map(lambda a, b: a - b, self.parameters, params0)
        value, tangent = jax.jvp(lambda p: fn(p, x), (params0,), (delta,))
        return value + tangent
