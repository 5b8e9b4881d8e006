r"""Kähler metrics given by their values at points, Monge–Ampère losses, and kernel flows of them.

The state of the paper's kernel experiments (Halverson and Ruehle, §3) is a
Hermitian metric $h_a$ ($m \times m$, local coordinates of the point's patch)
at each training point $z_a$ of a hypersurface $X$, and at test points. With
$\eta_a = \det h_a / |\Omega_a|^2$, the sample's weights $w_a$ (mean 1, so
$\frac1N\sum_a w_a f(z_a) \to \int_X f\, d\mathrm{Vol}_\Omega/\mathrm{Vol}_\Omega$)
and $\bar\eta = \sum_a w_a\eta_a / \sum_a w_a$, the Monge–Ampère losses are

$$L_p(h) = \frac{\sum_a w_a\, |1 - \eta_a/\bar\eta|^p}{\sum_a w_a},$$

$L_1$ being the σ measure. The flow is the project's metric flow
(`shared/DESIGN.md` §2) with the measure $d\mu = d\mathrm{Vol}_\Omega/\mathrm{Vol}_\Omega$
estimated by the sample:

$$\partial_t h(x) = -\int K(x, x')\, G(x')\, d\mu(x') \approx -\sum_b K(x, z_b)\,\frac{w_b}{N}\, G_b,
\qquad G_b = \frac{N}{w_b}\,\frac{\partial L}{\partial h_b},$$

$G$ the functional derivative of $L$ (the gradient in the Frobenius inner
product $\mathrm{Re}\,\mathrm{tr}(X^\dagger Y)$ on Hermitian matrices, divided
by the quadrature weight). Kernels (`AbstractPointKernel`): the local kernel
(training points move by $-G$, test points not at all), the nearest-point
"Delta" kernel (a test point takes its nearest training point's velocity), any
pairwise kernel $k(z, w)$ (the Gaussian in FS distance, the paper's eq. 3.5,
optionally normalised to $\int K\,d\mu = 1$; the infinite-width ReLU NTK of
the ambient coordinates), applied matrix-free, and the same restricted to the
paper's clusters.

Metric values at different points are only comparable in one coordinate
system, so, as in the paper, the samples used here lie in one chart (one
patch and one eliminated coordinate; `chart_sample`).
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int, PRNGKeyArray

from ._clustering import cluster_blocks, cluster_points, nearest_points
from ._hypersurfaces import Hypersurface, PointSample, point_sample
from ._misc import check_key
from ._point_kernels import point_kernel_apply
from ._relu_ntk import ReLUNTK

# Metric values.


def check_metric_values(
    values, count: int, m: int, name: str = "metric values"
) -> Complex[Array, "N m m"]:
    r"""`values` as an (count, m, m) complex array, checked finite, Hermitian (1e-10 relative) and positive definite."""
    values = jnp.asarray(values)
    if values.shape != (count, m, m):
        raise ValueError(
            f"{name}: expected shape ({count}, {m}, {m}), one Hermitian matrix per point, "
            f"got {values.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError(f"{name}: values contain NaN or inf.")
    if not jnp.iscomplexobj(values):
        values = values.astype(jnp.result_type(float))
        values = jax.lax.complex(values, jnp.zeros_like(values))
    scale = jnp.max(jnp.abs(values), axis=(1, 2))
    asym = jnp.max(jnp.abs(values - jnp.conj(jnp.swapaxes(values, 1, 2))), axis=(1, 2))
    if not bool(jnp.all(asym <= 1e-10 * scale)):
        raise ValueError(f"{name}: a matrix is not Hermitian (h != h^dagger).")
    if count and not bool(jnp.all(jnp.linalg.eigvalsh(values)[:, 0] > 0)):
        raise ValueError(f"{name}: a matrix is not positive definite.")
    return values


def curve_metric(sample: PointSample, kappa: float = 1.0) -> Complex[Array, "N 1 1"]:
    r"""$g = \kappa\,|\Omega|^2$ on a curve ($m = 1$): on the cubic in $\mathbb{CP}^2$ the exact flat (Calabi–Yau) metric.

    Its $\eta = \det g / |\Omega|^2 = \kappa$ is constant, so $\sigma = 0$
    and every Monge–Ampère loss is at its minimum. (On curves of other
    degrees $\Omega$ depends on the patch and this is only a local metric.)
    """
    m = sample.points.shape[1] - 2
    if m != 1:
        raise ValueError(f"curve_metric: the sample is of a {m}-fold; this metric is for curves.")
    if not (isinstance(kappa, (int, float)) and math.isfinite(kappa) and kappa > 0):
        raise ValueError(f"curve_metric: kappa must be a finite number > 0, got {kappa!r}.")
    return (kappa * jnp.abs(sample.omega) ** 2).astype(sample.g_fs.dtype)[:, None, None]


def chart_sample(
    sample: PointSample, patch: int | None = None, eliminated: int | None = None
) -> PointSample:
    r"""The points of `sample` whose chart (patch, eliminated coordinate) is the given one.

    Default: the most common chart. Weights are renormalised to mean 1 over the
    points kept (`volume_ratio` becomes their mean raw weight), so the σ
    measure of the result estimates σ over the chart's region of $X$; on the
    Fermat and Dwork quintics the regions are permuted by symmetries, so it
    estimates σ of $X$ for symmetric metrics (Fubini–Study).
    """
    pairs = np.asarray(sample.patch) * sample.points.shape[1] + np.asarray(sample.eliminated)
    if patch is None or eliminated is None:
        values, counts = np.unique(pairs, return_counts=True)
        chosen = int(values[np.argmax(counts)])
    else:
        chosen = int(patch) * sample.points.shape[1] + int(eliminated)
    keep = np.flatnonzero(pairs == chosen)
    if keep.size == 0:
        raise ValueError(
            f"chart_sample: no point of the sample lies in chart {(patch, eliminated)}."
        )
    return subsample(sample, keep)


def subsample(sample: PointSample, index) -> PointSample:
    """The points `index` of `sample`, weights renormalised to mean 1 (`volume_ratio` their mean raw weight).

    `index`: integer indices or a boolean mask; selecting no point raises `ValueError`.
    """
    index = np.asarray(index)
    if index.size == 0:
        raise ValueError("subsample: the index selects no point (an empty point set).")
    if index.dtype == np.bool_:
        index = np.flatnonzero(index)
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(
            f"subsample: index must be a 1-D array of integers or booleans, got dtype "
            f"{index.dtype}, shape {index.shape}."
        )
    if index.size == 0:
        raise ValueError("subsample: the index selects no point (an empty point set).")
    weights = np.asarray(sample.weights)[index]
    mean = weights.mean()
    return PointSample(
        points=sample.points[index],
        patch=sample.patch[index],
        eliminated=sample.eliminated[index],
        omega=sample.omega[index],
        weights=jnp.asarray(weights / mean),
        g_fs=sample.g_fs[index],
        jacobian=sample.jacobian[index],
        volume_ratio=sample.volume_ratio * mean,
        rejected=sample.rejected,
    )


def perturb_points(
    hypersurface: Hypersurface,
    points: Complex[Array, "N n1"],
    key: PRNGKeyArray,
    scale: float,
    *,
    newton_steps: int = 20,
) -> Complex[Array, "N n1"]:
    r"""Points of $X$ near `points`: a complex Gaussian kick of size `scale`, projected back onto $X$.

    $z \to z + \text{scale}\,|z|\,\xi/\sqrt{n+1}$, $\xi$ standard complex
    Gaussian in $\mathbb{C}^{n+1}$, then Newton steps along the normal,
    $z \to z - p(z)\,\overline{\nabla p}/|\nabla p|^2$. The paper adds the noise
    and leaves the points off $X$; projecting keeps $\Omega$ and the weights
    meaningful. Raises if a point does not return to $|p(z)|/|z|^d < 10^{-10}$.
    """
    points = jnp.asarray(points)
    check_key(key, "perturb_points")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
        raise ValueError(f"perturb_points: scale must be a finite number >= 0, got {scale!r}.")
    n1 = hypersurface.ambient_dim
    if points.ndim != 2 or points.shape[1] != n1:
        raise ValueError(f"perturb_points: points must have shape (N, {n1}), got {points.shape}.")
    if points.shape[0] == 0:
        raise ValueError("perturb_points: the point set is empty (shape (0, n + 1)).")
    xi = jax.random.normal(key, points.shape + (2,), dtype=jnp.real(points).dtype)
    xi = jax.lax.complex(xi[..., 0], xi[..., 1]) / math.sqrt(2 * n1)
    z = points + (scale * jnp.linalg.norm(points, axis=1, keepdims=True)).astype(xi.dtype) * xi
    z = _project(hypersurface, z, int(newton_steps))
    residual = (
        jnp.abs(hypersurface.polynomial(z)) / jnp.linalg.norm(z, axis=1) ** hypersurface.degree
    )
    if not bool(jnp.all(residual < 1e-10)):
        raise ValueError(
            f"perturb_points: {int(jnp.sum(~(residual < 1e-10)))} points did not return to X "
            f"(largest |p(z)|/|z|^d = {float(jnp.max(residual)):.2e}); use a smaller scale."
        )
    return z


@eqx.filter_jit
def _project(hypersurface, z, steps):
    def step(_, z):
        grad = hypersurface.gradient(z)
        p = hypersurface.polynomial(z)
        norm2 = jnp.sum(jnp.abs(grad) ** 2, axis=1).astype(p.dtype)
        return z - (p / norm2)[:, None] * jnp.conj(grad)

    return jax.lax.fori_loop(0, steps, step, z)


def sample_near(
    hypersurface: Hypersurface,
    train: PointSample,
    key: PRNGKeyArray,
    scale: float,
) -> PointSample:
    r"""Test points near the training points, in the training sample's chart (`perturb_points`).

    Each training point is kicked by `scale` and projected back onto $X$; the
    result is sampled in the chart of the training points (override of the
    default chart; points where that chart fails numerically are rejected and
    counted). Weights are normalised to mean 1 over the test points.
    """
    z = perturb_points(hypersurface, train.points, key, scale)
    return point_sample(hypersurface, z, train.patch, train.eliminated)


# Losses.


@jax.custom_jvp
def _abs(u):
    return jnp.abs(u)


@_abs.defjvp
def _abs_jvp(primals, tangents):
    # the subgradient of least norm: 0 where |u| is at rounding level, so that a
    # Ricci-flat metric is a fixed point of the sigma flow and not a chattering one
    (u,), (du,) = primals, tangents
    return jnp.abs(u), jnp.where(jnp.abs(u) > _ROUNDING, jnp.sign(u), 0.0) * du


_ROUNDING = 1e-12


class MongeAmpereLoss(eqx.Module):
    r"""$L_p = \sum_a w_a |1 - \eta_a/\bar\eta|^p / \sum_a w_a$, $\eta = \det h/|\Omega|^2$ (module docstring).

    $p = 1$ is the σ measure (Douglas et al. 2008); $p = 2$ is smooth. Both are
    invariant under $h \to c\,h$ and vanish exactly when $\eta$ is constant,
    i.e. at the Ricci-flat metric. For $p = 1$ the derivative of $|u|$ at
    $|u| \le 10^{-12}$ (rounding) is taken as 0, the least-norm subgradient:
    the gradient flow of a convex non-smooth function follows it.

    **Arguments:** `p` >= 1.
    """

    p: float = eqx.field(static=True)

    def __init__(self, p: float = 1.0):
        if not (isinstance(p, (int, float)) and math.isfinite(p) and p >= 1):
            raise ValueError(f"MongeAmpereLoss: p must be a finite number >= 1, got {p!r}.")
        self.p = float(p)

    def __call__(
        self, omega: Complex[Array, " N"], weights: Float[Array, " N"], h: Complex[Array, "N m m"]
    ) -> Float[Array, ""]:
        eta = jnp.real(jnp.linalg.det(h)) / jnp.abs(omega) ** 2
        total = jnp.sum(weights)
        u = 1 - eta / (jnp.sum(weights * eta) / total)
        return jnp.sum(weights * _abs(u) ** self.p) / total

    def gradient(
        self, omega: Complex[Array, " N"], weights: Float[Array, " N"], h: Complex[Array, "N m m"]
    ) -> Complex[Array, "N m m"]:
        r"""$\partial L/\partial h_a$, Hermitian, in the inner product $\mathrm{Re}\,\mathrm{tr}(X^\dagger Y)$."""

        def real_loss(re, im):
            return self(omega, weights, jax.lax.complex(re, im))

        g_re, g_im = jax.grad(real_loss, argnums=(0, 1))(jnp.real(h), jnp.imag(h))
        g_re = (g_re + jnp.swapaxes(g_re, 1, 2)) / 2
        g_im = (g_im - jnp.swapaxes(g_im, 1, 2)) / 2
        return jax.lax.complex(g_re, g_im)

    def functional_derivative(
        self, omega: Complex[Array, " N"], weights: Float[Array, " N"], h: Complex[Array, "N m m"]
    ) -> Complex[Array, "N m m"]:
        r"""$G_a = \frac{N}{w_a}\,\partial L/\partial h_a$: the gradient per unit of the measure."""
        scale = weights.shape[0] / weights
        grad = self.gradient(omega, weights, h)
        return grad * scale.astype(grad.dtype)[:, None, None]


# Kernels on point clouds.


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


# The flow.


def to_real(h: Complex[Array, "N m m"]) -> Float[Array, "N 2 m m"]:
    """Hermitian values as a real array (Re, Im) on axis 1: the state diffrax integrates."""
    return jnp.stack([jnp.real(h), jnp.imag(h)], axis=1)


def to_complex(y: Float[Array, "N 2 m m"]) -> Complex[Array, "N m m"]:
    """Inverse of `to_real`."""
    return jax.lax.complex(y[:, 0], y[:, 1])


def _charts(sample: PointSample) -> np.ndarray:
    """The distinct (patch, eliminated) pairs of a sample, as integers."""
    n1 = sample.points.shape[1]
    return np.unique(np.asarray(sample.patch) * n1 + np.asarray(sample.eliminated))


class PointKernelFlow(eqx.Module):
    r"""$\partial_t h = -V$ at training and test points: a Monge–Ampère loss through a point kernel.

    The vector field of the paper's kernel flows (module docstring): the state
    is `(to_real(h_train), to_real(h_test))`; the loss is evaluated on the
    training points only; the kernel carries its update to the test points
    (their "prediction").

    **Arguments:** `kernel` (an `AbstractPointKernel`; `prepare` is called here),
    `loss` (a `MongeAmpereLoss`), `train` and optional `test` (`PointSample`s in
    one chart, `chart_sample`).
    """

    kernel: AbstractPointKernel
    loss: MongeAmpereLoss
    train: PointSample
    test: PointSample | None

    def __init__(
        self,
        kernel: AbstractPointKernel,
        loss: MongeAmpereLoss,
        train: PointSample,
        test: PointSample | None = None,
    ):
        if not isinstance(kernel, AbstractPointKernel):
            raise ValueError(
                f"PointKernelFlow: kernel must be an AbstractPointKernel, got {type(kernel).__name__}."
            )
        if not isinstance(loss, MongeAmpereLoss):
            raise ValueError(
                f"PointKernelFlow: loss must be a MongeAmpereLoss, got {type(loss).__name__}."
            )
        for name, s in (("train", train), ("test", test)):
            if s is None and name == "test":
                continue
            if not isinstance(s, PointSample):
                raise ValueError(f"PointKernelFlow: {name} must be a PointSample.")
        if test is not None and test.points.shape[1] != train.points.shape[1]:
            raise ValueError("PointKernelFlow: train and test points live in different spaces.")
        chart = _charts(train)
        if chart.size != 1 or (test is not None and np.any(_charts(test) != chart[0])):
            raise ValueError(
                "PointKernelFlow: the points span several charts; metric values in different "
                "coordinates cannot be added (use chart_sample, and sample_near for test points)."
            )
        self.kernel = kernel.prepare(train, test)
        self.loss = loss
        self.train = train
        self.test = test

    @property
    def test_points(self) -> Complex[Array, "P n1"]:
        if self.test is None:
            return jnp.zeros((0, self.train.points.shape[1]), self.train.points.dtype)
        return self.test.points

    def velocity(
        self, h_train: Complex[Array, "N m m"], h_test: Complex[Array, "P m m"] | None = None
    ) -> tuple[Complex[Array, "N m m"], Complex[Array, "P m m"]]:
        r"""$(\partial_t h_\mathrm{train}, \partial_t h_\mathrm{test})$."""
        del h_test  # the kernel's prediction depends on the training state only
        weighted = self.loss.gradient(self.train.omega, self.train.weights, h_train)
        v_train, v_test = self.kernel.velocity(
            self.train.points, self.test_points, self.train.weights, weighted
        )
        return -v_train, -v_test

    def __call__(self, t, y, args):
        dtrain, dtest = self.velocity(to_complex(y[0]), to_complex(y[1]))
        return to_real(dtrain), to_real(dtest)


def gaussian_point_kernel(sigma: float, *, normalise: bool = False) -> PairPointKernel:
    r"""The paper's eq. 3.5: $k(z, w) = e^{-d_\mathrm{FS}(z, w)^2/2\sigma^2}$, optionally normalised."""
    from ._point_kernels import FSGaussian

    return PairPointKernel(FSGaussian(sigma), normalise=normalise)


def relu_point_kernel(
    depth: int = 1, weight_std: float = 1.0, bias_std: float = 0.0
) -> PairPointKernel:
    """The infinite-width ReLU NTK of the ambient coordinates (`ReLUPointNTK`), unnormalised."""
    return PairPointKernel(ReLUPointNTK(ReLUNTK(depth, weight_std, bias_std)))
