"""Shared test helpers: comparisons, manifold registries, flows of closed form, the experiment programs."""

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    return all(
        np.allclose(a, b, rtol=rtol, atol=atol)
        for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True)
    )


def max_abs(x):
    return float(jnp.max(jnp.abs(x)))


@functools.cache
def manifold(name: str) -> flows.AbstractManifold:
    """Cached manifolds at the resolutions the tests use."""
    return {
        "T1": flows.Torus(1, 16),
        "T2": flows.Torus(2, 16),
        "T3": flows.Torus(3, 8),
        "S2": flows.Sphere(2, 16),
        "S3": flows.Sphere(3, 12),
    }[name]


all_manifolds = ("T2", "T3", "S2", "S3")


def off_grid_points(m: flows.AbstractManifold, count: int, seed: int = 0):
    return m.sample(jax.random.key(seed), count)


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

# Every program in experiments/ (tests/test_fuzz.py checks that this list is complete),
# and the `metric-flows` demo (solvers/demo/) under its command name.
PROGRAMS = (
    "bench",
    "convergence",
    "curvature_tour",
    "feature_learning",
    "kernel_points",
    "kernel_tuning",
    "lambda_drift",
    "ntk_regimes",
    "quintic_kernels",
    "quintic_networks",
    "quintic_sigma",
    "quintic_spectral",
    "sphere_extinction",
    "torus_modes",
    "well_posedness",
)
DEMO = "metric-flows"


def experiment_program(name: str):
    """The module of `experiments/<name>.py` (its directory goes on sys.path, as when run),
    or `solvers.demo` for `DEMO`."""
    if name == DEMO:
        return importlib.import_module("solvers.demo")
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    return importlib.import_module(name)


def refusal(program, argv, tmp_path, capsys) -> str:
    """What `program.parse_args(argv + --out tmp_path)` prints on stderr when it refuses: it
    must exit with argparse's status 2."""
    with pytest.raises(SystemExit) as exit:
        program.parse_args([*argv, "--out", str(tmp_path)])
    assert exit.value.code == 2
    return capsys.readouterr().err


def seeded_sample(hypersurface, seed: int, count: int) -> flows.PointSample:
    """`count` points of `hypersurface` drawn from `jax.random.key(seed)`, as a `PointSample`."""
    return flows.point_sample(
        hypersurface, flows.sample_points(hypersurface, jax.random.key(seed), count)
    )


def hyperplane(n: int) -> flows.Hypersurface:
    """CP^n as the hyperplane z_{n+1} = 0 of CP^{n+1} (a degree-1 hypersurface)."""
    exponents = np.zeros((1, n + 2), dtype=int)
    exponents[0, -1] = 1
    return flows.Hypersurface(exponents, np.ones(1))


def flow_from_fubini_study(flow, size: int, times, *, rtol: float, max_steps: int = 4096):
    """A spectral flow's coefficients (P = `size`) integrated from 0 (Fubini–Study) by Tsit5
    with atol = rtol / 100, saved at `times` (the last is t1): the saved states, (len(times), P)."""
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        diffrax.Tsit5(),
        0.0,
        float(times[-1]),
        None,
        jnp.zeros(size),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol / 100),
        saveat=diffrax.SaveAt(ts=times),
        max_steps=max_steps,
    )
    return np.asarray(solution.ys)


class NodalField(flows.AbstractFlow):
    r"""The flow $\partial_t G = f(G)$ of a function `field` of the nodal values: closed forms,
    and no curvature to compile. Its name is the function's; `rate` its growth rate (None:
    no prediction, which `solve` warns about)."""

    manifold: flows.AbstractManifold
    field: Callable = eqx.field(static=True)
    rate: float | None = eqx.field(static=True, default=0.0)

    @property
    def name(self):
        return self.field.__name__

    def velocity(self, metric):
        return self.field(metric.values)

    def growth_rate(self):
        return self.rate
