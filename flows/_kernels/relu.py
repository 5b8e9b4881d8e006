r"""The infinite-width NTK and NNGP of ReLU multilayer perceptrons, in closed form.

The network is neural-tangents' `stax.serial(Dense, Relu, ..., Dense)` in the NTK
parameterisation (Jacot et al. 2018, "Neural tangent kernel"; Arora et al. 2019,
"On exact computation with an infinitely wide neural net"; Novak et al. 2020,
neural-tangents `stax`): every Dense layer is
$z = \frac{\sigma_w}{\sqrt{n_\mathrm{in}}} W x + \sigma_b b$, $W_{ij}, b_i \sim N(0, 1)$,
`depth` hidden (Dense, ReLU) pairs before a final Dense layer with one output.

As every hidden width goes to infinity the output is a Gaussian process with
covariance $K$ (the NNGP) and gradient descent on its parameters moves it with
the neural tangent kernel $\Theta$. Both follow from the input kernel
$K^{(0)}(x, y) = \sigma_w^2\, x\cdot y / d + \sigma_b^2$, $\Theta^{(0)} = K^{(0)}$, by the
arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009): with
$c = K_{xy} / \sqrt{K_{xx} K_{yy}}$, $\theta = \arccos c$,

$T = \sqrt{K_{xx} K_{yy}}\, \frac{\sin\theta + (\pi - \theta)\cos\theta}{2\pi}
= E[\mathrm{relu}(u)\,\mathrm{relu}(v)]$, $\quad \dot T = \frac{\pi - \theta}{2\pi}
= E[\mathrm{relu}'(u)\,\mathrm{relu}'(v)]$,

$(u, v) \sim N(0, K)$, and each (ReLU, Dense) pair maps
$K \mapsto \sigma_w^2 T + \sigma_b^2$, $\Theta \mapsto K_\mathrm{new} + \sigma_w^2 \dot T\, \Theta$.

`network_inputs` maps points of a manifold to network inputs, so that the
kernels are functions on the manifold (`ReLUNTK(...)(manifold, x, y)`).
"""

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._manifolds import AbstractManifold, Sphere, Torus
from .._misc import check_count
from .._types import Scalar
from .base import AbstractKernel

_GETS = ("ntk", "nngp")


def network_inputs(
    manifold: AbstractManifold, x: Float[Array, "*batch D"]
) -> Float[Array, "*batch d"]:
    r"""The input a ReLU network on `manifold` sees at the point(s) `x` (last axis: the representation).

    - `Sphere`: the ambient unit vector $x \in \mathbb{R}^{n+1}$ itself ($d = n + 1$);
    - `Torus`: the periodic embedding $(\cos x_1, \dots, \cos x_n, \sin x_1, \dots, \sin x_n)$
      of the angle coordinates ($d = 2n$), so functions of it are $2\pi$-periodic.

    Other manifolds raise `ValueError`.
    """
    x = jnp.asarray(x)
    if isinstance(manifold, Sphere):
        return x
    if isinstance(manifold, Torus):
        return jnp.concatenate([jnp.cos(x), jnp.sin(x)], axis=-1)
    raise ValueError(
        f"network_inputs: no network input map for {manifold!r}; use a Sphere or a Torus."
    )


def _relu_expectations(k_xy, k_xx, k_yy):
    r"""$T$ and $\dot T$ for the covariance $[[K_{xx}, K_{xy}], [K_{xy}, K_{yy}]]$ (broadcasting).

    Finite everywhere, with finite derivatives:
    - $K_{xx} K_{yy} = 0$ (a zero input without bias): $T = 0$ and $c := 0$
      ($\Theta_{xy}$ is then 0 already, so the value of $\dot T$ does not matter);
    - $|c|$ within `64 eps` of 1 is rounded to $\pm 1$ (x = y, x = -y): there
      $\arccos$ has an infinite derivative, and rounding of $K_{xy}$ alone moves
      $\theta$ by $\sqrt{2\,\mathrm{eps}} \approx 10^{-8}$; snapped, the diagonal is exact.
    """
    prod = k_xx * k_yy
    positive = prod > 0
    norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, prod, 1.0)), 0.0)
    c = jnp.where(positive, k_xy / jnp.where(positive, norm, 1.0), 0.0)
    tol = 64 * jnp.finfo(c.dtype).eps
    high = c >= 1 - tol
    low = c <= -1 + tol
    interior = ~(high | low)
    c_in = jnp.where(interior, c, 0.0)
    theta = jnp.where(interior, jnp.arccos(c_in), jnp.where(high, 0.0, jnp.pi))
    sin = jnp.where(interior, jnp.sqrt((1 - c_in) * (1 + c_in)), 0.0)
    cos = jnp.where(interior, c_in, jnp.where(high, 1.0, -1.0))
    t = norm * ((sin + (jnp.pi - theta) * cos) / (2 * jnp.pi))  # exactly norm / 2 at c = 1
    t_dot = (jnp.pi - theta) / (2 * jnp.pi)
    return t, t_dot


def _check_batch(name: str, X) -> Float[Array, "n d"]:
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"ReLUNTK: {name} must be a 2-D batch of inputs (n, d), got shape {X.shape}; "
            "use x[None] for a single point."
        )
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(float)
    return X


class ReLUNTK(AbstractKernel):
    r"""The infinite-width NTK $\Theta$ (or NNGP $K$) of a ReLU MLP, as a kernel.

    The network is `stax.serial(*[Dense, Relu] * depth, Dense)` with scalar
    output in the NTK parameterisation, each Dense layer
    $z = \frac{\sigma_w}{\sqrt{n_\mathrm{in}}} W x + \sigma_b b$, $W, b$ iid $N(0, 1)$
    (Jacot et al. 2018; Arora et al. 2019; neural-tangents `stax`). The kernels
    are (module docstring) $K^{(0)} = \Theta^{(0)} = \sigma_w^2\, x\cdot y / d + \sigma_b^2$ and, for each
    of the `depth` (ReLU, Dense) pairs,
    $K \mapsto \sigma_w^2 T(K) + \sigma_b^2$, $\Theta \mapsto K + \sigma_w^2 \dot T(K)\, \Theta$,
    $T = \sqrt{K_{xx}K_{yy}}\,(\sin\theta + (\pi - \theta)\cos\theta)/2\pi$,
    $\dot T = (\pi - \theta)/2\pi$, $\cos\theta = K_{xy}/\sqrt{K_{xx}K_{yy}}$.
    With $\sigma_b = 0$ both kernels are 0 at a zero input.

    Calls:

    - `kernel(X, Y)`: the Gram matrix (n, m) of `get` for batches `X` (n, d), `Y` (m, d);
    - `kernel(manifold, x, y)`: the scalar $k(x, y)$ of `get` between two points of
      `manifold` (the `AbstractKernel` interface, used by `apply`/`smooth`), the
      network seeing `network_inputs(manifold, x)`;
    - `kernel.ntk(X, Y)`, `kernel.nngp(X, Y)`: either Gram matrix.

    **Arguments:**

    - `depth`: the number of hidden (Dense, ReLU) pairs, an integer >= 0 (0: one Dense layer).
    - `weight_std`: $\sigma_w > 0$, shared by every Dense layer.
    - `bias_std`: $\sigma_b \ge 0$, shared by every Dense layer.
    - `get`: `"ntk"` or `"nngp"`, the kernel that calls return.

    `weight_std` and `bias_std` are kept as NumPy float64s, leaves that `jax.jit` and
    `eqx.filter_jit` trace: kernels that differ in them share one compiled flow.
    """

    depth: int = eqx.field(static=True)
    weight_std: float
    bias_std: float
    get: str = eqx.field(static=True)

    def __init__(
        self, depth: int = 1, weight_std: float = 1.0, bias_std: float = 0.0, get: str = "ntk"
    ):
        self.depth = check_count(
            depth, "ReLUNTK: depth must be an integer >= 0 (hidden Dense-ReLU pairs)", minimum=0
        )
        for name, value, low in (("weight_std", weight_std, "> 0"), ("bias_std", bias_std, ">= 0")):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or (value <= 0 if low == "> 0" else value < 0)
            ):
                raise ValueError(f"ReLUNTK: {name} must be a finite number {low}, got {value!r}.")
        if get not in _GETS:
            raise ValueError(f"ReLUNTK: get must be 'ntk' or 'nngp', got {get!r}.")
        self.weight_std = np.float64(weight_std)
        self.bias_std = np.float64(bias_std)
        self.get = get

    def kernels(
        self, X: Float[Array, "n d"], Y: Float[Array, "m d"]
    ) -> tuple[Float[Array, "n m"], Float[Array, "n m"]]:
        r"""Both Gram matrices, `(nngp, ntk)` $= (K(X, Y), \Theta(X, Y))$."""
        X = _check_batch("X", X)
        Y = _check_batch("Y", Y)
        if X.shape[1] != Y.shape[1]:
            raise ValueError(
                f"ReLUNTK: X and Y must have the same input dimension d, got shapes "
                f"{X.shape} and {Y.shape}."
            )
        dtype = jnp.result_type(X, Y)
        w2 = jnp.asarray(self.weight_std, dtype=dtype) ** 2
        b2 = jnp.asarray(self.bias_std, dtype=dtype) ** 2
        d = X.shape[1]
        k_xy = w2 * (X @ Y.T) / d + b2
        k_xx = w2 * jnp.sum(X * X, axis=1) / d + b2
        k_yy = w2 * jnp.sum(Y * Y, axis=1) / d + b2
        ntk = k_xy
        for _ in range(self.depth):
            t, t_dot = _relu_expectations(k_xy, k_xx[:, None], k_yy[None, :])
            k_xy = w2 * t + b2
            k_xx = w2 * k_xx / 2 + b2  # theta = 0: T = K / 2
            k_yy = w2 * k_yy / 2 + b2
            ntk = k_xy + w2 * t_dot * ntk
        return k_xy, ntk

    def ntk(self, X: Float[Array, "n d"], Y: Float[Array, "m d"]) -> Float[Array, "n m"]:
        r"""The Gram matrix of the neural tangent kernel $\Theta(X, Y)$."""
        return self.kernels(X, Y)[1]

    def nngp(self, X: Float[Array, "n d"], Y: Float[Array, "m d"]) -> Float[Array, "n m"]:
        r"""The Gram matrix of the NNGP kernel $K(X, Y) = E[f(x) f(y)]$."""
        return self.kernels(X, Y)[0]

    def gram(self, X: Float[Array, "n d"], Y: Float[Array, "m d"]) -> Float[Array, "n m"]:
        """The Gram matrix of the kernel `get` selects."""
        nngp, ntk = self.kernels(X, Y)
        return ntk if self.get == "ntk" else nngp

    def __call__(self, *args) -> Float[Array, "n m"] | Scalar:
        """`(X, Y)`: the Gram matrix of `get`; `(manifold, x, y)`: the scalar $k(x, y)$ on `manifold`."""
        if len(args) == 2:
            return self.gram(*args)
        if len(args) == 3:
            manifold, x, y = args
            if not isinstance(manifold, AbstractManifold):
                raise ValueError(
                    f"ReLUNTK: the three-argument form is (manifold, x, y), got {manifold!r} first."
                )
            x, y = jnp.asarray(x), jnp.asarray(y)
            shape = (manifold.ambient_dim,)
            if x.shape != shape or y.shape != shape:
                raise ValueError(
                    f"ReLUNTK: x and y must be single points of shape {shape} on {manifold!r}, "
                    f"got {x.shape} and {y.shape}."
                )
            u, v = network_inputs(manifold, x), network_inputs(manifold, y)
            return self.gram(u[None], v[None])[0, 0]
        raise TypeError(
            f"ReLUNTK: call with (X, Y) for a Gram matrix or (manifold, x, y) for k(x, y), "
            f"got {len(args)} arguments."
        )
