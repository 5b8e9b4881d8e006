"""Points of a hypersurface in one chart, and the point density's nearest-neighbour
distances, shared by the point-kernel programs (quintic_kernels.py, kernel_tuning.py,
kernel_points.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from _common import progress

import flows

OVERSAMPLING = 24  # sampled points per point kept in one chart (the quintic has 20 charts)
SAMPLE_BATCH = 4000  # chart points per sampling batch: memory O(24 x 4000 points)


def chart_points(surface, key, count: int, chart=None) -> flows.PointSample:
    """`count` points of `surface` in one chart (the most common, or `chart`), by oversampling."""
    total = 24 * count
    sample = flows.point_sample(surface, flows.sample_points(surface, key, total))
    sample = flows.chart_sample(sample, *(chart or (None, None)))
    if sample.count < count:
        raise RuntimeError(f"only {sample.count} of {total} sampled points fell in the chart")
    return flows.subsample(sample, np.arange(count))


def chart_points_batched(surface, key, count: int, chart=None) -> flows.PointSample:
    r"""`count` points of `surface` in one chart (the most common of the first batch, or `chart`).

    As `chart_points` (sample 24 points per point wanted, keep those
    of one chart) but in batches of `SAMPLE_BATCH` points kept, so that the sampling
    takes memory O(batch) rather than O(24 N); the kept points are then sampled
    again in that chart (`flows.point_sample` with the chart given), which gives
    the same points and weights up to the normalisation to mean 1.
    """
    kept, i = [], 0
    while sum(len(k) for k in kept) < count:
        want = min(SAMPLE_BATCH, count)
        total = OVERSAMPLING * want
        batch = flows.point_sample(
            surface, flows.sample_points(surface, jax.random.fold_in(key, i), total)
        )
        batch = flows.chart_sample(batch, *(chart or (None, None)))
        chart = chart or (int(batch.patch[0]), int(batch.eliminated[0]))
        kept.append(np.asarray(batch.points))
        i += 1
        if i > 10 * (count // want + 1):
            raise RuntimeError(
                f"sampling {count} points in chart {chart}: too few points fell in it after "
                f"{i} batches of {total}"
            )
    points = jnp.asarray(np.concatenate(kept)[:count])
    fill = lambda value: jnp.full(count, value, dtype=int)  # noqa: E731
    sample = flows.point_sample(surface, points, fill(chart[0]), fill(chart[1]))
    return sample


def concatenate(samples: list[flows.PointSample]) -> flows.PointSample:
    """One sample holding several (weights as they are: each group has mean 1).

    Built by hand: flows has no public concatenation, and re-sampling the union with
    `flows.point_sample` would renormalise the weights over all groups and re-choose the
    charts that `flows.sample_near` fixed.
    """
    cat = lambda name: jnp.concatenate([getattr(s, name) for s in samples])  # noqa: E731
    return flows.PointSample(
        points=cat("points"),
        patch=cat("patch"),
        eliminated=cat("eliminated"),
        omega=cat("omega"),
        weights=cat("weights"),
        g_fs=cat("g_fs"),
        jacobian=cat("jacobian"),
        volume_ratio=samples[0].volume_ratio,
        rejected=sum(s.rejected for s in samples),
    )


def mean_nearest_distances(surface, sizes, seed: int) -> list[float]:
    """Mean nearest-neighbour FS distance of `N` points sampled on `surface`, for each N in `sizes`.

    Each size draws its own points, from `jax.random.key(seed + 7)` folded with its index.
    """
    mean = []
    for i, n in enumerate(sizes):
        key = jax.random.fold_in(jax.random.key(seed + 7), i)
        mean.append(flows.mean_nearest_distance(flows.sample_points(surface, key, n)))
        progress(f"mean nearest-neighbour distance at N = {n}: {mean[-1]:.4f}")
    return mean
