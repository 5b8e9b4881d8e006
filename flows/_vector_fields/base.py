r"""The flow contract: `AbstractFlow`, volume normalisation, and the mean trace.

A flow is $\partial_t G_a = V_a(G)$ on the nodal values $G$ of a metric, and a
diffrax vector field: `flow(t, values, args)` returns $V$ at every node (shape
(N, D, D)). It gives its `name`, its `velocity(metric)` for a `NodalMetric`,
`evaluate(values)` (the compiled velocity a solver asks for before integrating)
and `growth_rate()`: the largest linear growth rate $\Lambda$ of a perturbation
on the discretisation, at the reference scale (None when it has no prediction),
which the solver turns into a predicted amplification. On spheres the state is
band-limited (`NodalMetric`), so every velocity is projected onto the spectral
series: the state never leaves it.

`VolumeNormalised(flow)` adds $c\,g$ with
$c = -\int \mathrm{tr}_g V\, dV_g / (n\,\mathrm{Vol}_g)$, so the volume is constant.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._manifolds import AbstractManifold
from .._metrics import NodalMetric

NodalTensors = Float[Array, "N D D"]


def _check_metric(flow, metric) -> None:
    """`ValueError` unless `metric` is a `NodalMetric` with values on `flow`'s nodes (shapes
    only, so that it holds under jit)."""
    name = f"{type(flow).__name__}.velocity"
    if not isinstance(metric, NodalMetric):
        raise ValueError(
            f"{name}: metric must be a flows.NodalMetric, got {type(metric).__name__}."
        )
    m = flow.manifold
    expected = (m.nodes.shape[0], m.ambient_dim, m.ambient_dim)
    if metric.values.shape != expected:
        raise ValueError(
            f"{name}: the flow lives on {m!r} (nodal values of shape {expected}); the metric's "
            f"values have shape {metric.values.shape} ({metric.manifold!r})."
        )


def _project(manifold: AbstractManifold, values: NodalTensors) -> NodalTensors:
    """The spectral series at the nodes (identity on interpolating manifolds)."""
    if manifold.interpolates:
        return values
    return manifold.spectral_multiply(values, jnp.ones_like(manifold.laplace_eigenvalues()))


class AbstractFlow(eqx.Module):
    r"""A flow $\partial_t G = V(G)$ of nodal metric values; callable as a diffrax vector field."""

    manifold: eqx.AbstractVar[AbstractManifold]

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The flow's name, as used in every output (e.g. `ricci_deturck`, `smoothed_lambda`)."""

    @abc.abstractmethod
    def velocity(self, metric: NodalMetric) -> NodalTensors:
        r"""$V$ at every node, in the representation (shape (N, D, D))."""

    @abc.abstractmethod
    def growth_rate(self) -> float | None:
        r"""$\Lambda$: the largest linear growth rate of the discretisation's modes, at the reference scale.

        From the symbol (e.g. $\max_k |k|^2\hat k_\sigma(k)$ over the grid's modes): exact on
        odd Fourier grids; on even ones it counts the Nyquist mode, which the discrete flow
        does not grow, so it bounds the rate from above (on $8^2$, 32 against the
        Jacobian's 18); on spheres it is within 2% (degree 6: 12 against 12.18). None when
        no prediction is available (the solver then warns).
        """

    def __call__(self, t, values: NodalTensors, args=None) -> NodalTensors:
        return self.velocity(NodalMetric(self.manifold, values, check=False))

    def evaluate(self, values: NodalTensors) -> NodalTensors:
        """$V$ at the nodal values `values`, compiled: what a solver asks for before integrating.

        A flow may compute it in pieces that compile once for a family of flows
        (a smoothed `MetricFlow` compiles its local velocity once for every kernel).
        """
        return _compiled_velocity(self, values)


@eqx.filter_jit
def _compiled_velocity(flow: AbstractFlow, values: NodalTensors) -> NodalTensors:
    return flow(0.0, values)


def mean_trace(
    manifold: AbstractManifold, values: NodalTensors, velocity: NodalTensors
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""$\int \mathrm{tr}_g V\, dV_g / \mathrm{Vol}_g$ and $\mathrm{Vol}_g$ for nodal $g$ and $V$.

    $\tfrac12$ the first is $d\log\mathrm{Vol}_g/dt$ along $\partial_t g = V$.
    """
    g = manifold.tangential(values)
    density = jnp.sqrt(jnp.linalg.det(g))
    trace = jnp.einsum("nij,nji->n", jnp.linalg.inv(g), manifold.tangential(velocity))
    volume = manifold.integrate(density)
    return manifold.integrate(trace * density) / volume, volume


class VolumeNormalised(AbstractFlow):
    r"""`flow` plus $c\,g$, $c = -\int \mathrm{tr}_g V\, dV_g / (n\, \mathrm{Vol}_g)$: the volume is constant."""

    flow: AbstractFlow

    @property
    def manifold(self) -> AbstractManifold:
        return self.flow.manifold

    @property
    def name(self) -> str:
        return self.flow.name + "_normalised"

    def velocity(self, metric: NodalMetric) -> NodalTensors:
        v = self.flow.velocity(metric)
        trace, _ = mean_trace(self.manifold, metric.values, v)
        return v - trace / self.manifold.dim * metric.values

    def growth_rate(self) -> float | None:
        return self.flow.growth_rate()
