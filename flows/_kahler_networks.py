r"""Kähler metrics $g = \partial\bar\partial(K_\mathrm{FS} + \phi)$ on a hypersurface, $\phi$ a network.

On $X \subset \mathbb{CP}^n$ the metric in the local coordinates $w$ of a
point's chart is the pull-back of the ambient $(1,1)$-form,

$$g_{a\bar b} = \sum_{ij} J_{ia}\, \partial_i\partial_{\bar j}(K_\mathrm{FS} + \phi)\, \overline{J_{jb}},
\qquad K_\mathrm{FS} = \log|z|^2,$$

$J = \partial z/\partial w$ the embedding's Jacobian (`PointSample.jacobian`).
$\phi$ must be a function on $\mathbb{CP}^n$, invariant under $z \to \lambda z$,
so that $g$ does not depend on how a point is scaled: here it is a network of
the bihomogeneous features $z_i\bar z_j/|z|^2$ (`bihomogeneous_features`), as
in the peers (cymetric, MLGeometry). As for the project's other network
metrics (`shared/DESIGN.md` §2), the network is centred,
$\phi_\theta = f_\theta - f_{\theta_0}$, so that the flow starts at
Fubini–Study; the Kähler class never changes ($\phi$ is a global function).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, PRNGKeyArray

from ._hypersurfaces import PointSample
from ._kahler import complex_hessian
from ._manifolds._abstract import check_count


def bihomogeneous_features(z: Complex[Array, " n1"]) -> Float[Array, " f"]:
    r"""Real features of $[z] \in \mathbb{CP}^n$: $\mathrm{Re}$ and $\mathrm{Im}$ of $z_i\bar z_j/|z|^2$, $i \le j$.

    $(n+1)^2$ numbers (the diagonal is real), invariant under $z \to \lambda z$,
    $\lambda \in \mathbb{C}^*$.
    """
    n1 = z.shape[0]
    outer = z[:, None] * jnp.conj(z)[None, :] / jnp.sum(jnp.abs(z) ** 2).astype(z.dtype)
    i, j = np.triu_indices(n1)
    k, l = np.triu_indices(n1, 1)
    return jnp.concatenate([jnp.real(outer[i, j]), jnp.imag(outer[k, l])])


class KahlerPotential(eqx.Module):
    r"""$\phi_\theta([z]) = f_\theta(u(z)) - f_{\theta_0}(u(z))$, $u$ the bihomogeneous features.

    `network` is any Equinox module mapping the $(n+1)^2$ features to a scalar
    (trained); `initial` is its frozen copy at $\theta_0$ (not a leaf of the
    gradient: `jax.lax.stop_gradient`).
    """

    network: eqx.Module
    initial: eqx.Module

    def __call__(self, z: Complex[Array, " n1"]) -> Float[Array, ""]:
        u = bihomogeneous_features(z)
        params, static = eqx.partition(self.initial, eqx.is_array)
        frozen = eqx.combine(jax.lax.stop_gradient(params), static)
        return jnp.reshape(self.network(u), ()) - jnp.reshape(frozen(u), ())


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
    def total(z):
        k = jnp.log(jnp.sum(jnp.abs(z) ** 2))
        return k if potential is None else k + potential(z)

    def one(z, jac):
        h = complex_hessian(total, z)
        return jac.T @ h @ jnp.conj(jac)

    return jax.vmap(one)(points, jacobian)
