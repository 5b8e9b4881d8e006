"""Bad input to the hypersurface sampling and geometry: refused by name, or rejected under jit.

Chart overrides (`patch_geometry`, `point_sample`, `sample_near`, `chart_sample`), index
arrays (`subsample`), points that are zero, not finite or off X, and the scalar arguments
of `dwork_quintic`, `perturb_points` and the FS distances. Before these checks each case
was accepted silently (out-of-range indices clamped or aliased to another chart, zero rows
counted as rejected) or failed with an unrelated NumPy/JAX message. Float64.
"""

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flows import (
    Hypersurface,
    chart_sample,
    fs_distance,
    fs_distance_squared,
    patch_geometry,
    perturb_points,
    point_sample,
    sample_near,
    subsample,
)

QUINTIC = Hypersurface.fermat_quintic()
COUNT = 200


@functools.cache
def points():
    """Points of the Fermat quintic without a sampler to compile: (1, -1, t, -t, 0) (p = 0
    exactly), coordinates permuted and multiplied by fifth roots of unity (symmetries of X)."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0.2, 0.9, COUNT) * np.exp(2j * np.pi * rng.uniform(size=COUNT))
    z = np.stack([np.ones(COUNT), -np.ones(COUNT), t, -t, np.zeros(COUNT)], axis=1)
    z = np.take_along_axis(z, np.argsort(rng.uniform(size=z.shape), axis=1), axis=1)
    return jnp.asarray(z * np.exp(2j * np.pi * rng.integers(0, 5, z.shape) / 5))


@functools.cache
def sample():
    return point_sample(QUINTIC, points())


def _overrides(patch, eliminate):
    """(COUNT,) override arrays, `patch`/`eliminate` at point 3 and the default elsewhere."""
    arrays = []
    for value in (patch, eliminate):
        index = np.full(COUNT, -1, dtype=np.asarray(value).dtype)
        index[3] = value
        arrays.append(index)
    return arrays


# patch / eliminate overrides


@pytest.mark.parametrize(
    "patch,eliminate,match",
    [
        (
            7,
            -1,
            r"patch must be -1 \(the default\) or a coordinate index in \[0, 4\], got 7 "
            r"\(point 3\)",
        ),
        (-1, 9, r"eliminate must be -1 .* in \[0, 4\], got 9 \(point 3\)"),
        (-1, -3, r"eliminate must be -1 .* got -3 \(point 3\)"),
        (1.0, -1, "patch must be an integer array .* got dtype float64"),
        (True, -1, "patch must be an integer array .* got dtype bool"),
        (2, 2, r"patch and eliminate must differ, both are 2 at point 3"),
    ],
)
def test_bad_overrides_are_refused(patch, eliminate, match):
    patch, eliminate = _overrides(patch, eliminate)
    with pytest.raises(ValueError, match="patch_geometry: " + match):
        patch_geometry(QUINTIC, points(), patch, eliminate)
    with pytest.raises(ValueError, match="point_sample: " + match):
        point_sample(QUINTIC, points(), patch, eliminate)


def test_under_jit_bad_overrides_are_rejected_and_the_residual_is_not_checked():
    """Traced values cannot be checked: a point with an override outside {-1} u [0, n], or
    with patch = eliminated, is rejected (not computed in a clamped chart); a point off X is
    not (documented: `accepted` does not check the residual under jit)."""
    bad_rows = [0, 1, 2, 4, 5, 6]
    patch, eliminate = np.full(COUNT, -1), np.full(COUNT, -1)
    patch[bad_rows], eliminate[bad_rows] = [7, -3, -1, -1, 5, 1], [-1, -1, 9, -2, 1, 1]
    generic = jnp.asarray([1.0, 0.5, -0.25j, 0.3, 0.2 + 0.1j])  # relative residual ~0.08
    z = points().at[7].set(generic)
    out = jax.jit(lambda z, i, j: patch_geometry(QUINTIC, z, i, j))(z, patch, eliminate)
    assert np.flatnonzero(~np.asarray(out[-1])).tolist() == bad_rows
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in out)
    np.testing.assert_array_equal(out[6][np.asarray(bad_rows)], 0.0)  # no weight


def test_sample_near_checks_the_chart_it_is_given():
    bad = eqx.tree_at(lambda s: s.patch, sample(), sample().patch.at[5].set(5))
    with pytest.raises(ValueError, match=r"point_sample: patch must be -1 .* got 5 \(point 5\)"):
        sample_near(QUINTIC, bad, jax.random.key(1), 0.01)


# chart_sample, subsample


@pytest.mark.parametrize(
    "patch,eliminated,match",
    [
        (3, None, "give both patch and eliminated, or neither"),
        (None, 3, "give both patch and eliminated, or neither"),
        (0, 7, r"patch and eliminated must be integers in \[0, 4\], got 7"),
        (1, -3, r"patch and eliminated must be integers in \[0, 4\], got -3"),
        (True, 1, r"patch and eliminated must be integers in \[0, 4\], got True"),
        (2, 2, "patch and eliminated must differ, both are 2"),
    ],
)
def test_chart_sample_refuses_bad_charts(patch, eliminated, match):
    with pytest.raises(ValueError, match="chart_sample: " + match):
        chart_sample(sample(), patch, eliminated)


def test_chart_sample_keeps_exactly_the_chart_asked_for():
    s = sample()
    pairs = list(zip(np.asarray(s.patch).tolist(), np.asarray(s.eliminated).tolist(), strict=True))
    assert len(set(pairs)) > 10  # the points are spread over many charts
    chart = pairs[0]
    part = chart_sample(s, *chart)
    assert part.count == pairs.count(chart)
    assert set(np.asarray(part.patch).tolist()) == {chart[0]}
    assert set(np.asarray(part.eliminated).tolist()) == {chart[1]}


@pytest.mark.parametrize(
    "index,match",
    [
        (np.ones(10, dtype=bool), rf"a boolean mask must have shape \({COUNT},\)"),
        (np.ones((2, COUNT // 2), dtype=bool), rf"a boolean mask must have shape \({COUNT},\)"),
        (np.asarray([0, -1]), rf"indices must be in \[0, {COUNT - 1}\] .* got -1"),
        (np.asarray([COUNT]), rf"indices must be in \[0, {COUNT - 1}\] .* got {COUNT}"),
        (np.asarray([[0, 1]]), "index must be a 1-D array of integers or a boolean mask"),
        (np.asarray([0.0, 1.0]), "index must be a 1-D array of integers .* dtype float64"),
    ],
)
def test_subsample_refuses_bad_indices(index, match):
    assert sample().count == COUNT
    with pytest.raises(ValueError, match="subsample: " + match):
        subsample(sample(), index)


# points that are not points of X


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_a_point_sample_refuses_weights_that_are_not_finite_and_positive(value):
    # a weight is |Omega|^2 / det g_FS > 0; a negative one gave the same sigma as its
    # modulus, and a zero one non-finite point-kernel velocities
    bad = sample().weights.at[7].set(value)
    with pytest.raises(ValueError, match=r"PointSample: weights must be finite and > 0.* point 7"):
        dataclasses.replace(sample(), weights=bad)


def test_patch_geometry_refuses_points_off_the_hypersurface():
    generic = jnp.asarray([1.0, 0.5, -0.25j, 0.3, 0.2 + 0.1j])  # relative residual ~0.08
    z = points().at[7].set(generic)
    with pytest.raises(
        ValueError,
        match=r"patch_geometry: 1 of 200 points are off the hypersurface \(first: "
        r"point 7, relative residual .* > 1e-05\)",
    ):
        patch_geometry(QUINTIC, z)


@pytest.mark.parametrize("caller", [point_sample, patch_geometry])
@pytest.mark.parametrize("value", [0.0, np.nan, np.inf])
def test_zero_and_non_finite_points_are_refused(caller, value):
    z = points().at[4].set(value) if value == 0 else points().at[4, 2].set(value)
    with pytest.raises(
        ValueError,
        match=rf"{caller.__name__}: 1 of 200 points are zero or not finite \(first: point 4\)",
    ):
        caller(QUINTIC, z)


# scalar arguments


@pytest.mark.parametrize("psi", [np.asarray([0.5]), np.asarray([0.5, 0.2]), [0.5]])
def test_dwork_psi_must_be_a_scalar(psi):
    with pytest.raises(ValueError, match=r"dwork_quintic: psi must be a single number .* shape"):
        Hypersurface.dwork_quintic(psi)


def test_perturb_points_scalar_arguments():
    z = points()
    key = jax.random.key(1)
    for scale in (np.float32(0.01), np.float64(0.01), jnp.asarray(0.01), 0):
        moved = perturb_points(QUINTIC, z, key, scale)
        assert moved.shape == z.shape
    for scale in (True, -0.1, float("nan"), 0.01 + 0j, "0.01"):
        with pytest.raises(ValueError, match="perturb_points: scale must be a finite real number"):
            perturb_points(QUINTIC, z, key, scale)
    for steps in (2.5, -1, True):
        with pytest.raises(
            ValueError, match="perturb_points: newton_steps must be an integer >= 0"
        ):
            perturb_points(QUINTIC, z, key, 0.01, newton_steps=steps)


@pytest.mark.parametrize("fn", [fs_distance, fs_distance_squared])
def test_fs_distances_refuse_mismatched_coordinates(fn):
    z = points()[:3]
    with pytest.raises(ValueError, match=rf"{fn.__name__}: z and w must .* same last dimension"):
        fn(z, z[:, :3])
    with pytest.raises(ValueError, match=rf"{fn.__name__}: z and w must"):
        fn(1.0, z)
    if fn is fs_distance:  # documented: a zero vector is not refused (jitted) and gives NaN
        assert bool(jnp.all(jnp.isnan(fn(jnp.zeros_like(z), z))))
