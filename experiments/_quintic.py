"""Points of a hypersurface in one chart, and the point density's nearest-neighbour
distances, and the noised test sets' arguments, shared by the point-kernel programs
(quintic_kernels.py, kernel_tuning.py, kernel_points.py)."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _common import positive, progress

import flows
import solvers

OVERSAMPLING = 24  # sampled points per point kept in one chart (the quintic has 20 charts)
SAMPLE_BATCH = 4000  # chart points per sampling batch: memory O(24 x 4000 points)
# points sampled at least, whatever the count wanted: 24 points give one of a chart on
# average, and a test set of a few points failed on some seeds
MIN_SAMPLED = 4800


def chart_points(surface, key, count: int, chart=None) -> flows.PointSample:
    """`count` points of `surface` in one chart (the most common, or `chart`), by oversampling
    (`OVERSAMPLING` sampled points per point, at least `MIN_SAMPLED`)."""
    total = max(OVERSAMPLING * count, MIN_SAMPLED)
    sample = flows.point_sample(surface, flows.sample_points(surface, key, total))
    sample = _in_chart(sample, chart)
    if sample is None or sample.count < count:
        got = 0 if sample is None else sample.count
        raise ValueError(
            f"only {got} of {total} sampled points fell in the chart, {count} wanted; choose "
            "another --seed"
        )
    return flows.subsample(sample, np.arange(count))


def _in_chart(sample: flows.PointSample, chart) -> flows.PointSample | None:
    """`flows.chart_sample` of `sample` (the most common chart, or `chart`); None if it holds none."""
    if chart is not None and not np.any(
        (np.asarray(sample.patch) == chart[0]) & (np.asarray(sample.eliminated) == chart[1])
    ):
        return None
    return flows.chart_sample(sample, *(chart or (None, None)))


def in_own_chart(surface, near: flows.PointSample, chart, scale: float) -> flows.PointSample:
    """The points of `near` whose own chart (`flows.patch_geometry`'s default choice) is `chart`.

    `flows.sample_near` puts every noised point in the training chart; a large kick
    carries a point out of that chart's region, where its coordinates are not those
    a fresh point there would have, so it is dropped, as fresh test points are.
    """
    _, patch, eliminated, *_, accepted = flows.patch_geometry(surface, near.points)
    keep = np.flatnonzero(
        (np.asarray(patch) == chart[0])
        & (np.asarray(eliminated) == chart[1])
        & np.asarray(accepted)
    )
    if keep.size < 2:
        raise ValueError(
            f"noise scale {scale:g}: {keep.size} of {near.count} noised training points stay "
            "in the training chart; drop that scale from --noise"
        )
    return flows.subsample(near, keep)


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
        total = max(OVERSAMPLING * want, MIN_SAMPLED)
        batch = flows.point_sample(
            surface, flows.sample_points(surface, jax.random.fold_in(key, i), total)
        )
        batch = _in_chart(batch, chart)
        if batch is not None:
            chart = chart or (int(batch.patch[0]), int(batch.eliminated[0]))
            kept.append(np.asarray(batch.points))
        i += 1
        if i > 10 * (count // want + 1):
            raise ValueError(
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


# Command-line arguments of the point-kernel programs.


def kernel_width(text: str) -> float:
    r"""argparse type of `--sigma`: a finite number > 0 that `flows.FSGaussian` accepts
    (its own check: $2\sigma^2$ a normal float64, $\sigma \ge$ 1.1e-154), refused before any work."""
    value = positive(text)
    try:
        flows.FSGaussian(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(solvers.error_message(error)) from None
    return value


def noise_label(scale: float) -> str:
    """The name of the test set noised by `scale` (in the JSON, tables and figures)."""
    return f"noise {scale:g}"


def noise_clash(scales) -> str | None:
    """Why `scales` cannot name one test set each (a repeated scale, or two with one
    `noise_label`), or None."""
    seen = {}
    for scale in scales:
        label = noise_label(scale)
        if label in seen:
            if seen[label] == scale:
                return f"--noise {scale!r} is given twice: give each scale once"
            return (
                f"--noise {seen[label]!r} and {scale!r} are one test set's name, {label!r} (6 "
                "significant digits): give scales that differ in those digits"
            )
        seen[label] = scale
    return None
