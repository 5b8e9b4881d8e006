r"""Points of a hypersurface moved by its symmetries: more training data at no cost.

When every monomial of $p$ has the same exponents modulo the degree $d$, say
$e \equiv r$ (the Fermat hypersurface $\sum_i z_i^d$, with $r = 0$; not the Dwork
family), $X = \{p = 0\}$ is invariant under the **phases**
$z_i \to \omega^{a_i} z_i$, $\omega = e^{2\pi i/d}$, $a \in \mathbb{Z}_d^{n+1}$
($p \to \omega^{a\cdot r}\, p$). The Fermat hypersurface is also invariant under
**permutations** of the coordinates and under **complex conjugation** (real
coefficients): the group `"fermat"`, of order $(n+1)!\, d^{n+1}\cdot 2$ acting on
$\mathbb{C}^{n+1}$ ($d^{n}$ phases up to the overall one).

Each element is an isometry of Fubini–Study and changes $p$ by a constant of
modulus one (conjugation conjugates it), so the weight $|\Omega|^2/\det
g_\mathrm{FS}$ of a moved point is its old weight, and a sample of the Fubini–Study
volume form moved by elements drawn independently of the points is again such a
sample. The Ricci-flat metric in the class of $g_\mathrm{FS}$ is unique, hence
invariant (under conjugation too: its pull-back is again Kähler, Ricci-flat and in
the class): a potential network trained on moved points learns the same target from
more points (`solvers.train_potential`'s `augment`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._misc import check_key
from .hypersurface import Hypersurface, patch_geometry
from .sampling import PointSample
from .spectral_basis import _check_sample, _check_symmetry

# The groups a sample can be moved by (`SymmetryAugmentation`).
AUGMENTATION_SYMMETRIES = ("phases", "fermat")


class SymmetryAugmentation(eqx.Module):
    r"""Move each point of a sample by an independent, uniformly random symmetry of $X$.

    `augmentation(sample, key)` returns the `PointSample` of the moved points
    $z_a \to \gamma_a z_a$ (module docstring): each point's patch, eliminated
    coordinate, $\Omega$, $g_\mathrm{FS}$ and Jacobian recomputed
    (`patch_geometry`, in its default chart: the largest coordinate, whatever chart
    `sample` fixed), its weight kept (the weight is invariant), so the moved sample
    has the same count and normalisation as `sample`. A moved point whose patch
    choice fails numerically keeps its old data (on the Fermat quintic none does:
    in its patch, the largest $|\partial_i p|$ off the patch coordinate is at least
    $5\cdot 4^{-4/5}$, far above `patch_geometry`'s threshold). Jitted; deterministic
    in `key`.

    **Arguments:** `hypersurface` (the $X$ of the samples), `symmetry`
    (`"phases"`: $\gamma$ uniform in the phase group; `"fermat"`: phases,
    permutations and conjugation, each uniform). A polynomial without the
    symmetry is refused by name.
    """

    hypersurface: Hypersurface
    symmetry: str = eqx.field(static=True)

    def __init__(self, hypersurface: Hypersurface, symmetry: str = "fermat"):
        if not isinstance(hypersurface, Hypersurface):
            raise ValueError(
                "SymmetryAugmentation: hypersurface must be a Hypersurface, got "
                f"{type(hypersurface).__name__}."
            )
        if symmetry not in AUGMENTATION_SYMMETRIES:
            raise ValueError(
                f"SymmetryAugmentation: symmetry must be one of {AUGMENTATION_SYMMETRIES}, got "
                f"{symmetry!r}."
            )
        _check_symmetry(
            hypersurface, symmetry, "SymmetryAugmentation", "no augmentation (augment=None)"
        )
        self.hypersurface = hypersurface
        self.symmetry = symmetry

    def __call__(self, sample: PointSample, key: PRNGKeyArray) -> PointSample:
        """`sample` with each point moved by its own random symmetry (class docstring)."""
        if not isinstance(sample, PointSample):
            raise ValueError(
                f"SymmetryAugmentation: sample must be a PointSample, got {type(sample).__name__}."
            )
        # the coordinates, and the points on the hypersurface (a symmetry of X moves a point
        # off X off it: the moved sample would be silently wrong)
        _check_sample(self.hypersurface, sample, "SymmetryAugmentation")
        check_key(key, "SymmetryAugmentation")
        return _moved(self.hypersurface, sample, key, self.symmetry == "fermat")


@eqx.filter_jit
def _moved(hypersurface: Hypersurface, sample: PointSample, key, fermat: bool) -> PointSample:
    z = sample.points
    count, size = z.shape
    d = hypersurface.degree
    k_phase, k_perm, k_conj = jax.random.split(key, 3)
    roots = jnp.asarray(np.exp(2j * np.pi * np.arange(d) / d), dtype=z.dtype)
    moved = z * roots[jax.random.randint(k_phase, (count, size), 0, d)]
    if fermat:
        order = jnp.argsort(jax.random.uniform(k_perm, (count, size)), axis=1)
        moved = jnp.take_along_axis(moved, order, axis=1)
        flip = jax.random.bernoulli(k_conj, 0.5, (count, 1))
        moved = jnp.where(flip, jnp.conj(moved), moved)
    points, patch, eliminated, omega, g_fs, jacobian, _, ok = patch_geometry(hypersurface, moved)

    def keep(new, old):  # in the sample's own dtypes (patch_geometry computes in X's)
        accepted = ok.reshape((-1,) + (1,) * (new.ndim - 1))
        return jnp.where(accepted, new.astype(old.dtype), old)

    return PointSample(
        points=keep(points, z),
        patch=keep(patch, sample.patch),
        eliminated=keep(eliminated, sample.eliminated),
        omega=keep(omega, sample.omega),
        weights=sample.weights,  # invariant (module docstring); a test recomputes them
        g_fs=keep(g_fs, sample.g_fs),
        jacobian=keep(jacobian, sample.jacobian),
        volume_ratio=sample.volume_ratio,
        rejected=sample.rejected,
    )
