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
from .clustering import _nearest, cluster_blocks, cluster_points, nearest_points
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


class _ShiftedGaussian(eqx.Module):
    r"""$e^{s(x)}\,k_\sigma(x, y)$, the target carrying $s(x)$ as an extra last coordinate (sources 0).

    A per-row factor cancels in a normalised kernel. With
    $s(x) = \min_b d_\mathrm{FS}(x, z_b)^2/2\sigma^2$ the nearest training point
    contributes $e^0 = 1$, so a width far below the distance from $x$ to the
    sample cannot underflow every term of its row to 0 (a 0/0): the row tends
    to the nearest point's value, the narrow-width limit.
    """

    gaussian: FSGaussian

    def __call__(self, x, y):
        return jnp.exp(jnp.real(x[-1]) + self.gaussian.exponent(x[:-1], y[:-1]))

    def prepare(self, points):
        return jnp.concatenate([self.gaussian.prepare(points[:, :-1]), points[:, -1:]], axis=1)

    def on_prepared(self, x, y):
        return jnp.exp(jnp.real(x[-1]) + self.gaussian.exponent_on_prepared(x[:-1], y[:-1]))


def _shift(gaussian: FSGaussian, distance: Float[Array, " P"]) -> Float[Array, " P"]:
    r"""$s(x) = d^2/2\sigma^2$ of each target's nearest training distance $d$."""
    return distance**2 / gaussian._two_sigma_squared(distance)


def _nearest_shift(gaussian: FSGaussian, sources, targets) -> Float[Array, " P"]:
    r"""$s(x) = \min_b d_\mathrm{FS}(x, z_b)^2/2\sigma^2$ for each target (jittable)."""
    return _shift(gaussian, _nearest(sources, targets, min(256, targets.shape[0]))[1])


def _shifted_points(gaussian: FSGaussian, targets, sources, shift):
    """`_ShiftedGaussian` with its points: targets carry $s$, sources 0."""
    zero = jnp.zeros(sources.shape[0], jnp.real(sources).dtype)

    def column(points, values):
        return jnp.concatenate([points, values.astype(points.dtype)[:, None]], axis=1)

    return _ShiftedGaussian(gaussian), column(targets, shift), column(sources, zero)


class PairPointKernel(AbstractPointKernel):
    r"""A pairwise kernel $k(z, w)$: $V(x) = \sum_b k(x, z_b)\,\frac{w_b}{N}G_b$.

    With `normalise`, divided by $\sum_b k(x, z_b)\, w_b/N$ (the estimate of
    $\int k(x, \cdot)\, d\mu$), so that $V$ is a kernel-weighted mean of $G$ and
    a narrow kernel tends to the local one at training points and to the
    nearest-point kernel at test points (the paper's optional normalisation of
    eq. 3.5). For the Gaussian (`FSGaussian`) each test row is computed as
    $e^{s(x)}k$, $s(x) = \min_b d_\mathrm{FS}(x, z_b)^2/2\sigma^2$, a factor that
    cancels: however narrow the width, the nearest training point's term is 1 and
    the row cannot underflow to 0/0. (A training row holds its own point, term 1.)

    The points are fixed during a flow, so when the kernel matrices have at
    most `max_entries` entries ($N(N + P)$) `prepare` builds them once and each
    step is a matrix product. Otherwise every step applies the kernel
    matrix-free (`point_kernel_apply`: memory O(`chunk`²), never an N x N array).
    A prepared kernel is for the points it was prepared on: `velocity` refuses
    point counts that differ from them.

    **Arguments:** `pair`: $k$, a function of two points (e.g. `FSGaussian(sigma)`,
    `ReLUPointNTK(ReLUNTK(...))`); `normalise`; `chunk`; `max_entries`.
    """

    pair: eqx.Module
    normalise: bool = eqx.field(static=True, default=False)
    chunk: int = eqx.field(static=True, default=512)
    max_entries: int = eqx.field(static=True, default=20_000_000)
    matrices: tuple | None = None
    test_shift: Float[Array, " P"] | None = None

    @property
    def _shifted(self) -> bool:
        return self.normalise and isinstance(self.pair, FSGaussian)

    def prepare(self, train, test):
        points = train.points
        test_points = points[:0] if test is None else test.points
        shift = None
        if self._shifted and test_points.shape[0] > 0:
            shift = _nearest_shift(self.pair, points, test_points)
        fields = (self.pair, self.normalise, self.chunk, self.max_entries)
        if points.shape[0] * (points.shape[0] + test_points.shape[0]) > self.max_entries:
            return PairPointKernel(*fields, None, shift)
        pair, targets, sources = self.pair, test_points, points
        if shift is not None:
            pair, targets, sources = _shifted_points(self.pair, test_points, points, shift)
        matrices = (_gram(self.pair, points, points), _gram(pair, targets, sources))
        return PairPointKernel(*fields, matrices, shift)

    def _apply(self, pair, targets, sources, weights, weighted, matrix):
        n, m = weighted.shape[0], weighted.shape[1]
        columns = [weighted.reshape(n, m * m)]
        if self.normalise:
            columns.append((weights / n).astype(weighted.dtype)[:, None])
        values = jnp.concatenate(columns, axis=1)
        if matrix is not None:
            out = matrix.astype(values.dtype) @ values
        else:
            out = point_kernel_apply(
                pair, targets, sources, values, row_chunk=self.chunk, col_chunk=self.chunk
            )
        v = out[:, : m * m].reshape(-1, m, m)
        if self.normalise:
            v = v / jnp.real(out[:, m * m]).astype(v.dtype)[:, None, None]
        return v

    def _check_prepared(self, n: int, p: int):
        counts = []
        if self.matrices is not None:
            counts = [
                ("training", self.matrices[0].shape[0], n),
                ("test", self.matrices[1].shape[0], p),
            ]
        elif self.test_shift is not None:
            counts = [("test", self.test_shift.shape[0], p)]
        for name, prepared, got in counts:
            if prepared != got:
                raise ValueError(
                    f"PairPointKernel: prepared for {prepared} {name} points, called with {got}; "
                    "prepare(train, test) for these points."
                )

    def velocity(self, train, test, weights, weighted):
        self._check_prepared(train.shape[0], test.shape[0])
        k_train, k_test = (None, None) if self.matrices is None else self.matrices
        v_train = self._apply(self.pair, train, train, weights, weighted, k_train)
        if test.shape[0] == 0:
            return v_train, jnp.zeros((0,) + weighted.shape[1:], weighted.dtype)
        pair, targets, sources = self.pair, test, train
        if self._shifted and k_test is None:  # a prepared matrix holds the shift already
            shift = self.test_shift
            if shift is None:  # not prepared: one more pass over the pairs
                shift = _nearest_shift(self.pair, train, test)
            pair, targets, sources = _shifted_points(self.pair, test, train, shift)
        return v_train, self._apply(pair, targets, sources, weights, weighted, k_test)


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
    test_shift: Float[Array, " P"] | None = None

    def prepare(self, train, test):
        labels = cluster_points(
            train.points, self.n_clusters, batch_size=self.batch_size, seed=self.seed
        )
        train_blocks = tuple(jnp.asarray(a) for a in cluster_blocks(labels, self.n_clusters))
        shift = None
        if test is None:
            test_labels = jnp.zeros((0,), dtype=int)
        else:
            nearest, distance = nearest_points(train.points, test.points)
            test_labels = labels[nearest]
            if self.kernel._shifted:  # the nearest point shares the cluster: the same shift
                shift = _shift(self.kernel.pair, distance)
        test_blocks = tuple(jnp.asarray(a) for a in cluster_blocks(test_labels, self.n_clusters))
        return ClusteredPointKernel(
            self.kernel,
            self.n_clusters,
            self.batch_size,
            self.seed,
            train_blocks,
            test_blocks,
            shift,
        )

    def velocity(self, train, test, weights, weighted):
        if self.train_blocks is None:
            raise ValueError("ClusteredPointKernel: call prepare(train, test) before velocity.")
        n, m = weighted.shape[0], weighted.shape[1]
        src_index, src_mask = self.train_blocks
        values = weighted.reshape(n, m * m)
        norm = (weights / n).astype(weighted.dtype)

        def apply(pair, targets, sources, index, mask):
            def block(t_idx, t_mask, s_idx, s_mask):
                k = jax.vmap(lambda x: jax.vmap(lambda y: pair(x, y))(sources[s_idx]))(
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

        v_train = apply(self.kernel.pair, train, train, src_index, src_mask)
        if test.shape[0] == 0:
            return v_train, jnp.zeros((0, m, m), weighted.dtype)
        if self.test_shift is not None and self.test_shift.shape[0] != test.shape[0]:
            raise ValueError(
                f"ClusteredPointKernel: prepared for {self.test_shift.shape[0]} test points, "
                f"called with {test.shape[0]}; prepare(train, test) for these points."
            )
        pair, targets, sources = self.kernel.pair, test, train
        if self.test_shift is not None:
            pair, targets, sources = _shifted_points(pair, test, train, self.test_shift)
        return v_train, apply(pair, targets, sources, *self.test_blocks)


def gaussian_point_kernel(sigma: float, *, normalise: bool = False) -> PairPointKernel:
    r"""The paper's eq. 3.5: $k(z, w) = e^{-d_\mathrm{FS}(z, w)^2/2\sigma^2}$, optionally normalised."""
    return PairPointKernel(FSGaussian(sigma), normalise=normalise)


def relu_point_kernel(
    depth: int = 1, weight_std: float = 1.0, bias_std: float = 0.0
) -> PairPointKernel:
    """The infinite-width ReLU NTK of the ambient coordinates (`ReLUPointNTK`), unnormalised."""
    return PairPointKernel(ReLUPointNTK(ReLUNTK(depth, weight_std, bias_std)))
