r"""Network architectures: scalar networks on a manifold whose NTKs have closed forms.

- `CosineNetwork`: $f(x) = c_N \sum_i a_i \cos(w_i\cdot x + b_i)$, its infinite-width
  NTK the normalised Gaussian $k_\sigma$ (`CosineNTK`);
- `ReLUNetwork`: a ReLU multilayer perceptron in the NTK parameterisation, its
  infinite-width NTK `ReLUNTK`.

Each maps a point (D,) to a scalar and names its limiting kernel; a metric is
built from one network per component (`metric.py`). `orthonormal_unpack` is the
isometry from $\mathbb R^{D(D+1)/2}$ to symmetric matrices that such a metric uses.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._kernels import AbstractKernel, ReLUNTK, RescaledKernel, network_inputs
from .._kernels.cosine import CosineNTK, cosine_features, cosine_limit_scale
from .._manifolds import AbstractManifold, Sphere, Torus
from .._metrics.base import packed_size
from .._misc import real_scalar
from .._types import Point, Scalar


def _check_width(width, name: str) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"{name}: width must be a positive integer, got {width!r}.")
    return int(width)


def orthonormal_unpack(packed: Float[Array, " p"], d: int) -> Float[Array, "d d"]:
    r"""The symmetric matrix with diagonal entries and $\sqrt2\times$off-diagonal entries `packed`.

    `packed` runs over the upper triangle row by row; the map is an isometry
    from $\mathbb R^p$ to symmetric matrices with the Frobenius norm. `packed` must
    have shape $(d(d+1)/2,)$.
    """
    p = packed_size(d)
    if jnp.shape(packed) != (p,):
        raise ValueError(
            f"orthonormal_unpack: a symmetric {d} x {d} matrix has {p} entries, got packed of "
            f"shape {jnp.shape(packed)}."
        )
    i, j = np.triu_indices(d)
    factor = np.where(i == j, 1.0, 1 / math.sqrt(2))
    entries = packed * jnp.asarray(factor, dtype=packed.dtype)
    out = jnp.zeros((d, d), dtype=packed.dtype).at[i, j].set(entries)
    return out.at[j, i].set(entries)


class CosineNetwork(eqx.Module):
    r"""The cosine network, $f(x) = c_N \sum_{i=1}^N a_i \cos(w_i\cdot x + b_i)$.

    $a_i \sim N(0, 1)$; $w_i, b_i$ as `CosineNTK` draws them (integer $w_i$ on
    tori, so $f$ is periodic). Trained: the amplitudes $a_i$ and, unless
    `train_phases=False`, the phases $b_i$; the frequencies are held fixed (on a
    torus a trained frequency leaves the integer lattice and the network stops
    being a function on the torus; on both manifolds frequency gradients would
    add $\tfrac12 k_\sigma(x, x')\, x\cdot x'$ to the limiting kernel, as
    $E_b[\sin(u + b)\sin(v + b)] = \tfrac12\cos(u - v)$). With phases
    trained the NTK is $c_N^2\sum_i[\cos_i(x)\cos_i(x') + a_i^2 \sin_i(x)\sin_i(x')]$
    and $c_N^2 = \kappa/N$ makes its infinite-width limit the normalised
    Gaussian $k_\sigma$ (`CosineNTK(sigma, manifold)`); with only the $a_i$
    trained the NTK is $c_N^2 \sum_i \cos_i(x)\cos_i(x')$, exactly frozen
    under training, with limit $k_\sigma / 2$. The conventions are those of
    docs/conventions.md, The cosine network and its kernels.
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
        value = real_scalar(sigma)
        if value is None or not math.isfinite(value) or not value > 0:
            raise ValueError(f"CosineNetwork: sigma must be a finite number > 0, got {sigma!r}.")
        sigma = value
        if not isinstance(manifold, (Torus, Sphere)):
            raise ValueError(f"CosineNetwork: needs a Torus or a Sphere, got {manifold!r}.")
        kf, ka = jax.random.split(key)
        self.frequencies, self.phases = cosine_features(
            float(sigma), manifold, width, kf, caller="CosineNetwork"
        )
        self.amplitudes = jax.random.normal(ka, (width,))
        self.sigma = float(sigma)
        self.train_phases = bool(train_phases)
        self.scale = math.sqrt(
            cosine_limit_scale(self.sigma, manifold, caller="CosineNetwork") / width
        )

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
