r"""Point kernels: how a gradient at the training points of $X$ becomes a velocity everywhere.

A flow of metric values on a hypersurface (`point_flows.py`) needs, at training
points $z_b$ and test points $x$, the velocity

$$V(x) = \int K(x, x')\, G(x')\, d\mu(x') \approx \sum_b K(x, z_b)\,\frac{w_b}{N}\, G_b,$$

$G_b = \frac{N}{w_b}\,\partial L/\partial h_b$ the functional derivative of a
loss, $d\mu = d\mathrm{Vol}_\Omega/\mathrm{Vol}_\Omega$ estimated by the sample.
A point kernel (`AbstractPointKernel`) gives that map, as `velocity`. The
kernels of Halverson and Ruehle's experiments (*Metric Flows with Neural
Networks*, §3): the local kernel (training points move by $-G$, test points
not at all), the nearest-point "Delta" kernel (a test point takes its nearest
training point's velocity), any pairwise kernel $k(z, w)$ (the Gaussian in FS
distance, the paper's eq. 3.5, optionally normalised to $\int K\,d\mu = 1$;
the infinite-width ReLU NTK of the ambient coordinates), applied matrix-free
(`kernel_apply.py`), and the same restricted to the paper's clusters
(`clustering.py`).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float, Int

from .._kernels import ReLUNTK
from .clustering import cluster_blocks, cluster_points, nearest_points
from .kernel_apply import FSGaussian, point_kernel_apply
from .sampling import PointSample


class AbstractPointKernel(eqx.Module):
    r"""Maps $\frac{w_b}{N} G_b$ at the training points to velocities at training and test points.

    `velocity(train, test, weighted)` returns $(V_\mathrm{train}, V_\mathrm{test})$
    with $\partial_t h = -V$, where `weighted` $= \frac{w_b}{N}G_b = \partial L/\partial h_b$.
    `prepare(train, test)` does what depends only on the points (nearest
    neighbours, clusters) once, before a flow.
    """

    def prepare(self, train: PointSample, test: PointSample | None) -> "AbstractPointKernel":
        """This kernel with its point-dependent data computed (default: itself)."""
        return self

    @abc.abstractmethod
    def velocity(
        self,
        train: Complex[Array, "N n1"],
        test: Complex[Array, "P n1"],
        weights: Float[Array, " N"],
        weighted: Complex[Array, "N m m"],
    ) -> tuple[Complex[Array, "N m m"], Complex[Array, "P m m"]]:
        """Velocities at the training and test points (to be subtracted)."""


def _per_measure(weighted, weights):
    """$G_b = \\frac{N}{w_b}$ `weighted`$_b$."""
    return weighted * (weights.shape[0] / weights).astype(weighted.dtype)[:, None, None]


class LocalPointKernel(AbstractPointKernel):
    r"""$K = \delta$: each training point moves by $-G_a$; test points do not move."""

    def velocity(self, train, test, weights, weighted):
        G = _per_measure(weighted, weights)
        return G, jnp.zeros((test.shape[0],) + G.shape[1:], G.dtype)


class NearestPointKernel(AbstractPointKernel):
    r"""The paper's "Delta kernel": local on training points; a test point takes the velocity of its nearest training point (FS distance).

    `nearest` is filled in by `prepare`.
    """

    nearest: Int[Array, " P"] | None = None

    def prepare(self, train, test):
        if test is None:
            return NearestPointKernel(jnp.zeros((0,), dtype=int))
        return NearestPointKernel(nearest_points(train.points, test.points)[0])

    def velocity(self, train, test, weights, weighted):
        if self.nearest is None or self.nearest.shape[0] != test.shape[0]:
            raise ValueError("NearestPointKernel: call prepare(train, test) before velocity.")
        G = _per_measure(weighted, weights)
        return G, G[self.nearest]


class ReLUPointNTK(eqx.Module):
    r"""The infinite-width ReLU NTK of a network fed the ambient coordinates: $\Theta(\phi(z), \phi(w))$.

    $\phi(z) = (\mathrm{Re}\,z, \mathrm{Im}\,z) \in \mathbb{R}^{2(n+1)}$ with $z$
    scaled to its patch (coordinate of largest modulus 1), as in the paper;
    $\Theta$ is `ReLUNTK(depth, weight_std, bias_std)`.
    """

    ntk: ReLUNTK

    def __call__(self, z: Complex[Array, " n1"], w: Complex[Array, " n1"]) -> Float[Array, ""]:
        x = jnp.concatenate([jnp.real(z), jnp.imag(z)])
        y = jnp.concatenate([jnp.real(w), jnp.imag(w)])
        return self.ntk.gram(x[None], y[None])[0, 0]


class PairPointKernel(AbstractPointKernel):
    r"""A pairwise kernel $k(z, w)$: $V(x) = \sum_b k(x, z_b)\,\frac{w_b}{N}G_b$.

    With `normalise`, divided by $\sum_b k(x, z_b)\, w_b/N$ (the estimate of
    $\int k(x, \cdot)\, d\mu$), so that $V$ is a kernel-weighted mean of $G$ and
    a narrow kernel tends to the local one at training points (the paper's
    optional normalisation of eq. 3.5).

    The points are fixed during a flow, so when the kernel matrices have at
    most `max_entries` entries ($N(N + P)$) `prepare` builds them once and each
    step is a matrix product. Otherwise every step applies the kernel
    matrix-free (`point_kernel_apply`: memory O(`chunk`²), never an N x N array).

    **Arguments:** `pair`: $k$, a function of two points (e.g. `FSGaussian(sigma)`,
    `ReLUPointNTK(ReLUNTK(...))`); `normalise`; `chunk`; `max_entries`.
    """

    pair: eqx.Module
    normalise: bool = eqx.field(static=True, default=False)
    chunk: int = eqx.field(static=True, default=512)
    max_entries: int = eqx.field(static=True, default=20_000_000)
    matrices: tuple | None = None

    def prepare(self, train, test):
        points = train.points
        test_points = points[:0] if test is None else test.points
        if points.shape[0] * (points.shape[0] + test_points.shape[0]) > self.max_entries:
            return self
        matrices = (_gram(self.pair, points, points), _gram(self.pair, test_points, points))
        return PairPointKernel(self.pair, self.normalise, self.chunk, self.max_entries, matrices)

    def _apply(self, targets, sources, weights, weighted, matrix):
        n, m = weighted.shape[0], weighted.shape[1]
        columns = [weighted.reshape(n, m * m)]
        if self.normalise:
            columns.append((weights / n).astype(weighted.dtype)[:, None])
        values = jnp.concatenate(columns, axis=1)
        if matrix is not None:
            out = matrix.astype(values.dtype) @ values
        else:
            out = point_kernel_apply(
                self.pair, targets, sources, values, row_chunk=self.chunk, col_chunk=self.chunk
            )
        v = out[:, : m * m].reshape(-1, m, m)
        if self.normalise:
            v = v / jnp.real(out[:, m * m]).astype(v.dtype)[:, None, None]
        return v

    def velocity(self, train, test, weights, weighted):
        k_train, k_test = (None, None) if self.matrices is None else self.matrices
        v_train = self._apply(train, train, weights, weighted, k_train)
        if test.shape[0] == 0:
            return v_train, jnp.zeros((0,) + weighted.shape[1:], weighted.dtype)
        return v_train, self._apply(test, train, weights, weighted, k_test)


@eqx.filter_jit
def _gram(pair, targets, sources):
    """The kernel matrix, one row at a time."""
    return jax.lax.map(lambda x: jax.vmap(lambda y: pair(x, y))(sources), targets)


class ClusteredPointKernel(AbstractPointKernel):
    r"""`PairPointKernel` restricted to the paper's clusters: $k(x, z_b)$ set to 0 unless $x$ and $z_b$ share a cluster.

    Training points are clustered by `cluster_points` (batched agglomerative
    clustering in FS distance); a test point joins the cluster of its nearest
    training point. Each cluster's kernel block is built densely (memory
    $N \times$ the largest cluster), as in the paper's per-cluster NTK updates.

    **Arguments:** `kernel` (a `PairPointKernel`), `n_clusters`, `batch_size`, `seed`.
    """

    kernel: PairPointKernel
    n_clusters: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True, default=1000)
    seed: int = eqx.field(static=True, default=0)
    train_blocks: tuple | None = None
    test_blocks: tuple | None = None

    def prepare(self, train, test):
        labels = cluster_points(
            train.points, self.n_clusters, batch_size=self.batch_size, seed=self.seed
        )
        train_blocks = tuple(jnp.asarray(a) for a in cluster_blocks(labels, self.n_clusters))
        if test is None:
            test_labels = jnp.zeros((0,), dtype=int)
        else:
            test_labels = labels[nearest_points(train.points, test.points)[0]]
        test_blocks = tuple(jnp.asarray(a) for a in cluster_blocks(test_labels, self.n_clusters))
        return ClusteredPointKernel(
            self.kernel, self.n_clusters, self.batch_size, self.seed, train_blocks, test_blocks
        )

    def velocity(self, train, test, weights, weighted):
        if self.train_blocks is None:
            raise ValueError("ClusteredPointKernel: call prepare(train, test) before velocity.")
        n, m = weighted.shape[0], weighted.shape[1]
        src_index, src_mask = self.train_blocks
        values = weighted.reshape(n, m * m)
        norm = (weights / n).astype(weighted.dtype)

        def apply(targets, index, mask):
            def block(t_idx, t_mask, s_idx, s_mask):
                k = jax.vmap(lambda x: jax.vmap(lambda y: self.kernel.pair(x, y))(train[s_idx]))(
                    targets[t_idx]
                )
                k = jnp.where(s_mask[None, :], k, jnp.zeros_like(k)).astype(weighted.dtype)
                v = k @ values[s_idx]
                if self.kernel.normalise:
                    v = v / jnp.real(k @ norm[s_idx]).astype(v.dtype)[:, None]
                return jnp.where(t_mask[:, None], v, jnp.zeros_like(v))

            out = jax.vmap(block)(index, mask, src_index, src_mask)
            flat = jnp.zeros((targets.shape[0], m * m), weighted.dtype)
            flat = flat.at[index.reshape(-1)].add(out.reshape(-1, m * m))
            return flat.reshape(-1, m, m)

        v_train = apply(train, src_index, src_mask)
        if test.shape[0] == 0:
            return v_train, jnp.zeros((0, m, m), weighted.dtype)
        return v_train, apply(test, *self.test_blocks)


def gaussian_point_kernel(sigma: float, *, normalise: bool = False) -> PairPointKernel:
    r"""The paper's eq. 3.5: $k(z, w) = e^{-d_\mathrm{FS}(z, w)^2/2\sigma^2}$, optionally normalised."""
    return PairPointKernel(FSGaussian(sigma), normalise=normalise)


def relu_point_kernel(
    depth: int = 1, weight_std: float = 1.0, bias_std: float = 0.0
) -> PairPointKernel:
    """The infinite-width ReLU NTK of the ambient coordinates (`ReLUPointNTK`), unnormalised."""
    return PairPointKernel(ReLUPointNTK(ReLUNTK(depth, weight_std, bias_std)))
