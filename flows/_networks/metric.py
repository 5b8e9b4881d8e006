r"""Network metrics: one network per metric component, and their linearisation.

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
  on each component $c$ and gradient descent gives the componentwise flow
  $\partial_t g = -\int\Theta E\,d\mu$ (docs/conventions.md, Normalisations and
  tensors);
- $f_{\theta_0}$ is a frozen copy at initialisation (centring), so that
  $g_{\theta_0} = B$ exactly; it does not change the NTK;
- $s(x)$ is the rescaling trick: it multiplies the NTK by $s(x)s(x')$.

`LinearisedMetric` is the network linearised at $\theta_0$ (the `frozen` regime);
the constructors `cosine_network_metric` and `relu_network_metric` build one
network per component from `architectures.py`.
"""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._kernels import AbstractKernel, RescaledKernel
from .._manifolds import AbstractManifold
from .._metrics import AbstractMetric, reference_metric
from .._metrics.base import packed_size
from .._types import Matrix, Point, Scalar
from .architectures import CosineNetwork, ReLUNetwork, _check_width, orthonormal_unpack


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
        scale_shape = None if rescale is None else jnp.shape(jax.eval_shape(rescale, x0))
        if scale_shape not in (None, ()):
            raise ValueError(
                "ComponentNetworkMetric: rescale must map a point to a scalar s(x), got shape "
                f"{scale_shape}."
            )
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
        """The networks' inexact arrays (a pytree): the state the network flows integrate.

        It includes arrays an architecture holds fixed (a `CosineNetwork`'s
        frequencies, and its phases with `train_phases=False`): they enter the
        network through `stop_gradient`, so their gradient is zero and a gradient
        flow leaves them where they are; an update that does not follow the
        gradient (weight decay, say) would move them.
        """
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


def _metric_fn(metric: ComponentNetworkMetric) -> Callable:
    return lambda params, x: metric.with_parameters(params)(x)


class LinearisedMetric(AbstractMetric):
    r"""The network linearised at $\theta_0$: $g(x) = g_{\theta_0}(x) + J_{\theta_0}(x)(\theta - \theta_0)$.

    Its NTK is the empirical NTK at initialisation, frozen (the `frozen` regime).
    """

    manifold: AbstractManifold
    network_metric: ComponentNetworkMetric
    parameters: PyTree

    def __init__(self, network_metric: ComponentNetworkMetric, parameters: PyTree | None = None):
        if not isinstance(network_metric, ComponentNetworkMetric):
            raise ValueError(
                "LinearisedMetric: network_metric must be a flows.ComponentNetworkMetric, got "
                f"{type(network_metric).__name__}."
            )
        self.manifold = network_metric.manifold
        self.network_metric = network_metric
        self.parameters = network_metric.parameters if parameters is None else parameters
        expected = jax.tree.map(jnp.shape, network_metric.parameters)
        given = jax.tree.map(jnp.shape, self.parameters)
        if jax.tree.structure(expected) != jax.tree.structure(given) or expected != given:
            raise ValueError(
                "LinearisedMetric: parameters must have the structure and shapes of the network's "
                f"own (network_metric.parameters): {expected}, got {given}."
            )

    def __call__(self, x: Point) -> Matrix:
        fn, params0 = _metric_fn(self.network_metric), self.network_metric.parameters
        delta = jax.tree.map(lambda a, b: a - b, self.parameters, params0)
        value, tangent = jax.jvp(lambda p: fn(p, x), (params0,), (delta,))
        return value + tangent
