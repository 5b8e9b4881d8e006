r"""Points of a hypersurface moved by its symmetries (`flows.SymmetryAugmentation`).

Float64. A symmetry of the Fermat quintic is an isometry of Fubini–Study that
keeps $|\Omega|^2$, so a moved point keeps its weight, and the volume ratio
$\eta = \det g/|\Omega|^2$ of an invariant potential's metric is the same at a point and
at its image, both to rounding (1e-12; measured 4e-15); a potential without the
symmetry changes $\eta$ by percents, so these checks can fail.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows


@pytest.fixture(scope="module")
def quintic():
    surface = flows.Hypersurface.fermat_quintic()
    return surface, flows.point_sample(
        surface, flows.sample_points(surface, jax.random.key(0), 300)
    )


def _eta(sample, potential):
    g = flows.pulled_back_metric(sample, potential)
    return jnp.real(jnp.linalg.det(g)) / jnp.abs(sample.omega) ** 2


def _invariant(z):
    # symmetric in the |z_i|: invariant under phases, permutations and conjugation
    r = jnp.abs(z) ** 2
    return 0.02 * jnp.log(jnp.sum(r**5) / jnp.sum(r) ** 5)


def _permutation_dependent(z):
    # invariant under the phases and conjugation, not under permutations
    r = jnp.abs(z) ** 2
    return 0.05 * jnp.log(jnp.sum(jnp.arange(1.0, 6.0) * r) / jnp.sum(r))


def _phase_dependent(z):
    # invariant under permutations and conjugation, not under the phases
    return 0.02 * jnp.abs(jnp.sum(z)) ** 4 / jnp.sum(jnp.abs(z) ** 2) ** 2


@pytest.mark.parametrize("symmetry", ["phases", "fermat"])
def test_moved_points_keep_weights_and_invariant_metrics(quintic, symmetry):
    surface, sample = quintic
    moved = flows.SymmetryAugmentation(surface, symmetry)(sample, jax.random.key(1))
    assert moved.count == sample.count and moved.volume_ratio == sample.volume_ratio
    # on X, and moved in CP^4 (the identity is one of 5^4 phase choices: rare)
    assert float(jnp.max(jnp.abs(surface.polynomial(moved.points)))) < 1e-12
    distance = flows.fs_distance(moved.points, sample.points)
    assert float(jnp.mean(distance > 1e-3)) > 0.95
    # every datum recomputed in the moved point's own chart: g_FS as a fresh point_sample
    # has it; the weights recomputed there are the kept ones (invariant)
    fresh = flows.point_sample(surface, moved.points)
    for name in ("patch", "eliminated", "omega", "g_fs", "jacobian"):
        np.testing.assert_allclose(getattr(moved, name), getattr(fresh, name), atol=1e-12)
    np.testing.assert_allclose(fresh.weights, sample.weights, rtol=1e-12)
    np.testing.assert_allclose(moved.weights, sample.weights, rtol=1e-12)
    eta = _eta(sample, _invariant)
    np.testing.assert_allclose(_eta(moved, _invariant), eta, rtol=1e-12)
    for potential in (_phase_dependent, _permutation_dependent)[: 1 + (symmetry == "fermat")]:
        change = jnp.abs(_eta(moved, potential) / _eta(sample, potential) - 1)
        assert float(jnp.max(change)) > 1e-2  # the check can fail
    # the moduli: kept by the phases, permuted by the full group
    modulus = jnp.abs(sample.points) / jnp.linalg.norm(sample.points, axis=1, keepdims=True)
    moved_modulus = jnp.abs(moved.points) / jnp.linalg.norm(moved.points, axis=1, keepdims=True)
    if symmetry == "phases":
        np.testing.assert_allclose(moved_modulus, modulus, atol=1e-13)
    else:
        np.testing.assert_allclose(
            jnp.sort(moved_modulus, axis=1), jnp.sort(modulus, axis=1), atol=1e-13
        )
        assert float(jnp.max(jnp.abs(moved_modulus - modulus))) > 0.1  # permuted


def test_the_whole_group_is_drawn(quintic):
    """Over many keys one point's images spread over its orbit: the largest coordinate
    lands in every position, and conjugation is drawn as often as not."""
    surface, sample = quintic
    one = flows.subsample(sample, np.zeros(400, dtype=int))  # one point, 400 times
    moved = np.asarray(flows.SymmetryAugmentation(surface)(one, jax.random.key(2)).points)
    counts = np.bincount(np.argmax(np.abs(moved), axis=1), minlength=5)
    assert np.all(counts > 40)  # 80 expected in each position

    # (z_0 ... z_4)^5 / |z|^25 is kept by phases and permutations, conjugated by conjugation
    def u(z):
        return np.prod(z, axis=-1) ** 5 / np.linalg.norm(z, axis=-1) ** 25

    start = u(np.asarray(sample.points[0]))
    assert abs(start.imag) > 1e-3 * abs(start)  # not real, so conjugation shows
    kept = np.isclose(u(moved), start, rtol=1e-9, atol=0)
    conjugated = np.isclose(u(moved), np.conj(start), rtol=1e-9, atol=0)
    assert np.all(kept | conjugated) and 150 < kept.sum() < 250
    # distinct images: 5! 5^4 2 = 150,000 group elements, so 400 draws are almost all distinct
    affine = moved / moved[:, :1]
    assert len({tuple(np.round(row, 8)) for row in affine}) > 390


def test_phases_are_drawn_uniformly(quintic):
    """`"phases"` moves z_i by omega^{a_i}, a_i uniform in Z_5: the ratios
    (z'_i / z'_0) / (z_i / z_0) = omega^{a_i - a_0} take each fifth root a fifth of the time
    (4000 ratios: 800 +- 25 each; a draw from 0..3 only gives 1000 at the root 1)."""
    surface, sample = quintic
    one = flows.subsample(sample, np.zeros(1000, dtype=int))
    moved = np.asarray(flows.SymmetryAugmentation(surface, "phases")(one, jax.random.key(5)).points)
    z = np.asarray(sample.points[0])
    ratio = (moved[:, 1:] / moved[:, :1]) / (z[1:] / z[0])
    np.testing.assert_allclose(np.abs(ratio), 1.0, atol=1e-12)
    residue = np.round(np.angle(ratio) * 5 / (2 * np.pi)).astype(int) % 5
    counts = np.bincount(residue.ravel(), minlength=5)
    assert np.all((counts > 700) & (counts < 900)), counts


def _group_element(z, moved):
    """(permutation, conjugated, phase class) with `moved` = conj^c(P (omega^a * z)) in CP^4.

    z has distinct moduli, so the permutation is read from them; the phases are known
    up to the overall one, as a_{P(j)} - a_{P(0)} mod 5 for j = 1..4 (625 classes).
    """
    unit = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    z = z / np.linalg.norm(z)
    permutation = np.argmin(np.abs(np.abs(unit)[:, :, None] - np.abs(z)[None, None, :]), axis=2)
    source = z[permutation]

    def residues(ratio):  # omega^k of ratio_j / ratio_0, and how far from a fifth root
        relative = ratio[:, 1:] / ratio[:, :1]
        k = np.angle(relative) * 5 / (2 * np.pi)
        return np.round(k).astype(int) % 5, np.max(np.abs(k - np.round(k)), axis=1)

    plain, plain_error = residues(unit / source)
    flipped, flipped_error = residues(unit / np.conj(source))
    conjugated = flipped_error < plain_error
    assert np.all(np.minimum(plain_error, flipped_error) < 1e-8)  # one of the two holds
    assert np.all(np.maximum(plain_error, flipped_error) > 1e-3)  # and only one
    phases = np.where(conjugated[:, None], -flipped, plain) % 5
    return permutation, conjugated, phases @ 5 ** np.arange(4)


def test_fermat_moves_are_uniform_over_the_group(quintic):
    """One point moved 24,000 times: its group elements (permutation, conjugation and
    phases, read back from the images) are uniform over the 120 x 2 permutations with or
    without conjugation, and over the 625 phase classes. Chi-squared against uniform,
    rejected above dof + 5 sqrt(2 dof) (a chance below 1e-5 for a uniform draw); drawing
    only even, cyclic or dihedral permutations, conjugating with the odd ones alone, or
    phases from 0..3 alone gives many times that."""
    surface, sample = quintic
    count = 24_000
    z = np.asarray(sample.points[0])
    assert np.min(np.diff(np.sort(np.abs(z)))) > 1e-3 * np.max(np.abs(z))  # distinct moduli
    one = flows.subsample(sample, np.zeros(count, dtype=int))
    moved = np.asarray(flows.SymmetryAugmentation(surface)(one, jax.random.key(7)).points)
    permutation, conjugated, phases = _group_element(z, moved)
    assert np.all(np.sort(permutation, axis=1) == np.arange(5))  # each a permutation
    code = np.zeros(count, dtype=int)
    for column in range(5):  # the permutation as a number in 0..5^5, then its rank
        code = 5 * code + permutation[:, column]
    _, ranks = np.unique(code, return_inverse=True)
    assert ranks.max() == 119  # all 120 permutations drawn

    def chi2(cells, size):
        observed = np.bincount(cells, minlength=size)
        expected = len(cells) / size
        statistic = float(np.sum((observed - expected) ** 2 / expected))
        dof = size - 1
        assert statistic < dof + 5 * np.sqrt(2 * dof), (statistic, dof)

    chi2(2 * ranks + conjugated, 240)
    chi2(phases, 625)


def test_single_precision_samples_stay_single(quintic):
    """A float32 sample (complex64 points) is moved in its own precision (X computes in complex128)."""
    surface, sample = quintic
    single = jax.tree.map(
        lambda x: (
            x.astype(jnp.complex64)
            if eqx.is_array(x) and jnp.iscomplexobj(x)
            else x.astype(jnp.float32)
            if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating)
            else x
        ),
        sample,
    )
    moved = flows.SymmetryAugmentation(surface)(single, jax.random.key(6))
    for name in ("points", "omega", "weights", "g_fs", "jacobian"):
        assert getattr(moved, name).dtype == getattr(single, name).dtype, name
    np.testing.assert_allclose(moved.weights, sample.weights, rtol=1e-5)


def test_a_point_whose_moved_chart_fails_keeps_its_data(quintic, monkeypatch):
    """Where `patch_geometry` rejects a moved point, the point keeps its old data (never a
    placeholder); the others move."""
    surface, sample = quintic
    real = flows._calabi_yau.symmetry.patch_geometry

    def failing_odd_points(hypersurface, points):
        *outputs, ok = real(hypersurface, points)
        return (*outputs, ok & (jnp.arange(ok.shape[0]) % 2 == 0))

    monkeypatch.setattr(flows._calabi_yau.symmetry, "patch_geometry", failing_odd_points)
    small = flows.subsample(sample, np.arange(20))
    with jax.disable_jit():  # the patched function, not a compiled trace of the real one
        moved = flows.SymmetryAugmentation(surface)(small, jax.random.key(7))
    for name in ("points", "patch", "eliminated", "omega", "weights", "g_fs", "jacobian"):
        np.testing.assert_array_equal(getattr(moved, name)[1::2], getattr(small, name)[1::2])
    assert float(jnp.min(flows.fs_distance(moved.points[::2], small.points[::2]))) > 1e-3


def test_the_same_key_moves_the_same_way(quintic):
    surface, sample = quintic
    augment = flows.SymmetryAugmentation(surface)
    a, b = augment(sample, jax.random.key(3)), augment(sample, jax.random.key(3))
    np.testing.assert_array_equal(a.points, b.points)
    c = augment(sample, jax.random.key(4))
    assert not np.array_equal(a.points, c.points)


def test_symmetries_a_polynomial_lacks_are_refused(quintic):
    surface, sample = quintic
    with pytest.raises(ValueError, match="symmetry must be one of"):
        flows.SymmetryAugmentation(surface, None)
    with pytest.raises(ValueError, match="symmetry must be one of"):
        flows.SymmetryAugmentation(surface, "rotations")
    with pytest.raises(ValueError, match=r"Dwork family\); use no augmentation \(augment=None\)"):
        flows.SymmetryAugmentation(flows.Hypersurface.dwork_quintic(0.5), "phases")
    with pytest.raises(ValueError, match="hypersurface must be a Hypersurface"):
        flows.SymmetryAugmentation(sample, "fermat")
    augment = flows.SymmetryAugmentation(surface)
    with pytest.raises(ValueError, match="sample must be a PointSample"):
        augment(sample.points, jax.random.key(0))
    with pytest.raises(ValueError, match="key must be a single JAX PRNG key"):
        augment(sample, 0)
    cubic = flows.Hypersurface.fermat_cubic()
    curve = flows.point_sample(cubic, flows.sample_points(cubic, jax.random.key(0), 10))
    with pytest.raises(ValueError, match="the sample's points have 3 coordinates"):
        augment(curve, jax.random.key(0))
