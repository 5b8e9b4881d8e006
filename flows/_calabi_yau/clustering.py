r"""Nearest neighbours and the paper's batched clustering of points in Fubini–Study distance.

Halverson and Ruehle, *Metric Flows with Neural Networks*, §3.1: a kernel
method on $N$ points needs $N \times N$ kernel blocks, so the points are
clustered and each cluster updated on its own. Their procedure, reproduced by
`cluster_points`:

1. split the points, in a seeded random order, into mini-batches;
2. cluster each mini-batch by agglomerative clustering with average linkage on
   the FS geodesic distance matrix (scikit-learn);
3. take the clusters of the first mini-batch as the seeds; for each seed in
   turn, merge into it the not yet merged cluster of the next mini-batch whose
   largest distance to the seed's points is smallest; repeat for every batch.

The result depends on the seed (the order of batches and clusters), as the
paper says; `tests/test_point_flows.py` compares it with the kernel applied
without clustering.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Int

from .._misc import check_count
from .projective import fs_distance


def _check_points(name: str, points) -> Complex[Array, "N n1"]:
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[0] < 1 or points.shape[1] < 2:
        raise ValueError(
            f"{name}: points must be a non-empty array (N, n + 1) of homogeneous coordinates, "
            f"got shape {points.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(points))):
        raise ValueError(f"{name}: points contain NaN or inf.")
    if not bool(jnp.all(jnp.linalg.norm(points, axis=1) > 0)):
        raise ValueError(f"{name}: a point has all homogeneous coordinates zero.")
    return points


def nearest_points(
    sources: Complex[Array, "N n1"], targets: Complex[Array, "P n1"], *, chunk: int = 256
) -> tuple[Int[Array, " P"], Float[Array, " P"]]:
    r"""For each target, the index of its nearest source in FS distance, and that distance.

    Matrix-free: `chunk` targets at a time against all sources (memory
    O(chunk x N)). Ties go to the lower index. `sources` must be non-empty
    (`ValueError` otherwise); an empty set of targets (shape (0, n + 1)) is
    accepted and gives two empty arrays, one entry per target.
    """
    sources = _check_points("nearest_points", sources)
    targets = jnp.asarray(targets)
    if targets.ndim != 2 or targets.shape[1] != sources.shape[1]:
        raise ValueError(
            f"nearest_points: targets must have shape (P, {sources.shape[1]}), got {targets.shape}."
        )
    if targets.shape[0] == 0:
        return jnp.zeros((0,), dtype=int), jnp.zeros((0,), dtype=jnp.real(sources).dtype)
    targets = _check_points("nearest_points", targets)
    return _nearest(sources, targets, max(1, min(int(chunk), targets.shape[0])))


@jax.jit(static_argnums=2)
def _nearest(sources, targets, chunk):
    p = targets.shape[0]
    pad = (-p) % chunk
    padded = jnp.concatenate([targets, jnp.broadcast_to(targets[:1], (pad, targets.shape[1]))])

    def block(zs):
        d = fs_distance(zs[:, None, :], sources[None, :, :])
        i = jnp.argmin(d, axis=1)
        return i, jnp.take_along_axis(d, i[:, None], axis=1)[:, 0]

    index, dist = jax.lax.map(block, padded.reshape(-1, chunk, targets.shape[1]))
    return index.reshape(-1)[:p], dist.reshape(-1)[:p]


def mean_nearest_distance(points: Complex[Array, "N n1"], *, chunk: int = 256) -> float:
    r"""$\frac1N\sum_a \min_{b \ne a} d_\mathrm{FS}(z_a, z_b)$: the sample's mean nearest-neighbour distance.

    For $N$ points of a real $k$-dimensional manifold it falls like
    $N^{-1/k}$ ($k = 6$ on a threefold).
    """
    points = _check_points("mean_nearest_distance", points)
    if points.shape[0] < 2:
        raise ValueError("mean_nearest_distance: need at least 2 points.")
    return float(_mean_nearest(points, max(1, min(int(chunk), points.shape[0]))))


@jax.jit(static_argnums=1)
def _mean_nearest(points, chunk):
    n = points.shape[0]
    pad = (-n) % chunk
    idx = jnp.concatenate([jnp.arange(n), jnp.zeros(pad, dtype=int)]).reshape(-1, chunk)

    def block(rows):
        d = fs_distance(points[rows][:, None, :], points[None, :, :])
        d = jnp.where(rows[:, None] == jnp.arange(n)[None, :], jnp.inf, d)
        return jnp.min(d, axis=1)

    dist = jax.lax.map(block, idx).reshape(-1)[:n]
    return jnp.mean(dist)


def _distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FS distances between two small point sets, in NumPy (`fs_distance`'s formula)."""
    inner = np.abs(np.conj(a) @ b.T)
    cos = inner / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    return np.arccos(np.clip(cos, 0.0, 1.0))


def cluster_points(
    points: Complex[Array, "N n1"],
    n_clusters: int,
    *,
    batch_size: int = 1000,
    seed: int = 0,
) -> Int[Array, " N"]:
    r"""Cluster labels in $\{0, \dots, k - 1\}$ by the paper's batched agglomerative clustering.

    **Arguments:**

    - `points`: (N, n + 1) homogeneous coordinates.
    - `n_clusters`: $k$, the number of clusters per mini-batch (and in the end),
      an integer in $[1, N]$.
    - `batch_size`: points per mini-batch (the FS distance matrix of one batch is
      built in memory); the last batch takes the remainder. With `batch_size` >= N
      this is plain agglomerative clustering of all points.
    - `seed`: orders the points into batches (and so the merges).

    Average linkage on the FS distance (scikit-learn's
    `AgglomerativeClustering(metric="precomputed", linkage="average")`).
    Merging (module docstring): seed cluster $i$ of the first batch absorbs,
    for $i = 0, 1, \dots$ in turn, the not yet absorbed cluster of the next
    batch with the smallest maximum distance to the seed's points. A batch
    with fewer than $k$ points is clustered into as many clusters as it has points.
    """
    from sklearn.cluster import AgglomerativeClustering  # import on use: sklearn is slow to load

    points = np.asarray(_check_points("cluster_points", points))
    n = points.shape[0]
    k = check_count(n_clusters, "cluster_points: n_clusters must be an integer >= 1", minimum=1)
    if k > n:
        raise ValueError(f"cluster_points: n_clusters = {k} exceeds the number of points {n}.")
    size = check_count(batch_size, "cluster_points: batch_size must be an integer >= 1", minimum=1)
    if size < k:
        raise ValueError(
            f"cluster_points: batch_size = {size} is smaller than n_clusters = {k}; each "
            "mini-batch must hold at least one point per cluster."
        )
    order = np.random.default_rng(seed).permutation(n)
    labels = np.full(n, -1, dtype=int)
    seeds: list[np.ndarray] = []
    for start in range(0, n, size):
        batch = order[start : start + size]
        clusters = min(k, batch.size)
        if clusters == 1:
            local = np.zeros(batch.size, dtype=int)
        else:
            local = AgglomerativeClustering(
                n_clusters=clusters, metric="precomputed", linkage="average"
            ).fit_predict(_distance_matrix(points[batch], points[batch]))
        members = [batch[local == c] for c in range(clusters)]
        if not seeds:
            seeds = members
            for c, idx in enumerate(members):
                labels[idx] = c
            continue
        free = list(range(clusters))
        for target, seed_idx in enumerate(seeds):
            if not free:
                break
            worst = [_distance_matrix(points[seed_idx], points[members[c]]).max() for c in free]
            labels[members[free.pop(int(np.argmin(worst)))]] = target
    assert np.all(labels >= 0), "every point is assigned (each batch has <= k clusters)"
    return jnp.asarray(labels)


def cluster_blocks(labels: Int[Array, " N"], n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded member lists: indices (k, n_max) and a mask (k, n_max), one row per cluster."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_clusters)
    width = max(1, int(counts.max(initial=0)))
    index = np.zeros((n_clusters, width), dtype=int)
    mask = np.zeros((n_clusters, width), dtype=bool)
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        index[c, : members.size] = members
        mask[c, : members.size] = True
    return index, mask
