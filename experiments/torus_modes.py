r"""Decay of one Fourier mode of R on the flat torus under Perelman's flow, local or smoothed.

$T^2$ with $n^2$ nodes; the initial metric is $e^{2u}\delta$, $u = a\cos(Kx)$,
$a \le 10^{-4}$, so the flow is in its linear regime. The linearisation at the flat
torus (docs/conventions.md, Well-posedness) predicts that R's $K$-th Fourier mode
decays like $e^{-\gamma t}$ with
$\gamma = K^2 e^{-\sigma^2 K^2/2}$ for every flow (R is diffeomorphism
invariant; smoothing multiplies the rate by the Gaussian's Fourier
multiplier). The program integrates the flow with `solvers.solve`, takes the
amplitude of the (K, 0) Fourier coefficient of R at the nodes at 21 times,
fits $\log$ amplitude against $t$ by least squares, and compares. Nonlinear
corrections are $O(a)$ relative, so the measured rate should match to about
1e-4 relative (the acceptance bound is 1e-3).

A rate is only measured where the mode visibly decays: the fit's standard error
(the residual noise of the log amplitudes, about 2e-12 at the default tolerances and
t1) must be below `RESOLUTION` = 1e-4 of the predicted rate. A wide kernel on a short
mode (say S = 1.5, K = 5: predicted 1.5e-11) decays by less than the noise over t1;
such a run is marked `resolved: false` with a warning, rather than reported as a rate,
and is left out of `max_relative_error`.

The default flow is `smoothed` (the fixed-measure flow smoothed by the
Gaussian of width S); S = 0 gives the local fixed-measure flow `perelman`,
which is ill-posed: at n = 16 its predicted amplification of rounding is
exp(128 t1), which is why the default t1 is short (0.05).

`smoothed_lambda` needs S > 0, and a local flow refuses S > 0. S is at most 8: past
S ≈ 8.5 the Gaussian's multiplier $e^{-S^2k^2/2}$ of every mode $k \ne 0$ is below float64's
epsilon, so the kernel is the torus mean to rounding and no mode moves (a predicted rate
that underflows to 0 is not resolved).

Outputs in --out: torus_modes.json (`flow`, `sigma`, `k`, `measured_rate`,
`predicted_rate`, `relative_error`, `rate_stderr`, `resolved`, and the amplitudes; one
record per (S, K) under `runs` when several are given, with `max_relative_error` over
the resolved ones and `unresolved` listing the others) and torus_modes.png.

Usage: python experiments/torus_modes.py --sigma S --k K --n N --t1 T [--flow F] --out DIR
(--sigma and --k also take several values.)
"""

import argparse
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    directory,
    integer,
    number,
    positive,
    progress,
    save_figure,
    write_json,
)
from _fits import log_fit
from matplotlib.figure import Figure

import flows
import solvers

jax.config.update("jax_enable_x64", True)


def mode_amplitudes(solution: solvers.Solution, k: int) -> np.ndarray:
    """|R's (k, 0) Fourier coefficient| at every saved time."""
    m = solution.manifold

    def amplitude(values):
        geom = flows.nodal_geometry(flows.NodalMetric(m, values, check=False))
        r = jax.vmap(lambda q: q.scalar)(geom)
        return jnp.abs(m.transform(r)[k, 0])

    return np.asarray(jax.jit(jax.vmap(amplitude))(solution.values))


# a rate counts as measured when the fit's standard error is below this fraction of it
RESOLUTION = 1e-4

# the flows with a kernel width (the others are local: --sigma > 0 would be ignored)
SMOOTHABLE = ("smoothed", "smoothed_lambda", "componentwise")
# the flows that have no local form here (flows.make_flow needs their width)
NEEDS_WIDTH = ("smoothed_lambda",)
# the widest kernel (module docstring): past it the kernel is the torus mean to rounding
SIGMA_MAX = 8.0


def measure_rate(times, amplitudes, predicted: float) -> tuple[float, float, bool]:
    """The fitted decay rate, its standard error, and whether it is resolved.

    amplitude ∝ e^{-rate t}; resolved when the standard error is at most
    `RESOLUTION` times the predicted rate.
    """
    fit = log_fit(np.asarray(times), np.asarray(amplitudes), log_x=False)
    return -fit.slope, fit.stderr, bool(fit.stderr <= RESOLUTION * predicted)


def summarise(runs: list[dict]) -> dict:
    """One run's record, or all of them with the largest error among the resolved ones."""
    if len(runs) == 1:
        return dict(runs[0])
    errors = [r["relative_error"] for r in runs if r["resolved"]]
    return {
        "runs": runs,
        "max_relative_error": max(errors) if errors else None,
        "unresolved": [[r["sigma"], r["k"]] for r in runs if not r["resolved"]],
    }


def run(flow_name: str, sigma: float, k: int, n: int, t1: float, amplitude: float) -> dict:
    torus = flows.Torus(2, n)
    if not 1 <= k <= torus.band_limit:
        raise ValueError(f"--k must be in 1..{torus.band_limit} for n = {n}, got {k}.")
    name = "perelman" if (flow_name == "smoothed" and sigma == 0) else flow_name
    flow = flows.make_flow(name, torus, sigma if sigma > 0 else None)
    g0 = flows.conformal_metric(torus, amplitude * jnp.cos(k * torus.nodes[:, 0]))
    solution = solvers.solve(flow, g0, 0.0, t1, saveat=21, rtol=1e-10, atol=1e-14)
    if solution.stop_reason != "reached t1":
        raise ValueError(f"{name}: the solve stopped early: {solution.stop_reason}")
    ts = np.asarray(solution.ts)
    amps = mode_amplitudes(solution, k)
    predicted = k**2 * math.exp(-(sigma**2) * k**2 / 2)
    measured, stderr, resolved = measure_rate(ts, amps, predicted)
    record = {
        "flow": name,
        "sigma": sigma,
        "k": k,
        "n": n,
        "t1": t1,
        "amplitude": amplitude,
        "measured_rate": measured,
        "predicted_rate": predicted,
        # a rate that underflows to 0 is not resolved (measure_rate): no relative error
        "relative_error": abs(measured - predicted) / predicted if predicted > 0 else None,
        "rate_stderr": stderr,
        "resolved": resolved,
        "predicted_amplification": solution.amplification.value,
        "times": ts.tolist(),
        "mode_amplitudes": amps.tolist(),
    }
    if resolved:
        progress(
            f"{name} sigma={sigma} k={k}: rate {measured:.8g}, predicted {predicted:.8g} "
            f"(relative error {record['relative_error']:.1e})"
        )
    else:
        progress(
            f"warning: {name} sigma={sigma} k={k}: not resolved: the predicted rate "
            f"{predicted:.3g} is below {1 / RESOLUTION:.0e} times the fit's standard error "
            f"{stderr:.1e} (the mode decays by {predicted * t1:.1e} in log over t1 = {t1}); "
            "use a smaller --sigma or --k, or a longer --t1"
        )
    return record


def plot(runs: list[dict], path: Path) -> None:
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for r in runs:
        t = np.asarray(r["times"])
        a = np.asarray(r["mode_amplitudes"])
        line = ax.plot(t, np.log(a / a[0]), "o", ms=3, label=f"σ={r['sigma']}, k={r['k']}")[0]
        ax.plot(t, -r["predicted_rate"] * t, "-", color=line.get_color(), lw=0.8)
    ax.set_xlabel("t")
    ax.set_ylabel("log(|R̂_k(t)| / |R̂_k(0)|)")
    names = " / ".join(dict.fromkeys(r["flow"] for r in runs))  # smoothed at 0 runs perelman
    ax.set_title(f"{names} on T², n={runs[0]['n']}: dots measured, lines predicted")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sigma",
        type=number(at_least=0, at_most=SIGMA_MAX),
        nargs="+",
        default=[0.3],
        help=f"kernel width(s) 0 <= S <= {SIGMA_MAX:g}",
    )
    parser.add_argument(
        "--k", type=integer(1), nargs="+", default=[2], help="wavenumber(s) 1 <= K <= (n - 1) // 2"
    )
    parser.add_argument("--n", type=integer(3), default=16, help="grid points per axis (>= 3)")
    parser.add_argument("--t1", type=positive, default=0.05, help="final time (> 0)")
    parser.add_argument(
        "--flow", default="smoothed", choices=flows.FLOW_NAMES, help="flow (default: smoothed)"
    )
    parser.add_argument(
        "--amplitude",
        type=number(above=0, at_most=1e-4),
        default=1e-4,
        help="perturbation amplitude in (0, 1e-4]",
    )
    parser.add_argument("--out", type=directory, required=True, help="output directory")
    args = parser.parse_args(argv)
    band_limit = (args.n - 1) // 2  # flows.Torus(2, n).band_limit
    if any(k > band_limit for k in args.k):
        parser.error(f"--k must be in 1..{band_limit} for --n {args.n}, got {args.k}")
    if args.flow not in SMOOTHABLE and any(s > 0 for s in args.sigma):
        parser.error(
            f"--flow {args.flow} is local: it has no kernel width (--sigma > 0 is for "
            f"{', '.join(SMOOTHABLE)})"
        )
    if args.flow in NEEDS_WIDTH and any(s == 0 for s in args.sigma):
        parser.error(f"--flow {args.flow} needs a kernel width --sigma > 0, got {args.sigma}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    runs = [
        run(args.flow, s, k, args.n, args.t1, args.amplitude) for s in args.sigma for k in args.k
    ]
    record = summarise(runs)
    write_json(args.out / "torus_modes.json", record)
    plot(runs, args.out / "torus_modes.png")
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "torus_modes"))
