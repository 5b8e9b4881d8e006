r"""Property testing of flows, for users: hypothesis strategies, fixed-point and symmetry checks.

```python
from hypothesis import given
import flows, flows.testing as ft

torus = flows.Torus(2, 8)

@given(ft.flat_metrics(torus))
def test_flat_metrics_are_fixed(metric):
    ft.assert_fixed_point(flows.make_flow("perelman", torus), metric, tol=1e-10)
```

- Strategies: `random_metrics` (seeded smooth perturbations of $g_\mathrm{ref}$),
  `flat_metrics` (constant metrics on a torus), `translations` (of $T^n$),
  `rotations` (of $S^n$), `curve_metrics` ($\kappa|\Omega|^2$ on a sample of the
  cubic curve, any $\kappa > 0$: its Calabi–Yau metrics).
- Checks: `fixed_point_residual` / `assert_fixed_point`
  ($\max_a |V_a|_F / \max_a |G_a|_F$ below a tolerance) and
  `equivariance_residual` / `assert_commutes`
  ($V(\varphi_* g) = \varphi_* V(g)$ for an isometry $\varphi$ of $g_\mathrm{ref}$).
- On hypersurface points: `point_fixed_point_residual` / `assert_point_fixed_point`
  for a `PointKernelFlow` ($\max_a |V_a|_F / \max_a |h_a|_F$ over training and test
  points) and `kahler_ricci_residual` / `assert_kahler_ricci_fixed_point`
  ($\max_a |\log(\eta_a/\bar\eta)|$, the Kähler–Ricci velocity of the potential).

An isometry acts on component fields by
$(\varphi_* A)(x) = L\, A(\varphi^{-1}x)\, L^\top$ ($L = I$ for a translation of
$T^n$, $L = R$ for a rotation of $S^n$ in ambient components), evaluated through
the spectral series. That is exact for band-limited fields; a flow's velocity
is not band-limited on a torus, so off-grid translations commute only to the
discretisation's accuracy, while translations by whole grid steps permute the
nodes and commute to rounding. On spheres the velocity is projected onto the
band-limited series by quadrature, which rotations preserve up to aliasing.

`hypothesis` is a test dependency (the `test` extra); this module needs it.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._calabi_yau import PointSample
from ._manifolds import AbstractManifold, Sphere, Torus
from ._metrics import NodalMetric, SpectralInterpolant, random_metric

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - exercised only without the test extra
    raise ImportError(
        "flows.testing needs hypothesis: pip install 'metric-flows[test]' (or hypothesis)."
    ) from error


class Isometry(eqx.Module):
    r"""$\varphi(x) = L x + b$ on the representation, acting on components by $A \mapsto L A L^\top$.

    - `linear`: $L$ (D, D), orthogonal ($I$ for translations of a torus).
    - `shift`: $b$ (D,) (zero for rotations of a sphere).
    """

    linear: Float[Array, "D D"]
    shift: Float[Array, " D"]

    def inverse_point(self, x: Float[Array, " D"]) -> Float[Array, " D"]:
        r"""$\varphi^{-1}(x) = L^\top (x - b)$."""
        return self.linear.T @ (x - self.shift)


@eqx.filter_jit
def push_forward_values(
    manifold: AbstractManifold, values: Float[Array, "N D D"], isometry: Isometry
) -> Float[Array, "N D D"]:
    r"""$(\varphi_* A)(x_a) = L\, A(\varphi^{-1} x_a)\, L^\top$ at the nodes, $A$ the series of `values`."""
    field = SpectralInterpolant(manifold, values)
    at = jax.vmap(lambda x: field(isometry.inverse_point(x)))(manifold.nodes)
    return jnp.einsum("ij,njk,lk->nil", isometry.linear, at, isometry.linear)


def push_forward(metric: NodalMetric, isometry: Isometry) -> NodalMetric:
    r"""The metric $\varphi_* g$ (exact for band-limited nodal metrics)."""
    return NodalMetric(
        metric.manifold, push_forward_values(metric.manifold, metric.values, isometry)
    )


def _check_flow(flow, what: str):
    if not callable(flow) or not hasattr(flow, "manifold"):
        raise ValueError(f"{what}: flow must be a flows.AbstractFlow, got {flow!r}.")


@eqx.filter_jit
def _velocity(flow, values):
    return flow(0.0, values)


def fixed_point_residual(flow, metric: NodalMetric) -> float:
    r"""$\max_a |P V_a P|_F / \max_a |P G_a P|_F$: how far `metric` is from a fixed point of `flow`."""
    _check_flow(flow, "fixed_point_residual")
    m = metric.manifold
    v = m.tangential(_velocity(flow, metric.values))
    g = m.tangential(metric.values)
    return float(
        jnp.max(jnp.linalg.norm(v, axis=(1, 2))) / jnp.max(jnp.linalg.norm(g, axis=(1, 2)))
    )


def assert_fixed_point(flow, metric: NodalMetric, tol: float = 1e-10) -> None:
    """Raise `AssertionError` unless `metric` is a fixed point of `flow` to relative `tol`."""
    residual = fixed_point_residual(flow, metric)
    if not residual <= tol:
        raise AssertionError(
            f"not a fixed point of {getattr(flow, 'name', flow)!r}: max |dg/dt| / max |g| = "
            f"{residual:.3e} > tol = {tol:.1e}."
        )


def point_fixed_point_residual(flow, h, h_test=None) -> float:
    r"""$\max_a |V_a|_F / \max_a |h_a|_F$ over the training (and test) points of a `PointKernelFlow`."""
    if not (hasattr(flow, "velocity") and hasattr(flow, "train")):
        raise ValueError(
            f"point_fixed_point_residual: expected a PointKernelFlow, got {type(flow).__name__}."
        )
    v_train, v_test = flow.velocity(h, h_test)
    norms = [jnp.max(jnp.linalg.norm(v_train, axis=(1, 2)))]
    scale = [jnp.max(jnp.linalg.norm(h, axis=(1, 2)))]
    if h_test is not None:
        norms.append(jnp.max(jnp.linalg.norm(v_test, axis=(1, 2))))
        scale.append(jnp.max(jnp.linalg.norm(h_test, axis=(1, 2))))
    return float(max(norms) / max(scale))


def assert_point_fixed_point(flow, h, h_test=None, tol: float = 1e-8) -> None:
    """Raise `AssertionError` unless the point values `h` (and `h_test`) are a fixed point of `flow`."""
    residual = point_fixed_point_residual(flow, h, h_test)
    if not residual <= tol:
        raise AssertionError(
            f"not a fixed point of the point flow: max |dh/dt| / max |h| = {residual:.3e} > "
            f"tol = {tol:.1e}."
        )


def kahler_ricci_residual(sample: PointSample, g) -> float:
    r"""$\max_a |\log(\eta_a/\bar\eta)|$: the largest Kähler–Ricci velocity $\partial_t\phi$ of metric values `g`."""
    from ._calabi_yau import log_eta_ratio

    if not isinstance(sample, PointSample):
        raise ValueError(
            f"kahler_ricci_residual: expected a PointSample, got {type(sample).__name__}."
        )
    return float(jnp.max(jnp.abs(log_eta_ratio(sample, g))))


def assert_kahler_ricci_fixed_point(sample: PointSample, g, tol: float = 1e-8) -> None:
    """Raise `AssertionError` unless `g` is a fixed point of Kähler–Ricci flow on `sample` (Ricci-flat)."""
    residual = kahler_ricci_residual(sample, g)
    if not residual <= tol:
        raise AssertionError(
            f"not a fixed point of Kähler–Ricci flow: max |log(eta/mean eta)| = {residual:.3e} "
            f"> tol = {tol:.1e}."
        )


def equivariance_residual(flow, metric: NodalMetric, isometry: Isometry) -> float:
    r"""$\max_a |P(V(\varphi_* g) - \varphi_* V(g))P|_F / \max_a |P V(g) P|_F$ at the nodes."""
    _check_flow(flow, "equivariance_residual")
    m = metric.manifold
    moved = push_forward(metric, isometry)
    v_of_moved = _velocity(flow, moved.values)
    moved_v = push_forward_values(m, _velocity(flow, metric.values), isometry)
    scale = jnp.max(jnp.linalg.norm(m.tangential(moved_v), axis=(1, 2)))
    diff = m.tangential(v_of_moved - moved_v)
    return float(jnp.max(jnp.linalg.norm(diff, axis=(1, 2))) / scale)


def assert_commutes(flow, metric: NodalMetric, isometry: Isometry, tol: float = 1e-8) -> None:
    """Raise `AssertionError` unless `flow` commutes with `isometry` at `metric` to relative `tol`."""
    residual = equivariance_residual(flow, metric, isometry)
    if not residual <= tol:
        raise AssertionError(
            f"{getattr(flow, 'name', flow)!r} does not commute with the isometry: "
            f"relative difference {residual:.3e} > tol = {tol:.1e}."
        )


# ---------------------------------------------------------------------------------------------
# Strategies


def random_metrics(
    manifold: AbstractManifold, *, band_limit: int = 2, max_amplitude: float = 0.3
) -> st.SearchStrategy[NodalMetric]:
    """Seeded smooth perturbations of $g_\\mathrm{ref}$ (`flows.random_metric`), amplitude in (0, max]."""
    if not 0 < max_amplitude < 1:
        raise ValueError(f"random_metrics: max_amplitude must lie in (0, 1), got {max_amplitude}.")
    manifold.check_resolves(band_limit, "random_metrics")
    return st.builds(
        lambda seed, a: random_metric(manifold, jax.random.key(seed), band_limit, a),
        st.integers(0, 2**31 - 1),
        st.floats(0.01 * max_amplitude, max_amplitude),
    )


def flat_metrics(torus: Torus, *, max_anisotropy: float = 3.0) -> st.SearchStrategy[NodalMetric]:
    r"""Constant metrics $g = A$ on a torus: every flat metric on $T^n$ (eigenvalues within `max_anisotropy`)."""
    if not isinstance(torus, Torus):
        raise ValueError(f"flat_metrics: needs a Torus, got {torus!r}.")
    n = torus.dim

    def build(seed, log_scale):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        eigenvalues = np.exp(rng.uniform(-0.5, 0.5, n) * math.log(max_anisotropy) + log_scale)
        a = (q * eigenvalues) @ q.T
        a = 0.5 * (a + a.T)
        return NodalMetric(torus, jnp.broadcast_to(jnp.asarray(a), (torus.nodes.shape[0], n, n)))

    return st.builds(build, st.integers(0, 2**31 - 1), st.floats(-1.0, 1.0))


def translations(torus: Torus, *, on_grid: bool = True) -> st.SearchStrategy[Isometry]:
    """Translations of $T^n$: by whole grid steps (`on_grid`, exact on the nodes) or by any vector."""
    if not isinstance(torus, Torus):
        raise ValueError(f"translations: needs a Torus, got {torus!r}.")
    n, step = torus.dim, 2 * math.pi / torus.n
    if on_grid:
        shift = st.lists(st.integers(0, torus.n - 1), min_size=n, max_size=n).map(
            lambda k: np.asarray(k, dtype=float) * step
        )
    else:
        shift = st.lists(st.floats(0.0, 2 * math.pi), min_size=n, max_size=n).map(np.asarray)
    return shift.map(lambda b: Isometry(jnp.eye(n), jnp.asarray(b, dtype=float)))


def rotations(sphere: Sphere) -> st.SearchStrategy[Isometry]:
    r"""Rotations of $S^n$ (Haar-distributed, determinant +1) acting on ambient components."""
    if not isinstance(sphere, Sphere):
        raise ValueError(f"rotations: needs a Sphere, got {sphere!r}.")
    d = sphere.ambient_dim

    def build(seed):
        rng = np.random.default_rng(seed)
        q, r = np.linalg.qr(rng.normal(size=(d, d)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        return Isometry(jnp.asarray(q), jnp.zeros(d))

    return st.integers(0, 2**31 - 1).map(build)


def curve_metrics(sample: PointSample) -> st.SearchStrategy:
    r"""$\kappa|\Omega|^2$ at the points of `sample` (of the cubic curve), $\kappa$ log-uniform in $[10^{-2}, 10^2]$."""
    from ._calabi_yau import curve_metric

    return st.floats(-2.0, 2.0).map(lambda e: curve_metric(sample, 10.0**e))
