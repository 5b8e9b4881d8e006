r"""The empirical metric-NTK of a network metric, kept apart from the closed-form kernels.

$\Theta_\theta(x, x')_{ij,kl} = \sum_\theta \partial_\theta g_{ij}(x)\, \partial_\theta g_{kl}(x')$
is available materialised (`metric_ntk`, for small problems), per component
(`component_ntk`), and matrix-free (`ntk_product`: a jvp of a vjp, never the
Jacobian). Halverson and Ruehle's central identity (their eqs. 2.5–2.8): along
$\dot\theta = -\nabla_\theta L_h$,
$\partial_t g(x) = -\sum_a \Theta_\theta(x, x_a)\, \partial L_h / \partial G_a$.
The closed-form infinite-width kernels (`CosineNTK`, `ReLUNTK`) are kept apart from it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .metric import ComponentNetworkMetric, _metric_fn


def _check(caller: str, metric, **points) -> None:
    """`metric` a network metric; each of `points` a batch (P, D) of its manifold's points."""
    if not isinstance(metric, ComponentNetworkMetric):
        raise ValueError(
            f"{caller}: metric must be a flows.ComponentNetworkMetric, got {type(metric).__name__}."
        )
    d = metric.manifold.ambient_dim
    for name, x in points.items():
        if x is not None and (jnp.ndim(x) != 2 or jnp.shape(x)[1] != d):
            raise ValueError(
                f"{caller}: {name} must be a batch of points of shape (P, {d}) on "
                f"{metric.manifold!r}, got shape {jnp.shape(x)}."
            )


def metric_ntk(
    metric: ComponentNetworkMetric, x: Float[Array, "P D"], y: Float[Array, "Q D"]
) -> Float[Array, "P D D Q D D"]:
    r"""$\Theta_\theta(x_p, y_q)_{ij,kl} = \sum_\theta \partial_\theta g_{ij}(x_p)\,\partial_\theta g_{kl}(y_q)$, materialised.

    Memory O((P + Q) D² × parameters): for small problems; see `ntk_product`.
    """
    _check("metric_ntk", metric, x=x, y=y)
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
    _check("ntk_product", metric, x=x, y=y)
    d = metric.manifold.ambient_dim
    if jnp.shape(cotangent) != (jnp.shape(x)[0], d, d):
        raise ValueError(
            f"ntk_product: cotangent must have shape {(jnp.shape(x)[0], d, d)} (a matrix at each "
            f"point of x), got {jnp.shape(cotangent)}."
        )
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
    _check("component_ntk", metric, x=x, y=y)
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
