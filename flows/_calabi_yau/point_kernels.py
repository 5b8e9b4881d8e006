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
from .kernel_apply import (
    FSGaussian,
    _row_shifted_apply,
    _row_shifted_gram,
    _row_shifts,
    _shifted_exp,
    point_kernel_apply,
)
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


def _check_velocity_inputs(caller: str, train, test, weights, weighted) -> None:
    """The shapes of `velocity`'s arguments (static, so checked under `jit` too)."""
    shapes = [getattr(x, "shape", None) for x in (train, test, weights, weighted)]
    train_shape, test_shape, weights_shape, weighted_shape = shapes
    if (
        train_shape is None
        or len(train_shape) != 2
        or test_shape is None
        or len(test_shape) != 2
        or test_shape[1] != train_shape[1]
    ):
        raise ValueError(
            f"{caller}: train and test must be points (N, n + 1) and (P, n + 1) of one "
            f"projective space, got shapes {train_shape} and {test_shape}."
        )
    n = train_shape[0]
    if (
        weights_shape != (n,)
        or weighted_shape is None
        or len(weighted_shape) != 3
        or weighted_shape[0] != n
        or weighted_shape[1] != weighted_shape[2]
    ):
        raise ValueError(
            f"{caller}: weights must have shape ({n},) and weighted shape ({n}, m, m), one "
            f"entry per training point, got shapes {weights_shape} and {weighted_shape}."
        )


def _check_prepared(caller: str, counts, n: int, p: int) -> None:
    """`ValueError` unless a kernel prepared for `counts` = (N, P) points is called with (n, p)."""
    if counts is None:
        raise ValueError(f"{caller}: call prepare(train, test) before velocity.")
    for name, prepared, got in (("training", counts[0], n), ("test", counts[1], p)):
        if prepared != got:
            raise ValueError(
                f"{caller}: prepared for {prepared} {name} points, called with {got}; "
                "prepare(train, test) for these points."
            )


def _counts(train: PointSample, test: PointSample | None) -> tuple[int, int]:
    return train.points.shape[0], 0 if test is None else test.points.shape[0]


class LocalPointKernel(AbstractPointKernel):
    r"""$K = \delta$: each training point moves by $-G_a$; test points do not move."""

    def velocity(self, train, test, weights, weighted):
        _check_velocity_inputs("LocalPointKernel.velocity", train, test, weights, weighted)
        G = _per_measure(weighted, weights)
        return G, jnp.zeros((test.shape[0],) + G.shape[1:], G.dtype)


class NearestPointKernel(AbstractPointKernel):
    r"""The paper's "Delta kernel": local on training points; a test point takes the velocity of its nearest training point (FS distance).

    `nearest` (and the training and test counts it is for) is filled in by
    `prepare`; `velocity` refuses other point counts.
    """

    nearest: Int[Array, " P"] | None = None
    counts: tuple[int, int] | None = eqx.field(static=True, default=None)

    def prepare(self, train, test):
        if test is None:
            return NearestPointKernel(jnp.zeros((0,), dtype=int), _counts(train, test))
        return NearestPointKernel(
            nearest_points(train.points, test.points)[0], _counts(train, test)
        )

    def velocity(self, train, test, weights, weighted):
        caller = "NearestPointKernel.velocity"
        _check_velocity_inputs(caller, train, test, weights, weighted)
        _check_prepared(caller, self.counts, train.shape[0], test.shape[0])
        G = _per_measure(weighted, weights)
        return G, G[self.nearest]


class ReLUPointNTK(eqx.Module):
    r"""The infinite-width ReLU NTK of a network fed the ambient coordinates: $\Theta(\phi(z), \phi(w))$.

    $\phi(z) = (\mathrm{Re}\,z, \mathrm{Im}\,z) \in \mathbb{R}^{2(n+1)}$ of the
    coordinates as given; $\Theta$ is `ReLUNTK(depth, weight_std, bias_std)`. The
    kernel is not scale-invariant ($\Theta(\phi(\lambda z), \phi(w)) \ne
    \Theta(\phi(z), \phi(w))$), so the points must be scaled alike: as in the paper,
    the points of `chart_sample` and `sample_near` have their patch coordinate equal
    to 1 (the other coordinates can exceed 1 in modulus at test points moved off
    the training points, by up to 2% in measured samples).
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
    a narrow kernel tends to the local one at training points and to the
    nearest-point kernel at test points (the paper's optional normalisation of
    eq. 3.5). For the Gaussian (`FSGaussian`) each row, training and test, is
    computed as $e^{-s(x)}k$ with $s(x) = \max_b \log k(x, z_b)$, the largest of
    the kernel's own exponents (a log-sum-exp shift, which cancels in the ratio;
    `prepare` finds it once, the points being fixed): the row's largest term is
    exactly $e^0 = 1$, so however narrow the width no row underflows to 0/0 and
    the row tends to its nearest training point's value. (Unshifted, even a
    training row's own term $e^{-\delta/2\sigma^2}$, $\delta \lesssim 10^{-15}$ the
    rounding of $d^2(x, x)$, is 0 below $\sigma \approx 5\cdot10^{-10}$: `FSGaussian`.)

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
    shifts: tuple | None = None
    counts: tuple[int, int] | None = eqx.field(static=True, default=None)

    @property
    def _shifted(self) -> bool:
        return self.normalise and isinstance(self.pair, FSGaussian)

    def _check_dtype(self, points, caller: str) -> None:
        if isinstance(self.pair, FSGaussian):
            self.pair.check_dtype(points.dtype, caller)

    def prepare(self, train, test):
        points = train.points
        test_points = points[:0] if test is None else test.points
        self._check_dtype(points, "PairPointKernel.prepare")
        fields = (self.pair, self.normalise, self.chunk, self.max_entries)
        counts = _counts(train, test)
        caller = "PairPointKernel.prepare"
        if points.shape[0] * (points.shape[0] + test_points.shape[0]) > self.max_entries:
            shifts = None
            if self._shifted:  # each row's largest exponent, once: the points are fixed
                shifts = (self._shifts(points, points, caller), None)
                if test_points.shape[0]:
                    shifts = (shifts[0], self._shifts(test_points, points, caller))
            return PairPointKernel(*fields, None, shifts, counts)
        if self._shifted:
            k_train = _row_shifted_gram(self.pair, points, points, caller)
            if test_points.shape[0]:
                k_test = _row_shifted_gram(self.pair, test_points, points, caller)
            else:
                k_test = jnp.zeros((0, points.shape[0]), k_train.dtype)
        else:
            k_train, k_test = (
                _gram(self.pair, points, points),
                _gram(self.pair, test_points, points),
            )
        return PairPointKernel(*fields, (k_train, k_test), None, counts)

    def _shifts(self, targets, sources, caller):
        return _row_shifts(
            self.pair, targets, sources, row_chunk=self.chunk, col_chunk=self.chunk, caller=caller
        )

    def _apply(self, targets, sources, weights, weighted, matrix, shifts):
        n, m = weighted.shape[0], weighted.shape[1]
        columns = [weighted.reshape(n, m * m)]
        if self.normalise:
            columns.append((weights / n).astype(weighted.dtype)[:, None])
        values = jnp.concatenate(columns, axis=1)
        if matrix is not None:
            out = matrix.astype(values.dtype) @ values
        elif self._shifted:  # each row shifted by its largest exponent
            out = _row_shifted_apply(
                self.pair,
                targets,
                sources,
                values,
                shifts,
                row_chunk=self.chunk,
                col_chunk=self.chunk,
                caller="PairPointKernel.velocity",
            )
        else:
            out = point_kernel_apply(
                self.pair, targets, sources, values, row_chunk=self.chunk, col_chunk=self.chunk
            )
        v = out[:, : m * m].reshape(-1, m, m)
        if self.normalise:
            v = v / jnp.real(out[:, m * m]).astype(v.dtype)[:, None, None]
        return v

    def velocity(self, train, test, weights, weighted):
        caller = "PairPointKernel.velocity"
        _check_velocity_inputs(caller, train, test, weights, weighted)
        if self.counts is not None:  # prepared; a kernel never prepared takes any points
            _check_prepared(caller, self.counts, train.shape[0], test.shape[0])
        self._check_dtype(train, caller)
        k_train, k_test = (None, None) if self.matrices is None else self.matrices
        s_train, s_test = (None, None) if self.shifts is None else self.shifts  # None: in the call
        v_train = self._apply(train, train, weights, weighted, k_train, s_train)
        if test.shape[0] == 0:
            return v_train, jnp.zeros((0,) + weighted.shape[1:], weighted.dtype)
        return v_train, self._apply(test, train, weights, weighted, k_test, s_test)


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
    A normalised Gaussian's rows are shifted by their largest exponent in the
    cluster, as `PairPointKernel`'s (a row's cluster holds its own training point,
    or a test point's nearest one). `prepare` records the training and test
    counts; `velocity` refuses others.

    **Arguments:** `kernel` (a `PairPointKernel`), `n_clusters`, `batch_size`, `seed`.
    """

    kernel: PairPointKernel
    n_clusters: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True, default=1000)
    seed: int = eqx.field(static=True, default=0)
    train_blocks: tuple | None = None
    test_blocks: tuple | None = None
    counts: tuple[int, int] | None = eqx.field(static=True, default=None)

    def prepare(self, train, test):
        self.kernel._check_dtype(train.points, "ClusteredPointKernel.prepare")
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
            self.kernel,
            self.n_clusters,
            self.batch_size,
            self.seed,
            train_blocks,
            test_blocks,
            _counts(train, test),
        )

    def velocity(self, train, test, weights, weighted):
        caller = "ClusteredPointKernel.velocity"
        _check_velocity_inputs(caller, train, test, weights, weighted)
        _check_prepared(caller, self.counts, train.shape[0], test.shape[0])
        self.kernel._check_dtype(train, caller)
        n, m = weighted.shape[0], weighted.shape[1]
        src_index, src_mask = self.train_blocks
        values = weighted.reshape(n, m * m)
        norm = (weights / n).astype(weighted.dtype)
        pair, shifted = self.kernel.pair, self.kernel._shifted

        def apply(targets, sources, index, mask):
            def block(t_idx, t_mask, s_idx, s_mask):
                x, y = targets[t_idx], sources[s_idx]
                if shifted:  # each row shifted by its largest exponent in the cluster
                    e = jax.vmap(lambda a: jax.vmap(lambda b: pair.exponent(a, b))(y))(x)
                    k = _shifted_exp(jnp.where(s_mask[None, :], e, -jnp.inf))[0]
                else:
                    k = jax.vmap(lambda a: jax.vmap(lambda b: pair(a, b))(y))(x)
                k = jnp.where(s_mask[None, :], k, jnp.zeros_like(k)).astype(weighted.dtype)
                v = k @ values[s_idx]
                if self.kernel.normalise:
                    v = v / jnp.real(k @ norm[s_idx]).astype(v.dtype)[:, None]
                return jnp.where(t_mask[:, None], v, jnp.zeros_like(v))

            out = jax.vmap(block)(index, mask, src_index, src_mask)
            flat = jnp.zeros((targets.shape[0], m * m), weighted.dtype)
            flat = flat.at[index.reshape(-1)].add(out.reshape(-1, m * m))
            return flat.reshape(-1, m, m)

        v_train = apply(train, train, src_index, src_mask)
        if test.shape[0] == 0:
            return v_train, jnp.zeros((0, m, m), weighted.dtype)
        return v_train, apply(test, train, *self.test_blocks)


def gaussian_point_kernel(sigma: float, *, normalise: bool = False) -> PairPointKernel:
    r"""The paper's eq. 3.5: $k(z, w) = e^{-d_\mathrm{FS}(z, w)^2/2\sigma^2}$, optionally normalised."""
    return PairPointKernel(FSGaussian(sigma), normalise=normalise)


def relu_point_kernel(
    depth: int = 1, weight_std: float = 1.0, bias_std: float = 0.0
) -> PairPointKernel:
    """The infinite-width ReLU NTK of the ambient coordinates (`ReLUPointNTK`), unnormalised."""
    return PairPointKernel(ReLUPointNTK(ReLUNTK(depth, weight_std, bias_std)))
