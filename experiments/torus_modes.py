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

The default flow is `smoothed` (the fixed-measure flow smoothed by the
Gaussian of width S); S = 0 gives the local fixed-measure flow `perelman`,
which is ill-posed: at n = 16 its predicted amplification of rounding is
exp(128 t1), which is why the default t1 is short (0.05).

Outputs in --out: torus_modes.json (`flow`, `sigma`, `k`, `measured_rate`,
`predicted_rate`, `relative_error`, and the amplitudes; one record per (S, K)
under `runs` when several are given) and torus_modes.png.

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
    non_negative,
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


# the flows with a kernel width (the others are local: --sigma > 0 would be ignored)
SMOOTHABLE = ("smoothed", "smoothed_lambda", "componentwise")


def run(flow_name: str, sigma: float, k: int, n: int, t1: float, amplitude: float) -> dict:
    torus = flows.Torus(2, n)
    if not 1 <= k <= torus.band_limit:
        raise SystemExit(f"--k must be in 1..{torus.band_limit} for n = {n}, got {k}.")
    name = "perelman" if (flow_name == "smoothed" and sigma == 0) else flow_name
    flow = flows.make_flow(name, torus, sigma if sigma > 0 else None)
    g0 = flows.conformal_metric(torus, amplitude * jnp.cos(k * torus.nodes[:, 0]))
    solution = solvers.solve(flow, g0, 0.0, t1, saveat=21, rtol=1e-10, atol=1e-14)
    if solution.stop_reason != "reached t1":
        raise SystemExit(f"{name}: the solve stopped early: {solution.stop_reason}")
    ts = np.asarray(solution.ts)
    amps = mode_amplitudes(solution, k)
    predicted = k**2 * math.exp(-(sigma**2) * k**2 / 2)
    measured = -log_fit(ts, amps, log_x=False).slope  # amplitude ∝ e^{-rate t}
    record = {
        "flow": name,
        "sigma": sigma,
        "k": k,
        "n": n,
        "t1": t1,
        "amplitude": amplitude,
        "measured_rate": measured,
        "predicted_rate": predicted,
        "relative_error": abs(measured - predicted) / predicted,
        "predicted_amplification": solution.amplification.value,
        "times": ts.tolist(),
        "mode_amplitudes": amps.tolist(),
    }
    progress(
        f"{name} sigma={sigma} k={k}: rate {measured:.8f}, predicted {predicted:.8f} "
        f"(relative error {record['relative_error']:.1e})"
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
        "--sigma", type=non_negative, nargs="+", default=[0.3], help="kernel width(s) S >= 0"
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
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    runs = [
        run(args.flow, s, k, args.n, args.t1, args.amplitude) for s in args.sigma for k in args.k
    ]
    record = dict(runs[0]) if len(runs) == 1 else {"runs": runs}
    if len(runs) > 1:
        record["max_relative_error"] = max(r["relative_error"] for r in runs)
    write_json(args.out / "torus_modes.json", record)
    plot(runs, args.out / "torus_modes.png")
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "torus_modes"))
