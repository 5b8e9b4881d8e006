"""Helpers shared by the experiment programs: flag types, progress lines, atomic output files, figures,
and the conformal torus data with its scalar reference (well_posedness.py, lambda_drift.py)."""

import argparse
import json
import math
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure  # the object API: saves through Agg, no pyplot state

import flows
from solvers import (
    atomic_write,  # the one atomic writer (also the demo's)
    output_path,
)

_START = time.perf_counter()

# Flag types. argparse calls them on each value given on the command line; a bad value
# exits with status 2 and "argument --flag: ..." (the flag named, then the reason).

SEED_MAX = 2**32 - 1


def integer(minimum: int | None = None, maximum: int | None = None):
    """argparse type: an integer in [minimum, maximum] (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


def number(
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
):
    """argparse type: a finite float, optionally > `above` or >= `at_least`, < `below` or <= `at_most`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bounds = (
            (above, lambda v, b: v > b, ">"),
            (at_least, lambda v, b: v >= b, ">="),
            (below, lambda v, b: v < b, "<"),
            (at_most, lambda v, b: v <= b, "<="),
        )
        wanted = " and ".join(f"{op} {b:g}" for b, _, op in bounds if b is not None)
        ok = math.isfinite(value) and all(test(value, b) for b, test, _ in bounds if b is not None)
        if not ok:
            raise argparse.ArgumentTypeError(
                f"must be a finite number{' ' + wanted if wanted else ''}, got {text!r}"
            )
        return value

    return parse


positive_int = integer(1)
finite = number()
positive = number(above=0)
non_negative = number(at_least=0)
seed = integer(0, SEED_MAX)  # jax.random.key(seed) and NumPy's generators take any of these
directory = output_path  # the type of every program's --out: an empty path refused


def elapsed() -> float:
    """Seconds since the program started."""
    return time.perf_counter() - _START


def progress(message: str) -> None:
    """Print `message` with the seconds since the program started."""
    print(f"[{elapsed():6.1f} s] {message}", flush=True)


def _finite(value):
    """Non-finite floats become None (strict JSON has no NaN or inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, record: dict) -> None:
    """Write `record` as indented JSON, atomically (non-finite numbers as null)."""
    with atomic_write(path, "w") as f:
        json.dump(_finite(record), f, indent=2, allow_nan=False)
    progress(f"wrote {path}")


def save_figure(fig: Figure, path: Path) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=150)
    progress(f"wrote {path}")


# The conformal data on T^2 and its scalar reference.


def initial_u(x):
    r"""$u = 0.2(\cos x\cos y + \tfrac12\sin(2x + y))$ at points `x` (last axis: $x, y$)."""
    return 0.2 * (
        jnp.cos(x[..., 0]) * jnp.cos(x[..., 1]) + 0.5 * jnp.sin(2 * x[..., 0] + x[..., 1])
    )


def scalar_reference(torus: flows.Torus, ts: np.ndarray) -> dict[str, np.ndarray]:
    r"""Invariants of $e^{2u}\delta$ along $\partial_t u = e^{-2u}\Delta u$ (spectral Laplacian, Dopri8).

    `volume`, `integral_R2` and `integral_R3` ($\int R^p\,dV$), and `integral_abs_R3`
    ($\int |R|^3 dV$, the scale of $\int R^3 dV$, which crosses zero: near
    $t = 0.21$ for the data of `initial_u`).
    """

    def laplacian(u):
        _, hess = torus.nodal_jet(u)
        return jnp.trace(hess, axis1=-2, axis2=-1)

    def rhs(t, u, args):
        return jnp.exp(-2 * u) * laplacian(u)

    u0 = initial_u(torus.nodes)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        diffrax.Dopri8(),
        0.0,
        float(ts[-1]),
        None,
        u0,
        saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
        max_steps=100_000,
    )

    def invariants(u):
        dens = jnp.exp(2 * u)
        r = -2 * jnp.exp(-2 * u) * laplacian(u)
        return {
            "volume": torus.integrate(dens),
            "integral_R2": torus.integrate(r**2 * dens),
            "integral_R3": torus.integrate(r**3 * dens),
            "integral_abs_R3": torus.integrate(jnp.abs(r) ** 3 * dens),
        }

    out = jax.vmap(invariants)(sol.ys)
    return {k: np.asarray(v) for k, v in out.items()}


# each invariant's error is relative to a scale that does not cross zero
INVARIANT_SCALES = {
    "volume": "volume",
    "integral_R2": "integral_R2",
    "integral_R3": "integral_abs_R3",
}


def invariant_errors(series: list[dict], reference: dict[str, np.ndarray]) -> dict[str, list]:
    r"""Per invariant and save time, $|I - I_\mathrm{ref}|$ over the reference's scale.

    `series[i]` holds the flow's invariants at the reference's i-th time
    (`Solution.observables`); the scale of $\int R^3 dV$ is $\int |R|^3 dV$
    (`INVARIANT_SCALES`).
    """
    return {
        key: [
            float(abs(s[key] - reference[key][i]) / abs(reference[scale][i]))
            for i, s in enumerate(series)
        ]
        for key, scale in INVARIANT_SCALES.items()
    }
