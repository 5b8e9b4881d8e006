r"""Flows of a network metric's parameters: the `evolving` and `frozen` NTK regimes.

With nodal values $G_a(\theta) = g_\theta(x_a)$ and the discretised loss $L_h(G)$:

- evolving (`ParameterFlow`): $\dot\theta = -\nabla_\theta L_h(G(\theta))$; the metric is
  $g_{\theta(t)}$ and its NTK $\Theta_{\theta(t)}$ moves with it;
- frozen (`LinearisedParameterFlow`): the network linearised at $\theta_0$,
  $G^\mathrm{lin}(\theta) = G(\theta_0) + J_0(\theta - \theta_0)$ and
  $\dot\theta = -J_0^\top \nabla_G L_h(G^\mathrm{lin})$, so the nodal metric follows
  $\partial_t G = -\Theta_{\theta_0} \nabla_G L_h$ with the NTK at initialisation;
- infinite width: the analytic kernel's componentwise flow on the nodal values,
  `ComponentwiseFlow(manifold, loss, kernel, quadrature=True)`.

Each is a diffrax vector field `(t, state, args) -> d state/dt`; `solvers.solve_network`
integrates any of them through one interface.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._losses import AbstractFunctional
from .._metrics import NodalMetric
from .metric import ComponentNetworkMetric


def nodal_loss(loss: AbstractFunctional, manifold, values: Float[Array, "N D D"]):
    """$L_h(G)$ for nodal values $G$ (unchecked: a flow state)."""
    return loss(NodalMetric(manifold, values, check=False))


class ParameterFlow(eqx.Module):
    r"""$\dot\theta = -\nabla_\theta L_h(G(\theta))$: gradient descent on every trainable parameter."""

    metric: ComponentNetworkMetric
    loss: AbstractFunctional

    @property
    def name(self) -> str:
        return "evolving"

    def nodal(self, parameters: PyTree) -> Float[Array, "N D D"]:
        """$G_a = g_\\theta(x_a)$."""
        metric = self.metric.with_parameters(parameters)
        return jax.vmap(metric)(self.metric.manifold.nodes)

    def __call__(self, t, parameters: PyTree, args=None) -> PyTree:
        m = self.metric.manifold
        grad = jax.grad(lambda p: nodal_loss(self.loss, m, self.nodal(p)))(parameters)
        return jax.tree.map(jnp.negative, grad)


class LinearisedParameterFlow(eqx.Module):
    r"""The linearised network's gradient flow: $\dot\theta = -J_0^\top \nabla_G L_h(G_0 + J_0(\theta - \theta_0))$."""

    metric: ComponentNetworkMetric
    loss: AbstractFunctional

    @property
    def name(self) -> str:
        return "frozen"

    def _linearised(self):
        params0 = self.metric.parameters
        nodes = self.metric.manifold.nodes
        fn = lambda p: jax.vmap(self.metric.with_parameters(p))(nodes)  # noqa: E731
        g0, push = jax.linearize(fn, params0)
        return params0, g0, push

    def nodal(self, parameters: PyTree) -> Float[Array, "N D D"]:
        """$G^\\mathrm{lin}(\\theta) = G(\\theta_0) + J_0(\\theta - \\theta_0)$."""
        params0, g0, push = self._linearised()
        return g0 + push(jax.tree.map(jnp.subtract, parameters, params0))

    def __call__(self, t, parameters: PyTree, args=None) -> PyTree:
        params0, g0, push = self._linearised()
        values = g0 + push(jax.tree.map(jnp.subtract, parameters, params0))
        m = self.metric.manifold
        residual = jax.grad(lambda v: nodal_loss(self.loss, m, v))(values)
        (pulled,) = jax.linear_transpose(push, params0)(residual)
        return jax.tree.map(jnp.negative, pulled)
